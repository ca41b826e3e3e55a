"""The iplookup router with a real UDP responder on 127.0.0.1 (Debian's
Exim is built without iplookup, so the expected output follows spec
chapter 19 rather than an oracle run)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = {w}/spool
log_file_path = {w}/log/%slog
begin routers
ipl:
  driver = iplookup
  domains = lookup.example
  hosts = 127.0.0.1
  port = {port}
  protocol = udp
  optional
final:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


def _responder(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        q = data.decode()
        if q.startswith("stop"):
            return
        lp = q.split("@", 1)[0]
        if lp == "mismatch":
            sock.sendto(b"x@y other@z", peer)
        else:
            sock.sendto(f"{lp}@rerouted.example {q.split()[1]}".encode(), peer)


def test_iplookup_udp(tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    t = threading.Thread(target=_responder, args=(sock,), daemon=True)
    t.start()
    conf = tmp_path / "c.conf"
    conf.write_text(CONF.format(w=tmp_path, port=port))
    p = subprocess.run([sys.executable, "-m", "eximpy", "-C", str(conf), "-bt",
                        "a@lookup.example", "mismatch@lookup.example",
                        "b@other.example"], capture_output=True, text=True,
                       cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"stop", ("127.0.0.1", port))
    assert p.stdout == (
        "a@rerouted.example\n"
        "    <-- a@lookup.example\n"
        "  router = final, transport = t\n"
        "mismatch@lookup.example\n"
        "  router = final, transport = t\n"
        "b@other.example\n"
        "  router = final, transport = t\n"), p.stderr
    assert p.returncode == 0
