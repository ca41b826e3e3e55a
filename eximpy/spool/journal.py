"""The -J journal: addresses delivered during the current delivery attempt.

SUMMARY
    Journal.open(layout, id)  .record(address)  .close()
    read(layout, id) -> list[str]     remove(layout, id)

DESCRIPTION
    Each successful delivery appends its address (Exim: the address's
    unique form) and a newline, and the file is fsynced at once, so that a
    crash between delivery and the -H rewrite never causes a second
    delivery: the next attempt merges -J into the non-recipients tree before
    doing anything else, and the -J is removed after the -H is rewritten.

SEE ALSO
    spec "Format of spool files" (-J), EXIM-INVENTORY 3.4.
"""
from __future__ import annotations

import errno
import os

from eximpy.spool.layout import SPOOL_MODE, SpoolLayout, open_regular


class Journal:
    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def open(cls, layout: SpoolLayout, mid: str) -> "Journal":
        split = layout.find_split(mid)
        path = layout.file(mid, "-J", split)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                     | os.O_CLOEXEC | os.O_NOFOLLOW, SPOOL_MODE)
        layout.chown(fd)
        return cls(fd, path)

    def record(self, address: str) -> None:
        os.write(self.fd, (address.replace("\n", " ") + "\n")
                 .encode("utf-8", "surrogateescape"))
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read(layout: SpoolLayout, mid: str) -> list[str]:
    """Addresses in the journal (empty if there is none).  A last line
    without newline (crash during the write) is ignored."""
    path = layout.find(mid, "-J")
    if path is None:
        return []
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    return [ln.decode("utf-8", "surrogateescape") for ln in lines[:-1] if ln]


def remove(layout: SpoolLayout, mid: str) -> None:
    path = layout.find(mid, "-J")
    if path:
        try:
            os.unlink(path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
