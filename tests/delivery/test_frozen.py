"""Frozen bounces: a failing <> message is frozen, and a later delivery
attempt after timeout_frozen_after cancels it, as real Exim's queue run
does ("cancelled by timeout_frozen_after")."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from _pair import DELIVER_MAIN, ROOT, log_lines, run_pair
from oracle import EXIM

WORK = ROOT / "tests" / "_work" / "frozen"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
timeout_frozen_after = 1s
begin routers
r:
  driver = redirect
  local_parts = never
  data = :fail: no
begin retry
* * F,1h,15m
"""


@pytest.fixture(scope="module")
def runs():
    ex, py, ids = run_pair(WORK, CONF, [(["-f", "<>", "nosuch"], "Subject: x\n\nb\n")])
    time.sleep(2)
    subprocess.run([EXIM, "-C", str(ex / "exim.conf"), "-q"], capture_output=True)
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(py / "exim.conf"),
                    "-Mc"] + ids, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return ex, py, ids


def test_frozen_then_cancelled(runs):
    ex, py, ids = runs
    lx = [ln for ln in log_lines(ex, ids) if "queue run" not in ln]
    assert log_lines(py, ids) == lx
    assert any("cancelled by timeout_frozen_after" in ln for ln in lx)
    assert not list((py / "spool" / "input").glob("*-H"))
