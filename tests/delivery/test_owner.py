"""Local deliveries run as the mailbox owner (eximpy.deliver.local).

As root, a test user (with a supplementary group) is created and removed
afterwards.  Messages are delivered by `eximpy -odi` and by `-M ID` after
`-odq`; the tests check the owner and mode of the Maildir and the message
file, read /proc/PID/status of the local-delivery child through a pipe
transport, and compare the never_users / fixed_never_users and
deliver_drop_privilege log lines with real Exim's.  A plain user running
eximpy delivers as itself, without a fork.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from oracle import EXIM, ROOT

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
{extra}
begin routers
ids:
  driver = accept
  check_local_user
  local_part_suffix = -ids
  transport = ids_pipe
idsg:
  driver = accept
  check_local_user
  local_part_suffix = -idsg
  initgroups
  transport = ids_pipe_ig
vacation:
  driver = accept
  check_local_user
  local_part_suffix = -away
  transport = away
rootish:
  driver = accept
  local_parts = rootish
  user = root
  transport = fixed_file
other:
  driver = accept
  local_parts = other
  transport = user_file
tuids:
  driver = accept
  local_parts = tuids
  transport = tu_pipe
local:
  driver = accept
  check_local_user
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = $home/Maildir
  maildir_format
  directory_mode = 0750
  mode = 0640
ids_pipe:
  driver = pipe
  command = /bin/sh -c 'cat /proc/\\$PPID/status > \\$HOME/status.-ids'
ids_pipe_ig:
  driver = pipe
  command = /bin/sh -c 'cat /proc/\\$PPID/status > \\$HOME/status.-idsg'
away:
  driver = autoreply
  to = $sender_address
  subject = away
  text = I am away.
  once = $home/once.db
tu_pipe:
  driver = pipe
  user = {user}
  initgroups
  command = /bin/sh -c 'cat /proc/\\$PPID/status > {dir}/mail/status.tu'
fixed_file:
  driver = appendfile
  file = {dir}/mail/box
user_file:
  driver = appendfile
  file = {dir}/mail/other
  user = {user}
"""


@pytest.fixture(scope="module")
def mailuser():
    """A user with a home directory and a supplementary group."""
    assert os.geteuid() == 0, "these tests create a user: run as root"
    name = f"ownt{os.getpid() % 100000}"
    gname = name + "g"
    base = Path(tempfile.mkdtemp(prefix="eximpy-owner-"))
    base.chmod(0o755)
    home = base / "home"
    subprocess.run(["groupadd", gname], check=True)
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh",
                    "-G", gname, name], check=True)
    pw = pwd.getpwnam(name)
    home.mkdir()
    os.chown(home, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    try:
        yield pw, grp.getgrnam(gname).gr_gid, base
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", gname], check=False)
        shutil.rmtree(base, ignore_errors=True)


class Site:
    """A configuration in a fresh 0755 directory."""

    def __init__(self, base: Path, tag: str, user: str, extra: str = "") -> None:
        self.dir = base / tag
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "mail").mkdir(parents=True)
        self.dir.chmod(0o755)
        (self.dir / "mail").chmod(0o777)
        self.conf = self.dir / "conf"
        self.conf.write_text(CONF.format(dir=self.dir, extra=extra, user=user))

    def eximpy(self, args: list[str], stdin: bytes = b"", **kw) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        return subprocess.run([sys.executable, "-m", "eximpy", "-C",
                               str(self.conf)] + args, input=stdin,
                              capture_output=True, env=env, timeout=60, **kw)

    def log(self, name: str = "main") -> str:
        p = self.dir / "log" / f"{name}log"
        return p.read_text() if p.exists() else ""


MSG = b"From: someone@test.example\nSubject: owner test\n\nbody\n"


