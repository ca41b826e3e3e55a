"""The daemon delivers local mail as the mailbox owner (DESIGN.md section 2).

Started as root (`eximpy -bdf -q1s` on a loopback port), the delivery role
runs as the eximpy user with only CAP_SETUID/CAP_SETGID; each local
delivery runs in a child that has become the recipient user for good
(eximpy.deliver.local).  A test user is created and removed; mail is sent
with swaks and smtplib; the tests check the Maildir's owner and modes, the
ids and capabilities of the local-delivery child and of the per-message
delivery process above it (read by a pipe transport from /proc), and that
never_users keeps root out.
"""
from __future__ import annotations

import grp
import mailbox
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from oracle import ROOT

CAP_SETUID_SETGID = (1 << 6) | (1 << 7)

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
acl_smtp_rcpt = accept
never_users = root
begin routers
ids:
  driver = accept
  check_local_user
  local_part_suffix = -ids
  transport = ids_pipe
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
local:
  driver = accept
  check_local_user
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = $home/Maildir
  maildir_format
ids_pipe:
  driver = pipe
  command = {dir}/ids.sh
fixed_file:
  driver = appendfile
  file = {dir}/mail/box
away:
  driver = autoreply
  to = $sender_address
  subject = away
  text = I am away.
  once = $home/once.db
"""

IDS_SH = """\
#!/bin/sh
# run by the pipe transport: $PPID is the local-delivery child
cat /proc/$PPID/status > "$HOME/status.child"
pp=$(awk '/^PPid:/ {print $2}' /proc/$PPID/status)
cat /proc/$pp/status > "$HOME/status.parent"
cat > /dev/null
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _children(ppid: int) -> dict[int, str]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == ppid:
            out[int(d)] = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


