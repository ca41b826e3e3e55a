"""bench_receive: messages per second received and spooled, eximpy vs Exim.

DESCRIPTION
    Starts eximpy's daemon and real Exim's daemon, each on its own loopback
    port with a throw-away spool, both with queue_only (receive and spool
    with fsync, no delivery), then sends the same load to each: C parallel
    client processes, each with one connection reused for N/C messages of
    about 2 KB (pipelined MAIL/RCPT/DATA).  Reports messages/s for each
    server and the ratio, for every concurrency asked for.

    Run as root (both daemons drop to their own users):
        .venv/bin/python tools/bench_receive.py [-n 5000] [-c 1,10,50]

    Every loop is bounded: at most -n messages per run and --timeout
    seconds per run.  Only 127.0.0.1 is used.

SEE ALSO
    issue 5 (speed targets), DESIGN.md section 6.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = ("Subject: benchmark\r\nFrom: <load@bench.example>\r\n\r\n"
        + ("x" * 70 + "\r\n") * 26)

COMMON = """\
primary_hostname = bench.example
qualify_domain = bench.example
acl_smtp_rcpt = accept
queue_only
smtp_accept_max = 200
smtp_accept_queue_per_connection = 0
smtp_accept_max_per_connection = 0
log_selector = -smtp_connection
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(100).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def _reply(f) -> bytes:
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


def _client(port: int, count: int, deadline: float, out: "mp.Queue") -> None:
    sent = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), 30)
        f = s.makefile("rb")
        _reply(f)
        s.sendall(b"EHLO bench.client\r\n")
        _reply(f)
        data = BODY.encode() + b".\r\n"
        while sent < count and time.monotonic() < deadline:
            s.sendall(b"MAIL FROM:<load@bench.example>\r\n"
                      b"RCPT TO:<sink@bench.example>\r\nDATA\r\n")
            for _ in range(3):
                r = _reply(f)
            if not r.startswith(b"354"):
                break
            s.sendall(data)
            if _reply(f).startswith(b"250"):
                sent += 1
        s.sendall(b"QUIT\r\n")
        s.close()
    finally:
        out.put(sent)


def load(port: int, total: int, conc: int, timeout: float) -> tuple[int, float]:
    q: mp.Queue = mp.Queue()
    per = max(1, total // conc)
    deadline = time.monotonic() + timeout
    procs = [mp.Process(target=_client, args=(port, per, deadline, q))
             for _ in range(conc)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    sent = sum(q.get() for _ in procs)
    elapsed = time.monotonic() - t0
    for p in procs:
        p.join()
    return sent, elapsed


class Server:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
        self.dir.chmod(0o755)
        self.port = _free_port()
        owner = "Debian-exim" if kind == "exim" else "eximpy"
        pw = pwd.getpwnam(owner)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        conf = self.dir / "bench.conf"
        conf.write_text(COMMON + f"spool_directory = {self.dir}/spool\n"
                        f"log_file_path = {self.dir}/%slog\n"
                        f"daemon_smtp_ports = {self.port}\n"
                        "local_interfaces = 127.0.0.1\n"
                        + ("keep_environment =\n" if kind == "exim" else ""))
        if kind == "exim":
            argv = ["exim", "-C", str(conf), "-bdf", "-oX", str(self.port),
                    "-oP", str(self.dir / "exim.pid")]
        else:
            argv = [sys.executable, "-m", "eximpy", "-C", str(conf), "-bdf"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def stop(self) -> None:
        """Stop the daemon.  Its spool stays until remove() (called after
        the last run): deleting thousands of files just before the next
        server starts would make that server's file creations slower
        (ext4 skips recently deleted inodes), a handicap for whichever
        server runs second."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5000, help="messages per run")
    ap.add_argument("-c", default="1,10,50", help="concurrencies")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_receive: run as root (both daemons drop privilege)")
        return 1
    print(f"{'clients':>7} {'exim msg/s':>11} {'eximpy msg/s':>13} {'ratio':>6}")
    done: list[Server] = []
    try:
        for conc in (int(c) for c in a.c.split(",")):
            rates = {}
            for kind in ("exim", "eximpy"):
                srv = Server(kind)
                done.append(srv)
                try:
                    sent, secs = load(srv.port, a.n, conc, a.timeout)
                finally:
                    srv.stop()
                rates[kind] = sent / secs if secs else 0.0
            ratio = rates["eximpy"] / rates["exim"] if rates["exim"] else 0.0
            print(f"{conc:>7} {rates['exim']:>11.0f} "
                  f"{rates['eximpy']:>13.0f} {ratio:>6.2f}", flush=True)
    finally:
        for srv in done:
            srv.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
