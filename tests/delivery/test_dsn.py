"""Delivery status notifications against real Exim: a success DSN for
NOTIFY=SUCCESS, and the failure report honouring ENVID, ORCPT, RET=HDRS
and NOTIFY=NEVER.  Messages come in over `-bs` with the DSN extension;
notifications go to a remote sender, so they stay queued for comparison."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "dsn"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
dsn_advertise_hosts = *
acl_smtp_rcpt = acc
begin acl
acc:
  accept
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
r:
  driver = accept
  local_parts = user : user2
  transport = t
begin transports
remote_smtp:
  driver = smtp
t:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
begin retry
* * F,1h,15m
"""

SUCCESS = ("EHLO x\r\nMAIL FROM:<s@remote.example> RET=HDRS ENVID=abc123\r\n"
           "RCPT TO:<user@example.org> NOTIFY=SUCCESS ORCPT=rfc822;User@Example.org\r\n"
           "RCPT TO:<user2@example.org> NOTIFY=SUCCESS,FAILURE\r\n"
           "DATA\r\nSubject: dsn test\r\n\r\nbody\r\n.\r\nQUIT\r\n")
FAILURE = ("EHLO x\r\nMAIL FROM:<t@remote.example> RET=HDRS ENVID=env-2\r\n"
           "RCPT TO:<nosuch@example.org> NOTIFY=FAILURE ORCPT=rfc822;NoSuch@example.org\r\n"
           "RCPT TO:<never@example.org> NOTIFY=NEVER\r\n"
           "RCPT TO:<user@example.org>\r\n"
           "DATA\r\nSubject: dsn failure\r\n\r\nsecret body\r\n.\r\nQUIT\r\n")


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [(["-bs"], SUCCESS), (["-bs"], FAILURE)])


def _reports(root: Path, parents: list[str]) -> list[tuple[list[str], str]]:
    out = []
    for f in sorted((root / "spool" / "input").glob("*-H")):
        mid = f.name[:-2]
        if mid in parents:
            continue
        text = f.read_text()
        hdrs = [re.sub(r"\d+-eximdsn-\d+", "B", ln[5:])
                for ln in re.findall(r"(?m)^\d{3}[A-Z* ] [^\n]*", text)
                if not ln[5:].startswith(("Received:", "Message-Id:", "Date:",
                                          "References:"))]
        body = (root / "spool" / "input" / f"{mid}-D").read_text().split("\n", 1)[1]
        body = re.sub(r"\d+-eximdsn-\d+", "B", body)
        body = re.sub(r"(?m)^\tid \S+;$", "\tid ID;", body)
        out.append((hdrs, body))
    return sorted(out)


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_success_dsn_and_failure_report(runs):
    ex, py, ids = runs
    rx, rp = _reports(ex, ids), _reports(py, ids)
    assert len(rx) == 2          # one success DSN, one bounce (not for NEVER)
    assert rp == rx
