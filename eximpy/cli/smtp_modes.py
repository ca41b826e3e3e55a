"""-bs (SMTP on stdin/stdout) and -bh IP (SMTP test session as if from IP).

SUMMARY
    run_bs(config, inv, stdin, stdout) -> int
    run_bh(config, inv, stdin, stdout) -> int

DESCRIPTION
    -bs runs one SMTP session on the standard input and output.  From
    inetd (stdin a TCP socket) it is a remote session for the peer, as in
    the daemon.  Otherwise it is a local submission: the protocol is local-smtp/local-esmtp, the ident is the
    caller's login, unqualified addresses are qualified, and accepted
    messages are spooled; unless -odq/-odqs or queue_only, each one is
    then delivered (eximpy.deliver), in a detached child by default
    (-odb) or at once with -odi/-odf.  An untrusted caller's MAIL FROM is replaced
    by its own address, as Exim does.  -oMa etc. from a trusted caller make
    the session look remote.

    -bh IP prints Exim's "**** SMTP testing session" banner and runs a
    session as if from IP: ACLs are run, nothing is spooled, and an
    accepted message gets "that is not a real message id!".  The ">>>" ACL
    trace lines belong to the ACL engine (issue 6).

    ``stdin``/``stdout`` are binary streams (or text streams, whose
    .buffer is used).  Input is read as it arrives (os.read on the file
    descriptor when there is one), so a client talking to -bs through a
    pipe gets each reply before sending on.

SEE ALSO
    spec chapter 5 (-bs, -bh), chapter "SMTP processing".
"""
from __future__ import annotations

import os
import pwd
import sys
from typing import Any, BinaryIO

from eximpy.smtp.accept import SpoolSink, TestSink
from eximpy.smtp.server import Session


def _binary(stream: Any) -> Any:
    return getattr(stream, "buffer", stream)


def _reader(stdin: Any):
    """A function returning the next chunk of input (b"" at EOF)."""
    b = _binary(stdin)
    try:
        fd = b.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        return lambda: os.read(fd, 65536)
    read1 = getattr(b, "read1", None)
    if read1 is not None:
        return lambda: read1(65536)
    return lambda: b.read(65536)


def _caller() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        login = pwd.getpwuid(uid).pw_name
    except KeyError:
        login = str(uid)
    return login, uid, gid


def _trusted(config: Any, uid: int, gid: int, login: str) -> bool:
    """Exim's trusted caller: root, the exim user, trusted_users/groups."""
    if uid == 0:
        return True
    try:
        exim_user = config.main.get("exim_user")
    except (KeyError, AttributeError):
        exim_user = None
    if exim_user is not None and (exim_user == uid or exim_user == login):
        return True
    for opt, val in (("trusted_users", login), ("trusted_groups", gid)):
        try:
            v = config.main.get(opt)
        except (KeyError, AttributeError):
            v = None
        if v and val in (v if isinstance(v, (list, tuple))
                         else str(v).split(":")):
            return True
    return False


def _log_writer(config: Any) -> Any:
    try:
        from eximpy.log.writer import LogWriter
        return LogWriter.from_config(config)
    except Exception:
        return None


def _run(session: Session, stdin: Any, stdout: Any,
         config: Any = None) -> int:
    out = _binary(stdout)

    def send(data: bytes) -> None:
        if data:
            out.write(data)
            out.flush()
    try:
        fd = _binary(stdin).fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        from eximpy.smtp.connection import receive_timeout, serve_stream
        serve_stream(fd, send, session,
                     receive_timeout(config) if config is not None else None)
        return 0
    read = _reader(stdin)
    session.writer = send
    send(session.start())
    while not session.closed:
        chunk = read()
        if not chunk:
            send(session.eof())
            break
        send(session.feed(chunk))
        if session.tls_requested:
            send(session.tls_failed("SSL_accept: not a socket"))
    return 0


class DeliveringSink:
    """-bs without -odq/queue_only: each accepted message is delivered, in
    a detached child (-odb, the default) or before the next command (-odi,
    -odf), as Exim does for -bs."""

    def __init__(self, inner: Any, config: Any, log: Any,
                 background: bool) -> None:
        self.inner, self.config, self.log = inner, config, log
        self.background = background

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def store(self, msg: Any) -> Any:
        result = self.inner.store(msg)
        mid = result[2] if isinstance(result, tuple) and len(result) > 2 \
            else None
        # control = queue/queue_only/freeze: spooled, not delivered now.
        if mid and getattr(msg, "queued_by", None) is None and \
                getattr(msg, "frozen_by", None) is None:
            self._deliver(mid)
        return result

    def _deliver(self, mid: str) -> None:
        try:
            from eximpy.deliver.deliver import deliver_message
        except ImportError:                     # delivery not available
            return
        if not self.background:
            try:
                deliver_message(self.config, mid)
            except Exception as e:
                if self.log is not None:
                    self.log.panic(f"delivery of {mid} after SMTP "
                                   f"reception failed: {e!r}")
            return
        sys.stdout.flush()
        pid = os.fork()
        if pid:
            return
        code = 0
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            deliver_message(self.config, mid)
        except BaseException as e:              # the child never returns
            code = 1
            try:
                if self.log is not None:
                    self.log.panic(f"delivery of {mid} after SMTP "
                                   f"reception failed: {e!r}")
            except BaseException:
                pass
        finally:
            os._exit(code)


