"""Maildir options against real Exim: maildir_tag, mode, directory_mode,
create_directory, a directory (non-Maildir) delivery and message_prefix /
message_suffix overrides in mbox."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, mbox_text, run_pair

WORK = ROOT / "tests" / "_work" / "maildir_options"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = tagged : nocreate : framed
  transport = t_$local_part_data
begin transports
t_tagged:
  driver = appendfile
  directory = @ROOT@/mail/tagged/Maildir
  maildir_format
  maildir_tag = ,S=$message_size
  mode = 0640
  directory_mode = 0750
  user = nobody
t_nocreate:
  driver = appendfile
  directory = @ROOT@/mail/missing/Maildir
  maildir_format
  create_directory = false
  user = nobody
t_framed:
  driver = appendfile
  file = @ROOT@/mail/framed
  message_prefix = "=== start for $local_part\\n"
  message_suffix = "=== end\\n"
  user = nobody
begin retry
* * F,1h,15m
"""


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [(["-f", "s@example.org", "tagged", "nocreate",
                                   "framed"], "Subject: md\n\nbody\nFrom x\n")])


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_maildir_name_tag_and_modes(runs):
    ex, py, _ = runs

    def view(root: Path):
        new = root / "mail" / "tagged" / "Maildir" / "new"
        names = os.listdir(new)
        out = []
        for n in names:
            st = os.stat(new / n)
            out.append((re.sub(r"^\d+\.M\d+P\d+", "T.MuPp", n),
                        stat.S_IMODE(st.st_mode), (new / n).read_bytes()))
        dmode = stat.S_IMODE(os.stat(root / "mail" / "tagged" / "Maildir").st_mode)
        return out, dmode
    assert view(py) == view(ex)


def test_prefix_suffix(runs):
    ex, py, _ = runs
    assert mbox_text(py / "mail" / "framed") == mbox_text(ex / "mail" / "framed")