class Daemon:
    """The pattern of tests/proc/test_daemon.py's helper, with a test user."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eximpy-owner-daemon-"))
        self.dir.chmod(0o755)
        self.port = _free_port()
        self.user = f"ownd{os.getpid() % 100000}"
        # the home directory is inside a directory that only the user may
        # enter: the delivery role (the eximpy user) cannot even stat it, so
        # the delivery must be the user's own child that changes there.
        self.home = self.dir / "private" / "home"
        subprocess.run(["useradd", "-M", "-d", str(self.home), "-s", "/bin/sh",
                        self.user], check=True)
        self.pw = pwd.getpwnam(self.user)
        for d in (self.home.parent, self.home):
            d.mkdir()
            os.chown(d, self.pw.pw_uid, self.pw.pw_gid)
            d.chmod(0o700)
        (self.dir / "mail").mkdir()
        (self.dir / "mail").chmod(0o777)
        script = self.dir / "ids.sh"
        script.write_text(IDS_SH)
        script.chmod(0o755)
        self.conf = self.dir / "eximpy.conf"
        self.conf.write_text(CONF.format(dir=self.dir, port=self.port))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eximpy", "-C", str(self.conf), "-bdf",
             "-q1s"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for(lambda: len(self.roles()) == 3, what="three roles")
        _wait_for(self._accepts, what="the listener")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    def roles(self) -> dict[str, int]:
        return {cmd[len("eximpy: "):]: pid
                for pid, cmd in _children(self.proc.pid).items()
                if cmd.startswith("eximpy: ")}

    def log(self, name: str = "main") -> str:
        p = self.dir / "log" / f"{name}log"
        return p.read_text() if p.exists() else ""

    def send(self, rcpt: str, subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as c:
            c.sendmail("sender@test.example", [rcpt],
                       f"Subject: {subject}\r\n\r\nbody\r\n".encode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["userdel", self.user], check=False)
        try:
            grp.getgrnam(self.user)
            subprocess.run(["groupdel", self.user], check=False)
        except KeyError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon():
    assert os.geteuid() == 0, "these tests start the daemon as root"
    pwd.getpwnam("eximpy")  # made by tools/setup_system.sh (make test)
    d = Daemon()
    yield d
    d.stop()


def _status(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _ints(st: dict[str, str], key: str) -> list[int]:
    return [int(x) for x in st[key].split()]


def test_swaks_mail_lands_in_a_maildir_owned_by_the_user(daemon: Daemon) -> None:
    p = subprocess.run(["swaks", "--server", f"127.0.0.1:{daemon.port}",
                        "--from", "sender@test.example",
                        "--to", f"{daemon.user}@test.example",
                        "--header", "Subject: via swaks", "--body", "hello"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    maildir = daemon.home / "Maildir"
    _wait_for(lambda: (maildir / "new").is_dir() and
              list((maildir / "new").iterdir()), what="delivery")
    pw = daemon.pw
    for d in (maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        st = d.stat()
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), d
        assert st.st_mode & 0o7777 == 0o700, d          # directory_mode
    [f] = list((maildir / "new").iterdir())
    st = f.stat()
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    assert st.st_mode & 0o7777 == 0o600                 # mode
    [msg] = list(mailbox.Maildir(str(maildir), create=False))
    assert msg["Subject"] == "via swaks"
    assert f"=> {daemon.user} <{daemon.user}@test.example> R=local " \
        f"T=maildir" in daemon.log()


def test_local_delivery_child_holds_exactly_the_users_ids(daemon: Daemon) -> None:
    daemon.send(f"{daemon.user}-ids@test.example", "ids")
    child_file = daemon.home / "status.parent"
    _wait_for(child_file.exists, what="the pipe delivery")
    _wait_for(lambda: "Completed" in daemon.log(), what="Completed")
    pw = daemon.pw
    exim = pwd.getpwnam("eximpy")
    child = _status(daemon.home / "status.child")
    assert _ints(child, "Uid") == [pw.pw_uid] * 4
    assert _ints(child, "Gid") == [pw.pw_gid] * 4
    assert _ints(child, "Groups") == [pw.pw_gid]
    assert int(child["CapEff"], 16) == 0
    assert int(child["CapPrm"], 16) == 0
    assert int(child["CapInh"], 16) == 0
    assert int(child["CapAmb"], 16) == 0
    assert int(child["CapBnd"], 16) == CAP_SETUID_SETGID
    assert child["NoNewPrivs"] == "1"
    # its parent: the per-message delivery process, the eximpy user with
    # only CAP_SETUID/CAP_SETGID, a child of the delivery role
    parent = _status(daemon.home / "status.parent")
    assert int(parent["Pid"]) == int(child["PPid"])
    assert _ints(parent, "Uid") == [exim.pw_uid] * 4
    assert int(parent["CapEff"], 16) == CAP_SETUID_SETGID
    assert int(parent["CapPrm"], 16) == CAP_SETUID_SETGID
    assert int(parent["PPid"]) == daemon.roles()["delivery"]
    assert "=> " in daemon.log() and "T=ids_pipe" in daemon.log()


def test_never_users_keeps_root_out(daemon: Daemon) -> None:
    daemon.send("rootish@test.example", "as root?")
    text = "User 0 set for fixed_file transport is on the never_users list"
    _wait_for(lambda: "== rootish@test.example R=rootish T=fixed_file "
              f"defer (-29): {text}" in daemon.log(), what="the deferral")
    assert text in daemon.log("panic")
    assert not (daemon.dir / "mail" / "box").exists()


def test_vacation_reply_composed_as_the_user_is_spooled(daemon: Daemon) -> None:
    """autoreply: the child (the user) reads and writes the user's once
    file; the reply it composed is spooled by the delivery process."""
    daemon.send(f"{daemon.user}-away@test.example", "are you there?")
    line = f"<= <> R="
    _wait_for(lambda: line in daemon.log(), what="the reply")
    main = daemon.log()
    assert f"U={daemon.user} P=local" in main.split(line, 1)[1].split("\n")[0]
    assert f"=> {daemon.user} <{daemon.user}-away@test.example> R=vacation " \
        f"T=away" in main
    st = (daemon.home / "once.db").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (daemon.pw.pw_uid, 0o600)
