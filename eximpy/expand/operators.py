"""Expansion operators: ${op:string} and ${op_arg:string}.

DESCRIPTION
    OPERATORS maps each operator name (as in Exim's op_table_main and
    op_table_underscore) to fn(ctx, sub, arg, name) -> str, where ``sub`` is
    the expanded string, ``arg`` the text after the first '_' (or None) and
    ``name`` the operator as written (for error messages).

    Strings are byte strings carried in ``str`` as UTF-8 with
    surrogateescape (eximpy/expand/bytestr.py), and operators work on their
    bytes, as Exim does: ${strlen:} counts bytes, ${length_1:ü} is the lone
    byte 0xC3, ${uc:} and ${lc:} change ASCII letters only.

SEE ALSO
    spec chapter "String expansions", section "Expansion operators".
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import random
import re
import stat as _stat

from eximpy.errors import ExpansionError
from eximpy.expand.taint import Tainted, is_tainted, like
from eximpy.expand.bytestr import (to_bytes, from_bytes, norm, to_l1, from_l1,  # noqa: F401
                                   _LC, _UC)

_SPACE = " \t\n\r\f\v"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
HASHCODES = "abcdefghijklmnopqrtsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
          73, 79, 83, 89, 97, 101, 103, 107, 109, 113)
ARITH_MAX = 2 ** 63 - 1
ARITH_MIN = -2 ** 63




def _wrap64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= (1 << 63) else v


def _strtoul(s: str) -> tuple[int, str]:
    """C strtoul(s, &end, 10): returns (value, rest)."""
    m = re.match(r"[ \t\n\r\f\v]*([+-]?)(\d+)", s)
    if not m:
        return 0, s
    v = int(m.group(2))
    if m.group(1) == "-":
        v = (-v) & 0xFFFFFFFFFFFFFFFF
    return min(v, 0xFFFFFFFFFFFFFFFF), s[m.end():]


# ---------------------------------------------------------------- simple ops

def op_lc(ctx, sub, arg, name):
    return like(sub.translate(_LC), sub)


def op_uc(ctx, sub, arg, name):
    return like(sub.translate(_UC), sub)


def op_strlen(ctx, sub, arg, name):
    return str(len(to_bytes(sub)))


def op_md5(ctx, sub, arg, name):
    return hashlib.md5(to_bytes(sub)).hexdigest()


def op_sha1(ctx, sub, arg, name):
    return hashlib.sha1(to_bytes(sub)).hexdigest().upper()


def op_sha2(ctx, sub, arg, name):
    algo = {None: "sha256", "256": "sha256", "384": "sha384", "512": "sha512"}.get(
        arg if name.startswith("sha2") else None)
    if name.startswith("sha256"):
        algo = "sha256"
    if algo is None:
        raise ExpansionError("unrecognised sha2 variant")
    return hashlib.new(algo, to_bytes(sub)).hexdigest().upper()


def op_sha3(ctx, sub, arg, name):
    algo = {None: "sha3_256", "224": "sha3_224", "256": "sha3_256", "384": "sha3_384",
            "512": "sha3_512"}.get(arg)
    if algo is None:
        raise ExpansionError("unrecognised sha3 variant")
    return hashlib.new(algo, to_bytes(sub)).hexdigest().upper()


def op_base32(ctx, sub, arg, name):
    n, rest = _strtoul(sub)
    if rest:
        raise ExpansionError(f'argument for base32 operator is "{sub}", which is not a '
                             f'decimal number')
    out = []
    while n:
        out.append(BASE32[n & 0x1f])
        n >>= 5
    return "".join(reversed(out))


def op_base32d(ctx, sub, arg, name):
    n = 0
    for c in sub:
        k = BASE32.find(c)
        if k < 0 or c == "":
            raise ExpansionError(f'argument for base32d operator is "{sub}", which is not '
                                 f'a base 32 number')
        n = (n * 32 + k) & 0xFFFFFFFFFFFFFFFF
    return str(_wrap64(n))


def op_base62(ctx, sub, arg, name):
    n, rest = _strtoul(sub)
    if rest:
        raise ExpansionError(f'argument for base62 operator is "{sub}", which is not a '
                             f'decimal number')
    out = []
    for _ in range(6):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def op_base62d(ctx, sub, arg, name):
    n = 0
    for c in sub:
        k = BASE62.find(c)
        if k < 0:
            raise ExpansionError(f'argument for base62d operator is "{sub}", which is not '
                                 f'a base 62 number')
        n = (n * 62 + k) & 0xFFFFFFFFFFFFFFFF
    return str(_wrap64(n))


def op_base64(ctx, sub, arg, name):
    return base64.b64encode(to_bytes(sub)).decode("ascii")


def b64decode(s: str) -> bytes | None:
    """Exim's b64decode(): None if malformed (white space is ignored, the
    length must be a multiple of 4)."""
    t = s.encode("latin-1", "replace")
    t = re.sub(rb"[ \t\r\n\f\v]", b"", t)
    if len(t) % 4:
        return None
    if not re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", t):
        return None
    if len(t) % 4 and b"=" in t:
        return None
    try:
        return base64.b64decode(t + b"=" * (-len(t) % 4))
    except Exception:
        return None


def op_base64d(ctx, sub, arg, name):
    b = b64decode(sub)
    if b is None:
        raise ExpansionError(f'string "{sub}" is not well-formed for "{name}" operator')
    return like(from_bytes(b.split(b"\0")[0]), sub)


def _b64_unpadded_ok(s: str) -> bool:
    return False


def op_str2b64(ctx, sub, arg, name):
    return op_base64(ctx, sub, arg, name)


def op_hex2b64(ctx, sub, arg, name):
    if not re.fullmatch(r"[0-9a-fA-F]*", sub):
        raise ExpansionError(f'"{sub}" is not a hex string')
    if len(sub) % 2:
        raise ExpansionError(f'"{sub}" contains an odd number of characters')
    return base64.b64encode(bytes.fromhex(sub)).decode("ascii")


def op_hexquote(ctx, sub, arg, name):
    out = []
    for b in to_bytes(sub):
        out.append(f"\\x{b:02x}" if b < 0x21 or b > 0x7e else chr(b))
    return like("".join(out), sub)


def string_printing(s: str, allow_tab: bool = True) -> str:
    """Exim's string_printing(): escape non-printing bytes."""
    out = []
    for b in to_bytes(s):
        if 0x20 <= b < 0x7f or (b == 9 and allow_tab):
            out.append(chr(b))
        elif b == 10:
            out.append("\\n")
        elif b == 13:
            out.append("\\r")
        elif b == 8:
            out.append("\\b")
        elif b == 11:
            out.append("\\v")
        elif b == 12:
            out.append("\\f")
        elif b == 9:
            out.append("\\t")
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def op_escape(ctx, sub, arg, name):
    return like(string_printing(sub), sub)


