"""pipe options against real Exim 4.96 delivering the same spool:
use_bsmtp, log_output, log_fail_output, log_defer_output, freeze_signal,
freeze_exec_fail, ignore_status, max_output, permit_coredump,
force_command, allow_commands, restrict_to_path, umask, check_string /
escape_string, message_prefix / message_suffix, and the exit-code texts."""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "transport_opts_pipe"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
queue_only = true
begin routers
fwd:
  driver = redirect
  local_parts = forced
  data = |/bin/echo from the alias
  pipe_transport = p_forced
  user = nobody
r:
  driver = accept
  local_parts = @LOCALS@
  transport = p_$local_part_data
  user = nobody
af:
  driver = accept
  local_parts = badfile
  transport = a_badfile
  user = nobody
begin transports
p_forced:
  driver = pipe
  force_command
  command = /bin/sh -c 'echo "$address_pipe" > @ROOT@/mail/forced'
p_bsmtp:
  driver = pipe
  use_bsmtp
  message_prefix = "HELO vm.example\\n"
  command = /bin/sh -c 'cat > @ROOT@/mail/bsmtp'
p_framed:
  driver = pipe
  message_prefix = "== $local_part ==\\n"
  message_suffix = "== end ==\\n"
  check_string = .
  escape_string = ..
  command = /bin/sh -c 'cat > @ROOT@/mail/framed'
p_plain:
  driver = pipe
  command = /bin/sh -c 'cat > @ROOT@/mail/plain'
p_logout:
  driver = pipe
  log_output
  command = /bin/sh -c 'echo "first line  "; echo second line'
p_logfail:
  driver = pipe
  log_fail_output
  command = /bin/sh -c 'echo failing now; exit 1'
p_logfailok:
  driver = pipe
  log_fail_output
  command = /bin/sh -c 'echo all fine'
p_logdefer:
  driver = pipe
  log_defer_output
  command = /bin/sh -c 'echo try later; exit 75'
p_signal:
  driver = pipe
  command = /bin/sh @ROOT@/killme.sh
p_sigterm:
  driver = pipe
  command = /bin/sh @ROOT@/termme.sh
p_ignore:
  driver = pipe
  ignore_status
  command = /bin/sh -c 'exit 3'
p_exit64:
  driver = pipe
  command = /bin/sh -c 'exit 64'
p_exit130:
  driver = pipe
  command = "/bin/sh -c 'exit 130'"
p_exit73:
  driver = pipe
  command = /bin/sh -c 'exit 73'
p_noexec:
  driver = pipe
  command = /nonexistent/command arg
p_maxout:
  driver = pipe
  max_output = 100
  command = /bin/sh -c 'printf %0150d 0; sleep 5'
p_allowed:
  driver = pipe
  allow_commands = /bin/cat
  command = /bin/echo hi
p_restrict:
  driver = pipe
  restrict_to_path
  command = /bin/true
p_restrictok:
  driver = pipe
  restrict_to_path
  path = /bin
  command = true
p_notfound:
  driver = pipe
  command = no-such-command-here
p_badexp:
  driver = pipe
  command = /bin/echo ${if eq{1}{1}{$nosuchvariable}}
p_badprefix:
  driver = pipe
  message_prefix = ${if eq{1}}
  command = /bin/true
a_badfile:
  driver = appendfile
  file = @ROOT@/mail/${if eq{1}}
p_umask:
  driver = pipe
  umask = 077
  command = /bin/sh -c 'cat > @ROOT@/mail/umask'
p_core:
  driver = pipe
  command = /bin/sh -c 'ulimit -c > @ROOT@/mail/core'
p_corepermit:
  driver = pipe
  permit_coredump
  command = /bin/sh -c 'ulimit -c > @ROOT@/mail/corepermit'
begin retry
* * F,1h,15m
"""

LOCALS = ["bsmtp", "framed", "plain", "logout", "logfail", "logfailok",
          "logdefer", "signal", "sigterm", "ignore", "exit64", "exit130", "exit73",
          "noexec", "maxout", "allowed", "restrict", "restrictok", "notfound",
          "umask", "core", "corepermit", "badexp", "badprefix"]

CONF_FREEZE = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
queue_only = true
begin routers
r:
  driver = accept
  transport = p_$local_part_data
  local_parts = fsignal : fexec : maxret
  user = nobody
begin transports
p_maxret:
  driver = pipe
  max_output = 100
  return_fail_output
  command = /bin/sh -c 'printf %0150d 0; sleep 5'
p_fsignal:
  driver = pipe
  freeze_signal
  command = /bin/sh @ROOT@/killme.sh
p_fexec:
  driver = pipe
  freeze_exec_fail
  command = /nonexistent/command arg
begin retry
* * F,1h,15m
"""

# (commands with "\\$" would show how eximpy's log quoting differs from
# Exim's string_printing, which doubles backslashes only in a line that
# also has a non-printing character)
SCRIPTS = {"killme.sh": "kill -KILL $$\n", "termme.sh": "kill -TERM $$\n"}

BODY = ("Subject: pipes\nMessage-Id: <pipes@example.org>\n\nbody line\n"
        ".dot line\nFrom here\n")


@pytest.fixture(scope="module")
def runs():
    conf = CONF.replace("@LOCALS@", " : ".join(LOCALS))
    return run_pair(WORK, conf, [(["-f", "s@example.org", "forced", "badfile"]
                                  + LOCALS,
                                  BODY)], SCRIPTS)


@pytest.fixture(scope="module")
def frozen():
    return run_pair(WORK.with_name("transport_opts_pipe_freeze"), CONF_FREEZE,
                    [(["-f", "s@example.org", "fsignal"], BODY),
                     (["-f", "s@example.org", "fexec"], BODY),
                     (["-f", "s@example.org", "maxret"], BODY)], SCRIPTS)


def _norm(ln: str) -> str:
    return re.sub(r"^(From \S+) .*$", r"\1 DATE", ln, flags=re.M)


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


@pytest.mark.parametrize("name", ["forced", "bsmtp", "framed", "plain", "umask",
                                  "core", "corepermit"])
def test_files(runs, name):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        return stat.S_IMODE(p.stat().st_mode), _norm(p.read_text())
    assert view(py) == view(ex)


def test_bounces(runs):
    ex, py, ids = runs
    assert spool_reports(py, ids) == spool_reports(ex, ids)


def test_frozen_log(frozen):
    ex, py, ids = frozen
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_frozen_state(frozen):
    ex, py, ids = frozen

    def state(root: Path):
        out = []
        for mid in ids:
            h = root / "spool" / "input" / f"{mid}-H"
            out.append(h.exists() and "-frozen" in h.read_text())
        return out
    assert state(py) == state(ex)


def test_too_much_output_returned(frozen):
    """max_output with return_fail_output: the output up to the limit and
    Exim's "Too much output" line in the bounce."""
    ex, py, ids = frozen
    assert spool_reports(py, ids) == spool_reports(ex, ids)


def _panic(root: Path, ids: list[str]) -> list[str]:
    p = root / "log" / "paniclog"
    if not p.exists():
        return []
    out = []
    for ln in p.read_text().splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln).replace(str(root), "@ROOT@")
        if ln[:16] in ids:
            out.append(ln)
    return out


def test_paniclog(runs):
    """Exim's PANIC returns (configuration problems) go to the panic log
    as well."""
    ex, py, ids = runs
    assert _panic(py, ids) == _panic(ex, ids)
