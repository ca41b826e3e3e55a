"""STARTTLS on the client side: real Exim (GnuTLS) and eximpy (OpenSSL)
deliver the same spooled message to a scripted server that offers
STARTTLS with a certificate from a test CA; the log lines (cipher names
aside) and the server's transcript must be the same."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _remote import WORK, run_both  # noqa: E402
from smtpserver import ScriptedServer, make_cert  # noqa: E402
from test_smtp_transport import CONF, MESSAGE, RCPTS  # noqa: E402

EXT = ("PIPELINING", "STARTTLS", "SIZE 0")

CASES = {
    # name: (transport options, server kwargs extra, cert names, cert ips)
    "tls-untrusted": ("", {}, ("test.example",), ()),
    "tls-verified": ("    tls_verify_certificates = @CA@\n", {},
                     ("test.example",), ("127.0.0.2",)),
    "tls-verified-wrong-name": ("    tls_verify_certificates = @CA@\n", {},
                                ("other.example",), ()),
    "tls-verify-required-fails": ("    tls_verify_hosts = *\n", {},
                                  ("test.example",), ("127.0.0.2",)),
    "tls-verify-required-ok": ("    tls_verify_hosts = *\n"
                               "    tls_verify_certificates = @CA@\n", {},
                               ("test.example",), ("127.0.0.2",)),
    "tls-required-fails": ("    tls_verify_hosts = *\n"
                           "    hosts_require_tls = *\n", {},
                           ("test.example",), ("127.0.0.2",)),
    "tls-avoid": ("    hosts_avoid_tls = *\n", {}, ("test.example",), ()),
    "tls-starttls-454": ("", {"starttls_reply": "454 TLS not available"},
                         ("test.example",), ()),
    "tls-starttls-454-required": ("    hosts_require_tls = *\n",
                                  {"starttls_reply": "454 TLS not available"},
                                  ("test.example",), ()),
    "tls-smtps": ("    protocol = smtps\n"
                  "    tls_verify_certificates = @CA@\n",
                  {"tls_on_connect": True,
                   "extensions": ("PIPELINING", "SIZE 0")},
                  ("test.example",), ("127.0.0.2",)),
    "tls-smtps-no-tls": ("    protocol = smtps\n", {
        "extensions": ("PIPELINING", "SIZE 0")}, ("test.example",), ()),
    "tls-auth": ("    hosts_require_auth = *\n"
                 "    tls_verify_certificates = @CA@\n",
                 {"extensions": EXT + ("AUTH PLAIN",),
                  "users": {"user1": "secret1"}},
                 ("test.example",), ("127.0.0.2",)),
}

AUTH = """\
  plain:
    driver = plaintext
    public_name = PLAIN
    client_send = ^user1^secret1
    client_set_id = user1
"""


@pytest.mark.parametrize("case", sorted(CASES))
def test_tls(case):
    topts, extra, names, ips = CASES[case]
    d = WORK / f"{case}-certs"
    d.mkdir(parents=True, exist_ok=True)
    cert, key, ca = make_cert(str(d), names=names, ips=ips)
    kw = {"extensions": EXT, "tls_cert": (cert, key)}
    kw.update(extra)
    srv = ScriptedServer(**kw).start()
    try:
        conf = (CONF.replace("@PORTLINE@", "    port = @PORT@").replace("@TRANSPORT@", topts.replace("@CA@", ca))
                .replace("@MAIN@", "").replace("@HOSTS@", "127.0.0.2")
                .replace("@AUTH@", AUTH if "auth" in case else ""))
        res = run_both(case, conf,
                       [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    finally:
        srv.stop()
    assert res["eximpy_log"] == res["exim_log"]
    if case == "tls-smtps-no-tls":
        # the server saw each client's TLS hello as "commands": GnuTLS's
        # and OpenSSL's differ; the number of connections must not
        assert len(res["eximpy_cmds"]) == len(res["exim_cmds"])
    else:
        assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]


CLIENT_CERT_SERVER = """\
primary_hostname = server.example
spool_directory = @SRV@/spool
log_file_path = @SRV@/log/%slog
queue_only = true
acl_smtp_rcpt = accept
tls_advertise_hosts = *
tls_certificate = @CERT@
tls_privatekey = @KEY@
tls_verify_hosts = *
tls_verify_certificates = @CA@
log_selector = +received_recipients +tls_peerdn
"""


def test_client_certificate_with_exim_server():
    """tls_certificate / tls_privatekey: real Exim as the server (exim -bs
    per connection) demands and verifies a client certificate; what it
    logged for each client (CV=yes, the DN) must be the same."""
    from _remote import EXIM
    from inetd import InetdExim
    from test_seed_smarthost import _server_conf, _server_view
    work = WORK / "tls-client-cert"
    d = work / "certs"
    d.mkdir(parents=True, exist_ok=True)
    scert, skey, ca = make_cert(str(d), names=("server.example",))
    cd = work / "client-certs"
    cd.mkdir(parents=True, exist_ok=True)
    # the client's certificate comes from the same CA as the server's
    import shutil
    from cryptography import x509
    ccert, ckey, ca2 = make_cert(str(cd), cn="client.example",
                                 names=("client.example",))
    both = d / "cas.pem"
    both.write_text(Path(ca).read_text() + Path(ca2).read_text())
    both.chmod(0o644)
    srv_ex, srv_py = work / "srv-exim", work / "srv-eximpy"
    confs = []
    for s in (srv_ex, srv_py):
        _server_conf(s)
        (s / "server.conf").write_text(
            CLIENT_CERT_SERVER.replace("@SRV@", str(s)).replace("@CERT@", scert)
            .replace("@KEY@", skey).replace("@CA@", str(both)))
        confs.append(s / "server.conf")
    del shutil, x509
    server = InetdExim(EXIM, confs[0]).start()

    def between():
        server.wait()
        server.conf = confs[1]
    topts = (f"    tls_certificate = {ccert}\n    tls_privatekey = {ckey}\n"
             f"    tls_verify_certificates = {both}\n"
             "    tls_verify_cert_hostnames =\n")
    conf = (CONF.replace("@PORTLINE@", "    port = @PORT@").replace("@TRANSPORT@", topts).replace("@MAIN@", "")
            .replace("@HOSTS@", "127.0.0.2").replace("@AUTH@", ""))
    try:
        res = run_both("tls-client-cert", conf,
                       [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)],
                       server, between=between)
        server.wait()
    finally:
        server.stop()
    assert res["eximpy_log"] == res["exim_log"]
    view_ex, view_py = _server_view(srv_ex), _server_view(srv_py)
    assert any("CV=yes" in v and "DN=" in v for v in view_ex), view_ex
    assert view_py == view_ex
