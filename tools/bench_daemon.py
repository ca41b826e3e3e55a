"""bench_daemon: memory of each process kind, and connections per second.

DESCRIPTION
    Starts eximpy's daemon and real Exim's daemon (as tools/bench_receive.py
    does: loopback ports, throw-away spools, queue_only, ACLs that accept),
    then for each:
      - holds one SMTP session open and reads /proc/PID/smaps_rollup of
        every process of the daemon: resident set (Rss), proportional
        (Pss) and unique set size (USS = Private_Clean + Private_Dirty);
      - opens and closes N connections (banner, QUIT) from C clients and
        reports connections per second.

    Run as root:  .venv/bin/python tools/bench_daemon.py [-n 2000] [-c 10]

SEE ALSO
    issue 8 ("Speed and memory"); tools/bench_receive.py.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_receive as B  # noqa: E402


def smaps(pid: int) -> dict[str, int]:
    """kB figures from /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    out["USS"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


def tree(root: int) -> list[tuple[int, str]]:
    """(pid, title) of ``root`` and all its descendants."""
    kids: dict[int, list[int]] = {}
    names = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
        names[int(d)] = cmd.replace(b"\0", b" ").decode(errors="replace")[:70]
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append((pid, names.get(pid, "?")))
        todo.extend(kids.get(pid, []))
    return out


def _connector(port: int, count: int, out: "mp.Queue") -> None:
    done = 0
    for _ in range(count):
        try:
            with socket.create_connection(("127.0.0.1", port), 10) as s:
                f = s.makefile("rb")
                if not f.readline().startswith(b"220"):
                    continue
                s.sendall(b"QUIT\r\n")
                f.readline()
                done += 1
        except OSError:
            pass
    out.put(done)


def connections_per_second(port: int, total: int, conc: int) -> float:
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_connector, args=(port, total // conc, q))
             for _ in range(conc)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    done = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return done / (time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000, help="connections")
    ap.add_argument("-c", type=int, default=10, help="concurrent clients")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_daemon: run as root")
        return 1
    for kind in ("exim", "eximpy"):
        srv = B.Server(kind)
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), 5)
            s.recv(200)
            time.sleep(0.5)
            print(f"\n{kind}: memory in kB (one SMTP session open)")
            print(f"  {'pid':>7} {'Rss':>7} {'Pss':>7} {'USS':>7}  process")
            for pid, title in tree(srv.proc.pid):
                try:
                    m = smaps(pid)
                except OSError:
                    continue
                print(f"  {pid:>7} {m.get('Rss', 0):>7} {m.get('Pss', 0):>7} "
                      f"{m['USS']:>7}  {title}")
            s.close()
            rate = connections_per_second(srv.port, a.n, a.c)
            print(f"{kind}: {rate:.0f} connections/s ({a.c} clients, banner "
                  "and QUIT)")
        finally:
            srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
