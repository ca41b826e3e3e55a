"""max_parallel (generic transport option) against real Exim 4.96: two
messages delivered at the same time by two -M processes through a pipe
transport with max_parallel = 1 -- one delivers, the other defers with
"concurrency limit reached for transport"."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from _pair import DELIVER_MAIN, ROOT, prepare
from oracle import EXIM

WORK = ROOT / "tests" / "_work" / "transport_opts_parallel"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = slow
  transport = t_slow
  user = nobody
begin transports
t_slow:
  driver = pipe
  max_parallel = 1
  command = /bin/sleep 3
begin retry
* * F,1h,15m
"""


def _lines(root) -> list[str]:
    out = []
    for ln in (root / "log" / "mainlog").read_text().splitlines():
        ln = re.sub(r"^\S+ \S+ \S+ ", "", ln)
        if not ln.startswith("<= ") and ln != "Completed":
            out.append(ln)
    return sorted(out)


def test_max_parallel():
    ex, py = WORK / "exim", WORK / "eximpy"
    cex = prepare(ex, CONF, {})
    cpy = prepare(py, CONF, {})
    for _ in range(2):
        p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", "s@example.org",
                            "slow"], input=b"Subject: p\n\nbody\n",
                           capture_output=True)
        assert p.returncode == 0, p.stderr
    ids = sorted(f.name[:-2] for f in (ex / "spool" / "input").glob("*-H"))
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, fs in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in fs:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv in ([EXIM, "-C", str(cex)],
                 [sys.executable, str(DELIVER_MAIN), "-C", str(cpy)]):
        procs = []
        for mid in ids:
            procs.append(subprocess.Popen(argv + ["-M", mid], env=env,
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            time.sleep(1)
        for p in procs:
            p.wait(30)
    assert _lines(py) == _lines(ex)
