"""The receiver role: accept SMTP connections, one forked child each.

SUMMARY
    run_receiver(ctx) is the role's main loop: it waits on the listening
    sockets the launcher passed, refuses connections beyond
    smtp_accept_max with a 421, and forks a session child for each other
    connection.  The child runs the SMTP session (eximpy.smtp.connection)
    and writes accepted messages to the spool; unless queue_only is set it
    then wakes the delivery role through the delivery FIFO.

SECURITY
    Runs as exim_user with no capabilities and no_new_privs (set up by
    eximpy.proc.skeleton.become_role).  A crash in a session child is logged
    to the paniclog and costs only that connection.

SEE ALSO
    DESIGN.md section 2; spec options smtp_accept_max, queue_only.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any

from eximpy.proc import fifo
from eximpy.proc.skeleton import RoleContext, fork_child


class NotifyingSink:
    """Wraps the spool sink: after a message is stored, wake delivery.

    Messages are only queued (not announced) when ``deliver_now`` is false
    (queue_only, smtp_accept_queue, queue_only_load) or after
    smtp_accept_queue_per_connection messages on this connection.
    """

    def __init__(self, inner: Any, fifo_path: str, deliver_now: bool,
                 per_connection: int = 0) -> None:
        self.inner = inner
        self.fifo_path = fifo_path
        self.deliver_now = deliver_now
        self.per_connection = per_connection
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def store(self, msg: Any) -> Any:
        result = self.inner.store(msg)
        mid = result[2] if isinstance(result, tuple) and len(result) > 2 \
            else None
        if mid:
            self.count += 1
            over = self.per_connection and self.count > self.per_connection
            # An ACL may have frozen the message or asked for it to be
            # queued only (control = freeze / queue): the queue runner (or
            # a thaw) takes it from there.
            held = getattr(msg, "queued_by", None) or \
                getattr(msg, "frozen_by", None)
            if self.deliver_now and not over and not held:
                fifo.notify(self.fifo_path, [mid])
        return result


@dataclass
class Admission:
    """The receiver's connection limits (spec: smtp_accept_* options)."""

    config: Any

    def _fixed(self, name: str) -> float | None:
        v = self.config.main.get(name)
        return None if v is None or v < 0 else v / 1000.0

    def _in_reserve(self, ip: str) -> bool:
        hosts = self.config.main.get("smtp_reserve_hosts")
        if not hosts:
            return False
        from eximpy.expand import ExpandContext
        from eximpy.match import OK, match_host
        ctx = ExpandContext(self.config, {"sender_host_address": ip})
        return match_host(ip, "", hosts, ctx)[0] == OK

    def _max_per_host(self, ip: str) -> int:
        text = self.config.main.get("smtp_accept_max_per_host")
        if not text:
            return 0
        from eximpy.expand import ExpandContext, expand_string
        try:
            value = expand_string(
                text, ExpandContext(self.config, {"sender_host_address": ip}))
            return int(value.strip() or 0)
        except Exception:
            return 0

    def refusal(self, ip: str, peers: list[str]) -> tuple[bytes, str] | None:
        """(SMTP reply, log reason) when a connection must be refused."""
        main = self.config.main
        n = len(peers)
        accept_max = int(main.get("smtp_accept_max") or 0)
        generic = (b"421 Too many concurrent SMTP connections; please try "
                   b"again later.\r\n", "too many connections")
        if accept_max and n >= accept_max:
            return generic
        reserve = int(main.get("smtp_accept_reserve") or 0)
        if accept_max and reserve and n >= accept_max - reserve and \
                not self._in_reserve(ip):
            return generic
        load_reserve = self._fixed("smtp_load_reserve")
        if load_reserve is not None and os.getloadavg()[0] > load_reserve \
                and not self._in_reserve(ip):
            return (b"421 Too much load; please try again later.\r\n",
                    f"load average = {os.getloadavg()[0]:.2f}")
        per_host = self._max_per_host(ip)
        if per_host and peers.count(ip) >= per_host:
            return (b"421 Too many concurrent SMTP connections from this IP "
                    b"address; please try again later.\r\n",
                    "too many connections from that IP address")
        return None

    def deliver_now(self, n_connections: int) -> bool:
        """False when messages of a new connection should only be queued."""
        main = self.config.main
        if main.get("queue_only"):
            return False
        accept_queue = int(main.get("smtp_accept_queue") or 0)
        if accept_queue and n_connections >= accept_queue:
            return False
        load = self._fixed("queue_only_load")
        return not (load is not None and os.getloadavg()[0] > load)


def _serve_submission(ctx: RoleContext, conn: socket.socket,
                      listeners: list[socket.socket]) -> int:
    """A local user's `sendmail` (eximpy.proc.submission)."""
    from eximpy.proc import submission
    for s in listeners:
        s.close()
    path = fifo.path(ctx.config)
    try:
        return submission.serve(ctx.config, conn,
                                lambda mid: fifo.notify(path, [mid]))
    finally:
        conn.close()


class _Shutdown(Exception):
    """SIGTERM reached a session child: the daemon is stopping."""


def _on_term(*_: Any) -> None:
    raise _Shutdown()


@dataclass
class Warm:
    """What the receiver prepares once, before forking session children."""

    log: Any
    acl: Any
    options: Any                 # eximpy.smtp.server.SessionOptions
    tls_context: Any             # shared STARTTLS context, or "auto"
    tls_on_connect_ports: frozenset[int]

    @classmethod
    def prepare(cls, config: Any) -> "Warm":
        from eximpy.acl.engine import make_runner
        from eximpy.log.writer import LogWriter
        from eximpy.smtp.connection import prepare
        log = LogWriter.from_config(config)
        return cls(log, make_runner(config, log=log), prepare(config),
                   _tls_context(config), _tls_on_connect_ports(config))


