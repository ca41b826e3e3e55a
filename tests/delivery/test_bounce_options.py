"""Bounce options against real Exim: errors_reply_to, bounce_return_size_limit,
bounce_return_linesize_limit, bounce_return_body and bounce_return_message.

One message is queued by real Exim (-odq), the spool copied, and each copy
delivered by `exim -M` and by eximpy; the recipient fails (:fail:), and the
bounce -- kept on the queue because the sender's domain defers -- must be
the same file (headers and body), modulo ids, times and the MIME boundary.
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
WORK = ROOT / "tests" / "_work" / "bounce_options"
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
gone:
  driver = redirect
  data = :fail: gone away
  allow_fail
begin retry
* * F,1h,15m
"""

BIG = "Subject: big\n\n" + ("x" * 70 + "\n") * 40          # < 8K
HUGE = "Subject: huge\n\n" + ("y" * 70 + "\n") * 200        # > 8K
SMALL = "Subject: small\n\nshort body\n"

CASES = {
    "size_limit": ("errors_reply_to = postmaster@example.org\n"
                   "bounce_return_size_limit = 1K", HUGE),
    "size_limit_rounded": ("bounce_return_size_limit = 1K", BIG),
    "size_limit_small": ("bounce_return_size_limit = 1K", SMALL),
    "linesize_limit": ("bounce_return_linesize_limit = 50", BIG),
    "no_body": ("bounce_return_body = false", SMALL),
    "no_message": ("bounce_return_message = false", SMALL),
    "reply_to": ("errors_reply_to = Postmaster <pm@example.org>", SMALL),
    "message_text": ("bounce_message_text = Contact postmaster@example.org "
                     "for help.\\n", SMALL),
    "errors_copy": ("errors_copy = *@hold.example  bounces-$local_part@"
                    "hold.example : *@*  other@hold.example", SMALL),
    "mail_loop": ("received_headers_max = 3",
                  "Received: from a\nReceived: from b\nReceived: from c\n"
                  + SMALL),
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


def _bounce(root: Path, parent: str) -> str:
    for f in sorted((root / "spool" / "input").iterdir()):
        if not f.name.endswith("-H") or f.name.startswith(parent):
            continue
        head = f.read_text(errors="replace")
        if "\n<>\n" not in head:
            continue
        headers = head.split("\n\n", 1)[1]
        rcpts = head.split("\nXX\n", 1)[1].split("\n\n", 1)[0]
        data = (root / "spool" / "input" / (f.name[:-2] + "-D")).read_text(
            errors="replace").split("\n", 1)[1]
        text = re.sub(r"^\d{3}[A-Z* ] ", "", headers, flags=re.M)
        text = "\n".join(ln for ln in text.splitlines()
                         if not ln.startswith(("Received:", "\t", "Message-Id:",
                                               "Date:", " ")))
        out = "recipients: " + rcpts + "\n" + text + "\n\n" + data
        out = re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", out)
        out = out.replace(parent, "PARENTID")
        out = re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}", "DATE",
                     out)
        return out
    raise AssertionError(f"no bounce in {root}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bounce_option(case):
    if EXIM is None:
        pytest.fail("real Exim is needed")
    options, text = CASES[case]
    conf = CONF.replace("@OPTIONS@", options)
    ex, py = WORK / case / "exim", WORK / case / "eximpy"
    cex, cpy = _prepare(ex, conf), _prepare(py, conf)
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", "s@hold.example",
                        "u1@example.org"], input=text.encode(),
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
    subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M",
                    mid], capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    bx = _bounce(ex, mid)
    keep_golden(GOLDEN / "delivery_bounce" / case, bx)
    assert _bounce(py, mid) == bx
    assert _log(py, mid) == _log(ex, mid)


def _log(root: Path, mid: str) -> list[str]:
    return [re.sub(r"^\S+ \S+ ", "", ln)
            for ln in (root / "log" / "mainlog").read_text().splitlines()
            if f" {mid} " in ln and " <= " not in ln]
