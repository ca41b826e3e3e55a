"""The daemon as root: roles, privilege, supervision, reload, stop.

The daemon is started for real (`eximpy -bdf -q` on a loopback port), mail
is sent to it with smtplib, and the tests read /proc/PID/status of every
process kind, as DESIGN.md section 2 asks.
"""
from __future__ import annotations

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

from eximpy.privilege import status
from oracle import ROOT
from proc_support import free_port, processes, roles_of, wait_for

CAP_SETUID_SETGID = (1 << 6) | (1 << 7)

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
acl_smtp_rcpt = accept
begin routers
local:
  driver = accept
  local_parts = dsearch;{dir}/mail
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = {dir}/mail/${{local_part_data}}/
  user = eximpy
  maildir_format
  create_directory
"""


class Daemon:
    def __init__(self, conf_text: str, queue_interval: str = "1s") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eximpy-daemon-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.conf = self.dir / "eximpy.conf"
        self.conf.write_text(conf_text.format(dir=self.dir, port=self.port))
        exim = pwd.getpwnam("eximpy")
        (self.dir / "mail" / "alice").mkdir(parents=True)
        os.chown(self.dir / "mail" / "alice", exim.pw_uid, exim.pw_gid)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eximpy", "-C", str(self.conf), "-bdf",
             "-q" + queue_interval], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        wait_for(lambda: len(self.roles()) == 3, what="three roles")
        wait_for(self._accepts, what="the listener")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    def roles(self) -> dict[str, int]:
        return roles_of(self.proc.pid)

    def log(self, name: str) -> str:
        p = self.dir / "log" / f"{name}log"
        return p.read_text() if p.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon():
    assert os.geteuid() == 0, "these tests start the daemon as root"
    pwd.getpwnam("eximpy")  # made by tools/setup_system.sh (make test)
    d = Daemon(CONF)
    yield d
    d.stop()


def test_roles_hold_exactly_their_privilege(daemon: Daemon) -> None:
    exim = pwd.getpwnam("eximpy")
    roles = daemon.roles()
    assert set(roles) == {"receiver", "delivery", "queue runner"}
    launcher = status(daemon.proc.pid)
    assert launcher.uid == (0, 0, 0)
    for name in ("receiver", "queue runner"):
        st = status(roles[name])
        assert st.uid == (exim.pw_uid,) * 3, name
        assert st.gid == (exim.pw_gid,) * 3, name
        assert st.groups == (exim.pw_gid,), name
        assert (st.cap_effective, st.cap_permitted, st.cap_bounding) == \
            (0, 0, 0), name
        assert st.no_new_privs, name
    st = status(roles["delivery"])
    assert st.uid == (exim.pw_uid,) * 3
    assert st.cap_effective == st.cap_permitted == CAP_SETUID_SETGID
    assert st.cap_bounding == CAP_SETUID_SETGID
    assert st.no_new_privs


def test_session_child_is_unprivileged(daemon: Daemon) -> None:
    exim = pwd.getpwnam("eximpy")
    with socket.create_connection(("127.0.0.1", daemon.port), 5) as s:
        assert s.recv(200).startswith(b"220")
        local_port = s.getsockname()[1]
        title = f"handling incoming connection from [127.0.0.1]:{local_port}"
        child = wait_for(lambda: [p for p, (pp, cmd) in processes().items()
                                   if cmd.endswith(title)],
                          what="the session child")[0]
        st = status(child)
        assert st.uid == (exim.pw_uid,) * 3
        assert (st.cap_effective, st.cap_permitted) == (0, 0)
        assert st.no_new_privs
        assert processes()[child][0] == daemon.roles()["receiver"]


def test_mail_is_received_and_delivered(daemon: Daemon) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as c:
        c.sendmail("sender@test.example", ["alice@test.example"],
                   b"Subject: hello\r\n\r\nbody text\r\n")
    maildir = daemon.dir / "mail" / "alice"
    wait_for(lambda: (maildir / "new").exists() and
              list((maildir / "new").iterdir()), what="delivery")
    [msg] = list(mailbox.Maildir(str(maildir), create=False))
    assert msg["Subject"] == "hello"
    assert msg.get_payload().strip() == "body text"
    main = daemon.log("main")
    assert "<= sender@test.example" in main
    # accept routers log local deliveries by local part (log_as_local).
    assert "=> alice <alice@test.example> R=local T=maildir" in main
    assert "Completed" in main


def test_killed_role_is_restarted(daemon: Daemon) -> None:
    for name in ("receiver", "delivery", "queue runner"):
        old = daemon.roles()[name]
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda: daemon.roles().get(name) not in (None, old)
                        and daemon.roles()[name], what=f"{name} restart")
        assert new != old
        assert f"{name} process {old} ended (killed by SIGKILL)" in \
            daemon.log("panic")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as c:
        assert c.noop()[0] == 250


def test_sighup_reload_good_and_bad(daemon: Daemon) -> None:
    old = daemon.roles()
    os.kill(daemon.proc.pid, signal.SIGHUP)
    wait_for(lambda: set(daemon.roles().values()).isdisjoint(old.values())
              and len(daemon.roles()) == 3, what="roles restarted by HUP")
    assert "SIGHUP received: re-reading configuration" in daemon.log("main")
    running = daemon.roles()
    daemon.conf.write_text("no_such_option = 1\n" + daemon.conf.read_text())
    os.kill(daemon.proc.pid, signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in daemon.log("panic"),
              what="the paniclog line")
    assert 'main option "no_such_option" unknown' in daemon.log("panic")
    assert daemon.roles() == running
    assert daemon.proc.poll() is None


def test_sigterm_stops_everything(daemon: Daemon) -> None:
    pids = list(daemon.roles().values())
    pidfile = daemon.dir / "spool" / "exim-daemon.pid"
    assert int(pidfile.read_text()) == daemon.proc.pid
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(20) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not pidfile.exists()


def _banner(port: int, src: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(5)
    return s, s.recv(200)


def test_connection_limits() -> None:
    """smtp_accept_max, smtp_accept_max_per_host, smtp_accept_reserve."""
    d = Daemon("smtp_accept_max = 3\nsmtp_accept_reserve = 1\n"
               "smtp_reserve_hosts = 127.0.0.3\n"
               "smtp_accept_max_per_host = ${{if eq{{$sender_host_address}}"
               "{{127.0.0.1}}{{1}}{{5}}}}\n" + CONF)
    try:
        # The start-up probe's session child must be gone before counting.
        time.sleep(0.5)
        a, banner = _banner(d.port, "127.0.0.1")
        assert banner.startswith(b"220")
        b, banner = _banner(d.port, "127.0.0.1")
        assert banner.startswith(b"421 Too many concurrent SMTP connections "
                                 b"from this IP address")
        c, banner = _banner(d.port, "127.0.0.2")
        assert banner.startswith(b"220")
        # 2 of 3 slots used; the last one is reserved for 127.0.0.3.
        e, banner = _banner(d.port, "127.0.0.4")
        assert banner == (b"421 Too many concurrent SMTP connections; please "
                          b"try again later.\r\n")
        f, banner = _banner(d.port, "127.0.0.3")
        assert banner.startswith(b"220")
        g, banner = _banner(d.port, "127.0.0.3")
        assert banner.startswith(b"421 Too many concurrent SMTP connections;")
        for sock in (a, b, c, e, f, g):
            sock.close()
        main = wait_for(lambda: "refused: too many connections" in
                         d.log("main") and d.log("main"), what="log lines")
        assert "Connection from [127.0.0.1] refused: too many connections " \
               "from that IP address" in main
        assert "Connection from [127.0.0.4] refused: too many connections\n" \
            in main
    finally:
        d.stop()


def test_exiwhat_lists_every_process(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), 5) as s:
        assert s.recv(200).startswith(b"220")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.run([sys.executable, "-m", "spool_tools.exiwhat", "-C",
                            str(daemon.conf)], capture_output=True, text=True,
                           env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = {int(ln.split()[0]): ln.split(None, 1)[1]
             for ln in p.stdout.splitlines() if ln.strip()}
    roles = daemon.roles()
    assert lines[daemon.proc.pid] == "eximpy: launcher"
    for name, pid in roles.items():
        assert lines[pid] == f"eximpy: {name}"
    sessions = [t for t in lines.values()
                if t.startswith("eximpy: receiver: handling incoming "
                                "connection from [127.0.0.1]:")]
    assert len(sessions) == 1


def _ordinary_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("eximpytest")
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", "eximpytest"], check=True)
        return pwd.getpwnam("eximpytest")


def test_ordinary_user_sendmail_goes_through_the_daemon(daemon: Daemon) -> None:
    """`sendmail` by a user who cannot write the spool: the submission
    socket, SO_PEERCRED, U= in the log, and delivery."""
    import io

    from eximpy.cli.options import parse_args
    from eximpy.config import load_config
    from eximpy.privilege import drop_permanently
    from eximpy.proc import submission
    user = _ordinary_user()
    config = load_config(str(daemon.conf))
    inv = parse_args(["sendmail", "-i", "alice@test.example"])
    body = io.BytesIO(b"Subject: from a user\n\nhello from a user\n")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            drop_permanently(user.pw_uid, user.pw_gid)
            assert not submission.can_write_spool(config)
            code = submission.submit(config, inv, body)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0
    maildir = daemon.dir / "mail" / "alice"
    wait_for(lambda: (maildir / "new").exists() and
              list((maildir / "new").iterdir()), what="delivery")
    [msg] = list(mailbox.Maildir(str(maildir), create=False))
    assert msg["Subject"] == "from a user"
    assert "eximpytest@test.example" in msg["From"]
    main = daemon.log("main")
    assert "<= eximpytest@test.example U=eximpytest P=local" in main


def test_unprivileged_process_cannot_regain_root() -> None:
    """What a compromised session child could try, after the same drop."""
    from eximpy.privilege import drop_permanently
    exim = pwd.getpwnam("eximpy")
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            drop_permanently(exim.pw_uid, exim.pw_gid)
            try:
                os.setuid(0)
                code = 10
            except PermissionError:
                pass
            try:
                open("/etc/shadow").close()
                code = 11
            except PermissionError:
                pass
        except BaseException:
            code = 12
        os._exit(code)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0


def test_kill_roles_while_mail_flows_loses_nothing(daemon: Daemon) -> None:
    """kill -9 of each role in turn during a stream of messages: every
    message that got its 250 is delivered (possibly twice, never lost)."""
    accepted: list[str] = []
    kills = {10: "receiver", 20: "delivery", 30: "queue runner"}
    for i in range(40):
        if i in kills:
            name = kills[i]
            pid = daemon.roles().get(name)
            if pid:
                os.kill(pid, signal.SIGKILL)
        subject = f"stream-{i}"
        for _attempt in range(50):
            try:
                with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as c:
                    c.sendmail("s@test.example", ["alice@test.example"],
                               f"Subject: {subject}\r\n\r\nx\r\n".encode())
                accepted.append(subject)
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.2)     # the receiver is being restarted
    assert len(accepted) == 40
    maildir = daemon.dir / "mail" / "alice"

    def delivered() -> set[str]:
        if not (maildir / "new").exists():
            return set()
        return {m["Subject"] for m in mailbox.Maildir(str(maildir),
                                                      create=False)}
    wait_for(lambda: set(accepted) <= delivered(), timeout=60,
              what="every accepted message delivered")
    panic = daemon.log("panic")
    for name in kills.values():
        assert f"{name} process" in panic and "killed by SIGKILL" in panic


def test_bd_detaches_and_writes_pid_file() -> None:
    """-bd without f: python-daemon detaches; the pid file names the
    launcher, which keeps serving and stops on SIGTERM."""
    d = Path(tempfile.mkdtemp(prefix="eximpy-bd-"))
    d.chmod(0o755)
    port = free_port()
    conf = d / "c.conf"
    conf.write_text(CONF.format(dir=d, port=port))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        p = subprocess.run([sys.executable, "-m", "eximpy", "-C", str(conf),
                            "-bd"], env=env, timeout=30, capture_output=True)
        assert p.returncode == 0, p.stderr
        pidfile = d / "spool" / "exim-daemon.pid"
        pid = wait_for(lambda: pidfile.exists() and
                        int(pidfile.read_text() or 0), what="the pid file")
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(
            b"eximpy: launcher")
        # Detached: a session of its own (python-daemon's double fork),
        # stdio on /dev/null, working directory "/".
        assert os.getsid(pid) != os.getsid(0)
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            assert s.recv(100).startswith(b"220")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="exit")
        assert not pidfile.exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_sigterm_with_a_session_open_says_421(daemon: Daemon) -> None:
    s = socket.create_connection(("127.0.0.1", daemon.port), 5)
    s.settimeout(20)
    assert s.recv(200).startswith(b"220")
    s.sendall(b"EHLO client.example\r\n")
    assert b"250 " in s.recv(1000)
    t0 = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    data = s.recv(200)
    assert data == b"421 test.example: Service not available - closing " \
                   b"connection\r\n"
    assert s.recv(200) == b""
    assert time.monotonic() - t0 < 15
    assert daemon.proc.wait(20) == 0
    assert "closed after SIGTERM" in daemon.log("main")
    s.close()


def test_roles_die_with_the_launcher(daemon: Daemon) -> None:
    roles = list(daemon.roles().values())
    daemon.proc.kill()                     # SIGKILL: no clean stop
    daemon.proc.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in roles),
              what="orphaned roles to go")


def test_launcher_binds_port_25_with_only_cap_net_bind_service() -> None:
    """As systemd's AmbientCapabilities=CAP_NET_BIND_SERVICE gives it: no
    root, one capability, and the launcher's bind of port 25 works; without
    the capability it is refused with Exim's message."""
    from eximpy.errors import ConfigError
    from eximpy.privilege import drop_permanently
    from eximpy.proc.launcher import bind_all
    exim = pwd.getpwnam("eximpy")
    for keep, expect in ((("net_bind_service",), 0), ((), 13)):
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                drop_permanently(exim.pw_uid, exim.pw_gid, keep=keep)
                try:
                    [s] = bind_all([("127.0.0.1", 25)], 5)
                    s.close()
                    code = 0
                except ConfigError as e:
                    code = 13 if "Permission denied" in str(e) else 98
            finally:
                os._exit(code)
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == expect, keep


