"""A scripted SMTP server on loopback for the remote-delivery tests.

SUMMARY
    srv = ScriptedServer(address="127.0.0.2", **behaviour); srv.start()
    ... deliver ...
    srv.sessions -> list of Session(commands=[...], data=[bytes...])
    srv.stop()

DESCRIPTION
    Each connection is served in a thread.  The behaviour is fixed by the
    constructor: the greeting, the EHLO extensions (PIPELINING, SIZE, DSN,
    CHUNKING, STARTTLS, AUTH mechanisms, SMTPUTF8), replies per RCPT local
    part (``rcpt_replies={"tmp": "451 4.3.0 try later"}``), the MAIL and
    end-of-data replies, a PLAIN/LOGIN/CRAM-MD5 user table, and STARTTLS
    with a certificate made by cryptography.  Every command line received
    is recorded (AUTH data included: the tests compare what real Exim and
    eximpy send), message data separately.  Pipelined input is answered
    line by line, as a real server does.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Session:
    commands: list[str] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    tls: bool = False
    auth: str | None = None
    peer_uid: int | None = None     # owner of the client's socket


class ScriptedServer:
    def __init__(self, address: str = "127.0.0.2", port: int = 0,
                 greeting: str = "220 test.example ESMTP ready",
                 extensions: tuple[str, ...] = ("PIPELINING", "SIZE 52428800",
                                                 "8BITMIME", "DSN"),
                 ehlo_reply: str | None = None,
                 mail_reply: str = "250 OK",
                 rcpt_replies: dict[str, str] | None = None,
                 data_reply: str = "354 Enter message, ending with \".\"",
                 final_reply: str = "250 OK id=1TEST-000000-00",
                 users: dict[str, str] | None = None,
                 tls_cert: tuple[str, str] | None = None,
                 close_after: str | None = None,
                 sleep_after: tuple[str, float] | None = None,
                 starttls_reply: str = "220 TLS go ahead",
                 unix_path: str | None = None,
                 lmtp_replies: dict[str, str] | None = None,
                 prdr_replies: dict[str, str] | None = None,
                 tls_on_connect: bool = False) -> None:
        self.address = address
        self.greeting = greeting
        self.extensions = extensions
        self.ehlo_reply = ehlo_reply
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies or {}
        self.data_reply = data_reply
        self.final_reply = final_reply
        self.users = users or {}
        self.tls_cert = tls_cert
        self.close_after = close_after
        self.sleep_after = sleep_after
        self.starttls_reply = starttls_reply
        self.sessions: list[Session] = []
        # LMTP: after the data, one reply per accepted recipient (by local
        # part, default final_reply)
        self.lmtp_replies = lmtp_replies
        self.prdr_replies = prdr_replies or {}
        self.tls_on_connect = tls_on_connect
        if unix_path:
            import os
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o777)
            self.port = 0
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((address, port))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self._stop = False
        self._threads: list[threading.Thread] = []

    def start(self) -> "ScriptedServer":
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for t in self._threads[1:]:
            t.join(5)

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = Session()
            if c.family == socket.AF_INET:
                s.peer_uid = _socket_uid(c.getpeername(), c.getsockname())
            self.sessions.append(s)
            t = threading.Thread(target=self._serve, args=(c, s), daemon=True)
            t.start()
            self._threads.append(t)

    # ------------------------------------------------------------------
    def _serve(self, c: socket.socket, s: Session) -> None:
        c.settimeout(30)
        if c.family != socket.AF_UNIX:
            # replies go out one write each: no Nagle delay between them
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = _Conn(c)
        try:
            self._dialogue(f, s)
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        finally:
            try:
                f.sock.close()
            except OSError:
                pass

    def _ehlo_lines(self, tls: bool) -> list[str]:
        exts = [e for e in self.extensions if not (tls and e == "STARTTLS")]
        if self.users and not any(e.startswith("AUTH") for e in exts):
            pass
        return exts

    def _dialogue(self, f: "_Conn", s: Session) -> None:
        if self.tls_on_connect:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            assert self.tls_cert is not None
            ctx.load_cert_chain(*self.tls_cert)
            f.sock = ctx.wrap_socket(f.sock, server_side=True)
            s.tls = True
        f.send(self.greeting)
        if not self.greeting.startswith("2"):
            # a refusing server still answers QUIT
            pass
        rcpts = 0
        accepted: list[str] = []
        prdr = False
        while True:
            line = f.readline()
            if line is None:
                return
            text = line.decode("utf-8", "surrogateescape")
            s.commands.append(text)
            verb = text.split(" ", 1)[0].upper()
            if self.sleep_after and self.sleep_after[0] == verb:
                time.sleep(self.sleep_after[1])
            if self.close_after == verb:
                return
            if verb in ("EHLO", "LHLO"):
                if self.ehlo_reply:
                    f.send(self.ehlo_reply)
                    continue
                exts = self._ehlo_lines(s.tls)
                lines = ["test.example Hello " + text[5:]] + exts
                f.send("\r\n".join(
                    f"250{'-' if k < len(lines) - 1 else ' '}{ln}"
                    for k, ln in enumerate(lines)))
            elif verb == "HELO":
                f.send("250 test.example Hello")
            elif verb == "STARTTLS":
                f.send(self.starttls_reply)
                if not self.starttls_reply.startswith("2"):
                    continue
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                assert self.tls_cert is not None
                ctx.load_cert_chain(*self.tls_cert)
                f.sock = ctx.wrap_socket(f.sock, server_side=True)
                f.buf = b""
                s.tls = True
            elif verb == "AUTH":
                self._auth(f, s, text)
            elif verb == "MAIL":
                rcpts = 0
                accepted = []
                prdr = " PRDR" in text.upper()
                f.send(self.mail_reply)
            elif verb == "RCPT":
                addr = text.split("<", 1)[1].split(">", 1)[0]
                lp = addr.split("@", 1)[0]
                reply = self.rcpt_replies.get(lp, "250 Accepted")
                if reply.startswith("2"):
                    rcpts += 1
                    accepted.append(lp)
                f.send(reply)
            elif verb == "DATA":
                if not rcpts:
                    f.send("503 No valid recipients")
                    continue
                f.send(self.data_reply)
                if not self.data_reply.startswith("3"):
                    continue
                body = []
                while True:
                    ln = f.readline(keep_end=True)
                    if ln is None:
                        return
                    if ln == b".\r\n":
                        break
                    body.append(ln)
                s.data.append(b"".join(body))
                if self.close_after == "DOT":
                    return
                if self.sleep_after and self.sleep_after[0] == "DOT":
                    time.sleep(self.sleep_after[1])
                if self.lmtp_replies is not None:
                    for lp in accepted:
                        f.send(self.lmtp_replies.get(lp, self.final_reply))
                    continue
                if prdr:
                    f.send("353 PRDR content analysis beginning")
                    for lp in accepted:
                        f.send(self.prdr_replies.get(lp, "250 2.0.0 Accepted"))
                f.send(self.final_reply)
            elif verb == "BDAT":
                parts = text.split()
                n = int(parts[1])
                s.data.append(f.read_exact(n))
                if not rcpts:
                    f.send("503 No valid recipients")
                    continue
                f.send(self.final_reply if "LAST" in text.upper()
                       else f"250 {n} byte chunk received")
            elif verb == "RSET":
                f.send("250 Reset OK")
            elif verb == "QUIT":
                f.send("221 test.example closing connection")
                if s.tls:
                    try:
                        f.sock.settimeout(2)
                        f.sock = f.sock.unwrap()
                    except (OSError, ssl.SSLError, ValueError):
                        pass
                return
            elif verb == "NOOP":
                f.send("250 OK")
            else:
                f.send("500 unrecognized command")

    def _auth(self, f: "_Conn", s: Session, text: str) -> None:
        parts = text.split()
        mech = parts[1].upper() if len(parts) > 1 else ""
        if mech == "PLAIN":
            if len(parts) > 2:
                data = parts[2]
            else:
                f.send("334 ")
                ln = f.readline()
                if ln is None:
                    return
                data = ln.decode()
                s.commands.append(data)
            try:
                _z, user, pw = base64.b64decode(data).decode().split("\0")
            except ValueError:
                f.send("501 bad base64")
                return
        elif mech == "LOGIN":
            f.send("334 VXNlcm5hbWU6")
            ln = f.readline()
            s.commands.append(ln.decode() if ln else "")
            user = base64.b64decode(ln or b"").decode()
            f.send("334 UGFzc3dvcmQ6")
            ln = f.readline()
            s.commands.append(ln.decode() if ln else "")
            pw = base64.b64decode(ln or b"").decode()
        elif mech == "CRAM-MD5":
            chal = b"<12345.67890@test.example>"
            f.send("334 " + base64.b64encode(chal).decode())
            ln = f.readline()
            if ln is None:
                return
            s.commands.append(ln.decode())
            user, _, dig = base64.b64decode(ln).decode().rpartition(" ")
            secret = self.users.get(user)
            if secret is not None and hmac.compare_digest(
                    hmac.new(secret.encode(), chal, hashlib.md5).hexdigest(), dig):
                s.auth = user
                f.send("235 Authentication succeeded")
            else:
                f.send("535 Incorrect authentication data")
            return
        else:
            f.send("504 Unrecognized authentication type")
            return
        if self.users.get(user) == pw:
            s.auth = user
            f.send("235 Authentication succeeded")
        else:
            f.send("535 Incorrect authentication data")


def _socket_uid(peer: tuple, local: tuple) -> int | None:
    """The uid owning the client's end of a loopback TCP connection, from
    /proc/net/tcp (the line whose local address is the peer's)."""
    def hexaddr(a: tuple) -> str:
        ip = socket.inet_aton(a[0])[::-1].hex().upper()
        return f"{ip}:{a[1]:04X}"
    want_l, want_r = hexaddr(peer), hexaddr(local)
    try:
        with open("/proc/net/tcp") as f:
            for ln in f.read().splitlines()[1:]:
                parts = ln.split()
                if parts[1] == want_l and parts[2] == want_r:
                    return int(parts[7])
    except OSError:
        pass
    return None


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self.buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def readline(self, keep_end: bool = False) -> bytes | None:
        while b"\n" not in self.buf:
            if not self._fill():
                return None
        line, _, self.buf = self.buf.partition(b"\n")
        line += b"\n"
        return line if keep_end else line.rstrip(b"\r\n")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def make_cert(directory: str, cn: str = "test.example",
              names: tuple[str, ...] = ("test.example",),
              ips: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """A CA and a server certificate signed by it (PEM files):
    (cert, key, ca)."""
    import datetime
    import ipaddress
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                       True, False, False), True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(
              ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(san), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, n) for n in ("server.pem", "server.key", "ca.pem")]
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(paths[2], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    for p in paths:
        os.chmod(p, 0o644)
    return paths[0], paths[1], paths[2]
