"""The seed's "DANE für Arme" ("Very Poor Man's DANE") transport,
verbatim but for the directory:

    remote_smtp:
        driver = smtp
        hosts_require_tls = dsearch;@ROOT@/emig.d/certs
        tls_verify_certificates = @ROOT@/emig.d/certs/$host

TLS is required for the MX hosts that have a file in the directory, and
that file is the trust anchor for the host's certificate (checked, but
-- as the talk's "Bitte?" hints -- only tried, since tls_verify_hosts is
unset).  Real Exim and eximpy deliver the same spooled message; the MX
comes from a loopback DNS server (tests/remote/adns.py) in a private
resolv.conf namespace, the SMTP server is the scripted one."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import adns  # noqa: E402
from _remote import WORK, resolv_wrap, run_both  # noqa: E402
from smtpserver import ScriptedServer, make_cert  # noqa: E402
from test_smtp_transport import MESSAGE  # noqa: E402

CONF = """\
primary_hostname = sender.example
qualify_domain = sender.example
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog

begin routers
  bounces:
    driver = redirect
    domains = sender.example
    data = :blackhole:

  remote:
    driver = dnslookup
    transport = remote_smtp

begin transports
    remote_smtp:
        driver = smtp
        hosts_require_tls = dsearch;@ROOT@/emig.d/certs
        tls_verify_certificates = @ROOT@/emig.d/certs/$host
        port = @PORT@

begin retry
  * * F,1h,10m
"""

CASES = {
    # name: (file for the host: "ca", "leaf", "other" or None, STARTTLS)
    "pmdane-ca": ("ca", True),
    "pmdane-wrong-anchor": ("other", True),
    "pmdane-no-starttls": ("ca", False),
    "pmdane-not-listed": (None, True),
    "pmdane-not-listed-no-tls": (None, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_poor_mans_dane(case):
    which, starttls = CASES[case]
    d = WORK / f"{case}-certs"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    cert, key, ca = make_cert(str(d), names=("mx.emig.test",))
    od = d / "other"
    od.mkdir()
    _c, _k, other_ca = make_cert(str(od), names=("mx.emig.test",))
    exts = ("PIPELINING", "SIZE 0") + (("STARTTLS",) if starttls else ())
    srv = ScriptedServer(extensions=exts, tls_cert=(cert, key)).start()
    files = {}
    if which is not None:
        src = {"ca": ca, "other": other_ca}[which]
        files["emig.d/certs/mx.emig.test"] = Path(src).read_text()
    else:
        files["emig.d/certs/some.other.host"] = Path(ca).read_text()
    dns, resolv = adns.start(["mx.emig.test. 60 IN A 127.0.0.2",
                              "emig.test. 60 IN MX 10 mx.emig.test."],
                             d / "dns", "emig.test.")
    try:
        res = run_both(case, CONF, [(["-f", "sender@sender.example",
                                      "a@emig.test", "b@emig.test"], MESSAGE)],
                       srv, files=files, wrap=resolv_wrap(resolv))
    finally:
        adns.stop(dns)
        srv.stop()
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]
