"""Server-side TLS for SMTP (STARTTLS) with the stdlib ssl module.

SUMMARY
    server_context(config, expand) -> ssl.SSLContext | None
    self_signed(hostname) -> (cert_pem, key_pem)     made with cryptography
    TlsInfo.from_ssl(sslsock)                        what the log/spool need

DESCRIPTION
    tls_certificate and tls_privatekey (expanded) name PEM files; when
    tls_certificate is unset, Exim 4.96 still offers STARTTLS with a
    self-signed certificate made at start-up, and so does eximpy (made once
    per process with the cryptography package, for primary_hostname).
    tls_require_ciphers is passed to OpenSSL as a cipher list;
    tls_dhparam is not needed by OpenSSL's ECDHE suites and is ignored.
    Client certificates (tls_verify_hosts / tls_try_verify_hosts) are not
    requested yet.

    The cipher is recorded as Exim's OpenSSL build writes it:
    "<version>:<cipher>:<bits>" (e.g. "TLS1.3:TLS_AES_256_GCM_SHA384:256"),
    $tls_in_ver as "TLS1.3".  (Debian's Exim is built with GnuTLS, whose
    cipher names differ; they cannot be compared here because Exim's -bs
    cannot do TLS on a pipe.)

SECURITY
    The private key is read from the configured file only; a generated key
    never leaves the process.

SEE ALSO
    spec chapter "Encrypted SMTP connections using TLS/SSL".
"""
from __future__ import annotations

import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

_SELF_SIGNED: dict[str, tuple[bytes, bytes]] = {}     # cache per process


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A self-signed certificate and key (PEM) for ``hostname``."""
    if hostname in _SELF_SIGNED:
        return _SELF_SIGNED[hostname]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256()))
    pair = (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
    _SELF_SIGNED[hostname] = pair
    return pair


def server_context(config: Any, expand: Callable[[str], str],
                   verify: str = "none") -> ssl.SSLContext | None:
    """The SSLContext for inbound TLS, or None when it cannot be built
    (Exim then answers STARTTLS with 454).

    ``verify`` is "none", "optional" (the host is in tls_try_verify_hosts)
    or "required" (tls_verify_hosts): a client certificate is asked for and
    checked against tls_verify_certificates ("system" = the system store).
    The SNI name the client sends is kept (TlsInfo.sni, $tls_in_sni).
    """
    def get(name: str) -> Any:
        try:
            return config.main.get(name)
        except (KeyError, AttributeError):
            return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert = get("tls_certificate")
    try:
        if cert:
            certfile = expand(cert)
            key = get("tls_privatekey")
            keyfile = expand(key) if key else certfile
            ctx.load_cert_chain(certfile, keyfile)
        else:
            host = get("primary_hostname") or os.uname().nodename
            cpem, kpem = self_signed(host)
            with tempfile.TemporaryDirectory() as d:
                cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
                with open(cf, "wb") as f:
                    f.write(cpem)
                fd = os.open(kf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(kpem)
                ctx.load_cert_chain(cf, kf)
        ciphers = get("tls_require_ciphers")
        if ciphers:
            ctx.set_ciphers(expand(ciphers))
        if verify != "none":
            cas = get("tls_verify_certificates")
            cas = expand(cas) if cas else "system"
            if cas == "system":
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            elif os.path.isdir(cas):
                ctx.load_verify_locations(capath=cas)
            else:
                ctx.load_verify_locations(cafile=cas)
            ctx.verify_mode = ssl.CERT_REQUIRED if verify == "required" \
                else ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError, ValueError):
        return None

    def _sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
        sslobj.eximpy_sni = name
    ctx.sni_callback = _sni                    # type: ignore[assignment]
    return ctx


@dataclass
class TlsInfo:
    cipher: str            # "TLS1.3:TLS_AES_256_GCM_SHA384:256"
    ver: str               # "TLS1.3"
    cipher_std: str        # "TLS_AES_256_GCM_SHA384"
    bits: int
    peerdn: str | None = None
    certificate_verified: bool = False
    sni: str | None = None
    peercert: bytes | None = None      # DER: $tls_in_peercert
    ourcert: bytes | None = None       # DER: $tls_in_ourcert

    @classmethod
    def from_ssl(cls, s: Any) -> "TlsInfo":
        name, proto, bits = s.cipher()
        ver = (proto or "").replace("TLSv", "TLS")
        info = cls(cipher=f"{ver}:{name}:{bits}", ver=ver, cipher_std=name,
                   bits=int(bits or 0))
        obj = getattr(s, "_sslobj", None)
        info.sni = getattr(obj, "eximpy_sni", None) or \
            getattr(s, "eximpy_sni", None)
        try:
            der = s.getpeercert(binary_form=True)
        except (ValueError, ssl.SSLError):
            der = None
        if der:
            from eximpy.expand.certs import subject_dn
            info.peercert = der
            # In certificate order, as Exim built with GnuTLS (Debian).
            info.peerdn = subject_dn(der)
            # With CERT_OPTIONAL/REQUIRED the handshake only succeeds with
            # a certificate that verified.
            info.certificate_verified = s.context.verify_mode != \
                ssl.CERT_NONE
        return info


_OURCERTS: dict[str, bytes | None] = {}


def certificate_der(path: str) -> bytes | None:
    """The first certificate of a PEM file as DER (cached per path), for
    $tls_in_ourcert; None when it cannot be read."""
    if path not in _OURCERTS:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding
            with open(path, "rb") as fh:
                cert = x509.load_pem_x509_certificate(fh.read())
            _OURCERTS[path] = cert.public_bytes(Encoding.DER)
        except (OSError, ValueError):
            _OURCERTS[path] = None
    return _OURCERTS[path]


def pem_for_spool(der: bytes) -> str:
    """A certificate as Exim writes it in -H (-tls_peercert/-tls_ourcert):
    PEM with each newline written as backslash-n."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
    return pem.decode("ascii").replace("\n", "\\n")
