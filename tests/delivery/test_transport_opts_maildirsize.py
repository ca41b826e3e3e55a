"""The maildirsize file over several deliveries, against real Exim 4.96
delivering the same spool: lines appended per message, recalculation when
the cached quota differs, when over quota with more than one line, a
Maildir++ folder counted in its parent (maildirfolder), a folder excluded
by maildir_quota_directory_regex (no quota, no update), a percentage
quota_warn_threshold crossed on the second message, and the quota
warning messages sent."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "transport_opts_maildirsize"

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
  local_parts = md1 : md2 : md3 : md4 : trash : sub
  transport = t_$local_part_data
  user = nobody
begin transports
t_md1:
  driver = appendfile
  directory = @ROOT@/mail/md1
  maildir_format
  maildir_use_size_file
  quota = 10M
t_md2:
  driver = appendfile
  directory = @ROOT@/mail/md2
  maildir_format
  maildir_use_size_file
  quota = 10M
  quota_filecount = 100
t_md3:
  driver = appendfile
  directory = @ROOT@/mail/md3
  maildir_format
  maildir_use_size_file
  quota = 300
t_md4:
  driver = appendfile
  directory = @ROOT@/mail/md4
  maildir_format
  maildir_use_size_file
  quota = 1000
  quota_warn_threshold = 40%
t_trash:
  driver = appendfile
  directory = @ROOT@/mail/box/.Trash
  maildir_format
  maildir_use_size_file
  maildirfolder_create_regex = /\\.[^/]+$
  maildir_quota_directory_regex = ^(?:cur|new|\\.(?!Trash).*)$
  quota = 100
t_sub:
  driver = appendfile
  directory = @ROOT@/mail/box/.Sub
  maildir_format
  maildir_use_size_file
  maildirfolder_create_regex = /\\.[^/]+$
  maildir_quota_directory_regex = ^(?:cur|new|\\.(?!Trash).*)$
  quota = 10M
begin retry
* * F,1h,15m
"""


def _hook(root: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    mail = root / "mail"
    for md, size_file, files in (
            ("md2", "5000S,0C\n100 1\n", {"cur/1.a": "a" * 40}),
            ("md3", "300S,0C\n0 0\n250 1\n60 1\n", {"cur/1.b": "b" * 30}),
            ("box", None, {"cur/1.c": "c" * 20})):
        for sub in ("tmp", "new", "cur"):
            (mail / md / sub).mkdir(parents=True)
        if size_file is not None:
            (mail / md / "maildirsize").write_text(size_file)
        for name, text in files.items():
            (mail / md / name).write_text(text)
        for d, _, fs in os.walk(mail / md):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
            for f in fs:
                os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)


def _msg(n: int) -> tuple[list[str], str]:
    return (["-f", "s@example.org", "md1", "md2", "md3", "md4", "trash", "sub"],
            f"Subject: message {n}\n\n" + "body line\n" * (5 * n))


@pytest.fixture(scope="module")
def runs():
    return run_pair(WORK, CONF, [_msg(1), _msg(2)], home_hook=_hook)


def test_log(runs):
    ex, py, ids = runs
    norm = lambda ln: re.sub(r"\d{10}\.M\d+P\d+", "T", ln)  # noqa: E731
    assert [norm(x) for x in log_lines(py, ids)] == \
        [norm(x) for x in log_lines(ex, ids)]


@pytest.mark.parametrize("md", ["md1", "md2", "md3", "md4", "box"])
def test_maildirsize(runs, md):
    ex, py, _ = runs

    def view(root: Path):
        p = root / "mail" / md / "maildirsize"
        return p.read_text() if p.exists() else None
    assert view(py) == view(ex)


@pytest.mark.parametrize("md", ["md1", "md2", "md3", "md4", "box"])
def test_counts(runs, md):
    ex, py, _ = runs

    def view(root: Path):
        out = []
        for d, dirs, fs in os.walk(root / "mail" / md):
            dirs.sort()
            out.append((str(Path(d).relative_to(root / "mail")), len(fs)))
        return sorted(out)
    assert view(py) == view(ex)


def test_warnings(runs):
    ex, py, ids = runs
    assert spool_reports(py, ids) == spool_reports(ex, ids)
