"""Generic transport options against real Exim: message_size_limit,
transport_filter, shadow_transport (ST=), quota, return_path, headers_only,
body_only, headers_rewrite-free paths.  Same spool, delivered by both."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import EXIM

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "generic_options"
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
  local_parts = big : filt : shadow : quota : rp : honly : bonly
  transport = t_$local_part_data
begin transports
t_big:
  driver = appendfile
  file = @ROOT@/mail/big
  user = nobody
  message_size_limit = 100
t_filt:
  driver = appendfile
  file = @ROOT@/mail/filt
  user = nobody
  transport_filter = /usr/bin/tr a-z A-Z
t_shadow:
  driver = appendfile
  file = @ROOT@/mail/shadow
  user = nobody
  shadow_transport = t_copy
t_copy:
  driver = appendfile
  file = @ROOT@/mail/copy
  user = nobody
t_quota:
  driver = appendfile
  file = @ROOT@/mail/quota
  user = nobody
  quota = 50
t_rp:
  driver = appendfile
  file = @ROOT@/mail/rp
  user = nobody
  return_path = bounces+$local_part@example.org
  return_path_add
t_honly:
  driver = appendfile
  file = @ROOT@/mail/honly
  user = nobody
  headers_only
t_bonly:
  driver = appendfile
  file = @ROOT@/mail/bonly
  user = nobody
  body_only
begin retry
* * F,1h,15m
"""

BOXES = ("filt", "shadow", "copy", "rp", "honly", "bonly", "quota")


def _prepare(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    (root / "mail").chmod(0o777)
    conf = root / "exim.conf"
    conf.write_text(CONF.replace("@ROOT@", str(root)))
    return conf


@pytest.fixture(scope="module")
def runs():
    if EXIM is None:
        pytest.fail("real Exim is needed")
    ex, py = WORK / "exim", WORK / "eximpy"
    cex, cpy = _prepare(ex), _prepare(py)
    text = ("Subject: generic options test with a body long enough\n\n"
            "body text here that is long enough to pass a hundred bytes "
            "limit for sure yes\nFrom here\n")
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", "s@example.org",
                        "big", "filt", "shadow", "quota", "rp", "honly", "bonly"],
                       input=text.encode(), capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (ex / "spool" / "input").glob("*-H"))
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M", mid],
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return ex, py, mid


def test_log_lines(runs):
    ex, py, mid = runs

    def lines(root: Path) -> list[str]:
        out = []
        for ln in (root / "log" / "mainlog").read_text().splitlines():
            ln = re.sub(r"^\S+ \S+ ", "", ln).replace(str(root), "@ROOT@")
            if ln.startswith(mid) and " <= " not in ln:
                out.append(ln)
        return out
    assert lines(py) == lines(ex)


@pytest.mark.parametrize("box", BOXES)
def test_mailbox(runs, box):
    ex, py, _ = runs

    def strip(p: Path) -> bytes | None:
        if not p.exists():
            return None
        b = p.read_bytes()
        return re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", b)
    assert strip(py / "mail" / box) == strip(ex / "mail" / box)


def test_failed_bounce_is_frozen(runs):
    """The bounce of the failure is itself undeliverable: like Exim, eximpy
    freezes it ("Frozen (delivery error message)") instead of bouncing it."""
    ex, py, mid = runs
    cpy = py / "exim.conf"

    def bounce_id(root: Path) -> str:
        return next(f.name[:-2] for f in (root / "spool" / "input").glob("*-H")
                    if f.name[:-2] != mid)
    bpy = bounce_id(py)
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M", bpy],
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def lines(root: Path, bid: str) -> list[str]:
        return [re.sub(r"^\S+ \S+ \S+ ", "", ln)
                for ln in (root / "log" / "mainlog").read_text().splitlines()
                if ln[20:36] == bid and " <= " not in ln]
    assert lines(py, bpy) == lines(ex, bounce_id(ex))
    assert "-frozen " in (py / "spool" / "input" / f"{bpy}-H").read_text()


HR_CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = hr
  transport = t
begin transports
t:
  driver = appendfile
  file = @ROOT@/mail/hr
  user = nobody
  headers_rewrite = *@old.example $1@new.example : \\
                    boss@* "The Boss <chief@$domain>" w : \\
                    *@cc.example $1@cc2.example c
begin retry
* * F,1h,15m
"""


def test_headers_rewrite():
    """headers_rewrite on a transport rewrites the message's own address
    headers (working part, or the whole item with w; flags select headers)."""
    from _pair import mbox_text, run_pair
    ex, py, _ = run_pair(WORK / "hr", HR_CONF, [
        (["-f", "s@example.org", "hr"],
         "From: Someone <x@old.example>\nTo: a@old.example, boss@corp.example,\n"
         " \"Q, R\" <q@old.example>\nCc: c@cc.example, d@old.example\n"
         "Reply-To: c@cc.example\nSubject: x@old.example\n\nbody x@old.example\n")])
    assert mbox_text(py / "mail" / "hr") == mbox_text(ex / "mail" / "hr")


DL_CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
quietfail:
  driver = redirect
  local_parts = qf
  data = :fail: hush
  allow_fail
  disable_logging
r:
  driver = accept
  local_parts = quiet : loud
  transport = ${if eq{$local_part}{quiet}{tq}{tl}}
begin transports
tq:
  driver = appendfile
  file = @ROOT@/mail/quiet
  user = nobody
  disable_logging
tl:
  driver = appendfile
  file = @ROOT@/mail/loud
  user = nobody
begin retry
* * F,1h,15m
"""


def test_disable_logging():
    """disable_logging on a router and on a transport silences their lines."""
    from _pair import log_lines, run_pair
    ex, py, ids = run_pair(WORK / "dl", DL_CONF, [
        (["-f", "s@remote.invalid", "quiet", "loud", "qf"], "Subject: dl\n\nb\n")])
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_errors_to_verified():
    """A router's errors_to gets the bounce when it verifies; one that does
    not verify is ignored (the bounce goes to the sender)."""
    from _pair import log_lines, run_pair, spool_reports
    conf = (HERE / "confs" / "errors_to.conf").read_text()
    ex, py, ids = run_pair(WORK / "et", conf, [
        (["-f", "s@remote.invalid", "g", "b"], "Subject: et\n\nb\n")])
    assert log_lines(py, ids) == log_lines(ex, ids)
    # Exim delivers the bounce to owner@ at once; eximpy leaves it queued.
    to_sender = lambda rs: [r for r in rs if "To: s@remote.invalid" in r[0]]
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(to_sender(rx)) == 1
    assert to_sender(rp) == to_sender(rx)
    assert any("To: owner@example.org" in r[0] for r in rp)
