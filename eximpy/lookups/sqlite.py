"""sqlite: SQL queries on an SQLite database file (stdlib sqlite3).

DESCRIPTION
    ${lookup sqlite{/path/db SELECT ...}} or ${lookup sqlite,file=/path/db
    {SELECT ...}} (or the sqlite_dbfile main option).  One column: the
    values of the rows, one per line.  Several columns: name=value pairs
    (values quoted when empty or containing white space or quotes), one row
    per line.  NULL reads as "<NULL>".  No rows: lookup fails.  An SQL
    error defers.  ${quote_sqlite:} doubles single quotes.

SEE ALSO
    spec section "More about SQLite".
"""
from __future__ import annotations

import sqlite3

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


def lf_quote(name: str, value: str) -> str:
    """Exim's lf_quote(): name=value with quoting."""
    if value == "" or any(c in value for c in " \t\n\r\"\\'"):
        v = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        v = value
    return f"{name}={v} "


class SQLite(Lookup):
    name = "sqlite"
    names = ("sqlite",)
    style = "absfilequery"

    def open(self, filename):
        if not filename:
            raise LookupFailure("absolute file name expected for \"sqlite\" lookup")
        try:
            con = sqlite3.connect(f"file:{filename}?mode=rw", uri=True,
                                  check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise LookupFailure(str(e))
        # TEXT values are bytes to Exim: eximpy's strings (UTF-8 with
        # surrogateescape), whatever they hold
        con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        return con

    def find(self, handle, filename, key, opts, ctx):
        try:
            cur = handle.execute(key)
            rows = cur.fetchall()
            names = [d[0] for d in cur.description] if cur.description else []
        except (sqlite3.Error, UnicodeEncodeError) as e:
            ctx.search_error_message = str(e)
            return None         # Exim's sqlite lookup fails (not defers) here
        if not rows:
            return None
        out = []
        for r in rows:
            if len(r) > 1:
                out.append("".join(lf_quote(n, "<NULL>" if v is None else _s(v))
                                   for n, v in zip(names, r)))
            else:
                out.append("<NULL>" if r[0] is None else _s(r[0]))
        return "\n".join(out)

    def quote(self, s, opt):
        if opt is not None:
            return None
        return s.replace("'", "''")

    def close(self, handle):
        handle.close()


def _s(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, float):
        return repr(v)
    return str(v)


register(SQLite())
