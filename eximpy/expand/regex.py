"""PCRE2-compatible regular expressions on top of Python's re and regex.

DESCRIPTION
    Exim 4.96 uses PCRE2 10.42 (without UTF).  compile_pcre() translates the
    PCRE constructs that Python spells differently ((?<name>...),
    \\k<name>, \\g{n} and \\g{-n}, \\z, \\Z, \\h \\H \\v \\V \\R \\N \\C,
    \\x{hh}, \\o{ooo}, POSIX classes, \\Q..\\E, mid-pattern (?i) settings,
    literal "{,n}", (?(<name>)...) conditions) and caches compiled
    patterns; matching is ASCII-only for \\w \\d \\s \\b and caseless
    matching, as in PCRE without UCP, while \\p{..}/\\P{..} use Unicode
    properties of the (Latin-1) code points, as PCRE does.  PCRE without
    UTF matches bytes: patterns and subjects are used in their
    one-character-per-byte view (bytestr.to_l1) and the Pcre object that
    compile_pcre() returns turns matched text back (see Pcre).

    Also: (?'name'..) groups, \\g<n>/\\g'n' subroutine calls, forward and
    octal-or-group \\N references as PCRE reads them, (?J), PCRE2's
    backtracking verbs that regex has ((*SKIP) (*FAIL) (*F) (*PRUNE)), and
    start-of-pattern options ((*UTF) (*NO_JIT) (*LIMIT_MATCH=n) ...), which
    are dropped; (?U) and (?n) at the start of the pattern.  Not done:
    (?U) and (?n) elsewhere, (?xx), (*ACCEPT), (*COMMIT),
    (*THEN), (*MARK).

    Two engines: a pattern is compiled with the standard library's re
    (fastest) unless it uses something only the third-party regex module
    has (\\K, \\p{..}, branch reset (?|...), recursion (?R) (?1) (?&n),
    \\G, \\X, negated POSIX classes, look-behind whose alternatives differ
    in length) or re refuses it; then regex compiles it.  PCRE2 10.42's
    rule that every branch of a look-behind has a fixed length is checked
    here, since regex allows any look-behind.  Errors become ExpansionError
    with Exim's 'regular expression error in "<re>": <text> at offset <n>'
    wording (the <text> part follows PCRE2's wording for the common cases).

SEE ALSO
    spec section "Regular expressions" (PCRE2).
"""
from __future__ import annotations

import re
from typing import Iterator
import warnings

import regex as _regex

from eximpy.errors import ExpansionError
from eximpy.expand.bytestr import from_l1, to_l1

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import re._parser as _sre_parse        # Python 3.11+
    except ImportError:  # pragma: no cover
        import sre_parse as _sre_parse

_POSIX = {
    "ascii": r"\x00-\x7f", "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
    "lower": "a-z", "space": r" \t\n\r\f\v", "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f", "word": r"\w", "blank": r" \t", "cntrl": r"\x00-\x1f\x7f",
    "print": r" -~", "graph": r"!-~",
}

_CACHE: dict[tuple[str, bool], "Pcre"] = {}

# Escapes PCRE has and Python's re has not, outside a character class.
_PLAIN_ESCAPES = {
    "h": "[\\t \\xa0]", "H": "[^\\t \\xa0]",
    "v": "[\\n\\x0b\\f\\r\\x85]", "V": "[^\\n\\x0b\\f\\r\\x85]",
    "R": "(?>\\r\\n|[\\n\\x0b\\f\\r\\x85])", "N": "[^\\n]", "C": "(?s:.)",
}
# ... and inside one.
_CLASS_ESCAPES = {"h": "\\t \\xa0", "v": "\\n\\x0b\\f\\r\\x85"}
_VERB = re.compile(r"\(\*([A-Z_]*)(?:[=:][^)]*)?\)")
# PCRE2 start-of-pattern options that change nothing eximpy can see.
_START_OPTS = frozenset(("LIMIT_MATCH", "LIMIT_HEAP", "LIMIT_DEPTH", "LIMIT_RECURSION",
                         "NO_JIT", "NO_START_OPT", "NO_AUTO_POSSESS", "NO_DOTSTAR_ANCHOR",
                         "CR", "LF", "CRLF", "ANYCRLF", "ANY", "NUL", "BSR_ANYCRLF",
                         "BSR_UNICODE", "NOTEMPTY", "NOTEMPTY_ATSTART", "UTF", "UCP"))
