"""PCRE2-compatible regular expressions on top of Python's re.

DESCRIPTION
    Exim uses PCRE2 (without UTF).  compile_pcre() translates the PCRE
    constructs that Python's re spells differently ((?<name>...), \\k<name>,
    \\g{n}, \\z, \\Z, \\h, POSIX classes, \\Q..\\E, mid-pattern (?i) settings,
    literal "{,n}") and caches compiled patterns; matching is ASCII-only for
    \\w \\d \\s \\b and caseless matching, as in PCRE without UCP.  Not
    translated (they give a regular expression error): \\K, \\p{..}, branch
    reset (?|...), look-behind alternatives of different lengths.  Errors become ExpansionError
    with Exim's 'regular expression error in "<re>": <text> at offset <n>'
    wording (the <text> part follows PCRE2's wording for the common cases).

SEE ALSO
    spec section "Regular expressions" (PCRE2).
"""
from __future__ import annotations

import re

from eximpy.errors import ExpansionError

_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
    "lower": "a-z", "space": r" \t\n\r\f\v", "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f", "word": r"\w", "blank": r" \t", "cntrl": r"\x00-\x1f\x7f",
    "print": r" -~", "graph": r"!-~",
}

_CACHE: dict[tuple[str, int], re.Pattern] = {}


_INLINE_FLAGS = re.compile(r"\(\?([imsx]*)(?:-([imsx]*))?\)")


def translate(p: str) -> str:
    out = []
    i = 0
    n = len(p)
    in_class = False
    # open groups: for each, how many ")" to add when it closes (for inline
    # flag settings turned into scoped groups)
    extra: list[int] = [0]
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            d = p[i + 1]
            if d == "Q":
                j = p.find("\\E", i + 2)
                lit = p[i + 2:] if j < 0 else p[i + 2:j]
                out.append(re.escape(lit))
                i = n if j < 0 else j + 2
                continue
            if not in_class and d == "k" and i + 2 < n and p[i + 2] in "<{'":
                close = {"<": ">", "{": "}", "'": "'"}[p[i + 2]]
                j = p.find(close, i + 3)
                if j > 0:
                    out.append(f"(?P={p[i + 3:j]})")
                    i = j + 1
                    continue
            if not in_class and d == "g" and i + 2 < n and p[i + 2] == "{":
                j = p.find("}", i + 3)
                if j > 0 and p[i + 3:j].isdigit():
                    out.append("\\" + p[i + 3:j])
                    i = j + 1
                    continue
            if not in_class and d == "z":
                out.append(r"\Z")
            elif not in_class and d == "Z":
                out.append(r"(?=\n?\Z)")
            elif d == "h":
                out.append(r"[ \t]" if not in_class else r" \t")
            else:
                out.append(p[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and p.startswith("[:", i):
                j = p.find(":]", i + 2)
                if j > 0:
                    name = p[i + 2:j]
                    neg = name.startswith("^")
                    cls = _POSIX.get(name.lstrip("^"))
                    if cls is not None and not neg:
                        out.append(cls)
                        i = j + 2
                        continue
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if p.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < n and p[i] == "]":
                out.append(r"\]")
                i += 1
            continue
        if c == "(" and p.startswith("(?<", i) and i + 3 < n and p[i + 3] not in "=!":
            out.append("(?P<")
            extra.append(0)
            i += 3
            continue
        if c == "(":
            m = _INLINE_FLAGS.match(p, i)
            if m and (m.group(1) or m.group(2)):
                if i == 0 and not m.group(2):
                    out.append(m.group(0))
                else:
                    # PCRE applies a mid-pattern (?i) to the rest of the
                    # group; Python wants a scoped (?i:...) group.
                    on, off = m.group(1), m.group(2) or ""
                    out.append(f"(?{on}-{off}:" if off else f"(?{on}:")
                    extra[-1] += 1
                i = m.end()
                continue
            extra.append(0)
            out.append(c)
            i += 1
            continue
        if c == "{" and p.startswith("{,", i):
            # PCRE2 10.42 reads "{,n}" as literal text, Python as {0,n}
            out.append("\\{")
            i += 1
            continue
        if c == ")":
            k = extra.pop() if len(extra) > 1 else 0
            out.append(")" * k)
            out.append(c)
            i += 1
            continue
        out.append(c)
        i += 1
    out.append(")" * extra[0])
    return "".join(out)


_MSGS = [
    ("missing ), unterminated subpattern", "missing closing parenthesis"),
    ("unbalanced parenthesis", "unmatched closing parenthesis"),
    ("unterminated character set", "missing terminating ] for character class"),
    ("nothing to repeat", "quantifier does not follow a repeatable item"),
    ("multiple repeat", "quantifier does not follow a repeatable item"),
    ("bad escape (end of pattern)", "\\ at end of pattern"),
    ("bad character range", "range out of order in character class"),
]


def compile_pcre(pattern: str, caseless: bool = False) -> re.Pattern:
    key = (pattern, caseless)
    r = _CACHE.get(key)
    if r is not None:
        return r
    try:
        # PCRE without UTF/UCP: \w, \d, \s, \b and caseless matching are
        # ASCII-only, as Python's ASCII flag makes them.
        flags = re.ASCII | (re.IGNORECASE if caseless else 0)
        r = re.compile(translate(pattern), flags)
    except re.error as e:
        msg = e.msg
        off = len(pattern) if e.pos is None else e.pos
        for py, pc in _MSGS:
            if msg.startswith(py):
                msg = pc
                if pc in ("missing closing parenthesis",
                          "missing terminating ] for character class",
                          "\\ at end of pattern"):
                    off = len(pattern)
                elif pc == "unmatched closing parenthesis":
                    off = e.pos if e.pos is not None else off
                break
        raise ExpansionError(f'regular expression error in "{pattern}": {msg} at offset '
                             f'{off}')
    if len(_CACHE) > 5000:
        _CACHE.clear()
    _CACHE[key] = r
    return r


def match_setup(ctx, rx: re.Pattern, subject: str) -> bool:
    """Exim's regex_match_and_setup(re, subject, 0, -1): on a match set
    $0..$n."""
    m = rx.search(subject)
    if not m:
        return False
    ns = [subject[m.start():m.end()]]
    for k in range(1, (rx.groups or 0) + 1):
        g = m.group(k)
        ns.append(g if g is not None else "")
    # Exim sets only up to the highest group that took part in the match
    last = 0
    for k in range(1, (rx.groups or 0) + 1):
        if m.start(k) >= 0:
            last = k
    ctx.nstrings = ns[:last + 1]
    return True
