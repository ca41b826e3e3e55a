"""appendfile options against real Exim 4.96 delivering the same spool:
maildir_use_size_file (the maildirsize file and its updating),
maildir_quota_directory_regex, quota_filecount, quota_is_inclusive,
quota_size_regex, quota_warn_threshold (+ the warning message sent),
use_bsmtp, mbx_format, mailstore_format (+ prefix/suffix), a plain
directory delivery with directory_file, create_file, allow_symlink,
allow_fifo (refusal), check_group, mode_fail_narrower,
maildirfolder_create_regex."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from _pair import ROOT, log_lines, mbox_text, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "transport_opts_appendfile"

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
  local_parts = @LOCALS@
  transport = t_$local_part_data
  router_home_directory = @ROOT@/mail/home
w:
  driver = accept
  local_parts = warned
  transport = t_warned
begin transports
t_warned:
  driver = appendfile
  file = @ROOT@/mail/warned
  user = nobody
t_mdsize:
  driver = appendfile
  directory = @ROOT@/mail/mdsize
  maildir_format
  maildir_use_size_file
  quota = 10M
  quota_warn_threshold = 500
  user = nobody
t_mdnoquota:
  driver = appendfile
  directory = @ROOT@/mail/mdnoquota
  maildir_format
  maildir_use_size_file
  user = nobody
t_mdover:
  driver = appendfile
  directory = @ROOT@/mail/mdover
  maildir_format
  maildir_use_size_file
  quota = 100
  user = nobody
t_mdfc:
  driver = appendfile
  directory = @ROOT@/mail/mdfc
  maildir_format
  quota = 10M
  quota_filecount = 1
  user = nobody
t_mdexcl:
  driver = appendfile
  directory = @ROOT@/mail/mdexcl
  maildir_format
  quota = 20
  quota_is_inclusive = false
  user = nobody
t_mdregex:
  driver = appendfile
  directory = @ROOT@/mail/mdregex
  maildir_format
  maildir_tag = ,S=$message_size
  quota = 300
  quota_size_regex = ,S=(\\d+)
  user = nobody
t_mdfolder:
  driver = appendfile
  directory = @ROOT@/mail/mdroot/.Sub
  maildir_format
  maildir_use_size_file
  maildirfolder_create_regex = /\\.[^/]+$
  quota = 10M
  user = nobody
t_mbwarn:
  driver = appendfile
  file = @ROOT@/mail/mbwarn
  quota = 1K
  quota_warn_threshold = 10%
  quota_warn_message = "To: warned@example.org\\nSubject: quota $local_part\\n\\nover the threshold\\n"
  user = nobody
t_bsmtp:
  driver = appendfile
  file = @ROOT@/mail/bsmtp
  use_bsmtp
  message_prefix = "HELO vm.example\\n"
  user = nobody
t_bsmtpcrlf:
  driver = appendfile
  file = @ROOT@/mail/bsmtpcrlf
  use_bsmtp
  use_crlf
  user = nobody
t_mbx:
  driver = appendfile
  file = @ROOT@/mail/mbx
  mbx_format
  user = nobody
t_mstore:
  driver = appendfile
  directory = @ROOT@/mail/mstore
  mailstore_format
  mailstore_prefix = "envelope for $local_part"
  mailstore_suffix = "end ${if def:mailstore_basename{with}{without}} basename\\n"
  user = nobody
t_smail:
  driver = appendfile
  directory = @ROOT@/mail/smail
  directory_file = msg.$local_part
  user = nobody
t_inhome:
  driver = appendfile
  file = @ROOT@/mail/elsewhere/inhome
  create_file = inhome
  user = nobody
t_belowhome:
  driver = appendfile
  file = @ROOT@/mail/home/sub/$local_part_data
  create_file = belowhome
  user = nobody
t_belowlink:
  driver = appendfile
  file = @ROOT@/mail/home/link/$local_part_data
  create_file = belowhome
  user = nobody
t_notinhome:
  driver = appendfile
  file = @ROOT@/mail/home/sub/notinhome
  create_file = inhome
  user = nobody
t_symlink:
  driver = appendfile
  file = @ROOT@/mail/symlink
  allow_symlink
  user = nobody
t_nosymlink:
  driver = appendfile
  file = @ROOT@/mail/nosymlink
  user = nobody
t_fifo:
  driver = appendfile
  file = @ROOT@/mail/fifo
  user = nobody
t_group:
  driver = appendfile
  file = @ROOT@/mail/group
  check_group
  user = nobody
  group = nogroup
t_narrow:
  driver = appendfile
  file = @ROOT@/mail/narrow
  mode = 0640
  user = nobody
t_nonarrow:
  driver = appendfile
  file = @ROOT@/mail/nonarrow
  mode = 0640
  no_mode_fail_narrower
  user = nobody
t_wider:
  driver = appendfile
  file = @ROOT@/mail/wider
  mode = 0600
  user = nobody
begin retry
* * F,1h,15m
"""

LOCALS = ["mdsize", "mdnoquota", "mdover", "mdfc", "mdexcl", "mdregex",
          "mdfolder", "mbwarn", "bsmtp", "bsmtpcrlf", "mbx", "mstore", "smail",
          "inhome", "belowhome", "belowlink", "notinhome", "symlink",
          "nosymlink", "fifo", "group", "narrow", "nonarrow", "wider"]
# (create_file = belowhome with a file name that has no expansion makes
# Exim 4.96's delivery process die of SIGSEGV: check_creation() writes into
# the constant string; the names here are expanded)

BODY = ("Subject: opts\nMessage-Id: <opts@example.org>\n\nbody line\n"
        ".dot line\nFrom here\n")