# Backtracking verbs the regex module has.
_REGEX_VERBS = frozenset(("SKIP", "FAIL", "F", "PRUNE"))
_QUANT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
# Escapes only the regex module knows.
_REGEX_ESCAPES = frozenset("KGX")


class PcreError(Exception):
    """A pattern PCRE2 refuses: (message, offset) in PCRE2's words."""

    def __init__(self, msg: str, offset: int) -> None:
        super().__init__(msg)
        self.msg, self.offset = msg, offset


def _prop(p: str, i: int) -> tuple[str, int]:
    """\\p / \\P at p[i] (the backslash): (text for regex, index after)."""
    n = len(p)
    if i + 2 >= n:
        raise PcreError("malformed \\P or \\p sequence", n)
    if p[i + 2] == "{":
        j = p.find("}", i + 3)
        if j < 0:
            raise PcreError("malformed \\P or \\p sequence", n)
        name = p[i + 3:j]
        end = j + 1
    else:
        name = p[i + 2]
        end = i + 3
    text = f"\\{p[i + 1]}{{{name}}}"
    try:
        _regex.compile(text)
    except _regex.error:
        raise PcreError("unknown property after \\P or \\p", end)
    return text, end


_INLINE_FLAGS = re.compile(r"\(\?([imsx]*)(?:-([imsx]*))?\)")
_LEAD_FLAGS = re.compile(r"\(\?([imsxnU]+)\)")


