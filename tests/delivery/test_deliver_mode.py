"""-M edge cases against real Exim: a message not in the queue and a
message locked by another process (both only logged, exit status 0)."""
from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys

from _pair import DELIVER_MAIN, ROOT, prepare
from oracle import EXIM

WORK = ROOT / "tests" / "_work" / "deliver_mode"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


def _tail(root, off):
    with open(root / "log" / "mainlog", "rb") as f:
        f.seek(off)
        return [re.sub(r"^\S+ \S+ ", "", ln) for ln in f.read().decode().splitlines()]


def test_missing_and_locked():
    assert EXIM is not None
    results = []
    for side in ("ex", "py"):
        root = WORK / side
        conf = prepare(root, CONF, {})
        p = subprocess.run([EXIM, "-C", str(conf), "-odq", "x"],
                           input=b"Subject: m\n\nb\n", capture_output=True)
        assert p.returncode == 0
        mid = next(f.name[:-2] for f in (root / "spool" / "input").glob("*-H"))
        off = (root / "log" / "mainlog").stat().st_size
        if side == "ex":
            cmd = [EXIM, "-C", str(conf), "-M"]
        else:
            cmd = [sys.executable, str(DELIVER_MAIN), "-C", str(conf), "-M"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        r1 = subprocess.run(cmd + ["1xWE6d-0004Ib-0Z"], capture_output=True, env=env)
        fd = os.open(root / "spool" / "input" / f"{mid}-D", os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX, len(mid) + 3, 0, 0)
        try:
            r2 = subprocess.run(cmd + [mid], capture_output=True, env=env)
        finally:
            os.close(fd)
        lines = [ln.replace(mid, "ID") for ln in _tail(root, off)]
        results.append(((r1.returncode, r1.stdout, r1.stderr),
                        (r2.returncode, r2.stdout, r2.stderr), lines))
    assert results[1] == results[0]
