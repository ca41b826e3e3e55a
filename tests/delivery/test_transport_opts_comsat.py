"""appendfile notify_comsat against real Exim 4.96: the datagram sent to
the biff/comsat service on 127.0.0.1 ("<local part>@<old mailbox size>\\n"
and a NUL), caught by a UDP listener on the biff port."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from _pair import ROOT, run_pair

WORK = ROOT / "tests" / "_work" / "transport_opts_comsat"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = biffed
  transport = t_biff
  user = nobody
begin transports
t_biff:
  driver = appendfile
  file = @ROOT@/mail/biffed
  notify_comsat
begin retry
* * F,1h,15m
"""


def _hook(root: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    p = root / "mail" / "biffed"
    p.write_text("0123456789")
    os.chown(p, nobody.pw_uid, nobody.pw_gid)
    p.chmod(0o600)


def test_notify_comsat():
    port = socket.getservbyname("biff", "udp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.5)
    got: list[bytes] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                got.append(sock.recvfrom(1024)[0])
            except socket.timeout:
                continue
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    try:
        run_pair(WORK, CONF, [(["-f", "s@example.org", "biffed"],
                               "Subject: biff\n\nbody\n")], home_hook=_hook)
        import time
        time.sleep(1)
    finally:
        stop.set()
        t.join(2)
        sock.close()
    assert len(got) == 2, got
    assert got[1] == got[0]
