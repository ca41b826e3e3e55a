"""The delivery FIFO: how new message ids reach the delivery role.

SUMMARY
    path(config)            <spool_directory>/eximpy-deliver.fifo
    create(config, uid, gid) make it (mode 0600, owned by the exim user)
    hold(path) -> fd        the launcher's idle read end (ids wait in the
                            pipe until the delivery role reads them)
    notify(path, ids, queue_run=False)
                            write ids, one per line ("Q <id>" from the
                            queue runner), without blocking
    Reader                  the delivery role's end: ids as they arrive

DESCRIPTION
    A receiver (or the queue runner) writes "<message id>\\n" lines; the
    delivery role reads them.  Writes are non-blocking: when no delivery
    role is listening or the pipe is full, the id is simply not announced
    and the next queue run finds the message in the spool, so nothing is
    lost.  Each line is far below PIPE_BUF, so lines from many writers
    never interleave.

SECURITY
    The reader accepts only strings that are valid message ids; anything
    else is dropped.

SEE ALSO
    DESIGN.md section 2 (Postfix's qmgr is woken the same way).
"""
from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any

_ID = re.compile(rb"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}$")
FIFO_NAME = "eximpy-deliver.fifo"


def path(config: Any) -> str:
    return os.path.join(config.main.get("spool_directory"), FIFO_NAME)


def create(config: Any, uid: int, gid: int) -> str:
    p = path(config)
    try:
        st = os.lstat(p)
        if not stat.S_ISFIFO(st.st_mode):
            os.unlink(p)
            raise FileNotFoundError
    except FileNotFoundError:
        os.mkfifo(p, 0o600)
    if os.geteuid() == 0:
        os.chown(p, uid, gid)
    return p


def hold(fifo_path: str) -> int:
    """A read end the launcher keeps (and never reads): with it, an id
    written before the delivery role has opened its reader (at start-up,
    or while the role restarts) waits in the pipe instead of being
    dropped until the next queue run."""
    return os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def notify(fifo_path: str, ids: list[str], queue_run: bool = False,
           queue_smtp: bool = False) -> bool:
    """Announce ids; False when nobody listens or the pipe is full.
    ``queue_run``: the queue runner offers them ("Q <id>" lines), so the
    delivery honours retry times, as in an Exim queue run;
    ``queue_smtp`` ("S <id>"): local deliveries only (first_pass_route)."""
    try:
        fd = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        tag = "Q " if queue_run else "S " if queue_smtp else ""
        os.write(fd, "".join(f"{tag}{i}\n" for i in ids).encode())
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EPIPE):
            return False
        raise
    finally:
        os.close(fd)


class Reader:
    """The delivery role's end of the FIFO."""

    def __init__(self, fifo_path: str) -> None:
        self.fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the pipe open, so that a receiver closing
        # its end never makes us read EOF in a loop.
        self._keep = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK)
        self._buf = b""

    def fileno(self) -> int:
        return self.fd

    def read_ids(self) -> list[str]:
        return [mid for mid, _q in self.read_entries()]

    def read_entries(self) -> list[tuple[str, str]]:
        """(message id, kind) for each valid line: kind "Q" offered by a
        queue run, "S" local deliveries only, "" a first delivery."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        out = []
        for ln in lines:
            kind = ""
            if ln[:2] in (b"Q ", b"S "):
                kind, ln = ln[:1].decode(), ln[2:]
            if _ID.match(ln):
                out.append((ln.decode(), kind))
        return out

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._keep)
