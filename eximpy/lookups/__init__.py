"""eximpy.lookups: Exim's lookup types behind one registry.

DESCRIPTION
    LOOKUPS (eximpy.drivers.registry.LOOKUPS) holds one DriverInfo per lookup
    name; its ``factory`` is the Lookup instance.  Built-in modules are
    imported here by name (never from configuration text).

    findtype_partial(text) parses a lookup type as written in an expansion
    or a list ("partial2-lsearch*@,ret=key") into a SearchSpec, raising
    ExpansionError with Exim's texts.  search_find() runs a lookup with
    Exim's partial-matching, "*" and "*@" defaults, ret=key and caching
    (search.c).  quote_for() serves ${quote_<type>:...}.

SEE ALSO
    spec chapter "File and database lookups".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eximpy.config.options import OptionTable
from eximpy.drivers.registry import LOOKUPS, DriverInfo
from eximpy.errors import ExpansionError
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure
from eximpy.expand.taint import is_tainted, untaint

__all__ = ["LOOKUPS", "register", "findtype", "findtype_partial", "search_find",
           "SearchSpec", "quote_for", "Lookup", "LookupDefer", "LookupFailure"]

_EMPTY = OptionTable(())


def register(lookup: Lookup) -> Lookup:
    for name in lookup.names or (lookup.name,):
        if name not in LOOKUPS:
            LOOKUPS.add(DriverInfo(name, _EMPTY, lookup, "lookup"))
    return lookup


def findtype(name: str) -> Lookup:
    info = LOOKUPS.get(name)
    if info is None:
        raise ExpansionError(f'unknown lookup type "{name}"')
    return info.factory


@dataclass(frozen=True)
class SearchSpec:
    lookup: Lookup
    partial: int          # -1: no partial matching
    affix: str
    star: bool
    starat: bool
    opts: str | None


_SPEC_CACHE: dict[str, SearchSpec] = {}


def _ispunct(c: str) -> bool:
    return 0x21 <= ord(c) <= 0x7e and not c.isalnum()


def findtype_partial(name: str) -> SearchSpec:
    """Exim's search_findtype_partial()."""
    sp = _SPEC_CACHE.get(name)
    if sp is not None:
        return sp
    ss = name
    pv = -1
    affix = ""
    if name.startswith("partial"):
        i = 7
        if i < len(name) and name[i].isdigit():
            j = i
            while j < len(name) and name[j].isdigit():
                j += 1
            pv = int(name[i:j])
            i = j
        else:
            pv = 2
        if i < len(name) and name[i] == "(":
            j = i + 1
            while j < len(name) and _ispunct(name[j]) and name[j] != ")":
                j += 1
            if j >= len(name) or name[j] != ")":
                raise ExpansionError(f'format error in lookup type "{name}"')
            affix = name[i + 1:j]
            ss = name[j + 1:]
        elif i < len(name) and name[i] == "-":
            affix = "*."
            ss = name[i + 1:]
        else:
            raise ExpansionError(f'format error in lookup type "{name}"')
    ln = len(ss)
    star = starat = False
    t = ss.find("*")
    tpos = 0
    if t >= 0:
        ln = t
        if ss[t + 1:t + 2] == "@":
            starat = True
        else:
            star = True
        tpos = t
    opts = None
    c = ss.find(",", tpos)
    if c >= 0:
        if c < ln:
            ln = c
        opts = ss[c + 1:]
    base = ss[:ln]
    lk = findtype(base)
    if lk.query_style:
        if pv >= 0:
            raise ExpansionError(f'"partial" is not permitted for lookup type "{ss}"')
        if star or starat:
            raise ExpansionError(f'defaults using "*" or "*@" are not permitted for lookup '
                                 f'type "{ss}"')
    sp = SearchSpec(lk, pv, affix, star, starat, opts)
    if len(_SPEC_CACHE) < 1000:
        _SPEC_CACHE[name] = sp
    return sp


def _printing(s: str) -> str:
    from eximpy.expand.operators import string_printing
    return string_printing(s, allow_tab=True)


def search_open(ctx: Any, lk: Lookup, filename: str | None):
    if filename is not None and is_tainted(filename):
        fn = getattr(ctx, "log_panic", None)
        if fn is not None:
            fn(f"Tainted filename for search: '{filename}'")
        ctx.search_error_message = ""
        raise LookupFailure("(null)")     # sic: Exim prints a NULL message here
    return ctx.lookup_cache.open(lk, filename)


def split_query_file(lk: Lookup, query: str, opts: str | None) -> tuple[str | None, str]:
    """Exim's search_args(): for absfilequery types the query may start with
    a file name (or the file comes from a file= option)."""
    if lk.style != "absfilequery":
        return None, query
    if opts:
        from eximpy.expand.lists import iter_list
        for o in iter_list(opts, ","):
            if o.startswith("file="):
                return o[5:], query
    q = query.lstrip()
    if q.startswith("/"):
        parts = q.split(None, 1)
        return parts[0], parts[1] if len(parts) > 1 else ""
    return None, query