def _status(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _ids(st: dict[str, str], key: str) -> list[int]:
    return [int(x) for x in st[key].split()]


def test_M_as_root_delivers_into_a_maildir_owned_by_the_user(mailuser) -> None:
    pw, _supp, base = mailuser
    site = Site(base, "m", pw.pw_name)
    maildir = Path(pw.pw_dir) / "Maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    p = site.eximpy(["-odq", pw.pw_name + "@test.example"], MSG)
    assert p.returncode == 0, p.stderr
    [mid] = re.findall(r"(\S{6}-\S{6}-\S{2}) <= ", site.log())
    assert (site.dir / "spool" / "input" / f"{mid}-H").exists()
    p = site.eximpy(["-M", mid])
    assert p.returncode == 0, p.stderr
    assert f"{mid} => {pw.pw_name} <{pw.pw_name}@test.example> R=local " \
        f"T=maildir" in site.log()
    for d in (maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        st = d.stat()
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), d
        assert st.st_mode & 0o7777 == 0o750, d
    [f] = list((maildir / "new").iterdir())
    st = f.stat()
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert st.st_mode & 0o7777 == 0o640
    assert b"Subject: owner test" in f.read_bytes()
    assert not (site.dir / "spool" / "input" / f"{mid}-H").exists()


@pytest.mark.parametrize("suffix", ["-ids", "-idsg"])
def test_local_delivery_child_holds_exactly_the_users_ids(mailuser, suffix) -> None:
    pw, supp, base = mailuser
    site = Site(base, "ids" + suffix, pw.pw_name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "eximpy", "-C", str(site.conf), "-odi",
         f"{pw.pw_name}{suffix}@test.example"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    _out, err = proc.communicate(MSG, timeout=60)
    assert proc.returncode == 0, err
    # $PPID of the shell: the Python process that ran the pipe transport.
    st = _status(Path(pw.pw_dir) / f"status.{suffix}")
    assert _ids(st, "Uid") == [pw.pw_uid] * 4
    assert _ids(st, "Gid") == [pw.pw_gid] * 4
    want = sorted({pw.pw_gid, supp}) if suffix == "-idsg" else [pw.pw_gid]
    assert sorted(_ids(st, "Groups")) == want
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    # a forked child of the root delivery process, not that process itself
    assert int(st["PPid"]) == proc.pid
    assert int(st["Pid"]) != proc.pid


def test_transport_user_and_initgroups(mailuser) -> None:
    """user and initgroups set on the transport (findugid: the transport's
    user brings its passwd group and the transport's initgroups flag)."""
    pw, supp, base = mailuser
    site = Site(base, "tu", pw.pw_name)
    p = site.eximpy(["-odi", "tuids@test.example"], MSG)
    assert p.returncode == 0, p.stderr
    assert "=> tuids <tuids@test.example> R=tuids T=tu_pipe" in site.log()
    st = _status(site.dir / "mail" / "status.tu")
    assert _ids(st, "Uid") == [pw.pw_uid] * 4
    assert _ids(st, "Gid") == [pw.pw_gid] * 4
    assert sorted(_ids(st, "Groups")) == sorted({pw.pw_gid, supp})
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0


def test_autoreply_composed_by_the_user_is_spooled_by_the_parent(mailuser) -> None:
    pw, _supp, base = mailuser
    site = Site(base, "away", pw.pw_name)
    p = site.eximpy(["-odi", "-f", "friend@test.example",
                     pw.pw_name + "-away@test.example"], MSG)
    assert p.returncode == 0, p.stderr
    log = site.log()
    [mid] = re.findall(r"(\S{6}-\S{6}-\S{2}) <= friend@", log)
    assert f"=> {pw.pw_name} <{pw.pw_name}-away@test.example> R=vacation " \
        f"T=away" in log
    assert f"<= <> R={mid} U={pw.pw_name} P=local" in log
    once = Path(pw.pw_dir) / "once.db"
    st = once.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o600)


def _exim_site(base: Path, tag: str, user: str, extra: str) -> Site:
    site = Site(base, tag, user, extra)
    for d in ("spool", "log"):
        (site.dir / d).mkdir()
        shutil.chown(site.dir / d, "Debian-exim", "Debian-exim")
    return site


def _lines(site: Site, kind: str = "main") -> list[str]:
    """Log lines about the first message, without times and ids."""
    text = site.log(kind)
    ids = re.findall(r"(\S{6}-\S{6}-\S{2}) <= \S+@test.example", text)
    assert ids, text
    out = []
    for ln in text.splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln)
        if not ln.startswith(ids[0]) or " <= " in ln:
            continue
        ln = ln.replace(ids[0], "ID").replace(str(site.dir), "@DIR@")
        out.append(re.sub(r"euid=\d+", "euid=E", ln))
    return out


@pytest.mark.parametrize("case,extra,rcpt", [
    ("never", "never_users = root", "rootish"),
    ("fixed", "", "rootish"),
    ("drop", "deliver_drop_privilege", "other"),
])
def test_refusals_match_exim(mailuser, case, extra, rcpt) -> None:
    """never_users, fixed_never_users (root), and a uid change that
    deliver_drop_privilege makes impossible: the same log lines as Exim
    (which, run with -C, has itself given up root: the same situation)."""
    assert EXIM is not None
    pw, _supp, base = mailuser
    ex = _exim_site(base, "ex-" + case, pw.pw_name, extra)
    py = Site(base, "py-" + case, pw.pw_name, extra)
    for site, cmd in ((ex, [EXIM, "-C", str(ex.conf)]),
                      (py, [sys.executable, "-m", "eximpy", "-C", str(py.conf)])):
        p = subprocess.run(cmd + ["-odi", rcpt + "@test.example"], input=MSG,
                           capture_output=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert p.returncode == 0, p.stderr
    want = [ln for ln in _lines(ex) if "lost privilege" not in ln]
    assert _lines(py) == want
    assert any(" defer (" in ln for ln in want)
    wantp = [ln for ln in _lines_panic(ex)]
    assert _lines_panic(py) == wantp
    assert not (py.dir / "mail" / "box").exists()
    assert not (py.dir / "mail" / "other").exists()


def _lines_panic(site: Site) -> list[str]:
    main = site.log()
    [mid] = re.findall(r"(\S{6}-\S{6}-\S{2}) <= \S+@test.example", main)[:1]
    out = []
    for ln in site.log("panic").splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln)
        if ln.startswith(mid):
            out.append(re.sub(r"euid=\d+", "euid=E", ln.replace(mid, "ID")))
    return out


