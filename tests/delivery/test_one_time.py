"""one_time on a redirect router: a generated address that defers becomes
a recipient in its own right (with its parent's number) and the parent is
marked delivered -- the -H files must be the same as real Exim's, and a
second attempt delivers it as a top-level address."""
from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _pair import DELIVER_MAIN, ROOT, log_lines, run_pair
from oracle import EXIM

WORK = ROOT / "tests" / "_work" / "one_time"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
list:
  driver = redirect
  local_parts = list
  data = ok, stuck
  one_time
r:
  driver = accept
  local_parts = ok : stuck
  transport = t
begin transports
t:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
begin retry
* * F,1h,15m
"""


def _envelope(root: Path, mid: str) -> list[str]:
    text = (root / "spool" / "input" / f"{mid}-H").read_text()
    lines = text.splitlines()
    start = next(k for k, ln in enumerate(lines)
                 if ln == "XX" or re.match(r"^[NY][NY] ", ln))
    end = lines.index("", start)
    return lines[start:end]


@pytest.fixture(scope="module")
def runs():
    ex, py, ids = run_pair(WORK, CONF, [(["-f", "s@remote.invalid", "list", "other"],
                                         "Subject: ot\n\nbody\n")],
                           {"mail/stuck": None})
    first = (_envelope(ex, ids[0]), _envelope(py, ids[0]),
             log_lines(ex, ids), log_lines(py, ids))
    nobody = pwd.getpwnam("nobody")
    for root in (ex, py):
        os.chown(root / "mail" / "stuck", nobody.pw_uid, nobody.pw_gid)
    subprocess.run([EXIM, "-C", str(ex / "exim.conf"), "-M", ids[0]],
                   capture_output=True)
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(py / "exim.conf"),
                    "-M", ids[0]], capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return first, (log_lines(ex, ids), log_lines(py, ids))


def test_first_attempt_splits_the_recipient(runs):
    (hx, hp, lx, lp), _ = runs
    assert hp == hx
    assert lp == lx


def test_second_attempt_delivers_it(runs):
    _, (lx, lp) = runs
    assert lp == lx
    assert lx[-1].endswith("Completed")