def _home_hook(root: Path) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    mail = root / "mail"
    (mail / "home" / "sub").mkdir(parents=True)
    os.chown(mail / "home", nobody.pw_uid, nobody.pw_gid)
    os.chown(mail / "home" / "sub", nobody.pw_uid, nobody.pw_gid)
    # a symbolic link in the home directory leading out of it
    (mail / "outside").mkdir()
    os.chown(mail / "outside", nobody.pw_uid, nobody.pw_gid)
    os.symlink(mail / "outside", mail / "home" / "link")
    # an existing message in mdfc (filecount 1 reached), in mdexcl (20 bytes
    # already: over quota before this message)
    for md, content in (("mdfc", "x" * 10), ("mdexcl", "y" * 25)):
        for sub in ("tmp", "new", "cur"):
            (mail / md / sub).mkdir(parents=True)
        (mail / md / "cur" / "1.old").write_text(content)
        for d, _, fs in os.walk(mail / md):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
            for f in fs:
                os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    for sub in ("tmp", "new", "cur"):
        (mail / "mdregex" / sub).mkdir(parents=True)
        (mail / "mdroot" / sub).mkdir(parents=True)
    (mail / "mdroot" / "cur" / "1.old").write_text("old message")
    for d, _, fs in os.walk(mail / "mdroot"):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in fs:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    (mail / "mdregex" / "cur" / "1.old,S=250").write_text("z")
    for d, _, fs in os.walk(mail / "mdregex"):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        for f in fs:
            os.chown(os.path.join(d, f), nobody.pw_uid, nobody.pw_gid)
    target = mail / "symtarget"
    target.write_text("")
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    os.symlink(target, mail / "symlink")
    os.lchown(mail / "symlink", nobody.pw_uid, nobody.pw_gid)
    os.symlink(target, mail / "nosymlink")
    os.lchown(mail / "nosymlink", nobody.pw_uid, nobody.pw_gid)
    os.mkfifo(mail / "fifo")
    os.chown(mail / "fifo", nobody.pw_uid, nobody.pw_gid)
    for name, mode, gid in (("group", 0o600, 0), ("narrow", 0o600, None),
                            ("nonarrow", 0o600, None), ("wider", 0o644, None)):
        p = mail / name
        p.write_text("")
        os.chown(p, nobody.pw_uid, nobody.pw_gid if gid is None else gid)
        p.chmod(mode)


@pytest.fixture(scope="module")
def runs():
    conf = CONF.replace("@LOCALS@", " : ".join(LOCALS))
    return run_pair(WORK, conf, [(["-f", "s@example.org"] + LOCALS, BODY)],
                    home_hook=_home_hook)


def _norm(b: bytes) -> bytes:
    b = re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", b)
    b = re.sub(rb"\d{10}\.M\d+P\d+\.", b"T.MuPp.", b)
    return b


def _log_norm(ln: str) -> str:
    ln = re.sub(r"\d{10}\.M\d+P\d+", "T", ln)
    return re.sub(r"\.lock\.vm\.example\.[0-9a-f]{8}\.[0-9a-f]{8}", ".lock.HITCH", ln)


def test_log(runs):
    ex, py, ids = runs
    assert [_log_norm(ln) for ln in log_lines(py, ids)] == \
        [_log_norm(ln) for ln in log_lines(ex, ids)]


def _tree(root: Path, sub: str) -> list[tuple[str, int, bytes]]:
    out = []
    base = root / "mail" / sub
    if not base.exists():
        return out
    for d, dirs, fs in os.walk(base):
        dirs.sort()
        for n in sorted(fs):
            p = Path(d) / n
            rel = str(p.relative_to(base))
            rel = re.sub(r"\d{10}\.M\d+P\d+", "T", rel)
            rel = re.sub(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}-\w+\.",
                         "ID-PID.", rel)
            st = p.lstat()
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out.append((rel, stat.S_IMODE(st.st_mode), _norm(data)))
    return sorted(out)


@pytest.mark.parametrize("sub", ["mdsize", "mdnoquota", "mdover", "mdfc",
                                 "mdexcl", "mdregex", "mdroot", "mstore",
                                 "smail"])
def test_directories(runs, sub):
    ex, py, _ = runs
    assert _tree(py, sub) == _tree(ex, sub)


@pytest.mark.parametrize("name", ["mbwarn", "bsmtp", "bsmtpcrlf", "symtarget",
                                  "group", "narrow", "nonarrow", "wider",
                                  "elsewhere/inhome", "warned",
                                  "home/sub/belowhome", "outside/belowlink",
                                  "home/sub/notinhome"])
def test_files(runs, name):
    ex, py, _ = runs
    def view(root: Path):
        p = root / "mail" / name
        if not p.exists():
            return None
        return stat.S_IMODE(p.stat().st_mode), mbox_text(p)
    assert view(py) == view(ex)


def _mbx(b: bytes) -> bytes:
    # the header block's UID validity and the per-message date are times
    b = re.sub(rb"^\*mbx\*\r\n[0-9a-f]{8}", b"*mbx*\r\nTIME", b)
    b = re.sub(rb"\d{1,2}-\w{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4},", b"DATE,", b)
    return _norm(b)


def test_mbx(runs):
    ex, py, _ = runs
    assert _mbx((py / "mail" / "mbx").read_bytes()) == \
        _mbx((ex / "mail" / "mbx").read_bytes())


def test_generated_messages(runs):
    """The quota warning messages (and nothing else) are spooled alike."""
    ex, py, ids = runs
    assert spool_reports(py, ids) == spool_reports(ex, ids)
