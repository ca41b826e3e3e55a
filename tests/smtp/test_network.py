"""Real clients against an eximpy SMTP session on a loopback socket.

A listener forks one child per connection that runs
eximpy.smtp.connection.serve_socket() (as the receiver role will), with a
throw-away configuration whose spool is in a temp dir.  Python's smtplib
talks to it; raw sockets check early talkers, timeouts and disconnects.
"""
from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import time
from pathlib import Path

import pytest

from eximpy.config import load_config
from smtp.conftest import write_conf


def _serve(cfg, lsock: socket.socket, tls_on_connect: bool = False) -> None:
    from eximpy.log.writer import LogWriter
    from eximpy.smtp.connection import serve_socket
    from eximpy.smtp.connection import prepare
    opts = prepare(cfg)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        conn, peer = lsock.accept()
        if os.fork() == 0:
            lsock.close()
            try:
                serve_socket(conn, cfg, peer=peer[:2],
                             local=conn.getsockname()[:2],
                             log=LogWriter.from_config(cfg),
                             tls_on_connect=tls_on_connect, options=opts)
            finally:
                conn.close()
                os._exit(0)
        conn.close()


@pytest.fixture(params=[False])
def server(smtpdir: Path, request):
    yield from _server(smtpdir, request.param)


@pytest.fixture
def tls_server(smtpdir: Path):
    yield from _server(smtpdir, True)


def _server(smtpdir: Path, tls_on_connect: bool):
    from smtp.test_smtp_differential import AUTHS
    conf = write_conf(smtpdir, "acl_smtp_rcpt = accept\n"
                      "smtp_receive_timeout = 2s\n"
                      "message_size_limit = 100K" + AUTHS)
    cfg = load_config(str(conf))
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        # Own process group (torn down as a whole), and no hold on
        # pytest's output pipes.
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            _serve(cfg, lsock, tls_on_connect)
        finally:
            os._exit(0)
    lsock.close()
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    yield smtpdir, port
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def _spooled(d: Path) -> list[str]:
    inp = d / "spool" / "input"
    if not inp.exists():
        return []
    return sorted(n[:-2] for n in os.listdir(inp) if n.endswith("-H"))


def test_smtplib_sendmail(server):
    d, port = server
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        code, text = c.ehlo("client.example")
        assert code == 250 and b"PIPELINING" in text and b"SIZE 102400" in text
        c.sendmail("a@b.example", ["c@d.example", "e@f.example"],
                   b"Subject: hello\r\n\r\nbody\r\n.leading dot\r\n")
        c.sendmail("", ["c@d.example"], b"Subject: bounce\r\n\r\nx\r\n")
    ids = _spooled(d)
    assert len(ids) == 2
    h = (d / "spool" / "input" / f"{ids[0]}-H").read_text()
    assert "-host_address [127.0.0.1]:" in h
    assert "-received_protocol esmtp" in h
    assert "e@f.example" in h
    body = (d / "spool" / "input" / f"{ids[0]}-D").read_bytes()
    assert body == f"{ids[0]}-D\nbody\n.leading dot\n".encode()
    log = (d / "log" / "mainlog").read_text()
    assert f"{ids[0]} <= a@b.example H=(client.example) [127.0.0.1]" in log


def test_smtplib_size_refused(server):
    d, port = server
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            c.sendmail("a@b.example", ["c@d.example"], b"x" * 200_000)
        assert e.value.smtp_code == 552
    assert _spooled(d) == []


def _talk(port: int, data: bytes, wait: float = 0.3) -> bytes:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    out = b""
    try:
        if data:
            s.sendall(data)
        time.sleep(wait)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


def test_early_talker(server):
    _d, port = server
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"EHLO x\r\n")          # before the banner
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    # Either the banner raced ahead of our bytes, or we were caught.
    assert data.startswith(b"554 SMTP synchronization error") or \
        data.startswith(b"220 ")


