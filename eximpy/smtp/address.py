"""RFC 822/821 address extraction for MAIL, RCPT and VRFY arguments.

SUMMARY
    extract_address(mailbox, allow_null, options) -> (address, domain_offset)
    AddressError(message)          Exim's parse error text
    ParseOptions(allow_domain_literals, strip_excess_angle_brackets,
                 strip_trailing_dot, allow_utf8_domains)

DESCRIPTION
    Exim's parse_extract_address(): accepts an addr-spec, a route-addr in
    angle brackets (source routes are recognised and dropped), a phrase
    followed by a route-addr, or a bare local part; comments are skipped;
    "<>" is allowed only when ``allow_null``.  ``domain_offset`` is the index
    of the domain in the result, 0 when there is none (unqualified).  The
    error texts are Exim's ("domain missing or malformed", "'>' missing at
    end of address", "malformed address: X may not follow Y" ...).

SECURITY
    The input is client data; the result is still client data (tainted).

SEE ALSO
    spec "Address syntax"; Exim parse.c.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from eximpy.address import parse_find_address_end

ADDRESS_MAXLENGTH = 512
_SPECIALS = set(' ()<>@,;:\\".[]')


class AddressError(ValueError):
    """The mailbox is not a valid address; str() is Exim's message."""


@dataclass(frozen=True)
class ParseOptions:
    allow_domain_literals: bool = False
    strip_excess_angle_brackets: bool = False
    strip_trailing_dot: bool = False
    allow_utf8_domains: bool = False


_DEFAULT = ParseOptions()


def _special(c: str) -> bool:
    return c == "\0" or ord(c) < 32 or ord(c) == 127 or c in _SPECIALS


class _P:
    """Cursor over the mailbox with a NUL sentinel (as the C code)."""

    def __init__(self, text: str, opts: ParseOptions) -> None:
        self.s = text + "\0"
        self.i = 0
        self.opts = opts
        self.last_comment = 0

    def ch(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else "\0"

    def skip_comment(self) -> None:
        self.last_comment = self.i
        s = self.s
        while s[self.i] != "\0":
            while s[self.i] in " \t\n\r\f\v":
                self.i += 1
            if s[self.i] != "(":
                break
            level = 1
            while True:
                self.i += 1
                c = s[self.i]
                if c == "\0":
                    break
                if c == "(":
                    level += 1
                elif c == ")":
                    level -= 1
                    if level <= 0:
                        self.i += 1
                        break
                elif c == "\\" and s[self.i + 1] != "\0":
                    self.i += 1

    def read_domain(self) -> tuple[str, str | None]:
        s = self.s
        self.skip_comment()
        t: list[str]
        if s[self.i] == "[":
            t = ["["]
            self.i += 1
            if s[self.i:self.i + 5].lower() in ("ipv6:", "ipv4:"):
                t.append(s[self.i:self.i + 5])
                self.i += 5
            while s[self.i] in ".:" or s[self.i] in "0123456789abcdefABCDEF":
                t.append(s[self.i])
                self.i += 1
            err = None
            if s[self.i] == "]":
                t.append("]")
                self.i += 1
            else:
                err = "malformed domain literal"
            if not self.opts.allow_domain_literals:
                err = "domain literals not allowed"
            self.skip_comment()
            return ("" if err else "".join(t)), err
        t = []
        while True:
            start = len(t)
            if s[self.i] != "-":
                while True:
                    c = s[self.i]
                    if c.isascii() and (c.isalnum() or c == "-"):
                        t.append(c)
                        self.i += 1
                        continue
                    if self.opts.allow_utf8_domains and ord(c) >= 0x80 and \
                            c != "\0":
                        t.append(c)
                        self.i += 1
                        continue
                    break
            self.skip_comment()
            if len(t) == start:
                if self.opts.strip_trailing_dot and t and s[self.i] != ".":
                    t.pop()
                    return "".join(t), None
                return "", "domain missing or malformed"
            if s[self.i] != ".":
                break
            t.append(".")
            self.i += 1
            self.skip_comment()
        return "".join(t), None

    def read_local_part(self, allow_null: bool) -> tuple[str, str | None]:
        s = self.s
        t: list[str] = []
        while True:
            tsave = len(t)
            self.skip_comment()
            if s[self.i] == '"':
                t.append('"')
                while True:
                    self.i += 1
                    c = s[self.i]
                    if c == "\0" or c == '"':
                        break
                    t.append(c)
                    if c == "\\" and s[self.i + 1] != "\0":
                        self.i += 1
                        t.append(s[self.i])
                if c == '"':
                    self.i += 1
                    t.append('"')
                else:
                    return "".join(t), "unmatched doublequote in local part"
            else:
                while not _special(s[self.i]) or s[self.i] == "\\":
                    c = s[self.i]
                    t.append(c)
                    self.i += 1
                    if c == "\\" and s[self.i] != "\0":
                        t.append(s[self.i])
                        self.i += 1
            self.skip_comment()
            if len(t) == tsave and s[self.i] != ".":
                if tsave == 0 and not allow_null:
                    return "".join(t), "missing or malformed local part"
                return "".join(t), None
            if s[self.i] != ".":
                break
            while s[self.i] == ".":
                t.append(".")
                self.i += 1
        return "".join(t), None

    def read_route(self) -> str | None:
        commas = False
        s = self.s
        while s[self.i] == "@":
            self.i += 1
            dom, err = self.read_domain()
            if not dom:
                return err
            if s[self.i] != ",":
                break
            self.i += 1
            commas = True
            self.skip_comment()
        if s[self.i] == ":":
            self.i += 1
            err = None
        else:
            err = "colon expected after route list" if commas else \
                "no local part"
        self.skip_comment()
        return err

    def read_addr_spec(self, term: str) -> tuple[str, int]:
        lp, err = self.read_local_part(False)
        if err:
            raise AddressError(err)
        if self.s[self.i] == term:
            return lp, 0
        if self.s[self.i] != "@":
            raise AddressError(f'"@" or "." expected after "{lp}"')
        self.i += 1
        dom, err = self.read_domain()
        if err:
            raise AddressError(err)
        return f"{lp}@{dom}", len(lp) + 1


class GroupState:
    """Exim's parse_allow_group / parse_found_group flags, kept across the
    addresses of one header line ("name: a, b;" group syntax)."""

    def __init__(self) -> None:
        self.allow = True
        self.found = False


# The common form of an SMTP address, "<dot-atom@domain>" in ASCII: the
# full parser would give the same answer, so it is taken directly.
_SIMPLE_ADDRESS = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@([A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9][A-Za-z0-9-]*)*)>")


