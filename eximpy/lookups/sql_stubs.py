"""Lookup types Exim 4.96 (Debian) has that eximpy does not serve yet.

DESCRIPTION
    mysql, pgsql, ldap, ldapdn, ldapm, nis, nis0 are registered so that
    their names parse (and ${quote_mysql:} etc. work), but a lookup with them
    defers with a clear message.  The query-style framework (base.Lookup with
    style "query") is what a real driver will fill in.

SEE ALSO
    spec chapter "File and database lookups".
"""
from __future__ import annotations

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


class _Unserved(Lookup):
    def __init__(self, name: str, style: str) -> None:
        self.name = name
        self.names = (name,)
        self.style = style

    def open(self, filename):
        return True

    def find(self, handle, filename, key, opts, ctx):
        raise LookupDefer(f"{self.name} lookups are not available in eximpy")


class _MySQL(_Unserved):
    def quote(self, s, opt):
        if opt is not None:
            return None
        out = []
        for c in s:
            if c in "\n\t\r\b'\"\\":
                out.append("\\" + {"\n": "n", "\t": "t", "\r": "r", "\b": "b"}.get(c, c))
            else:
                out.append(c)
        return "".join(out)


class _PgSQL(_Unserved):
    def quote(self, s, opt):
        if opt is not None:
            return None
        out = []
        for c in s:
            if c == "'":
                out.append("''")
            elif c in "\n\t\r\b\"\\":
                out.append("\\" + {"\n": "n", "\t": "t", "\r": "r", "\b": "b"}.get(c, c))
            else:
                out.append(c)
        return "".join(out)


class _LDAP(_Unserved):
    def quote(self, s, opt):
        """Exim's eldap_quote(): LDAP escaping, then URL escaping."""
        if opt is not None and opt != "dn":
            return None
        from eximpy.expand.operators import to_bytes
        b = to_bytes(s)
        out = []
        if opt == "dn":
            n = len(b)
            lead = 0
            while lead < n and b[lead] == 0x20:
                lead += 1
            trail = n
            while trail > lead and b[trail - 1] == 0x20:
                trail -= 1
            for k, c in enumerate(b):
                if c == 0x20 and (k < lead or k >= trail):
                    out.append("%5C%20")
                    continue
                if chr(c) in ',+"\\<>;' or (c == 0x23 and k == lead):
                    out.append("%5C" + _urlq(c))
                    continue
                out.append(_urlq(c))
        else:
            for c in b:
                if chr(c) in "*()\\" or c == 0:
                    out.append(f"%5C{c:02X}")
                else:
                    out.append(_urlq(c))
        return "".join(out)


def _urlq(c: int) -> str:
    ch = chr(c)
    if ch.isascii() and (ch.isalnum() or ch in "!$'()*+-._"):
        return ch
    return f"%{c:02X}"


register(_MySQL("mysql", "query"))
register(_PgSQL("pgsql", "query"))
for _n in ("ldap", "ldapdn", "ldapm"):
    register(_LDAP(_n, "query"))
register(_Unserved("nis", "singlekey"))
register(_Unserved("nis0", "singlekey"))
