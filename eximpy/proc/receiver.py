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

    As Exim's daemon decides per message (daemon.c): a session is queue-only
    from the start (queue_only, or more than smtp_accept_queue connections),
    or becomes so after smtp_accept_queue_per_connection messages, or, per
    message, when the load average is above queue_only_load (which then
    sticks for the session when queue_only_load_latch is set).  Each reason
    but queue_only is logged with the message id, in Exim's words.
    """

    def __init__(self, inner: Any, fifo_path: str, config: Any,
                 queue_reason: str | None) -> None:
        self.inner = inner
        self.fifo_path = fifo_path
        main = config.main
        self.queue_only = bool(main.get("queue_only")) or \
            queue_reason is not None
        self.queue_reason = queue_reason
        self.per_connection = int(
            main.get("smtp_accept_queue_per_connection") or 0)
        load = main.get("queue_only_load")
        self.load_limit = None if load is None or load < 0 else load / 1000.0
        self.load_latch = bool(main.get("queue_only_load_latch"))
        self.count = 0

    def _queue_reason(self) -> str | None:
        """Why this message is only queued ("" for plain queue_only)."""
        if self.queue_only:
            return self.queue_reason or ""
        if self.per_connection and self.count > self.per_connection:
            self.queue_only = True
            self.queue_reason = (f"no immediate delivery: more than "
                                 f"{self.per_connection} messages received "
                                 "in one connection")
            return self.queue_reason
        if self.load_limit is not None:
            load = os.getloadavg()[0]
            if load > self.load_limit:
                reason = f"no immediate delivery: load average {load:.2f}"
                if self.load_latch:
                    self.queue_only, self.queue_reason = True, reason
                return reason
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def store(self, msg: Any) -> Any:
        result = self.inner.store(msg)
        mid = result[2] if isinstance(result, tuple) and len(result) > 2 \
            else None
        if mid:
            self.count += 1
            reason = self._queue_reason()
            if reason:
                log = getattr(self.inner, "log", None)
                if log is not None and "delay_delivery" in log.selector:
                    log.main(reason, mid)
            # An ACL may have frozen the message or asked for it to be
            # queued only (control = freeze / queue): the queue runner (or
            # a thaw) takes it from there.
            # control = queue/first_pass_route still starts a delivery
            # (Exim's queue_smtp: it stops short of SMTP deliveries).
            held = (getattr(msg, "queued_by", None) and
                    not getattr(msg, "queue_smtp", False)) or \
                getattr(msg, "frozen_by", None)
            if reason is None and not held:
                fifo.notify(self.fifo_path, [mid],
                            queue_smtp=bool(getattr(msg, "queue_smtp", False)))
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

    def queue_reason(self, n_connections: int) -> str | None:
        """Why every message of a new connection is only queued, as Exim
        logs it, when there are more than smtp_accept_queue connections
        (counting this one); else None."""
        accept_queue = int(self.config.main.get("smtp_accept_queue") or 0)
        if accept_queue and n_connections + 1 > accept_queue:
            return (f"no immediate delivery: too many connections "
                    f"({n_connections + 1}, max {accept_queue})")
        return None


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
                      queue_reason: str | None, warm: Warm) -> int:
    from eximpy.smtp.accept import SpoolSink
    from eximpy.smtp.connection import serve_socket
    for s in listeners:
        s.close()
    config = ctx.config
    log = warm.log
    signal.signal(signal.SIGTERM, _on_term)
    try:
        sink = NotifyingSink(SpoolSink(config, log), fifo.path(config),
                             config, queue_reason)
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
            reason = admission.queue_reason(len(children))
            pid = fork_child(
                lambda c=conn, p=peer, d=reason:
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
