"""The system filter against real Exim: headers add/remove, fail (with a
<<log>> part), freeze, defer, a significant deliver, seen finish, an unseen
save through system_filter_file_transport as system_filter_user, the
first_delivery condition, $recipients, and an error in the filter.

A message is queued by real Exim, the spool copied, and `exim -M` and
eximpy's -M deliver each copy; the main log lines, the message log, the
mailboxes, any bounce and what stays queued must agree.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import EXIM, GOLDEN, keep_golden

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "system_filter"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
never_users = root
system_filter = @ROOT@/filter
system_filter_user = nobody
system_filter_file_transport = sf_file
system_filter_pipe_transport = sf_pipe
freeze_tell = postmaster@hold.example
begin routers
hold:
  driver = redirect
  domains = hold.example
  data = :defer: held
  allow_defer
local:
  driver = accept
  local_parts = u1 : u2 : other
  transport = mbox
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
sf_file:
  driver = appendfile
sf_pipe:
  driver = pipe
begin retry
* * F,1h,15m
"""

FILTERS = {
    "headers": """# Exim filter
if first_delivery then
  headers add "X-Recipients: $recipients"
  headers add "X-Two: a\\n  continued\\nX-Three: b"
  headers remove "Subject:x-junk"
endif
""",
    "fail": """# Exim filter
if $h_subject: contains "test" then
  fail text "<<spam seen>>Your message looks like spam"
endif
""",
    "fail_plain": """# Exim filter
fail "not wanted here"
""",
    "freeze": """# Exim filter
freeze text "suspicious"
""",
    "defer": """# Exim filter
defer "later please"
""",
    "deliver": """# Exim filter
deliver other@example.org
""",
    "discard": """# Exim filter
seen finish
""",
    "unseen_save": """# Exim filter
unseen save @ROOT@/mail/saved
""",
    "errors_to": """# Exim filter
unseen deliver nosuch@example.org errors_to pm@hold.example
""",
    "logwrite": """# Exim filter
logfile @ROOT@/mail/sf.log 0644
logwrite "filtered $message_id for $recipients"
logwrite "second\\nline"
""",
    "pipe": """# Exim filter
pipe "/usr/bin/tee -a @ROOT@/mail/piped"
""",
    "no_transport": """# Exim filter
unseen save @ROOT@/mail/saved/
""",
    "error": """# Exim filter
if $h_subject: contains "test" then
  frobnicate "x"
endif
""",
}


def _prepare(root: Path, conf: str, filt: str) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    (root / "mail").chmod(0o777)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    (root / "filter").write_text(filt.replace("@ROOT@", str(root)))
    path = root / "exim.conf"
    path.write_text(conf.replace("@ROOT@", str(root)))
    return path


def _norm(root: Path, mid: str, text: str) -> str:
    text = text.replace(str(root), "@ROOT@").replace(mid, "MSGID")
    text = re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", text)
    text = re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}", "DATE", text)
    text = re.sub(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", "DATE", text)
    return text


def _lines(root: Path, mid: str) -> list[str]:
    out = []
    for ln in (root / "log" / "mainlog").read_text().splitlines():
        ln = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln)
        if ln.startswith(mid + " ") and " <= " not in ln:
            out.append(_norm(root, mid, ln))
    return out


def _msglog(root: Path, mid: str) -> list[str]:
    p = root / "spool" / "msglog" / mid
    if not p.exists():
        return []
    return [_norm(root, mid, re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln))
            for ln in p.read_text().splitlines()]


def _mail(root: Path, mid: str) -> dict[str, str]:
    # (owner too: the system filter's file runs as system_filter_user)
    return {f.name: f"uid={f.stat().st_uid} mode={f.stat().st_mode:o}\n"
            + _norm(root, mid, f.read_text())
            for f in sorted((root / "mail").iterdir())}


def _queue(root: Path, mid: str) -> list[str]:
    out = []
    for f in sorted((root / "spool" / "input").iterdir()):
        if f.name.endswith("-H"):
            head = f.read_text(errors="replace")
            sender = head.split("\n")[2]
            frozen = "\n-frozen " in head
            if f.name.startswith(mid):
                # the kept message's headers (system filter changes)
                hdrs = re.sub(r"^\d{3}", "", head.split("\n\n", 1)[1],
                              flags=re.M)
                out.append(f"MSG frozen={frozen}\n" + _norm(root, mid, hdrs))
            else:
                data = (root / "spool" / "input" / (f.name[:-2] + "-D")).read_text(
                    errors="replace").split("\n", 1)[1]
                hdrs = "\n".join(
                    ln[5:] for ln in head.split("\n\n", 1)[1].splitlines()
                    if re.match(r"\d{3}[A-Z ] ", ln) and not ln[5:].startswith(
                        ("Received:", "Message-Id:", "Date:")))
                out.append(f"OTHER {sender} frozen={frozen}\n"
                           + _norm(root, mid, hdrs + "\n" + data))
    return out


@pytest.mark.parametrize("case", sorted(FILTERS))
def test_system_filter(case):
    if EXIM is None:
        pytest.fail("real Exim is needed")
    ex, py = WORK / case / "exim", WORK / case / "eximpy"
    cex, cpy = _prepare(ex, CONF, FILTERS[case]), _prepare(py, CONF, FILTERS[case])
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", "s@hold.example",
                        "u1", "u2"],
                       input=b"Subject: a test\nX-Junk: yes\n\nbody\n",
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (ex / "spool" / "input").iterdir()
               if f.name.endswith("-H"))
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M", mid],
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   timeout=120)
    lx = _lines(ex, mid)
    keep_golden(GOLDEN / "delivery_system_filter" / f"{case}.mainlog",
                "\n".join(lx) + "\n")
    assert _lines(py, mid) == lx
    assert _msglog(py, mid) == _msglog(ex, mid)
    assert _mail(py, mid) == _mail(ex, mid)
    assert _queue(py, mid) == _queue(ex, mid)
