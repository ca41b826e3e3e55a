"""errors_reply_to in the success DSN and the failure report against real
Exim (Reply-To: placed where Exim writes it); the messages come in over
`-bs` with DSN requests, and the notifications go to a remote sender, so
they stay queued for comparison."""
from __future__ import annotations

import re
from pathlib import Path

from _pair import ROOT, run_pair

WORK = ROOT / "tests" / "_work" / "bounce_reply_to"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
dsn_advertise_hosts = *
acl_smtp_rcpt = acc
errors_reply_to = Postmaster <pm@example.org>
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
  local_parts = user
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

SMTP = ("EHLO x\r\nMAIL FROM:<s@remote.example>\r\n"
        "RCPT TO:<user@example.org> NOTIFY=SUCCESS\r\n"
        "RCPT TO:<nosuch@example.org>\r\n"
        "DATA\r\nSubject: reply-to test\r\n\r\nbody\r\n.\r\nQUIT\r\n")


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
        body = re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}", "DATE", body)
        out.append((hdrs, body))
    return sorted(out)


def test_reply_to_in_dsn_and_bounce():
    ex, py, ids = run_pair(WORK, CONF, [(["-bs"], SMTP)])
    rx, rp = _reports(ex, ids), _reports(py, ids)
    assert len(rx) == 2
    assert all("Reply-To: Postmaster <pm@example.org>" in h for h, _ in rx)
    assert rp == rx
