"""Differential tests: `exim -be` (real Exim 4.96, kept as goldens in
tests/golden/expand/) against eximpy's -be, one stdin per group of cases,
compared case by case."""
from __future__ import annotations

import io
import re

import pytest

from tests.oracle import exim_run, eximpy_run
from tests.expand import cases
from tests.expand.conftest import WORK, FIX, normalize, subst


def split_results(out: str, n: int) -> list[str]:
    """Split -be output into the results of n input lines."""
    assert out.startswith("> "), out[:200]
    parts = re.split(r"\n> ", "\n" + out[2:]) if False else out[2:].split("\n> ")
    # the last element is the final empty prompt's newline
    return parts[:n] + ([""] if len(parts) < n else [])


SENTINEL = "@@@@"


def stdin_text(lines: list[str], dbm_dir: str | None) -> str:
    """All cases, each followed by a sentinel line that marks its end."""
    return "".join(subst(x, dbm_dir) + "\n" + SENTINEL + "\n" for x in lines)


def results(out: str) -> list[str]:
    """Split -be output at the sentinels into one result per case."""
    chunks = out.split("> " + SENTINEL + "\n")
    return [c[2:-1] if c.startswith("> ") else c for c in chunks[:-1]]


def run_eximpy(lines: list[str], conf: str, message: str | None = None,
               dbm_dir: str | None = None) -> str:
    from eximpy.config import load_config
    from eximpy.cli import expand_test
    config = load_config(conf)
    stdin = io.BytesIO(stdin_text(lines, dbm_dir).encode("utf-8", "surrogateescape"))
    out = io.BytesIO()
    err = io.StringIO()
    expand_test.run(config, [], stdin, out, message_file=message, stderr=err)
    return normalize(out.getvalue().decode("utf-8", "surrogateescape"))


def run_exim(group: str, lines: list[str], conf: str, message: str | None = None,
             dbm_dir: str | None = None) -> str:
    args = ["-C", conf] + (["-bem", message] if message else ["-be"])
    text = stdin_text(lines, dbm_dir)
    r = exim_run("expand", group, args, stdin=text.encode("utf-8", "surrogateescape"),
                 normalize=normalize)
    return r.out


def compare(group: str, lines: list[str], message: str | None = None,
            dbm: bool = False, conf_name: str = "conf") -> None:
    conf = str(WORK / conf_name)
    want = run_exim(group, lines, conf, message, str(WORK / "exim") if dbm else None)
    got = run_eximpy(lines, conf, message, str(WORK / "py") if dbm else None)
    if want == got:
        return
    w = results(want)
    g = results(got)
    bad = []
    for k, line in enumerate(lines):
        a = w[k] if k < len(w) else "<missing>"
        b = g[k] if k < len(g) else "<missing>"
        if a != b:
            bad.append(f"  case {k}: {line}\n    exim:   {a!r}\n    eximpy: {b!r}")
    if not bad:
        bad.append(f"  whole output differs:\n{want!r}\n{got!r}")
    pytest.fail(f"{len(bad)} of {len(lines)} cases differ in group {group}:\n"
                + "\n".join(bad[:60]))


@pytest.mark.parametrize("group", sorted(cases.GROUPS))
def test_group(work, group):
    compare(group, cases.GROUPS[group])


def test_message(work):
    compare("message", cases.MESSAGE, message=str(FIX / "msg1"))


def test_taint(work):
    compare("taint", cases.TAINT, message=str(FIX / "msg2"))


ACL_CASES = [
    "${acl{a_accept}{one}{two}}", "${acl{a_deny}}", "${acl{a_defer}}",
    "${acl{a_set}}|$acl_c0|$acl_m_x", "${acl{a_cond}{x}}", "${acl{a_cond}{y}}",
    "${if acl{{a_accept}}{y $value}{n $value}}", "${if acl{{a_deny}}{y $value}{n $value}}",
    "${if acl{{a_defer}}{y}{n}}", "${acl{a_empty}}|", "${acl{nosuch}}",
    "$acl_narg $acl_arg1", "${acl{a_accept}{1}{2}{3}{4}{5}{6}{7}{8}{9}}",
    "${acl{a_accept}{1}{2}{3}{4}{5}{6}{7}{8}{9}{10}}", "${acl{a_accept}{${uc:x}}}",
    "${if acl{{a_cond}{x}}{y $value}{n $value}}", "${if !acl{{a_cond}{x}}{y}{n}}",
    "${if acl{a_accept}{y}{n}}", "${if acl{{a_accept}}",
]