def extract_address(mailbox: str, allow_null: bool,
                    opts: ParseOptions = _DEFAULT) -> tuple[str, int]:
    """Exim's parse_extract_address(); raises AddressError."""
    m = _SIMPLE_ADDRESS.fullmatch(mailbox)
    if m is not None and len(mailbox) - 2 <= ADDRESS_MAXLENGTH:
        lp = m.group(1)
        return mailbox[1:-1], len(lp) + 1
    if allow_null and mailbox == "<>":
        return "", 0
    r, dom, _s, _e = extract_address_span(mailbox, allow_null, opts)
    return r, dom


def extract_address_span(mailbox: str, allow_null: bool,
                         opts: ParseOptions = _DEFAULT,
                         group: GroupState | None = None
                         ) -> tuple[str, int, int, int]:
    """As extract_address(), also giving the start and end offsets of the
    address proper inside ``mailbox`` (used to rewrite it in place)."""
    try:
        return _extract(mailbox, allow_null, opts, group)
    except AddressError:
        if group is not None and group.found:
            # An error at a group's closing ";" ends the group.
            pass
        raise


def _extract(mailbox: str, allow_null: bool, opts: ParseOptions,
             group: GroupState | None) -> tuple[str, int, int, int]:
    p = _P(mailbox, opts)
    s = p.s
    while True:                                   # RESTART after a group
        p.skip_comment()
        start = p.i
        t, err = p.read_local_part(True)
        if err:
            _group_fail(p, group)
            raise AddressError(err)
        domain = 0
        result: str
        endptr: int
        if s[p.i] != "@" and s[p.i] != "<":
            if s[p.i] in ("\0", ";"):
                if not t:
                    _group_fail(p, group)
                    raise AddressError("empty address")
                result, endptr = t, p.last_comment
                return _finish(p, mailbox, result, domain, start, endptr,
                               group)
            allow_group = group is not None and group.allow
            while s[p.i] != "<" and not (allow_group and s[p.i] == ":"):
                _t, err = p.read_local_part(False)
                if err:
                    _group_fail(p, group)
                    raise AddressError(f'{err} (expected word or "<")')
            if s[p.i] == ":":
                assert group is not None
                group.found = True
                group.allow = False
                p.i += 1
                continue
        break
    if s[p.i] == "<":
        p.i += 1
        brackets = 1
        if opts.strip_excess_angle_brackets:
            while s[p.i] == "<":
                brackets += 1
                p.i += 1
        start = p.i
        p.skip_comment()
        routed = False
        if s[p.i] == "@":
            err = p.read_route()
            if err:
                raise AddressError(err)
            routed = True
        if allow_null and not routed and s[p.i] == ">":
            result = ""
        else:
            result, domain = p.read_addr_spec(">")
            if routed and domain == 0:
                raise AddressError("domain missing in source-routed address")
        endptr = p.i
        for _ in range(brackets):
            c = s[p.i]
            p.i += 1
            if c != ">":
                if c == "\0":
                    raise AddressError("'>' missing at end of address")
                raise AddressError(
                    f"malformed address: {s[p.i - 1:p.i + 31].rstrip(chr(0))}"
                    f" may not follow {mailbox[:p.i - 1]}")
        p.skip_comment()
    elif not t:
        err = p.read_route()
        if err:
            raise AddressError(err)
        result, domain = p.read_addr_spec("\0")
        endptr = p.last_comment
        if domain == 0:
            raise AddressError("domain missing in source-routed address")
    else:
        p.i += 1
        dom, err = p.read_domain()
        if err or not dom:
            raise AddressError(err or "domain missing or malformed")
        result = f"{t}@{dom}"
        domain = len(t) + 1
        endptr = p.last_comment
    return _finish(p, mailbox, result, domain, start, endptr, group)


