"""Locking a message: a write fcntl() lock on the first line of its -D file.

SUMMARY
    open_locked(layout, id) -> int | None     fd of -D, locked; None if busy
    is_locked(path) -> bool                   (F_GETLK probe, for tools)
    MessageLocked                             (raised by callers that need it)

DESCRIPTION
    Exim locks a message by taking an fcntl write lock on the first
    SPOOL_DATA_START_OFFSET bytes (the ``<id>-D`` line) of the -D file,
    which is opened O_RDWR|O_APPEND (never written through) with O_NOFOLLOW
    so a symlink planted in the spool is never followed.  The -H file is
    never locked, because it is replaced by rename.  Locks taken here and
    by real Exim exclude each other.

    fcntl locks belong to the process: closing *any* descriptor of the -D
    file in the locking process drops the lock.  Read the body through the
    descriptor returned here (eximpy.spool.data_file.read_body(fd)).

SEE ALSO
    spec "Format of spool files"; Exim spool_in.c spool_open_datafile.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct

from eximpy.spool.layout import SpoolLayout


class MessageLocked(Exception):
    """Another process holds the message's -D lock."""


def data_start_offset(mid: str) -> int:
    """Length of the ``<id>-D\\n`` line (19 for 4.96 ids)."""
    return len(mid) + 3


def lock_fd(fd: int, mid: str, blocking: bool = False) -> bool:
    """Take Exim's -D lock on an open descriptor; False if it is held."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB),
                    data_start_offset(mid), 0, os.SEEK_SET)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def open_locked(layout: SpoolLayout, mid: str) -> int | None:
    """Open and lock ``mid``'s -D file (either layout).

    Returns the fd, or None if another process holds the lock.  Raises
    FileNotFoundError if there is no -D file.
    """
    path = layout.find(mid, "-D")
    if path is None:
        raise FileNotFoundError(errno.ENOENT, "spool -D file not found", mid)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW
                 | os.O_CLOEXEC)
    if not lock_fd(fd, mid):
        os.close(fd)
        return None
    return fd


def is_locked(path: str, mid: str) -> bool:
    """True if some *other* process holds a write lock on the -D file.

    For tools only: never call it in a process that holds the lock, since
    closing the probe descriptor would release that process's lock.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        # struct flock: short l_type, short l_whence, off_t l_start,
        # off_t l_len, pid_t l_pid (Linux x86-64/arm64 layout).
        req = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0,
                          data_start_offset(mid), 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req + b"\0" * 4)
        ltype = struct.unpack("hhqqi", res[:struct.calcsize("hhqqi")])[0]
        return bool(ltype != fcntl.F_UNLCK)
    finally:
        os.close(fd)
