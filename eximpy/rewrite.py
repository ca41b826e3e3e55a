"""Address rewriting: the `begin rewrite` rules and -brw.

SUMMARY
    rewrite_address(address, flag, rules, expander, qualify) -> str
    rewrite_test(config, address, out) -> exit status        (-brw)

DESCRIPTION
    A rule is (key, replacement, flags) from config.rewrite_rules.  For an
    address of one kind (flag letter: F envelope from, T envelope to, s f t
    c b r for Sender:, From:, To:, Cc:, Bcc:, Reply-To:), the rules whose
    flags select that kind are scanned in order (no selecting flag = all
    kinds; E = F+T; h = all headers).  The key is expanded and matched as a
    one-item address list (so $1.. come from its wildcards or regex); a
    replacement "*" stops rewriting; otherwise the replacement is expanded
    with $local_part, $domain and $0..$n.  A forced failure abandons that
    rule (and stops with "q"); the result must be qualified unless the rule
    has "Q" (then qualify_recipient is added); "R" re-applies a successful
    rule up to ten times; "q" stops after a matching rule.  S (SMTP-time)
    and w (whole address in headers) rules are recognised; w is applied to
    the working address only.

SEE ALSO
    spec chapter 31 "Address rewriting"; Exim rewrite.c.
"""
from __future__ import annotations

from typing import Any, Callable, TextIO

from eximpy.errors import ExpansionError, ExpansionForcedFail

HEADER_FLAGS = "bcfrst"
ALL_TYPE_FLAGS = "EFTbcfhrst"


def rule_applies(flags: str, which: str) -> bool:
    """Whether a rule with these flags applies to addresses of kind ``which``."""
    typeflags = [c for c in flags if c in ALL_TYPE_FLAGS]
    if not typeflags:
        return "S" not in flags
    if which in typeflags:
        return True
    if which in "FT" and "E" in typeflags:
        return True
    if which in HEADER_FLAGS and "h" in typeflags:
        return True
    return False


def _match_key(key: str, address: str, ctx: Any) -> list[str] | None:
    """Match an expanded key against an address; the numeric variables
    ($0, $1, ...) on success, None on no match."""
    import re
    from eximpy import match as M
    if key.startswith("^"):
        m = re.search(key, address)
        if not m:
            return None
        return [address] + [g or "" for g in m.groups()]
    at = address.rfind("@")
    lp, dom = (address[:at], address[at + 1:]) if at >= 0 else (address, "")
    if ";" not in key and not key.startswith(("@", "!", "+")):
        kat = key.rfind("@")
        if kat >= 0:
            klp, kdom = key[:kat], key[kat + 1:]
        else:
            klp, kdom = None, key
        caps: list[str] = []
        if klp is not None:
            if klp.startswith("*"):
                suf = klp[1:]
                if not lp.endswith(suf):
                    return None
                caps.append(lp[:len(lp) - len(suf)])
            elif klp != lp:
                return None
        ldom = dom.lower()
        if kdom.startswith("*"):
            suf = kdom[1:].lower()
            if not ldom.endswith(suf):
                return None
            caps.append(dom[:len(dom) - len(suf)])
        elif "*" not in kdom and kdom.lower() != ldom:
            return None
        elif "*" in kdom:
            rc, _v = M.match_isinlist(ctx, dom, kdom, M.MCL_DOMAIN)
            if rc != M.OK:
                return None
        return [address] + caps
    ctx.nstrings = [address]
    rc, _v = M.match_address_list(ctx, address, key, caseless=True,
                                  expand=False)
    if rc != M.OK:
        return None
    ns = list(ctx.nstrings or [address])
    ns[0] = address
    return ns


def rewrite_address(address: str, which: str, rules: list[Any],
                    make_ctx: Callable[[dict[str, Any]], Any],
                    qualify: str, log: Callable[[str], None] | None = None,
                    whole: list[str] | None = None) -> str:
    """Rewrite one address; ``make_ctx(vars)`` gives an ExpandContext.
    When a "w" rule rewrote it, the full replacement text (phrase and all)
    is appended to ``whole`` (for header lines)."""
    from eximpy.address import AddressError, parse_extract_address
    from eximpy.expand import expand_string
    from eximpy.expand.taint import untaint
    current = address
    for rule in rules:
        if not rule_applies(rule.flags, which):
            continue
        count = 0
        matched = False
        while True:
            at = current.rfind("@")
            lp, dom = (current[:at], current[at + 1:]) if at >= 0 else (current, "")
            ctx = make_ctx({"local_part": lp, "domain": dom})
            try:
                key = expand_string(rule.key, ctx)
            except (ExpansionError, ExpansionForcedFail):
                break
            caps = _match_key(key, current, ctx)
            if caps is None:
                break
            matched = True
            if rule.replacement == "*":
                return current
            ctx.nstrings = caps
            try:
                new = expand_string(rule.replacement, ctx)
            except ExpansionForcedFail:
                break
            except ExpansionError as e:
                if log:
                    log(f"Expansion of {rule.replacement} failed while "
                        f"rewriting: {e}")
                return address
            new = untaint(new).strip()
            full = new if "w" in rule.flags else None
            if "@" not in new:
                if "Q" in rule.flags:
                    new = f"{new}@{qualify}"
                else:
                    if log:
                        log(f"Rewrite of {current} yielded unqualified "
                            f'address "{new}"')
                    break
            try:
                new = parse_extract_address(new, allow_domain_literals=True).address
                if whole is not None:
                    whole.clear()
                    if full is not None:
                        whole.append(full)
            except AddressError as err:
                if log:
                    log(f"Rewrite of {current} yielded unparseable address: "
                        f"{err} in address {new}")
                break
            current = new
            count += 1
            if "R" not in rule.flags or count >= 10:
                break
        if "q" in rule.flags and matched:
            return current
    return current


