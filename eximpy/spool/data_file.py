"""The -D spool file: ``<id>-D`` on line 1, then the body, as Exim writes it.

SUMMARY
    create(layout, id, uid=None, gid=None, body=None) -> DataFile
                                        (locked, exclusive; ``body`` is
                                        written with the id line, unsynced)
    DataFile.write(bytes) / .finish() (fsync) / .abandon() (unlink)
    read_body(fd, id) -> bytes          (through the locked fd)
    read_file(path) -> bytes            (whole file, for -Mvb)
    body_size(path, id) -> int          (file size less the id line)

DESCRIPTION
    The body is stored without headers, with ``\\n`` line ends and no dot
    stuffing (CRLF when the -H says -spool_file_wireformat).  As in Exim the
    -D file is created under its final name with O_EXCL and locked at once;
    it is invisible to queue runners until the -H file exists, and it is
    fsynced before the -H file gets its name (eximpy.spool.header_file
    .write(sync_first=...) fsyncs both before the rename, so the -D and the
    -H share one journal commit where Exim waits for two).

    The spool directories are made only when the create fails with ENOENT
    (as Exim does), so the common path costs no stat() calls; the file
    mode comes from open() unless the umask would change it.

SEE ALSO
    spec "Format of spool files"; EXIM-INVENTORY 3.4.
"""
from __future__ import annotations

import os

from eximpy.spool.layout import (SPOOL_MODE, SpoolLayout, open_regular,
                                 spool_mode_kept)
from eximpy.spool.lock import data_start_offset, lock_fd


class DataFile:
    """A -D file being written by the receiving process (locked)."""

    def __init__(self, path: str, fd: int, mid: str) -> None:
        self.path, self.fd, self.id = path, fd, mid
        self.size = 0            # body bytes written

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def finish(self) -> None:
        """fsync the data (the lock stays held until close())."""
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abandon(self) -> None:
        """Remove the file (reception failed)."""
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.close()


_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND
                 | os.O_CLOEXEC | os.O_NOFOLLOW)


def open_new(path: str, flags: int, layout: SpoolLayout, mid: str) -> int:
    """open(path, flags|O_CREAT|O_EXCL); the spool directories are made
    when missing (ENOENT), then the open is tried once more."""
    try:
        return os.open(path, flags, SPOOL_MODE)
    except FileNotFoundError:
        layout.ensure_dirs(mid)
        return os.open(path, flags, SPOOL_MODE)


def create(layout: SpoolLayout, mid: str, uid: int | None = None,
           gid: int | None = None, body: bytes | None = None) -> DataFile:
    path = layout.file(mid, "-D")
    fd = open_new(path, _CREATE_FLAGS, layout, mid)
    try:
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid,
                      -1 if gid is None else gid)
        else:
            layout.chown(fd)
        if not spool_mode_kept():
            os.fchmod(fd, SPOOL_MODE)
        if not lock_fd(fd, mid):
            raise OSError(f"cannot lock new spool file {path}")
        df = DataFile(path, fd, mid)
        first = f"{mid}-D\n".encode()
        if body:
            df.write(first + body)
            df.size = len(body)
        else:
            os.write(fd, first)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return df


def read_body(fd: int, mid: str) -> bytes:
    """The body, read through an (already locked) descriptor."""
    st = os.fstat(fd)
    off = data_start_offset(mid)
    return os.pread(fd, max(0, st.st_size - off), off)


def read_file(path: str) -> bytes:
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def body_size(path: str, mid: str) -> int:
    return max(0, os.stat(path).st_size - data_start_offset(mid))


def check_first_line(data: bytes, mid: str) -> bool:
    return data.startswith(f"{mid}-D\n".encode())
