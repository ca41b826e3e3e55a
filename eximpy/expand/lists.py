"""Exim list syntax: separators, doubled separators, the ``<c`` prefix.

DESCRIPTION
    ``iter_list(text)`` yields the items of an Exim list exactly as Exim's
    string_nextinlist() does: the default separator is ``:``; a list that
    starts with ``<`` followed by a punctuation or control character uses that
    character instead; a doubled separator stands for one literal separator
    character (not for control-character separators); leading and trailing
    white space of every item is removed; an empty list has no items.
    ``append_list_item`` builds lists the way string_append_listele() does.

SEE ALSO
    spec chapter "Domain, host, address, and local part lists", section
    "Changing list separators".
"""
from __future__ import annotations

from collections.abc import Iterator

_SPACE = " \t\n\r\f\v"


def _ispunct(c: str) -> bool:
    o = ord(c)
    return 0x21 <= o <= 0x7e and not c.isalnum()


def _iscntrl(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or o == 0x7f


def list_separator(text: str, default: str = ":") -> tuple[str, int]:
    """Return (separator, index of the first item) for a list text."""
    i = 0
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    if i + 1 == n and text[i] == "<":
        return "\0", n          # "<" then NUL: iscntrl(0) in C
    if i + 1 < n and text[i] == "<" and (_ispunct(text[i + 1]) or _iscntrl(text[i + 1])):
        sep = text[i + 1]
        i += 2
        while i < n and text[i] in _SPACE and text[i] != sep:
            i += 1
        return sep, i
    return default, i


def iter_list(text: str | None, sep: str | None = None):
    """The items of an Exim list (string_nextinlist semantics), as a tuple.

    ``sep`` forces a separator (as when a caller passes a non-zero sep);
    otherwise the ``<c`` prefix or ``:`` is used.  Results for untainted
    texts are cached (lists in a configuration are split once).
    """
    if not text:
        return ()
    if type(text) is not str:
        return tuple(_split(text, sep))
    key = (text, sep)
    r = _LIST_CACHE.get(key)
    if r is None:
        r = tuple(_split(text, sep))
        if len(_LIST_CACHE) > 4096:
            _LIST_CACHE.clear()
        _LIST_CACHE[key] = r
    return r


_LIST_CACHE: dict[tuple[str, str | None], tuple[str, ...]] = {}


def _split(text: str, sep: str | None) -> Iterator[str]:
    if sep is None:
        sep, i = list_separator(text)
    else:
        i = 0
    return _iter_from(text, i, sep)


def iter_list_sep(text: str | None) -> tuple[str, list[str]]:
    """Return (separator, items) of a list."""
    if not text:
        return ":", []
    sep, i = list_separator(text)
    return sep, list(_iter_from(text, i, sep))


def _iter_from(s: str, i: int, sep: str) -> Iterator[str]:
    n = len(s)
    special = _iscntrl(sep)
    T = type(s)
    while True:
        while i < n and s[i] in _SPACE and s[i] != sep:
            i += 1
        if i >= n:
            return
        if s[i] == sep:
            i += 1
            if i >= n or s[i] != sep or special:
                yield T("") if T is not str else ""
                continue
        # first char is data
        parts = []
        while True:
            j = s.find(sep, i + 1)
            if j < 0:
                j = n
            parts.append(s[i:j])
            i = j
            if i >= n:
                break
            i += 1
            if i >= n or s[i] != sep or special:
                break
            # doubled separator: s[i] == sep is data; continue from it
        item = "".join(parts).rstrip(_SPACE)
        yield T(item) if T is not str else item


def append_list_item(items: list[str], sep: str = ":") -> str:
    """Join items into a list, doubling separators inside items
    (string_append_listele semantics)."""
    out = []
    for k, it in enumerate(items):
        if k:
            out.append(sep)
        out.append(it.replace(sep, sep + sep))
    return "".join(out)
