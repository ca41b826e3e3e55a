"""A message is never accepted without its "<=" log line (DESIGN.md §5).

When the mainlog cannot be written the session answers 4xx and leaves
nothing in the spool, so the client keeps the message and tries again.
"""
from __future__ import annotations

import subprocess
import sys

from oracle import ROOT

CONF = """\
primary_hostname = test.example
spool_directory = {d}/spool
log_file_path = {d}/notadir/%slog
acl_smtp_rcpt = accept
queue_only
"""


def test_unloggable_message_is_refused_with_4xx(workdir) -> None:
    (workdir / "notadir").write_text("a file where the log directory should be")
    conf = workdir / "c.conf"
    conf.write_text(CONF.format(d=workdir))
    dialogue = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
                b"RCPT TO:<c@d.example>\r\nDATA\r\n"
                b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    p = subprocess.run([sys.executable, "-m", "eximpy", "-C", str(conf),
                        "-bs", "-odq"], input=dialogue, capture_output=True,
                       timeout=60, env={"PYTHONPATH": str(ROOT),
                                        "PATH": "/usr/bin:/bin"})
    replies = p.stdout.decode().splitlines()
    assert any(r.startswith("451 ") for r in replies), replies
    assert not any(r.startswith("250 OK id=") for r in replies), replies
    spooled = list((workdir / "spool" / "input").glob("*-[HD]")) \
        if (workdir / "spool" / "input").exists() else []
    assert spooled == []


def test_loggable_message_is_accepted(workdir) -> None:
    conf = workdir / "c.conf"
    conf.write_text(CONF.format(d=workdir).replace("notadir", "log"))
    dialogue = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
                b"RCPT TO:<c@d.example>\r\nDATA\r\n"
                b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    p = subprocess.run([sys.executable, "-m", "eximpy", "-C", str(conf),
                        "-bs", "-odq"], input=dialogue, capture_output=True,
                       timeout=60, env={"PYTHONPATH": str(ROOT),
                                        "PATH": "/usr/bin:/bin"})
    assert b"250 OK id=" in p.stdout
    assert len(list((workdir / "spool" / "input").glob("*-H"))) == 1
    assert "<= a@b.example" in (workdir / "log" / "mainlog").read_text()