def test_disconnect_mid_data_leaves_nothing(server):
    d, port = server
    out = _talk(port, b"", 0.1)
    assert out.startswith(b"220 ")
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.recv(4096)
    s.sendall(b"EHLO x\r\n")
    s.recv(4096)
    s.sendall(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    time.sleep(0.2)
    s.recv(4096)
    s.sendall(b"Subject: x\r\n\r\npartial")
    s.close()
    time.sleep(0.5)
    assert _spooled(d) == []


def test_command_timeout(server):
    _d, port = server
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    banner = s.recv(4096)
    assert banner.startswith(b"220 ")
    t0 = time.time()
    data = s.recv(4096)
    assert data == (b"421 test.example: SMTP command timeout - closing "
                    b"connection\r\n")
    assert 1.5 < time.time() - t0 < 6
    s.close()


def test_starttls_smtplib(server):
    import ssl
    d, port = server
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=ctx)
        assert code == 220
        code, text = c.ehlo("client.example")
        assert code == 250 and b"STARTTLS" not in text
        c.sendmail("a@b.example", ["c@d.example"],
                   b"Subject: secret\r\n\r\nover TLS\r\n")
    ids = _spooled(d)
    assert len(ids) == 1
    h = (d / "spool" / "input" / f"{ids[0]}-H").read_text()
    assert "-received_protocol esmtps" in h
    assert "-tls_cipher TLS1.3:" in h and "-tls_ver TLS1.3" in h
    # two spaces: Exim's default received_header_text gives them too
    assert "with esmtps  (TLS1.3) tls TLS_" in h
    log = (d / "log" / "mainlog").read_text()
    assert " P=esmtps X=TLS1.3:" in log and " CV=no " in log


def test_starttls_pipelined_is_sync_error(server):
    """STARTTLS must end a pipelined group: more input is a sync error."""
    _d, port = server
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.recv(4096)
    s.sendall(b"EHLO x\r\n")
    time.sleep(0.2)
    s.recv(4096)
    s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
    assert s.recv(4096) == b"554 SMTP synchronization error\r\n"
    s.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_auth(server, mech):
    d, port = server
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        assert mech in c.esmtp_features["auth"].split()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            _login(c, mech, "user", "wrong")
        assert e.value.smtp_code == 535
        code, _ = _login(c, mech, "user", "pass")
        assert code == 235
        c.sendmail("a@b.example", ["c@d.example"], b"Subject: a\r\n\r\nx\r\n")
    log = (d / "log" / "mainlog").read_text()
    name = {"PLAIN": "plain", "LOGIN": "login", "CRAM-MD5": "cram"}[mech]
    assert f"P=esmtpa A={name}:user" in log
    assert f"{name} authenticator failed for (client.example) [127.0.0.1]" \
        in (d / "log" / "rejectlog").read_text()


def _login(c: smtplib.SMTP, mech: str, user: str, password: str):
    c.user, c.password = user, password
    fn = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login,
          "CRAM-MD5": c.auth_cram_md5}[mech]
    return c.auth(mech, fn, initial_response_ok=(mech == "PLAIN"))


def test_tls_on_connect(tls_server):
    import ssl
    d, port = tls_server
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ctx) as c:
        code, text = c.ehlo("client.example")
        assert code == 250 and b"STARTTLS" not in text
        c.sendmail("a@b.example", ["c@d.example"], b"Subject: s\r\n\r\nx\r\n")
    ids = _spooled(d)
    h = (d / "spool" / "input" / f"{ids[0]}-H").read_text()
    assert "-received_protocol esmtps" in h and "-tls_ver TLS1." in h


