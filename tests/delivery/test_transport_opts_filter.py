"""transport_filter failures against real Exim 4.96 delivering the same
spool: a filter that exits non-zero, one that cannot be executed, one that
outlives transport_filter_timeout, for appendfile and pipe (the deferral
texts, errno values, the panic log, the mailbox left unchanged); and the
order of check_string escaping and the filter."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "transport_opts_filter"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
queue_only = true
begin routers
r:
  driver = accept
  local_parts = ffail : fnoexec : ftimeout : pfail : fok : fesc
  transport = t_$local_part_data
  user = nobody
begin transports
t_ffail:
  driver = appendfile
  file = @ROOT@/mail/ffail
  transport_filter = /bin/sh -c 'cat > /dev/null; exit 3'
t_fnoexec:
  driver = appendfile
  file = @ROOT@/mail/fnoexec
  transport_filter = /nonexistent/filter
t_ftimeout:
  driver = appendfile
  file = @ROOT@/mail/ftimeout
  transport_filter = /bin/sleep 5
  transport_filter_timeout = 1s
t_pfail:
  driver = pipe
  command = /bin/sh -c 'cat > @ROOT@/mail/pfail'
  transport_filter = /bin/sh -c 'cat > /dev/null; exit 3'
t_fesc:
  driver = appendfile
  file = @ROOT@/mail/fesc
  transport_filter = /bin/sed s/^Xline/From-line/
  check_string = From-
  escape_string = >From-
t_fok:
  driver = appendfile
  file = @ROOT@/mail/fok
  transport_filter = /bin/sed s/body/BODY/
begin retry
* * F,1h,15m
"""


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [(["-f", "s@example.org", "ffail", "fnoexec",
                                   "ftimeout", "pfail", "fok", "fesc"],
                                  "Subject: filt\n\nbody\nXline 1\n"
                                  "From-here\n")])


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def _panic(root: Path, ids: list[str]) -> list[str]:
    p = root / "log" / "paniclog"
    if not p.exists():
        return []
    return [re.sub(r"^\S+ \S+ ", "", ln).replace(str(root), "@ROOT@")
            for ln in p.read_text().splitlines() if ln[20:36] in ids]


def test_paniclog(runs):
    ex, py, ids = runs
    assert _panic(py, ids) == _panic(ex, ids)


@pytest.mark.parametrize("name", ["ffail", "fnoexec", "ftimeout", "pfail", "fok",
                                  "fesc"])
def test_files(runs, name):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        return re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", p.read_text())
    assert view(py) == view(ex)
