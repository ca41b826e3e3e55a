"""Expansion tree nodes and their evaluation (items and conditions).

DESCRIPTION
    Every node has ``ev(ctx) -> str``; condition nodes have
    ``test(ctx) -> bool``.  Errors raise ExpansionError, forced failures
    ExpansionForcedFail, both with Exim 4.96's texts.  Operators live in
    operators.py; lookups in eximpy.lookups; list matching in eximpy.match.

SEE ALSO
    spec chapter "String expansions", sections "Expansion items" and
    "Expansion conditions".
"""
from __future__ import annotations

import os
import re
from typing import Any

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy import match as _M
from eximpy.expand.bytestr import bytes_cmp, lc_ascii, norm, to_l1, from_l1
from eximpy.expand.operators import ip_type
from eximpy.expand.regex import compile_pcre, match_setup
from eximpy.expand.taint import Tainted, is_tainted, join, like

_SPACE = " \t\n\r\f\v"


# ---------------------------------------------------------------- basics

class Node:
    """A piece of an expansion.  ``errmsg`` is the first error that Exim
    would report while *skipping* this piece (unknown variable or operator,
    malformed yes/no tail ...): an unused branch still fails with it."""
    __slots__ = ("errmsg", "skipfx")
    _kids: tuple[str, ...] = ()

    def ev(self, ctx) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class Text(Node):
    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def ev(self, ctx) -> str:
        return self.s


class Seq(Node):
    __slots__ = ("parts", "fast")
    _kids = ("parts",)

    def __init__(self, parts: list) -> None:
        self.parts = parts
        # literal text is kept as a plain str: no call needed to evaluate it
        self.fast = [p.s if type(p) is Text else p for p in parts]

    def ev(self, ctx) -> str:
        out = [p if p.__class__ is str else p.ev(ctx) for p in self.fast]
        s = "".join(out)
        if not s.isascii():
            s = norm(s)       # pieces of a cut UTF-8 sequence meet again
        if Tainted in map(type, out):
            return Tainted(s)
        return s


def make_seq(parts: list) -> Node:
    if not parts:
        return Text("")
    if len(parts) == 1:
        return parts[0]
    return Seq(parts)


class ErrorNode(Node):
    __slots__ = ("msg",)

    def __init__(self, msg: str) -> None:
        self.msg = msg
        self.errmsg = msg

    def ev(self, ctx) -> str:
        raise ExpansionError(self.msg)


class ErrorAfter(Node):
    """An unknown operator: Exim expands its argument first, then fails."""
    __slots__ = ("child", "msg")
    _kids = ("child",)

    def __init__(self, child, msg: str) -> None:
        self.child, self.msg = child, msg

    def ev(self, ctx) -> str:
        self.child.ev(ctx)
        raise ExpansionError(self.msg)


class ErrorCond:
    """A condition that cannot be evaluated (unknown variable after def:)."""
    __slots__ = ("neg", "msg", "errmsg", "skipfx")
    _kids = ()

    def __init__(self, msg: str) -> None:
        self.neg = False
        self.msg = msg
        self.errmsg = msg

    def test(self, ctx) -> bool:
        raise ExpansionError(self.msg)


def annotate(node) -> str | None:
    """Set ``errmsg`` on every node of a tree (the first error Exim would
    meet while skipping it, in text order) and ``skipfx`` (skipping it has
    a side effect: a skipped ${run} sets $runrc to 0)."""
    if node is None:
        return None
    if isinstance(node, list):
        first = None
        for x in node:
            m = annotate(x)
            if m and first is None:
                first = m
        return first
    first = None
    fx = type(node) is RunNode
    for k in type(node)._kids:
        child = getattr(node, k)
        m = annotate(child)
        if m and first is None:
            first = m
        if child is not None:
            if isinstance(child, list):
                fx = fx or any(getattr(c, "skipfx", False) for c in child)
            else:
                fx = fx or getattr(child, "skipfx", False)
    own = getattr(node, "errmsg", None) if isinstance(node, (ErrorNode, YesNoError,
                                                            ErrorCond)) else None
    if type(node) is ErrorAfter:
        first = first or node.msg
    if type(node) is ExtractNode and node.skiperr:
        first = first or node.skiperr
    node.errmsg = own or first
    node.skipfx = fx
    return node.errmsg


def skip(node, ctx) -> None:
    """``node`` is read but not used (Exim's skipping mode)."""
    if node is None:
        return
    if node.skipfx:
        ctx.runrc = 0
    if node.errmsg:
        raise ExpansionError(node.errmsg)


class Var(Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, ctx) -> str:
        v = ctx.variables.get(self.name)
        if v.__class__ is str or v.__class__ is Tainted:
            return v                  # the common case: a plain stored value
        v = ctx.get_var(self.name)
        if v is None:
            from eximpy.expand.variables import unknown_suffix
            raise ExpansionError(f'unknown variable name "{self.name}"'
                                 + unknown_suffix(self.name))
        return v


class CertRef(Node):
    """``$tls_*cert`` directly under md5/sha1/sha256/base64: with no
    certificate Exim hashes the variable's name (sic)."""
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, ctx) -> str:
        return self.name


class CertOpNode(Node):
    """${md5:$cert} etc.: the certificate's fingerprint or DER in base64."""
    __slots__ = ("op", "name", "plain")
    _kids = ("plain",)

    def __init__(self, op: str, name: str, plain) -> None:
        self.op, self.name, self.plain = op, name, plain

    def ev(self, ctx) -> str:
        cert = ctx.variables.get(self.name + "_object")
        if cert is None:
            return self.plain.ev(ctx)
        from eximpy.expand import certs
        if self.op == "base64":
            return certs.der_b64(cert)
        return certs.fingerprint(cert, self.op)


