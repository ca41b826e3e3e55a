"""ratelimit under 20 concurrent -bh sessions: exact counts.

Twenty session processes each send three RCPTs to an ACL with
``ratelimit = 25 / 1d / per_rcpt / <one key>``.  In leaky mode a burst of
events is allowed exactly up to the limit (Exim's EWMA: the k-th event of a
fast burst has a rate just under k), and refused events do not update the
hints, so exactly 25 of the 60 RCPTs must be accepted however the
processes interleave.  Real Exim, run the same way, gives the same count;
strict mode (every event recorded) is checked as well.  The hints are in
an LMDB environment under <spool>/db/ratelimit (eximpy.hintsdb).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import EXIM, ROOT

WORK = ROOT / "tests" / "_work" / "acl_ratelimit"
PY = [sys.executable, "-m", "eximpy.cli.host_check"]

DIALOGUE = ("EHLO c\r\nMAIL FROM:<a@b.c>\r\n" +
            "".join(f"RCPT TO:<u{i}@example.org>\r\n" for i in range(3)) +
            "QUIT\r\n")


def _conf(d: Path, mode: str) -> Path:
    spool = d / "spool"
    (spool / "log").mkdir(parents=True)
    conf = d / "conf"
    conf.write_text(
        "primary_hostname = mx.example.com\n"
        f"spool_directory = {spool}\nlog_file_path = {spool}/log/%slog\n"
        "exim_user = root\nexim_group = root\nnever_users =\n"
        "acl_smtp_rcpt = r\n"
        "begin acl\nr:\n"
        f"  deny ratelimit = 25 / 1d / per_rcpt / {mode}onekey\n"
        "  accept\n")
    return conf


def _run_many(argv: list[str], n: int = 20) -> list[str]:
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, cwd=str(ROOT),
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
             for _ in range(n)]
    for p in procs:
        p.stdin.write(DIALOGUE.encode())
        p.stdin.close()
    outs = []
    for p in procs:
        outs.append(p.stdout.read().decode())
        p.wait(timeout=120)
    return outs


def _count(outs: list[str]) -> tuple[int, int]:
    text = "".join(outs)
    return text.count("250 Accepted"), text.count("550 Administrative")


@pytest.mark.parametrize("mode", ["", "strict/"])
def test_ratelimit_concurrent(mode: str) -> None:
    d = WORK / (mode.strip("/") or "leaky")
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    conf = _conf(d, mode)
    outs = _run_many(PY + ["-C", str(conf), "-bh", "10.9.8.7"])
    assert _count(outs) == (25, 35)
    # The stored record: one key, in Exim's key format.
    from eximpy import hintsdb
    db = hintsdb.open(str(d / "spool"), "ratelimit")
    keys = [k for k, _v in db.items()]
    assert keys == [b"1d/per_rcpt/onekey"]
    if EXIM is not None:
        e = d / "exim"
        e.mkdir()
        econf = _conf(e, mode)
        outs = _run_many([EXIM, "-C", str(econf), "-bh", "10.9.8.7"])
        assert _count(outs) == (25, 35)
