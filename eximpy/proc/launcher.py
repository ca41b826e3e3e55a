"""The launcher: `eximpy -bd` / `-bdf` / `-q<time>` as a daemon.

SUMMARY
    run_daemon(inv) reads the configuration, prepares the spool and log
    directories and the delivery FIFO, binds every listening socket, writes
    the pid file, detaches (unless -bdf), then starts each role once
    (`python -m eximpy.proc.role NAME`, sockets passed as descriptors) and
    supervises them:
      - a role that dies is restarted with back-off (1 s doubling to 60 s)
        and the paniclog says so;
      - SIGHUP re-reads the configuration; if it loads, the roles are
        restarted with it, if not the old roles keep running and the
        paniclog says why;
      - SIGTERM stops the roles (sessions in progress finish their
        message or are closed) and removes the pid file.

SECURITY
    The launcher parses no mail.  Started as root it stays root only to
    bind sockets and to start roles that drop to exim_user themselves
    (eximpy.proc.skeleton); started by a plain user everything runs as that
    user on ports above 1024.

SEE ALSO
    DESIGN.md section 2; spec chapter "Starting the daemon and the use of
    network interfaces"; options daemon_smtp_ports, local_interfaces,
    pid_file_path.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from eximpy.errors import ConfigError
from eximpy.proc import fifo, jail
from eximpy.proc.skeleton import exim_ids, install_activity_reporter, set_title

MAX_BACKOFF = 60.0


@dataclass
class Role:
    """A role process the launcher keeps running."""

    name: str
    fds: list[int] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    backoff: float = 1.0
    restart_at: float = 0.0
    started_at: float = 0.0


def _port_number(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise ConfigError(f'invalid port "{text}" in daemon_smtp_ports',
                          None) from None


def _split_list(value: str) -> list[str]:
    from eximpy.config.options import list_items
    return [v for v in list_items(value or "") if v]


def listen_addresses(config: Any, oX: str | None) -> list[tuple[str, int]]:
    """(address, port) pairs to listen on, as Exim computes them.

    -oX either replaces daemon_smtp_ports (a list of ports) or, when it
    holds addresses, local_interfaces (items "addr.port" or "addr").
    """
    ports_text = config.main.get("daemon_smtp_ports") or "smtp"
    interfaces_text = config.main.get("local_interfaces") or "<; 0.0.0.0 ; ::0"
    if oX is not None:
        if all(c.isdigit() or c in ":, " for c in oX):
            ports_text = oX.replace(",", ":")
        else:
            interfaces_text = oX
    ports = [_port_number(p) for p in _split_list(ports_text)]
    out: list[tuple[str, int]] = []
    for item in _split_list(interfaces_text):
        addr, port = item, None
        head, dot, tail = item.rpartition(".")
        bracket, colon, bport = item.rpartition("]:")
        if item.startswith("[") and colon and bport.isdigit():
            addr, port = bracket[1:], int(bport)        # [addr]:port
        elif dot and tail.isdigit() and (":" in head or head.count(".") == 3):
            addr, port = head, int(tail)                # addr.port
        addr = addr.strip("[]")
        for p in ([port] if port is not None else ports):
            if (addr, p) not in out:
                out.append((addr, p))
    return out


def bind_all(addresses: list[tuple[str, int]], backlog: int) -> list[socket.socket]:
    socks = []
    for addr, port in addresses:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((addr, port))
        except OSError as e:
            s.close()
            for o in socks:
                o.close()
            raise ConfigError(
                f"socket bind() to port {port} for address {addr} failed: "
                f"{e.strerror}", None, plain=True) from None
        s.listen(backlog)
        s.set_inheritable(True)
        socks.append(s)
    return socks


def prepare_directories(config: Any, uid: int, gid: int) -> None:
    """Spool (input, msglog, db) and log directories, owned by exim_user."""
    from eximpy.spool.layout import SpoolLayout
    layout = SpoolLayout.from_config(config)
    layout.ensure_dirs()
    spool = config.main.get("spool_directory")
    dirs = [spool] + [os.path.join(spool, d) for d in ("input", "msglog", "db")]
    log_path = config.main.get("log_file_path") or ""
    for item in log_path.split(":"):
        if item and item != "syslog":
            dirs.append(os.path.dirname(item))
    if not [i for i in log_path.split(":") if i]:
        dirs.append(os.path.join(spool, "log"))
    for d in dirs:
        os.makedirs(d, 0o750, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(d, uid, gid)
    # Others may pass through (not list) the spool directory, to reach the
    # local submission socket; input/, msglog/ and db/ stay closed.
    os.chmod(spool, 0o751)


def pid_file(config: Any, inv: Any) -> str:
    if inv.pid_file:
        return inv.pid_file
    return config.main.get("pid_file_path") or os.path.join(
        config.main.get("spool_directory"), "exim-daemon.pid")


class Launcher:
    """The supervising parent."""

    def __init__(self, inv: Any, config: Any) -> None:
        self.inv = inv
        self.config = config
        # The launcher stays outside a chroot jail: it sees host paths.
        self.host = jail.host_view(config)
        self.roles: list[Role] = []
        self.sockets: list[socket.socket] = []
        self.stopping = False
        self.reload = False
        self.log = None

    def _logwriter(self) -> Any:
        from eximpy.log.writer import LogWriter
        return LogWriter.from_config(self.host)

    def panic(self, text: str) -> None:
        try:
            self._logwriter().panic(text)
        except Exception:
            sys.stderr.write(f"eximpy: {text}\n")

    def start(self) -> None:
        uid, gid = exim_ids(self.config)
        if os.geteuid() == 0 and uid == 0:
            raise ConfigError(
                "exim_user is root: create the eximpy user (systemd/"
                "eximpy.sysusers.conf) or set exim_user", None)
        prepare_directories(self.host, uid, gid)
        fifo.create(self.host, uid, gid)
        if getattr(self, "_fifo_hold", None) is None:
            self._fifo_hold = fifo.hold(fifo.path(self.host))
        listening = self.inv.mode == "bd"
        if listening:
            backlog = int(self.config.main.get("smtp_connect_backlog") or 20)
            self.sockets = bind_all(
                listen_addresses(self.config, self.inv.daemon_ports), backlog)
            from eximpy.proc import submission
            self.sockets.append(submission.bind(self.host))
            if os.geteuid() == 0:
                os.chown(submission.socket_path(self.host), uid, gid)
            self.roles.append(Role("receiver", [s.fileno()
                                                for s in self.sockets]))
        self.roles.append(Role("delivery"))
        if self.inv.queue_interval:
            self.roles.append(Role("queue runner"))

    def config_path(self) -> str:
        """The configuration file as an absolute name (we are in "/")."""
        return os.path.join(self.config.initial_cwd or "/",
                            self.config.filename)

    def _spawn(self, role: Role) -> None:
        args = [sys.executable, "-m", "eximpy.proc.role", role.name,
                "--config", self.config_path(),
                "--macros", json.dumps(self.inv.macros),
                "--fds", ",".join(str(f) for f in role.fds),
                "--interval", str(self.inv.queue_interval or 0)]
        role.proc = subprocess.Popen(args, pass_fds=role.fds, close_fds=True)
        role.started_at = time.monotonic()

    def spawn_all(self) -> None:
        for role in self.roles:
            self._spawn(role)

    def supervise(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        install_activity_reporter(self.host)
        while not self.stopping:
            if self.reload:
                self.reload = False
                self._reload()
            now = time.monotonic()
            for role in self.roles:
                if role.proc is not None and role.proc.poll() is not None:
                    pid, code = role.proc.pid, role.proc.returncode
                    role.proc = None
                    if now - role.started_at > 30:
                        role.backoff = 1.0
                    role.restart_at = now + role.backoff
                    self.panic(f"{role.name} process {pid} ended "
                               f"({_describe(code)}); restarting in "
                               f"{role.backoff:g}s")
                    role.backoff = min(MAX_BACKOFF, role.backoff * 2)
                if role.proc is None and now >= role.restart_at:
                    self._spawn(role)
            time.sleep(0.2)
        sd_notify("STOPPING=1")
        self._stop_roles()
        return 0

    def _on_term(self, *_: Any) -> None:
        self.stopping = True

    def _on_hup(self, *_: Any) -> None:
        self.reload = True

    def _reload(self) -> None:
        from eximpy.config import load_config
        try:
            new = load_config(self.config_path(), self.inv.macros)
        except ConfigError as e:
            self.panic("SIGHUP received: configuration not reloaded, keeping "
                       "the running one: " + e.exim_text().replace("\n", " "))
            return
        sd_notify("RELOADING=1")
        new.initial_cwd = self.config.initial_cwd
        self.config = new
        self.host = jail.host_view(new)
        self._logwriter().main(f"SIGHUP received: re-reading configuration "
                               f"{new.filename}")
        self._stop_roles()
        for role in self.roles:
            role.backoff = 1.0
        self.spawn_all()
        sd_notify("READY=1")

    def _stop_roles(self, grace: float = 10.0) -> None:
        for role in self.roles:
            if role.proc is not None and role.proc.poll() is None:
                role.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for role in self.roles:
            if role.proc is None:
                continue
            try:
                role.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                role.proc.kill()
                role.proc.wait()
            role.proc = None


def sd_notify(state: str) -> bool:
    """Tell systemd (Type=notify) about our state, when it asked to know."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), addr)
        return True
    except OSError:
        return False


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_daemon(inv: Any, config: Any) -> int:
    """The -bd / -q<time> daemon; returns the exit status."""
    launcher = Launcher(inv, config)
    launcher.start()
    if not inv.daemon_foreground:
        import daemon
        ctx = daemon.DaemonContext(
            files_preserve=[s.fileno() for s in launcher.sockets],
            working_directory="/", umask=0o022, detach_process=True)
        ctx.open()
    pidpath = pid_file(launcher.host, inv)
    try:
        with open(pidpath, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:
        launcher.panic(f"failed to write pid file {pidpath}: {e.strerror}")
        pidpath = ""
    set_title("eximpy: launcher")
    install_activity_reporter(launcher.host)
    mode = "daemon" if inv.mode == "bd" else "queue runner"
    addrs = ", ".join(f"[{s.getsockname()[0]}]:{s.getsockname()[1]}"
                      for s in launcher.sockets if s.family != socket.AF_UNIX)
    launcher._logwriter().main(
        f"eximpy {mode} started: pid={os.getpid()}"
        + (f", listening on {addrs}" if addrs else "")
        + (f", -q{inv.queue_interval}s" if inv.queue_interval else ""))
    from eximpy.config.main_options import set_but_not_implemented
    unimplemented = set_but_not_implemented(config)
    if unimplemented:
        launcher._logwriter().main(
            "Warning: these options are set but not yet implemented by "
            "eximpy, and have no effect: " + " ".join(unimplemented))
    launcher.spawn_all()
    sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=accepting mail")
    try:
        return launcher.supervise()
    finally:
        if pidpath:
            try:
                os.unlink(pidpath)
            except OSError:
                pass