def op_escape8bit(ctx, sub, arg, name):
    out = []
    for b in to_bytes(sub):
        out.append(chr(b) if b < 127 and b != 0x5c else f"\\{b:03o}")
    return like("".join(out), sub)


def op_rxquote(ctx, sub, arg, name):
    out = []
    for c in sub if sub.isascii() else to_l1(sub):     # every byte
        if not (c.isascii() and c.isalnum()):
            out.append("\\")
        out.append(c)
    return like(from_l1("".join(out)), sub)


def op_quote(ctx, sub, arg, name):
    if arg is not None and name.startswith("quote_") and name != "quote_local_part":
        from eximpy.lookups import quote_for
        lookup, _, opt = arg.partition("_")
        return like(quote_for(lookup, opt or None, sub), sub)
    local = name == "quote_local_part"
    needs = sub == ""
    if not needs:
        for k, c in enumerate(sub):
            if c.isascii() and c.isalnum():
                continue
            if local:
                if c in "!#$%&'*+-/=?^_`{|}~":
                    continue
                if c == "." and k != 0 and k != len(sub) - 1:
                    continue
            elif c in "_-.":
                continue
            needs = True
            break
    if not needs:
        return sub
    out = ['"']
    for c in sub:
        if c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        else:
            if c in '\\"':
                out.append("\\")
            out.append(c)
    out.append('"')
    return like("".join(out), sub)


def compute_hash(sub: str, value1: int, value2: int) -> str:
    b = bytearray(to_bytes(sub))
    sublen = len(b)
    if value2 < 0:
        value2 = 26
    elif value2 > len(HASHCODES):
        raise ExpansionError(f'hash count "{value2}" too big')
    if value1 < sublen:
        i = 0
        j = value1
        while j < sublen:
            c = b[j]
            shift = (c + j) & 7
            j += 1
            b[i] = (b[i] ^ ((c << shift) | (c >> (8 - shift)))) & 0xff
            i += 1
            if i >= value1:
                i = 0
        return "".join(HASHCODES[b[k] % value2] for k in range(value1))
    return sub


