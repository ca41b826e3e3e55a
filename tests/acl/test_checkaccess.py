"""exim_checkaccess-style checks (eximpy.cli.host_check.checkaccess)
against Exim's own exim_checkaccess script with the same configuration."""
from __future__ import annotations

import io
import shutil
import subprocess

import pytest

from oracle import GOLDEN, ROOT

WORK = ROOT / "tests" / "_work" / "acl_checkaccess"
ACL = """\
r:
  deny   message = relay not permitted\\nask the postmaster
         !domains = example.org
         !hosts = 10.0.0.0/8
  deny   local_parts = bad
  defer  local_parts = later
         message = try later
  accept
"""
CASES = [("10.1.2.3", "x@foo.bar", []), ("192.0.2.1", "x@foo.bar", []),
         ("192.0.2.1", "info@example.org", []),
         ("192.0.2.1", "bad@example.org", ["-f", "a@b.c"]),
         ("192.0.2.1", "later@example.org", []), ("1.2.3", "x@y", [])]


@pytest.mark.parametrize("ip,addr,opts", CASES)
def test_checkaccess(ip, addr, opts):
    from eximpy.cli.host_check import checkaccess
    WORK.mkdir(parents=True, exist_ok=True)
    spool = WORK / "spool"
    (spool / "log").mkdir(parents=True, exist_ok=True)
    conf = WORK / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {spool}\n"
                    f"log_file_path = {spool}/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    "acl_smtp_rcpt = r\nbegin acl\n" + ACL)
    args = [ip, addr, "-C", str(conf)] + opts
    golden = GOLDEN / "acl" / f"checkaccess-{ip}-{addr}"
    script = shutil.which("exim_checkaccess")
    if script is None:                 # no Exim here: its stored answer
        want = golden.read_text()
    else:
        want = subprocess.run([script] + args, capture_output=True,
                              text=True, timeout=60).stdout
        if not golden.exists():
            golden.write_text(want)
        assert golden.read_text() == want, "exim_checkaccess changed"
    out = io.StringIO()
    checkaccess(args, out)
    assert out.getvalue() == want
