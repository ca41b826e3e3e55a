"""Message ids: format, decoding against real Exim, uniqueness across processes."""
from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys

from eximpy.message import ids
from tests.oracle import exim_run


def test_format_and_roundtrip(monkeypatch) -> None:
    # A fresh per-process state: ids made earlier in this test process (at
    # later times) would otherwise keep this one monotone, as they should.
    monkeypatch.setattr(ids, "_STATE", ids._IdState())
    t = 1795606101.387272
    mid = ids.new_message_id(now=t)
    assert ids.ID_RE.fullmatch(mid)
    info = ids.parse_message_id(mid)
    assert info.time == 1795606101
    assert info.pid == os.getpid() % ids.PID_SPAN
    assert info.usec == 385000          # 5 ms ticks, as in Exim 4.96


def test_decoding_matches_real_exim_base62d() -> None:
    # A real id made by Exim 4.96 (EXIM-INVENTORY 3.1): its fields decode
    # as Exim's own ${base62d:} says.
    real = "1xWBAj-0002pL-1F"
    r = exim_run("spool", "ids-base62d", ["-C", "/dev/null", "-be",
                 "${base62d:1xWBAj} ${base62d:0002pL} ${base62d:1F}"])
    t, p, f = (int(x) for x in r.out.split())
    info = ids.parse_message_id(real)
    assert (info.time, info.pid, info.fraction) == (t, p, f)
    assert ids.base62_encode(t, 6) == "1xWBAj"


def test_localhost_number_variant() -> None:
    mid = ids.new_message_id(localhost_number=3, now=1795606101.9999)
    info = ids.parse_message_id(mid, localhost_number=3)
    assert info.localhost_number == 3
    assert info.fraction == 3 * 200 + 199


def test_accepts_497_ids() -> None:
    assert ids.is_message_id("16VDhn-000000001bo-D342")
    assert ids.is_message_id("1xWBAj-0002pL-1F")
    for bad in ("1xWBAj-0002pL-1", "1xWBAj_0002pL-1F", "1xWBAj-0002pL-1F\n",
                "../../etc/pa", ""):
        assert not ids.is_message_id(bad)


def test_monotone_within_process_same_second() -> None:
    got = [ids.new_message_id(now=1795606101.5) for _ in range(1000)]
    assert len(set(got)) == 1000
    assert got == sorted(got)


def _worker(n: int, q) -> None:  # type: ignore[no-untyped-def]
    q.put([ids.new_message_id() for _ in range(n)])


def test_unique_across_concurrent_processes_and_forks() -> None:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(3000, q)) for _ in range(6)]
    for p in procs:
        p.start()
    allids: list[str] = []
    for _ in procs:
        allids.extend(q.get(timeout=60))
    for p in procs:
        p.join()
    # and some from this process, interleaved in time with the children
    allids.extend(ids.new_message_id() for _ in range(3000))
    assert len(allids) == len(set(allids)) == 21000


def test_sequential_processes_reusing_the_pid_slot() -> None:
    # Short-lived processes each making a few ids: the exit guard keeps
    # ids unique even if pids are recycled quickly.
    code = ("from eximpy.message.ids import new_message_id as n;"
            "print(' '.join(n() for _ in range(50)))")
    out: list[str] = []
    for _ in range(8):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, check=True)
        out.extend(r.stdout.split())
    assert len(out) == len(set(out)) == 400
