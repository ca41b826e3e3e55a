"""Local submission by ordinary users: the UNIX socket in the spool.

SUMMARY
    socket_path(config)             <spool_directory>/eximpy-submit.sock
    bind(config)                    the launcher's listening socket (0666)
    submit(config, inv, stdin)      client: `sendmail`/`eximpy` run by a user
                                    who cannot write the spool hands the
                                    message to the daemon; returns exit status
    serve(config, conn, notify)     receiver child: read one request, learn
                                    the caller from SO_PEERCRED, spool it

DESCRIPTION
    Python scripts cannot be setuid, so instead of Exim's setuid binary an
    ordinary user's `sendmail` connects to the receiver role over this
    socket.  The request is one JSON line (the command-line settings that
    matter for reception: -f, -F, -t, -i, recipients, -od*) followed by the
    message bytes; the answer is one JSON line with the exit status and
    what to print on stderr.  The caller's uid and gid come from the kernel
    (SO_PEERCRED), never from the request: trust (-f by untrusted users,
    untrusted_set_sender) is decided on them exactly as for a direct
    submission, and the log shows U=<login>.

SECURITY
    The request is untrusted input: its size is bounded by
    message_size_limit, its fields are type-checked, and unknown fields are
    refused.

SEE ALSO
    DESIGN.md section 2; spec options trusted_users, trusted_groups,
    untrusted_set_sender, local_from_check.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
from typing import Any, BinaryIO, Callable

SOCKET_NAME = "eximpy-submit.sock"
_FIELDS = {"sender": (str, type(None)), "sender_name": (str, type(None)),
           "extract_recipients": (bool,), "dot_ends": (bool,),
           "recipients": (list,), "delivery_mode": (str, type(None))}
_MAX_HEADER = 64 * 1024


def socket_path(config: Any) -> str:
    return os.path.join(config.main.get("spool_directory"), SOCKET_NAME)


def bind(config: Any) -> socket.socket:
    """The launcher's listening UNIX socket, open to every local user."""
    path = socket_path(config)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(64)
    s.set_inheritable(True)
    return s


def can_write_spool(config: Any) -> bool:
    """Whether this process may write the spool itself (root, exim user)."""
    spool = os.path.join(config.main.get("spool_directory"), "input")
    return os.getuid() == 0 or os.access(spool, os.W_OK)


def submit(config: Any, inv: Any, stdin: BinaryIO) -> int:
    """Hand a message to the running daemon; returns the exit status."""
    request = {"sender": inv.sender, "sender_name": inv.sender_name,
               "extract_recipients": bool(inv.extract_recipients),
               "dot_ends": bool(inv.dot_ends),
               "recipients": list(inv.args),
               "delivery_mode": inv.delivery_mode}
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(socket_path(config))
    except OSError as e:
        sys.stderr.write(f"eximpy: cannot submit the message: the spool is "
                         f"not writable and the daemon's submission socket "
                         f"{socket_path(config)} is not there ({e.strerror})\n")
        return 1
    with s:
        s.sendall(json.dumps(request).encode() + b"\n")
        while True:
            chunk = stdin.read(65536)
            if not chunk:
                break
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    try:
        reply = json.loads(answer.decode() or "{}")
        sys.stderr.write(reply.get("stderr", ""))
        return int(reply.get("status", 1))
    except (ValueError, TypeError):
        sys.stderr.write("eximpy: the daemon gave no answer to the "
                         "submission\n")
        return 1


def _peer(conn: socket.socket) -> tuple[int, int, int]:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                            struct.calcsize("3i"))
    return struct.unpack("3i", creds)        # pid, uid, gid


def _read_request(conn: socket.socket, limit: int) -> tuple[dict, bytes]:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("truncated request")
        data += chunk
        if len(data) > _MAX_HEADER and b"\n" not in data:
            raise ValueError("request header too long")
    head, _, body = data.partition(b"\n")
    request = json.loads(head)
    if not isinstance(request, dict) or set(request) - set(_FIELDS):
        raise ValueError("malformed request")
    for k, types in _FIELDS.items():
        if k in request and not isinstance(request[k], types):
            raise ValueError(f"bad field {k}")
    if not all(isinstance(r, str) for r in request.get("recipients", [])):
        raise ValueError("bad recipients")
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
        if limit and len(body) > limit + _MAX_HEADER:
            raise ValueError("message too big")
    return request, body


def _size_limit(config: Any) -> int:
    """message_size_limit in bytes (0: none); it is an expanded option."""
    text = config.main.get("message_size_limit")
    if not text:
        return 0
    try:
        from eximpy.expand import ExpandContext, expand_string
        value = expand_string(str(text), ExpandContext(config)).strip()
        mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(
            value[-1:].upper(), 1)
        return int(value[:-1] if mult > 1 else value) * mult
    except Exception:
        return 0


def serve(config: Any, conn: socket.socket,
          notify: Callable[[str], None]) -> int:
    """Receive one submission on ``conn`` (in a receiver child)."""
    import io

    from eximpy.log.writer import LogWriter
    from eximpy.receive import LocalOptions, ReceiveError, receive_local
    from eximpy.trust import is_trusted
    _pid, uid, gid = _peer(conn)
    answer = {"status": 1, "stderr": ""}
    try:
        request, body = _read_request(conn, _size_limit(config))
        log = LogWriter.from_config(config)
        opts = LocalOptions(
            extract_recipients=request.get("extract_recipients", False),
            dot_ends=request.get("dot_ends", True),
            sender_name=request.get("sender_name"), uid=uid, gid=gid,
            trusted=is_trusted(config, uid, gid), log=log)
        try:
            res = receive_local(config, request.get("sender"),
                                request.get("recipients", []),
                                io.BytesIO(body), opts)
        except ReceiveError as e:
            answer = {"status": e.exit_status,
                      "stderr": "" if e.logged else f"exim: {e.message}\n"}
        else:
            answer = {"status": 0, "stderr": ""}
            if request.get("delivery_mode") not in ("q", "qs") and \
                    not config.main.get("queue_only") and not res.queued:
                notify(res.id)
    except (ValueError, OSError) as e:
        answer = {"status": 1, "stderr": f"eximpy: submission refused: {e}\n"}
    try:
        conn.sendall(json.dumps(answer).encode() + b"\n")
    except OSError:
        pass
    return 0