def _make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate and a client certificate (cryptography)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                             "eximpy test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, ikey, ca=False):
        b = (x509.CertificateBuilder().subject_name(subject)
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                            critical=True))
        return b.sign(ikey, hashes.SHA256())
    out = {}
    cakey = ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("Test CA"), cakey, name("Test CA"), cakey, ca=True)
    for who in ("server", "client"):
        k = ec.generate_private_key(ec.SECP256R1())
        c = cert(name(f"{who}.test"), k, ca.subject, cakey)
        (d / f"{who}.pem").write_bytes(c.public_bytes(
            serialization.Encoding.PEM))
        (d / f"{who}.key").write_bytes(k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out[who] = d / f"{who}.pem"
        out[who + "_key"] = d / f"{who}.key"
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = d / "ca.pem"
    return out


@pytest.fixture
def verify_server(smtpdir: Path):
    pki = _make_pki(smtpdir)
    extra = ("acl_smtp_rcpt = accept\nsmtp_receive_timeout = 2s\n"
             f"tls_certificate = {pki['server']}\n"
             f"tls_privatekey = {pki['server_key']}\n"
             f"tls_verify_certificates = {pki['ca']}\n"
             "tls_try_verify_hosts = 127.0.0.1\n"
             "log_selector = +tls_peerdn +tls_sni")
    conf = write_conf(smtpdir, extra)
    cfg = load_config(str(conf))
    yield from _server_cfg(smtpdir, cfg, False, pki)


def _server_cfg(smtpdir, cfg, tls_on_connect, extra=None):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        try:
            _serve(cfg, lsock, tls_on_connect)
        finally:
            os._exit(0)
    lsock.close()
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    yield smtpdir, port, extra
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def test_tls_client_certificate_and_sni(verify_server):
    import ssl
    d, port, pki = verify_server
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki["client"]), str(pki["client_key"]))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        c._host = "mx.sni.test"             # the SNI name smtplib sends
        c.starttls(context=ctx)
        c.ehlo("client.example")
        c.sendmail("a@b.example", ["c@d.example"], b"Subject: v\r\n\r\nx\r\n")
    ids = _spooled(d)
    h = (d / "spool" / "input" / f"{ids[0]}-H").read_text()
    assert "-tls_certificate_verified" in h
    # Certificate order, tainted, as Exim (GnuTLS) writes it; and the
    # certificates themselves, as PEM.
    assert "--tls_peerdn O=eximpy test,CN=client.test" in h
    assert "--tls_peercert -----BEGIN CERTIFICATE-----\\n" in h
    assert "\n-tls_ourcert -----BEGIN CERTIFICATE-----\\n" in h
    assert "--tls_sni mx.sni.test" in h
    log = (d / "log" / "mainlog").read_text()
    assert " CV=yes " in log and 'DN="O=eximpy test,CN=client.test"' in log
    # Exim writes SNI= unquoted (string_printing2); eximpy.log.format quotes
    # it at present -- reported to its owner.
    assert re.search(r' SNI="?mx\.sni\.test"? ', log)


def test_tls_without_client_certificate_is_unverified(verify_server):
    import ssl
    d, port, pki = verify_server
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        c.starttls(context=ctx)
        c.ehlo("client.example")
        c.sendmail("a@b.example", ["c@d.example"], b"Subject: v\r\n\r\nx\r\n")
    log = (d / "log" / "mainlog").read_text()
    assert " CV=no " in log


def _swaks(port: int, *args: str, data: bytes | None = None,
           timeout: float = 120) -> tuple[int, str]:
    import subprocess
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}",
                        "--from", "a@b.example", "--to", "c@d.example",
                        "--helo", "client.example", *args],
                       input=data, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("args", [
    [],                                          # plain
    ["--pipeline"],
    ["--tls"],                                   # STARTTLS
    ["--auth", "PLAIN", "--auth-user", "user", "--auth-password", "pass"],
    ["--auth", "LOGIN", "--auth-user", "user", "--auth-password", "pass"],
    ["--auth", "CRAM-MD5", "--auth-user", "user", "--auth-password", "pass"],
    ["--tls", "--auth", "PLAIN", "--auth-user", "user", "--auth-password",
     "pass"],
], ids=["plain", "pipeline", "tls", "plain-auth", "login-auth", "cram-md5",
        "tls-plain-auth"])
def test_swaks(server, args):
    d, port = server
    rc, out = _swaks(port, *args)
    assert rc == 0, out
    assert "250 OK id=" in out
    assert len(_spooled(d)) == 1


def test_swaks_tls_on_connect(tls_server):
    d, port = tls_server
    rc, out = _swaks(port, "--tlsc")
    assert rc == 0, out
    assert len(_spooled(d)) == 1


def test_swaks_bad_password(server):
    d, port = server
    rc, out = _swaks(port, "--auth", "PLAIN", "--auth-user", "user",
                     "--auth-password", "nope")
    assert rc != 0 and "535 Incorrect authentication data" in out
    assert _spooled(d) == []


def _swaks_sent_body(out: str) -> bytes:
    """The body swaks says it sent (" -> " lines after the header
    separator, up to the "." line)."""
    lines = [ln[4:] for ln in out.splitlines() if ln.startswith(" -> ")]
    start = lines.index("DATA") + 1
    end = len(lines) - 1 - lines[::-1].index(".")
    data = lines[start:end]
    body = data[data.index("") + 1:]
    return "".join(ln + "\n" for ln in body).encode()


