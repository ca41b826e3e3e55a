"""Hints databases: one LMDB environment per database under <spool>/db/.

SUMMARY
    db = hintsdb.open(spool_directory, "ratelimit")   # HintsDB
    with db.write() as txn: v = txn.get(key); txn.put(key, value)
    db.read(key) -> bytes | None
    db.items() -> list[(key, value)]
    db.delete(key); db.close()

DESCRIPTION
    Exim keeps its hints (retry, ratelimit, seen, callout cache, wait-*,
    serialize-*) in DBM files under <spool>/db with a lock file beside each.
    eximpy uses LMDB instead (DESIGN.md section 1): <spool>/db/<name> is an
    LMDB environment directory (data.mdb, lock.mdb).  LMDB's own locking
    makes it safe for concurrent processes: a write transaction is
    exclusive across processes, so a read-modify-write done inside one
    ``write()`` block (as ratelimit and seen do) never loses an update.

    Keys and values are bytes; callers own the record formats (see
    eximpy.acl.ratelimit for the ratelimit and seen records).  Environments
    are opened lazily and cached per process and path; after fork() the
    child must not reuse the parent's handle (LMDB forbids it), so the
    cache is keyed by pid too.

SECURITY
    The directory is created mode 0750; a database name is never taken
    from message data.

SEE ALSO
    spec chapter "Hints database"; DESIGN.md sections 1-2.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

_ENVS: dict[tuple[int, str], Any] = {}     # cache of open environments

MAP_SIZE = 64 * 1024 * 1024


class HintsDB:
    """One hints database (an LMDB environment)."""

    def __init__(self, path: str) -> None:
        import lmdb
        os.makedirs(path, mode=0o750, exist_ok=True)
        self.path = path
        self.env = lmdb.open(path, map_size=MAP_SIZE, subdir=True,
                             max_dbs=0, lock=True, sync=True)

    @contextmanager
    def write(self) -> Iterator[Any]:
        """An exclusive read-write transaction (committed on success)."""
        with self.env.begin(write=True) as txn:
            yield txn

    def read(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            v = txn.get(key)
            return bytes(v) if v is not None else None

    def put(self, key: bytes, value: bytes) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(key, value)

    def delete(self, key: bytes) -> None:
        with self.env.begin(write=True) as txn:
            txn.delete(key)

    def items(self) -> list[tuple[bytes, bytes]]:
        with self.env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]

    def close(self) -> None:
        self.env.close()


def db_path(spool_directory: str, name: str) -> str:
    return os.path.join(spool_directory, "db", name)


def open(spool_directory: str, name: str) -> HintsDB:  # noqa: A001
    """The hints database ``name`` under ``spool_directory``/db."""
    path = db_path(spool_directory, name)
    key = (os.getpid(), path)
    db = _ENVS.get(key)
    if db is None:
        db = HintsDB(path)
        _ENVS[key] = db
    return db
