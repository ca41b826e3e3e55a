"""Differential delivery tests: the same spooled messages delivered by real
Exim (`exim -C conf -M id`) and by eximpy give the same mailboxes and logs.

Messages are received once by real Exim (-odq) and the spool is copied, so
both deliver byte-identical spool files.  Mailboxes are compared with
Python's mailbox module, ignoring only what depends on the time of delivery
(the mbox From_ line's date and Delivery-date:).  Log lines are compared
without their timestamps.
"""
from __future__ import annotations

import mailbox
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import EXIM

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "delivery"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
domainlist local_domains = example.org
never_users = root
keep_environment =
begin routers
aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part}lsearch{@ROOT@/aliases}}
  pipe_transport = pipe
  file_transport = file
  directory_transport = maildir
  user = nobody
  headers_add = X-Router: aliases for $local_part
mbox:
  driver = accept
  domains = +local_domains
  local_parts = a : b : c : d : e : wrongowner
  transport = mbox
maildir:
  driver = accept
  local_parts = md : md2
  transport = maildir
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
  return_path_add
  envelope_to_add
  delivery_date_add
  headers_add = X-Added: by $transport_name for $local_part
  headers_remove = X-Remove-Me
maildir:
  driver = appendfile
  directory = @ROOT@/Maildir/${if def:local_part_data{$local_part_data}{dir}}
  maildir_format
  user = nobody
  envelope_to_add
pipe:
  driver = pipe
  user = nobody
file:
  driver = appendfile
  user = nobody
begin retry
* * F,1h,15m
"""

ALIASES = """\
list: a, b, md, |/usr/bin/tee -a @ROOT@/mail/pipe.out, @ROOT@/mail/filedest
list2: c, md2, @ROOT@/Maildir/dirdest/
dup: a, a@example.org, b
"""

MESSAGES = [
    (["-f", "sender@example.org", "list", "c"],
     "Subject: test one\nFrom: Some One <someone@example.org>\n"
     "X-Remove-Me: yes\nTo: list@example.org\n\nbody line\n"
     "From the start of a line\n>From already quoted\nend\n"),
    (["-f", "other@example.net", "list2", "d", "md"],
     "Subject: =?utf-8?q?caf=C3=A9?=\nFrom: x@example.net\n\n"
     "caf\u00e9 8bit body\n\n\nblank lines above\n" + "long " * 300 + "\n"),
    (["-f", "", "e", "dup"],
     "Subject: bounce-ish\n\nFrom nobody\n"),
]


def _prepare(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail", "Maildir"):
        (root / d).mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    exim = pwd.getpwnam("Debian-exim")
    for d in ("mail", "Maildir"):
        os.chown(root / d, nobody.pw_uid, nobody.pw_gid)
    for d in ("spool", "log"):
        os.chown(root / d, exim.pw_uid, exim.pw_gid)
    (root / "aliases").write_text(ALIASES.replace("@ROOT@", str(root)))
    conf = root / "exim.conf"
    conf.write_text(CONF.replace("@ROOT@", str(root)))
    return conf


def _log_lines(root: Path) -> list[str]:
    text = (root / "log" / "mainlog").read_text()
    text = text.replace(str(root), "@ROOT@")
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln)
             for ln in text.splitlines()]
    return [ln for ln in lines if " <= " not in ln]


def _mbox_view(path: Path) -> list[tuple[list[tuple[str, str]], bytes]]:
    out = []
    for m in mailbox.mbox(str(path)):
        headers = [(k, v) for k, v in m.items() if k.lower() != "delivery-date"]
        out.append((headers, m.get_payload(decode=False).encode("utf-8", "surrogateescape")
                    if isinstance(m.get_payload(), str) else b""))
        assert m.get_from().split()[0] in {"sender@example.org",
                                           "other@example.net",
                                           "MAILER-DAEMON"}
    return out


def _maildir_view(path: Path) -> list[tuple[list[tuple[str, str]], str]]:
    md = mailbox.Maildir(str(path), create=False)
    out = []
    for key in md.keys():
        m = md[key]
        out.append(([(k, v) for k, v in m.items()], m.get_payload()))
        assert re.fullmatch(r"\d+\.M\d+P\d+\.vm\.example", key), key
    return sorted(out, key=repr)


@pytest.fixture(scope="module")
def delivered():
    """Receive the messages with real Exim, copy the spool, deliver one copy
    with Exim and the other with eximpy."""
    if EXIM is None:
        pytest.fail("real Exim is needed for the delivery differential tests")
    ex, py = WORK / "exim", WORK / "eximpy"
    conf_ex = _prepare(ex)
    conf_py = _prepare(py)
    ids = []
    for args, text in MESSAGES:
        p = subprocess.run([EXIM, "-C", str(conf_ex), "-odq"] + args,
                           input=text.encode(), capture_output=True)
        assert p.returncode == 0, p.stderr
    for f in sorted((ex / "spool" / "input").iterdir()):
        if f.name.endswith("-H"):
            ids.append(f.name[:-2])
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool", symlinks=True)
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    shutil.copy(ex / "log" / "mainlog", py / "log" / "mainlog")
    shutil.chown(py / "log" / "mainlog", "Debian-exim", "Debian-exim")
    for mid in ids:
        r1 = subprocess.run([EXIM, "-C", str(conf_ex), "-M", mid],
                            capture_output=True)
        r2 = subprocess.run([sys.executable, str(DELIVER_MAIN), "-C",
                             str(conf_py), "-M", mid], capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert (r2.returncode, r2.stdout, r2.stderr) == \
            (r1.returncode, r1.stdout, r1.stderr)
    return ex, py, ids


@pytest.mark.parametrize("box", ["a", "b", "c", "d", "e"])
def test_mbox_contents(delivered, box):
    ex, py, _ = delivered
    assert (py / "mail" / box).exists() == (ex / "mail" / box).exists()
    assert _mbox_view(py / "mail" / box) == _mbox_view(ex / "mail" / box)


def test_mbox_bytes_modulo_dates(delivered):
    """Apart from the delivery time, the mailbox files are byte-identical."""
    ex, py, _ = delivered

    def strip(b: bytes) -> bytes:
        b = re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", b)
        return re.sub(rb"(?m)^Delivery-date: .*$", b"Delivery-date: DATE", b)
    for box in ("a", "b", "c", "d", "e", "filedest", "pipe.out"):
        assert (py / "mail" / box).exists(), box
        assert strip((py / "mail" / box).read_bytes()) == \
            strip((ex / "mail" / box).read_bytes()), box


@pytest.mark.parametrize("folder", ["md", "md2", "dir"])
def test_maildir_contents(delivered, folder):
    ex, py, _ = delivered
    assert _maildir_view(py / "Maildir" / folder) == \
        _maildir_view(ex / "Maildir" / folder)


def test_file_ownership(delivered):
    ex, py, _ = delivered
    for rel in ("mail/a", "mail/filedest", "Maildir/md/new"):
        s1, s2 = os.stat(ex / rel), os.stat(py / rel)
        assert (s2.st_uid, s2.st_gid, oct(s2.st_mode)) == \
            (s1.st_uid, s1.st_gid, oct(s1.st_mode)), rel


def test_log_lines(delivered):
    ex, py, _ = delivered
    assert _log_lines(py) == _log_lines(ex)


def test_spool_emptied(delivered):
    ex, py, _ = delivered
    left_ex = sorted(os.listdir(ex / "spool" / "input"))
    left_py = sorted(os.listdir(py / "spool" / "input"))
    assert left_py == left_ex == []
