"""Time intervals and fixed-point numbers as Exim writes them.

SUMMARY
    read_time("1d2h") -> 93600 and print_time(93600) -> "1d2h" follow Exim's
    readconf_readtime() / readconf_printtime(); read_fixed("1.5") -> 1500
    follows readconf_readfixed() (three decimals, times 1000).

SEE ALSO
    spec 6.15 "Fixed point numbers", 6.16 "Time intervals".
"""
from __future__ import annotations

_UNIT = {"w": 7 * 24 * 3600, "d": 24 * 3600, "h": 3600, "m": 60, "s": 1}


def read_time(s: str, msec: bool = False) -> int | None:
    """Seconds (or milliseconds with msec) for `[<n>w][<n>d][<n>h][<n>m][<n>s]`.

    Returns None for a malformed value.  As in Exim, each component is a
    number followed by a unit letter; with msec a component may be a
    decimal number of seconds ("1.5s").
    """
    if not s:
        return None
    total = 0
    i = 0
    while True:
        if i >= len(s) or not s[i].isdigit():
            return None
        j = i
        while j < len(s) and s[j].isdigit():
            j += 1
        value = int(s[i:j])
        if j < len(s) and s[j] in _UNIT:
            value *= _UNIT[s[j]]
            j += 1
            if msec:
                value *= 1000
        elif msec and j < len(s) and s[j] == ".":
            k = j + 1
            while k < len(s) and s[k].isdigit():
                k += 1
            if k >= len(s) or s[k] != "s":
                return None
            value = int(float(s[i:k]) * 1000)
            j = k + 1
        else:
            return None
        total += value
        if j >= len(s):
            return total
        i = j


def print_time(t: int) -> str:
    """Exim's readconf_printtime(): 93600 -> "1d2h", 0 -> "0s"."""
    out = ""
    if t < 0:
        out = "-"
        t = -t
    s, t = t % 60, t // 60
    m, t = t % 60, t // 60
    h, t = t % 24, t // 24
    d, w = t % 7, t // 7
    for n, unit in ((w, "w"), (d, "d"), (h, "h"), (m, "m")):
        if n > 0:
            out += f"{n}{unit}"
    if s > 0 or out in ("", "-"):
        out += f"{s}s"
    return out


def read_fixed(s: str) -> int | None:
    """A fixed-point number times 1000 ("1.5" -> 1500), or None."""
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