def _inetd_socket(stdin: Any) -> Any:
    """stdin as a TCP socket (Exim's inetd mode), or None."""
    import socket
    try:
        fd = _binary(stdin).fileno()
    except (AttributeError, OSError, ValueError):
        return None
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if s.family in (socket.AF_INET, socket.AF_INET6):
            s.getpeername()
            return s
    except OSError:
        pass
    s.close()
    return None


def run_bs(config: Any, inv: Any, stdin: Any = sys.stdin,
           stdout: Any = sys.stdout) -> int:
    """-bs: an SMTP session on stdin/stdout; messages are spooled.

    When stdin is a TCP socket (started from inetd), the session is a
    remote one for the peer, exactly as in the daemon (Exim's inetd mode).
    """
    login, uid, gid = _caller()
    trusted = _trusted(config, uid, gid, login)
    log = _log_writer(config)
    from eximpy.acl.engine import make_runner
    sock = _inetd_socket(stdin)
    if sock is not None:
        from eximpy.smtp.connection import serve_socket
        inner: Any = SpoolSink(config, log)
        try:
            qonly = bool(config.main.get("queue_only"))
        except (KeyError, AttributeError):
            qonly = False
        mode = getattr(inv, "delivery_mode", None)
        if mode not in ("q", "qs") and not qonly:
            inner = DeliveringSink(inner, config, log,
                                   background=mode not in ("i", "f"))
        try:
            serve_socket(sock, config, peer=sock.getpeername()[:2],
                         local=sock.getsockname()[:2], log=log, sink=inner,
                         acl=make_runner(config, log=log))
        finally:
            sock.close()
        return 0
    host = getattr(inv, "host_address", None) if trusted else None
    port = 0
    if host and host.count(".") == 4:            # -oMa 1.2.3.4.port
        host, _, p = host.rpartition(".")
        port = int(p) if p.isdigit() else 0
    iface = getattr(inv, "interface_address", None) if trusted else None
    iport = 0
    if iface and iface.count(".") == 4:
        iface, _, p = iface.rpartition(".")
        iport = int(p) if p.isdigit() else 0
    sink: Any = SpoolSink(config, log)
    mode = getattr(inv, "delivery_mode", None)
    try:
        queue_only = bool(config.main.get("queue_only"))
    except (KeyError, AttributeError):
        queue_only = False
    if mode not in ("q", "qs") and not queue_only:
        sink = DeliveringSink(sink, config, log,
                              background=mode not in ("i", "f"))
    session = Session(
        config, make_runner(config, log=log), sink=sink,
        host_address=host, host_port=port,
        host_name=getattr(inv, "host_name", None) if trusted else None,
        interface_address=iface, interface_port=iport,
        ident=(getattr(inv, "ident", None) if trusted and
               getattr(inv, "ident", None) else login),
        trusted=trusted, login=login, uid=uid, gid=gid, log=log,
        host_tainted=host is not None)
    return _run(session, stdin, stdout, config)


class HostCheckLog:
    """-bh: log lines are not written to the log files; Exim shows them on
    stderr as "LOG: <text>" (the >>> ACL trace is the ACL engine's)."""

    def __init__(self, config: Any, stderr: Any) -> None:
        self.stderr = stderr
        self.selector: Any
        try:
            from eximpy.log.format import LogSelector
            self.selector = LogSelector.parse(config.main.get("log_selector"))
        except Exception:
            self.selector = set()
        self.write_rejectlog = False

    def _w(self, text: str, mid: str | None = None) -> bool:
        self.stderr.write(f"LOG: {mid + ' ' if mid else ''}{text}\n")
        self.stderr.flush()
        return True

    def main(self, text: str, mid: str | None = None) -> bool:
        return self._w(text, mid)

    def reject(self, text: str, mid: str | None = None,
               block: str | None = None) -> bool:
        return self._w(text, mid)

    def panic(self, text: str, mid: str | None = None,
              also_main: bool = True) -> bool:
        return self._w(text, mid)


def run_bh(config: Any, inv: Any, stdin: Any = sys.stdin,
           stdout: Any = sys.stdout, stderr: Any = None) -> int:
    """-bh IP: a test session as if from IP; nothing is spooled."""
    host = inv.mode_arg or ""
    port = 0
    if host.count(".") == 4 or (":" in host and host.count(".") == 1 and
                                host.rsplit(".", 1)[1].isdigit()):
        host, _, p = host.rpartition(".")
        port = int(p) if p.isdigit() else 0
    out = _binary(stdout)
    out.write(f"\n**** SMTP testing session as if from host {host}\n"
              "**** but without any ident (RFC 1413) callback.\n"
              "**** This is not for real!\n\n".encode())
    out.flush()
    login, uid, gid = _caller()
    log = HostCheckLog(config, stderr if stderr is not None else sys.stderr)
    session = Session(config, sink=TestSink(config, log), keep_message_id=True,
                      host_address=host,
                      host_port=port, host_checking=True, trusted=True,
                      login=login, uid=uid, gid=gid, log=log)
    return _run(session, stdin, stdout, config)
