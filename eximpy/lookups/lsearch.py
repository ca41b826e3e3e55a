"""Linear-search lookups: lsearch, wildlsearch, nwildlsearch, iplsearch.

DESCRIPTION
    The file is read line by line.  A line starting with '#' is a comment;
    a line starting with white space continues the previous entry (its
    leading white space becomes one space).  A key is either "quoted" (with
    backslash escapes) or runs to the first white space or ':'; an optional
    ':' and white space separate it from the data.  Trailing white space of
    the data is removed.

      lsearch       keys compared caselessly
      wildlsearch   keys are expanded, then matched as in a domain list
                    (^regex, *suffix, ...), caselessly
      nwildlsearch  as wildlsearch without expanding the keys
      iplsearch     keys are IP addresses or networks (CIDR); the lookup key
                    must be an IP address or network

SEE ALSO
    spec section "Single-key lookup types" (lsearch ...).
"""
from __future__ import annotations

import ipaddress

from eximpy.expand.bytestr import norm
from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure

_WS = " \t\r\n\f\v"


def _lower(s: str) -> str:
    return s.translate({i: i + 32 for i in range(65, 91)})


def iter_entries(path: str, data: bytes):
    """Yield (key, data, quoted) for each entry of an lsearch file."""
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        i += 1
        if not line or line[0] == "#" or line[0] in _WS:
            continue
        key, j = entry_key(line)
        yield key, (line, j, i), line[0] == '"'


def entry_key(line: str) -> tuple[str, int]:
    """The key of an entry line ("quoted" with escapes, or up to a colon or
    white space) and the index just after it."""
    if line[0] != '"':
        j = 0
        while j < len(line) and line[j] != ":" and line[j] not in _WS:
            j += 1
        return line[:j], j
    from eximpy.expand.parser import interpret_escape
    out = []
    j = 1
    while j < len(line) and line[j] != '"':
        if line[j] == "\\":
            c, j = interpret_escape(line, j)
            out.append(c)
        else:
            out.append(line[j])
            j += 1
    return norm("".join(out)), j + 1


def entry_data(lines: list[str], line: str, j: int, next_i: int) -> str:
    while j < len(line) and line[j] in _WS:
        j += 1
    if j < len(line) and line[j] == ":":
        j += 1
        while j < len(line) and line[j] in _WS:
            j += 1
    parts = [line[j:]]
    k = next_i
    while k < len(lines):
        nl = lines[k]
        if not nl or nl[0] not in " \t" or not nl.strip(_WS):
            break      # a line of only white space ends the entry too
        t = nl.lstrip(" \t")
        k += 1
        parts.append(" " + t)
    return "".join(parts).rstrip(_WS)


class _File:
    __slots__ = ("path", "lines", "mtime")

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            self.lines = f.read().decode("utf-8", "surrogateescape").split("\n")


class LSearch(Lookup):
    style = "absfile"

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.names = (name,)
        self.what = what

    def open(self, filename):
        try:
            return _File(filename)
        except OSError as e:
            raise LookupFailure(f"failed to open {filename} for linear search: "
                                f"{e.strerror}")

    def find(self, handle, filename, key, opts, ctx):
        lines = handle.lines
        kind = self.name
        if kind == "iplsearch":
            from eximpy.expand.operators import ip_type
            t, off = ip_type(key, allow_mask=False)
            if t == 0:
                raise LookupDefer(
                    f'"{key}" is not a valid iplsearch key (an IP address, with optional '
                    f'CIDR mask, is wanted): in a host list, use net-iplsearch as the '
                    f'search type')
            try:
                kaddr = ipaddress.ip_network(key.split("%")[0], strict=False)
            except ValueError:
                return None
        lkey = _lower(key)
        n = len(lines)
        i = 0
        while i < n:
            line = lines[i]
            i += 1
            if not line or line[0] == "#" or line[0] in _WS:
                continue
            lk, j = entry_key(line)
            if kind == "lsearch":
                if _lower(lk) != lkey:
                    continue
            elif kind == "iplsearch":
                if lk == "*":
                    pass
                else:
                    from eximpy.expand.operators import ip_type
                    t, _o = ip_type(lk)
                    if t == 0:
                        continue
                    try:
                        net = ipaddress.ip_network(lk.split("%")[0], strict=False)
                    except ValueError:
                        continue
                    if net.version != kaddr.version:
                        continue
                    if not (kaddr.network_address in net and kaddr.prefixlen >= net.prefixlen):
                        continue
            else:
                from eximpy import match as M
                pat = lk
                if kind == "wildlsearch":
                    from eximpy.expand import expand_string
                    from eximpy.errors import ExpansionError, ExpansionForcedFail
                    try:
                        pat = expand_string(lk, ctx)
                    except ExpansionForcedFail:
                        continue
                    except ExpansionError as e:
                        ctx.log_panic(f'failed to expand "{lk}" while checking a list: {e}') \
                            if hasattr(ctx, "log_panic") else None
                        raise LookupDefer("")
                rc = M.check_string(ctx, key, pat, caseless=True, expand_setup=-1,
                                    at_special=True)
                if rc != M.OK:
                    continue
            return entry_data(lines, line, j, i)
        return None


for _name in ("lsearch", "wildlsearch", "nwildlsearch", "iplsearch"):
    register(LSearch(_name, _name))
