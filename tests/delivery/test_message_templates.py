"""bounce_message_file and warn_message_file templates against real Exim."""
from __future__ import annotations

import pytest

from _pair import ROOT, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "message_templates"

BOUNCE = """\
Subject: Undeliverable: $h_subject:
X-Custom: for $bounce_recipient
****
Sorry, your message ($message_exim_id) could not be delivered.
Addresses:
****
Output from pipes:
****
--- copy follows ---
****
****
"""
WARN = """\
Subject: Delayed ($warn_message_delay) for $warn_message_recipients
****
Still trying after $warn_message_delay.
Pending:
****
We keep trying.
"""

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
bounce_message_file = @ROOT@/bm.txt
warn_message_file = @ROOT@/wm.txt
delay_warning = 1s:1h
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
r:
  driver = accept
  local_parts = stuck
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


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF,
                    [(["-f", "s@remote.example", "nosuch", "stuck"],
                      "Subject: hello\n\nbody\n")],
                    {"bm.txt": BOUNCE, "wm.txt": WARN, "mail/stuck": None},
                    pause=2)


def test_bounce_and_warning_from_templates(runs):
    ex, py, ids = runs
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(rx) == 2
    assert rp == rx
