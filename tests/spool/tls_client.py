"""Drive ``exim -bs`` through STARTTLS over its stdin/stdout pipes.

Used to make real Exim spool a message received with TLS (and a client
certificate, SNI and AUTH) so that eximpy's reading of the -tls_* fields
is checked against files Exim really writes.
"""
from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
from pathlib import Path


def make_cert(directory: Path, cn: str = "mx.example.test") -> tuple[Path,
                                                                      Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "Example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1000)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    c = directory / "cert.pem"
    k = directory / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o644)
    return c, k


def _reply(buf: bytes) -> tuple[bytes, bytes] | None:
    lines = buf.split(b"\r\n")
    for i, ln in enumerate(lines[:-1]):
        if len(ln) >= 4 and ln[3:4] == b" ":
            return (b"\r\n".join(lines[:i + 1]) + b"\r\n",
                    b"\r\n".join(lines[i + 1:]))
    return None


def tls_session(exim: str, conf: Path, cert: Path, key: Path,
                commands: list[str], extra: list[str],
                timeout: float = 20) -> list[bytes]:
    """Run an SMTP dialogue that starts TLS after EHLO; returns replies.

    Exim's TLS library reads with recv(), so the session runs over a
    socketpair (not pipes) given to ``exim -bs`` as stdin and stdout.
    DATA lines given as ``"DATA:<text>"`` are sent raw.
    """
    ours, theirs = socket.socketpair()
    ours.settimeout(timeout)
    p = subprocess.Popen([exim, "-C", str(conf), "-odq", "-bs"] + extra,
                         stdin=theirs, stdout=theirs,
                         env=dict(os.environ, TZ="UTC"))
    theirs.close()
    buf = b""
    replies: list[bytes] = []

    def plain(cmd: str | None) -> bytes:
        nonlocal buf
        if cmd is not None:
            ours.sendall(cmd.encode() + b"\r\n")
        while True:
            r = _reply(buf)
            if r:
                out, buf = r
                return out
            data = ours.recv(65536)
            if not data:
                raise EOFError(buf)
            buf += data
    try:
        replies.append(plain(None))
        replies.append(plain("EHLO client.example.org"))
        replies.append(plain("STARTTLS"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(cert), str(key))
        tls = ctx.wrap_socket(ours, server_hostname="mx.example.test")
        tbuf = b""

        def secure(cmd: str | None, raw: bool = False) -> bytes:
            nonlocal tbuf
            if cmd is not None:
                tls.sendall(cmd.encode() + (b"" if raw else b"\r\n"))
            while True:
                r = _reply(tbuf)
                if r:
                    out, tbuf = r
                    return out
                data = tls.recv(65536)
                if not data:
                    raise EOFError(tbuf)
                tbuf += data
        for cmd in commands:
            if cmd.startswith("DATA:"):
                replies.append(secure(cmd[5:], raw=True))
            else:
                replies.append(secure(cmd))
    finally:
        try:
            ours.close()
        except OSError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return replies
