"""cdb: constant databases (D. J. Bernstein's format), read and write.

DESCRIPTION
    CDBLookup reads cdb files such as those made by cdbmake, tinycdb or
    ``eximpy.lookups.cdb.write_cdb``: a 2048-byte header of 256 (position,
    length) slots, the records (key length, data length, key, data; all
    numbers little-endian 32-bit), then 256 hash tables of (hash, position)
    pairs.  The hash is h = ((h << 5) + h) ^ byte, starting at 5381.
    The whole file is read into memory at open (files are small; Exim maps
    them).  write_cdb(path, pairs) builds a file atomically.

SEE ALSO
    spec section "Single-key lookup types" (cdb).
"""
from __future__ import annotations

import os
import struct

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


def cdb_hash(key: bytes) -> int:
    h = 5381
    for c in key:
        h = (((h << 5) + h) & 0xFFFFFFFF) ^ c
    return h


class CDBFile:
    def __init__(self, data: bytes) -> None:
        if len(data) < 2048:
            raise ValueError("too short")
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        d = self.data
        h = cdb_hash(key)
        pos, slots = struct.unpack_from("<II", d, (h & 255) * 8)
        if slots == 0:
            return None
        start = (h >> 8) % slots
        for i in range(slots):
            sp = pos + ((start + i) % slots) * 8
            if sp + 8 > len(d):
                raise ValueError("bad hash table")
            hh, rp = struct.unpack_from("<II", d, sp)
            if rp == 0:
                return None
            if hh != h:
                continue
            kl, dl = struct.unpack_from("<II", d, rp)
            if d[rp + 8:rp + 8 + kl] == key:
                return d[rp + 8 + kl:rp + 8 + kl + dl]
        return None


def write_cdb(path: str, pairs) -> int:
    """Write (key bytes, data bytes) pairs as a cdb file; returns count."""
    records = bytearray()
    tables: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    pos = 2048
    n = 0
    for k, v in pairs:
        h = cdb_hash(k)
        tables[h & 255].append((h, pos))
        rec = struct.pack("<II", len(k), len(v)) + k + v
        records += rec
        pos += len(rec)
        n += 1
    header = bytearray()
    hashpart = bytearray()
    for t in tables:
        slots = len(t) * 2
        header += struct.pack("<II", pos + len(hashpart), slots)
        table = [(0, 0)] * slots
        for h, p in t:
            j = (h >> 8) % slots
            while table[j][1] != 0:
                j = (j + 1) % slots
            table[j] = (h, p)
        for h, p in table:
            hashpart += struct.pack("<II", h, p)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(bytes(header) + bytes(records) + bytes(hashpart))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


class CDBLookup(Lookup):
    name = "cdb"
    names = ("cdb",)
    style = "absfile"

    def open(self, filename):
        try:
            with open(filename, "rb") as f:
                data = f.read()
        except OSError as e:
            raise LookupFailure(f"failed to open {filename} for cdb lookup: {e.strerror}")
        if len(data) < 2048:
            # Exim appends a stale errno text here
            raise LookupFailure(f"failed to open {filename} too short for cdb lookup: "
                                f"No such file or directory")
        return CDBFile(data)

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand.operators import to_bytes, from_bytes
        try:
            r = handle.get(to_bytes(key))
        except (ValueError, struct.error):
            raise LookupDefer(f"cdb: corrupt file {filename}")
        return None if r is None else from_bytes(r)


register(CDBLookup())
