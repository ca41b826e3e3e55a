"""Run-time parts of expansion conditions (${if <cond> ...}).

DESCRIPTION
    TWO_ARG maps each two-argument condition name to
    fn(ctx, sub0, sub1, node) -> bool (before any '!' negation).
    one_arg() handles exists/isip*/pam/radius/ldapauth/pwcheck and
    subs_cond() handles acl and saslauthd.

SEE ALSO
    spec section "Expansion conditions".
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket

from eximpy import match as M
from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.evaluate import expanded_string_integer, FORBID_EXISTS
from eximpy.expand.operators import to_bytes as _bytes, ip_type
from eximpy.expand.regex import compile_pcre, match_setup
from eximpy.expand.lists import iter_list


def _num(ctx, a, b, node):
    x = 0 if a == "" else expanded_string_integer(a, False)
    y = 0 if b == "" else expanded_string_integer(b, False)
    return x, y


def _cmp_factory(op):
    def f(ctx, a, b, node):
        x, y = _num(ctx, a, b, node)
        return {"<": x < y, "<=": x <= y, "=": x == y, "==": x == y, ">": x > y,
                ">=": x >= y}[op]
    return f


def _strcmp(a: str, b: str) -> int:
    x, y = _bytes(a), _bytes(b)
    return (x > y) - (x < y)


def _strcmpic(a: str, b: str) -> int:
    """Exim's strcmpic(), quirk included: when the first string ends, the
    result is the next byte of the second (so "" > "0")."""
    x, y = _bytes(a).lower(), _bytes(b).lower()
    for i, c in enumerate(x):
        d = y[i] if i < len(y) else 0
        if c != d:
            return c - d
    return y[len(x)] if len(y) > len(x) else 0


def _str_factory(op, ci):
    def f(ctx, a, b, node):
        c = _strcmpic(a, b) if ci else _strcmp(a, b)
        return {"lt": c < 0, "le": c <= 0, "eq": c == 0, "gt": c > 0, "ge": c >= 0}[op]
    return f


def cond_match(ctx, a, b, node):
    rx = compile_pcre(b)
    return match_setup(ctx, rx, a)


def cond_inlist(ctx, a, b, node):
    ci = node.name == "inlisti"
    la = _bytes(a).lower() if ci else None
    for item in iter_list(b):
        if (la == _bytes(item).lower()) if ci else (
                item == a or (not a.isascii() and _bytes(item) == _bytes(a))):
            ctx.lookup_value = item
            return True
    return False


def _matched(ctx, rc, lst):
    if rc == M.OK:
        return True
    if rc == M.FAIL:
        return False
    raise ExpansionError(f'unable to complete match against "{lst}": '
                         f'{ctx.search_error_message or ""}')


def cond_match_domain(ctx, a, b, node):
    rc, value = M.match_isinlist(ctx, a, b, M.MCL_DOMAIN, caseless=True)
    ctx.lookup_value = value
    return _matched(ctx, rc, b)


def cond_match_local_part(ctx, a, b, node):
    rc, value = M.match_isinlist(ctx, a, b, M.MCL_LOCALPART, caseless=True)
    ctx.lookup_value = value
    return _matched(ctx, rc, b)


def cond_match_address(ctx, a, b, node):
    rc, value = M.match_address_list(ctx, a, b, caseless=True)
    ctx.lookup_value = value
    return _matched(ctx, rc, b)


def cond_match_ip(ctx, a, b, node):
    if a and ip_type(a, allow_mask=False)[0] == 0:
        raise ExpansionError(f'"{a}" is not an IP address')
    rc, value = M.match_host_list(ctx, a, "", b, ip_only=True)
    ctx.lookup_value = value
    return _matched(ctx, rc, b)


def crypteq(plain: str, enc: str) -> bool:
    low = enc.lower()
    if low.startswith("{md5}"):
        body = enc[5:]
        d = hashlib.md5(_bytes(plain)).digest()
        if len(body) == 24:
            return base64.b64encode(d).decode() == body
        if len(body) == 32:
            return d.hex().upper() == body.upper()
        return False
    if low.startswith("{sha1}"):
        body = enc[6:]
        d = hashlib.sha1(_bytes(plain)).digest()
        if len(body) == 28:
            return base64.b64encode(d).decode() == body
        if len(body) == 40:
            return d.hex().upper() == body.upper()
        return False
    which = "crypt"
    if low.startswith("{crypt}"):
        enc = enc[7:]
    elif low.startswith("{crypt16}"):
        enc = enc[9:]
        which = "crypt16"
    elif enc.startswith("{"):
        raise ExpansionError(f'unknown encryption mechanism in "{enc}"')
    if len(enc) < 2:
        return False
    coded = _crypt(_bytes(plain), _bytes(enc))
    if coded is None:
        return False
    return coded == _bytes(enc)


def _crypt(word: bytes, salt: bytes) -> bytes | None:
    """crypt(3) on bytes (libcrypt, as Exim calls it): None on failure."""
    fn = _CRYPT.get("fn")
    if fn is None:
        import ctypes
        import ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        fn = lib.crypt
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        _CRYPT["fn"] = fn
    if b"\0" in word or b"\0" in salt:
        word, salt = word.split(b"\0")[0], salt.split(b"\0")[0]
    r = fn(word, salt)
    if not r or r.startswith(b"*"):
        return None
    return r


_CRYPT: dict[str, object] = {}       # the libcrypt function, once loaded


def cond_crypteq(ctx, a, b, node):
    return crypteq(a, b)


TWO_ARG = {
    "<": _cmp_factory("<"), "<=": _cmp_factory("<="), "=": _cmp_factory("="),
    "==": _cmp_factory("=="), ">": _cmp_factory(">"), ">=": _cmp_factory(">="),
    "lt": _str_factory("lt", False), "lti": _str_factory("lt", True),
    "le": _str_factory("le", False), "lei": _str_factory("le", True),
    "eq": _str_factory("eq", False), "eqi": _str_factory("eq", True),
    "gt": _str_factory("gt", False), "gti": _str_factory("gt", True),
    "ge": _str_factory("ge", False), "gei": _str_factory("ge", True),
    "match": cond_match, "inlist": cond_inlist, "inlisti": cond_inlist,
    "match_domain": cond_match_domain, "match_local_part": cond_match_local_part,
    "match_address": cond_match_address, "match_ip": cond_match_ip,
    "crypteq": cond_crypteq,
}


def one_arg(ctx, name: str, sub: str) -> bool:
    if name == "exists":
        if ctx.expand_forbid & FORBID_EXISTS:
            raise ExpansionError("File existence tests are not permitted")
        try:
            os.stat(sub)
            return True
        except OSError:
            return False
    if name in ("isip", "isip4", "isip6"):
        t = ip_type(sub, allow_mask=False)[0]
        return t != 0 if name == "isip" else t == (4 if name == "isip4" else 6)
    if name == "pam":
        from eximpy.expand import pam
        rc, msg = pam.authenticate(sub)
        if rc == "ERROR":
            raise ExpansionError(msg or "PAM error")
        return rc == "OK"
    if name == "ldapauth":
        if not sub.lstrip().lower().startswith(("ldap://", "ldaps://", "ldapi://")):
            raise ExpansionError("malformed parameter setting precedes LDAP URL")
        raise ExpansionError("LDAP authentication is not available in eximpy")
    raise ExpansionError(f'support for "{name}" not compiled')


def saslauthd(user: str, password: str, service: str | None, realm: str | None,
              path: str = "/var/run/saslauthd/mux") -> tuple[bool, str | None]:
    """Ask a saslauthd daemon; (ok, error message)."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
    except OSError as e:
        return False, f"cannot connect to saslauthd daemon at {path}: {e.strerror}"
    try:
        def field(v: str) -> bytes:
            b = _bytes(v)
            return len(b).to_bytes(2, "big") + b
        s.sendall(field(user) + field(password) + field(service or "") + field(realm or ""))
        hdr = s.recv(2)
        ln = int.from_bytes(hdr, "big")
        data = b""
        while len(data) < ln:
            chunk = s.recv(ln - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as e:
        return False, f"saslauthd: {e.strerror}"
    finally:
        s.close()
    return data.startswith(b"OK"), None


def subs_cond(ctx, name: str, vals: list[str]) -> bool:
    if name == "saslauthd":
        ok, err = saslauthd(vals[0], vals[1], vals[2] if len(vals) > 2 else None,
                            vals[3] if len(vals) > 3 and len(vals) > 2 else None)
        if err:
            raise ExpansionError(err)
        return ok
    # acl
    rc, msg = call_acl(ctx, vals)
    if rc in ("OK", "FAIL"):
        ctx.lookup_value = msg
        return rc == "OK"
    if rc == "DEFER":
        raise ExpansionForcedFail(f'{rc} from acl "{vals[0]}"')
    raise ExpansionError(f'{rc} from acl "{vals[0]}"')


def call_acl(ctx, vals: list[str]) -> tuple[str, str | None]:
    """Run an ACL for ${acl} or the acl condition."""
    name, args = vals[0], vals[1:]
    if ctx.acl_runner is None:
        acls = getattr(ctx.config, "acls", None) if ctx.config is not None else None
        if not acls or name not in acls:
            return "ERROR", None
        return "ERROR", None
    saved = {k: ctx.variables.get(k) for k in
             [f"acl_arg{i}" for i in range(1, 10)] + ["acl_narg"]}
    try:
        for i in range(9):
            ctx.variables[f"acl_arg{i + 1}"] = args[i] if i < len(args) else ""
        ctx.variables["acl_narg"] = str(len(args))
        return ctx.acl_runner(name, args)
    finally:
        for k, v in saved.items():
            if v is None:
                ctx.variables.pop(k, None)
            else:
                ctx.variables[k] = v
