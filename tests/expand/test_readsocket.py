"""${readsocket} against real Unix and TCP servers, compared with Exim."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.expand.conftest import WORK, PORTS
from tests.expand.test_differential import compare


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            c, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=_handle, args=(c,), daemon=True).start()


def _handle(c: socket.socket) -> None:
    with c:
        data = b""
        c.settimeout(10)
        try:
            while b"\n" not in data:
                b = c.recv(1024)
                if not b:
                    break
                data += b
        except OSError:
            return
        if data.startswith(b"sleep"):
            time.sleep(3)
        try:
            c.sendall(b"ECHO:" + data.strip().upper() + b"\nline2\n")
        except OSError:
            pass


@pytest.fixture(scope="module")
def servers(work):
    path = str(WORK / "sock")
    if os.path.exists(path):
        os.unlink(path)
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(path)
    u.listen(8)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 0))
    PORTS["@P@"] = t.getsockname()[1]
    t.listen(8)
    for s in (u, t):
        threading.Thread(target=_serve, args=(s,), daemon=True).start()
    yield
    u.close()
    t.close()


CASES = [
    "${readsocket{@W@/sock}{hello\\n}}", "${readsocket{@W@/sock}{hello\\n}{5s}{|}}",
    "${readsocket{@W@/sock}{hello\\n}{5s}{}}", "${readsocket{@W@/sock}{}}",
    "${readsocket{@W@/sock}{hi}}", "${readsocket{@W@/sock}{hi\\n}{5s:shutdown=no}}",
    "${readsocket{inet:127.0.0.1:@P@}{tcp\\n}}", "${readsocket{inet:localhost:@P@}{x\\n}{2s}}",
    "${readsocket{inet:127.0.0.1:@P@}{sleep\\n}{1s}{}{timed out}}",
    "${readsocket{@W@/sock}{sleep\\n}{1s}}", "${readsocket{@W@/nosock}{x}{1s}{}{fallback $value}}",
    "${readsocket{inet:127.0.0.1:1}{x}{1s}{}{refused}}",
    "${readsocket{inet:127.0.0.1:xyzzy}{x}}", "${readsocket{@W@/sock}{a\\n}{x}}",
    "${uc:${readsocket{@W@/sock}{nested\\n}}}",
    "${if eq{${readsocket{@W@/sock}{q\\n}}}{ECHO:Q\\nline2\\n}{same}{different}}",
]


def test_readsocket(servers):
    compare("readsocket", CASES)


@pytest.fixture(scope="module")
def tls_server(work):
    """A TLS echo server on 127.0.0.1:@Q@ with a throw-away certificate."""
    import datetime
    import ssl
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cf, kf = WORK / "tls.crt", WORK / "tls.key"
    cf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kf.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(str(cf), str(kf))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 0))
    PORTS["@Q@"] = t.getsockname()[1]
    t.listen(8)

    def serve():
        while True:
            try:
                c, _ = t.accept()
            except OSError:
                return
            try:
                s = sctx.wrap_socket(c, server_side=True)
                _handle(s)
            except OSError:
                c.close()
    threading.Thread(target=serve, daemon=True).start()
    yield
    t.close()


def test_readsocket_tls(tls_server, servers):
    """tls=yes (not compared with Exim: Exim 4.96 crashes (SIGSEGV) on a TLS
    readsocket in -be mode)."""
    from eximpy.expand import ExpandContext
    from eximpy.expand import expand_string as _x
    from tests.expand.conftest import subst

    def expand_string(text, ctx):
        return _x(subst(text), ctx)
    ctx = ExpandContext()
    assert expand_string("${readsocket{inet:127.0.0.1:@Q@}{secure\\n}{5s:tls=yes}}",
                         ctx) == "ECHO:SECURE\nline2\n"
    assert expand_string("${readsocket{inet:localhost:@Q@}{x\\n}{5s:tls=yes}{|}}",
                         ctx) == "ECHO:X|line2|"
    assert expand_string("${readsocket{inet:127.0.0.1:@P@}{plain\\n}{2s:tls=yes}{}"
                         "{no tls there}}", ctx) == "no tls there"
