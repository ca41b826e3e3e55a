"""queue_smtp: local deliveries now, SMTP deliveries left for a queue run
(-odqs, queue_smtp_domains, control = queue/first_pass_route), compared with
real Exim: the same submission through `exim -odqs` / `-odi` and eximpy's
front door; main log, message log and the -H recipient state must agree."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from oracle import EXIM, ROOT

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
{main}
begin routers
remote:
  driver = manualroute
  domains = remote.example : other.example
  route_list = * 192.0.2.1
  transport = smtp
local:
  driver = accept
  transport = file
begin transports
smtp:
  driver = smtp
  connect_timeout = 1s
file:
  driver = appendfile
  file = {d}/mbox
  user = Debian-exim
begin retry
*  *  F,1h,10m
"""
RCPTS = [b"x@remote.example", b"y@test.example", b"z@other.example"]
# z first: its domain decides for the batch of both remote addresses
ZFIRST = [b"z@other.example", b"y@test.example", b"x@remote.example"]
EXIMPY = [str(ROOT / ".venv" / "bin" / "python"), "-m", "eximpy"]


def _norm(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", text)
    text = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", text)
    return "\n".join(ln for ln in text.splitlines()
                     if "purging the environment" not in ln and
                     "use keep_environment" not in ln and
                     "lost privilege" not in ln)


def _run(d: Path, argv0: list[str], main: str, args: list[str],
         rcpts: list[bytes], conf_text: str = CONF) -> tuple:
    d.mkdir(parents=True, exist_ok=True)
    shutil.chown(d, "Debian-exim", "Debian-exim")
    for sub in ("spool", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(d / sub, "Debian-exim", "Debian-exim")
    conf = d / "conf"
    conf.write_text(conf_text.format(d=d, main=main))
    if "-bs" in args:
        data = (b"EHLO x\r\nMAIL FROM:<s@test.example>\r\n" +
                b"".join(b"RCPT TO:<%s>\r\n" % r for r in rcpts) +
                b"DATA\r\nSubject: qs\r\n\r\nb\r\n.\r\nQUIT\r\n")
    else:
        args = args + ["-f", "s@test.example"] + [r.decode() for r in rcpts]
        data = b"Subject: qs\n\nb\n"
    subprocess.run(argv0 + ["-C", str(conf)] + args, input=data,
                   capture_output=True, timeout=60, cwd=str(ROOT))
    time.sleep(3)              # a background delivery (-odqs) finishes
    log = _norm((d / "log" / "mainlog").read_text())
    msglogs = sorted((d / "spool" / "msglog").glob("*"))
    msglog = _norm(msglogs[0].read_text()) if msglogs else ""
    state = sorted(ln for h in (d / "spool" / "input").glob("*-H")
                   for ln in h.read_text().splitlines()
                   if ln[:3] in ("NN ", "YN ", "NY ", "YY "))
    return log, msglog, state


QSD = "queue_smtp_domains = other.example\nacl_smtp_rcpt = accept"


@pytest.mark.parametrize("main,args,rcpts,first_pass", [
    ("", ["-odqs"], RCPTS, False),
    # decided per transport batch by the
    # first address's domain: held (first-pass routing) ...
    (QSD, ["-bs", "-odi"], ZFIRST, True),
    # ... or delivered with the rest of its batch
    (QSD, ["-bs", "-odi"], RCPTS, False),
    # a local submission too
    ("queue_smtp_domains = other.example", ["-odi"], ZFIRST, True),
])
def test_queue_smtp_like_exim(exim_scratch: Path, main: str, args: list[str],
                              rcpts: list[bytes], first_pass: bool):
    want = _run(exim_scratch / "exim", [EXIM], main, args, rcpts)
    got = _run(exim_scratch / "eximpy", EXIMPY, main, args, rcpts)
    assert first_pass == ("first-pass" in want[0])
    assert ("-odqs" in args) == ("explicitly queued" in want[0])
    assert got == want


def test_remote_batch_times_out_together(exim_scratch: Path):
    """Two addresses delivered in one SMTP batch with no retry rule: the
    host retry item is on the first, and when it times out the whole
    batch fails with it (Exim's addr->first in retry_update), later ones
    logged first; the bounce lists them in Exim's order.  (Exim delivers
    its bounce at once, eximpy queues it: only the failure lines and the
    bounce's text are compared.)"""
    conf = CONF.replace("begin retry\n*  *  F,1h,10m\n", "")
    got = {}
    for name, argv0 in (("exim", [EXIM]), ("eximpy", EXIMPY)):
        log, _m, _s = _run(exim_scratch / name, argv0, "acl_smtp_rcpt = accept",
                           ["-bs", "-odi"], RCPTS, conf)
        lines = [ln for ln in log.splitlines() if " ** " in ln or " == " in ln]
        text = ""
        for p in [exim_scratch / name / "mbox"] + sorted(
                (exim_scratch / name / "spool" / "input").glob("*-D")):
            if p.exists() and "address(es) failed" in p.read_text():
                body = p.read_text()
                text = body[body.index("This message was created"):]
                text = text[:text.index("Content-type: message/rfc822")]
        got[name] = (lines, re.sub(r"\d+-eximdsn-\d+", "B", text))
    assert any("** z@other.example" in ln for ln in got["exim"][0])
    assert got["eximpy"] == got["exim"]
