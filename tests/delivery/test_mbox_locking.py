"""mbox locking against other lockers, compared with real Exim.

A mutt-style dot-lock file (<mbox>.lock created with O_EXCL), an fcntl
lock and an flock lock (with use_flock_lock) are held by a separate
process; both Exim and eximpy must defer with the same log line, and
deliver once the locks are gone.  (Debian's dotlockfile cannot create
links in this sandbox, so the dot-lock is made the way mutt makes it.)
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oracle import EXIM

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "mbox_locking"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = dl : fc : fl
  transport = ${if eq{$local_part}{fl}{flk}{mbox}}
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
  lock_retries = 1
  lock_interval = 1s
flk:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
  lock_retries = 1
  lock_interval = 1s
  use_flock_lock
begin retry
* * F,1h,15m
"""

LOCKER = """\
import fcntl, os, sys, time
d = sys.argv[1]
fd = os.open(d + '/dl.lock', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.write(fd, b'%d\\n' % os.getpid()); os.close(fd)
a = os.open(d + '/fc', os.O_RDWR); fcntl.lockf(a, fcntl.LOCK_EX)
b = os.open(d + '/fl', os.O_RDWR); fcntl.flock(b, fcntl.LOCK_EX)
print('locked', flush=True)
sys.stdin.read()
os.unlink(d + '/dl.lock')
"""


def _setup(root: Path) -> tuple[Path, str]:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    nobody = pwd.getpwnam("nobody")
    os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
    for box in ("dl", "fc", "fl"):
        (root / "mail" / box).write_text("")
        os.chown(root / "mail" / box, nobody.pw_uid, nobody.pw_gid)
    conf = root / "exim.conf"
    conf.write_text(CONF.replace("@ROOT@", str(root)))
    p = subprocess.run([EXIM, "-C", str(conf), "-odq", "dl", "fc", "fl"],
                       input=b"Subject: lock test\n\nbody\n", capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (root / "spool" / "input").iterdir()
               if f.name.endswith("-H"))
    return conf, mid


def _deliver(cmd: list[str], root: Path) -> list[str]:
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(root / "mail")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert locker.stdout.readline() == b"locked\n"
    try:
        subprocess.run(cmd, capture_output=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        locker.communicate(b"")
    subprocess.run(cmd, capture_output=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = (root / "log" / "mainlog").read_text().replace(str(root), "@ROOT@")
    return [re.sub(r"^\S+ \S+ \S+ ", "", ln) for ln in text.splitlines()
            if " <= " not in ln]


@pytest.fixture(scope="module")
def runs():
    if EXIM is None:
        pytest.fail("real Exim is needed for the locking tests")
    ex, py = WORK / "exim", WORK / "eximpy"
    cex, mid = _setup(ex)
    cpy, mid2 = _setup(py)
    return (_deliver([EXIM, "-C", str(cex), "-M", mid], ex),
            _deliver([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M",
                      mid2], py), ex, py)


def test_locked_mailboxes_defer_like_exim(runs):
    lex, lpy, _, _ = runs
    assert lpy == lex
    assert sum(ln.startswith("==") for ln in lpy) == 3


def test_delivered_once_after_unlock(runs):
    _, _, ex, py = runs
    for box in ("dl", "fc", "fl"):
        assert (py / "mail" / box).read_text().count("Subject: lock test") == 1
        assert (ex / "mail" / box).read_text().count("Subject: lock test") == 1
        assert not (py / "mail" / f"{box}.lock").exists()
