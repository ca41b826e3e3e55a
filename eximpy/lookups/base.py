"""The lookup driver contract (Exim's lookup_info).

DESCRIPTION
    A lookup type is a subclass of Lookup registered under one or more
    names.  Its ``style`` is one of:

      singlekey    ${lookup{key}type{file}}: a key and a file/database name
      absfile      singlekey, and the file name must be an absolute path
      query        ${lookup type{query}}: one query string
      absfilequery query whose text starts with a file name (sqlite)

    Methods (Exim's open/check/find/close/quote entry points):

      open(filename) -> handle          raise LookupFailure(msg) on error
      check(handle, filename, ...)      optional mode/owner checks
      find(handle, filename, key, opts, ctx) -> str | None
                                        None = not found; raise
                                        LookupDefer(msg) for a temporary error
      close(handle)
      quote(s, opt) -> str | None       for ${quote_<type>:...}; None =
                                        unknown option
      cache_ttl                         None: cache results for the process;
                                        0: do not cache

    Results are cached by eximpy.lookups.cache (per process, as search.c).

SEE ALSO
    spec chapter "File and database lookups".
"""
from __future__ import annotations

from typing import Any


class LookupFailure(Exception):
    """The lookup could not be opened (message is Exim's text)."""


class LookupDefer(Exception):
    """The lookup deferred (a temporary error); message is Exim's text."""


class Lookup:
    name = ""
    style = "singlekey"
    names: tuple[str, ...] = ()

    @property
    def query_style(self) -> bool:
        return self.style in ("query", "absfilequery")

    def open(self, filename: str | None) -> Any:
        return True

    def check(self, handle: Any, filename: str | None) -> None:
        return None

    def find(self, handle: Any, filename: str | None, key: str, opts: str | None,
             ctx: Any) -> str | None:
        raise NotImplementedError

    def close(self, handle: Any) -> None:
        return None

    def quote(self, s: str, opt: str | None) -> str | None:
        return s if opt is None else None

    def tidy(self) -> None:
        return None
