"""One function per command-line mode, and the table that picks it.

SUMMARY
    run(inv) looks up the Invocation's mode and runs it.  Modes live in the
    module of the subsystem they exercise (eximpy.cli.expand_test for -be,
    eximpy.cli.queue_ops for -bp and -M*, ...); this module only wires them.

SEE ALSO
    spec chapter 5 "The Exim command line".
"""
from __future__ import annotations

import sys
from typing import Callable

from eximpy.cli.options import Invocation

# Modes that only test and print: Exim does not log their arguments.
_TEST_MODES = ("be", "bt", "bv", "bP", "bh", "bhc", "brw")
# Exim's name for each mode, for the "not implemented yet" message.
_NOT_YET = "eximpy: {} is not implemented yet"


def _load(inv: Invocation):
    from eximpy.cli.main import load
    config = load(inv)
    if inv.mode not in _TEST_MODES:
        log_arguments(config, inv.argv)
    _perl_at_start(config, inv)
    return config


def _perl_at_start(config, inv: Invocation) -> None:
    """perl_at_start (or -ps; -pd delays it): start the Perl helper now,
    as Exim starts its interpreter once the configuration is read.  Code
    that fails is fatal, with Exim's message."""
    from eximpy.expand import perl
    error = perl.start_at_startup(config, inv.perl_start)
    if error is not None:
        sys.stderr.write(f"exim: error in perl_startup code: {error}\n")
        sys.exit(1)


def run_version(inv: Invocation) -> int:
    """-bV: version and build information, then the configuration file."""
    from eximpy.config import DEFAULT_SEARCH_PATH
    from eximpy.cli import version
    search = inv.config_file or DEFAULT_SEARCH_PATH
    sys.stdout.write(version.version_text(None, search, None, header_only=True))
    sys.stdout.flush()
    config = _load(inv)
    sys.stdout.write(version.version_text(config, search, config.filename,
                                          header_only=False))
    return 0


def run_print(inv: Invocation) -> int:
    """-bP: print option values, drivers, lists, macros (Exim's readconf_print)."""
    from eximpy.config import printing
    from eximpy.trust import is_admin
    config = _load(inv)
    try:
        ok = printing.print_args(config, list(inv.args), sys.stdout,
                                 no_labels=inv.no_labels,
                                 admin=is_admin(config))
    except PermissionError as e:
        sys.stdout.flush()
        sys.stderr.write(f"{e}\n")
        return 1
    return 0 if ok else 1


def run_expand(inv: Invocation) -> int:
    """-be / -bem FILE: expansion test mode."""
    from eximpy.cli import expand_test
    config = _load(inv)
    return expand_test.run(config, inv.args, sys.stdin, sys.stdout,
                           message_file=inv.mode_arg, invocation=inv)


def run_queue(inv: Invocation) -> int:
    """-bp* and -M*: list or act on queued messages."""
    from eximpy.cli import queue_ops
    config = _load(inv)
    return queue_ops.run(config, inv, sys.stdout)


def run_receive(inv: Invocation) -> int:
    """Default mode: a message on stdin for the given or -t recipients."""
    from eximpy.cli import queue_ops
    if not inv.args and not inv.extract_recipients:
        sys.stderr.write(queue_ops.USAGE)
        return 1
    from eximpy.proc import submission
    config = _load(inv)
    if not submission.can_write_spool(config):
        # An ordinary user: the running daemon receives it for us.
        return submission.submit(config, inv, sys.stdin.buffer)
    return queue_ops.run_local_submission(config, inv, sys.stdin.buffer)


def run_address_test(inv: Invocation) -> int:
    """-bt / -bv / -bvs: route addresses and print what happens."""
    from eximpy.cli import address_test
    config = _load(inv)
    if inv.mode == "bt":
        return address_test.run_bt(config, inv, sys.stdout)
    return address_test.run_bv(config, inv, sys.stdout,
                               sender=inv.mode_arg == "sender")


