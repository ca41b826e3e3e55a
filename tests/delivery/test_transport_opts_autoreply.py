"""autoreply options against real Exim 4.96 delivering the same spool:
once with once_file_size (the fixed-size once file, its binary records
and their rotation), return_message (with headers_only), never_mail,
file with file_expand, file_optional, a missing file, headers, and the
`log` file."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "transport_opts_autoreply"

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
  local_parts = fixed : never : optional : nofile : hdronly : bodyonly
  transport = a_$local_part_data
  user = Debian-exim
begin transports
a_fixed:
  driver = autoreply
  from = fixed@example.org
  to = $sender_address
  subject = Re: $h_subject:
  text = fixed reply for $local_part
  once = @ROOT@/mail/once.fixed
  once_file_size = 40
  log = @ROOT@/mail/fixed.log
  headers = X-Extra: yes
  file = @ROOT@/reply.txt
  file_expand
  return_message
a_never:
  driver = autoreply
  from = never@example.org
  to = $sender_address, other@example.org
  never_mail = s1@example.org
  subject = never
  text = never text
  log = @ROOT@/mail/never.log
a_optional:
  driver = autoreply
  from = optional@example.org
  to = $sender_address
  subject = optional
  file = @ROOT@/missing.txt
  file_optional
  text = optional text
a_nofile:
  driver = autoreply
  from = nofile@example.org
  to = $sender_address
  subject = nofile
  file = @ROOT@/missing.txt
a_hdronly:
  driver = autoreply
  from = hdronly@example.org
  to = $sender_address
  subject = hdronly
  headers_only
  return_message
a_bodyonly:
  driver = autoreply
  from = bodyonly@example.org
  to = $sender_address
  cc = cc@example.org
  bcc = bcc@example.org
  reply_to = rt@example.org
  subject = bodyonly
  body_only
  return_message
  log = @ROOT@/mail/bodyonly.log
begin retry
* * F,1h,15m
"""

# (every reply has its own From: -- for a reply without one Exim's
# receiving side adds "From: <exim user>@<qualify_domain>", which eximpy's
# receive_local does not do yet for a null sender)
FILES = {"reply.txt": "line one for $local_part\nline two ${if eq{1}{1}{yes}{no}}\n"}


def _msg(sender: str, rcpts: list[str]) -> tuple[list[str], str]:
    return (["-f", sender] + rcpts,
            f"Subject: hello {sender}\nMessage-Id: <{sender}.m@example.org>\n"
            f"References: <root@example.org>\n\nbody of {sender}\n")


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [
        _msg("s1@example.org", ["fixed", "never", "optional", "nofile",
                                "hdronly", "bodyonly"]),
        _msg("s1@example.org", ["fixed"]),
        _msg("s2@example.org", ["fixed"]),
        _msg("s3@example.org", ["fixed"]),
    ], FILES, pause=1.1)


def test_log(runs):
    ex, py, ids = runs
    assert log_lines(py, ids) == log_lines(ex, ids)


def test_replies(runs):
    ex, py, ids = runs
    assert spool_reports(py, ids) == spool_reports(ex, ids)


def _log_file(p: Path) -> str | None:
    if not p.exists():
        return None
    return re.sub(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", "TIME", p.read_text())


@pytest.mark.parametrize("name", ["fixed.log", "never.log", "bodyonly.log"])
def test_log_files(runs, name):
    ex, py, _ = runs
    assert _log_file(py / "mail" / name) == _log_file(ex / "mail" / name)


def _once(p: Path) -> list[tuple[bool, str]] | None:
    """The fixed-size once file's records: (time is recent, address)."""
    if not p.exists():
        return None
    import time
    data = p.read_bytes()
    out = []
    while data:
        (t,) = struct.unpack("=q", data[:8])
        end = data.index(b"\0", 8)
        out.append((abs(time.time() - t) < 600, data[8:end].decode()))
        data = data[end + 1:]
    return out


def test_once_file_size(runs):
    ex, py, _ = runs
    assert _once(py / "mail" / "once.fixed") == _once(ex / "mail" / "once.fixed")