class NumVar(Node):
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def ev(self, ctx) -> str:
        ns = ctx.nstrings
        return ns[self.n] if self.n < len(ns) else ""


_ADDR_HEADERS = {"bcc": "B", "cc": "C", "from": "F", "reply-to": "R", "sender": "S",
                 "to": "T"}


def _header_lines(ctx):
    for h in ctx.headers or ():
        if len(h) >= 3:
            name, raw, typ = h[0], h[1], h[2]
        else:
            name, raw = h[0], h[1]
            typ = _ADDR_HEADERS.get(name.lower(), " ")
        if typ == "*":   # deleted ("old") header
            continue
        yield name, raw, typ


def find_header(ctx, name: str | None, raw: bool, want_list: bool,
                charset: str | None, exists_only: bool = False) -> str | None:
    """Exim's find_header(); ``name`` ends with ':' (or None for all)."""
    found = name is None
    pieces: list[str] = []
    comma = False
    tainted = False
    lname = name.lower() if name else None
    for hname, hraw, typ in _header_lines(ctx):
        text = hname + ":" + hraw
        if lname is not None:
            if not text.lower().startswith(lname):
                continue
            s = text[len(name):]
        else:
            s = text
        if exists_only:
            return "1"
        found = True
        tainted = tainted or is_tainted(hraw)
        if not raw:
            s = s.lstrip(_SPACE)
        if want_list:
            s = s.rstrip("\n")
            pieces.append(s.replace(":", "::"))
            continue
        if not raw:
            s = s.rstrip(_SPACE)
            if name and not comma and typ in "BCFRST":
                comma = True
        pieces.append(s)
    if not found:
        return None
    if want_list:
        out = ":".join(pieces)
    elif raw:
        out = "".join(pieces)
    else:
        out = ("," + "\n" if comma else "\n").join(pieces)
        if out:
            from eximpy.expand.operators import rfc2047_decode
            try:
                dec, _err = rfc2047_decode(out, charset)
                out = dec
            except Exception:
                pass
    return Tainted(out) if tainted or ctx.headers_tainted() else out


class Header(Node):
    __slots__ = ("name", "kind")

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind      # 'h', 'r', 'l', 'b'

    def ev(self, ctx) -> str:
        k = self.kind
        v = find_header(ctx, self.name, k in "rl", k == "l",
                        None if k == "b" else ctx.headers_charset_name())
        return "" if v is None else v


# ---------------------------------------------------------------- helpers

_INT_RE = re.compile(r"[+-]?\d+")


