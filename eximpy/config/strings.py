"""Quoted strings in the configuration: escapes and de-quoting.

SUMMARY
    interpret_escape(), dequote() and read_string() follow Exim's
    string_interpret_escape(), string_dequote() and readconf's read_string():
    a value that starts with a double quote is de-quoted with backslash
    escapes; any other value is taken literally.

SEE ALSO
    spec 6.17 "String values".
"""
from __future__ import annotations

from eximpy.errors import ConfigError, SourcePos

_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v"}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def interpret_escape(s: str, i: int) -> tuple[str, int]:
    """Decode the escape whose backslash is at ``s[i]``.

    Returns the character and the index of the last character consumed (as
    Exim's pointer is left on it).
    """
    i += 1
    if i >= len(s):
        return "\\", i - 1
    c = s[i]
    if c in _OCTAL:
        v = int(c)
        j = i
        while j + 1 < len(s) and j - i < 2 and s[j + 1] in _OCTAL:
            j += 1
            v = v * 8 + int(s[j])
        return chr(v & 0xFF), j
    if c == "x" and i + 1 < len(s) and s[i + 1] in _HEX:
        j = i + 1
        v = int(s[j], 16)
        if j + 1 < len(s) and s[j + 1] in _HEX:
            j += 1
            v = v * 16 + int(s[j], 16)
        return chr(v), j
    return _SIMPLE_ESCAPES.get(c, c), i


def dequote(s: str, i: int = 0) -> tuple[str, int]:
    """Exim's string_dequote(): a word or a "quoted string" from s[i:].

    Returns the text and the index just after what was consumed.
    """
    out = []
    if i >= len(s) or s[i] != '"':
        j = i
        while j < len(s) and not s[j].isspace():
            j += 1
        return s[i:j], j
    i += 1
    while i < len(s) and s[i] != '"':
        if s[i] == "\\":
            c, i = interpret_escape(s, i)
            out.append(c)
        else:
            out.append(s[i])
        i += 1
    if i < len(s):
        i += 1
    return "".join(out), i


def read_string(s: str, name: str, pos: SourcePos | None) -> str:
    """An option's string value: de-quoted if it starts with a quote."""
    if not s.startswith('"'):
        return s
    value, end = dequote(s, 0)
    if end == 1 or s[end - 1] != '"':
        raise ConfigError(
            f"missing quote at end of string value for {name}", pos)
    if end < len(s):
        rest = s[end:]
        comment = " (# is comment only at line start)" if rest.startswith(
            "#") else ""
        raise ConfigError(
            f"extra characters follow string value for {name}{comment}", pos)
    return value
