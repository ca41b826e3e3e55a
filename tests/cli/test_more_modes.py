"""-brt, -bmalware and -ps/-pd (perl_at_start), compared with real Exim.

The modes themselves live in eximpy.deliver.retry (retry_test),
eximpy.acl.malware (malware_in_file) and eximpy.expand.perl
(start_at_startup); these tests check the front door's wiring: the same
command line gives the same output, exit status and log lines as
`exim -C conf ...`.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from oracle import EXIM, ROOT

CONF = """\
primary_hostname = test.example
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = root
exim_group = root
never_users =
{extra}
begin routers
begin transports
begin retry
*.example  *  F,2h,15m; G,16h,1h,1.5; F,4d,6h
*          rcpt_4xx  F,30m,5m
*          *  F,1h,10m
"""


def _norm(text: str, d: Path) -> str:
    text = text.replace(str(d), "DIR")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", text)
    return re.sub(r"dummy-\d+", "dummy-N", text)


def _both(d: Path, extra: str, args: list[str]) -> list[tuple]:
    out = []
    for name, argv0 in (("exim", [EXIM]),
                        ("eximpy", [str(ROOT / ".venv" / "bin" / "python"),
                                    "-m", "eximpy"])):
        base = d / name
        for sub in ("spool", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = base / "conf"
        conf.write_text(CONF.format(d=base, extra=extra))
        r = subprocess.run(argv0 + ["-C", str(conf)] + args,
                           capture_output=True, text=True, cwd=str(ROOT),
                           timeout=60)
        logs = {p.name: _norm(p.read_text(), base)
                for p in sorted((base / "log").glob("*"))}
        out.append((r.returncode, _norm(r.stdout, base),
                    _norm(r.stderr, base), logs))
    return out


@pytest.mark.parametrize("args", [
    ["-brt", "x@a.example"], ["-brt", "b.org"], ["-brt", "b.org", "rcpt_4xx"],
    ["-brt", "nodots"], ["-brt"],
])
def test_retry_test_mode(exim_scratch: Path, args: list[str]) -> None:
    exim, ours = _both(exim_scratch, "", args)
    assert ours == exim


@pytest.mark.parametrize("opt", ["-ps", "-pd", None])
def test_perl_at_start(exim_scratch: Path, opt: str | None) -> None:
    """A perl_startup that does not compile is fatal at start-up with
    perl_at_start or -ps, and an expansion failure at first use with -pd;
    one that dies while it runs is ignored."""
    for n, startup in enumerate(("sub x {", "die 'broken startup'")):
        extra = f"perl_at_start\nperl_startup = {startup}\n"
        args = ([opt] if opt else []) + ["-be", "x${perl{x}}"]
        exim, ours = _both(exim_scratch / str(n), extra, args)
        assert ours == exim


def test_malware_mode_without_scanner(exim_scratch: Path) -> None:
    (exim_scratch / "file").write_text("harmless\n")
    exim, ours = _both(exim_scratch, "av_scanner = clamd:" + str(exim_scratch / "none"),
                       ["-bmalware", str(exim_scratch / "file")])
    assert ours == exim
