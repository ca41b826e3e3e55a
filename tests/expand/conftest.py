"""Fixtures for the expansion tests: a work directory with a configuration,
a cdb file, an SQLite database and dbm files, at fixed places so that the
goldens (normalized) do not depend on the machine."""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "expand" / "fixtures"
# One work directory per test process, so that concurrent runs (several
# workers share this machine) never trip over each other's files.
WORK = ROOT / "tests" / "_work" / f"expand-{os.getpid()}"
# Ports of the test servers (test_readsocket.py), chosen at run time.
PORTS: dict[str, int] = {}

CONF = """\
primary_hostname = mx.example.test
qualify_domain = example.test
spool_directory = @W@/spool
log_file_path = @W@/log/%slog
keep_environment = PATH
perl_startup = do '@F@/startup.pl'
domainlist local_domains = example.test : @
hostlist relay = 127.0.0.1 : 10.0.0.0/8
addresslist bad = *@spam.test : ^x
localpartlist lps = alice : bob
domainlist semi = <; a.b ; c:d
domainlist nested = +local_domains : other.test
"""


ACL_SECTION = """
begin acl
a_accept:
  accept message = hello $acl_arg1 ($acl_narg)
a_deny:
  deny message = go away
a_defer:
  defer message = later
a_set:
  accept set acl_c0 = set by acl
         set acl_m_x = m var
a_cond:
  accept condition = ${if eq{$acl_arg1}{x}}
         message = cond true
  deny message = cond false
a_empty:
  accept
"""


def subst(text: str, dbm_dir: str | None = None) -> str:
    text = text.replace("@F@", str(FIX)).replace("@W@", str(WORK))
    for k, v in PORTS.items():
        text = text.replace(k, str(v))
    if dbm_dir is not None:
        text = text.replace("@D@", dbm_dir)
    return text


def normalize(text: str) -> str:
    """Make an -be answer machine-independent and golden-safe: paths become
    @W@/@F@/@D@; bytes above 0x7f and control characters other than tab and
    newline become <xNN> (the oracle decodes output as UTF-8 with surrogate
    escapes and keeps goldens as text files, where a CR would not survive)."""
    raw = text.encode("utf-8", "surrogateescape")
    text = "".join(chr(b) if (0x20 <= b < 0x80 or b in (9, 10)) else f"<x{b:02x}>"
                   for b in raw)
    text = text.replace(str(WORK / "exim"), "@D@").replace(str(WORK / "py"), "@D@")
    text = text.replace(str(WORK), "@W@").replace(str(FIX), "@F@")
    text = re.sub(r"\(euid=\d+ egid=\d+\)", "(euid=N egid=N)", text)
    text = re.sub(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "TIME ", text)
    return text


def make_work() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    for d in ("spool", "log", "exim", "py"):
        (WORK / d).mkdir(exist_ok=True)
    (WORK / "conf").write_text(subst(CONF))
    (WORK / "conf_acl").write_text(subst(CONF + ACL_SECTION))
    (WORK / "conf_latin1").write_text(subst(CONF + "headers_charset = ISO-8859-1\n"))
    # perl_startup code that does not compile, and code that dies half-way
    base = CONF.replace("perl_startup = do '@F@/startup.pl'\n", "")
    (WORK / "conf_perl_bad").write_text(subst(
        base + 'perl_startup = sub hello { return "h" } sub {\n'))
    (WORK / "conf_perl_die").write_text(subst(
        base + 'perl_startup = our $v = 5; sub getv { return $v } die "x"; $v = 6;\n'))
    (WORK / "conf_perl_at_start").write_text(subst(
        base + "perl_at_start = true\nperl_startup = sub hello { return 'h' } sub {\n"))
    from eximpy.lookups.cdb import write_cdb
    write_cdb(str(WORK / "c1.cdb"), [(b"k1", b"v1"), (b"k2", b"value two"),
                                     (b"*", b"star"), (b"k1", b"dup")])
    db = WORK / "s.db"
    if db.exists():
        db.unlink()
    con = sqlite3.connect(db)
    con.executescript("create table t (id integer, name text, v text);"
                      "insert into t values (1, 'one', 'x');"
                      "insert into t values (2, 'two', 'a b');"
                      "insert into t values (3, 'three', '');"
                      "insert into t values (4, 'four', null);")
    con.commit()
    con.close()
    # dbm: Berkeley DB files from real exim_dbmbuild (exim/) and from ours (py/).
    src = str(FIX / "dbin")
    exb = shutil.which("exim_dbmbuild")
    if exb:
        for opt, name in (([], "d1"), (["-nozero"], "d2"), (["-nolc"], "d3")):
            subprocess.run([exb] + opt + [src, str(WORK / "exim" / name)],
                           capture_output=True)
    from spool_tools import exim_dbmbuild
    import contextlib
    import io
    for opt, name in (([], "d1"), (["-nozero"], "d2"), (["-nolc"], "d3")):
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            exim_dbmbuild.main(opt + [src, str(WORK / "py" / name)])
    return WORK


@pytest.fixture(scope="session")
def work():
    yield make_work()
    shutil.rmtree(WORK, ignore_errors=True)
