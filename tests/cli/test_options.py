"""Exim's command-line grammar: what is refused, and what each option sets."""
from __future__ import annotations

import pytest

from eximpy.cli.options import UsageError, parse_args
from oracle import eximpy_run, exim_run

# Options real Exim refuses; eximpy must refuse them with the same words.
REFUSED = ["-bX", "-Q", "-C", "-oZ", "-qZ", "-q1x", "-MZ", "-bpx", "-oB1x", "-f", "-oB"]


@pytest.mark.parametrize("opt", REFUSED)
def test_refused_like_exim(opt: str) -> None:
    case = "refused_" + opt.strip("-")
    exim = exim_run("cli", case, [opt])
    ours = eximpy_run([opt])
    assert (ours.rc, ours.out, ours.err) == (exim.rc, exim.out, exim.err)
    assert exim.rc == 1 and exim.err


def test_values_attached_or_separate() -> None:
    a = parse_args(["exim", "-fsender@x", "-Cfile", "-odq", "r@y"])
    b = parse_args(["exim", "-f", "sender@x", "-C", "file", "-odq", "r@y"])
    for inv in (a, b):
        assert inv.sender == "sender@x"
        assert inv.config_file == "file"
        assert inv.delivery_mode == "q"
        assert inv.args == ["r@y"]
        assert inv.mode == "receive"


def test_macros_and_debug() -> None:
    inv = parse_args(["exim", "-DFOO=bar baz", "-DFLAG", "-d+all", "-bV"])
    assert inv.macros == {"FOO": "bar baz", "FLAG": ""}
    assert inv.debug == "+all"
    assert inv.mode == "bV"


def test_bP_takes_names_and_n() -> None:
    inv = parse_args(["exim", "-n", "-bP", "router", "r1", "qualify_domain"])
    assert inv.mode == "bP" and inv.no_labels
    assert inv.args == ["router", "r1", "qualify_domain"]


def test_mode_arguments() -> None:
    assert parse_args(["exim", "-bh", "1.2.3.4"]).mode_arg == "1.2.3.4"
    inv = parse_args(["exim", "-bem", "msgfile", "${uc:x}"])
    assert (inv.mode, inv.mode_arg, inv.args) == ("be", "msgfile", ["${uc:x}"])
    inv = parse_args(["exim", "-bdf", "-q30m", "-oX", "2525"])
    assert inv.mode == "q" or inv.daemon_foreground
    assert inv.queue_interval == 1800 and inv.daemon_ports == "2525"
    inv = parse_args(["exim", "-Mset", "1Wi0ie-0005e8-Q7", "-be"])
    assert inv.mode == "be"
    inv = parse_args(["exim", "-Mrm", "id1", "id2"])
    assert (inv.mode, inv.args) == ("Mrm", ["id1", "id2"])
    inv = parse_args(["exim", "-qff"])
    assert inv.queue_run == "ff" and inv.deliver_force
    inv = parse_args(["exim", "-R", "example.com"])
    assert inv.queue_select == "Rexample.com"
    inv = parse_args(["exim", "-t", "-i", "-oem"])
    assert inv.extract_recipients and not inv.dot_ends and inv.error_mode == "m"


def test_argv0_modes() -> None:
    assert parse_args(["/usr/bin/mailq"]).mode == "bp"
    assert parse_args(["runq"]).mode == "q"


def test_bad_macro_name() -> None:
    with pytest.raises(UsageError):
        parse_args(["exim", "-Dlower=1"])


def test_log_selector_arguments_like_exim(workdir) -> None:
    """+arguments logs the command line of a queue listing, not of -bt."""
    import re
    (workdir / "log").mkdir()
    (workdir / "log").chmod(0o777)
    conf = workdir / "arg.conf"
    conf.write_text(f"spool_directory = {workdir}/spool\n"
                    f"log_file_path = {workdir}/log/%slog\n"
                    "log_selector = +arguments\nkeep_environment =\n")
    lines = {}
    for who in ("exim", "eximpy"):
        log = workdir / "log" / "mainlog"
        if log.exists():
            log.unlink()
        for mode in ("-bp", "-bt"):
            args = ["-C", str(conf), mode] + (["a@b.example"] if mode == "-bt"
                                               else [])
            if who == "exim":
                exim_run("cli", "arguments" + mode, args,
                         normalize=lambda t: t.replace(str(workdir), "<DIR>"))
            else:
                eximpy_run(args)
        text = log.read_text() if log.exists() else ""
        # The first argument is the program's own path: exim vs eximpy.
        lines[who] = [re.sub(r"^\S+ \S+ (cwd=\S+ \d+ args: )\S+",
                             r"\1PROG", ln) for ln in text.splitlines()]
    assert lines["eximpy"] == lines["exim"]
    assert len(lines["exim"]) == 1 and lines["exim"][0].endswith("-bp")


def test_python_startup_is_an_eximpy_extension(workdir) -> None:
    """python_startup (ours) is set like any option, used by ${python},
    and stays out of `-bP` and the _OPT_ macros so output remains Exim's."""
    (workdir / "startup.py").write_text(
        "def greet(name):\n    return 'hello ' + name\n")
    conf = workdir / "py.conf"
    conf.write_text(f"python_startup = {workdir}/startup.py\n")
    r = eximpy_run(["-C", str(conf), "-be", "${python{greet}{world}}"])
    assert (r.rc, r.out) == (0, "hello world\n")
    assert "python_startup" not in eximpy_run(["-C", str(conf), "-bP"]).out
    macros = eximpy_run(["-C", str(conf), "-bP", "macro_list"]).out
    assert "_OPT_MAIN_PYTHON_STARTUP" not in macros
    assert "_OPT_MAIN_PERL_STARTUP" in macros


def test_Mset_be_reads_a_queued_message_like_exim(workdir) -> None:
    """`-Mset ID -be`: message variables and headers from the spool."""
    import grp
    import os
    import pwd
    spool = workdir / "spool"
    spool.mkdir()
    eu = pwd.getpwnam("Debian-exim")
    os.chown(spool, eu.pw_uid, grp.getgrnam("Debian-exim").gr_gid)
    conf = workdir / "ms.conf"
    conf.write_text(f"spool_directory = {spool}\nlog_file_path = {spool}/%slog\n"
                    "keep_environment =\nprimary_hostname = mset.example\n")
    queued = exim_run("cli", "Mset-queue", ["-C", str(conf), "-odq", "-f",
                      "sender@x.example", "rcpt@y.example"],
                      stdin="Subject: hello there\nX-Foo: bar\n\nbody line\n")
    assert queued.rc == 0
    [mid] = [p.name[:-2] for p in (spool / "input").iterdir()
             if p.name.endswith("-H")]
    exprs = ["$h_subject: $sender_address $recipients_count "
             "[$message_body] $h_x-foo:", "${if eq{$message_id}{%s}{same}}" % mid]
    args = ["-C", str(conf), "-Mset", mid, "-be"] + exprs
    exim = exim_run("cli", "Mset-be", args,
                    normalize=lambda t: t.replace(mid, "<ID>"))
    ours = eximpy_run(args)
    assert (ours.rc, ours.out.replace(mid, "<ID>")) == (exim.rc, exim.out)
    assert "hello there sender@x.example" in exim.out and "same" in exim.out
