"""dbm, dbmnz, dbmjz: Berkeley DB files, as Debian's Exim reads them.

DESCRIPTION
    Debian's Exim 4.96 is built with Berkeley DB 5.3: its dbm lookups open
    the file with type "unknown" (a hash or a btree file), and its
    exim_dbmbuild writes a hash file under exactly the name given.  eximpy
    reads and writes the same files through the berkeleydb module (Debian
    package libdb5.3-dev to build it), so files built by either exim_dbmbuild
    serve both programs:

      dbm     keys are stored with a terminating NUL byte (exim_dbmbuild's
              default), so the lookup adds one
      dbmnz   keys without the NUL (exim_dbmbuild -nozero)
      dbmjz   the key is a list; its items are joined with NUL bytes and
              looked up without a terminating NUL

    A data value is returned up to its first NUL (Exim copies it as a C
    string).  A file that cannot be opened as a Berkeley DB file gives
    Exim's 'failed to open <file> as a db (v4.1+) file: <error>'.

    build(pairs, path) writes a hash file atomically (<path>.dbmbuild_temp,
    then rename), for spool_tools/exim_dbmbuild.py; Berkeley DB errors are
    raised as they come (args: (errno, text)).

SEE ALSO
    spec sections "Single-key lookup types" (dbm ...) and "exim_dbmbuild".
"""
from __future__ import annotations

import errno
import os

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupFailure


def _bdb():
    from berkeleydb import db
    return db


def _open_error(filename: str, err: int | None) -> LookupFailure:
    # Exim reports errno after the failed open; for a file that exists but
    # is not a database Berkeley DB leaves ENOENT there.
    if not err or err in (errno.EINVAL, -30972) or err < 0:
        err = errno.ENOENT
    return LookupFailure(f"failed to open {filename} as a db (v4.1+) file: "
                         f"{os.strerror(err)}")


class DBMLookup(Lookup):
    style = "absfile"

    def __init__(self, name: str) -> None:
        self.name = name
        self.names = (name,)

    def open(self, filename):
        db = _bdb()
        try:
            os.stat(filename)
        except OSError as e:
            raise _open_error(filename, e.errno)
        d = db.DB()
        try:
            d.open(filename, None, db.DB_UNKNOWN, db.DB_RDONLY)
        except db.DBError as e:
            d.close()
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            raise _open_error(filename, code)
        return d

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand.operators import to_bytes, from_bytes
        if self.name == "dbmjz":
            from eximpy.expand.lists import iter_list
            k = b"\0".join(to_bytes(x) for x in iter_list(key))
        elif self.name == "dbmnz":
            k = to_bytes(key)
        else:
            k = to_bytes(key) + b"\0"
        v = handle.get(k)
        if v is None:
            return None
        z = v.find(b"\0")
        if z >= 0:
            v = v[:z]
        return from_bytes(v)

    def close(self, handle):
        handle.close()


for _n in ("dbm", "dbmjz", "dbmnz"):
    register(DBMLookup(_n))


def build(pairs, path: str) -> int:
    """Write (key bytes, data bytes) pairs to a new Berkeley DB hash file at
    ``path`` (atomically); returns the number of records."""
    db = _bdb()
    tmp = f"{path}.dbmbuild_temp"             # Exim's exim_dbmbuild's name
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    d = db.DB()
    n = 0
    try:
        d.open(tmp, None, db.DB_HASH, db.DB_CREATE | db.DB_EXCL, 0o644)
        for k, v in pairs:
            d.put(k, v)
            n += 1
        d.sync()
    finally:
        d.close()
    os.replace(tmp, path)
    return n
