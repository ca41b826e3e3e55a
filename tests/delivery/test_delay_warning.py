"""Delay warnings (delay_warning = 1s:1h) against real Exim: the warning
message's headers and text, and the warning count kept in -H."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "delay_warning"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
delay_warning = 1s:1h
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
r:
  driver = accept
  local_parts = user : stuck : stuck2
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

MESSAGES = [
    (["-f", "s@remote.example", "user", "stuck"], "Subject: slow\n\nbody\n"),
    (["-f", "s2@remote.example", "stuck", "stuck2"], "Precedence: bulk\n\nbulk\n"),
    (["-f", "s3@remote.example", "stuck", "stuck2"], "\nno headers\n"),
]


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, MESSAGES,
                    {"mail/stuck": None, "mail/stuck2": None}, pause=2)


def _warnings(root: Path, parents: list[str]) -> list[tuple[list[str], str]]:
    out = []
    for f in sorted((root / "spool" / "input").glob("*-H")):
        mid = f.name[:-2]
        if mid in parents:
            continue
        text = f.read_text()
        hdrs = [re.sub(r"\d+-eximdsn-\d+", "B", ln[5:])
                for ln in re.findall(r"(?m)^\d{3}[A-Z* ] [^\n]*", text)
                if not ln[5:].startswith(("Received:", "Message-Id:", "Date:"))]
        body = (root / "spool" / "input" / f"{mid}-D").read_text().split("\n", 1)[1]
        out.append((hdrs, re.sub(r"\d+-eximdsn-\d+", "B", body)))
    return sorted(out)


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_warning_messages(runs):
    ex, py, ids = runs
    wx, wp = _warnings(ex, ids), _warnings(py, ids)
    assert len(wx) == 2           # not for the Precedence: bulk message
    assert wp == wx


def test_warning_count(runs):
    ex, py, ids = runs
    for mid in ids:
        hx = (ex / "spool" / "input" / f"{mid}-H").read_text().splitlines()
        hp = (py / "spool" / "input" / f"{mid}-H").read_text().splitlines()
        assert hp[3].split()[1] == hx[3].split()[1]
