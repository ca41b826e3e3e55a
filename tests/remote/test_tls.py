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
        conf = (CONF.replace("@TRANSPORT@", topts.replace("@CA@", ca))
                .replace("@MAIN@", "").replace("@HOSTS@", "127.0.0.2")
                .replace("@AUTH@", AUTH if "auth" in case else ""))
        res = run_both(case, conf,
                       [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    finally:
        srv.stop()
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]