def compute_nhash(sub: str, value1: int, value2: int) -> str:
    total = 0
    i = 0
    for c in to_bytes(sub):
        if i == 0:
            i = len(PRIMES) - 1
        total += PRIMES[i] * c
        i -= 1
    total &= 0xFFFFFFFFFFFFFFFF
    if value1 == 0 or (value2 >= 0 and value1 * value2 == 0):
        raise ExpansionError("division by zero in nhash")
    if value2 < 0:
        return str(total % value1)
    total = total % (value1 * value2)
    return f"{total // value2}/{total % value2}"


def extract_substr(sub: str, value1: int, value2: int) -> str:
    """Exim's extract_substr(): offsets and lengths count bytes."""
    b = None if sub.isascii() else to_bytes(sub)
    sublen = len(sub) if b is None else len(b)
    if value1 < 0:
        value1 += sublen
        if value1 < 0:
            value2 += value1
            if value2 < 0:
                value2 = 0
            value1 = 0
        elif value2 < 0:
            value2 = value1
            value1 = 0
    else:
        if value1 > sublen:
            value1 = sublen
            value2 = 0
        elif value2 < 0:
            value2 = sublen
    if value1 + value2 > sublen:
        value2 = sublen - value1
    if b is not None:
        return like(from_bytes(b[value1:value1 + value2]), sub)
    return like(sub[value1:value1 + value2], sub)


def op_lengthlike(ctx, sub, arg, name):
    base = name.split("_", 1)[0]
    if arg is None:
        raise ExpansionError(f"missing values after {name}")
    sign = 1
    value1 = 0
    value2 = -1
    if base in ("length", "l"):
        which = 2
        value2 = 0
    else:
        which = 1
        if name[0] == "s" and arg.startswith("-"):
            sign = -1
            arg = arg[1:]
    start = 0
    k = 0
    while k < len(arg):
        c = arg[k]
        if k != start and c == "_" and which == 1:
            which = 2
            value2 = 0
            if k + 1 < len(arg):
                k += 1
            continue          # a final "_" is looked at again: a non-digit
        if not c.isdigit() or not c.isascii():
            raise ExpansionError(f'non-digit after underscore in "{name}"')
        if which == 1:
            value1 = value1 * 10 + ord(c) - 48
        else:
            value2 = value2 * 10 + ord(c) - 48
        k += 1
    value1 *= sign
    if base in ("hash", "h"):
        return compute_hash(sub, value1, value2)
    if base in ("nhash", "nh"):
        return compute_nhash(sub, value1, value2)
    return extract_substr(sub, value1, value2)


# ---------------------------------------------------------------- eval

