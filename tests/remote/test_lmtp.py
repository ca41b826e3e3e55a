"""The lmtp transport against real Exim: the same spooled message is
delivered by Exim (-M) and eximpy over LMTP to a scripted server on a Unix
socket (one reply per accepted recipient after the data), and to the same
server reached through a command (socat-free: a small Python relay run as
the transport's command); log lines (C= included) and transcripts must
match."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _remote import run_both  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402
from test_smtp_transport import MESSAGE  # noqa: E402

CONF = """\
primary_hostname = sender.example
qualify_domain = sender.example
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog

begin routers
  bounces:
    driver = redirect
    domains = sender.example
    data = :blackhole:

  to_lmtp:
    driver = accept
    transport = lmtp_t

begin transports
  lmtp_t:
    driver = lmtp
    user = nobody
@TRANSPORT@

begin retry
  * * F,1h,10m
"""

RELAY = """\
import socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def up():
    while True:
        b = sys.stdin.buffer.raw.read(65536)
        if not b:
            s.shutdown(socket.SHUT_WR); return
        s.sendall(b)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    sys.stdout.buffer.write(b); sys.stdout.buffer.flush()
"""

SOCKDIR = Path("/tmp/eximpy-remote-lmtp")

CASES = {
    # name: (server kwargs, recipients, use command)
    "lmtp-ok": ({}, ["a@dest.example", "b@dest.example"], False),
    "lmtp-per-rcpt": ({"lmtp_replies": {"b": "452 4.2.2 mailbox full",
                                        "c": "550 5.2.1 mailbox disabled"}},
                      ["a@dest.example", "b@dest.example", "c@dest.example"],
                      False),
    "lmtp-rcpt-rejected": ({"rcpt_replies": {"x": "550 5.1.1 unknown user",
                                             "y": "450 4.2.1 try later"}},
                           ["x@dest.example", "y@dest.example"], False),
    "lmtp-greeting-421": ({"greeting": "421 busy"}, ["a@dest.example"], False),
    "lmtp-mail-451": ({"mail_reply": "451 4.3.0 later"}, ["a@dest.example"],
                      False),
    "lmtp-close-after-data": ({"close_after": "DOT"}, ["a@dest.example"],
                              False),
    "lmtp-command": ({}, ["a@dest.example", "b@dest.example"], True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lmtp(case):
    skw, rcpts, command = CASES[case]
    SOCKDIR.mkdir(exist_ok=True)
    SOCKDIR.chmod(0o777)
    path = str(SOCKDIR / f"{case}.sock")
    kw = {"unix_path": path, "extensions": ("PIPELINING",),
          "lmtp_replies": {}, "final_reply": "250 2.0.0 OK delivered"}
    kw.update(skw)
    srv = ScriptedServer(**kw).start()
    relay = SOCKDIR / "relay.py"
    relay.write_text(RELAY)
    relay.chmod(0o755)
    topt = (f"    command = /usr/bin/python3 {relay} {path}\n" if command
            else f"    socket = {path}\n")
    try:
        res = run_both(case, CONF.replace("@TRANSPORT@", topt),
                       [(["-f", "sender@sender.example"] + rcpts, MESSAGE)],
                       srv)
    finally:
        srv.stop()
        if os.path.exists(path):
            os.unlink(path)
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]