def _group_fail(p: _P, group: GroupState | None) -> None:
    if group is not None and group.found and p.s[p.i] == ";":
        group.found = False
        group.allow = True


def _finish(p: _P, mailbox: str, result: str, domain: int, start: int,
            endptr: int, group: GroupState | None = None
            ) -> tuple[str, int, int, int]:
    s = p.s
    if s[p.i] != "\0":
        if group is not None and group.found and s[p.i] == ";":
            group.found = False
            group.allow = True
        else:
            rest = s[p.i:p.i + 32].split("\0", 1)[0]
            raise AddressError(f"malformed address: {rest} may not follow "
                               f"{mailbox[:p.i]}")
    while endptr > 0 and s[endptr - 1] in " \t\n\r\f\v":
        endptr -= 1
    if endptr - start > ADDRESS_MAXLENGTH:
        raise AddressError(
            f"address is ridiculously long: {result[:64]}...")
    return result, domain, start, endptr


# Exim's parse_find_address_end(): one implementation, shared with routing.
find_address_end = parse_find_address_end


def qualify_header(text: str, is_sender: bool, sender_domain: str,
                   recipient_domain: str, allow_sender: bool,
                   allow_recipient: bool,
                   opts: ParseOptions = _DEFAULT) -> str | None:
    """Exim's rewrite_one_header() for qualification only (no rewrite
    rules): unqualified addresses in an address header (From, Sender,
    Reply-To with ``is_sender``; To, Cc, Bcc otherwise) get the qualify
    domain, in place; a line that grew past 40 characters is folded after
    the rewritten address.  Returns the new header text (name included,
    final newline kept), or None when nothing changed."""
    colon = text.find(":")
    if colon < 0:
        return None
    allowed = allow_sender if is_sender else allow_recipient
    domain_q = sender_domain if is_sender else recipient_domain
    cur = text
    changed_any = False
    lastnewline = 0
    pos = colon + 1
    while pos < len(cur) and cur[pos] in " \t\n\r\f\v":
        pos += 1
    group = GroupState()
    while pos < len(cur):
        ss = find_address_end(cur, pos)
        sprev = pos
        try:
            addr, dom, start, end = extract_address_span(
                cur[pos:ss], False, opts, group)
        except AddressError:
            addr = None
        pos = ss + (1 if ss < len(cur) else 0)
        while pos < len(cur) and cur[pos] in " \t\n\r\f\v":
            pos += 1
        if addr is None or dom or not allowed:
            continue
        new = f"{addr}@{domain_q}"
        oldlen = end - start
        head = cur[:sprev + start] + new + cur[sprev + end:pos]
        if len(new) > oldlen and len(head) - lastnewline > 40:
            p = pos - 1
            while p >= 0 and cur[p] in " \t":
                p -= 1
            if p < 0 or cur[p] != "\n":
                lastnewline = len(head)
                head += "\n\t"
        cur = head + cur[pos:]
        pos = len(head)
        changed_any = True
    return cur if changed_any else None