def expanded_string_integer(s: str, isplus: bool) -> int:
    """Exim's expanded_string_integer(): raises ExpansionError."""
    if s.isdigit() and s.isascii() and len(s) < 18:
        return int(s)
    t = s.lstrip(_SPACE)
    if not t:
        return 0
    m = _INT_RE.match(t)
    if not m:
        raise ExpansionError(f'integer expected but "{t}" found')
    v = int(m.group(0))
    rest = t[m.end():]
    if v < 0 and isplus:
        raise ExpansionError(f'non-negative integer expected but "{t}" found')
    big = 2 ** 63
    if v >= big or v < -big:
        raise ExpansionError(f'absolute value of integer "{t}" is too large (overflow)')
    if rest[:1].lower() in ("k", "m", "g"):
        mul = {"k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}[rest[0].lower()]
        if v > (big - 1) // mul or v < -big // mul:
            raise ExpansionError(f'absolute value of integer "{t}" is too large (overflow)')
        v *= mul
        rest = rest[1:]
    if rest.strip(_SPACE):
        raise ExpansionError(f'integer expected but "{t}" found'
                             if False else f'invalid integer "{t}"')
    return v


class YesNo:
    """The {yes}{no} / fail tail of if, lookup, extract, run ..."""
    __slots__ = ("kind", "yes", "no", "fail", "has", "errmsg", "skipfx")
    _kids = ("yes", "no")

    def __init__(self, kind, yes, no, fail, has) -> None:
        self.kind, self.yes, self.no, self.fail, self.has = kind, yes, no, fail, has

    def apply(self, ctx, ok: bool, save_lookup) -> str:
        if not self.has:
            if self.kind == "if":
                return "true" if ok else ""
            r = ctx.lookup_value if ok and ctx.lookup_value is not None else ""
            ctx.lookup_value = save_lookup
            return r
        if ok:
            y = self.yes
            r = y.s if y.__class__ is Text else y.ev(ctx)
            ctx.lookup_value = save_lookup
            no = self.no
            if no is not None and (no.errmsg or no.skipfx):
                skip(no, ctx)           # read while skipping
            return r
        y = self.yes
        if y.errmsg or y.skipfx:
            skip(y, ctx)
        ctx.lookup_value = save_lookup
        no = self.no
        if no is not None:
            return no.s if no.__class__ is Text else no.ev(ctx)
        if self.fail:
            raise ExpansionForcedFail(f'"{self.kind}" failed and "fail" requested')
        return ""


class YesNoError:
    """A malformed yes/no tail: the item does its work, then this fails."""
    __slots__ = ("msg", "errmsg", "skipfx")
    _kids = ()

    def __init__(self, msg: str) -> None:
        self.msg = msg
        self.errmsg = msg
        self.skipfx = False

    def apply(self, ctx, ok: bool, save_lookup) -> str:
        raise ExpansionError(self.msg)


# ---------------------------------------------------------------- items

class IfNode(Node):
    __slots__ = ("cond", "yn")
    _kids = ("cond", "yn")

    def __init__(self, cond, yn) -> None:
        self.cond, self.yn = cond, yn

    def ev(self, ctx) -> str:
        save_n = ctx.nstrings
        save_v = ctx.lookup_value
        try:
            ok = self.cond.test(ctx)
            yn = self.yn
            if yn.__class__ is YesNo and yn.has:
                # YesNo.apply() inlined for the common case (nothing in
                # between reads $value, so its restores are not needed here)
                if ok:
                    y = yn.yes
                    r = y.s if y.__class__ is Text else y.ev(ctx)
                    no = yn.no
                    if no is not None and (no.errmsg or no.skipfx):
                        skip(no, ctx)       # read after "yes", while skipping
                    return r
                y = yn.yes
                if y.errmsg or y.skipfx:
                    skip(y, ctx)
                no = yn.no
                if no is not None:
                    return no.s if no.__class__ is Text else no.ev(ctx)
                if yn.fail:
                    raise ExpansionForcedFail('"if" failed and "fail" requested')
                return ""
            return yn.apply(ctx, ok, ctx.lookup_value)
        finally:
            ctx.lookup_value = save_v
            ctx.nstrings = save_n


class LookupNode(Node):
    __slots__ = ("key", "spec", "tname", "arg", "yn")
    _kids = ("key", "arg", "yn")

    def __init__(self, key, spec, tname, arg, yn) -> None:
        self.key, self.spec, self.tname, self.arg, self.yn = key, spec, tname, arg, yn

    def ev(self, ctx) -> str:
        from eximpy.lookups import search_find
        if ctx.expand_forbid & FORBID_LOOKUP:
            raise ExpansionError("lookup expansions are not permitted")
        save_v = ctx.lookup_value
        save_n = ctx.nstrings
        key = self.key.ev(ctx) if self.key is not None else None
        arg = self.arg.ev(ctx)
        try:
            value = search_find(ctx, self.spec, key, arg)
            ctx.lookup_value = value
            return self.yn.apply(ctx, value is not None, save_v)
        finally:
            ctx.nstrings = save_n


class EnvNode(Node):
    __slots__ = ("key", "yn")
    _kids = ("key", "yn")

    def __init__(self, key, yn) -> None:
        self.key, self.yn = key, yn

    def ev(self, ctx) -> str:
        save_v = ctx.lookup_value
        k = self.key.ev(ctx)
        v = ctx.environ.get(k)
        ctx.lookup_value = v
        return self.yn.apply(ctx, v is not None, save_v)


def _dequote(s: str, i: int) -> tuple[str, int]:
    """Exim's string_dequote(): a quoted string with backslash escapes, or
    a run of non-space characters."""
    n = len(s)
    out = []
    if i < n and s[i] == '"':
        i += 1
        while i < n and s[i] != '"':
            if s[i] == "\\":
                from eximpy.expand.parser import interpret_escape
                c, i = interpret_escape(s, i)
                out.append(c)
            else:
                out.append(s[i])
                i += 1
        if i < n:
            i += 1
    else:
        while i < n and s[i] not in _SPACE:
            out.append(s[i])
            i += 1
    return norm("".join(out)), i


def getkeyed(key: str, s: str) -> str | None:
    """Exim's expand_getkeyed()."""
    n = len(s)
    i = 0
    while i < n and s[i] in _SPACE:
        i += 1
    lk = lc_ascii(key)
    while i < n:
        j = i
        while j < n and s[j] != "=" and s[j] not in _SPACE:
            j += 1
        dkey = s[i:j]
        i = j
        while i < n and s[i] in _SPACE:
            i += 1
        if i < n and s[i] == "=":
            i += 1
            while i < n and s[i] in _SPACE:
                i += 1
        data, i = _dequote(s, i)
        if lc_ascii(dkey) == lk and len(dkey) == len(key):
            return like(data, s)
        while i < n and s[i] in _SPACE:
            i += 1
    return None


def gettokened(field: int, seps: str, s: str) -> str | None:
    """Exim's expand_gettokened()."""
    if field == 0:
        return s
    if not (s.isascii() and seps.isascii()):        # separators are bytes
        fields = [from_l1(f) for f in re.split(
            "[" + re.escape(to_l1(seps)) + "]", to_l1(s))] if seps else [s]
    else:
        fields = re.split("[" + re.escape(seps) + "]", s) if seps else [s]
    if field > 0:
        return like(fields[field - 1], s) if field <= len(fields) else None
    if -field <= len(fields):
        return like(fields[field], s)
    return None


def dewrap(s: str, wrap: str) -> str:
    """Exim's dewrap(): strip the enclosing wrap[0]..wrap[1] pair."""
    n = len(s)
    p = 0
    while p < n and s[p] in _SPACE:
        p += 1
    quotes = wrap[0] == wrap[1]
    if not (p < n and s[p] == wrap[0]):
        raise _Dewrap(f"missing '{wrap[0]}'")
    if p < n and s[p] == wrap[0]:
        p += 1
        start = p
        depth = 0
        while p < n:
            c = s[p]
            if c == "\\":
                p += 1
            elif not quotes and c == wrap[0]:
                depth += 1
            elif c == wrap[1]:
                if depth == 0:
                    return like(s[start:p], s)
                depth -= 1
            p += 1
    raise _Dewrap(f"missing '{wrap[1]}'")


class _Dewrap(Exception):
    pass


def json_items(s: str):
    """Exim's json_nextinlist() iteration."""
    n = len(s)
    i = 0
    while True:
        while i < n and s[i] in _SPACE:
            i += 1
        start = i
        ad = od = 0
        while i < n and (s[i] != "," or ad or od):
            c = s[i]
            if c == "[":
                ad += 1
            elif c == "]":
                ad -= 1
            elif c == "{":
                od += 1
            elif c == "}":
                od -= 1
            i += 1
        if i == start:
            return
        yield like(s[start:i], s)
        if i < n:
            i += 1


class ExtractNode(Node):
    __slots__ = ("fmt", "args", "fail", "tails", "skiperr")
    _kids = ("args",)

    def __init__(self, fmt, args, fail) -> None:
        self.fmt, self.args, self.fail = fmt, args, fail
        self.tails: list[str] = []
        # While skipping Exim reads at most 5 arguments, then wants "}".
        self.skiperr = "missing '}' closing extract" if len(args) > 5 else None

    def ev(self, ctx) -> str:
        save_v = ctx.lookup_value
        save_n = ctx.nstrings
        args = self.args
        try:
            a0 = args[0].ev(ctx).strip(_SPACE)
            if not a0:
                raise ExpansionError('first argument of "extract" must not be empty')
            numeric = re.fullmatch(r"-?\d*", a0) is not None and a0 != "-"
            if a0 == "-":
                numeric = True
            field = 0
            if numeric:
                field = int(a0) if a0 not in ("-",) else 0
            nargs = 3 if numeric and self.fmt == "basic" else 2
            if len(args) < nargs:
                raise ExpansionError(
                    self._curly(f"missing '{{' for arg {len(args) + 1} of extract"))
            sub = [a.ev(ctx) for a in args[1:nargs]]
            rest = args[nargs:]
            if len(rest) > 2:
                raise ExpansionError(
                    "curly-bracket problem in conditional yes/no parsing: did not close "
                    "with '}'\n remaining string is '" + self.tails[nargs + 2] + "'")
            value = self._extract(ctx, numeric, field, a0, sub)
            ctx.lookup_value = value
            ok = value is not None
            if not rest:
                if self.fail:
                    raise ExpansionError(
                        "curly-bracket problem in conditional yes/no parsing: 'yes' part "
                        "did not start with '{'\n remaining string is '"
                        + self.tails[-1] + "'")
                r = value if ok else ""
                ctx.lookup_value = save_v
                return r
            if ok:
                r = rest[0].ev(ctx)
                ctx.lookup_value = save_v
                if len(rest) > 1:
                    skip(rest[1], ctx)
                return r
            skip(rest[0], ctx)
            ctx.lookup_value = save_v
            if len(rest) > 1:
                return rest[1].ev(ctx)
            if self.fail:
                raise ExpansionForcedFail('"extract" failed and "fail" requested')
            return ""
        finally:
            ctx.nstrings = save_n

    @staticmethod
    def _curly(msg: str) -> str:
        return msg

    def _extract(self, ctx, numeric, field, key, sub) -> str | None:
        if self.fmt == "basic":
            if numeric:
                return gettokened(field, sub[0], sub[1])
            return getkeyed(key, sub[0])
        try:
            s = dewrap(sub[0], "[]" if numeric else "{}")
        except _Dewrap as e:
            raise ExpansionError(f"{e} wrapping {'array' if numeric else 'object'} "
                                 f"for extract json")
        value = None
        if numeric:
            if field <= 0:
                raise ExpansionError('first argument of "extract" must be greater than zero')
            item = None
            for it in json_items(s):
                item = it
                field -= 1
                if field == 0:
                    break
            if field > 0:
                item = None
            value = item.rstrip(_SPACE) if item is not None else None
        else:
            for it in json_items(s):
                try:
                    k = dewrap(it, '""')
                except _Dewrap as e:
                    raise ExpansionError(f"{e} wrapping string key for extract json")
                if k == key:
                    # text after the closing quote
                    p = it.index('"')
                    q = p + 1
                    while q < len(it):
                        if it[q] == "\\":
                            q += 2
                            continue
                        if it[q] == '"':
                            break
                        q += 1
                    rest = it[q + 1:].lstrip(_SPACE)
                    if not rest.startswith(":"):
                        raise ExpansionError("missing object value-separator for extract json")
                    value = like(rest[1:].lstrip(_SPACE), it)
                    break
        if self.fmt == "jsons" and value is not None:
            try:
                value = dewrap(value, '""')
            except _Dewrap as e:
                raise ExpansionError(f"{e} wrapping string result for extract jsons")
        return value


class ListExtractNode(Node):
    __slots__ = ("num", "lst", "yn")
    _kids = ("num", "lst", "yn")

    def __init__(self, num, lst, yn) -> None:
        self.num, self.lst, self.yn = num, lst, yn

    def ev(self, ctx) -> str:
        from eximpy.expand.lists import iter_list
        save_v = ctx.lookup_value
        save_n = ctx.nstrings
        try:
            a0 = self.num.ev(ctx).strip(_SPACE)
            lst = self.lst.ev(ctx)
            if not a0:
                raise ExpansionError('first argument of "listextract" must not be empty')
            if not re.fullmatch(r"-?\d*", a0):
                raise ExpansionError('first argument of "listextract" must be numeric')
            field = int(a0) if a0 != "-" else 0
            items = list(iter_list(lst))
            value = None
            if field > 0 and field <= len(items):
                value = items[field - 1]
            elif field < 0 and -field <= len(items):
                value = items[field]
            ctx.lookup_value = value
            return self.yn.apply(ctx, value is not None, save_v)
        finally:
            ctx.nstrings = save_n


class CertExtractNode(Node):
    __slots__ = ("field", "var", "yn")
    _kids = ("field", "var", "yn")

    def __init__(self, field, var, yn) -> None:
        self.field, self.var, self.yn = field, var, yn

    def ev(self, ctx) -> str:
        from eximpy.expand import variables as V
        save_v = ctx.lookup_value
        field = self.field.ev(ctx).strip(_SPACE)
        var = self.var.ev(ctx)
        if not V.is_known(var):
            raise ExpansionError(f'no variable named "{var}"')
        from eximpy.expand.parser import CERT_VARS
        if var not in CERT_VARS:
            raise ExpansionError(f'"{var}" is not a certificate')
        cert = ctx.variables.get(var + "_object")
        value = None
        if cert is not None:
            from eximpy.expand import certs
            tz = ctx.main_option("timezone")
            value = certs.extract(cert, field, utc=isinstance(tz, str) and tz.lower() == "utc")
        ctx.lookup_value = value
        return self.yn.apply(ctx, value is not None, save_v)


class ListOpNode(Node):
    """${filter}, ${map}, ${reduce}."""
    __slots__ = ("kind", "lst", "init", "expr")
    _kids = ("lst", "init", "expr")

    def __init__(self, kind, lst, init, expr) -> None:
        self.kind, self.lst, self.init, self.expr = kind, lst, init, expr

    def ev(self, ctx) -> str:
        from eximpy.expand.lists import iter_list, list_separator
        lst = self.lst.ev(ctx)
        save_item = ctx.iterate_item
        save_v = ctx.lookup_value
        if self.init is not None:
            ctx.lookup_value = self.init.ev(ctx)
        if self.expr.skipfx:
            ctx.runrc = 0
        if self.expr.errmsg:
            ctx.lookup_value = save_v
            raise ExpansionError(f'{self.expr.errmsg} inside "{self.kind}" item')
        sep = list_separator(lst)[0] if lst else ":"
        out: list[str] = []
        tainted = is_tainted(lst)
        try:
            for item in iter_list(lst):
                ctx.iterate_item = item
                if self.kind == "filter":
                    sv = ctx.lookup_value
                    try:
                        ok = self.expr.test(ctx)
                    except ExpansionForcedFail as e:
                        raise ExpansionForcedFail(f'{e} inside "filter" condition')
                    except ExpansionError as e:
                        raise ExpansionError(f'{e} inside "filter" condition')
                    ctx.lookup_value = sv
                    if not ok:
                        continue
                    temp = item
                else:
                    try:
                        temp = self.expr.ev(ctx)
                    except ExpansionForcedFail as e:
                        raise ExpansionForcedFail(f'{e} inside "{self.kind}" item')
                    except ExpansionError as e:
                        raise ExpansionError(f'{e} inside "{self.kind}" item')
                    if self.kind == "reduce":
                        ctx.lookup_value = temp
                        continue
                tainted = tainted or is_tainted(temp)
                if out and (temp[:1] == sep or temp == ""):
                    out.append(" ")
                out.append(temp.replace(sep, sep + sep))
                out.append(sep)
            if self.kind == "reduce":
                r = ctx.lookup_value or ""
                ctx.lookup_value = save_v
                return r
            if out:
                out.pop()
            s = "".join(out)
            return Tainted(s) if tainted else s
        finally:
            ctx.iterate_item = save_item
            if self.kind != "reduce":
                ctx.lookup_value = save_v


class SortNode(Node):
    __slots__ = ("lst", "cmp", "xtext", "xnode")
    _kids = ("lst", "cmp", "xnode")

    def __init__(self, lst, cmp, xtext, xnode=None) -> None:
        self.lst, self.cmp, self.xtext, self.xnode = lst, cmp, xtext, xnode

    def ev(self, ctx) -> str:
        from eximpy.expand.lists import iter_list, list_separator, append_list_item
        from eximpy.expand.parser import parse_cached
        lst = self.lst.ev(ctx)
        cmp = self.cmp.ev(ctx)
        m = re.match(r"\s*(<=|>=|==|=|<|>|[A-Za-z0-9_]+)", cmp)
        name = m.group(1) if m else ""
        if not name:
            raise ExpansionError(f'condition name expected, but found "{cmp[:16]}"')
        from eximpy.expand.parser import CONDS
        if name not in CONDS:
            raise ExpansionError("")
        if name not in ("<", "<=", ">", ">=", "ge", "gei", "gt", "gti", "le", "lei",
                        "lt", "lti"):
            raise ExpansionError("comparator not handled for sort")
        skip(self.xnode, ctx)
        xnode = parse_cached(self.xtext)
        sep = list_separator(lst)[0] if lst else ":"
        save_item = ctx.iterate_item
        items: list[tuple[str, str]] = []
        try:
            for src in iter_list(lst):
                ctx.iterate_item = src
                try:
                    field = xnode.ev(ctx)
                except ExpansionError:
                    field = ""
                if not field:
                    raise ExpansionError(f'field-extract in sort: "{self.xtext}"')
                pos = len(items)
                for k, (_d, dfield) in enumerate(items):
                    if _sorts_before(name, field, dfield):
                        pos = k
                        break
                items.insert(pos, (src, field))
        finally:
            ctx.iterate_item = save_item
        return append_list_item([i for i, _f in items], sep) if items else ""


def _sorts_before(op: str, a: str, b: str) -> bool:
    if not op[0].isalpha():
        try:
            x = expanded_string_integer(a, False)
            y = expanded_string_integer(b, False)
        except ExpansionError:
            return False      # Exim ignores the conversion error here
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op.endswith("i"):
        a, b = lc_ascii(a), lc_ascii(b)
        op = op[:-1]
    c = bytes_cmp(a, b)
    return {"lt": c < 0, "le": c <= 0, "gt": c > 0, "ge": c >= 0}[op]


class RunNode(Node):
    __slots__ = ("late", "raw", "node", "yn")
    _kids = ("node", "yn")

    def __init__(self, late, raw, node, yn) -> None:
        self.late, self.raw, self.node, self.yn = late, raw, node, yn

    def ev(self, ctx) -> str:
        from eximpy.expand import items
        if ctx.expand_forbid & FORBID_RUN:
            raise ExpansionError("running a command is not permitted")
        save_v = ctx.lookup_value
        if self.late:
            out, rc = items.run_command(ctx, self.raw, True)
        else:
            out, rc = items.run_command(ctx, self.node.ev(ctx), False)
        ctx.runrc = rc
        ctx.lookup_value = out
        r = self.yn.apply(ctx, rc == 0, out)
        ctx.lookup_value = out
        return r


class ReadSocketNode(Node):
    __slots__ = ("args", "failnode")
    _kids = ("args", "failnode")

    def __init__(self, args, failnode) -> None:
        self.args, self.failnode = args, failnode

    def ev(self, ctx) -> str:
        from eximpy.expand import items
        if ctx.expand_forbid & FORBID_READSOCK:
            raise ExpansionError("socket insertions are not permitted")
        vals = [a.ev(ctx) for a in self.args]
        try:
            r = items.readsocket(ctx, vals)
            skip(self.failnode, ctx)
            return r
        except items.SockFail as e:
            if self.failnode is None:
                raise ExpansionError(str(e))
            return self.failnode.ev(ctx)


class PrvsCheckNode(Node):
    __slots__ = ("args",)
    _kids = ("args",)

    def __init__(self, args) -> None:
        self.args = args

    def ev(self, ctx) -> str:
        from eximpy.expand import items
        return items.prvscheck(ctx, self.args)


class SimpleItem(Node):
    """Items whose arguments are all expanded first (read_subs)."""
    __slots__ = ("name", "args", "fn")
    _kids = ("args",)

    def __init__(self, name, args, fn) -> None:
        self.name, self.args, self.fn = name, args, fn

    def ev(self, ctx) -> str:
        vals = [a.ev(ctx) for a in self.args]
        return self.fn(ctx, vals)


def make_item(name: str, args: list, parser) -> Node:
    from eximpy.expand import items
    return SimpleItem(name, args, items.SIMPLE[name])


class OpNode(Node):
    __slots__ = ("op", "arg", "child", "name", "fn")
    _kids = ("child",)

    def __init__(self, op, arg, child, name) -> None:
        from eximpy.expand.operators import OPERATORS
        self.op, self.arg, self.child, self.name = op, arg, child, name
        self.fn = OPERATORS[op]

    def ev(self, ctx) -> str:
        sub = self.child.ev(ctx)
        return self.fn(ctx, sub, self.arg, self.name)


# ---------------------------------------------------------------- conditions

FORBID_LOOKUP = 0x1
FORBID_RUN = 0x2
FORBID_READFILE = 0x4
FORBID_READSOCK = 0x8
FORBID_EXISTS = 0x10
FORBID_PERL = 0x20
FORBID_DLFUNC = 0x40


class Cond:
    __slots__ = ("neg", "errmsg", "skipfx")
    _kids: tuple[str, ...] = ()

    def test(self, ctx) -> bool:  # pragma: no cover
        raise NotImplementedError


class DefHeader(Cond):
    __slots__ = ("name",)

    def __init__(self, neg, name) -> None:
        self.neg, self.name = neg, name

    def test(self, ctx) -> bool:
        found = find_header(ctx, self.name, False, False, None, exists_only=True)
        return (found is not None) != self.neg


class DefVar(Cond):
    __slots__ = ("name",)

    def __init__(self, neg, name) -> None:
        self.neg, self.name = neg, name

    def test(self, ctx) -> bool:
        v = ctx.get_var(self.name)
        if v is None:
            from eximpy.expand.variables import unknown_suffix
            raise ExpansionError(f'unknown variable "{self.name}" after "def:"'
                                 + unknown_suffix(self.name))
        return (v != "") != self.neg


class FlagCond(Cond):
    __slots__ = ("name",)

    def __init__(self, neg, name) -> None:
        self.neg, self.name = neg, name

    def test(self, ctx) -> bool:
        key = "deliver_firsttime" if self.name == "first_delivery" else "queue_running"
        v = ctx.variables.get(key)
        val = bool(v() if callable(v) else v) if v is not None else False
        return val != self.neg


class OneArgCond(Cond):
    __slots__ = ("name", "arg")
    _kids = ("arg",)

    def __init__(self, neg, name, arg) -> None:
        self.neg, self.name, self.arg = neg, name, arg

    def test(self, ctx) -> bool:
        from eximpy.expand import conditions as C
        sub = self.arg.ev(ctx)
        return C.one_arg(ctx, self.name, sub) != self.neg


class SubsCond(Cond):
    __slots__ = ("name", "args")
    _kids = ("args",)

    def __init__(self, neg, name, args) -> None:
        self.neg, self.name, self.args = neg, name, args

    def test(self, ctx) -> bool:
        from eximpy.expand import conditions as C
        vals = [a.ev(ctx) for a in self.args]
        return C.subs_cond(ctx, self.name, vals) != self.neg


class AndOr(Cond):
    __slots__ = ("name", "subs", "is_and")
    _kids = ("subs",)

    def __init__(self, neg, name, subs) -> None:
        self.neg, self.name, self.subs = neg, name, subs
        self.is_and = name == "and"

    def test(self, ctx) -> bool:
        is_and = self.is_and
        k = 0
        for c in self.subs:
            k += 1
            try:
                t = c.test(ctx)
            except ExpansionForcedFail as e:
                raise ExpansionForcedFail(f'{e} inside "{self.name}{{...}}" condition')
            except ExpansionError as e:
                raise ExpansionError(f'{e} inside "{self.name}{{...}}" condition')
            if (not t) is is_and:
                for rest in self.subs[k:]:     # scanned while skipping
                    if rest.skipfx:
                        ctx.runrc = 0
                    if rest.errmsg:
                        raise ExpansionError(
                            f'{rest.errmsg} inside "{self.name}{{...}}" condition')
                return bool(t) != self.neg
        return is_and != self.neg


class ForCond(Cond):
    __slots__ = ("name", "lst", "sub")
    _kids = ("lst", "sub")

    def __init__(self, neg, name, lst, sub) -> None:
        self.neg, self.name, self.lst, self.sub = neg, name, lst, sub

    def test(self, ctx) -> bool:
        from eximpy.expand.lists import iter_list
        lst = self.lst.ev(ctx)
        if self.sub.skipfx:
            ctx.runrc = 0
        if self.sub.errmsg:
            raise ExpansionError(f'{self.sub.errmsg} inside "{self.name}" condition')
        is_any = self.name.startswith("forany")
        is_json = "json" in self.name
        is_jsons = self.name.endswith("jsons")
        result = not (not self.neg)   # *yield = !testfor
        result = self.neg
        save_item = ctx.iterate_item
        try:
            if is_json:
                try:
                    body = dewrap(lst, "[]")
                except _Dewrap as e:
                    raise ExpansionError(f'{e} inside "{self.name}" condition')
                seq = json_items(body)
            else:
                seq = iter_list(lst)
            for item in seq:
                if is_jsons:
                    try:
                        item = dewrap(item, '""')
                    except _Dewrap as e:
                        raise ExpansionError(f"{e} wrapping string result for extract jsons")
                ctx.iterate_item = item
                try:
                    t = self.sub.test(ctx)
                except ExpansionForcedFail as e:
                    raise ExpansionForcedFail(f'{e} inside "{self.name}" condition')
                except ExpansionError as e:
                    raise ExpansionError(f'{e} inside "{self.name}" condition')
                result = t != self.neg
                if t == is_any:
                    break
        finally:
            ctx.iterate_item = save_item
        return result


class BoolCond(Cond):
    __slots__ = ("name", "arg")
    _kids = ("arg",)

    def __init__(self, neg, name, arg) -> None:
        self.neg, self.name, self.arg = neg, name, arg

    def test(self, ctx) -> bool:
        t = self.arg.ev(ctx).strip(_SPACE)
        lax = self.name == "bool_lax"
        if not t:
            v = False
        elif re.fullmatch(r"-?[0-9]*", t) and (t[0] != "-" or len(t) >= 1):
            try:
                v = int(t) != 0 if t not in ("-",) else False
            except ValueError:
                v = False
            if lax and len(t) > 1:
                v = True
        elif t.lower() in ("true", "yes"):
            v = True
        elif t.lower() in ("false", "no"):
            v = False
        elif lax:
            v = True
        else:
            raise ExpansionError(f'unrecognised boolean value "{t}"')
        return v != self.neg


class InboundSrs(Cond):
    __slots__ = ("args",)
    _kids = ("args",)

    def __init__(self, neg, args) -> None:
        self.neg, self.args = neg, args

    def test(self, ctx) -> bool:
        from eximpy.expand import items
        vals = [a.ev(ctx) for a in self.args]
        return items.inbound_srs(ctx, vals[0], vals[1]) != self.neg


class TwoArgCond(Cond):
    __slots__ = ("name", "a", "b", "fn")
    _kids = ("a", "b")

    def __init__(self, neg, name, a, b) -> None:
        from eximpy.expand import conditions as C
        self.neg, self.name, self.a, self.b = neg, name, a, b
        self.fn = C.TWO_ARG[name]

    def test(self, ctx) -> bool:
        x = self.a.ev(ctx)
        y = self.b.ev(ctx)
        return self.fn(ctx, x, y, self) != self.neg


# Specialised two-argument conditions for the hot paths (ACL conditions):
# the arguments are read without a call when they are a plain variable or
# literal text, and constant parts (a literal number, a literal regular
# expression) are prepared once per tree.  The results and errors are the
# generic ones (TwoArgCond), in the same order.

def _arg(node, ctx) -> str:
    if node.__class__ is Text:
        return node.s
    if node.__class__ is Var:
        v = ctx.variables.get(node.name)
        if v.__class__ is str or v.__class__ is Tainted:
            return v
    return node.ev(ctx)


_STR_WANT = {"eq": (0,), "lt": (-1,), "le": (-1, 0), "gt": (1,), "ge": (0, 1)}


class StrCmpCond(TwoArgCond):
    """eq lt le gt ge (caseful byte comparison)."""
    __slots__ = ("want",)

    def __init__(self, neg, name, a, b) -> None:
        self.neg, self.name, self.a, self.b, self.fn = neg, name, a, b, None
        self.want = _STR_WANT[name]

    def test(self, ctx) -> bool:
        a = self.a
        if a.__class__ is Var:
            x = ctx.variables.get(a.name)
            if x.__class__ is not str and x.__class__ is not Tainted:
                x = a.ev(ctx)
        else:
            x = a.s if a.__class__ is Text else a.ev(ctx)
        b = self.b
        y = b.s if b.__class__ is Text else _arg(b, ctx)
        if x == y:
            c = 0
        elif x.isascii() and y.isascii():
            c = -1 if x < y else 1
        else:
            c = bytes_cmp(x, y)
        return (c in self.want) != self.neg


_NUM_OPS = {"<": int.__lt__, "<=": int.__le__, "=": int.__eq__, "==": int.__eq__,
            ">": int.__gt__, ">=": int.__ge__}


def _to_int(s: str) -> int:
    if s.isdigit() and s.isascii() and len(s) < 18:
        return int(s)
    return 0 if s == "" else expanded_string_integer(s, False)


class NumCmpCond(TwoArgCond):
    """< <= = == > >= (integers with K/M/G suffixes)."""
    __slots__ = ("op", "bint")

    def __init__(self, neg, name, a, b) -> None:
        self.neg, self.name, self.a, self.b, self.fn = neg, name, a, b, None
        self.op = _NUM_OPS[name]
        self.bint = None      # a literal second argument's value, once known

    def test(self, ctx) -> bool:
        a = self.a
        if a.__class__ is Var:
            x = ctx.variables.get(a.name)
            if x.__class__ is not str and x.__class__ is not Tainted:
                x = a.ev(ctx)
        else:
            x = _arg(a, ctx)
        yi = self.bint
        if yi is None:
            b = self.b
            y = _arg(b, ctx)
            xi = _to_int(x)
            yi = _to_int(y)   # an error here comes after the first argument's
            if b.__class__ is Text:
                self.bint = yi
        else:
            xi = _to_int(x)
        return self.op(xi, yi) != self.neg


class MatchCond(TwoArgCond):
    """match: a literal pattern is compiled once per tree."""
    __slots__ = ("rx",)

    def __init__(self, neg, name, a, b) -> None:
        self.neg, self.name, self.a, self.b, self.fn = neg, name, a, b, None
        self.rx = None

    def test(self, ctx) -> bool:
        a = self.a
        if a.__class__ is Var:
            x = ctx.variables.get(a.name)
            if x.__class__ is not str and x.__class__ is not Tainted:
                x = a.ev(ctx)
        else:
            x = _arg(a, ctx)
        rx = self.rx
        if rx is None:
            b = self.b
            y = _arg(b, ctx)
            rx = compile_pcre(y)
            if b.__class__ is Text:
                self.rx = rx
        if rx.groups:
            return match_setup(ctx, rx, x) != self.neg
        m = rx.rx.search(x) if x.isascii() else rx.search(x)
        if m is None:
            return self.neg
        ctx.nstrings = [m.group(0)]
        return not self.neg


class MatchListCond(TwoArgCond):
    """match_domain, match_local_part, match_address, match_ip: the list
    (never expanded) goes straight to eximpy.match."""
    __slots__ = ("kind",)

    _KINDS = {"match_ip": 0, "match_domain": 1, "match_local_part": 2, "match_address": 3}

    def __init__(self, neg, name, a, b) -> None:
        self.neg, self.name, self.a, self.b, self.fn = neg, name, a, b, None
        self.kind = self._KINDS[name]

    def test(self, ctx) -> bool:
        a = self.a
        if a.__class__ is Var:
            x = ctx.variables.get(a.name)
            if x.__class__ is not str and x.__class__ is not Tainted:
                x = a.ev(ctx)
        else:
            x = _arg(a, ctx)
        b = self.b
        y = b.s if b.__class__ is Text else b.ev(ctx)
        kind = self.kind
        if kind == 1:
            rc, value = _M.match_isinlist(ctx, x, y, _M.MCL_DOMAIN, True)
        elif kind == 0:
            if x and ip_type(x, False)[0] == 0:
                raise ExpansionError(f'"{x}" is not an IP address')
            rc, value = _M.match_host_list(ctx, x, "", y, True)
        elif kind == 2:
            rc, value = _M.match_isinlist(ctx, x, y, _M.MCL_LOCALPART, True)
        else:
            rc, value = _M.match_address_list(ctx, x, y, True)
        ctx.lookup_value = value
        if rc == "OK":
            return not self.neg
        if rc == "FAIL":
            return self.neg
        raise ExpansionError(f'unable to complete match against "{y}": '
                             f'{ctx.search_error_message or ""}')


def two_arg_cond(neg, name, a, b) -> TwoArgCond:
    """The node for a two-argument condition (a specialised one when there is)."""
    if name in ("eq", "lt", "le", "gt", "ge"):
        return StrCmpCond(neg, name, a, b)
    if name in _NUM_OPS:
        return NumCmpCond(neg, name, a, b)
    if name == "match":
        return MatchCond(neg, name, a, b)
    if name.startswith("match_"):
        return MatchListCond(neg, name, a, b)
    return TwoArgCond(neg, name, a, b)