def test_swaks_one_byte_body(server):
    """A body of one byte ("x"); swaks's template adds blank lines after it,
    and the spool must hold exactly what was sent."""
    d, port = server
    rc, out = _swaks(port, "--body", "x")
    assert rc == 0, out
    ids = _spooled(d)
    body = (d / "spool" / "input" / f"{ids[0]}-D").read_bytes()
    sent = _swaks_sent_body(out)
    assert sent.startswith(b"x\n")
    assert body.split(b"\n", 1)[1] == sent


@pytest.fixture
def big_server(smtpdir: Path):
    conf = write_conf(smtpdir, "acl_smtp_rcpt = accept")   # 50M default
    yield from _server_cfg(smtpdir, load_config(str(conf)), False)


def test_swaks_30mb_body(big_server):
    d, port, _ = big_server
    line = b"y" * 998 + b"\r\n"
    (d / "big").write_bytes(b"Subject: big\r\n\r\n" + line * 30_000)
    rc, out = _swaks(port, "--data", f"@{d / 'big'}", "--suppress-data",
                     timeout=300)
    assert rc == 0, out[-2000:]
    ids = _spooled(d)
    assert len(ids) == 1
    data = (d / "spool" / "input" / f"{ids[0]}-D").read_bytes()
    # swaks ends the data with CRLF before ".": one more empty line.
    assert data == f"{ids[0]}-D\n".encode() + (b"y" * 998 + b"\n") * 30_000 \
        + b"\n"


def test_openssl_s_client_starttls(server):
    import subprocess
    _d, port = server
    # One command, then EOF ignored: the session times out (2 s here).
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp",
                        "-connect", f"127.0.0.1:{port}", "-quiet",
                        "-ign_eof"],
                       input=b"EHLO x\r\n", capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    assert "250-test.example Hello x [127.0.0.1]" in out
    assert "STARTTLS" not in out.split("Hello x", 1)[1]
    assert "421 test.example: SMTP command timeout" in out


def _inetd_server(argv: list[str], env: dict | None = None):
    """Accept one connection at a time and run ``argv`` on it with the
    socket as stdin and stdout (inetd style)."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 2)
        try:
            while True:
                conn, _ = lsock.accept()
                if os.fork() == 0:
                    os.dup2(conn.fileno(), 0)
                    os.dup2(conn.fileno(), 1)
                    if env:
                        os.environ.update(env)
                    os.execv(argv[0], argv)
                conn.close()
        finally:
            os._exit(0)
    lsock.close()
    return pid, port


def _dialogue(port: int, lines: list[bytes]) -> list[str]:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    f = s.makefile("rb")
    out = []

    def reply() -> None:
        while True:
            ln = f.readline().decode().rstrip("\r\n")
            out.append(ln)
            if ln[3:4] != "-":
                return
    reply()
    for ln in lines:
        s.sendall(ln)
        reply()
    s.close()
    return out


def test_bs_from_inetd_matches_exim(smtpdir: Path):
    """-bs with a TCP socket as stdin is a remote session, for eximpy as for
    Exim: same replies (host address in EHLO, PIPECONNECT, sync checks)."""
    import sys as _sys
    from oracle import EXIM
    conf = write_conf(smtpdir, "acl_smtp_rcpt = accept")
    lines = [b"EHLO client.example\r\n", b"MAIL FROM:<a@b.example>\r\n",
             b"RCPT TO:<c@d.example>\r\n", b"DATA\r\n",
             b"Subject: inetd\r\n\r\nhello\r\n.\r\n", b"QUIT\r\n"]
    results = {}
    root = str(Path(__file__).resolve().parent.parent.parent)
    for who, argv, env in (
            ("exim", [EXIM or "/usr/sbin/exim", "-C", str(conf), "-bs"], None),
            ("eximpy", [_sys.executable, "-m", "eximpy", "-C", str(conf),
                        "-bs"], {"PYTHONPATH": root})):
        pid, port = _inetd_server(argv, env)
        try:
            time.sleep(0.3)
            out = _dialogue(port, lines)
        finally:
            os.killpg(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        results[who] = [re.sub(r"\d{4} \d\d:\d\d:\d\d [-+]\d{4}$", "<DATE>",
                               re.sub(r"id=\S+", "id=<ID>", ln))
                        for ln in out]
    assert results["eximpy"] == results["exim"]
    assert "250-test.example Hello client.example [127.0.0.1]" in \
        results["eximpy"]
