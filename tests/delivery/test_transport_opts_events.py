"""The generic transport option event_action against real Exim 4.96: the
delivery events of local transports (msg:delivery, msg:fail:delivery,
msg:defer...), with $event_name, $event_data, $event_defer_errno and the
address variables (each address's own in a batch), recorded by a ${run}
in the expansion."""
from __future__ import annotations

from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "transport_opts_events"

EVENT = ("event_action = ${run{/bin/sh -c 'echo \"\\$1\" >> @ROOT@/mail/events' "
         "sh $event_name|$event_data|$event_defer_errno|$local_part|$domain|"
         "$transport_name|$router_name}}")

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
queue_only = true
begin routers
r:
  driver = accept
  local_parts = ok : fail : defer : reply : b1 : b2
  transport = ${if match{$local_part_data}{^b}{t_batch}{t_$local_part_data}}
  user = Debian-exim
begin transports
t_ok:
  driver = appendfile
  file = @ROOT@/mail/ok
  @EVENT@
t_batch:
  driver = appendfile
  file = @ROOT@/mail/batch
  batch_max = 2
  @EVENT@
t_fail:
  driver = pipe
  command = /bin/sh -c 'exit 1'
  @EVENT@
t_defer:
  driver = pipe
  command = /bin/sh -c 'exit 75'
  @EVENT@
t_reply:
  driver = autoreply
  from = r@example.org
  to = $sender_address
  subject = re
  text = reply
  @EVENT@
begin retry
* * F,1h,15m
"""


@pytest.fixture(scope="module")
def runs():
    conf = CONF.replace("@EVENT@", EVENT)
    return run_pair(WORK, conf, [(["-f", "s@example.org", "ok", "fail", "defer",
                                   "reply", "b1", "b2"], "Subject: ev\n\nbody\n")])


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_events(runs):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / "events"
        return p.read_text().replace(str(root), "@ROOT@") if p.exists() else None
    assert view(py) == view(ex)
