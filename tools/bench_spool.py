#!/usr/bin/env python3
"""Spool benchmark for ``make bench-spool``: write and read N spool files.

SUMMARY
    python tools/bench_spool.py [--count 10000] [--procs 1] [--dir DIR]

DESCRIPTION
    Writes ``count`` messages the way receive does (a -D file created,
    locked, written and fsynced; a -H file written to hdr.<id>, fsynced,
    renamed, and the directory fsynced: 3 fsyncs per message), then reads
    them all back the way ``-bp`` does (parse every -H, stat every -D).
    In the same run it measures the raw fsync rate of the disk (write 512
    bytes + fsync, repeatedly, on one file), so messages/s can be read
    against what the disk allows: with 3 fsyncs per message, one writer
    cannot exceed fsync_rate / 3 messages per second; ``--procs`` writers
    in parallel show how well the disk groups concurrent fsyncs.

    The spool is created under --dir (default: a temporary directory on
    the same file system as /var/tmp) and removed afterwards.

SEE ALSO
    DESIGN.md section 6; eximpy.spool.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eximpy.message.ids import new_message_id  # noqa: E402
from eximpy.spool import data_file, header_file  # noqa: E402
from eximpy.spool.layout import SpoolLayout  # noqa: E402
from eximpy.spool.message import Header, Recipient, SpoolMessage  # noqa: E402

BODY = b"".join(b"line %d of a typical small message body\n" % i
                for i in range(40))


def _message(mid: str, now: float) -> SpoolMessage:
    m = SpoolMessage(id=mid, sender="alice@example.test",
                     received_time=int(now),
                     received_time_usec=int((now % 1) * 1e6),
                     received_time_complete=(int(now), 0),
                     ident="root", received_protocol="local",
                     body_linecount=40, max_received_linelength=45,
                     deliver_firsttime=True, tls_resumption="A")
    m.recipients = [Recipient("bob@example.test"),
                    Recipient("carol@remote.test")]
    m.headers = [Header("P", f"Received: from root by mx.example.test with "
                        f"local (Exim 4.96)\n\tid {mid};\n\tWed, 25 Nov "
                        f"2026 11:28:21 +0000\n"),
                 Header.make("From: Alice <alice@example.test>\n"),
                 Header.make("Subject: benchmark\n"),
                 Header.make(f"Message-Id: <E{mid}@mx.example.test>\n")]
    return m


def write_messages(spool: str, n: int) -> list[str]:
    layout = SpoolLayout(spool)
    layout.ensure_dirs()
    ids = []
    for _ in range(n):
        mid = new_message_id()
        df = data_file.create(layout, mid)
        df.write(BODY)
        df.finish()
        header_file.write(layout, _message(mid, time.time()))
        df.close()
        ids.append(mid)
    return ids


def _writer(args: tuple[str, int]) -> int:
    return len(write_messages(*args))


def read_messages(spool: str) -> int:
    layout = SpoolLayout(spool)
    n = 0
    for mid, d in layout.list_files():
        header_file.read(os.path.join(d, mid + "-H"))
        os.stat(os.path.join(d, mid + "-D"))
        n += 1
    return n


def raw_fsync_rate(directory: str, seconds: float = 2.0,
                   max_count: int = 20000) -> tuple[int, float]:
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = b"x" * 512
    count = 0
    start = time.perf_counter()
    try:
        while count < max_count:
            os.write(fd, block)
            os.fsync(fd)
            count += 1
            if time.perf_counter() - start > seconds:
                break
    finally:
        os.close(fd)
        os.unlink(path)
    return count, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="bench-spool-", dir=a.dir or "/var/tmp")
    try:
        spool = os.path.join(base, "spool")
        n_fs, t_fs = raw_fsync_rate(base)
        fs_rate = n_fs / t_fs
        t0 = time.perf_counter()
        if a.procs > 1:
            per = [a.count // a.procs + (1 if i < a.count % a.procs else 0)
                   for i in range(a.procs)]
            SpoolLayout(spool).ensure_dirs()
            with mp.get_context("fork").Pool(a.procs) as pool:
                written = sum(pool.map(_writer, [(spool, k) for k in per]))
        else:
            written = len(write_messages(spool, a.count))
        t_w = time.perf_counter() - t0
        t0 = time.perf_counter()
        read = read_messages(spool)
        t_r = time.perf_counter() - t0
        w_rate = written / t_w
        print(f"raw fsync:   {n_fs} fsyncs in {t_fs:.2f} s = {fs_rate:.0f} "
              f"fsync/s ({1000 / fs_rate:.3f} ms each)")
        print(f"spool write: {written} messages ({2 * written} files, "
              f"{3 * written} fsyncs) by {a.procs} process(es) in "
              f"{t_w:.2f} s = {w_rate:.0f} msg/s = {2 * w_rate:.0f} files/s")
        print(f"spool read:  {read} messages ({2 * read} files) in "
              f"{t_r:.2f} s = {read / t_r:.0f} msg/s = "
              f"{2 * read / t_r:.0f} files/s")
        print(f"write vs disk: {3 * w_rate / fs_rate:.2f} x the single-"
              f"writer fsync bound of {fs_rate / 3:.0f} msg/s")
        if read != written:
            print(f"ERROR: wrote {written}, read back {read}",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
