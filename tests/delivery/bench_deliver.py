"""Benchmark: local Maildir delivery of N queued messages, eximpy vs Exim.

Usage: python tests/delivery/bench_deliver.py [N]   (default 10000; root)

The queue is made once with eximpy's receive_local (spool files are
byte-compatible with Exim's) and copied; real Exim delivers its copy with
`exim -C conf -qf`, eximpy delivers the other from one warm process
(deliver_message for each id, no exec per message).  Prints both rates
and the ratio.
"""
from __future__ import annotations

import io
import os
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


def main(n: int) -> None:
    from eximpy.config import load_config
    from eximpy.deliver.deliver import deliver_many
    from eximpy.receive import LocalOptions, receive_local
    base = ROOT / "tests" / "_work" / "bench"
    ex, py = base / "exim", base / "eximpy"
    cex, cpy = prepare(ex), prepare(py)
    config = load_config(str(cpy))
    ids = []
    for i in range(n):
        text = (f"Subject: bench {i}\nFrom: a@example.org\n\n" + "x" * 500 + "\n").encode()
        r = receive_local(config, "a@example.org", [f"u{i % 4 + 1}"],
                          io.BytesIO(text), LocalOptions())
        ids.append(r.id)
    shutil.rmtree(ex / "spool")
    shutil.copytree(py / "spool", ex / "spool")
    for d, _, files in os.walk(ex / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    t0 = time.time()
    subprocess.run(["exim", "-C", str(cex), "-qf"], check=True)
    t_exim = time.time() - t0
    t0 = time.time()
    deliver_many(config, ids, parallel=int(os.environ.get("EXIMPY_PARALLEL", "2")),
                 forced=True)
    t_py = time.time() - t0
    cnt = lambda r: sum(len(os.listdir(r / "Maildir" / f"u{k}" / "new")) for k in range(1, 5))
    print(f"messages: {n}  delivered exim={cnt(ex)} eximpy={cnt(py)}")
    print(f"exim -qf: {t_exim:.2f}s  {n / t_exim:.0f} msg/s")
    print(f"eximpy  : {t_py:.2f}s  {n / t_py:.0f} msg/s")
    print(f"ratio eximpy/exim: {t_exim / t_py:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
