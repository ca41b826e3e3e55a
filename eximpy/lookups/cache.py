"""Per-process lookup caches (Exim's search.c): open handles and results.

DESCRIPTION
    SearchCache keeps, for each (lookup type, file name), the open handle
    and a cache of the results of earlier lookups (key -> data, with the
    options used and an optional expiry).  Nothing is shared between
    processes; tidyup() closes everything (Exim's search_tidyup(), called
    between messages).  At most ``open_max`` real files are kept open
    (lookup_open_max); the least recently used is closed first.

SEE ALSO
    spec section "Lookup caching".
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any


class _Entry:
    __slots__ = ("lookup", "handle", "items")

    def __init__(self, lookup: Any, handle: Any) -> None:
        self.lookup = lookup
        self.handle = handle
        self.items: dict[str, tuple[str | None, str | None, float]] = {}


class SearchCache:
    def __init__(self, open_max: int = 25) -> None:
        self.open_max = open_max
        self._open: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def open(self, lookup: Any, filename: str | None) -> _Entry:
        import os
        fkey = filename or ""
        if fkey and lookup.style in ("absfile", "singlekey", "absfilequery") \
                and not fkey.startswith("/"):
            fkey = os.path.abspath(fkey)     # the same name in another directory
        key = (lookup.name, fkey)
        e = self._open.get(key)
        if e is not None and e.handle is not None:
            self._open.move_to_end(key)
            return e
        if lookup.style in ("absfile", "singlekey") and filename is not None:
            nfiles = sum(1 for x in self._open.values() if x.handle is not None)
            if nfiles >= self.open_max:
                for k, x in self._open.items():
                    if x.handle is not None:
                        x.lookup.close(x.handle)
                        x.handle = None
                        break
        handle = lookup.open(filename)
        lookup.check(handle, filename)
        if e is None:
            e = _Entry(lookup, handle)
            self._open[key] = e
        else:
            e.handle = handle
        self._open.move_to_end(key)
        return e

    def find(self, e: _Entry, filename: str | None, key: str, opts: str | None,
             ctx: Any) -> str | None:
        """Exim's internal_search_find(): cached per (key, opts)."""
        if key == "":
            return None
        hit = e.items.get(key)
        now = time.time()
        if hit is not None and (hit[2] == 0 or hit[2] > now) and hit[1] == opts:
            return hit[0]
        ttl_holder = {"ttl": None}
        lk = e.lookup
        data = lk.find(e.handle, filename, key, opts, ctx) if not hasattr(
            lk, "find_ttl") else lk.find_ttl(e.handle, filename, key, opts, ctx, ttl_holder)
        ttl = ttl_holder["ttl"]
        if ttl == 0:
            e.items.clear()
        else:
            e.items[key] = (data, opts, 0 if ttl is None else now + ttl)
        return data

    def tidyup(self) -> None:
        for e in self._open.values():
            if e.handle is not None:
                try:
                    e.lookup.close(e.handle)
                except Exception:
                    pass
        self._open.clear()


_PROCESS: dict[int, SearchCache] = {}   # cache: pid -> the process's SearchCache


def process_cache() -> SearchCache:
    """The lookup cache shared by every ExpandContext of this process (Exim
    keeps one per process until search_tidyup())."""
    import os
    pid = os.getpid()
    c = _PROCESS.get(pid)
    if c is None:
        _PROCESS.clear()           # a forked child starts with its own
        c = _PROCESS[pid] = SearchCache()
    return c


def tidyup() -> None:
    """Exim's search_tidyup(): close all files and forget cached results
    (call between messages)."""
    import os
    c = _PROCESS.get(os.getpid())
    if c is not None:
        c.tidyup()
