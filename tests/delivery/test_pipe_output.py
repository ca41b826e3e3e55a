"""Pipe output returned to the sender (return_output): the failure lines
and the bounce that carries the output, against real Exim."""
from __future__ import annotations

import re

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "pipe_output"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.9
  transport = remote_smtp
al:
  driver = redirect
  data = ${lookup{$local_part}lsearch{@ROOT@/aliases}}
  pipe_transport = ${if eq{$local_part}{quiet}{q}{p}}
  user = nobody
begin transports
remote_smtp:
  driver = smtp
p:
  driver = pipe
  return_output
q:
  driver = pipe
  return_fail_output
begin retry
* * F,1h,15m
"""

ALIASES = ('out: |/bin/echo hello output\n'
           'failout: "|/bin/sh -c \\"echo oops; exit 5\\""\n'
           'quiet: "|/bin/sh -c \\"echo shh; exit 0\\"", "|/bin/sh -c \\"echo bad; exit 2\\""\n')


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [(["-f", "s@remote.example", "out", "failout",
                                   "quiet"], "Subject: ro\n\nbody\n")],
                    {"aliases": ALIASES})


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_bounce_with_output(runs):
    ex, py, ids = runs
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(rx) == 1
    assert rp == rx


DIR_CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = cwd : home
  transport = ${if eq{$local_part}{cwd}{pc}{ph}}
  transport_home_directory = /usr
begin transports
pc:
  driver = pipe
  command = /bin/sh -c "pwd; echo $home"
  current_directory = /tmp
  return_output
  user = nobody
ph:
  driver = pipe
  command = /bin/sh -c "pwd; echo $home"
  home_directory = /var
  return_output
  user = nobody
begin retry
* * F,1h,15m
"""


def test_pipe_directories():
    """current_directory / home_directory (transport) and
    transport_home_directory (router) decide the pipe's cwd and $HOME."""
    ex, py, ids = run_pair(WORK / "dirs", DIR_CONF,
                           [(["-f", "s@remote.invalid", "cwd", "home"],
                             "Subject: d\n\nb\n")])
    assert log_lines(py, ids) == log_lines(ex, ids)
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(rx) == 1
    assert rp == rx


ENV_CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
r:
  driver = accept
  local_parts = envuser : shell
  local_part_prefix = pfx-
  local_part_prefix_optional
  local_part_suffix = -sfx
  local_part_suffix_optional
  transport = ${if eq{$local_part}{shell}{sh}{env}}
begin transports
env:
  driver = pipe
  command = /usr/bin/env
  environment = EXTRA=x$local_part : SECOND=2
  return_output
  user = nobody
sh:
  driver = pipe
  command = echo "$local_part" | tr a-z A-Z; echo done
  use_shell
  return_output
  user = nobody
begin retry
* * F,1h,15m
"""


def test_pipe_environment_and_shell():
    """The pipe's environment (Exim's variables plus `environment`) and
    use_shell, as seen in the returned output."""
    ex, py, ids = run_pair(WORK / "env", ENV_CONF,
                           [(["-f", "s@remote.invalid", "pfx-envuser-sfx", "shell"],
                             "Subject: e\n\nb\n")])
    assert log_lines(py, ids) == log_lines(ex, ids)

    def body(reports):
        assert len(reports) == 1
        text = reports[0][1]
        lines = text.splitlines()
        env = sorted(ln for ln in lines if re.match(r"^[A-Z_]+=", ln))
        rest = [ln for ln in lines if not re.match(r"^[A-Z_]+=", ln)]
        return env, rest
    assert body(spool_reports(py, ids)) == body(spool_reports(ex, ids))
