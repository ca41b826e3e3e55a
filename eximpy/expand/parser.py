"""Expansion-string parser: text -> tree of nodes, cached by text.

DESCRIPTION
    ``parse(text)`` turns an expansion string into a tree whose nodes
    evaluate themselves (``node.ev(ctx)`` -> str).  Trees are cached by text,
    so repeating an expansion costs one dictionary lookup plus a walk.

    Exim expands while it reads, with a "skipping" flag for branches whose
    value is not needed; while skipping it still checks syntax, variable,
    operator, item, condition and lookup-type names.  Here the syntax is
    checked once, at parse time.  Errors Exim would meet while reading a
    well-formed piece (unknown variable or operator, def: of an unknown
    name, unknown lookup type, a malformed yes/no tail) stay in the tree at
    their place; every node knows the first such error in it (``errmsg``,
    see evaluate.annotate), and an unused branch raises it where Exim would
    have skipped over it.  A real syntax error becomes an ErrorNode after
    the top-level pieces that parsed, so (as in Exim) an error that an
    earlier piece raises when evaluated is reported first.

    The error texts are Exim 4.96's, word for word.

SEE ALSO
    spec chapter "String expansions"; eximpy/expand/evaluate.py (items,
    conditions), operators.py.
"""
from __future__ import annotations

import re

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand import evaluate as E
from eximpy.expand import variables as V
from eximpy.expand.bytestr import byte_char, norm
from eximpy.expand.taint import Tainted

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r\f\v")
_HEX = frozenset("0123456789abcdefABCDEF")

ITEMS = frozenset((
    "acl", "authresults", "certextract", "dlfunc", "env", "extract", "filter",
    "hash", "hmac", "if", "imapfolder", "length", "listextract", "listquote",
    "lookup", "map", "nhash", "perl", "prvs", "prvscheck", "python", "readfile",
    "readsocket", "reduce", "run", "sg", "sort", "srs_encode", "substr", "tr"))

OPS_UNDERSCORE = frozenset((
    "from_utf8", "local_part", "quote_local_part", "reverse_ip", "time_eval",
    "time_interval", "utf8_domain_from_alabel", "utf8_domain_to_alabel",
    "utf8_localpart_from_alabel", "utf8_localpart_to_alabel"))

OPS_MAIN = frozenset((
    "address", "addresses", "base32", "base32d", "base62", "base62d", "base64",
    "base64d", "domain", "escape", "escape8bit", "eval", "eval10", "expand", "h",
    "hash", "hex2b64", "hexquote", "ipv6denorm", "ipv6norm", "l", "lc", "length",
    "listcount", "listnamed", "mask", "md5", "nh", "nhash", "quote", "randint",
    "rfc2047", "rfc2047d", "rxquote", "s", "sha1", "sha2", "sha256", "sha3",
    "stat", "str2b64", "strlen", "substr", "uc", "utf8clean"))

CONDS = frozenset((
    "<", "<=", "=", "==", ">", ">=", "acl", "and", "bool", "bool_lax", "crypteq",
    "def", "eq", "eqi", "exists", "first_delivery", "forall", "forall_json",
    "forall_jsons", "forany", "forany_json", "forany_jsons", "ge", "gei", "gt",
    "gti", "inbound_srs", "inlist", "inlisti", "isip", "isip4", "isip6",
    "ldapauth", "le", "lei", "lt", "lti", "match", "match_address",
    "match_domain", "match_ip", "match_local_part", "or", "pam", "pwcheck",
    "queue_running", "radius", "saslauthd"))

CERT_VARS = frozenset(("tls_in_ourcert", "tls_in_peercert", "tls_out_ourcert",
                       "tls_out_peercert"))


class _Fail(Exception):
    """Internal: a parse error (carries Exim's text)."""


class _Curly(Exception):
    """Internal: a bracketing error (Exim's EXPAND_FAILED_CURLY path)."""