class _Eval:
    def __init__(self, s: str, decimal: bool) -> None:
        self.s = s
        self.i = 0
        self.decimal = decimal
        self.error: str | None = None

    def ws(self) -> None:
        s = self.s
        while self.i < len(s) and s[self.i] in _SPACE:
            self.i += 1

    def c(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def expr(self, endket: bool) -> int:
        x = self.op_or()
        if self.error is None:
            if endket:
                if self.c() != ")":
                    self.error = "expecting closing parenthesis"
                else:
                    self.i += 1
                    self.ws()
            elif self.c():
                self.error = "expecting operator"
        return x

    def number(self) -> int:
        self.ws()
        c = self.c()
        if c.isdigit() and c.isascii():
            s = self.s
            if self.decimal:
                m = re.compile(r"\d+").match(s, self.i)
                n = int(m.group(0))
            else:
                m = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9]\d*").match(s, self.i)
                t = m.group(0)
                if t[:2].lower() == "0x":
                    n = int(t, 16) if len(t) > 2 else 0    # glibc: "0x" reads as 0
                elif t.startswith("0"):
                    n = int(t, 8) if len(t) > 1 else 0
                else:
                    n = int(t)
            n = min(n, ARITH_MAX)
            self.i = m.end()
            k = self.c().lower()
            if k == "k":
                n *= 1024
                self.i += 1
            elif k == "m":
                n *= 1024 * 1024
                self.i += 1
            elif k == "g":
                n *= 1024 * 1024 * 1024
                self.i += 1
            self.ws()
            return _wrap64(n)
        if c == "(":
            self.i += 1
            return self.expr(True)
        self.error = "expecting number or opening parenthesis"
        return 0

    def unary(self) -> int:
        self.ws()
        c = self.c()
        if c in ("+", "-", "~") and c:
            self.i += 1
            x = self.unary()
            if c == "-":
                x = _wrap64(-x)
            elif c == "~":
                x = ~x
            return x
        return self.number()

    def mult(self) -> int:
        x = self.unary()
        if self.error is None:
            while self.c() in ("*", "/", "%") and self.c():
                op = self.c()
                self.i += 1
                y = self.unary()
                if self.error:
                    break
                if y == -1 and x == ARITH_MIN and op != "*":
                    x = ARITH_MAX
                    continue
                if op == "*":
                    x = _wrap64(x * y)
                else:
                    if y == 0:
                        self.error = "divide by zero" if op == "/" else "modulo by zero"
                        x = 0
                        break
                    q = abs(x) // abs(y)
                    if (x < 0) != (y < 0):
                        q = -q
                    x = q if op == "/" else x - q * y
        return x

    def sum(self) -> int:
        x = self.mult()
        if self.error is None:
            while self.c() in ("+", "-") and self.c():
                op = self.c()
                self.i += 1
                y = self.mult()
                if self.error:
                    break
                if x >= ARITH_MAX // 2 or (x <= -(ARITH_MAX // 2) and y <= -(ARITH_MAX // 2)):
                    self.error = "overflow in sum" if op == "+" else "overflow in difference"
                    break
                x = _wrap64(x + y if op == "+" else x - y)
        return x

    def shift(self) -> int:
        x = self.sum()
        if self.error is None:
            while self.c() in ("<", ">") and self.c() and self.s[self.i + 1:self.i + 2] == self.c():
                op = self.c()
                self.i += 2
                y = self.sum()
                if self.error:
                    break
                if op == "<":
                    x = _wrap64(x << (y & 63))
                else:
                    x = x >> (y & 63)
        return x

    def op_and(self) -> int:
        x = self.shift()
        if self.error is None:
            while self.c() == "&":
                self.i += 1
                y = self.shift()
                if self.error:
                    break
                x &= y
        return x

    def op_xor(self) -> int:
        x = self.op_and()
        if self.error is None:
            while self.c() == "^":
                self.i += 1
                y = self.op_and()
                if self.error:
                    break
                x ^= y
        return x

    def op_or(self) -> int:
        x = self.op_xor()
        if self.error is None:
            while self.c() == "|":
                self.i += 1
                y = self.op_xor()
                if self.error:
                    break
                x |= y
        return x


def eval_expr(sub: str, decimal: bool) -> int:
    e = _Eval(sub, decimal)
    n = e.expr(False)
    if e.error:
        raise ExpansionError(f'error in expression evaluation: {e.error} (after processing '
                             f'"{sub[:e.i]}")')
    return n


def op_eval(ctx, sub, arg, name):
    return str(eval_expr(sub, name.startswith("eval10")))


# ---------------------------------------------------------------- times

def readtime(s: str) -> int:
    """Exim's readconf_readtime(s, 0, FALSE): -1 if malformed."""
    if not s:
        return -1
    total = 0
    i = 0
    n = len(s)
    while True:
        if i >= n or not s[i].isdigit():
            return -1
        j = i
        while j < n and s[j].isdigit():
            j += 1
        v = int(s[i:j])
        if j >= n:
            return -1
        mul = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}.get(s[j])
        if mul is None:
            return -1
        total += v * mul
        i = j + 1
        if i >= n:
            return total if total < 2 ** 31 else -1


def printtime(t: int) -> str:
    """Exim's readconf_printtime()."""
    if t < 0:
        return "-" + printtime(-t)
    if t == 0:
        return "0s"
    out = []
    for unit, secs in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if t >= secs:
            out.append(f"{t // secs}{unit}")
            t %= secs
    return "".join(out)


def op_time_eval(ctx, sub, arg, name):
    n = readtime(sub)
    if n < 0:
        raise ExpansionError(f'string "{sub}" is not an Exim time interval in "{name}" '
                             f'operator')
    return str(n)


