"""The oracle: run real Exim 4.96 beside eximpy and keep its answers as goldens.

DESCRIPTION
    Differential tests ask ``exim_run()`` for what real Exim prints for an
    invocation, and compare it with eximpy's output.  Every answer of Exim's
    is also kept in ``tests/golden/<suite>/<case>`` (after ``normalize``), so
    a reader can see what Exim said, and a run on a machine without Exim
    still compares eximpy against the stored answer.

    When Exim is installed (``make test`` installs it as root), its live
    output is the oracle, and the stored golden is refreshed from it when
    they differ (a warning names the file: machines differ in users, uids
    and the like, and a golden must not fail a run for that).  With
    EXIMPY_STRICT_GOLDEN=1 a difference fails instead, to see what changed.
    A missing golden is written.

    Exim is never started as a daemon here; only -b* test modes are used.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
EXIM = shutil.which("exim") or shutil.which("exim4") or (
    "/usr/sbin/exim" if os.path.exists("/usr/sbin/exim") else None)
EXIMPY = [sys.executable, "-m", "eximpy"]


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def as_text(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def _run(argv: list[str], stdin: str | bytes | None, env: dict | None,
         timeout: float) -> Result:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    e = dict(os.environ)
    e.setdefault("TZ", "UTC")
    if env:
        e.update(env)
    p = subprocess.run(argv, input=data, capture_output=True, env=e,
                       timeout=timeout, cwd=str(ROOT))
    return Result(p.returncode, p.stdout.decode("utf-8", "surrogateescape"),
                  p.stderr.decode("utf-8", "surrogateescape"))


def eximpy_run(args: list[str], stdin: str | bytes | None = None,
               env: dict | None = None, timeout: float = 60) -> Result:
    """Run eximpy's front door with ``args`` (as ``exim`` would get them)."""
    e = {"PYTHONPATH": str(ROOT)}
    if env:
        e.update(env)
    return _run(EXIMPY + args, stdin, e, timeout)


def exim_available() -> bool:
    return EXIM is not None


def exim_run(suite: str, case: str, args: list[str],
             stdin: str | bytes | None = None, env: dict | None = None,
             normalize=None, timeout: float = 60) -> Result:
    """What real Exim answers to ``args``, checked against the golden file.

    ``normalize`` (str -> str) removes what differs between machines or runs
    (temporary paths, timestamps) before the golden comparison; the Result
    returned is normalized the same way.
    """
    norm = normalize or (lambda s: s)
    path = GOLDEN / suite / case
    if EXIM is None:
        if not path.exists():
            raise AssertionError(
                f"real Exim is not installed and there is no golden {path}; "
                "run `make test` as root to install exim4-daemon-heavy")
        return _parse_golden(path.read_text())
    live = _run([EXIM] + args, stdin, env, timeout)
    live = Result(live.rc, norm(live.out), norm(live.err))
    text = live.as_text()
    keep_golden(path, text)
    return live


def keep_golden(path: Path, text: str | bytes) -> None:
    """Store real Exim's live answer as the golden ``path`` (see above):
    written when missing, refreshed (with a warning) when it changed, or a
    failure with EXIMPY_STRICT_GOLDEN=1."""
    binary = isinstance(text, bytes)
    if path.exists():
        old = path.read_bytes() if binary else path.read_text()
        if old == text:
            return
        if os.environ.get("EXIMPY_STRICT_GOLDEN") == "1":
            raise AssertionError(f"real Exim's answer differs from golden "
                                 f"{path}\n{text!r}")
        import warnings
        warnings.warn(f"golden {path} refreshed from real Exim's answer")
    path.parent.mkdir(parents=True, exist_ok=True)
    if binary:
        path.write_bytes(text)
    else:
        path.write_text(text)


def _parse_golden(text: str) -> Result:
    head, rest = text.split("\n--- stdout\n", 1)
    out, err = rest.split("--- stderr\n", 1)
    return Result(int(head[3:]), out, err)