def search_find(ctx: Any, spec: SearchSpec, key: str | None, arg: str,
                expand_setup: bool = True) -> str | None:
    """Run a lookup for ${lookup}: key is None for query-style lookups.
    On success with partial matching, ctx.nstrings gets $1/$2.  Raises
    ExpansionError on open failure or defer (Exim's texts)."""
    lk = spec.lookup
    if key is None:
        filename, key = split_query_file(lk, arg, spec.opts)
    else:
        filename = arg
    try:
        e = search_open(ctx, lk, filename)
    except LookupFailure as err:
        raise ExpansionError(str(err))
    ctx.search_error_message = ""
    try:
        r = search_find_spec(ctx, e, spec, filename, key, expand_setup)
    except LookupDefer as err:
        ctx.search_find_defer = True
        ctx.search_error_message = str(err)
        raise ExpansionError(f'lookup of "{_printing(key)}" gave DEFER: {err}')
    return r


def search_find_spec(ctx: Any, e: Any, spec: SearchSpec, filename: str | None,
                     key: str, expand_setup: bool) -> str | None:
    """Exim's search_find() (partial, *@, *, ret=key)."""
    cache = ctx.lookup_cache
    opts = spec.opts
    partial = spec.partial
    setup: list[str] | None = None
    yield_ = cache.find(e, filename, key, opts, ctx)
    set_null_wild = False
    if yield_ is not None:
        if partial >= 0:
            set_null_wild = True
    elif partial >= 0:
        affix = spec.affix
        affixlen = len(affix)
        key2 = key if affixlen == 0 else affix + key
        if affixlen:
            yield_ = cache.find(e, filename, key2, opts, ctx)
        if yield_ is None:
            kl = len(key)
            pos = 0
            dotcount = key.count(".")
            alen = affixlen
            while dotcount >= partial:
                dotcount -= 1
                k = key.find(".", pos)
                if k < 0:
                    if alen < 1:
                        break
                    if alen > 1 and affix[alen - 1] == ".":
                        alen -= 1
                    k3 = affix[:alen]
                    pos = kl
                else:
                    k3 = affix[:alen] + key[k + 1:]
                    pos = k + 1
                yield_ = cache.find(e, filename, k3, opts, ctx)
                if yield_ is not None:
                    fixedlength = len(k3) - alen
                    wildlength = kl - fixedlength - 1
                    setup = [key[:max(wildlength, 0)],
                             key[wildlength + 1:wildlength + 1 + max(fixedlength, 0)]]
                    break
        else:
            set_null_wild = True
    if yield_ is None and spec.starat:
        at = key.rfind("@")
        if at > 0:
            yield_ = cache.find(e, filename, "*" + key[at:], opts, ctx)
            if yield_ is not None:
                setup = [key[:at], ""]
    if yield_ is None and (spec.star or spec.starat):
        yield_ = cache.find(e, filename, "*", opts, ctx)
        if yield_ is not None:
            setup = [key, ""]
    if set_null_wild and yield_ is not None:
        setup = ["", key]
    if expand_setup and setup is not None and yield_ is not None:
        ns = list(ctx.nstrings) if ctx.nstrings else [""]
        ns = ns[:1] if ns else [""]
        ctx.nstrings = ns + setup
    if yield_ is not None and opts:
        from eximpy.expand.lists import iter_list
        for o in iter_list(opts, ","):
            if o == "ret=key":
                return untaint(key)
    return yield_


def quote_for(lookup_name: str, opt: str | None, s: str) -> str:
    info = LOOKUPS.get(lookup_name)
    if info is None:
        raise ExpansionError(f'unknown lookup type "{lookup_name}"')
    r = info.factory.quote(s, opt)
    if r is None:
        raise ExpansionError(f'"{opt}" unrecognized after "${{quote_{lookup_name}"')
    return r


# Built-in lookup modules: each registers its names on import.
from eximpy.lookups import lsearch as _lsearch  # noqa: E402,F401
from eximpy.lookups import dsearch as _dsearch  # noqa: E402,F401
from eximpy.lookups import passwd as _passwd  # noqa: E402,F401
from eximpy.lookups import cdb as _cdb  # noqa: E402,F401
from eximpy.lookups import dbm as _dbm  # noqa: E402,F401
from eximpy.lookups import dnsdb as _dnsdb  # noqa: E402,F401
from eximpy.lookups import sqlite as _sqlite  # noqa: E402,F401
from eximpy.lookups import json as _json  # noqa: E402,F401
from eximpy.lookups import readsock as _readsock  # noqa: E402,F401
from eximpy.lookups import sql_stubs as _sql_stubs  # noqa: E402,F401
