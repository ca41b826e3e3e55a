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
        # Exim's eldap_quote(): LDAP (RFC 4515) quoting, then URL quoting.
        if opt is not None and opt != "dn":
            return None
        out = []
        dn = opt == "dn"
        for k, c in enumerate(s):
            o = ord(c)
            if dn:
                if c in ',+"\\<>;' or (c == "#" and k == 0) or (c == " " and (
                        k == 0 or k == len(s) - 1)):
                    out.append("%5C" + _urlq(c))
                    continue
            elif c in "*()\\" or o == 0:
                out.append("%5C" + f"{o:02X}")
                continue
            out.append(_urlq(c))
        return "".join(out)


def _urlq(c: str) -> str:
    if c.isascii() and (c.isalnum() or c in "!$'-._~*+,;=:@"):
        return c
    if c == " ":
        return "%20"
    return "".join(f"%{b:02X}" for b in c.encode("latin-1", "replace"))


register(_MySQL("mysql", "query"))
register(_PgSQL("pgsql", "query"))
for _n in ("ldap", "ldapdn", "ldapm"):
    register(_LDAP(_n, "query"))
register(_Unserved("nis", "singlekey"))
register(_Unserved("nis0", "singlekey"))
