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
import socket
import traceback
from typing import Any

from eximpy.proc import fifo
from eximpy.proc.skeleton import RoleContext, fork_child


class NotifyingSink:
    """Wraps the spool sink: after a message is stored, wake delivery."""

    def __init__(self, inner: Any, fifo_path: str, deliver_now: bool) -> None:
        self.inner = inner
        self.fifo_path = fifo_path
        self.deliver_now = deliver_now

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def store(self, msg: Any) -> Any:
        result = self.inner.store(msg)
        mid = result[2] if isinstance(result, tuple) and len(result) > 2 \
            else None
        if mid and self.deliver_now:
            fifo.notify(self.fifo_path, [mid])
        return result


def _serve_connection(ctx: RoleContext, conn: socket.socket,
                      peer: tuple[str, int], listeners: list[socket.socket]
                      ) -> int:
    from eximpy.log.writer import LogWriter
    from eximpy.smtp.accept import SpoolSink
    from eximpy.smtp.connection import serve_socket
    for s in listeners:
        s.close()
    config = ctx.config
    log = LogWriter.from_config(config)
    try:
        sink = NotifyingSink(SpoolSink(config, log), fifo.path(config),
                             not config.main.get("queue_only"))
        local = conn.getsockname()[:2]
        serve_socket(conn, config, peer=peer, local=local, sink=sink,
                     log=log)
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


def run_receiver(ctx: RoleContext) -> int:
    """Accept connections until told to stop; returns the exit status."""
    listeners = [socket.socket(fileno=fd) for fd in ctx.fds]
    for s in listeners:
        s.setblocking(False)
    accept_max = int(ctx.config.main.get("smtp_accept_max") or 0)
    children: set[int] = set()
    while not ctx.stopping:
        _reap(children)
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
            peer = (peer[0], peer[1])
            if accept_max and len(children) >= accept_max:
                _refuse(conn, ctx.config)
                continue
            pid = fork_child(
                lambda c=conn, p=peer: _serve_connection(ctx, c, p, listeners),
                f"eximpy: receiver: handling incoming connection from "
                f"[{peer[0]}]:{peer[1]}")
            children.add(pid)
            conn.close()
    for s in listeners:
        s.close()
    _reap(children)
    return 0


def _refuse(conn: socket.socket, config: Any) -> None:
    """Over smtp_accept_max: Exim's 421, then close."""
    try:
        conn.sendall(b"421 Too many concurrent SMTP connections; please try "
                     b"again later.\r\n")
    except OSError:
        pass
    conn.close()


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
