"""Helpers for the configuration tests: run real Exim and eximpy on one file.

DESCRIPTION
    Configurations are written under tests/_work/config/ with stable
    relative paths, so that Exim's answers (which name the file) can be kept
    as goldens in tests/golden/config/.  spool_directory and log_file_path
    point into /tmp/eximpy-config-tests (made writable for the exim user),
    and Exim is only ever run with -bP/-bV.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from oracle import ROOT, Result, exim_run, eximpy_run

WORK = ROOT / "tests" / "_work" / "config"
SCRATCH = Path("/tmp/eximpy-config-tests")
BASE = (f"spool_directory = {SCRATCH}/spool\n"
        f"log_file_path = {SCRATCH}/log/%slog\n")

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? ", re.M)
_ERR = re.compile(r"(Exim configuration error[^\n]*\n  [^\n]*)")


def scratch() -> None:
    for d in (SCRATCH, SCRATCH / "spool", SCRATCH / "log"):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o777)


def write_conf(name: str, text: str) -> str:
    """Write a configuration; returns its path relative to the repository."""
    scratch()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"{name}.conf"
    path.write_text(text)
    return str(path.relative_to(ROOT))


def config_error(stderr: str) -> str:
    """The first 'Exim configuration error ...' message (two lines) or ''."""
    m = _ERR.search(_STAMP.sub("", stderr))
    return m.group(1) if m else ""


_NOISE = re.compile(r"^(LOG: .*|exim: could not open panic log.*|"
                    r"Warning: purging the environment\.|"
                    r" Suggested action: use keep_environment\.)\n", re.M)


def _hostnames() -> list[str]:
    from eximpy.config.main_options import _primary_hostname
    names = {os.uname().nodename, _primary_hostname()}
    return sorted((n for n in names if n), key=len, reverse=True)


def normalize(text: str) -> str:
    """Stable form of an output: a configuration error is reduced to its
    message (Exim repeats it for each log it tries); timestamps, panic-log
    noise and the environment warning go; this machine's host name (the
    default primary_hostname, and Debian's generated domain lists) becomes
    HOSTNAME, so that goldens hold on another machine."""
    if "Exim configuration error" in text:
        return config_error(text) + "\n"
    text = _NOISE.sub("", _STAMP.sub("", text))
    for host in _hostnames():
        text = re.sub(r"(?<![\w.-])" + re.escape(host) + r"(?![\w-])",
                      "HOSTNAME", text)
    return text


def run_both(suite: str, case: str, args: list[str]) -> tuple[Result, Result]:
    """Real Exim (checked against its golden) and eximpy on the same args."""
    exim = exim_run(suite, case, args, normalize=normalize)
    ours = eximpy_run(args)
    ours = Result(ours.rc, normalize(ours.out), normalize(ours.err))
    return exim, ours


def exim_run_as(user: str, suite: str, case: str, args: list[str]) -> Result:
    """Like oracle.exim_run, but real Exim runs as ``user`` (runuser), for
    what non-admin callers see.  Same golden rules as the oracle."""
    import oracle
    path = oracle.GOLDEN / suite / case
    if oracle.EXIM is None:
        assert path.exists(), f"no Exim and no golden {path}"
        return oracle._parse_golden(path.read_text())
    live = oracle._run(["runuser", "-u", user, "--", oracle.EXIM] + args,
                       None, None, 60)
    live = Result(live.rc, normalize(live.out), normalize(live.err))
    oracle.keep_golden(path, live.as_text())
    return live