def op_time_interval(ctx, sub, arg, name):
    m = re.match(r"\d*", sub)
    if m.end() != len(sub):
        raise ExpansionError(f'string "{sub}" is not a positive number in "{name}" operator')
    n = int(sub) if sub else 0
    n = _wrap32(n)
    return printtime(n)


def _wrap32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v


# ---------------------------------------------------------------- IP

def ip_type(s: str, allow_mask: bool = True) -> tuple[int, int]:
    """Exim's string_is_ip_address(): (4|6|0, offset of '/' mask or 0).
    Without allow_mask (Exim's NULL maskptr) a "/mask" makes it invalid."""
    key = (s, allow_mask)
    r = _IPTYPE_CACHE.get(key)
    if r is None:
        r = _ip_type(s, allow_mask)
        if len(_IPTYPE_CACHE) > 8192:
            _IPTYPE_CACHE.clear()
        _IPTYPE_CACHE[key] = r
    return r


_IPTYPE_CACHE: dict[tuple[str, bool], tuple[int, int]] = {}


def _ip_type(s: str, allow_mask: bool) -> tuple[int, int]:
    addr, slash, mask = s.partition("/")
    if slash and not allow_mask:
        return 0, 0
    if slash:
        if not mask.isdigit() or not mask.isascii():
            return 0, 0
    if "%" in addr:
        a, _, zone = addr.partition("%")
        if ":" not in a or not zone:
            return 0, 0
        addr = a
    try:
        if ":" in addr:
            ipaddress.IPv6Address(addr)
            t = 6
        else:
            if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", addr):
                return 0, 0
            if any(int(x) > 255 for x in addr.split(".")):
                return 0, 0
            t = 4
    except ValueError:
        return 0, 0
    return t, (s.index("/") if slash else 0)


def _ipv6_full(addr: str) -> str:
    a = ipaddress.IPv6Address(addr.split("%")[0])
    return a.exploded


def op_mask(ctx, sub, arg, name):
    t, off = ip_type(sub)
    if t == 0:
        raise ExpansionError(f'"{sub}" is not an IP address')
    if off == 0:
        raise ExpansionError(f'missing mask value in "{sub}"')
    m = sub[off + 1:]
    mask = int(m) if m.isdigit() else -1
    if mask < 0 or mask > (32 if t == 4 else 128):
        raise ExpansionError(f'mask value too big in "{sub}"')
    addr = sub[:off]
    if t == 4:
        net = ipaddress.IPv4Network(f"{addr}/{mask}", strict=False)
        return f"{net.network_address}/{mask}"
    net = ipaddress.IPv6Network(f"{addr.split('%')[0]}/{mask}", strict=False)
    if arg and arg.startswith("n"):
        return f"{_ipv6_compress(net.network_address)}/{mask}"
    full = net.network_address.exploded.replace(":", ".")
    return f"{full}/{mask}"


def _ipv6_compress(a: ipaddress.IPv6Address) -> str:
    """Exim's ipv6_nmtoa(): compress the longest run of zero groups (first
    longest), no IPv4 dotted tail."""
    groups = [int(x, 16) for x in a.exploded.split(":")]
    if not any(groups):
        return ":"          # sic: Exim 4.96 prints the all-zero address as ":"
    best_s, best_l = -1, 0
    k = 0
    while k < 8:
        if groups[k] == 0:
            j = k
            while j < 8 and groups[j] == 0:
                j += 1
            if j - k > best_l:
                best_s, best_l = k, j - k
            k = j
        else:
            k += 1
    if best_l < 2:
        return ":".join(f"{g:x}" for g in groups)
    left = ":".join(f"{g:x}" for g in groups[:best_s])
    right = ":".join(f"{g:x}" for g in groups[best_s + best_l:])
    return f"{left}::{right}"


def op_ipv6norm(ctx, sub, arg, name):
    t, _ = ip_type(sub, allow_mask=False)
    if t == 0:
        raise ExpansionError(f'"{sub}" is not an IP address')
    addr = sub.split("/")[0].split("%")[0]
    if t == 4:
        a = ipaddress.IPv6Address("::ffff:" + addr)
    else:
        a = ipaddress.IPv6Address(addr)
    if name.startswith("ipv6norm"):
        return _ipv6_compress(a)
    return a.exploded


