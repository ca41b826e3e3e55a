"""Frozen messages against real Exim: timeout_frozen_after for any frozen
message (the recipients fail with "delivery cancelled; message timed out"
and are bounced), ignore_bounce_errors_after ("Unfrozen by errmsg timer",
then "error ignored"), auto_thaw ("Unfrozen by auto-thaw"), a forced -M
("Unfrozen by forced delivery"), and a queue run that leaves a frozen
message alone.

The message is queued and frozen (-Mf) by real Exim, the spool copied, and
the same steps run on both sides; the main log lines written after the
copy, what stays queued, and any bounce must agree.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oracle import EXIM, GOLDEN, keep_golden

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "bounce_frozen"
DELIVER_MAIN = HERE / "deliver_main.py"
CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
@OPTIONS@
begin routers
hold:
  driver = redirect
  domains = hold.example
  data = :defer: held
  allow_defer
hole:
  driver = redirect
  local_parts = hole
  data = :blackhole:
gone:
  driver = redirect
  data = :fail: gone away
  allow_fail
begin retry
* * F,1h,15m
"""

# name: (options, sender, recipient, freeze first, steps)
CASES = {
    "timeout_frozen_after": ("timeout_frozen_after = 1s", "s@hold.example",
                             "hole", True, [2.0, ["-q"]]),
    "timeout_frozen_bounce": ("timeout_frozen_after = 1s", "<>",
                              "hole", True, [2.0, ["-q"]]),
    "auto_thaw": ("auto_thaw = 1s", "s@hold.example", "hole", True,
                  [2.0, ["-q"]]),
    "auto_thaw_not_yet": ("auto_thaw = 1h", "s@hold.example", "hole", True,
                          [["-q"]]),
    "forced_thaw": ("", "s@hold.example", "hole", True, [["-M", "@ID@"]]),
    "errmsg_timer": ("ignore_bounce_errors_after = 3s", "<>", "u1", False,
                     [["-M", "@ID@"], 4.0, ["-q"]]),
    "bounce_frozen": ("", "<>", "u1", False, [["-M", "@ID@"], ["-q"]]),
    "bounce_frozen_tell": ("freeze_tell = pm@hold.example", "<>", "u1", False,
                           [["-M", "@ID@"]]),
}


def _prepare(root: Path, conf: str) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log"):
        (root / d).mkdir(parents=True)
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    path = root / "exim.conf"
    path.write_text(conf.replace("@ROOT@", str(root)))
    return path


def _lines(root: Path, skip: int, mid: str) -> list[str]:
    text = (root / "log" / "mainlog").read_text().splitlines()[skip:]
    out = []
    for ln in text:
        ln = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln)
        if ln.startswith(("Start queue run", "End queue run")):
            continue
        if not ln.startswith(mid + " "):
            continue            # the bounce's own lines; compared below
        out.append(ln.replace(mid, "MSGID"))
    return out


def _queued(root: Path) -> list[str]:
    out = []
    for f in sorted((root / "spool" / "input").iterdir()):
        if f.name.endswith("-H"):
            head = f.read_text(errors="replace")
            out.append(("frozen " if "\n-frozen " in head else "")
                       + head.split("\n")[2])
    return sorted(out)


def _bounce_text(root: Path, mid: str) -> str | None:
    for f in sorted((root / "spool" / "input").iterdir()):
        if f.name.endswith("-D") and not f.name.startswith(mid):
            body = f.read_text(errors="replace").split("\n", 1)[1]
            body = re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", body).replace(mid, "MSGID")
            return re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}",
                          "DATE", body)
    return None


@pytest.mark.parametrize("case", sorted(CASES))
def test_frozen_case(case):
    if EXIM is None:
        pytest.fail("real Exim is needed")
    options, sender, rcpt, freeze, steps = CASES[case]
    conf = CONF.replace("@OPTIONS@", options)
    ex, py = WORK / case / "exim", WORK / case / "eximpy"
    cex, cpy = _prepare(ex, conf), _prepare(py, conf)
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", sender, rcpt],
                       input=b"Subject: frozen\n\nbody\n", capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (ex / "spool" / "input").iterdir()
               if f.name.endswith("-H"))
    if freeze:
        subprocess.run([EXIM, "-C", str(cex), "-Mf", mid], capture_output=True)
    skip = len((ex / "log" / "mainlog").read_text().splitlines())
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for step in steps:
        if isinstance(step, float):
            time.sleep(step)
            continue
        args = [a.replace("@ID@", mid) for a in step]
        subprocess.run([EXIM, "-C", str(cex)] + args, capture_output=True,
                       timeout=120)
        if args[0] == "-q":
            subprocess.run([sys.executable, "-m", "eximpy", "-C", str(cpy)] + args,
                           capture_output=True, env=env, timeout=120)
        else:
            subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy)]
                           + args, capture_output=True, env=env, timeout=120)
    lx = _lines(ex, skip, mid)
    keep_golden(GOLDEN / "delivery_frozen" / f"{case}.mainlog",
                "\n".join(lx) + "\n")
    assert _lines(py, 0, mid) == lx
    assert _queued(py) == _queued(ex)
    assert _bounce_text(py, mid) == _bounce_text(ex, mid)
