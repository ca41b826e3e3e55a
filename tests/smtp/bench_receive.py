"""Receive benchmark: messages/s spooled (fsync) by eximpy and by real Exim.

Usage:  python tests/smtp/bench_receive.py [--n 5000] [--conc 1,10,50]
                                           [--size 2048] [--no-exim]

Both servers get the same throw-away configuration (queue_only,
acl_smtp_rcpt = accept, spool and log in a temp dir) and the same load: N
messages of SIZE bytes over CONC concurrent, reused connections (MAIL, RCPT,
DATA pipelined, then the data, waiting for each 250).

  eximpy: a listening socket; one forked child per connection runs
          eximpy.smtp.connection.serve_socket() (what the receiver role does).
  Exim:   no daemon is started (project rule); each connection is handed to
          `exim -C conf -bs` with the socket as stdin/stdout -- Exim's inetd
          mode, the same receiving code as its daemon's per-connection child.

Prints one line per concurrency with both rates and their ratio.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

EXIM = shutil.which("exim") or "/usr/sbin/exim"


def _conf(d: Path) -> Path:
    from smtp.conftest import write_conf
    return write_conf(d, "acl_smtp_rcpt = accept\nsmtp_accept_max = 0\n"
                      "smtp_accept_max_per_connection = 0\n"
                      "smtp_max_synprot_errors = 1000")


def _eximpy_server(conf: Path, lsock: socket.socket) -> None:
    from eximpy.config import load_config
    from eximpy.log.writer import LogWriter
    from eximpy.smtp.connection import serve_socket
    import eximpy.smtp.accept  # noqa: F401  (warm imports before forking)
    import eximpy.expand  # noqa: F401
    cfg = load_config(str(conf))
    log = LogWriter.from_config(cfg)
    # Build the TLS context once, before forking (as the receiver role
    # should), so that no connection pays for a certificate.
    from eximpy.smtp.tls import server_context
    tls_ctx = server_context(cfg, lambda t: t)
    from eximpy.smtp.connection import prepare
    opts = prepare(cfg)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.freeze()
    while True:
        conn, peer = lsock.accept()
        if os.fork() == 0:
            lsock.close()
            prof = os.environ.get("BENCH_PROFILE")
            if prof:
                import cProfile
                pr = cProfile.Profile()
                pr.enable()
            serve_socket(conn, cfg, peer=peer[:2],
                         local=conn.getsockname()[:2], log=log,
                         tls_context=tls_ctx, options=opts)
            if prof:
                pr.disable()
                pr.dump_stats(f"{prof}.{os.getpid()}")
            conn.close()
            os._exit(0)
        conn.close()


def _exim_server(conf: Path, lsock: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        conn, _peer = lsock.accept()
        if os.fork() == 0:
            lsock.close()
            os.dup2(conn.fileno(), 0)
            os.dup2(conn.fileno(), 1)
            os.execv(EXIM, [EXIM, "-C", str(conf), "-bs"])
        conn.close()


def _start(kind: str, conf: Path) -> tuple[int, int]:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        try:
            (_eximpy_server if kind == "eximpy" else _exim_server)(conf, lsock)
        finally:
            os._exit(0)
    lsock.close()
    return pid, port


def _read_reply(f) -> bytes:
    while True:
        line = f.readline()
        if not line:
            raise EOFError
        if line[3:4] != b"-":
            return line


def _client(port: int, count: int, size: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    _read_reply(f)
    s.sendall(b"EHLO bench.example\r\n")
    _read_reply(f)
    body = b"Subject: bench\r\n\r\n" + (b"x" * 78 + b"\r\n") * (size // 80) \
        + b".\r\n"
    for _ in range(count):
        s.sendall(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
                  b"DATA\r\n")
        for _ in range(3):
            r = _read_reply(f)
        assert r.startswith(b"354"), r
        s.sendall(body)
        r = _read_reply(f)
        assert r.startswith(b"250"), r
    s.sendall(b"QUIT\r\n")
    _read_reply(f)
    s.close()


def run(kind: str, n: int, conc: int, size: int) -> float:
    d = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    conf = _conf(d)
    pid, port = _start(kind, conf)
    time.sleep(0.5)
    per = n // conc
    t0 = time.time()
    kids = []
    for _ in range(conc):
        k = os.fork()
        if k == 0:
            try:
                _client(port, per, size)
            finally:
                os._exit(0)
        kids.append(k)
    for k in kids:
        os.waitpid(k, 0)
    dt = time.time() - t0
    os.killpg(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    got = len([x for x in os.listdir(d / "spool" / "input")
               if x.endswith("-H")]) if (d / "spool" / "input").exists() \
        else 0
    shutil.rmtree(d, ignore_errors=True)
    if got != per * conc:
        print(f"  {kind}: only {got} of {per * conc} messages spooled")
    return got / dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--conc", default="1,10,50")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-exim", action="store_true")
    a = ap.parse_args()
    for c in [int(x) for x in a.conc.split(",")]:
        ours = run("eximpy", a.n, c, a.size)
        line = f"concurrency {c:3d}: eximpy {ours:7.0f} msg/s"
        if not a.no_exim and os.path.exists(EXIM):
            theirs = run("exim", a.n, c, a.size)
            line += f"   exim {theirs:7.0f} msg/s   ratio {ours / theirs:.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
