"""Batched local deliveries (batch_max > 1, batch_id) against real Exim
4.96 delivering the same spool: appendfile with use_bsmtp (several RCPT TO
lines, batches split at batch_max), envelope_to_add with all the batch's
addresses, a pipe given $pipe_addresses, no batching when a private
option uses $local_part, batch_id grouping, and the => / -> log lines."""
from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair

WORK = ROOT / "tests" / "_work" / "transport_opts_batch"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
begin routers
c:
  driver = accept
  local_parts = c1 : c2 : c3
  address_data = ${if match{$local_part}{^c[12]}{g1}{g2}}
  transport = t_bid
  user = nobody
r:
  driver = accept
  local_parts = a1 : a2 : a3 : b1 : b2 : p1 : p2 : d1 : d2 : e1 : e2
  transport = ${if match{$local_part_data}{^a}{t_bsmtp}{${if match{$local_part_data}{^b}{t_env}{${if match{$local_part_data}{^p}{t_pipe}{${if match{$local_part_data}{^e}{t_pipeenv}{t_lp}}}}}}}}
  user = nobody
begin transports
t_bsmtp:
  driver = appendfile
  file = @ROOT@/mail/bsmtp
  use_bsmtp
  batch_max = 2
t_env:
  driver = appendfile
  file = @ROOT@/mail/env
  envelope_to_add
  batch_max = 5
  headers_add = X-Batch: <$local_part> <$domain> <$original_local_part>
t_pipe:
  driver = pipe
  batch_max = 10
  command = /bin/sh @ROOT@/pipeargs.sh $pipe_addresses
t_pipeenv:
  driver = pipe
  batch_max = 10
  command = /bin/sh @ROOT@/pipeenv.sh
t_lp:
  driver = appendfile
  file = @ROOT@/mail/lp_$local_part_data
  batch_max = 10
t_bid:
  driver = appendfile
  file = @ROOT@/mail/bid
  batch_max = 10
  batch_id = $address_data
  envelope_to_add
begin retry
* * F,1h,15m
"""

FILES = {"pipeargs.sh": 'cat > /dev/null; echo "$@" >> @ROOT@/mail/pipeargs\n',
         "pipeenv.sh": 'cat > /dev/null; echo "$LOCAL_PART|$LOGNAME|$USER|'
                       '$RECIPIENT|$DOMAIN|$LOCAL_PART_PREFIX|$HOME" '
                       '>> @ROOT@/mail/pipeenv\n'}
RCPTS = ["a1", "a2", "a3", "b1", "b2", "p1", "p2", "d1", "d2", "c1", "c2", "c3",
         "e1", "e2"]


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [(["-f", "s@example.org"] + RCPTS,
                                  "Subject: batch\n\nbody\n.dot\n")], FILES)


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


@pytest.mark.parametrize("name", ["bsmtp", "env", "pipeargs", "lp_d1", "lp_d2",
                                  "bid", "pipeenv"])
def test_files(runs, name):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        text = re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", p.read_text())
        return stat.S_IMODE(p.stat().st_mode), text
    assert view(py) == view(ex)
