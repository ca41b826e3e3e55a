"""MX routing into the smtp transport (dnslookup router, MX records from
a loopback DNS server in a private resolv.conf namespace): a refusing
preferred MX and a working secondary, all refusing, and hosts_max_try = 1
with its jump to the next MX preference; log lines, transcripts and retry records (keys
with host names, more_errno 'M') are compared with real Exim.  (A host
with several addresses is left out: the order of its addresses is the
router's business, and eximpy's dnslookup did not keep DNS order.)"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import adns  # noqa: E402
from _remote import WORK, resolv_wrap, run_both  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402
from test_smtp_transport import MESSAGE, retry_records  # noqa: E402

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

  dnslookup:
    driver = dnslookup
    transport = remote_smtp

begin transports
  remote_smtp:
    driver = smtp
    port = @PORT@
@TRANSPORT@

begin retry
  * * F,1h,10m
"""

CASES = {
    "mx-primary-refuses": (["mx1.mx.test. 60 IN A 127.0.0.3",
                            "mx2.mx.test. 60 IN A 127.0.0.2",
                            "mx.test. 60 IN MX 10 mx1.mx.test.",
                            "mx.test. 60 IN MX 20 mx2.mx.test."], ""),
    "mx-all-refuse": (["mx1.mx.test. 60 IN A 127.0.0.3",
                       "mx2.mx.test. 60 IN A 127.0.0.4",
                       "mx.test. 60 IN MX 10 mx1.mx.test.",
                       "mx.test. 60 IN MX 20 mx2.mx.test."], ""),
    "mx-max-try-1": (["mx1.mx.test. 60 IN A 127.0.0.3",
                      "mx2.mx.test. 60 IN A 127.0.0.2",
                      "mx.test. 60 IN MX 10 mx1.mx.test.",
                      "mx.test. 60 IN MX 20 mx2.mx.test."],
                     "    hosts_max_try = 1\n"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mx(case):
    records, topts = CASES[case]
    srv = ScriptedServer().start()
    dns, resolv = adns.start(records, WORK / f"{case}-dns", "mx.test.",
                             secure=False)
    try:
        res = run_both(case, CONF.replace("@TRANSPORT@", topts),
                       [(["-f", "sender@sender.example", "a@mx.test",
                          "b@mx.test"], MESSAGE)], srv,
                       wrap=resolv_wrap(resolv))
    finally:
        adns.stop(dns)
        srv.stop()
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert retry_records(res["eximpy_root"], "py") == \
        retry_records(res["exim_root"], "ex")
