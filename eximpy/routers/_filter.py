"""Exim filter files (the "# Exim filter" language) for the redirect router.

SUMMARY
    is_exim_filter(text) -> bool
    run_filter(text, addr, rctx, r) -> FilterResult

DESCRIPTION
    A subset of Exim's filter language (filter.txt chapter 3): commands
    deliver [errors_to], save [mode], pipe, mail/vacation (each command is
    a ">address" child for reply_transport carrying its expanded options
    to, cc, bcc, from, reply_to, subject, text, file, once, once_repeat,
    log, headers, expand; vacation has Exim's defaults: subject "On
    vacation", .vacation.msg, .vacation.log, once .vacation, 7d),
    logfile/logwrite (accepted, no file written while routing), finish,
    testprint, add N to nK, headers (ignored), with the seen / unseen /
    noerror prefixes; if / elif / else / endif with and, or, not,
    parentheses and the conditions is, contains, begins, ends, matches
    (lower case: caseless; upper case: caseful) with "is not" / "does not
    ..." forms, is above / is below, delivered, error_message,
    first_delivery, manually_thawed, personal (approximate: not from a
    list, not from the user, addressed to the user).

    FilterResult.addresses holds (text, is_pfr) in command order;
    ``significant`` tells whether a significant delivery was set up (then
    only the generated addresses are delivered), else the redirect router
    declines (nothing generated) or keeps the original address as a child
    (something generated), as Exim does.  Errors have Exim's form
    '"deliver" requires an argument near line 3 of filter file'.

    Not implemented: foranyaddress, the fail/freeze commands (system
    filter only), "return message" in replies, the full personal test,
    Sieve.

SEE ALSO
    /usr/share/doc/exim4-base/filter.txt chapter 3; Exim filter.c.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from eximpy.errors import ExpansionError, ExpansionForcedFail


def is_exim_filter(text: str) -> bool:
    s = text.lstrip()
    if not s.startswith("#"):
        return False
    first = s[1:].split("\n", 1)[0].replace(" ", "").replace("\t", "").lower()
    return first.startswith("eximfilter")


class FilterError(Exception):
    pass


@dataclass
class FilterResult:
    addresses: list[tuple[str, bool]] = field(default_factory=list)
    significant: bool = False
    error: str | None = None
    log_lines: list[str] = field(default_factory=list)
    reply_list: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Tok:
    text: str
    quoted: bool
    line: int


def _tokenize(text: str) -> tuple[list[_Tok], int]:
    toks: list[_Tok] = []
    i, n, line = 0, len(text), 1
    # skip the "# Exim filter" line
    nl = text.find("\n")
    if nl < 0:
        return toks, 1
    i, line = nl + 1, 2
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "()":
            toks.append(_Tok(c, False, line))
            i += 1
            continue
        if c == '"':
            out = []
            i += 1
            start_line = line
            while i < n and text[i] != '"':
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    i += 1
                    e = text[i]
                    if e == "\n":
                        line += 1
                        i += 1
                        while i < n and text[i] in " \t":
                            i += 1
                        continue
                    m = {"n": "\n", "r": "\r", "t": "\t"}.get(e)
                    if m is not None:
                        out.append(m)
                    elif e in "01234567":
                        j = i
                        while j < n and j < i + 3 and text[j] in "01234567":
                            j += 1
                        out.append(chr(int(text[i:j], 8)))
                        i = j - 1
                    elif e == "x":
                        j = i + 1
                        while j < n and j < i + 3 and text[j] in "0123456789abcdefABCDEF":
                            j += 1
                        out.append(chr(int(text[i + 1:j] or "0", 16)))
                        i = j - 1
                    else:
                        # keep backslashes the expander needs
                        out.append("\\" + e if e in "$\\N" else e)
                    i += 1
                    continue
                if ch == "\n":
                    line += 1
                out.append(ch)
                i += 1
            i += 1
            toks.append(_Tok("".join(out), True, start_line))
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in "()":
            j += 1
        toks.append(_Tok(text[i:j], False, line))
        i = j
    if text.endswith("\n"):
        pass
    return toks, line


_STR_OPS = ("is", "contains", "begins", "ends", "matches")


class _Filter:
    def __init__(self, text: str, addr: Any, rctx: Any, r: Any) -> None:
        self.toks, self.eof_line = _tokenize(text)
        self.p = 0
        self.addr = addr
        self.rctx = rctx
        self.r = r
        self.res = FilterResult()
        self.n = [0] * 10
        self.nstrings: list[str] = []
        self.finished = False

    # -- tokens --------------------------------------------------------
    def peek(self) -> _Tok | None:
        return self.toks[self.p] if self.p < len(self.toks) else None

    def take(self) -> _Tok | None:
        t = self.peek()
        if t is not None:
            self.p += 1
        return t

    def line(self) -> int:
        t = self.peek()
        return t.line if t is not None else self.eof_line

    def err(self, msg: str) -> FilterError:
        return FilterError(f"{msg} near line {self.line()} of filter file")

    def arg(self, cmd: str) -> str:
        t = self.peek()
        if t is None or (not t.quoted and t.text in _KEYWORDS):
            raise self.err(f'"{cmd}" requires an argument')
        self.p += 1
        return t.text

    # -- expansion -----------------------------------------------------
    def expand(self, text: str) -> str:
        ctx = self.rctx.expand_context(self.addr)
        ctx.filter_running = True
        ctx.filter_n = list(self.n)
        if self.nstrings:
            ctx.nstrings = list(self.nstrings)
        try:
            return ctx_expand(text, ctx)
        except ExpansionForcedFail:
            raise self.err(f'expansion of "{text}" forced failure') from None
        except ExpansionError as e:
            raise self.err(f'failed to expand "{text}": {e}') from None

    # -- commands ------------------------------------------------------
    def run(self) -> FilterResult:
        self.commands(top=True)
        return self.res

    def commands(self, top: bool = False) -> None:
        while True:
            t = self.peek()
            if t is None:
                return
            if not t.quoted and t.text in ("elif", "else", "endif"):
                if top:
                    raise self.err(f'unexpected "{t.text}"')
                return
            self.command(execute=not self.finished)

    def command(self, execute: bool = True) -> None:
        seen: bool | None = None
        noerror = False
        while True:
            t = self.take()
            if t is None:
                return
            w = t.text if not t.quoted else ""
            if w == "seen":
                seen = True
            elif w == "unseen":
                seen = False
            elif w == "noerror":
                noerror = True
            else:
                break
        del noerror
        if w == "if":
            self.if_command(execute)
            return
        if w == "deliver":
            a = self.arg("deliver")
            errors_to = None
            nt = self.peek()
            if nt is not None and not nt.quoted and nt.text == "errors_to":
                self.p += 1
                errors_to = self.arg("errors_to")
            if execute:
                self.deliver(self.expand(a), seen is not False, errors_to)
            return
        if w == "save":
            a = self.arg("save")
            nt = self.peek()
            if nt is not None and not nt.quoted and re.fullmatch(r"[0-7]+", nt.text):
                self.p += 1
            if execute:
                path = self.expand(a)
                if not path.startswith("/") and self.rctx.home and \
                        self.r.opt("filter_prepend_home") is not False:
                    path = f"{self.rctx.home}/{path}"
                self.generated(path, True, seen is not False)
            return
        if w == "pipe":
            a = self.arg("pipe")
            if execute:
                # The command is expanded (argument by argument) only when
                # the pipe transport runs it.
                self.generated("|" + a, True, seen is not False)
            return
        if w in ("mail", "vacation"):
            opts: dict[str, str] = {}
            while True:
                nt = self.peek()
                if nt is None or nt.quoted or nt.text not in _MAIL_OPTS:
                    break
                self.p += 1
                if nt.text in ("expand", "return"):
                    if nt.text == "return":
                        self.take()      # "message"
                    opts[nt.text] = "1"
                    continue
                opts[nt.text] = self.arg(nt.text)
            if execute:
                to = self.expand(opts["to"]) if "to" in opts else ""
                if not to and "to" not in opts:
                    to = self.expand("$reply_address").strip()
                reply: dict[str, str] = {}
                for k, v in opts.items():
                    if k in ("expand", "return"):
                        reply[k] = v
                    elif k != "to":
                        reply[k] = self.expand(v)
                if w == "vacation":
                    # vacation: mail with Exim's defaults
                    reply.setdefault("subject", "On vacation")
                    reply.setdefault("file", ".vacation.msg")
                    reply.setdefault("log", ".vacation.log")
                    reply.setdefault("once", ".vacation")
                    reply.setdefault("once_repeat", "7d")
                    reply["vacation"] = "1"
                reply["to"] = to
                working = to
                if to:
                    from eximpy.address import AddressError, parse_extract_address
                    try:
                        working = parse_extract_address(
                            to.split(",")[0], allow_domain_literals=True).address
                    except AddressError:
                        working = to
                text = ">" + (working or "**bad-reply**")
                # every mail/vacation command is a reply of its own
                self.res.addresses.append((text, True))
                self.res.reply_list.append(reply)
                if seen:
                    self.res.significant = True
            return
        if w == "logfile":
            self.arg("logfile")
            nt = self.peek()
            if nt is not None and not nt.quoted and re.fullmatch(r"[0-7]+", nt.text):
                self.p += 1
            return
        if w == "logwrite":
            a = self.arg("logwrite")
            if execute:
                self.res.log_lines.append(self.expand(a))
            return
        if w == "testprint":
            self.arg("testprint")
            return
        if w == "finish":
            if execute:
                if seen:
                    self.res.significant = True
                self.finished = True
            return
        if w == "add":
            a = self.arg("add")
            to = self.take()
            if to is None or to.text != "to":
                raise self.err('"to" expected after "add"')
            v = self.arg("add")
            if execute:
                m = re.fullmatch(r"n([0-9])", v.lstrip("$"))
                if not m:
                    raise self.err(f'"{v}" is not a user variable')
                try:
                    self.n[int(m.group(1))] += int(self.expand(a))
                except ValueError:
                    raise self.err(f'"{a}" is not a number') from None
            return
        if w == "headers":
            nt = self.take()
            if nt is not None and nt.text in ("charset", "add", "remove"):
                self.arg("headers")
            return
        if w in ("fail", "freeze"):
            raise self.err(f'"{w}" is not available in user filters')
        raise self.err(f'unknown filtering command "{t.text}"')

    def deliver(self, text: str, significant: bool, errors_to: str | None) -> None:
        from eximpy.address import AddressError, parse_extract_address
        try:
            e = parse_extract_address(text, allow_domain_literals=True)
        except AddressError as x:
            raise self.err(f'malformed address "{text}" in filter file: {x}') from None
        a = e.address
        if e.domain == 0:
            a = f"{a}@{self.rctx.qualify_recipient()}"
        self.generated(a, False, significant)

    def generated(self, text: str, pfr: bool, significant: bool) -> None:
        if (text, pfr) not in self.res.addresses:
            self.res.addresses.append((text, pfr))
        if significant:
            self.res.significant = True

    # -- if ------------------------------------------------------------
    def if_command(self, execute: bool) -> None:
        done = False
        cond = self.condition(execute)
        self.expect("then")
        self.branch(execute and cond)
        done = execute and cond
        while True:
            t = self.take()
            if t is None:
                raise FilterError('"endif" missing at end of filter file')
            if t.text == "endif":
                return
            if t.text == "elif":
                c = self.condition(execute and not done)
                self.expect("then")
                self.branch(execute and not done and c)
                done = done or (execute and c)
                continue
            if t.text == "else":
                self.branch(execute and not done)
                done = True
                continue
            raise self.err(f'unexpected "{t.text}"')

    def branch(self, execute: bool) -> None:
        save = self.finished
        if not execute:
            self.finished = True
        self.commands()
        if not execute:
            self.finished = save

    def expect(self, word: str) -> None:
        t = self.take()
        if t is None or t.quoted or t.text != word:
            raise self.err(f'"{word}" expected')

    def condition(self, execute: bool) -> bool:
        v = self.and_cond(execute)
        while True:
            t = self.peek()
            if t is not None and not t.quoted and t.text == "or":
                self.p += 1
                v2 = self.and_cond(execute and not v)
                v = v or v2
            else:
                return v

    def and_cond(self, execute: bool) -> bool:
        v = self.not_cond(execute)
        while True:
            t = self.peek()
            if t is not None and not t.quoted and t.text == "and":
                self.p += 1
                v2 = self.not_cond(execute and v)
                v = v and v2
            else:
                return v

    def not_cond(self, execute: bool) -> bool:
        t = self.peek()
        if t is None:
            raise self.err("condition expected")
        if not t.quoted and t.text == "not":
            self.p += 1
            return not self.not_cond(execute)
        if not t.quoted and t.text == "(":
            self.p += 1
            v = self.condition(execute)
            self.expect(")")
            return v
        return self.simple(execute)

    def simple(self, execute: bool) -> bool:
        t = self.take()
        assert t is not None
        w = t.text if not t.quoted else None
        if w == "delivered":
            return False
        if w == "error_message":
            return not (self.rctx.sender_address or "")
        if w in ("first_delivery", "manually_thawed"):
            return w == "first_delivery"
        if w == "personal":
            while True:
                nt = self.peek()
                if nt is not None and not nt.quoted and nt.text == "alias":
                    self.p += 2
                    continue
                break
            return bool(self.rctx.sender_address)
        left = t.text
        op_t = self.take()
        if op_t is None or op_t.quoted:
            raise self.err("condition operator expected")
        op = op_t.text
        negate = False
        if op.lower() == "does":
            nt = self.take()
            if nt is None or nt.text.lower() != "not":
                raise self.err('"not" expected after "does"')
            negate = True
            op_t = self.take()
            if op_t is None:
                raise self.err("condition operator expected")
            op = {"contain": "contains", "begin": "begins", "end": "ends",
                  "match": "matches"}.get(op_t.text.lower(), op_t.text)
            if op_t.text.isupper():
                op = op.upper()
        elif op.lower() == "is":
            nt = self.peek()
            if nt is not None and not nt.quoted and nt.text.lower() == "not":
                self.p += 1
                negate = True
            nt = self.peek()
            if nt is not None and not nt.quoted and nt.text.lower() in ("above", "below"):
                self.p += 1
                op = nt.text.lower()
        if op.lower() not in _STR_OPS + ("above", "below"):
            raise self.err(f'unrecognized condition word "{op}"')
        right = self.take()
        if right is None:
            raise self.err(f'string expected after "{op}"')
        if not execute:
            return False
        a = self.expand(left)
        b = self.expand(right.text)
        caseless = op.islower()
        lop = op.lower()
        if lop in ("above", "below"):
            try:
                x = _num(a)
            except ValueError:
                raise FilterError(f'malformed numerical string "{a}"') from None
            try:
                y = _num(b)
            except ValueError:
                raise FilterError(f'malformed numerical string "{b}"') from None
            v = x > y if lop == "above" else x < y
        elif lop == "matches":
            flags = re.I if caseless else 0
            m = re.search(b, a, flags)
            v = m is not None
            if m:
                self.nstrings = [m.group(0)] + [g or "" for g in m.groups()]
        else:
            aa, bb = (a.lower(), b.lower()) if caseless else (a, b)
            v = {"is": aa == bb, "contains": bb in aa,
                 "begins": aa.startswith(bb), "ends": aa.endswith(bb)}[lop]
        return (not v) if negate else v


def _num(s: str) -> int:
    s = s.strip()
    if not s:
        raise ValueError(s)
    mult = 1
    if s[-1:] in "kK":
        mult, s = 1024, s[:-1]
    elif s[-1:] in "mM":
        mult, s = 1024 * 1024, s[:-1]
    return int(s) * mult


def ctx_expand(text: str, ctx: Any) -> str:
    from eximpy.expand import expand_string
    return expand_string(text, ctx)


_KEYWORDS = {"if", "then", "elif", "else", "endif", "and", "or", "not",
             "deliver", "save", "pipe", "mail", "vacation", "finish", "seen",
             "unseen", "noerror", "logfile", "logwrite", "testprint", "add",
             "headers", "fail", "freeze"}
_MAIL_OPTS = {"to", "cc", "bcc", "from", "reply_to", "subject", "text",
              "file", "expand", "return", "log", "once", "once_repeat",
              "headers"}


def run_filter(text: str, addr: Any, rctx: Any, r: Any) -> FilterResult:
    """Interpret an Exim filter for ``addr``; errors go into .error."""
    f = _Filter(text, addr, rctx, r)
    try:
        return f.run()
    except FilterError as e:
        res = FilterResult()
        res.error = str(e)
        return res
