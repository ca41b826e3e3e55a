"""queryprogram's command runs as command_user/command_group during
delivery -- by real Exim as root, and by eximpy both as root and as the
delivery role (the exim user holding only CAP_SETUID/CAP_SETGID, started
with setpriv): the command reports its ids in its answer
(``accept data=<uid>:<gid>``), which a header of the delivered message
shows.
"""
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
WORK = ROOT / "tests" / "_work" / "queryprogram_user"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
never_users = root
exim_user = Debian-exim
exim_group = Debian-exim
begin routers
qp:
  driver = queryprogram
  command = @ROOT@/qp.sh
  command_user = nobody
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/u1
  user = nobody
  headers_add = X-QP: $address_data
"""

SCRIPT = """#!/bin/sh
echo "accept data=$(id -u):$(id -g)"
"""


def _prepare(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    (root / "mail").chmod(0o777)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    root.chmod(0o755)
    (root / "qp.sh").write_text(SCRIPT)
    (root / "qp.sh").chmod(0o755)
    conf = root / "exim.conf"
    conf.write_text(CONF.replace("@ROOT@", str(root)))
    conf.chmod(0o644)
    return conf


def _copy(ex: Path, py: Path) -> None:
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")


def _qp_header(root: Path) -> str:
    text = (root / "mail" / "u1").read_text()
    m = re.search(r"^X-QP: (.*)$", text, re.M)
    assert m, text
    return m.group(1)


@pytest.mark.parametrize("role", ["root", "delivery_role"])
def test_command_user(role):
    if EXIM is None:
        pytest.fail("real Exim is needed")
    ex, py = WORK / role / "exim", WORK / role / "eximpy"
    for p in (WORK, WORK / role):
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(0o755)
    cex, cpy = _prepare(ex), _prepare(py)
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "u1"],
                       input=b"Subject: qp\n\nbody\n", capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (ex / "spool" / "input").iterdir()
               if f.name.endswith("-H"))
    _copy(ex, py)
    subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
    argv = [sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M", mid]
    if role == "delivery_role":
        argv = ["setpriv", "--reuid=Debian-exim", "--regid=Debian-exim",
                "--clear-groups", "--inh-caps=-all,+setuid,+setgid",
                "--ambient-caps=-all,+setuid,+setgid",
                "--bounding-set=-all,+setuid,+setgid"] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    expected = _qp_header(ex)
    assert expected == "65534:65534"
    assert (py / "mail" / "u1").exists(), r.stderr + \
        (py / "log" / "mainlog").read_text()
    assert _qp_header(py) == expected
