"""RFC 2822 address extraction for ${address:}, ${domain:}, ${addresses:}.

DESCRIPTION
    extract_address(text) is a small version of Exim's
    parse_extract_address(): it accepts "phrase <local@domain>",
    "local@domain (comment)", quoted local parts and source routes, and
    returns (address, offset of the domain or 0) or None when the text is
    not a valid address.  split_addresses() cuts a header-style list at
    commas outside quotes, comments and angle brackets.

SEE ALSO
    spec sections "Expansion operators" (address, domain, addresses).
"""
from __future__ import annotations

_SPACE = " \t\n\r"


def _strip_comments(s: str) -> str | None:
    out = []
    i = 0
    n = len(s)
    depth = 0
    inq = False
    while i < n:
        c = s[i]
        if inq:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(s[i + 1])
                i += 1
            elif c == '"':
                inq = False
        elif depth:
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    out.append(" ")
        elif c == "(":
            depth = 1
        elif c == '"':
            inq = True
            out.append(c)
        else:
            out.append(c)
        i += 1
    if depth or inq:
        return None
    return "".join(out)


def _tokens_ok(addr: str) -> str | None:
    """Collapse white space around '.' and '@' in an addr-spec; None if two
    words follow each other."""
    out = []
    i = 0
    n = len(addr)
    prev_word = False
    while i < n:
        c = addr[i]
        if c in _SPACE:
            i += 1
            continue
        if c == '"':
            j = i + 1
            while j < n and addr[j] != '"':
                if addr[j] == "\\":
                    j += 1
                j += 1
            word = addr[i:j + 1]
            i = j + 1
            if prev_word:
                return None
            out.append(word)
            prev_word = True
            continue
        if c in ".@":
            out.append(c)
            prev_word = False
            i += 1
            continue
        if c == "[":
            j = addr.find("]", i)
            if j < 0:
                return None
            out.append(addr[i:j + 1])
            i = j + 1
            prev_word = True
            continue
        j = i
        while j < n and addr[j] not in _SPACE and addr[j] not in '.@"[':
            if addr[j] in "<>,;:()\\":
                return None
            j += 1
        if prev_word:
            return None
        out.append(addr[i:j])
        prev_word = True
        i = j
    return "".join(out)


def _domain_start(addr: str) -> int:
    inq = False
    last = -1
    for k, c in enumerate(addr):
        if c == '"':
            inq = not inq
        elif c == "@" and not inq:
            last = k
    return last + 1 if last >= 0 else 0


def extract_address(text: str, allow_group: bool = False) -> tuple[str, int] | None:
    if any(ord(c) < 0x20 and c not in "\t\n\r" or ord(c) == 0x7f for c in text):
        return None
    s = _strip_comments(text)
    if s is None:
        return None
    s = s.strip(_SPACE)
    if allow_group:
        # "group: a@b" -> "a@b"; trailing ';' ends a group
        k = _find_unquoted(s, ":")
        lt = _find_unquoted(s, "<")
        if k >= 0 and (lt < 0 or k < lt) and "@" not in s[:k]:
            s = s[k + 1:].strip(_SPACE)
        if s.endswith(";"):
            s = s[:-1].strip(_SPACE)
        if not s:
            return None
    lt = _find_unquoted(s, "<")
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            return None
        if s[gt + 1:].strip(_SPACE):
            return None
        if not _phrase_ok(s[:lt]):
            return None
        inner = s[lt + 1:gt].strip(_SPACE)
        if inner.startswith("@"):
            k = inner.find(":")
            if k < 0:
                return None
            inner = inner[k + 1:]
        if not inner:
            return "", 0
        addr = _tokens_ok(inner)
    else:
        if not s:
            return None
        addr = _tokens_ok(s)
    if addr is None or addr.startswith("@") or addr.endswith("@") or addr.endswith("."):
        return None
    d = _domain_start(addr)
    if d > 0:
        dom = addr[d:]
        if not dom.startswith("[") and (".." in dom or dom.startswith(".")):
            return None
    return addr, d


def _phrase_ok(phrase: str) -> bool:
    """The display name before <...>: words and quoted strings only."""
    inq = False
    k = 0
    while k < len(phrase):
        c = phrase[k]
        if inq:
            if c == "\\":
                k += 1
            elif c == '"':
                inq = False
        elif c == '"':
            inq = True
        elif c in ",;:[]@<>":
            return False
        k += 1
    return not inq


def _find_unquoted(s: str, ch: str) -> int:
    inq = False
    for k, c in enumerate(s):
        if c == '"':
            inq = not inq
        elif c == ch and not inq:
            return k
    return -1


def split_addresses(s: str) -> list[str]:
    out = []
    cur = []
    inq = False
    depth = 0
    angle = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if inq:
            if c == "\\" and i + 1 < n:
                cur.append(c)
                i += 1
                c = s[i]
            elif c == '"':
                inq = False
        elif c == '"':
            inq = True
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif c == "<" and not depth:
            angle += 1
        elif c == ">" and angle and not depth:
            angle -= 1
        elif c == "," and not depth and not angle:
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    out.append("".join(cur))
    return out