def test_acl_control_queue_keeps_the_message_queued() -> None:
    """control = queue in an ACL: the daemon spools but does not deliver."""
    d = Daemon(CONF.replace("acl_smtp_rcpt = accept",
                            "acl_smtp_rcpt = acl_rcpt") +
               "begin acl\nacl_rcpt:\n  accept control = queue\n",
               queue_interval="1h")
    try:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            c.sendmail("s@test.example", ["alice@test.example"],
                       b"Subject: held\r\n\r\nx\r\n")
        time.sleep(2)
        assert not (d.dir / "mail" / "alice" / "new").exists() or \
            not any((d.dir / "mail" / "alice" / "new").iterdir())
        assert "no immediate delivery: queued by ACL" in d.log("main")
        assert list((d.dir / "spool" / "input").glob("*-H"))
    finally:
        d.stop()


def test_queue_per_connection_logs_like_exim() -> None:
    """smtp_accept_queue_per_connection = 1: the second message of a
    connection is only queued, with Exim's delay_delivery log line."""
    d = Daemon("smtp_accept_queue_per_connection = 1\n" + CONF,
               queue_interval="1h")
    try:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            for subject in ("first", "second"):
                c.sendmail("s@test.example", ["alice@test.example"],
                           f"Subject: {subject}\r\n\r\nx\r\n".encode())
        maildir = d.dir / "mail" / "alice"
        wait_for(lambda: (maildir / "new").exists() and
                 any((maildir / "new").iterdir()), what="first delivery")
        time.sleep(1)
        assert [m["Subject"] for m in mailbox.Maildir(str(maildir),
                                                      create=False)] == ["first"]
        assert "no immediate delivery: more than 1 messages received in " \
               "one connection" in d.log("main")
    finally:
        d.stop()


