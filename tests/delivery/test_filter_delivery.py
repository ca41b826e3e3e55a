"""Exim filter files at delivery time (headers visible to the filter),
compared with real Exim: which mailboxes get the messages, and the log."""
from __future__ import annotations

import pytest

from _pair import ROOT, log_lines, mbox_text, run_pair

WORK = ROOT / "tests" / "_work" / "filter_delivery"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
filt:
  driver = redirect
  local_parts = user
  file = @ROOT@/user.filter
  allow_filter
  user = nobody
  file_transport = file
  pipe_transport = pipe
local:
  driver = accept
  local_parts = user : urgent : copy : big
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
file:
  driver = appendfile
  user = nobody
pipe:
  driver = pipe
  user = nobody
begin retry
* * F,1h,15m
"""

FILTER = """\
# Exim filter
if $h_subject: contains "URGENT" then
  deliver urgent@example.org
elif $message_size is above 2k then
  deliver big@example.org
  save @ROOT@/mail/bigsaved
elif $h_from: matches "^boss@" then
  pipe "/usr/bin/tee -a @ROOT@/mail/piped-$local_part"
endif
unseen deliver copy@example.org
"""

MESSAGES = [
    (["-f", "a@example.org", "user"], "Subject: this is urgent\n\nbody\n"),
    (["-f", "b@example.org", "user"], "Subject: long\n\n" + "x" * 3000 + "\n"),
    (["-f", "c@example.org", "user"], "Subject: normal\nFrom: boss@example.org\n\nhi\n"),
    (["-f", "d@example.org", "user"], "Subject: plain\n\nnothing special\n"),
]


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, MESSAGES, {"user.filter": FILTER})


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


@pytest.mark.parametrize("box", ["user", "urgent", "copy", "big", "bigsaved",
                                 "piped-user"])
def test_mailboxes(runs, box):
    ex, py, _ = runs
    assert mbox_text(py / "mail" / box) == mbox_text(ex / "mail" / box)