class _YesNoFail(Exception):
    """Internal: the {yes}{no} tail is malformed.  Exim finds this only after
    doing the item's work (a lookup, a condition), so the item is kept with
    a failing tail rather than failing at once."""


class _Deferred(Exception):
    """Internal: carries a node whose evaluation ends in a syntax error."""

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node


_NAME_RES = {"_": re.compile(r"[A-Za-z0-9_]*"), "_-": re.compile(r"[A-Za-z0-9_-]*")}


def read_name(s: str, i: int, extras: str) -> tuple[str, int]:
    m = _NAME_RES[extras].match(s, i)
    return m.group(0), m.end()


def interpret_escape(s: str, i: int) -> tuple[str, int]:
    """Exim's string_interpret_escape; s[i] is the backslash.  Returns the
    character and the index after the escape.  A byte above 0x7F is its
    surrogateescape character (bytestr.byte_char): the piece it ends up in
    goes through bytestr.norm(), so "\\xc3\\xbc" is "ü"."""
    n = len(s)
    p = i + 1
    if p >= n:
        return "\\", p
    ch = s[p]
    if ch in "01234567":
        v = ord(ch) - 48
        if p + 1 < n and s[p + 1] in "01234567":
            p += 1
            v = v * 8 + ord(s[p]) - 48
            if p + 1 < n and s[p + 1] in "01234567":
                p += 1
                v = v * 8 + ord(s[p]) - 48
        return byte_char(v & 0xff), p + 1
    if ch == "x":
        v = 0
        if p + 1 < n and s[p + 1] in _HEX:
            p += 1
            v = int(s[p], 16)
            if p + 1 < n and s[p + 1] in _HEX:
                p += 1
                v = v * 16 + int(s[p], 16)
        return byte_char(v), p + 1
    m = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}.get(ch)
    return (m if m is not None else ch), p + 1


def is_header_name(name: str) -> bool:
    t = 0
    if not name:
        return False
    if name[0] == "h":
        t = 1
    elif name[0] in "rlb" and len(name) > 1 and name[1] == "h":
        t = 2
    else:
        return False
    return name[t:t + 1] == "_" or name[t:t + 6] == "eader_"


def read_header_name(name: str, s: str, i: int) -> tuple[str, int]:
    """Complete a $h_xxx name: the part after the first '_' plus any printing
    characters up to ':', which is consumed; ':' is appended."""
    rest = name[name.index("_") + 1:]
    n = len(s)
    j = i
    while j < n and 0x21 <= ord(s[j]) <= 0x7e and s[j] != ":":
        j += 1
    rest += s[i:j]
    if j < n and s[j] == ":":
        j += 1
    return rest + ":", j


# --------------------------------------------------------------------------
# The parser