def test_host_name_lookups_in_the_unprivileged_receiver() -> None:
    """host_lookup makes the session child look the client's name up after
    the privilege drop, when the interpreter's own files may be unreadable:
    everything DNS needs was warmed before.  A dnsmasq on loopback serves
    the name (PTR and A) of 127.0.0.1."""
    from acl import dnsserver
    work = Path(tempfile.mkdtemp(prefix="eximpy-dns-"))
    work.chmod(0o755)
    dns, resolv = dnsserver.start(
        ["--host-record=client.test.example,127.0.0.1",
         "--local=/127.in-addr.arpa/"], work)
    resolv.chmod(0o644)
    os.environ["EXIMPY_RESOLV_CONF"] = str(resolv)
    try:
        d = Daemon(CONF.replace("acl_smtp_rcpt = accept",
                                "acl_smtp_rcpt = accept\nhost_lookup = *\n"
                                "host_lookup_order = bydns"),
                   queue_interval="1h")
    finally:
        del os.environ["EXIMPY_RESOLV_CONF"]
    try:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as c:
            c.ehlo("test.example")
            c.sendmail("s@test.example", ["alice@test.example"],
                       b"Subject: named\r\n\r\nx\r\n")
        assert "<= s@test.example H=client.test.example (test.example) " \
            "[127.0.0.1]" in d.log("main")
        assert d.log("panic") == ""
    finally:
        d.stop()
        dnsserver.stop(dns)
        shutil.rmtree(work, ignore_errors=True)


