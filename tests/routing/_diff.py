"""Differential runner for the routing suite: real Exim vs eximpy -bt/-bv.

run_exim(case, args, cwd) runs real Exim (the oracle) in ``cwd`` and keeps
its normalized answer as tests/golden/routing/<case>, the same format and
rules as tests/oracle.py (EXIMPY_REGEN_GOLDEN=1 rewrites).  run_eximpy()
runs eximpy's address-test entry point the same way.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, keep_golden

BT_MAIN = Path(__file__).resolve().parent / "bt_main.py"


def _run(argv: list[str], cwd: Path, stdin: str | None = None,
         env: dict | None = None) -> Result:
    e = dict(os.environ)
    e["TZ"] = "UTC"
    e["PYTHONPATH"] = str(ROOT)
    if env:
        e.update(env)
    p = subprocess.run(argv, input=stdin.encode() if stdin else None,
                       capture_output=True, env=e, cwd=str(cwd), timeout=120)
    return Result(p.returncode, p.stdout.decode("utf-8", "surrogateescape"),
                  p.stderr.decode("utf-8", "surrogateescape"))


def run_exim(case: str, args: list[str], cwd: Path, work: Path,
             stdin: str | None = None) -> Result:
    path = GOLDEN / "routing" / case
    norm = _normalizer(work)
    if EXIM is None:
        assert path.exists(), f"no golden {path} and no Exim installed"
        return _parse_golden(path.read_text())
    live = _run([EXIM] + args, cwd, stdin)
    live = Result(live.rc, norm(live.out), norm(live.err))
    keep_golden(path, live.as_text())
    return live


def run_eximpy(args: list[str], cwd: Path, work: Path,
               stdin: str | None = None) -> Result:
    # -bt/-bv/-bvs go through the real command line; -brw is not wired
    # into eximpy.cli.modes yet, so it uses the helper entry point.
    entry = [str(BT_MAIN)] if "-brw" in args else ["-m", "eximpy"]
    r = _run([sys.executable] + entry + args, cwd, stdin)
    norm = _normalizer(work)
    return Result(r.rc, norm(r.out), norm(r.err))


def _normalizer(work: Path):
    w = str(work)

    def norm(s: str) -> str:
        s = re.sub(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "@TIME@ ", s)
        return s.replace(w, "@WORK@")
    return norm
