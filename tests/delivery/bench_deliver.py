"""Benchmark: local Maildir delivery of N queued messages, eximpy vs Exim.

Usage: python tests/delivery/bench_deliver.py [N] [ROUNDS]
       (default 10000 messages in 4 rounds; run as root)

Each round makes a queue of N/ROUNDS messages with eximpy's receive_local
(spool files are byte-compatible with Exim's) and copies it; real Exim
delivers one copy with `exim -C conf -qf` (a delivery process forked and
exec'd per message), eximpy the other through delivery slots
(eximpy.deliver.slots.run_queue: EXIMPY_PARALLEL long-lived forked
children, default 2, as the daemon's delivery role runs them; no exec per
message).  Every local delivery runs as the mailbox owner (user = nobody):
Exim's delivery subprocess, eximpy's warm worker per user
(eximpy.deliver.worker).  The rounds alternate which of the two goes
first, so that load from other processes on a shared machine hits both
alike.

Prints the summed wall-clock rates and their ratio, and the CPU time per
message (the process and all its reaped descendants: Exim's delivery
processes; eximpy's slots and workers), which depends much less on other
load.  With BENCH_QF=1 each round also runs `eximpy -qf` (one slot, one
message at a time, as Exim's -qf) on a third copy.
"""
from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
md:
  driver = accept
  local_parts = u1 : u2 : u3 : u4
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = @ROOT@/Maildir/$local_part_data
  maildir_format
  user = nobody
"""


def prepare(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "Maildir"):
        (root / d).mkdir(parents=True)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    shutil.chown(root / "Maildir", "nobody")
    conf = root / "exim.conf"
    conf.write_text(CONF.replace("@ROOT@", str(root)))
    return conf


def _receive(config, n: int, start: int) -> None:
    from eximpy.receive import LocalOptions, receive_local
    for i in range(start, start + n):
        text = (f"Subject: bench {i}\nFrom: a@example.org\n\n"
                + "x" * 500 + "\n").encode()
        receive_local(config, "a@example.org", [f"u{i % 4 + 1}"],
                      io.BytesIO(text), LocalOptions())


def _copy_spool(src: Path, dst: Path) -> None:
    shutil.rmtree(dst / "spool")
    shutil.copytree(src / "spool", dst / "spool")
    for d, _, files in os.walk(dst / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")


def _timed(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process and reaped descendants)."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    fn()
    t = time.time() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime
              for a, b in ((r0, r1), (c0, c1)))
    return t, cpu


def _count(r: Path) -> int:
    return sum(len(os.listdir(r / "Maildir" / f"u{k}" / "new"))
               for k in range(1, 5))


def main(n: int, rounds: int = 4) -> None:
    from eximpy.config import load_config
    from eximpy.deliver.deliver import _warm_imports
    from eximpy.proc.queuerun import queued_ids
    from eximpy.deliver.slots import run_queue
    parallel = int(os.environ.get("EXIMPY_PARALLEL", "2"))
    want_qf = os.environ.get("BENCH_QF") == "1"
    base = ROOT / "tests" / "_work" / "bench"
    per = [n // rounds + (1 if k < n % rounds else 0) for k in range(rounds)]
    tot = {"exim": [0.0, 0.0, 0], "eximpy": [0.0, 0.0, 0], "eximpy-qf": [0.0, 0.0, 0]}
    _warm_imports()
    start = 0
    for k, m in enumerate(per):
        ex, py, qf = base / "exim", base / "eximpy", base / "eximpy-qf"
        cex, cpy = prepare(ex), prepare(py)
        cqf = prepare(qf) if want_qf else None
        config = load_config(str(cpy))
        _receive(config, m, start)
        start += m
        _copy_spool(py, ex)
        if want_qf:
            _copy_spool(py, qf)
        ids = queued_ids(config)

        def run_exim() -> None:
            p = subprocess.run(["exim", "-C", str(cex), "-qf"])
            if p.returncode:
                print(f"exim -qf exited with status {p.returncode}")

        def run_eximpy() -> None:
            run_queue(config, ids, forced=True, limit=parallel)

        def run_qf() -> None:
            subprocess.run([sys.executable, "-m", "eximpy", "-C", str(cqf),
                            "-qf"], check=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        order = [("exim", run_exim, ex), ("eximpy", run_eximpy, py)]
        if want_qf:
            order.append(("eximpy-qf", run_qf, qf))
        if k % 2:
            order.reverse()
        for name, fn, d in order:
            t, cpu = _timed(fn)
            tot[name][0] += t
            tot[name][1] += cpu
            tot[name][2] += _count(d)
    (te, ce, de), (tp, cp, dp) = tot["exim"][:3], tot["eximpy"][:3]
    print(f"messages: {n} in {rounds} rounds  delivered exim={de} eximpy={dp}"
          + (f" eximpy-qf={tot['eximpy-qf'][2]}" if want_qf else ""))
    print(f"exim -qf: {te:.2f}s  {n / te:.0f} msg/s  "
          f"cpu {1000 * ce / n:.2f} ms/msg")
    print(f"eximpy  : {tp:.2f}s  {n / tp:.0f} msg/s  "
          f"cpu {1000 * cp / n:.2f} ms/msg  ({parallel} slots)")
    if want_qf:
        tq, cq, _dq = tot["eximpy-qf"]
        print(f"eximpy -qf: {tq:.2f}s  {n / tq:.0f} msg/s  "
              f"cpu {1000 * cq / n:.2f} ms/msg  (ratio {te / tq:.2f})")
    print(f"cpu per message exim/eximpy: {ce / cp:.2f}")
    print(f"ratio eximpy/exim: {te / tp:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 4)
