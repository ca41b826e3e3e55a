"""One SMTP connection over a socket: the blocking I/O around the session.

SUMMARY
    prepare(config) -> SessionOptions     warm-up in the parent before forking
    serve_socket(sock, config, *, peer, local, acl=None, sink=None,
                 log=None, timeout=None, tls_context="auto",
                 tls_on_connect=False, options=None) -> Session
    serve_stream(read_fd, write, session, timeout) -> None
                                          (STARTTLS too when read_fd is
                                          a socket, as Exim's -bs)
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
import struct
from typing import Any, Callable

from eximpy.smtp.server import Session


def prepare(config: Any) -> Any:
    """Warm everything a session will need, in the parent, before forking
    per connection (DESIGN.md section 2: no per-connection imports or
    parsing).  Returns the SessionOptions to pass to each Session.

    Imports the modules sessions load lazily (expansion, lookups, list
    matching, spool, log, auth, TLS), parses the expansion strings used
    for every message (banner, received_header_text) into the parse cache,
    and reads the session options once.
    """
    import eximpy.acl.runner  # noqa: F401
    import eximpy.expand  # noqa: F401
    import eximpy.expand.evaluate  # noqa: F401
    import eximpy.expand.parser as parser
    import eximpy.log.format  # noqa: F401
    import eximpy.log.writer  # noqa: F401
    import eximpy.lookups  # noqa: F401
    import eximpy.lookups.cache  # noqa: F401
    import eximpy.match  # noqa: F401
    import eximpy.message.ids  # noqa: F401
    import eximpy.smtp.accept  # noqa: F401
    import eximpy.smtp.auth  # noqa: F401
    import eximpy.smtp.tls  # noqa: F401
    import eximpy.spool.data_file  # noqa: F401
    import eximpy.spool.header_file  # noqa: F401
    from eximpy.smtp.server import SessionOptions
    from eximpy.spool.header_file import writeback_function
    writeback_function()
    opts = SessionOptions(config)
    for name in ("smtp_banner", "received_header_text", "message_size_limit",
                 "smtp_active_hostname"):
        try:
            text = config.main.get(name)
        except (KeyError, AttributeError):
            text = None
        if isinstance(text, str) and "$" in text:
            try:
                parser.parse_cached(text)
            except Exception:
                pass
    return opts


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
    session.writer = write
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
        if session.tls_requested:
            if not _is_socket(read_fd):
                # A pipe or file cannot carry a TLS handshake (Exim -bs
                # fails the same way after "220 TLS go ahead").
                out = session.tls_failed("SSL_accept: not a socket")
                if out:
                    write(out)
                break
            # -bs on a socket (inetd, or a test harness's socketpair): the
            # handshake happens on it, and the session goes on over TLS.
            sock = socket.socket(fileno=os.dup(read_fd))
            _socket_loop(sock, session, timeout, _tls_context(session),
                         starttls_now=True)
            return


def _is_socket(fd: int) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _tls_context(session: Session) -> Any:
    """The STARTTLS context for this session (eximpy.smtp.tls), asking for
    a client certificate as tls_verify_hosts / tls_try_verify_hosts say;
    None when TLS is not configured."""
    from eximpy.smtp.tls import server_context
    config = session.config
    verify = "none"
    if session._host_in(config.main.get("tls_verify_hosts")) == "OK":
        verify = "required"
    elif session._host_in(config.main.get("tls_try_verify_hosts")) == "OK":
        verify = "optional"
    return server_context(config, session._expand, verify)


def serve_socket(sock: socket.socket, config: Any, *,
                 peer: tuple[str, int], local: tuple[str, int],
                 acl: Any = None, sink: Any = None, log: Any = None,
                 timeout: float | None = None,
                 tls_context: Any = "auto",
                 tls_on_connect: bool = False,
                 options: Any = None) -> Session:
    """Run one inbound SMTP session on a connected socket.

    ``tls_context`` is an ssl.SSLContext for STARTTLS, None for no TLS, or
    "auto" to build one from the configuration (eximpy.smtp.tls).
    ``tls_on_connect`` starts TLS before the banner (tls_on_connect_ports;
    the caller knows which port the connection came in on).
    """
    from eximpy.smtp.accept import SpoolSink
    if sink is None:
        sink = SpoolSink(config, log)
    session = Session(config, acl, sink=sink, host_address=peer[0],
                      host_port=peer[1], interface_address=local[0],
                      interface_port=local[1], is_socket=True, log=log,
                      options=options)
    if timeout is None:
        timeout = receive_timeout(config)
    if tls_context == "auto":
        tls_context = _tls_context(session)
    session.tls_unavailable = tls_context is None
    _socket_loop(sock, session, timeout, tls_context, tls_on_connect)
    return session


def _socket_loop(sock: socket.socket, session: Session,
                 timeout: float | None, tls_context: Any,
                 tls_on_connect: bool = False,
                 starttls_now: bool = False) -> None:
    """The session's I/O on a connected socket: banner (after the TLS
    handshake for tls_on_connect), then commands until it closes, with
    STARTTLS handshakes as the session asks for them.  ``starttls_now``:
    the session has already answered STARTTLS (on -bs's socket)."""
    conn: Any = sock

    def write(data: bytes) -> bool:
        try:
            conn.sendall(data)
            return True
        except OSError:
            session.closed = True
            return False

    def starttls() -> Any:
        """The handshake; the TLS socket, or None when it failed."""
        nonlocal conn
        if tls_context is None:
            out = session.tls_failed("SSL_accept: TLS is not configured")
            if out:
                write(out)
            return None
        conn.settimeout(timeout)
        try:
            conn = tls_context.wrap_socket(conn, server_side=True)
        except (OSError, ValueError) as exc:
            session.tls_failed(f"SSL_accept: {exc}")
            return None
        from eximpy.smtp.tls import TlsInfo
        out = session.tls_started(TlsInfo.from_ssl(conn))
        if out:
            write(out)
        return conn

    session.writer = write
    if starttls_now:
        if starttls() is not None:
            _command_loop(conn, session, timeout, write, starttls)
        return
    early = b""
    if tls_on_connect:
        # tls_on_connect_ports (465): the handshake comes before the banner.
        if tls_context is None or starttls() is None:
            return
    else:
        r, _, _ = select.select([sock], [], [], 0)
        if r:
            try:
                early = sock.recv(65536)
            except OSError:
                early = b""
    write(session.start(early))
    _command_loop(conn, session, timeout, write, starttls)


def _command_loop(conn: Any, session: Session, timeout: float | None,
                  write: Callable[[bytes], bool],
                  starttls: Callable[[], Any]) -> None:
    """Commands until the session closes; ``starttls`` does a handshake
    and returns the TLS socket (None: it failed).

    On a plain socket the timeout is the kernel's (SO_RCVTIMEO and
    SO_SNDTIMEO on a blocking socket: EAGAIN when it passes), which saves
    the poll() Python's socket timeouts make before every recv and send;
    a TLS socket keeps Python's timeout."""
    _set_timeout(conn, timeout)
    while not session.closed:
        try:
            data = conn.recv(65536)
        except (socket.timeout, BlockingIOError):
            write(session.timeout())
            break
        except OSError:
            data = b""
        if not data:
            write(session.eof())
            break
        out = session.feed(data)
        if out and not write(out):
            break
        if session.tls_requested:
            conn = starttls()
            if conn is None:
                break
            conn.settimeout(timeout)


def _set_timeout(conn: Any, timeout: float | None) -> None:
    """smtp_receive_timeout on the connection (see _command_loop)."""
    if type(conn) is not socket.socket or timeout is None:
        conn.settimeout(timeout)
        return
    conn.settimeout(None)
    sec = int(timeout)
    tv = struct.pack("ll", sec, int((timeout - sec) * 1_000_000))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
