"""One SMTP connection over a socket: the blocking I/O around the session.

SUMMARY
    serve_socket(sock, config, *, peer, local, acl=None, sink=None,
                 log=None, timeout=None) -> Session
    serve_stream(read_fd, write, session, timeout) -> None
    receive_timeout(config) -> float | None

DESCRIPTION
    The session (eximpy.smtp.server) is sans-IO; this module is the only
    place that reads and writes the bytes, for the receiver's per-connection
    child (issue 8) and for -bs.  Before the banner it looks for input that
    arrived too early (an early talker; Exim's check_sync at greeting
    time); while waiting for input it applies smtp_receive_timeout
    (Exim's "421 <host>: SMTP command timeout" and "SMTP incoming data
    timeout"); at end of input it lets the session answer as Exim does.
    Replies are written as soon as a chunk of input has been processed, so
    pipelined commands get their replies in one write.

SECURITY
    No parsing here; a session crash is logged by the caller (proc/) and
    costs only this connection.

SEE ALSO
    eximpy.smtp.server; spec option smtp_receive_timeout.
"""
from __future__ import annotations

import os
import select
import socket
from typing import Any, Callable

from eximpy.smtp.server import Session


def receive_timeout(config: Any) -> float | None:
    try:
        t = config.main.get("smtp_receive_timeout")
    except (KeyError, AttributeError):
        t = 300
    try:
        t = float(t) if t is not None else 300.0
    except (TypeError, ValueError):
        t = 300.0
    if t <= 0:
        return None
    return float(t)


def serve_stream(read_fd: int, write: Callable[[bytes], None],
                 session: Session, timeout: float | None,
                 check_early: bool = False) -> None:
    """Run ``session`` reading from a file descriptor."""
    early = b""
    if check_early:
        r, _, _ = select.select([read_fd], [], [], 0)
        if r:
            early = os.read(read_fd, 65536)
    out = session.start(early)
    if out:
        write(out)
    while not session.closed:
        r, _, _ = select.select([read_fd], [], [], timeout)
        if not r:
            out = session.timeout()
            if out:
                write(out)
            break
        try:
            data = os.read(read_fd, 65536)
        except OSError:
            data = b""
        if not data:
            out = session.eof()
            if out:
                write(out)
            break
        out = session.feed(data)
        if out:
            write(out)


def serve_socket(sock: socket.socket, config: Any, *,
                 peer: tuple[str, int], local: tuple[str, int],
                 acl: Any = None, sink: Any = None, log: Any = None,
                 timeout: float | None = None) -> Session:
    """Run one inbound SMTP session on a connected socket."""
    from eximpy.smtp.accept import SpoolSink
    if sink is None:
        sink = SpoolSink(config, log)
    session = Session(config, acl, sink=sink, host_address=peer[0],
                      host_port=peer[1], interface_address=local[0],
                      interface_port=local[1], is_socket=True, log=log)
    if timeout is None:
        timeout = receive_timeout(config)

    def write(data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            session.closed = True
    serve_stream(sock.fileno(), write, session, timeout, check_early=True)
    return session