def reverse_ip(sub: str) -> str:
    t, _ = ip_type(sub)
    addr = sub.split("/")[0].split("%")[0]
    if t == 4:
        return ".".join(reversed(addr.split(".")))
    hexs = ipaddress.IPv6Address(addr).exploded.replace(":", "")
    return ".".join(reversed(hexs))


def op_reverse_ip(ctx, sub, arg, name):
    t, _ = ip_type(sub)
    if t == 0:
        raise ExpansionError(f"reverse_ip() not given an IP address [{sub}]")
    return like(reverse_ip(sub), sub)


# ---------------------------------------------------------------- lists

def op_listcount(ctx, sub, arg, name):
    from eximpy.expand.lists import iter_list
    return str(sum(1 for _ in iter_list(sub)))


def op_listnamed(ctx, sub, arg, name):
    return listnamed(ctx, sub, arg)


def listnamed(ctx, name: str, listtype: str | None) -> str:
    from eximpy.expand.lists import iter_list_sep
    if name.startswith("+"):
        name = name[1:]
    kinds = {"a": "address", "d": "domain", "h": "host", "l": "localpart"}
    nl = None
    if listtype is None:
        for k in ("address", "domain", "host", "localpart"):
            nl = ctx.named_list(k, name)
            if nl is not None:
                break
    elif listtype[:1] in kinds:
        nl = ctx.named_list(kinds[listtype[0]], name)
    else:
        raise ExpansionError('bad suffix on "list" operator')
    if nl is None:
        what = "" if listtype is None else {"a": "address ", "d": "domain ", "h": "host ",
                                            "l": "localpart "}[listtype[0]]
        raise ExpansionError(f'"{name}" is not a {what}named list')
    value = getattr(nl, "value", nl)
    sep, items = iter_list_sep(value)
    out = []
    for item in items:
        if item.startswith("+"):
            out.append(listnamed(ctx, item, listtype))
        elif sep != ":":
            out.append(item.replace(":", "::"))
        else:
            out.append(item)
    return " : ".join(out)


# ---------------------------------------------------------------- addresses

def op_address(ctx, sub, arg, name):
    from eximpy.expand import rfc822
    r = rfc822.extract_address(sub)
    if r is None:
        return ""
    addr, dstart = r
    base = name.split("_")[0] if name != "local_part" else name
    if name == "domain":
        return like(addr[dstart:] if dstart > 0 else "", sub)
    if name == "local_part" and dstart > 0:
        return like(addr[:dstart - 1], sub)
    return like(addr, sub)


def op_addresses(ctx, sub, arg, name):
    from eximpy.expand import rfc822
    outsep = ":"
    s = sub.lstrip(_SPACE)
    if s.startswith(">"):
        if len(s) < 2:
            raise ExpansionError(f"output separator missing in expanding ${{addresses:{s}}}")
        outsep = s[1]
        s = s[2:]
    out: list[str] = []
    for piece in rfc822.split_addresses(s):
        r = rfc822.extract_address(piece, allow_group=True)
        if r is None:
            continue
        addr = r[0]
        if out and addr.startswith(outsep):
            out.append(" ")
        out.append(addr.replace(outsep, outsep + outsep))
        out.append(outsep)
    if out:
        out.pop()
    return like("".join(out), sub)


# ---------------------------------------------------------------- RFC 2047

def rfc2047_decode(s: str, charset: str | None) -> tuple[str, str | None]:
    """Decode RFC 2047 encoded words; result converted to ``charset`` (or
    left in the source charset when charset is None)."""
    pat = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
    out: list[str] = []
    pos = 0
    last_end = None
    error = None
    for m in pat.finditer(s):
        between = s[pos:m.start()]
        if last_end is not None and between.strip(" \t\r\n") == "":
            between = ""
        out.append(between)
        cs, enc, text = m.group(1), m.group(2).lower(), m.group(3)
        cs = cs.split("*")[0]
        try:
            if enc == "q":
                data = re.sub(rb"=([0-9A-Fa-f]{2})", lambda x: bytes((int(x.group(1), 16),)),
                              to_bytes(text.replace("_", " ")))
            else:
                data = base64.b64decode(text + "=" * (-len(text) % 4))
        except Exception:
            out.append(m.group(0))
            pos = m.end()
            last_end = None
            continue
        if charset is not None:
            try:
                data = data.decode(cs).encode(charset)
            except (LookupError, UnicodeError) as e:
                error = str(e)
        out.append(from_bytes(data))
        pos = m.end()
        last_end = m.end()
    out.append(s[pos:])
    return like(norm("".join(out)), s), error