def translate(p: str, pos_map: list | None = None) -> tuple[str, bool]:
    """PCRE pattern -> (Python pattern, needs the regex module).  With
    ``pos_map`` (a list), it is filled with (start in the output, index in
    the pattern) pairs, for original_offset()."""
    out: list[str] = []
    src: list[int] = []

    def emit(text: str) -> None:
        out.append(text)
        src.append(i)

    i = 0
    n = len(p)
    lead = _verbs_end(p, 0, len(p))      # after any (*VERB) start options
    ungreedy = nocap = False
    total = _count_groups(p)
    in_class = False
    class_start = 0
    class_prop = False
    need = False
    ngroups = 0
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
                emit(re.escape(lit))
                i = n if j < 0 else j + 2
                continue
            if d in "pP":
                text, i = _prop(p, i)
                need = True
                if in_class:
                    class_prop = True
                    emit(text)
                else:
                    emit(f"(?u-i:{text})")
                continue
            if d in "xo" and i + 2 < n and p[i + 2] == "{":
                j = p.find("}", i + 3)
                if j > 0:
                    try:
                        v = int(p[i + 3:j], 16 if d == "x" else 8)
                    except ValueError:
                        v = -1
                    if 0 <= v <= 0xff:
                        emit(f"\\x{v:02x}")
                        i = j + 1
                        continue
                    if v > 0xff:
                        raise PcreError("character code point value in \\x{} or \\o{} is "
                                        "too large", j)
            if not in_class and d == "k" and i + 2 < n and p[i + 2] in "<{'":
                close = {"<": ">", "{": "}", "'": "'"}[p[i + 2]]
                j = p.find(close, i + 3)
                if j > 0:
                    emit(f"(?P={p[i + 3:j]})")
                    i = j + 1
                    continue
            if not in_class and d == "g" and i + 2 < n and p[i + 2] in "<'":
                close = ">" if p[i + 2] == "<" else "'"
                j = p.find(close, i + 3)
                if j > 0:
                    ref = p[i + 3:j]
                    need = True           # a subroutine call: regex's (?n) / (?&name)
                    emit(f"(?{ref})" if ref.lstrip("+-").isdigit() else f"(?&{ref})")
                    i = j + 1
                    continue
            if not in_class and d == "g":
                m = re.compile(r"\{(-?\d+)\}|(-?\d+)|\{([A-Za-z_]\w*)\}").match(p, i + 2)
                if m:
                    if m.group(3):
                        emit(f"(?P={m.group(3)})")
                    else:
                        k = int(m.group(1) or m.group(2))
                        if k < 0:
                            k = ngroups + 1 + k
                        emit(f"(?:\\{k})")
                    i = m.end()
                    continue
            if d == "E":
                i += 2                    # \E without \Q: nothing
                continue
            if not in_class and d in "123456789":
                j = i + 1
                while j < n and p[j].isdigit():
                    j += 1
                num = int(p[i + 1:j])
                if num < 10 or num <= total:
                    if num > total:
                        raise PcreError("reference to non-existent subpattern", j - 1)
                    if num > ngroups:
                        need = True       # a forward reference: regex has them
                    emit(f"(?:\\{num})")
                    i = j
                    continue
                k = i + 1                 # not a group: up to 3 octal digits
                while k < min(j, i + 4) and p[k] in "01234567":
                    k += 1
                if k > i + 1:
                    emit(f"\\x{int(p[i + 1:k], 8) & 0xff:02x}")
                    i = k
                    continue
            if d == "c":
                if i + 2 >= n:
                    raise PcreError("\\c at end of pattern", n)
                emit(f"\\x{ord(p[i + 2].upper()) ^ 0x40:02x}")
                i += 3
                continue
            if in_class and d in "dDwWsShHvV" and p.startswith("-", i + 2) \
                    and i + 3 < n and p[i + 3] != "]":
                raise PcreError("invalid range in character class", i + 2)
            if d == "K" and not in_class and _in_lookaround(p, i):
                raise PcreError("\\K is not allowed in lookarounds (but see "
                                "PCRE2_EXTRA_ALLOW_LOOKAROUND_BSK)", n)
            if d in _REGEX_ESCAPES:
                need = True
                emit(p[i:i + 2])
            elif not in_class and d == "z":
                emit(r"\Z")
            elif not in_class and d == "Z":
                emit(r"(?=\n?\Z)")
            elif not in_class and d in _PLAIN_ESCAPES:
                emit(_PLAIN_ESCAPES[d])
            elif in_class and d in _CLASS_ESCAPES:
                emit(_CLASS_ESCAPES[d])
            else:
                emit(p[i:i + 2])
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
                        emit(cls)
                        i = j + 2
                        continue
                    if cls is not None:
                        need = True          # regex knows [:^name:]
                        emit(p[i:j + 2])
                        i = j + 2
                        continue
                    if re.fullmatch(r"\^?[a-z]+", name):
                        raise PcreError("unknown POSIX class name", i + 2)
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
                if class_prop:
                    # \p inside a class: Unicode properties for the class
                    out.insert(class_start, "(?u:")
                    src.insert(class_start, src[class_start] if class_start < len(src) else i)
                    emit("])")
                    class_prop = False
                    i += 1
                    continue
            emit(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            class_start = len(out)
            if p.startswith("[^", i):
                emit("[^")
                i += 2
            else:
                emit("[")
                i += 1
            if i < n and p[i] == "]":
                emit(r"\]")
                i += 1
            continue
        if c == "(" and p.startswith("(?<", i) and i + 3 < n and p[i + 3] not in "=!":
            emit("(?P<")
            extra.append(0)
            ngroups += 1
            i += 3
            continue
        if c == "(" and p.startswith("(?'", i):
            j = p.find("'", i + 3)
            if j > 0:
                emit(f"(?P<{p[i + 3:j]}>")
                extra.append(0)
                ngroups += 1
                i = j + 1
                continue
        if c == "(" and p.startswith("(*", i):
            m = _VERB.match(p, i)
            if m and m.group(1) in _START_OPTS and i == _verbs_end(p, 0, i):
                i = m.end()               # a start-of-pattern option: no effect here
                continue
            if m and m.group(1) in _REGEX_VERBS:
                need = True
                emit(m.group(0))
                i = m.end()
                continue
        if c == "(" and p.startswith("(?(", i):
            m = re.compile(r"\(\?\((?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')\)").match(p, i)
            if m:
                emit(f"(?({m.group(1) or m.group(2)})")
                extra.append(0)
                i = m.end()
                continue
        if c == "(" and p.startswith("(?J)", i):
            need = True                   # duplicate names: regex allows them
            i += 4
            continue
        if c == "(" and i == lead:
            m = _LEAD_FLAGS.match(p, i)
            if m and ("U" in m.group(1) or "n" in m.group(1)):
                # (?U) and (?n) at the start: translated for the whole pattern
                ungreedy = ungreedy or "U" in m.group(1)
                nocap = nocap or "n" in m.group(1)
                rest = m.group(1).replace("U", "").replace("n", "")
                if rest:
                    emit(f"(?{rest})")
                i = lead = m.end()
                continue
        if c == "(" and nocap and not p.startswith(("(?", "(*"), i):
            extra.append(0)
            emit("(?:")
            i += 1
            continue
        if c == "(":
            m = _INLINE_FLAGS.match(p, i)
            if m and (m.group(1) or m.group(2)):
                if i == 0 and not m.group(2):
                    emit(m.group(0))
                else:
                    # PCRE applies a mid-pattern (?i) to the rest of the
                    # group; Python wants a scoped (?i:...) group.
                    on, off = m.group(1), m.group(2) or ""
                    emit(f"(?{on}-{off}:" if off else f"(?{on}:")
                    extra[-1] += 1
                i = m.end()
                continue
            if p.startswith("(?|", i) or p.startswith("(?R", i) or p.startswith("(?&", i) \
                    or p.startswith("(?P>", i) or p.startswith("(?(?", i) \
                    or (p.startswith("(?", i) and i + 2 < n and p[i + 2] in "0123456789+-"
                        and not _INLINE_FLAGS.match(p, i)):
                need = True
            if not p.startswith("(?", i) or p.startswith("(?P<", i) or p.startswith("(?'", i):
                ngroups += 1
            extra.append(0)
            emit(c)
            i += 1
            continue
        if c == "{":
            m = _QUANT.match(p, i)
            if m:
                for g in (1, 2):
                    if m.group(g) and int(m.group(g)) > 65535:
                        raise PcreError("number too big in {} quantifier", m.end(g))
        if c == "{" and p.startswith("{,", i):
            # PCRE2 10.42 reads "{,n}" as literal text, Python as {0,n}
            emit("\\{")
            i += 1
            continue
        if c == ")":
            k = extra.pop() if len(extra) > 1 else 0
            emit(")" * k)
            emit(c)
            i += 1
            continue
        if ungreedy and c in "*+?{":
            q = c
            if c == "{":
                mq = _QUANT.match(p, i)
                q = mq.group(0) if mq else None
            if q is not None:
                j = i + len(q)
                emit(q)
                if j < n and p[j] == "?":
                    j += 1                 # (?U): "x*?" is greedy
                elif j < n and p[j] == "+":
                    emit("+")              # possessive stays possessive
                    j += 1
                else:
                    emit("?")
                i = j
                continue
        emit(c)
        i += 1
    emit(")" * extra[0])
    if pos_map is not None:
        k = 0
        for piece, at in zip(out, src):
            pos_map.append((k, at, len(piece)))
            k += len(piece)
    return "".join(out), need


def _outside(p: str, i: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of each character of ``p`` from ``i`` on that is
    structure: not escaped, not quoted by \\Q...\\E, not inside a [...]
    class (the scan the helpers below share)."""
    n = len(p)
    in_class = False
    while i < n:
        c = p[i]
        if c == "\\":
            if p.startswith("\\Q", i):
                j = p.find("\\E", i + 2)
                i = n if j < 0 else j + 2
                continue
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if p.startswith("[]", i) or p.startswith("[^]", i):
                i += 2 if p[i + 1] == "]" else 3
                continue
        else:
            yield i, c
        i += 1


def _count_groups(p: str) -> int:
    """How many capturing groups a pattern has."""
    k = 0
    for i, c in _outside(p):
        if c != "(":
            continue
        if not p.startswith("(?", i) and not p.startswith("(*", i):
            k += 1
        elif p.startswith(("(?<", "(?P<", "(?'"), i) and \
                not p.startswith(("(?<=", "(?<!"), i):
            k += 1
    return k


def original_offset(pos_map: list, pos: int) -> int:
    """The pattern index for index ``pos`` of translate()'s output."""
    best = 0
    for start, at, ln in pos_map:
        if start > pos:
            break
        best = at + (pos - start if pos - start < ln else 0)
    return best


def _verbs_end(p: str, i: int, stop: int) -> int:
    """Where the run of (*VERB) items starting at p[i] ends (before stop)."""
    while i < stop:
        m = _VERB.match(p, i)
        if not m:
            break
        i = m.end()
    return i


_LOOKAROUND = re.compile(r"\(\?<?[=!]")


def _in_lookaround(p: str, pos: int) -> bool:
    """Is p[pos] inside a look-ahead or look-behind group?"""
    for m in _LOOKAROUND.finditer(p, 0, pos):
        k = m.start() - 1
        while k >= 0 and p[k] == "\\":
            k -= 1
        if (m.start() - 1 - k) % 2:
            continue                      # an escaped "("
        if _group_end(p, m.start()) > pos:
            return True
    return False


def _group_end(p: str, i: int) -> int:
    """Index of the ")" closing the group opened at p[i] (or len(p))."""
    depth = 0
    for k, c in _outside(p, i):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return k
    return len(p)


def _branches(body: str) -> list[str]:
    """The top-level alternatives of a group body."""
    out = []
    depth = 0
    start = 0
    for i, c in _outside(body):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    return out


_LOOKBEHIND = re.compile(r"\(\?<[=!]")


def check_lookbehinds(p: str) -> None:
    """PCRE2 10.42: each branch of a look-behind must have a fixed length
    (the regex module would accept any)."""
    for m in _LOOKBEHIND.finditer(p):
        start = m.start()
        # not inside a class or an escape: count backslashes before it
        k = start - 1
        while k >= 0 and p[k] == "\\":
            k -= 1
        if (start - 1 - k) % 2:
            continue
        end = _group_end(p, start)
        for alt in _branches(p[m.end():end]):
            if re.search(r"\\[1-9gk]|\(\?[R&P0-9]", alt):
                continue        # back references, recursion: not checked
            try:
                t, _need = translate(alt)
                lo, hi = _sre_parse.parse(t, re.ASCII).getwidth()
            except (re.error, PcreError, RecursionError, OverflowError):
                continue
            if lo != hi:
                raise PcreError("lookbehind assertion is not fixed length", start)


_MSGS = [
    ("missing ), unterminated subpattern", "missing closing parenthesis"),
    ("unbalanced parenthesis", "unmatched closing parenthesis"),
    ("unterminated character set", "missing terminating ] for character class"),
    ("nothing to repeat", "quantifier does not follow a repeatable item"),
    ("multiple repeat", "quantifier does not follow a repeatable item"),
    ("bad escape (end of pattern)", "\\ at end of pattern"),
    ("bad character range", "range out of order in character class"),
    ("min repeat greater than max repeat", "numbers out of order in {} quantifier"),
    ("redefinition of group name",
     "two named subpatterns have the same name (PCRE2_DUPNAMES not set)"),
    ("unknown group name", "reference to non-existent subpattern"),
    ("invalid group reference", "reference to non-existent subpattern"),
    ("missing ), unterminated comment", "missing ) after (?# comment"),
    ("missing -, : or )", "missing closing parenthesis"),
    ("bad character in group name", "syntax error in subpattern name (missing terminator?)"),
]


_REGEX_MSGS = [
    ("missing )", "missing closing parenthesis"),
    ("unbalanced parenthesis", "unmatched closing parenthesis"),
    ("unterminated character set", "missing terminating ] for character class"),
    ("nothing to repeat", "quantifier does not follow a repeatable item"),
    ("multiple repeat", "quantifier does not follow a repeatable item"),
    ("bad escape (end of pattern)", "\\ at end of pattern"),
    ("min repeat greater than max repeat", "numbers out of order in {} quantifier"),
    ("unknown extension", "unrecognized character after (? or (?-"),
    ("invalid group reference", "reference to non-existent subpattern"),
    ("unknown group", "reference to non-existent subpattern"),
]


def _error(pattern: str, msg: str, off: int) -> ExpansionError:
    return ExpansionError(f'regular expression error in "{pattern}": {msg} at offset '
                          f'{off}')


def _re_error(pattern: str, e: re.error, pos_map: list | None = None) -> ExpansionError:
    msg = e.msg
    off = len(pattern) if e.pos is None else e.pos
    if pos_map and e.pos is not None:
        off = original_offset(pos_map, e.pos)
    for py, pc in _MSGS:
        if msg.startswith(py):
            msg = pc
            if pc in ("missing closing parenthesis",
                      "missing terminating ] for character class",
                      "\\ at end of pattern", "missing ) after (?# comment"):
                off = len(pattern)
            elif py == "bad character in group name":
                name = e.msg.split("'")[1] if "'" in e.msg else ""
                if name[:1].isdigit():
                    msg = "subpattern name must start with a non-digit"
            elif pc == "unmatched closing parenthesis":
                off = e.pos if e.pos is not None else off
            elif pc.startswith("numbers out of order"):
                j = pattern.find("}", off)
                off = j if j >= 0 else off
            elif py == "redefinition of group name":
                off = off + len(e.msg.split("'")[1]) + 1
            elif py == "unknown group name":
                off = off - 1
            elif py == "bad character range":
                rng = e.msg[len("bad character range "):]
                if rng.startswith("\\"):
                    msg = "invalid range in character class"
                    off = off + 2
                else:
                    off = off + len(rng) - 1
            break
    return _error(pattern, msg, off)


def _regex_error(pattern: str, e) -> ExpansionError:
    msg = e.msg
    off = len(pattern) if e.pos is None else e.pos
    for py, pc in _REGEX_MSGS:
        if msg.startswith(py):
            msg = pc
            if pc in ("missing closing parenthesis",
                      "missing terminating ] for character class",
                      "\\ at end of pattern"):
                off = len(pattern)
            elif pc.startswith("numbers out of order"):
                j = pattern.find("}", off)
                off = j if j >= 0 else off
            break
    return _error(pattern, msg, off)


class ByteMatch:
    """A match found in the one-character-per-byte view of a non-ASCII
    subject: groups come back as eximpy strings; start(), end() and span()
    are byte offsets."""
    __slots__ = ("m",)

    def __init__(self, m) -> None:
        self.m = m

    def group(self, *k):
        g = self.m.group(*k)
        if len(k) > 1:
            return tuple(None if x is None else from_l1(x) for x in g)
        return None if g is None else from_l1(g)

    def __getitem__(self, k):
        return self.group(k)

    def groups(self, default=None):
        return tuple(default if x is None else from_l1(x) for x in self.m.groups())

    def groupdict(self, default=None):
        return {k: (default if x is None else from_l1(x))
                for k, x in self.m.groupdict().items()}

    def start(self, k=0):
        return self.m.start(k)

    def end(self, k=0):
        return self.m.end(k)

    def span(self, k=0):
        return self.m.span(k)

    @property
    def lastindex(self):
        return self.m.lastindex

    @property
    def lastgroup(self):
        return self.m.lastgroup

    @property
    def re(self):
        return self.m.re


class Pcre:
    """A compiled PCRE2 pattern (no UTF mode: it matches bytes).

    ``rx`` is the Python pattern, compiled from the one-character-per-byte
    (Latin-1) view of the pattern and used on that view of the subject
    (bytestr.to_l1), which for an ASCII subject is the subject itself.
    search/match/fullmatch/finditer take eximpy strings; for a non-ASCII
    subject they return ByteMatch objects (groups as eximpy strings,
    offsets in bytes; ``pos`` and ``endpos`` are byte offsets too).
    Hot paths test ``subject.isascii()`` and use ``rx`` directly.
    """
    __slots__ = ("rx", "groups", "pattern", "groupindex")

    def __init__(self, rx, pattern: str) -> None:
        self.rx = rx
        self.groups = rx.groups
        self.groupindex = rx.groupindex
        self.pattern = pattern

    def search(self, s: str, pos: int = 0, endpos: int = 2 ** 62):
        if s.isascii():
            return self.rx.search(s, pos, endpos)
        m = self.rx.search(to_l1(s), pos, endpos)
        return None if m is None else ByteMatch(m)

    def match(self, s: str, pos: int = 0, endpos: int = 2 ** 62):
        if s.isascii():
            return self.rx.match(s, pos, endpos)
        m = self.rx.match(to_l1(s), pos, endpos)
        return None if m is None else ByteMatch(m)

    def fullmatch(self, s: str, pos: int = 0, endpos: int = 2 ** 62):
        if s.isascii():
            return self.rx.fullmatch(s, pos, endpos)
        m = self.rx.fullmatch(to_l1(s), pos, endpos)
        return None if m is None else ByteMatch(m)

    def finditer(self, s: str, pos: int = 0, endpos: int = 2 ** 62):
        if s.isascii():
            return self.rx.finditer(s, pos, endpos)
        return (ByteMatch(m) for m in self.rx.finditer(to_l1(s), pos, endpos))


def compile_pcre(pattern: str, caseless: bool = False) -> Pcre:
    """The compiled pattern (a Pcre: search, groups, group, start, end,
    finditer behave as re's, on bytes); raises ExpansionError."""
    key = (pattern, caseless)
    r = _CACHE.get(key)
    if r is not None:
        return r
    if pattern.isascii():
        rx = _compile(pattern, caseless)
    else:
        try:
            rx = _compile(to_l1(pattern), caseless)
        except ExpansionError as e:
            raise ExpansionError(from_l1(str(e)))
    r = Pcre(rx, pattern)
    if len(_CACHE) > 5000:
        _CACHE.clear()
    _CACHE[key] = r
    return r


def _compile(pattern: str, caseless: bool):
    r = None
    pos_map: list = []
    try:
        t, need = translate(pattern, pos_map)
    except PcreError as e:
        raise _error(pattern, e.msg, e.offset)
    if not need:
        try:
            # PCRE without UTF/UCP: \w, \d, \s, \b and caseless matching are
            # ASCII-only, as Python's ASCII flag makes them.
            r = re.compile(t, re.ASCII | (re.IGNORECASE if caseless else 0))
        except re.error as e:
            if not e.msg.startswith(("bad escape", "unknown extension", "look-behind",
                                     "cannot refer to group defined in the same lookbehind")):
                raise _re_error(pattern, e, pos_map)
            # perhaps something only the regex module knows: tried below
    if r is None:
        try:
            check_lookbehinds(pattern)
        except PcreError as e:
            raise _error(pattern, e.msg, e.offset)
        try:
            r = _regex.compile(t, _regex.ASCII | _regex.VERSION0
                               | (_regex.IGNORECASE if caseless else 0))
        except _regex.error as e:
            raise _regex_error(pattern, e)
    return r


def match_setup(ctx, rx, subject: str) -> bool:
    """Exim's regex_match_and_setup(re, subject, 0, -1): on a match set
    $0..$n."""
    m = rx.search(subject)
    if not m:
        return False
    ns = [m.group(0)]
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
