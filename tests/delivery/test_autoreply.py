"""The autoreply transport against real Exim: the reply message (headers
and text), the `log` file, the `once` database suppressing a second reply,
and the delivery log lines.  Replies go to a remote sender whose delivery
defers, so they stay in the queue for comparison.
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
WORK = ROOT / "tests" / "_work" / "autoreply"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
vac:
  driver = accept
  local_parts = vac
  transport = vacation
  unseen
local:
  driver = accept
  local_parts = vac : other
  transport = mbox
begin transports
remote_smtp:
  driver = smtp
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
vacation:
  driver = autoreply
  user = Debian-exim
  to = $sender_address
  from = Vacation <vac@example.org>
  subject = Re: $h_subject:
  text = I am away.\\nBack soon.
  once = @ROOT@/mail/once.db
  log = @ROOT@/mail/vac.log
  headers = X-Vacation: yes
begin retry
* * F,1h,15m
"""


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


def _replies(root: Path, parents: set[str]) -> list[tuple[list[str], str]]:
    out = []
    for f in sorted((root / "spool" / "input").glob("*-H")):
        mid = f.name[:-2]
        if mid in parents:
            continue
        text = f.read_text()
        hdrs = [ln[5:] for ln in re.findall(r"(?m)^\d{3}[A-Z* ] [^\n]*", text)
                if not ln[5:].startswith(("Received:", "Message-Id:", "Date:"))]
        body = (root / "spool" / "input" / f"{mid}-D").read_text().split("\n", 1)[1]
        out.append((hdrs, body))
    return out


@pytest.fixture(scope="module")
def runs():
    if EXIM is None:
        pytest.fail("real Exim is needed for the autoreply tests")
    ex, py = WORK / "exim", WORK / "eximpy"
    cex, cpy = _prepare(ex), _prepare(py)
    ids = []
    for subj in ("hello", "again"):
        p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f",
                            "someone@remote.example", "vac"],
                           input=f"Subject: {subj}\nMessage-ID: <{subj}@x>\n\nhi\n".encode(),
                           capture_output=True)
        assert p.returncode == 0, p.stderr
    ids = sorted(f.name[:-2] for f in (ex / "spool" / "input").glob("*-H"))
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    for mid in ids:
        subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
        subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy),
                        "-M", mid], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return ex, py, set(ids)


def test_one_reply_with_exims_headers_and_text(runs):
    ex, py, ids = runs
    rx, rp = _replies(ex, ids), _replies(py, ids)
    assert len(rx) == 1            # the once database stopped the second
    assert rp == rx


def test_log_file(runs):
    ex, py, _ = runs
    strip = lambda s: re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "T", s)
    assert strip((py / "mail" / "vac.log").read_text()) == \
        strip((ex / "mail" / "vac.log").read_text())


def test_delivery_lines(runs):
    ex, py, ids = runs

    def lines(root: Path) -> list[str]:
        out = []
        for ln in (root / "log" / "mainlog").read_text().splitlines():
            ln = re.sub(r"^\S+ \S+ ", "", ln)
            if ln[:16] in ids and (" => " in ln or " ** " in ln or " == " in ln):
                out.append(ln)
        return out
    assert lines(py) == lines(ex)