def op_rfc2047d(ctx, sub, arg, name):
    r, err = rfc2047_decode(sub, ctx.headers_charset_name())
    return r


def quote_2047(sub: str, charset: str) -> str:
    """Exim's parse_quote_2047() (no folding)."""
    b = to_bytes(sub)
    head = f"=?{charset}?Q?"
    hlen = len(head)
    out = head
    line_off = hlen
    coded = False
    first_byte = False
    for ch in b:
        if len(out) - line_off > 67 and not first_byte:
            out += "?= "
            line_off = len(out)
            out += head
        if ch < 33 or ch > 126 or chr(ch) in "?=()<>@,;:\\\".[]_":
            if ch == 32:
                out += "_"
                first_byte = False
            else:
                out += f"={ch:02X}"
                coded = True
                first_byte = not first_byte
        else:
            out += chr(ch)
            first_byte = False
    if coded:
        return out + "?="
    return sub


def op_rfc2047(ctx, sub, arg, name):
    return like(quote_2047(sub, ctx.headers_charset_name()), sub)


# ---------------------------------------------------------------- UTF-8

def op_utf8clean(ctx, sub, arg, name):
    b = to_bytes(sub)
    out = bytearray()
    i = 0
    n = len(b)
    seq = bytearray()
    left = 0
    cp = 0
    while i < n:
        c = b[i]
        i += 1
        complete = 0
        if left:
            if c & 0xc0 != 0x80:
                complete = 1
            else:
                cp = (cp << 6) | (c & 0x3f)
                seq.append(c)
                left -= 1
                if left == 0:
                    if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:    # 4.96: no surrogates
                        complete = -1
                    else:
                        out += seq
                        seq = bytearray()
        else:
            if not c & 0x80:
                out.append(c)
                continue
            if c & 0xe0 == 0xc0:
                if c in (0xc0, 0xc1):
                    complete = -1
                else:
                    left = 1
                    cp = c & 0x1f
            elif c & 0xf0 == 0xe0:
                left = 2
                cp = c & 0x0f
            elif c & 0xf8 == 0xf0:
                left = 3
                cp = c & 0x07
            else:
                complete = -1
            seq = bytearray([c])
        if complete:
            left = 0
            seq = bytearray()
            out += b"?"
        if complete == 1 and not c & 0x80:
            out.append(c)
    if left:
        out += b"?"
    return like(from_bytes(bytes(out)), sub)


def op_from_utf8(ctx, sub, arg, name):
    b = to_bytes(sub)
    out = []
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        i += 1
        if c & 0xc0 == 0xc0:
            a = [1] * 32 + [2] * 16 + [3] * 8 + [4] * 4 + [5] * 4
            extra = a[c & 0x3f]
            masks = (0xff, 0x1f, 0x0f, 0x07, 0x03, 0x01)
            sh = 6 * extra
            c = (c & masks[extra]) << sh
            while extra > 0 and i < n:
                sh -= 6
                c |= (b[i] & 0x3f) << sh
                i += 1
                extra -= 1
        out.append(c if c <= 255 else 0x5f)     # "_"
    return like(from_bytes(bytes(out)), sub)


def op_idna(ctx, sub, arg, name):
    try:
        if name in ("utf8_domain_to_alabel",):
            return like(to_bytes(sub).decode("utf-8").encode("idna").decode(), sub)
        if name == "utf8_domain_from_alabel":
            return like(sub.encode("ascii").decode("idna"), sub)
        if name == "utf8_localpart_to_alabel":
            return sub
        return sub
    except (UnicodeError, ValueError):
        what = "utf8" if "to_alabel" in name else "alabel"
        other = "alabel" if what == "utf8" else "utf8"
        raise ExpansionError(f"error converting {what} ({string_printing(sub)}) to "
                             f"{other}: string encoding error")


# ---------------------------------------------------------------- misc