def test_acl(work):
    compare("acl", ACL_CASES, conf_name="conf_acl")


def test_perl(work):
    compare("perl", cases.PERL)


def test_perl_startup_errors(work):
    """Code that does not compile fails the first call only; a die() while
    the startup code runs is not an error (what ran before it stays)."""
    lines = ["${perl{hello}}", "${perl{hello}}", "${perl{getv}}"]
    compare("perl_bad", lines, conf_name="conf_perl_bad")
    compare("perl_die", lines, conf_name="conf_perl_die")


def test_perl_at_start(work):
    """perl_at_start: the interpreter starts once the configuration is read,
    so code that does not compile is fatal before anything runs (Exim's
    "exim: error in perl_startup code: ..." and exit status 1); -pd delays
    it (then the first ${perl} reports the error)."""
    from eximpy.config import load_config
    from eximpy.expand import perl
    conf = str(WORK / "conf_perl_at_start")
    want = exim_run("expand", "perl_at_start", ["-C", conf, "-be", "x"],
                    normalize=normalize)
    assert want.rc == 1
    config = load_config(conf)
    err = perl.start_at_startup(config)
    assert err is not None
    assert f"exim: error in perl_startup code: {err}\n" in want.err
    want_pd = exim_run("expand", "perl_at_start_pd", ["-C", conf, "-pd", "-be", "x"],
                       normalize=normalize)
    assert want_pd.rc == 0 and want_pd.out == "x\n"
    assert perl.start_at_startup(config, option=False) is None
    assert perl.start_at_startup(load_config(str(WORK / "conf")), option=None) is None


def test_dbm(work):
    lines = ["${lookup{k1}dbm{@D@/d1}}", "${lookup{K1}dbm{@D@/d1}}",
             "${lookup{k2}dbm{@D@/d1}}", "${lookup{q k}dbm{@D@/d1}}",
             "${lookup{k1}dbmnz{@D@/d1}{y}{n}}", "${lookup{k1}dbmnz{@D@/d2}}",
             "${lookup{k1}dbm{@D@/d2}{y}{n}}", "${lookup{k1:k2}dbmjz{@D@/d2}{y}{n}}",
             "${lookup{k1}dbm{@D@/d3}}", "${lookup{nokey}dbm*{@D@/d1}{y}{n}}",
             "${lookup{x}dbm{@D@/nonexist}}"]
    compare("dbm", lines, dbm=True)


def test_dbm_cross(work):
    """Files built by our exim_dbmbuild read by real Exim, and files built by
    real exim_dbmbuild read by eximpy: the same answers."""
    lines = ["${lookup{k1}dbm{@D@/d1}}", "${lookup{K1}dbm{@D@/d1}}",
             "${lookup{k2}dbm{@D@/d1}}", "${lookup{q k}dbm{@D@/d1}}",
             "${lookup{k1}dbmnz{@D@/d1}{y}{n}}", "${lookup{k1}dbmnz{@D@/d2}}",
             "${lookup{k2}dbmnz{@D@/d2}}", "${lookup{q k}dbmnz{@D@/d2}}",
             "${lookup{k1}dbm{@D@/d2}{y}{n}}", "${lookup{k1:k2}dbmjz{@D@/d2}{y}{n}}",
             "${lookup{K1}dbm{@D@/d3}{y}{n}}", "${lookup{k1}dbm{@D@/d3}}",
             "${lookup{nokey}dbm*{@D@/d1}{y}{n}}", "${lookup{k2}partial-dbm{@D@/d1}}"]
    conf = str(WORK / "conf")
    exim_reads_ours = run_exim("dbm_cross", lines, conf, None, str(WORK / "py"))
    ours_reads_exim = run_eximpy(lines, conf, None, str(WORK / "exim"))
    assert ours_reads_exim == exim_reads_ours
    ours_reads_ours = run_eximpy(lines, conf, None, str(WORK / "py"))
    assert ours_reads_ours == exim_reads_ours