_TEST_ORDER = (("sender", "s"), ("from", "f"), ("to", "t"), ("cc", "c"),
               ("bcc", "b"), ("reply-to", "r"), ("env-from", "F"),
               ("env-to", "T"))


def rewrite_test(config: Any, text: str, out: TextIO,
                 err: TextIO | None = None) -> int:
    """-brw: show how each kind of address would be rewritten."""
    import sys
    import time
    from eximpy.address import AddressError, parse_extract_address, parse_find_at
    from eximpy.expand import ExpandContext
    err = err or sys.stderr
    main = config.main
    qd = main.get("qualify_domain") or main.get("primary_hostname") or ""
    qr = main.get("qualify_recipient") or qd
    if parse_find_at(text) < 0:
        text = f"{text}@{qd}"
    try:
        e = parse_extract_address(text, allow_domain_literals=True)
    except AddressError as x:
        msg = str(x)
        out.write(f"Syntax error in {text}\n{msg[:1].upper()}{msg[1:]}\n")
        return 0
    address = e.address
    rules = list(getattr(config, "rewrite_rules", []) or [])

    def make_ctx(v: dict[str, Any]) -> Any:
        return ExpandContext(config=config, variables=v)

    def log(msg: str) -> None:
        err.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")

    for name, flag in _TEST_ORDER:
        whole: list[str] = []
        new = rewrite_address(address, flag, rules, make_ctx, qr, log, whole)
        if flag in HEADER_FLAGS and whole:
            shown = whole[0]
        elif flag in HEADER_FLAGS and new != address:
            shown = text[:e.start] + new + text[e.end:]
        elif flag in HEADER_FLAGS:
            shown = text
        else:
            shown = new
        out.write(f"{name:>8}: {shown}\n")
    return 0


_HEADER_FLAG = {"from": "f", "to": "t", "cc": "c", "bcc": "b",
                "reply-to": "r", "sender": "s"}


def split_header_addresses(value: str) -> list[tuple[int, int]]:
    """(start, end) spans of the comma-separated items of an address
    header value (commas inside quotes, comments and <> do not count)."""
    from eximpy.address import parse_find_address_end
    spans = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        if i >= n:
            break
        j = parse_find_address_end(value, i, False)
        spans.append((i, j))
        i = j + 1
    return spans


def rewrite_header(text: str, rules: list[Any],
                   make_ctx: Callable[[dict[str, Any]], Any], qualify: str,
                   log: Callable[[str], None] | None = None) -> str:
    """Rewrite the addresses of one header line ("Name: value\n") whose
    name is From/To/Cc/Bcc/Reply-To/Sender (or their Resent- forms); other
    headers are returned unchanged."""
    from eximpy.address import AddressError, parse_extract_address
    name, colon, value = text.partition(":")
    if not colon:
        return text
    key = name.strip().lower()
    if key.startswith("resent-"):
        key = key[7:]
    flag = _HEADER_FLAG.get(key)
    if flag is None:
        return text
    out = []
    last = 0
    changed = False
    for a, b in split_header_addresses(value):
        item = value[a:b]
        stripped = item.rstrip()
        try:
            e = parse_extract_address(stripped, allow_domain_literals=True)
        except AddressError:
            continue
        if not e.address or "@" not in e.address:
            continue
        whole: list[str] = []
        new = rewrite_address(e.address, flag, rules, make_ctx, qualify, log,
                              whole)
        if new == e.address and not whole:
            continue
        repl = whole[0] if whole else (stripped[:e.start] + new + stripped[e.end:])
        out.append(value[last:a])
        out.append(repl + item[len(stripped):])
        last = b
        changed = True
    if not changed:
        return text
    out.append(value[last:])
    return name + ":" + "".join(out)


def parse_rules(text: str) -> list[Any]:
    """headers_rewrite: a colon-separated list of rules."""
    from eximpy.config.rules import parse_rewrite_rule
    from eximpy.expand.lists import iter_list
    return [parse_rewrite_rule(item, None, False) for item in iter_list(text)]
