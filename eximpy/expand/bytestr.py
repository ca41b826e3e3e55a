"""Byte strings carried in str: the one string convention of eximpy.

DESCRIPTION
    Exim works on bytes everywhere.  eximpy carries them in ``str`` as
    ``data.decode("utf-8", "surrogateescape")``: valid UTF-8 becomes its
    characters, every other byte the lone surrogate U+DC80..U+DCFF.  The
    configuration reader, the SMTP session, the spool, the logs and the
    expansion engine all use this one convention, so values pass between
    them unchanged, and ``s.encode("utf-8", "surrogateescape")`` gives back
    Exim's bytes.

    Byte-level operations (lengths, offsets, digests, escapes, regular
    expressions) use the helpers here:

    to_bytes(s) / from_bytes(b)
        the bytes of a string, and the string of some bytes.
    norm(s)
        the canonical form of a string: a byte operation can cut a UTF-8
        sequence (${substr_0_1:ü} is the lone byte 0xC3), and two such
        pieces put together must equal the whole character, as the bytes
        do.  Concatenations of non-ASCII strings pass through norm();
        ASCII strings (the common case) are returned at no cost.
    to_l1(s) / from_l1(s)
        a "one character per byte" (Latin-1) view of a string and back,
        for code that must index bytes (regular expressions: PCRE without
        UTF matches bytes).  Both return an ASCII string unchanged.
    byte_char(v)
        the string of one byte value (an escape such as \\xfc).
    lc_ascii(s) / uc_ascii(s)
        case changes of the ASCII letters only (C's tolower/toupper in
        the C locale), never of other characters.
    bytes_cmp(a, b)
        -1, 0 or 1 as strcmp() orders the two byte strings.

    Taint (eximpy.expand.taint.Tainted) is not kept by these helpers;
    callers wrap results with like().

SEE ALSO
    eximpy/expand/operators.py, regex.py; Python's "surrogateescape" error
    handler (PEP 383).
"""
from __future__ import annotations

_UC = {i: i - 32 for i in range(ord("a"), ord("z") + 1)}
_LC = {i: i + 32 for i in range(ord("A"), ord("Z") + 1)}


def to_bytes(s: str) -> bytes:
    """The bytes a string stands for."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:          # a surrogate no bytes decode to
        return s.encode("utf-8", "surrogatepass")


def from_bytes(b: bytes) -> str:
    """The string for some bytes."""
    return b.decode("utf-8", "surrogateescape")


def norm(s: str) -> str:
    """``s`` in canonical form (pieces of a cut UTF-8 sequence joined)."""
    if s.isascii():
        return s
    t = to_bytes(s).decode("utf-8", "surrogateescape")
    if t == s:
        return s
    if type(s) is not str:              # keep a str subclass (Tainted)
        return type(s)(t)
    return t


def to_l1(s: str) -> str:
    """One character per byte (Latin-1 view); ASCII unchanged."""
    if s.isascii():
        return s
    return to_bytes(s).decode("latin-1")


def from_l1(s: str) -> str:
    """The inverse of to_l1()."""
    if s.isascii():
        return s
    return s.encode("latin-1").decode("utf-8", "surrogateescape")


def byte_char(v: int) -> str:
    """The string of the byte ``v`` (0..255) on its own."""
    return chr(v) if v < 0x80 else chr(0xDC00 + v)


def lc_ascii(s: str) -> str:
    """Lower-case the ASCII letters only."""
    return s.lower() if s.isascii() else s.translate(_LC)


def uc_ascii(s: str) -> str:
    """Upper-case the ASCII letters only."""
    return s.upper() if s.isascii() else s.translate(_UC)


def bytes_cmp(a: str, b: str) -> int:
    """strcmp() order of two strings: -1, 0 or 1."""
    if a == b:
        return 0
    if a.isascii() and b.isascii():
        return -1 if a < b else 1
    x, y = to_bytes(a), to_bytes(b)
    return (x > y) - (x < y)