def test_plain_user_delivers_as_itself_without_a_fork(mailuser) -> None:
    """eximpy run by an ordinary user: everything runs as that user, and
    a transport whose uid is already this process's runs in it (the
    process that runs the pipe command's shell is the delivering one)."""
    import io

    from eximpy.config import load_config
    from eximpy.deliver.deliver import _warm_imports, deliver_message
    from eximpy.privilege import drop_permanently
    from eximpy.receive import LocalOptions, receive_local
    pw, _supp, base = mailuser
    site = Site(base, "plain", pw.pw_name, f"exim_user = {pw.pw_name}")
    shutil.chown(site.dir, pw.pw_uid, pw.pw_gid)
    shutil.rmtree(Path(pw.pw_dir) / "Maildir", ignore_errors=True)
    config = load_config(str(site.conf))
    _warm_imports()
    pids = []
    for rcpt in (pw.pw_name, pw.pw_name + "-ids"):
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.chdir("/")
                drop_permanently(pw.pw_uid, pw.pw_gid)
                res = receive_local(config, None, [rcpt + "@test.example"],
                                    io.BytesIO(MSG), LocalOptions())
                code = 0 if deliver_message(config, res.id).completed else 98
            except BaseException:
                code = 97
            finally:
                os._exit(code)
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0, site.log() + site.log("panic")
        pids.append(pid)
    log = site.log()
    assert log.count("Completed") == 2, log
    st = _status(Path(pw.pw_dir) / "status.-ids")
    assert _ids(st, "Uid") == [pw.pw_uid] * 4
    assert int(st["Pid"]) == pids[1]            # no delivery child
    new = Path(pw.pw_dir) / "Maildir" / "new"
    [f] = list(new.iterdir())
    assert (f.stat().st_uid, f.stat().st_gid) == (pw.pw_uid, pw.pw_gid)


def test_child_report_is_typed_and_checked() -> None:
    """The parent accepts only the documented JSON report (no pickle)."""
    import json
    import pickle
    from types import SimpleNamespace

    from eximpy.deliver.local import decode_report, encode_report
    from eximpy.transports._write import TransportResult
    addr = SimpleNamespace(delivered_path="/var/mail/x\udcff")
    good = encode_report(TransportResult("FAIL", "boom", 5, 75, None, 0, "out"),
                         addr, b"reply\xff")
    rep = decode_report(good)
    assert rep is not None
    assert (rep["status"], rep["message"], rep["errno"], rep["more_errno"],
            rep["returned_output"], rep["delivered_path"], rep["reply"]) == \
        ("FAIL", "boom", 5, 75, "out", "/var/mail/x\udcff", b"reply\xff")
    base = json.loads(good)
    bad = [pickle.dumps(TransportResult("OK")), b"", b"[]", b"\xff",
           json.dumps({**base, "extra": 1}).encode(),
           json.dumps({**base, "status": "PANIC"}).encode(),
           json.dumps({**base, "errno": True}).encode(),
           json.dumps({**base, "message": 3}).encode(),
           json.dumps({**base, "v": 2}).encode(),
           json.dumps({**base, "reply": {"data": "!!"}}).encode()]
    for data in bad:
        assert decode_report(data) is None, data


def test_drop_privilege_holds_for_every_message_of_a_process(mailuser) -> None:
    """deliver_drop_privilege: the second message delivered by the same
    (already dropped) process is refused the uid change like the first."""
    pw, _supp, base = mailuser
    site = Site(base, "drop2", pw.pw_name, "deliver_drop_privilege")
    for _ in range(2):
        p = site.eximpy(["-odq", "other@test.example"], MSG)
        assert p.returncode == 0, p.stderr
    ids = re.findall(r"(\S{6}-\S{6}-\S{2}) <= ", site.log())
    from eximpy.config import load_config
    from eximpy.deliver.deliver import _warm_imports, deliver_many
    config = load_config(str(site.conf))
    _warm_imports()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            deliver_many(config, ids)
            code = 0
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0
    log = site.log()
    for mid in ids:
        assert f"{mid} unable to set gid={pw.pw_gid} or uid={pw.pw_uid} " in log
        assert f"{mid} == other@test.example R=other T=user_file defer (-1)" \
            in log
    assert not (site.dir / "mail" / "other").exists()