def _tls_context(config: Any) -> Any:
    """One STARTTLS context for every session, unless client certificates
    are asked of some hosts (then each session builds its own)."""
    main = config.main
    if main.get("tls_verify_hosts") or main.get("tls_try_verify_hosts"):
        return "auto"
    if not main.get("tls_advertise_hosts"):
        return None
    from eximpy.expand import ExpandContext, expand_string
    from eximpy.smtp.tls import server_context
    return server_context(config,
                          lambda s: expand_string(s, ExpandContext(config)))


def _tls_on_connect_ports(config: Any) -> frozenset[int]:
    from eximpy.config.options import list_items
    text = config.main.get("tls_on_connect_ports") or ""
    return frozenset(int(p) for p in list_items(text) if p.strip().isdigit())


def _serve_connection(ctx: RoleContext, conn: socket.socket,
                      peer: tuple[str, int], listeners: list[socket.socket],
                      deliver_now: bool, warm: Warm) -> int:
    from eximpy.smtp.accept import SpoolSink
    from eximpy.smtp.connection import serve_socket
    for s in listeners:
        s.close()
    config = ctx.config
    log = warm.log
    signal.signal(signal.SIGTERM, _on_term)
    try:
        per_conn = int(config.main.get("smtp_accept_queue_per_connection")
                       or 0)
        sink = NotifyingSink(SpoolSink(config, log), fifo.path(config),
                             deliver_now, per_conn)
        local = conn.getsockname()[:2]
        serve_socket(conn, config, peer=peer, local=local, sink=sink,
                     log=log, acl=warm.acl, options=warm.options,
                     tls_context=warm.tls_context,
                     tls_on_connect=local[1] in warm.tls_on_connect_ports)
    except _Shutdown:
        # A message being received is abandoned by the spool writer; tell
        # the client to come back, with Exim 4.96's text and log line
        # (smtp_in.c command_sigterm_handler).
        host = config.main.get("smtp_active_hostname") or \
            config.main.get("primary_hostname") or ""
        try:
            conn.sendall(f"421 {host}: Service not available - closing "
                         "connection\r\n".encode())
        except OSError:
            pass
        log.main(f"SMTP connection from [{peer[0]}] closed after "
                 "SIGTERM")
        return 0
    except Exception as e:
        log.panic(f"SMTP session from [{peer[0]}]:{peer[1]} crashed: "
                  f"{type(e).__name__}: {e}\n"
                  + "".join(traceback.format_exc()).rstrip())
        try:
            conn.sendall(b"421 Internal error; please try again later\r\n")
        except OSError:
            pass
        return 1
    finally:
        conn.close()
    return 0


def run_receiver(ctx: RoleContext, warm: "Warm | None" = None) -> int:
    """Accept connections until told to stop; returns the exit status."""
    listeners = [socket.socket(fileno=fd) for fd in ctx.fds]
    for s in listeners:
        s.setblocking(False)
    admission = Admission(ctx.config)
    # Made once, before any fork: every session child starts warm.
    if warm is None:
        warm = Warm.prepare(ctx.config)
    children: dict[int, str] = {}          # pid -> client IP address
    submissions: set[int] = set()          # local submission children
    while not ctx.stopping:
        _reap(children, submissions)
        try:
            ready, _, _ = select.select(listeners, [], [], 1.0)
        except InterruptedError:
            continue
        for lsock in ready:
            try:
                conn, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS):
                    continue
                raise
            conn.setblocking(True)
            if lsock.family == socket.AF_UNIX:
                pid = fork_child(lambda c=conn: _serve_submission(ctx, c,
                                                                  listeners),
                                 "eximpy: receiver: local submission")
                submissions.add(pid)
                conn.close()
                continue
            peer = (peer[0], peer[1])
            _reap(children, submissions)
            refused = admission.refusal(peer[0], list(children.values()))
            if refused is not None:
                _refuse(conn, ctx, peer, *refused)
                continue
            deliver_now = admission.deliver_now(len(children))
            pid = fork_child(
                lambda c=conn, p=peer, d=deliver_now:
                    _serve_connection(ctx, c, p, listeners, d, warm),
                f"eximpy: receiver: handling incoming connection from "
                f"[{peer[0]}]:{peer[1]}")
            children[pid] = peer[0]
            conn.close()
    for s in listeners:
        s.close()
    _finish_sessions(children, submissions)
    return 0


def _finish_sessions(children: dict[int, str], others: set[int],
                     grace: float = 5.0) -> None:
    """On stop: let sessions finish for ``grace`` seconds, then tell the
    rest (SIGTERM: they answer 421 and close)."""
    deadline = time.monotonic() + grace
    while (children or others) and time.monotonic() < deadline:
        _reap(children, others)
        time.sleep(0.1)
    for pid in list(children) + list(others):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    while (children or others) and time.monotonic() < deadline:
        _reap(children, others)
        time.sleep(0.05)


def _refuse(conn: socket.socket, ctx: RoleContext, peer: tuple[str, int],
            reply: bytes, reason: str) -> None:
    """Refuse a connection with a 421 and log it (connection_reject)."""
    try:
        conn.sendall(reply)
    except OSError:
        pass
    conn.close()
    try:
        from eximpy.log.writer import LogWriter
        LogWriter.from_config(ctx.config).main(
            f"Connection from [{peer[0]}] refused: {reason}")
    except Exception:
        pass


def _reap(children: dict[int, str], others: set[int]) -> None:
    while children or others:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            others.clear()
            return
        if pid == 0:
            return
        children.pop(pid, None)
        others.discard(pid)