def test_queue_runs_honour_retry_times() -> None:
    """The daemon's queue runner offers messages as a queue run: an
    address whose delivery deferred is not tried again before its retry
    time (Exim logs "Retry time not yet reached"), while the first
    delivery after reception did try it."""
    d = Daemon(CONF.replace("directory = {dir}/mail/${{local_part_data}}/",
                            "directory = {dir}/nowhere/${{local_part_data}}/")
               .replace("  create_directory\n", "") +
               "begin retry\n*  *  F,1h,30m\n", queue_interval="1s")
    try:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            c.sendmail("s@test.example", ["alice@test.example"],
                       b"Subject: later\r\n\r\nx\r\n")
        try:
            wait_for(lambda: "Retry time not yet reached" in d.log("main"),
                     timeout=30, what="a queue run that skips the address")
        except AssertionError:
            raise AssertionError(d.log("main") + d.log("panic"))
        main = d.log("main")
        tried = [ln for ln in main.splitlines() if " == alice@" in ln
                 and "Retry time not yet reached" not in ln]
        assert len(tried) == 1, main
    finally:
        d.stop()


def test_message_announced_while_delivery_role_restarts() -> None:
    """A message received while the delivery role is not reading the FIFO
    (here: killed, and being restarted) is delivered as soon as the role is
    back, not at the next queue run: the launcher holds the FIFO open, so
    the announcement waits in the pipe."""
    d = Daemon(CONF, queue_interval="1h")
    try:
        pid = d.roles()["delivery"]
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as c:
            c.ehlo("client.example")
            c.mail("s@test.example")
            c.rcpt("alice@test.example")
            os.kill(pid, signal.SIGKILL)     # no reader until restarted
            time.sleep(0.2)
            c.data(b"Subject: waiting\r\n\r\nx\r\n")
        maildir = d.dir / "mail" / "alice" / "new"
        wait_for(lambda: maildir.exists() and any(maildir.iterdir()),
                 timeout=20, what="delivery after the role woke up")
    finally:
        d.stop()
