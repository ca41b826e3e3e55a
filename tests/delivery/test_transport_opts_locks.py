"""appendfile locking, file_format and the remaining mailbox options against real Exim
4.96 delivering the same spool: use_flock_lock with a held flock,
lock_fcntl_timeout with a held fcntl lock (blocking lock attempts),
lock_retries / lock_interval, lockfile_timeout removing a stale lock file,
MBX locking (use_mbx_lock) and its /tmp lock file, allow_fifo with a
reader, quota_directory, mailbox_size, file_must_exist, no_use_lockfile."""
from __future__ import annotations

import fcntl
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "transport_opts_locks"

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
  local_parts = @LOCALS@
  transport = t_$local_part_data
  user = nobody
fmt:
  driver = accept
  local_parts = fmtmbx : fmtunknown : fmtempty : fmtnotfound
  transport = t_fmt
  user = nobody
begin transports
t_fmt:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  file_format = *mbx* : t_fmt_mbx : From : t_fmt : XX : t_nonexistent
t_fmt_mbx:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  mbx_format
t_flock:
  driver = appendfile
  file = @ROOT@/mail/flocked
  use_flock_lock
  lock_retries = 2
  lock_interval = 1s
t_fcntlwait:
  driver = appendfile
  file = @ROOT@/mail/fcntled
  lock_fcntl_timeout = 1s
  lock_retries = 2
  lock_interval = 1s
t_stale:
  driver = appendfile
  file = @ROOT@/mail/stale
  lockfile_timeout = 1s
  lock_interval = 1s
t_nolockfile:
  driver = appendfile
  file = @ROOT@/mail/nolockfile
  no_use_lockfile
t_mbxlock:
  driver = appendfile
  file = @ROOT@/mail/mbxlock
  mbx_format
t_fifo:
  driver = appendfile
  file = @ROOT@/mail/fifo
  allow_fifo
t_qdir:
  driver = appendfile
  directory = @ROOT@/mail/qdir/sub
  quota = 50
  quota_directory = @ROOT@/mail/qdir
t_mbsize:
  driver = appendfile
  file = @ROOT@/mail/mbsize
  quota = 500
  mailbox_size = 1000
t_mustexist:
  driver = appendfile
  file = @ROOT@/mail/mustexist
  file_must_exist
begin retry
* * F,1h,15m
"""

LOCALS = ["flock", "fcntlwait", "stale", "nolockfile", "mbxlock", "fifo",
          "qdir", "mbsize", "mustexist"]

HELD: list[int] = []
READERS: list[subprocess.Popen] = []


def _hook(root: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    mail = root / "mail"
    for name in ("flocked", "fcntled", "stale"):
        p = mail / name
        p.write_text("")
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    fd = os.open(mail / "flocked", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    HELD.append(fd)
    fd = os.open(mail / "fcntled", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    HELD.append(fd)
    (mail / "stale.lock").write_text("")
    os.mkfifo(mail / "fifo")
    os.chown(mail / "fifo", nobody.pw_uid, nobody.pw_gid)
    READERS.append(subprocess.Popen(
        ["/bin/sh", "-c", f"cat {mail}/fifo > {mail}/fifo.out"]))
    for name, data in (("fmtmbx", b"*mbx*\r\n" + b"\0" * 2041),
                       ("fmtunknown", b"garbage\n"), ("fmtnotfound", b"XX\n")):
        (mail / name).write_bytes(data)
        os.chown(mail / name, nobody.pw_uid, nobody.pw_gid)
        (mail / name).chmod(0o600)
    (mail / "qdir").mkdir()
    (mail / "qdir" / "old").write_text("x" * 100)
    os.chown(mail / "qdir", nobody.pw_uid, nobody.pw_gid)


@pytest.fixture(scope="module")
def runs():
    conf = CONF.replace("@LOCALS@", " : ".join(LOCALS))
    try:
        out = run_pair(WORK, conf, [(["-f", "s@example.org"] + LOCALS +
                                     ["fmtmbx", "fmtunknown", "fmtempty",
                                      "fmtnotfound"],
                                     "Subject: locks\n\nbody\n")],
                       home_hook=_hook, pause=1.5)
    finally:
        for fd in HELD:
            os.close(fd)
        for p in READERS:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return out


def _norm(ln: str) -> str:
    ln = re.sub(r"/temp\.\d+\.", "/temp.PID.", ln)
    return re.sub(r"\.lock\.vm\.example\.[0-9a-f]{8}\.[0-9a-f]{8}", ".lock.HITCH", ln)


def test_log(runs):
    ex, py, ids = runs
    assert [_norm(x) for x in log_lines(py, ids)] == \
        [_norm(x) for x in log_lines(ex, ids)]


@pytest.mark.parametrize("name", ["flocked", "fcntled", "stale", "stale.lock",
                                  "nolockfile", "fifo.out", "mbsize",
                                  "mustexist", "fmtunknown", "fmtempty",
                                  "fmtnotfound"])
def test_files(runs, name):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        text = re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", p.read_text())
        return stat.S_IMODE(p.stat().st_mode), text
    assert view(py) == view(ex)


def test_qdir_untouched(runs):
    ex, py, _ = runs
    assert sorted(os.listdir(py / "mail" / "qdir")) == \
        sorted(os.listdir(ex / "mail" / "qdir"))


def test_mbx_lock_file_removed(runs):
    ex, py, _ = runs

    def lock_left(root: Path) -> bool:
        st = os.stat(root / "mail" / "mbxlock")
        return os.path.exists(f"/tmp/.{st.st_dev:x}.{st.st_ino:x}")
    assert (lock_left(py), (py / "mail" / "mbxlock").stat().st_size > 2048) == \
        (lock_left(ex), (ex / "mail" / "mbxlock").stat().st_size > 2048)


def test_file_format_mbx(runs):
    ex, py, _ = runs

    def view(root: Path) -> bytes:
        b = (root / "mail" / "fmtmbx").read_bytes()
        b = re.sub(rb"\d{1,2}-\w{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4},", b"DATE,", b)
        return re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", b)
    assert view(py) == view(ex)
