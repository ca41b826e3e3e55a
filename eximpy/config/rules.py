"""The `begin retry` and `begin rewrite` sections (and transport rewrites).

SUMMARY
    parse_retry_rule() and parse_rewrite_rule() turn one logical line into a
    RetryConfig or RewriteRule with Exim's checks and error texts
    (readconf_retries(), readconf_retry_error(), readconf_one_rewrite()).

SEE ALSO
    spec chapter 32 "Retry configuration", chapter 31 "Address rewriting".
"""
from __future__ import annotations

from dataclasses import dataclass, field

from eximpy.config.options import dequote, readtime
from eximpy.errors import ConfigError, SourcePos

# Rewrite flag letters (spec 31.10-31.13); E means all envelope fields.
REWRITE_FLAGS = "EFTbcfhrstQqRSw"


@dataclass
class RetryItem:
    """One `F,2h,15m` / `G,16h,1h,1.5` / `H,...` item (times in seconds)."""

    letter: str
    timeout: int
    p1: int
    p2: int = 0            # fixed point * 1000, for G and H


@dataclass
class RetryConfig:
    """One retry rule line: pattern, error, optional senders, items."""

    pattern: str
    error: str
    basic_error: str
    more_errno: int | str | None
    senders: str | None
    items: list[RetryItem] = field(default_factory=list)
    pos: SourcePos | None = None


@dataclass
class RewriteRule:
    """One rewrite rule: key (address pattern or regex), replacement, flags."""

    key: str
    replacement: str
    flags: str
    pos: SourcePos | None = None


def read_time(s: str) -> int | None:
    """A time value, or None when malformed."""
    t = readtime(s)
    return None if t < 0 else t


def read_fixed(s: str) -> int | None:
    """Exim's readconf_readfixed(): "1.5" -> 1500, or None when malformed."""
    if not s or not s[0].isdigit():
        return None
    i = 0
    while i < len(s) and s[i].isdigit():
        i += 1
    value = int(s[:i]) * 1000
    if i < len(s) and s[i] == ".":
        mult = 100
        i += 1
        while i < len(s) and s[i].isdigit():
            value += int(s[i]) * mult
            mult //= 10
            i += 1
    return value if i == len(s) else None


def retry_error_name(text: str) -> tuple[str, int | str | None]:
    """Decode an error name such as `quota_7d` (Exim readconf_retry_error).

    Returns (basic error, extra data); raises ValueError with Exim's text.
    """
    base, _, extra = text.partition("_")
    low = text.lower()
    if base.lower() == "quota":
        if extra:
            t = read_time(extra)
            if t is None:
                raise ValueError("bad time value")
            return "quota", t
        return "quota", None
    if base.lower() == "refused":
        if not extra:
            return "refused", None
        if extra.lower() in ("mx", "a"):
            return "refused", extra.upper()
        raise ValueError('A or MX expected after "refused"')
    if base.lower() == "timeout":
        if not extra:
            return "timeout", None
        if extra.lower() in ("a", "mx", "connect", "connect_a", "connect_mx"):
            return "timeout", extra.lower()
        if extra.lower() == "dns":
            return "timeout", None
        raise ValueError('"A", "MX", or "connect" expected after "timeout"')
    if low[:6] in ("mail_4", "rcpt_4", "data_4"):
        digits = text[6:]
        ok = len(text) == 8 and (
            (digits[0].isdigit() and (digits[1].isdigit() or digits[1] == "x"))
            or digits == "xx")
        if not ok:
            raise ValueError(
                f"{text[:4]}_4 must be followed by xx, dx, or dd, where x is "
                "literal and d is any digit")
        return low[:4] + "_4xx", digits
    if base.lower() == "auth" and extra.lower() == "failed":
        return "auth_failed", None
    if low == "lost_connection":
        return "lost_connection", None
    if low == "tls_required":
        return "tls_required", None
    if low == "lookup":
        return "lookup", None
    if text == "*":
        return "*", None
    raise ValueError(f'unknown or malformed retry error "{text}"')