class Parser:
    """One parse of one expansion string."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)
        self.malformed_header = False
        # Errors kept in place (unknown variable/operator): Exim meets them
        # while reading, so they beat a syntax error found further on.
        self.inplace: list[str] = []
        self.mark = 0

    def inplace_error(self, msg: str):
        self.inplace.append(msg)
        return E.ErrorNode(msg)

    # -- helpers --
    def err(self, msg: str) -> _Fail:
        return _Fail(msg)

    def skip_ws(self, i: int) -> int:
        s, n = self.s, self.n
        while i < n and s[i] in _SPACE:
            i += 1
        return i

    def ch(self, i: int) -> str:
        return self.s[i] if i < self.n else ""

    def curly_msg(self, msg: str | None) -> str:
        if self.malformed_header:
            return ("missing or misplaced { or } - could be header name not "
                    "terminated by colon")
        return msg or "missing or misplaced { or }"

    # -- sequences --
    def seq(self, i: int, brace_ends: bool, dollar: bool = True,
            top: list | None = None) -> tuple[object, int]:
        """Parse text up to end (or an unmatched '}' when brace_ends).
        Returns (node, index of the terminating '}' or end)."""
        s, n = self.s, self.n
        parts: list = top if top is not None else []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                parts.append(E.Text(norm("".join(buf))))
                buf.clear()

        while i < n:
            c = s[i]
            if c == "\\":
                if i + 1 >= n:
                    raise self.err("\\ at end of string")
                if s[i + 1] == "N":
                    j = s.find("\\N", i + 2)
                    if j < 0:
                        buf.append(s[i + 2:])
                        i = n
                    else:
                        buf.append(s[i + 2:j])
                        i = j + 2
                else:
                    chv, i = interpret_escape(s, i)
                    buf.append(chv)
                continue
            if brace_ends and c == "}":
                break
            if c != "$" or not dollar:
                j = i + 1
                while j < n and s[j] not in "$}\\":
                    j += 1
                buf.append(s[i:j])
                i = j
                continue
            flush()
            if top is not None:
                self.mark = len(self.inplace)
            node, i = self.dollar(i + 1)
            if node is not None:
                parts.append(node)
        if brace_ends and i >= n:
            raise self.err("missing } at end of string - could be header name not "
                           "terminated by colon" if self.malformed_header
                           else "missing } at end of string")
        flush()
        return E.make_seq(parts), i

    def dollar(self, i: int) -> tuple[object, int]:
        s, n = self.s, self.n
        c = s[i] if i < n else ""
        if c in _ALPHA:
            name, i = read_name(s, i, "_")
            if is_header_name(name):
                hname, i = read_header_name(name, s, i)
                if "}" in hname:
                    self.malformed_header = True
                return E.Header(hname, name[0]), i
            if not V.is_known(name):
                return self.inplace_error(f'unknown variable name "{name}"'
                                          + V.unknown_suffix(name)), i
            return E.Var(name), i
        if c in _DIGIT:
            j = i
            while j < n and s[j] in _DIGIT:
                j += 1
            return E.NumVar(int(s[i:j])), j
        if c != "{":
            raise self.err("$ not followed by letter, digit, or {")
        i += 1
        c = s[i] if i < n else ""
        if c in _DIGIT:
            j = i
            while j < n and s[j] in _DIGIT:
                j += 1
            if j >= n or s[j] != "}":
                raise self.err("} expected after number")
            return E.NumVar(int(s[i:j])), j + 1
        if c not in _ALPHA:
            raise self.err("letter or digit expected after ${")
        name, i = read_name(s, i, "_-")
        if name in ITEMS:
            return self.item(name, i)
        if i < n and s[i] == ":":
            return self.operator(name, i)
        if i < n and s[i] == "}":
            if not V.is_known(name):
                return self.inplace_error(f'unknown variable in "${{{name}}}"'
                                          + V.unknown_suffix(name)), i + 1
            return E.Var(name), i + 1
        raise self.err(f'"${{{name}" is not a known operator (or a }} is missing in a '
                       f'variable reference)')

    def operator(self, name: str, i: int) -> tuple[object, int]:
        arg = None
        if name in OPS_UNDERSCORE:
            op = name
        else:
            base, us, rest = name.partition("_")
            arg = rest if us else None
            op = base if base in OPS_MAIN else None
        s = self.s
        # ${md5:$tls_in_peercert} and friends hash the certificate itself.
        if op in ("md5", "sha1", "sha256", "base64") and self.ch(i + 1) == "$":
            j = s.find("}", i + 2)
            if j > 0 and s[i + 2:j] in CERT_VARS:
                plain = E.OpNode(op, arg, E.CertRef(s[i + 2:j]), name)
                return E.CertOpNode(op, s[i + 2:j], plain), j + 1
        child, i = self.seq(i + 1, True)
        if op is None:
            msg = f'unknown expansion operator "{name}"'
            self.inplace.append(msg)
            return E.ErrorAfter(child, msg), i + 1
        return E.OpNode(op, arg, child, name), i + 1

    def subs(self, i: int, nmax: int, nmin: int, check_end: bool,
             name: str, dollar: bool = True) -> tuple[list, int]:
        """Exim's read_subs(): up to nmax {..} arguments."""
        out: list = []
        i = self.skip_ws(i)
        for k in range(nmax):
            if self.ch(i) != "{":
                if k < nmin:
                    raise _Curly(f"Not enough arguments for '{name}' (min is {nmin})")
                break
            node, i = self.seq(i + 1, True, dollar)
            i += 1
            out.append(node)
            i = self.skip_ws(i)
        if check_end:
            c = self.ch(i)
            i += 1
            if c != "}":
                if c == "{":
                    raise self.err(f"Too many arguments for '{name}' (max is {nmax})")
                raise _Curly(f"missing '}}' after '{name}'")
        return out, i

    def yesno(self, i: int, kind: str) -> tuple[object, int]:
        """Exim's process_yesno() syntax."""
        s, n = self.s, self.n
        i = self.skip_ws(i)
        if i < n and s[i] == "}":
            return E.YesNo(kind, None, None, False, False), i + 1
        if i >= n or s[i] != "{":
            raise _YesNoFail("curly-bracket problem in conditional yes/no parsing: 'yes' "
                             "part did not start with '{'\n remaining string is '"
                             + s[i:] + "'")
        yes, i = self.seq(i + 1, True)
        i += 1
        i = self.skip_ws(i)
        no = None
        fail = False
        if i < n and s[i] == "{":
            no, i = self.seq(i + 1, True)
            i += 1
        elif i < n and s[i] != "}":
            word, i = read_name(s, i, "_")
            if word != "fail":
                raise self.err(f'syntax error in "{kind}" item - "fail" expected')
            fail = True
            j = self.skip_ws(i)
            if j >= n or s[j] != "}":
                raise _YesNoFail("curly-bracket problem in conditional yes/no parsing: "
                                 "did not close with '}' after forcedfail\n remaining "
                                 "string is '" + s[j:] + "'")
        i = self.skip_ws(i)
        if i >= n or s[i] != "}":
            raise _YesNoFail("curly-bracket problem in conditional yes/no parsing: did "
                             "not close with '}'\n remaining string is '" + s[i:] + "'")
        return E.YesNo(kind, yes, no, fail, True), i + 1

    # -- items --
    def item(self, name: str, i: int) -> tuple[object, int]:
        try:
            return self._item(name, i)
        except _Curly as e:
            raise self.err(self.curly_msg(str(e)))

    def tail(self, i: int, kind: str, make):
        """Parse a yes/no tail; on a malformed tail, defer the error until
        the item has done its work (see _YesNoFail)."""
        try:
            yn, i = self.yesno(i, kind)
            return make(yn), i
        except _YesNoFail as e:
            raise _Deferred(make(E.YesNoError(self.curly_msg(str(e)))))

    def _item(self, name: str, i: int) -> tuple[object, int]:
        s, n = self.s, self.n
        if name in ("acl", "authresults", "dlfunc", "hmac", "listquote", "perl", "python",
                    "prvs", "readfile", "sg", "srs_encode", "tr", "imapfolder",
                    "hash", "nhash", "substr", "length"):
            nmax, nmin = {
                "acl": (10, 1), "authresults": (1, 1), "dlfunc": (10, 2), "python": (10, 1),
                "hmac": (3, 3), "listquote": (2, 2), "perl": (9, 1), "prvs": (3, 2),
                "readfile": (2, 1), "sg": (3, 3), "srs_encode": (3, 3), "tr": (3, 3),
                "imapfolder": (3, 1), "hash": (3, 2), "nhash": (3, 2),
                "substr": (3, 2), "length": (2, 2)}[name]
            args, i = self.subs(i, nmax, nmin, True, name)
            return E.make_item(name, args, self), i
        if name == "if":
            i = self.skip_ws(i)
            cond, i = self.condition(i)
            return self.tail(i, "if", lambda yn: E.IfNode(cond, yn))
        if name == "lookup":
            return self.lookup(i)
        if name == "env":
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise self.err("")
            key, i = self.seq(i + 1, True)
            i += 1
            return self.tail(i, "env", lambda yn: E.EnvNode(key, yn))
        if name == "extract":
            return self.extract(i)
        if name == "listextract":
            args = []
            for k in range(2):
                i = self.skip_ws(i)
                if self.ch(i) != "{":
                    raise _Curly(f"missing '{{' for arg {k + 1} of listextract")
                node, i = self.seq(i + 1, True)
                i += 1
                args.append(node)
            return self.tail(i, "listextract",
                             lambda yn: E.ListExtractNode(args[0], args[1], yn))
        if name == "certextract":
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for field arg of certextract")
            field, i = self.seq(i + 1, True)
            i += 1
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for cert variable arg of certextract")
            i += 1
            if self.ch(i) != "$":
                raise self.err('second argument of "certextract" must be a certificate '
                               'variable')
            var, i = self.seq(i + 1, True, False)
            i += 1
            return self.tail(i, "certextract",
                             lambda yn: E.CertExtractNode(field, var, yn))
        if name in ("filter", "map", "reduce"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly(f"missing '{{' for first arg of {name}")
            lst, i = self.seq(i + 1, True)
            i += 1
            init = None
            if name == "reduce":
                i = self.skip_ws(i)
                if self.ch(i) != "{":
                    raise _Curly("missing '{' for second arg of reduce")
                init, i = self.seq(i + 1, True)
                i += 1
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly(f"missing '{{' for last arg of {name}")
            try:
                if name == "filter":
                    expr, i = self.condition(i + 1)
                else:
                    expr, i = self.seq(i + 1, True)
            except _Fail as e:
                raise self.err(f'{e} inside "{name}" item')
            i = self.skip_ws(i)
            if self.ch(i) != "}":
                raise self.err(f'missing }} at end of condition or expression inside '
                               f'"{name}"; could be an unquoted }} in the content')
            i = self.skip_ws(i + 1)
            if self.ch(i) != "}":
                raise self.err(f'missing }} at end of "{name}"')
            return E.ListOpNode(name, lst, init, expr), i + 1
        if name == "sort":
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for list arg of sort")
            lst, i = self.seq(i + 1, True)
            i += 1
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for comparator arg of sort")
            cmp, i = self.seq(i + 1, True, False)
            i += 1
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for extractor arg of sort")
            start = i + 1
            xnode, i = self.seq(i + 1, True)
            xtext = s[start:i]
            i += 1
            if self.ch(i) != "}":
                raise self.err('missing } at end of "sort"')
            return E.SortNode(lst, cmp, xtext, xnode), i + 1
        if name == "run":
            late = True
            while self.ch(i) == ",":
                if s.startswith("preexpand", i + 1):
                    late = False
                    i += 10
                else:
                    t = i + 1
                    while t + 1 < n and s[t + 1] in _ALPHA:
                        t += 1
                    raise self.err(f"bad option '{s[i + 1:t + 1]}' for run")
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise _Curly("missing '{' for command arg of run")
            start = i + 1
            node, i = self.seq(i + 1, True)
            raw = s[start:i]
            i += 1
            return self.tail(i, "run", lambda yn: E.RunNode(late, raw, node, yn))
        if name == "readsocket":
            args, i = self.subs(i, 4, 2, False, name)
            failnode = None
            if self.ch(i) == "{":
                failnode, i = self.seq(i + 1, True)
                i += 1
                i = self.skip_ws(i)
            if self.ch(i) != "}":
                raise _Curly("missing '}' closing readsocket")
            return E.ReadSocketNode(args, failnode), i + 1
        if name == "prvscheck":
            args, i = self.subs(i, 3, 1, True, name)
            return E.PrvsCheckNode(args), i
        raise self.err(f'"${{{name}" is not a known operator')

    def lookup(self, i: int) -> tuple[object, int]:
        from eximpy.lookups import findtype_partial
        s, n = self.s, self.n
        i = self.skip_ws(i)
        key = None
        if self.ch(i) == "{":
            key, i = self.seq(i + 1, True)
            i += 1
            i = self.skip_ws(i)
        if self.ch(i) not in _ALPHA:
            raise self.err("missing lookup type")
        j = i
        while j < n and s[j] != "{" and s[j] not in _SPACE:
            j += 1
        tname = s[i:j]
        i = self.skip_ws(j)
        msg = None
        try:
            spec = findtype_partial(tname)
        except ExpansionError as e:
            spec = None
            msg = str(e)
        if spec is not None:
            if not spec.lookup.query_style:
                if key is None:
                    msg = f'missing {{key}} for single-key "{tname}" lookup'
            elif key is not None:
                msg = (f'a single key was given for lookup type "{tname}", which is '
                       f'not a single-key lookup type')
        if msg is not None:
            # Exim stops here (after expanding the key); keep reading so the
            # error sits in its place and is also met in unused branches.
            self.inplace.append(msg)
            node = E.ErrorAfter(key if key is not None else E.Text(""), msg)
            if self.ch(i) == "{":
                _arg, i = self.seq(i + 1, True)
                i += 1
                i = self.skip_ws(i)
                try:
                    _yn, i = self.yesno(i, "lookup")
                except _YesNoFail:
                    i = self.n
            return node, i
        if self.ch(i) != "{":
            raise _Curly("missing '{' for lookup file-or-query arg")
        arg, i = self.seq(i + 1, True)
        i += 1
        i = self.skip_ws(i)
        return self.tail(i, "lookup", lambda yn: E.LookupNode(key, spec, tname, arg, yn))

    def extract(self, i: int) -> tuple[object, int]:
        s = self.s
        i = self.skip_ws(i)
        fmt = "basic"
        if self.ch(i) != "{" and s.startswith("json", i):
            i += 4
            if self.ch(i) == "s":
                fmt = "jsons"
                i += 1
            else:
                fmt = "json"
        args = []
        starts = []
        # Exim decides at run time how many arguments the extraction takes
        # (numbered: 3, keyed or json: 2); the rest are the yes/no strings.
        while True:
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                break
            starts.append(i)
            node, i = self.seq(i + 1, True)
            i += 1
            args.append(node)
        i = self.skip_ws(i)
        fail_at = None
        if s.startswith("fail", i) and self.ch(i + 4) in ("}", " ", "\t", ""):
            fail_at = i
            i = self.skip_ws(i + 4)
        if len(args) < 2:
            raise _Curly(f"missing '{{' for arg {len(args) + 1} of extract")
        if self.ch(i) != "}":
            raise _Curly("missing '}' closing extract")
        node = E.ExtractNode(fmt, args, fail_at is not None)
        node.tails = [s[p:] for p in starts] + [s[fail_at:] if fail_at is not None else ""]
        return node, i + 1

    # -- conditions --
    def condition(self, i: int) -> tuple[object, int]:
        """Parse a condition; returns (node, index after it)."""
        s, n = self.s, self.n
        neg = False
        while True:
            i = self.skip_ws(i)
            if i < n and s[i] == "!":
                neg = not neg
                i += 1
            else:
                break
        if i < n and s[i] in "=<>":
            j = i + 1
            if j < n and s[j] == "=":
                j += 1
            name = s[i:j]
            i = j
        else:
            name, i = read_name(s, i, "_")
        if not name:
            raise self.err(f'condition name expected, but found "{s[i:i + 16]}"')
        if name not in CONDS:
            raise self.err(f'unknown condition "{name}"')

        def curly_start() -> _Fail:
            return self.err(f'missing {{ after "{name}"')

        if name == "def":
            if self.ch(i) != ":":
                raise self.err('":" expected after "def"')
            vname, i = read_name(s, i + 1, "_")
            if is_header_name(vname):
                hname, i = read_header_name(vname, s, i)
                if "}" in hname:
                    self.malformed_header = True
                return E.DefHeader(neg, hname), i
            if not V.is_known(vname):
                msg = (f'unknown variable "{vname}" after "def:"' if vname
                       else 'variable name omitted after "def:"')
                self.inplace.append(msg + V.unknown_suffix(vname))
                return E.ErrorCond(msg + V.unknown_suffix(vname)), i
            return E.DefVar(neg, vname), i
        if name in ("first_delivery", "queue_running"):
            return E.FlagCond(neg, name), i
        if name in ("exists", "isip", "isip4", "isip6", "pam", "radius", "ldapauth",
                    "pwcheck"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            node, i = self.seq(i + 1, True)
            return E.OneArgCond(neg, name, node), i + 1
        if name in ("acl", "saslauthd"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            try:
                args, i = self.subs(i + 1, 10 if name == "acl" else 4,
                                    1 if name == "acl" else 2, True, name)
            except _Curly:
                raise self.err(f"too few arguments or bracketing error for {name}")
            return E.SubsCond(neg, name, args), i
        if name in ("and", "or"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            i += 1
            subs = []
            while True:
                i = self.skip_ws(i)
                if self.ch(i) == "}":
                    break
                if self.ch(i) != "{":
                    raise self.err(f'each subcondition inside an "{name}{{...}}" '
                                   f'condition must be in its own {{}}')
                try:
                    sub, i = self.condition(i + 1)
                except _Fail as e:
                    raise self.err(f'{e} inside "{name}{{...}}" condition')
                i = self.skip_ws(i)
                if self.ch(i) != "}":
                    raise self.err(f'missing }} at end of condition inside "{name}" group')
                i += 1
                subs.append(sub)
            return E.AndOr(neg, name, subs), i + 1
        if name.startswith("for"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            lst, i = self.seq(i + 1, True)
            i += 1
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            try:
                sub, i = self.condition(i + 1)
            except _Fail as e:
                raise self.err(f'{e} inside "{name}" condition')
            i = self.skip_ws(i)
            if self.ch(i) != "}":
                raise self.err(f'missing }} at end of condition inside "{name}"')
            return E.ForCond(neg, name, lst, sub), i + 1
        if name in ("bool", "bool_lax"):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                raise curly_start()
            try:
                args, i = self.subs(i, 1, 1, False, name)
            except _Curly:
                raise self.err(f"too few arguments or bracketing error for {name}")
            return E.BoolCond(neg, name, args[0]), i
        if name == "inbound_srs":
            try:
                args, i = self.subs(i, 2, 2, False, name)
            except _Curly:
                raise self.err("too few arguments or bracketing error for inbound_srs")
            return E.InboundSrs(neg, args), i
        # two-argument conditions
        dollar2 = not name.startswith("match_")
        args = []
        for k in range(2):
            i = self.skip_ws(i)
            if self.ch(i) != "{":
                if k == 0:
                    raise curly_start()
                raise self.err(f'missing 2nd string in {{}} after "{name}"')
            node, i = self.seq(i + 1, True, dollar2 or k == 0)
            i += 1
            args.append(node)
        return E.two_arg_cond(neg, name, args[0], args[1]), i


def parse(text: str):
    """Parse an expansion string into a node (not cached; see parse_cached)."""
    p = Parser(norm(text))
    top: list = []
    try:
        node, _ = p.seq(0, False, True, top)
        E.annotate(node)
        return node
    except _Deferred as d:
        node = E.make_seq(list(top) + [d.node])
    except _Fail as e:
        # Keep what parsed before the failing piece, so evaluation raises any
        # earlier runtime error first, as Exim's sequential expansion would.
        early = p.inplace[p.mark:]
        node = E.make_seq(list(top) + [E.ErrorNode(early[0] if early else str(e))])
    except ExpansionError as e:
        node = E.make_seq(list(top) + [E.ErrorNode(str(e))])
    except RecursionError:
        return E.ErrorNode("expansion nested too deeply")
    E.annotate(node)
    return node


_CACHE: dict[str, object] = {}
_CACHE_MAX = 20000


def parse_cached(text: str):
    """parse() with a per-process cache keyed by the text."""
    node = _CACHE.get(text)
    if node is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        node = parse(str.__str__(text) if type(text) is Tainted else text)
        _CACHE[text] = node
    return node
