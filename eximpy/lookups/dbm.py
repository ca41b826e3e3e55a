"""dbm, dbmnz, dbmjz: keyed files built by exim_dbmbuild, served from LMDB.

DESCRIPTION
    Exim's dbm lookups read the host's DBM library format (Berkeley DB on
    Debian).  eximpy stores the same keys and data in an LMDB file (one
    file, no sub-directory) built by spool_tools/exim_dbmbuild.py:

      dbm     keys are stored with a terminating NUL byte (exim_dbmbuild's
              default), so the lookup adds one
      dbmnz   keys without the NUL (exim_dbmbuild -nozero)
      dbmjz   the key is a list; its items are joined with NUL bytes and
              looked up without a terminating NUL

    Data values are stored as they are (exim_dbmbuild also adds a NUL to the
    data unless -nozero; it is removed on reading).

SEE ALSO
    spec sections "Single-key lookup types" (dbm ...) and "exim_dbmbuild".
"""
from __future__ import annotations

import os

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


_ENVS: dict[str, tuple] = {}   # cache: path -> ((inode, mtime), lmdb env)


class DBMLookup(Lookup):
    style = "absfile"

    def __init__(self, name: str) -> None:
        self.name = name
        self.names = (name,)

    def open(self, filename):
        import lmdb
        if not os.path.exists(filename):
            raise LookupFailure(f"failed to open {filename} as a db (v4.1+) file: No such "
                                f"file or directory")
        st = os.stat(filename)
        cached = _ENVS.get(filename)
        if cached is not None and cached[0] == (st.st_ino, st.st_mtime_ns):
            return cached[1]
        try:
            if cached is not None:
                cached[1].close()
            env = lmdb.open(filename, subdir=False, readonly=True, lock=False,
                            max_dbs=0)
            _ENVS[filename] = ((st.st_ino, st.st_mtime_ns), env)
        except lmdb.Error as e:
            raise LookupFailure(f"failed to open {filename} as a db (v4.1+) file: {e}")
        return env

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand.operators import to_bytes, from_bytes
        if self.name == "dbmjz":
            from eximpy.expand.lists import iter_list
            k = b"\0".join(to_bytes(x) for x in iter_list(key))
        elif self.name == "dbmnz":
            k = to_bytes(key)
        else:
            k = to_bytes(key) + b"\0"
        with handle.begin() as txn:
            v = txn.get(k)
        if v is None:
            return None
        v = bytes(v)
        if v.endswith(b"\0"):
            v = v[:-1]
        return from_bytes(v)

    def close(self, handle):
        return None     # LMDB environments stay open (one per file per process)


for _n in ("dbm", "dbmjz", "dbmnz"):
    register(DBMLookup(_n))


def build(pairs, path: str) -> int:
    """Write (key bytes, data bytes) pairs to a new LMDB file at path
    (atomically); returns the number of records."""
    import lmdb
    tmp = f"{path}.tmp{os.getpid()}"
    for p in (tmp, tmp + "-lock"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    pairs = list(pairs)
    size = max(1 << 20, sum(len(k) + len(v) + 64 for k, v in pairs) * 4)
    env = lmdb.open(tmp, subdir=False, map_size=size, lock=False)
    n = 0
    with env.begin(write=True) as txn:
        for k, v in pairs:
            if txn.put(k, v, overwrite=False):
                n += 1
    env.sync(True)
    env.close()
    os.replace(tmp, path)
    try:
        os.unlink(tmp + "-lock")
    except FileNotFoundError:
        pass
    return n