def _retry_arg(s: str, i: int, fixed: bool, pos: SourcePos) -> tuple[int, int]:
    if i >= len(s) or s[i] != ",":
        raise ConfigError("comma expected", pos)
    i += 1
    while i < len(s) and s[i].isspace():
        i += 1
    start = i
    while i < len(s) and (s[i].isalnum() or (fixed and s[i] == ".")):
        i += 1
    if i < len(s) and not s[i].isspace() and s[i] not in ",;":
        raise ConfigError("comma or semicolon expected", pos)
    word = s[start:i]
    value = read_fixed(word) if fixed else read_time(word)
    return (-1 if value is None else value), i


def parse_retry_rule(line: str, pos: SourcePos) -> RetryConfig:
    """Parse one line of the retry section."""
    pattern, i = dequote(line, 0)
    while i < len(line) and line[i].isspace():
        i += 1
    start = i
    while i < len(line) and line[i].isprintable() and not line[i].isspace():
        i += 1
    if i == start:
        raise ConfigError("missing error type in retry rule", pos)
    error = line[start:i]
    try:
        basic, more = retry_error_name(error)
    except ValueError as e:
        raise ConfigError(str(e), pos) from None
    while i < len(line) and line[i].isspace():
        i += 1
    senders = None
    if line.startswith("senders", i):
        i += 7
        while i < len(line) and line[i].isspace():
            i += 1
        if i >= len(line) or line[i] != "=":
            raise ConfigError('"=" expected after "senders" in retry rule',
                              pos)
        i += 1
        while i < len(line) and line[i].isspace():
            i += 1
        senders, i = dequote(line, i)
    rule = RetryConfig(pattern, error, basic, more, senders, pos=pos)
    while i < len(line) and line[i].isspace():
        i += 1
    while i < len(line):
        letter = line[i].upper()
        i += 1
        timeout, i = _retry_arg(line, i, False, pos)
        p2 = 0
        if letter == "F":
            p1, i = _retry_arg(line, i, False, pos)
        elif letter in "GH":
            p1, i = _retry_arg(line, i, False, pos)
            p2, i = _retry_arg(line, i, True, pos)
        else:
            raise ConfigError("unknown retry rule letter", pos)
        if timeout <= 0 or p1 <= 0 or (letter != "F" and p2 < 1000):
            raise ConfigError("bad parameters for retry rule", pos)
        rule.items.append(RetryItem(letter, timeout, p1, p2))
        while i < len(line) and line[i].isspace():
            i += 1
        if i < len(line) and line[i] == ";":
            i += 1
            while i < len(line) and line[i].isspace():
                i += 1
        elif i < len(line):
            raise ConfigError("semicolon expected", pos)
    return rule


def parse_rewrite_rule(line: str, pos: SourcePos | None,
                       is_global: bool = True) -> RewriteRule:
    """Parse one rewrite rule (global section or a transport's
    headers_rewrite item)."""
    key, i = dequote(line, 0)
    while i < len(line) and line[i].isspace():
        i += 1
    if i >= len(line):
        raise ConfigError("missing rewrite replacement string", pos)
    replacement, i = dequote(line, i)
    flags = []
    for c in line[i:]:
        if c in " \t":
            continue
        if c not in REWRITE_FLAGS:
            raise ConfigError(
                f"unknown rewrite flag character '{c}' (could be missing "
                "quotes round replacement item)", pos)
        if c == "S" and not (key.startswith("^") or key.startswith("\\N^")):
            raise ConfigError(
                "rewrite rule has the S flag but is not a regular expression",
                pos)
        flags.append(c)
    flagset = "".join(flags)
    if not any(c in flagset for c in "EFTbcfhrstS"):
        # No action flags: all headers, and for global rules the envelope
        # too (spec 31.9).  E stands for F and T, h for b c f r s t.
        flagset += "Eh" if is_global else "h"
    return RewriteRule(key, replacement, flagset, pos)
