"""The per-message log, ``<spool>/msglog/<id>`` (option message_logs).

SUMMARY
    append(layout, id, text, now=None)    one timestamped line
    create(layout, id, data)              the reception lines (receiving)
    read(layout, id) -> bytes             (for -Mvl)

DESCRIPTION
    Lines are ``YYYY-MM-DD HH:MM:SS text`` (the same lines the mainlog gets
    for the message, without the id, plus detail).  The file is opened for
    append for each line; it is removed with the message (or moved to
    msglog.OLD with preserve_message_logs, by the caller).

SEE ALSO
    spec "Log files" / message_logs; EXIM-INVENTORY 3.4.
"""
from __future__ import annotations

import os

from eximpy.log.format import timestamp
from eximpy.spool.layout import SPOOL_MODE, SpoolLayout, open_regular


def append(layout: SpoolLayout, mid: str, text: str,
           now: float | None = None, millisec: bool = False,
           timezone: bool = False) -> None:
    split = layout.find_split(mid)
    d = layout.msglog_dir(mid, split)
    if not os.path.isdir(d):
        os.makedirs(d, mode=0o750, exist_ok=True)
        layout.chown(d)
    path = os.path.join(d, mid)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                 | os.O_CLOEXEC | os.O_NOFOLLOW, SPOOL_MODE)
    try:
        layout.chown(fd)
        line = timestamp(now, millisec, timezone) + " " + text + "\n"
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def create(layout: SpoolLayout, mid: str, data: str) -> None:
    """Write the first lines of a new message's log (already formatted),
    in the configured layout, making the directory only when missing."""
    path = layout.msglog_file(mid)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC \
        | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, SPOOL_MODE)
    except FileNotFoundError:
        d = os.path.dirname(path)
        os.makedirs(d, mode=0o750, exist_ok=True)
        layout.chown(d)
        fd = os.open(path, flags, SPOOL_MODE)
    try:
        layout.chown(fd)
        os.write(fd, data.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def read(layout: SpoolLayout, mid: str) -> bytes | None:
    path = layout.find_msglog(mid)
    if path is None:
        return None
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        return f.read()