def op_expand(ctx, sub, arg, name):
    from eximpy.expand import expand_string
    from eximpy.errors import ExpansionForcedFail
    if is_tainted(sub):
        # ${expand:} always expands, so the taint check applies even to a
        # string without '$' (Exim calls expand_string_internal()).
        msg = f"attempt to expand tainted string '{sub}'"
        fn = getattr(ctx, "log_panic", None)
        if fn is not None:
            fn(msg)
        raise ExpansionError(f'internal expansion of "{sub}" failed: {msg}')
    try:
        return expand_string(sub, ctx)
    except ExpansionForcedFail as e:
        raise ExpansionForcedFail(f'internal expansion of "{sub}" failed: {e}')
    except ExpansionError as e:
        raise ExpansionError(f'internal expansion of "{sub}" failed: {e}')


def op_randint(ctx, sub, arg, name):
    from eximpy.expand.evaluate import expanded_string_integer
    mx = expanded_string_integer(sub, True)
    mx = _wrap32(mx)
    if mx <= 0:
        return "0" if mx == 0 else "0"
    return str(random.randrange(mx))


_MODES = (("---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"),
          ("--S", "--s", "-wS", "-ws", "r-S", "r-s", "rwS", "rws"),
          ("--T", "--t", "-wT", "-wt", "r-T", "r-t", "rwT", "rwt"))


def op_stat(ctx, sub, arg, name):
    from eximpy.expand.evaluate import FORBID_EXISTS
    if ctx.expand_forbid & FORBID_EXISTS:
        raise ExpansionError("Use of the stat() expansion is not permitted")
    try:
        st = os.stat(sub)
    except OSError as e:
        raise ExpansionError(f"stat({sub}) failed: {e.strerror}")
    mode = st.st_mode
    t = {_stat.S_IFIFO: "p", _stat.S_IFCHR: "c", _stat.S_IFDIR: "d",
         _stat.S_IFBLK: "b", _stat.S_IFREG: "-"}.get(_stat.S_IFMT(mode), "?")
    parts = []
    m = mode
    tables = [(_MODES[2] if mode & 0o1000 else _MODES[0]),
              (_MODES[1] if mode & 0o2000 else _MODES[0]),
              (_MODES[1] if mode & 0o4000 else _MODES[0])]
    for k in range(3):
        parts.insert(0, tables[k][m & 7])
        m >>= 3
    smode = t + "".join(parts)
    return (f"mode={mode & 0o77777:04o} smode={smode} inode={st.st_ino} "
            f"device={st.st_dev} links={st.st_nlink} uid={st.st_uid} gid={st.st_gid} "
            f"size={st.st_size} atime={int(st.st_atime)} mtime={int(st.st_mtime)} "
            f"ctime={int(st.st_ctime)}")


OPERATORS = {
    "address": op_address, "addresses": op_addresses, "base32": op_base32,
    "base32d": op_base32d, "base62": op_base62, "base62d": op_base62d,
    "base64": op_base64, "base64d": op_base64d, "domain": op_address,
    "escape": op_escape, "escape8bit": op_escape8bit, "eval": op_eval,
    "eval10": op_eval, "expand": op_expand, "h": op_lengthlike, "hash": op_lengthlike,
    "hex2b64": op_hex2b64, "hexquote": op_hexquote, "ipv6denorm": op_ipv6norm,
    "ipv6norm": op_ipv6norm, "l": op_lengthlike, "lc": op_lc, "length": op_lengthlike,
    "listcount": op_listcount, "listnamed": op_listnamed, "mask": op_mask,
    "md5": op_md5, "nh": op_lengthlike, "nhash": op_lengthlike, "quote": op_quote,
    "randint": op_randint, "rfc2047": op_rfc2047, "rfc2047d": op_rfc2047d,
    "rxquote": op_rxquote, "s": op_lengthlike, "sha1": op_sha1, "sha2": op_sha2,
    "sha256": op_sha2, "sha3": op_sha3, "stat": op_stat, "str2b64": op_str2b64,
    "strlen": op_strlen, "substr": op_lengthlike, "uc": op_uc,
    "utf8clean": op_utf8clean,
    "from_utf8": op_from_utf8, "local_part": op_address,
    "quote_local_part": op_quote, "reverse_ip": op_reverse_ip,
    "time_eval": op_time_eval, "time_interval": op_time_interval,
    "utf8_domain_from_alabel": op_idna, "utf8_domain_to_alabel": op_idna,
    "utf8_localpart_from_alabel": op_idna, "utf8_localpart_to_alabel": op_idna,
}