def run_rewrite_test(inv: Invocation) -> int:
    """-brw ADDRESS: how the rewriting rules treat an address."""
    from eximpy.rewrite import rewrite_test
    return rewrite_test(_load(inv), (inv.args or [""])[0], sys.stdout)


def run_deliver(inv: Invocation) -> int:
    """-M ID ... (forced) / -Mc ID ... (respecting retry times): deliver."""
    from eximpy.cli import deliver_mode
    return deliver_mode.run_deliver(_load(inv), inv)


def run_smtp_stdio(inv: Invocation) -> int:
    """-bs (SMTP on stdin/stdout)."""
    from eximpy.cli import smtp_modes
    return smtp_modes.run_bs(_load(inv), inv, sys.stdin, sys.stdout)


def run_host_check(inv: Invocation) -> int:
    """-bh IP / -bhc IP: a test session with the ACL trace."""
    from eximpy.cli import host_check
    return host_check.run_bh(_load(inv), inv, sys.stdin, sys.stdout,
                             sys.stderr)


def run_daemon(inv: Invocation) -> int:
    """-bd / -bdf (with or without -q<time>), or -q<time> alone: the daemon."""
    from eximpy.proc.launcher import run_daemon as launch
    return launch(inv, _load(inv))


def run_queue_runs(inv: Invocation) -> int:
    """-q<time>: a queue-running daemon; -q / -qf: one queue run now."""
    if inv.queue_interval:
        return run_daemon(inv)
    from eximpy.proc.queuerun import queue_run_once
    return queue_run_once(_load(inv), force=inv.deliver_force,
                          force_thaw="ff" in (inv.queue_run or ""))


def run_retry_test(inv: Invocation) -> int:
    """-brt: which retry rule applies (eximpy.deliver.retry.retry_test)."""
    from eximpy.deliver.retry import retry_test
    return retry_test(_load(inv), list(inv.args), sys.stdout)


def run_malware_test(inv: Invocation) -> int:
    """-bmalware FILE: scan a file with av_scanner, as Exim does."""
    from eximpy.acl.malware import malware_in_file
    from eximpy.log.writer import LogWriter
    config = _load(inv)
    if not inv.args:
        sys.stderr.write("exim: -bmalware needs a file name\n")
        return 1
    log = LogWriter.from_config(config)
    log.panic_stderr = True
    code, text = malware_in_file(config, inv.args[0], log)
    sys.stdout.write(text)
    return code


def _not_yet(inv: Invocation) -> int:
    sys.stderr.write(_NOT_YET.format("-" + inv.mode) + "\n")
    return 2


_QUEUE_MODES = ("bp", "bpa", "bpc", "bpr", "bpra", "bpru", "bpu", "Mvh",
                "Mvb", "Mvl", "Mvc", "Mrm", "Mf", "Mt", "Mg", "Mar", "Mmd",
                "Mmad", "Mes", "Mset")
_MODES: dict[str, Callable[[Invocation], int]] = {
    "bV": run_version,
    "bP": run_print,
    "be": run_expand,
    "bt": run_address_test,
    "brw": run_rewrite_test,
    "M": run_deliver,
    "Mc": run_deliver,
    "bv": run_address_test,
    "bs": run_smtp_stdio,
    "bh": run_host_check,
    "bhc": run_host_check,
    "receive": run_receive,
    "bd": run_daemon,
    "q": run_queue_runs,
    "brt": run_retry_test,
    "bmalware": run_malware_test,
    **{m: run_queue for m in _QUEUE_MODES},
}


def run(inv: Invocation) -> int:
    """Run the mode ``inv`` asks for."""
    return _MODES.get(inv.mode, _not_yet)(inv)


def log_arguments(config, argv: list[str]) -> None:
    """With log_selector +arguments, Exim logs every invocation's argv."""
    import os
    from eximpy.log import format as logfmt
    from eximpy.log.writer import LogWriter
    log = LogWriter.from_config(config)
    if "arguments" in log.selector:
        log.main(logfmt.arguments(config.initial_cwd or os.getcwd(), argv))