def test_args_and_front_door(work):
    """`eximpy -C conf -be arg...` through the real command line."""
    conf = str(WORK / "conf")
    args = ["${uc:abc}", "$primary_hostname", "${nosuch}", "${if eq{a}{b}{x}fail}",
            "${lookup{alice}lsearch{" + str(FIX / "ls1") + "}}"]
    want = exim_run("expand", "args", ["-C", conf, "-be"] + args, normalize=normalize)
    got = eximpy_run(["-C", conf, "-be"] + args)
    assert normalize(got.out) == want.out
    assert got.rc == want.rc


def test_stdin_front_door(work):
    conf = str(WORK / "conf")
    text = "${uc:a}\nabc \\\n   def\n\n  lead\ntrail   \n${lc:X}"
    want = exim_run("expand", "stdin", ["-C", conf, "-be"], stdin=text,
                    normalize=normalize)
    got = eximpy_run(["-C", conf, "-be"], stdin=text)
    assert normalize(got.out) == want.out


DLFUNC_CASES = [
    "${dlfunc{@W@/dyn.so}{joinargs}{a}{b}{c}}", "${dlfunc{@W@/dyn.so}{joinargs}}",
    "${dlfunc{@W@/dyn.so}{rc}{0}}", "${dlfunc{@W@/dyn.so}{rc}{1}}",
    "${dlfunc{@W@/dyn.so}{rc}{2}}", "${dlfunc{@W@/dyn.so}{rc}{3}}",
    "${dlfunc{@W@/dyn.so}{rc}{4}}", "${dlfunc{@W@/dyn.so}{rc}{4}{x}}",
    "${dlfunc{@W@/dyn.so}{rc}{5}}", "${dlfunc{@W@/dyn.so}{nosuch}}",
    "${dlfunc{@W@/nonexist.so}{f}}",
    "${if eq{a}{b}{${dlfunc{@W@/dyn.so}{rc}{4}}}{ok}}",
    "${if eq{a}{a}{${dlfunc{@W@/dyn.so}{rc}{4}}}{ok}}",
    "${uc:${dlfunc{@W@/dyn.so}{joinargs}{x}{${lc:Y}}}}",
]


def test_dlfunc(work):
    """${dlfunc} with a real shared library built here (needs gcc)."""
    import shutil
    import subprocess
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is needed to build the ${dlfunc} test library"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(WORK / "dyn.so"),
                    str(FIX / "dyn.c")], check=True)
    compare("dlfunc", DLFUNC_CASES)


def test_headers_charset(work):
    """headers_charset = ISO-8859-1: $h_ converts, $bh_ does not."""
    compare("charset", ["$h_subject:", "$bh_subject:", "$h_x-bad:", "$h_x-unk:",
                        "${rfc2047:caf\\xe9}", "${rfc2047d:=?utf-8?q?caf=C3=A9?=}",
                        "${imapfolder{caf\\xe9}}", "$rh_subject:"],
            message=str(FIX / "msg3"), conf_name="conf_latin1")


MSG_LINES = [
    "[$h_subject:][$rh_x-a:][$message_size][$message_linecount][$body_linecount]"
    "[$message_body_size][$message_body]",
    "$sender_address|$h_from:|$rh_from:|${if def:h_date:{date}}|${if def:h_message-id:{id}}",
    "${sg{$message_headers}{\\N(Message-Id: <E)[^@]+@|Date: .*\\N}{\\$1ID@}}",
]


@pytest.mark.parametrize("msg", ["msg_crlf", "msg_fromline", "msg_nobody", "msg_dots"])
def test_message_reading(work, msg):
    """-bem: "From " line, CRLF headers, dot line, added From:/Date:/Message-Id:."""
    compare(f"bem_{msg}", MSG_LINES, message=str(FIX / msg))
