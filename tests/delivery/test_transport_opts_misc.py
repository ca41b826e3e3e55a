"""More transport options against real Exim 4.96 delivering the same
spool: rcpt_include_affixes in batch SMTP, pipe use_bsmtp with use_crlf,
temp_errors = *, timeout / timeout_defer, maildir_retries (a tmp/ that
cannot be written), a pipe write that times out (a big message to a
command that does not read), maildir_tag with a leading
letter (":" prefix), a malformed quota (the setup failure), a percentage
quota_warn_threshold without a quota (ignored), quota with a K suffix."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "transport_opts_misc"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
queue_only = true
begin routers
affix:
  driver = accept
  local_parts = aff : naff
  local_part_suffix = -*
  transport = t_$local_part_data
  user = nobody
r:
  driver = accept
  local_parts = @LOCALS@
  transport = t_$local_part_data
  user = nobody
begin transports
t_aff:
  driver = appendfile
  file = @ROOT@/mail/aff
  use_bsmtp
  rcpt_include_affixes
t_naff:
  driver = appendfile
  file = @ROOT@/mail/naff
  use_bsmtp
t_crlf:
  driver = pipe
  use_bsmtp
  use_crlf
  command = /bin/sh -c 'cat > @ROOT@/mail/crlf'
t_tempall:
  driver = pipe
  temp_errors = *
  command = /bin/sh -c 'exit 1'
t_timeout:
  driver = pipe
  timeout = 1s
  command = /bin/sleep 5
t_timeoutdefer:
  driver = pipe
  timeout = 1s
  timeout_defer
  command = /bin/sleep 5
t_tag:
  driver = appendfile
  directory = @ROOT@/mail/tag
  maildir_format
  maildir_tag = S$message_size/x
t_badquota:
  driver = appendfile
  file = @ROOT@/mail/badquota
  quota = 10X
t_pctnoquota:
  driver = appendfile
  file = @ROOT@/mail/pctnoquota
  quota_warn_threshold = 50%
t_mdretry:
  driver = appendfile
  directory = @ROOT@/mail/mdretry
  maildir_format
  maildir_retries = 2
t_bigwrite:
  driver = pipe
  timeout = 1s
  command = /bin/sleep 5
t_bigwritedefer:
  driver = pipe
  timeout = 1s
  timeout_defer
  command = /bin/sleep 5
t_smaildef:
  driver = appendfile
  directory = @ROOT@/mail/smaildef
t_kquota:
  driver = appendfile
  file = @ROOT@/mail/kquota
  quota = 0.1K
begin retry
* * F,1h,15m
"""

LOCALS = ["crlf", "tempall", "timeout", "timeoutdefer", "tag", "badquota",
          "pctnoquota", "kquota", "mdretry", "bigwrite", "bigwritedefer",
          "smaildef"]


def _hook(root: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    for sub in ("tmp", "new", "cur"):
        d = root / "mail" / "mdretry" / sub
        d.mkdir(parents=True)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    os.chown(root / "mail" / "mdretry", nobody.pw_uid, nobody.pw_gid)
    (root / "mail" / "mdretry" / "tmp").chmod(0o500)


@pytest.fixture(scope="module")
def runs():
    conf = CONF.replace("@LOCALS@", " : ".join(LOCALS))
    small = [x for x in LOCALS if not x.startswith("bigwrite")]
    big = "Subject: big\n\n" + ("x" * 70 + "\n") * 4000
    return run_pair(WORK, conf, [(["-f", "s@example.org", "aff-x", "naff-y"]
                                  + small, "Subject: misc\n\nbody\n.dot\n"),
                                 (["-f", "s@example.org", "bigwrite",
                                   "bigwritedefer"], big)],
                    home_hook=_hook)


def test_log(runs):
    ex, py, ids = runs

    def norm(ln: str) -> str:
        return re.sub(r"\d{10}\.M\d+P\d+", "T", ln)
    assert [norm(x) for x in log_lines(py, ids)] == \
        [norm(x) for x in log_lines(ex, ids)]


@pytest.mark.parametrize("name", ["aff", "naff", "crlf", "badquota",
                                  "pctnoquota", "kquota"])
def test_files(runs, name):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        text = re.sub(r"(?m)^(From \S+) .*$", r"\1 DATE", p.read_text())
        return stat.S_IMODE(p.stat().st_mode), text
    assert view(py) == view(ex)


def test_tag(runs):
    ex, py, _ = runs

    def names(root: Path):
        return sorted(re.sub(r"^\d+\.M\d+P\d+", "T", n)
                      for n in os.listdir(root / "mail" / "tag" / "new"))
    assert names(py) == names(ex)


def test_generated(runs):
    ex, py, ids = runs
    assert spool_reports(py, ids) == spool_reports(ex, ids)


def test_default_directory_file(runs):
    """A plain directory delivery names the file q${base62:$tod_epoch}-$inode."""
    ex, py, _ = runs

    def view(root: Path):
        d = root / "mail" / "smaildef"
        return sorted((re.sub(r"^q[0-9A-Za-z]{6}-\d+$", "qTIME-INODE", n),
                       stat.S_IMODE((d / n).stat().st_mode), (d / n).read_text())
                      for n in os.listdir(d))
    assert view(py) == view(ex)
