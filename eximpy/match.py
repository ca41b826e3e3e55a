"""List matching: domain, host, address and local-part lists.

DESCRIPTION
    Exim's match.c.  Every function returns one of OK, FAIL, DEFER and the
    "value" of the matching item (what Exim puts in $domain_data,
    $local_part_data, $address_data, $host_data or $value: the lookup
    result, or the item that matched).

      match_domain(domain, list_text, ctx)           domain lists
      match_local_part(local_part, list_text, ctx, caseless=True)
      match_address(address, list_text, ctx, caseless=True)
      match_host(host_address, host_name, list_text, ctx)
      match_isinlist(ctx, subject, list_text, kind, caseless)  generic
      check_string(ctx, subject, pattern, ...)       one item

    List items: "!" negation (repeatable), "+name" named lists from
    config.named_lists, "/file" (items read from a file, one per line, '#'
    comments), "^regex", "*suffix", "@" (primary_hostname), "@[]" (a local
    interface address in brackets), "@mx_any"/"@mx_primary"/
    "@mx_secondary" (via eximpy.lookups.dnsdb), "type;file-or-query"
    lookups (with partial-, *, *@ for domain lists), and for host lists IP
    addresses, CIDR networks, "net<n>-type;" lookups and "+ignore_unknown"
    style flags.  The list text is expanded first unless ``expand=False``
    (the match_* expansion conditions do not expand it).

    The end-of-list rule: if nothing matched, the answer is FAIL unless the
    last item was negated, in which case it is OK.

SEE ALSO
    spec chapter "Domain, host, address, and local part lists".
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.lists import iter_list

OK = "OK"
FAIL = "FAIL"
DEFER = "DEFER"
ERROR = "ERROR"

MCL_STRING = "string"
MCL_DOMAIN = "domain"
MCL_HOST = "host"
MCL_ADDRESS = "address"
MCL_LOCALPART = "localpart"

_LC = {i: i + 32 for i in range(65, 91)}


def _lc(s: str) -> str:
    return s.translate(_LC)


def _log(ctx, msg: str) -> None:
    fn = getattr(ctx, "log_panic", None)
    if fn is not None:
        fn(msg)


def _error_msg(ctx, msg: str) -> None:
    ctx.search_error_message = msg


# ---------------------------------------------------------------- one item

def check_string(ctx, subject: str, pattern: str, caseless: bool = True,
                 expand_setup: int = 0, at_special: bool = True,
                 partial: bool = True, origsubject: str | None = None):
    """Exim's check_string(): returns OK/FAIL/DEFER; sets ctx._match_value."""
    s = _lc(subject) if caseless else subject
    orig = subject if origsubject is None else origsubject
    ctx._match_value = None
    if pattern.startswith("^"):
        from eximpy.expand.regex import compile_pcre, match_setup
        rx = compile_pcre(pattern, caseless)
        if expand_setup < 0:
            if not rx.search(orig):
                return FAIL
        else:
            if not match_setup(ctx, rx, orig):
                return FAIL
        ctx._match_value = pattern
        return OK
    if pattern.startswith("*"):
        pat = pattern[1:]
        if len(pat) > len(s):
            return FAIL
        tail = s[len(s) - len(pat):]
        if (tail != _lc(pat)) if caseless else (tail != pat):
            return FAIL
        if expand_setup >= 0:
            ns = list(ctx.nstrings[:1]) if ctx.nstrings else [""]
            ctx.nstrings = ns + [subject[:len(s) - len(pat)]]
        ctx._match_value = pattern
        return OK
    if at_special and pattern.startswith("@"):
        if pattern == "@":
            pattern = ctx.get_var("primary_hostname") or ""
        elif pattern == "@[]":
            if not (s.startswith("[") or s.endswith("]")):
                return FAIL
            inner = s[1:-1]
            for a in local_interface_addresses(ctx):
                if a == inner:
                    ctx._match_value = "@[]"
                    return OK
            return FAIL
        elif _lc(pattern[:4]) == "@mx_":
            return _check_mx(ctx, s, pattern)
    semi = pattern.find(";")
    if semi < 0:
        if (s != _lc(pattern)) if caseless else (s != pattern):
            return FAIL
        ctx._match_value = pattern
        return OK
    return _lookup_item(ctx, s, pattern, semi, partial, expand_setup)


def _lookup_item(ctx, key: str, pattern: str, semi: int, partial: bool,
                 expand_setup: int, keyfn=None):
    from eximpy.lookups import (findtype_partial, search_open, search_find_spec,
                                split_query_file, SearchSpec, LookupDefer, LookupFailure)
    tname = pattern[:semi]
    try:
        spec = findtype_partial(tname)
    except ExpansionError as e:
        raise ExpansionError(str(e))
    if not partial and spec.partial >= 0:
        spec = SearchSpec(spec.lookup, -1, spec.affix, spec.star, spec.starat, spec.opts)
    rest = pattern[semi + 1:]
    lk = spec.lookup
    if lk.query_style:
        filename, query = split_query_file(lk, rest, spec.opts)
        k = query
    else:
        filename = rest.strip()
        k = key
    try:
        e = search_open(ctx, lk, filename)
    except LookupFailure as err:
        _error_msg(ctx, str(err))
        return DEFER
    try:
        r = search_find_spec(ctx, e, spec, filename, k, expand_setup >= 0)
    except LookupDefer as err:
        _error_msg(ctx, str(err))
        ctx.search_find_defer = True
        return DEFER
    if r is None:
        return FAIL
    ctx._match_value = r
    return OK


def local_interface_addresses(ctx) -> list[str]:
    v = getattr(ctx, "interface_addresses", None)
    if v is not None:
        return list(v)
    out = ["127.0.0.1", "::1"]
    try:
        import socket
        for info in socket.getaddrinfo(socket.gethostname(), None):
            a = info[4][0]
            if a not in out:
                out.append(a)
    except OSError:
        pass
    return out


def _check_mx(ctx, domain: str, pattern: str):
    """@mx_any, @mx_primary, @mx_secondary (optionally /ignore=list)."""
    try:
        from eximpy.lookups import dnsdb
        return dnsdb.check_mx(ctx, domain, pattern)
    except (ImportError, AttributeError):
        return FAIL


# ---------------------------------------------------------------- lists

class _Flags:
    __slots__ = ("caseless", "ignore_unknown", "include_unknown", "ignore_defer",
                 "include_defer")

    def __init__(self, caseless: bool) -> None:
        self.caseless = caseless
        self.ignore_unknown = self.include_unknown = False
        self.ignore_defer = self.include_defer = False


_HOST_FLAGS = frozenset(("ignore_unknown", "include_unknown", "ignore_defer",
                         "include_defer"))
_COMPILED: dict[tuple[str, str], tuple] = {}   # cache: (list text, kind) -> entries


def _compiled(text: str, kind: str) -> tuple:
    """A list split into (tag, polarity, text) entries: tag is "caseful",
    "flag" (+ignore_unknown ...), or "item" ("!" negations counted into the
    polarity: OK for a positive item, FAIL for a negated one)."""
    key = (text, kind)
    r = _COMPILED.get(key) if type(text) is str else None
    if r is not None:
        return r
    out = []
    for item in iter_list(text):
        if kind in (MCL_ADDRESS, MCL_LOCALPART) and item == "+caseful":
            out.append(("caseful", OK, item))
            continue
        if kind == MCL_HOST and item.startswith("+") and item[1:] in _HOST_FLAGS:
            out.append(("flag", OK, item[1:]))
            continue
        y = OK
        ss = item
        while ss.startswith("!"):
            ss = ss[1:].lstrip(" \t\n\r")
            y = FAIL if y == OK else OK
        out.append(("item", y, ss))
    r = tuple(out)
    if type(text) is str:
        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        _COMPILED[key] = r
    return r


def match_check_list(ctx, list_text: str | None, kind: str, func, expand: bool = True,
                     caseless: bool = True, _depth: int = 0):
    """Exim's match_check_list(): (rc, value).  ``func(ctx, item, flags)``
    tests one item and returns OK/FAIL/DEFER/ERROR (value in
    ctx._match_value)."""
    if list_text is None:
        return FAIL, None
    text = list_text
    if expand:
        from eximpy.expand import expand_string
        try:
            text = expand_string(list_text, ctx)
        except ExpansionForcedFail:
            return FAIL, None
        except ExpansionError as e:
            _log(ctx, f'failed to expand "{list_text}" while checking a list: {e}')
            _error_msg(ctx, str(e))
            return DEFER, None
    flags = _Flags(caseless)
    yield_ = OK
    for tag, yield_, ss in _compiled(text, kind):
        if tag == "caseful":
            flags.caseless = False
            continue
        if tag == "flag":
            setattr(flags, ss, True)
            if ss == "ignore_unknown":
                flags.include_unknown = False
            elif ss == "include_unknown":
                flags.ignore_unknown = False
            elif ss == "ignore_defer":
                flags.include_defer = False
            else:
                flags.ignore_defer = False
            continue
        if not ss.startswith("/"):
            if ss.startswith("+"):
                nl = ctx.named_list(kind if kind != MCL_STRING else "domain", ss[1:])
                if nl is None:
                    what = {"domain": " domain", "host": " host", "address": " address",
                            "localpart": " local part"}.get(kind, "")
                    _log(ctx, f'unknown named{what} list "{ss}"')
                    _error_msg(ctx, "")
                    return DEFER, None
                if _depth > 20:
                    _error_msg(ctx, "named lists nested too deeply")
                    return DEFER, None
                value = getattr(nl, "value", nl)
                subject = getattr(func, "subject", None)
                cache = None
                if subject is not None and "$" not in value:
                    # Exim caches named-list results unless the list has "$".
                    cache = ctx.__dict__.setdefault("_named_list_cache", {})
                    ck = (kind, ss[1:], subject, flags.caseless)
                    hit = cache.get(ck)
                    if hit is not None:
                        rc, val = hit
                        if rc == OK:
                            return yield_, val
                        continue
                rc, val = match_check_list(ctx, value, kind, func, expand, flags.caseless,
                                           _depth + 1)
                if cache is not None and rc in (OK, FAIL):
                    cache[ck] = (rc, val)
                if rc == OK:
                    return yield_, val
                if rc == DEFER:
                    return DEFER, None
                continue
            rc = func(ctx, ss, flags)
            if rc == OK:
                return yield_, ctx._match_value
            if rc == DEFER:
                if flags.ignore_defer:
                    continue
                if flags.include_defer:
                    return OK, None
                return DEFER, None
            if rc == ERROR:
                # A host whose name (or address) cannot be found: no match
                # for the whole list, unless +ignore_unknown / +include_unknown.
                if flags.ignore_unknown:
                    continue
                if flags.include_unknown:
                    return yield_, None
                return FAIL, None
        else:
            # a file of items
            try:
                with open(ss, "rb") as f:
                    lines = f.read().decode("utf-8", "surrogateescape").split("\n")
            except OSError as e:
                _log(ctx, f"{ss}: failed to open file while checking a list: {e.strerror}")
                _error_msg(ctx, f"{ss}: failed to open file: {e.strerror}")
                return DEFER, None
            file_yield = yield_
            for line in lines:
                k = line.find("#")
                if k >= 0:
                    line = line[:k]
                line = line.strip(" \t\r\n")
                if not line:
                    continue
                y = file_yield
                while line.startswith("!"):
                    line = line[1:].lstrip(" \t")
                    y = FAIL if y == OK else OK
                rc = func(ctx, line, flags)
                if rc == OK:
                    v = ctx._match_value
                    return y, (line if v is None else v)
                if rc == DEFER:
                    if flags.ignore_defer:
                        continue
                    if flags.include_defer:
                        return OK, None
                    return DEFER, None
                yield_ = y
    return (FAIL if yield_ == OK else OK), None


def match_isinlist(ctx, subject: str, list_text: str, kind: str = MCL_STRING,
                   caseless: bool = True, expand: bool = False, partial: bool | None = None):
    """Exim's match_isinlist(): (rc, value)."""
    at_special = kind == MCL_DOMAIN
    if partial is None:
        partial = kind == MCL_DOMAIN

    def func(c, item, flags):
        return check_string(c, subject, item, flags.caseless, 0, at_special, partial)
    func.subject = subject
    return match_check_list(ctx, list_text, kind, func, expand, caseless)


def match_domain(domain: str, list_text: str, ctx, expand: bool = True):
    """Domain list match: (OK|FAIL|DEFER, value for $domain_data)."""
    return match_isinlist(ctx, domain, list_text, MCL_DOMAIN, True, expand)


def match_local_part(local_part: str, list_text: str, ctx, caseless: bool = True,
                     expand: bool = True):
    """Local part list match: (OK|FAIL|DEFER, value for $local_part_data)."""
    return match_isinlist(ctx, local_part, list_text, MCL_LOCALPART, caseless, expand)


# ---------------------------------------------------------------- addresses

def _check_address(ctx, address: str, pattern: str, flags) -> str:
    caseless = flags.caseless
    ctx._match_value = None
    if pattern == "":
        if address == "":
            ctx._match_value = ""
            return OK
        return FAIL
    if pattern.startswith("^"):
        from eximpy.expand.regex import compile_pcre, match_setup
        rx = compile_pcre(pattern, caseless)
        if match_setup(ctx, rx, address):
            ctx._match_value = ""
            return OK
        return FAIL
    at = address.rfind("@")
    if at < 0 and address != "":
        _log(ctx, f'no @ found in the subject of an address list match: '
                  f'subject="{address}" pattern="{pattern}"')
        return FAIL
    lp, dom = (address[:at], address[at + 1:]) if at >= 0 else ("", "")
    if pattern.startswith("@@"):
        semi = pattern.find(";")
        if semi < 0:
            return FAIL
        rc = _lookup_item(ctx, _lc(dom), pattern[2:], semi - 2, False, -1)
        if rc != OK:
            return rc
        lplist = ctx._match_value or ""
        rc2, val = match_isinlist(ctx, lp, lplist, MCL_LOCALPART, caseless)
        if rc2 == OK:
            ctx._match_value = val
        return rc2
    semi = pattern.find(";")
    if semi >= 0 and ("@" not in pattern[:semi]):
        key = _lc(address) if caseless else lp + "@" + _lc(dom)
        return _lookup_item(ctx, key, pattern, semi, False, 0)
    pat_at = pattern.rfind("@")
    if pat_at < 0:
        rc = check_string(ctx, dom, pattern, True, 0, True, True)
        if rc == OK:
            ctx._match_value = "@" + pattern if ctx._match_value == pattern else \
                ctx._match_value
        return rc
    plp, pdom = pattern[:pat_at], pattern[pat_at + 1:]
    if plp.startswith("*"):
        suf = plp[1:]
        if not ((_lc(lp).endswith(_lc(suf))) if caseless else lp.endswith(suf)):
            return FAIL
    elif (_lc(lp) != _lc(plp)) if caseless else (lp != plp):
        return FAIL
    rc = check_string(ctx, dom, pdom, True, 0, True, True)
    if rc == OK:
        ctx._match_value = pattern
    return rc


def match_address_list(ctx, address: str, list_text: str, caseless: bool = True,
                       expand: bool = False):
    """Exim's match_address_list(): (rc, value)."""
    def func(c, item, flags):
        return _check_address(c, address, item, flags)
    func.subject = address
    return match_check_list(ctx, list_text, MCL_ADDRESS, func, expand, caseless)


def match_address(address: str, list_text: str, ctx, caseless: bool = True,
                  expand: bool = True):
    """Address list match: (OK|FAIL|DEFER, value for $address_data etc.)."""
    return match_address_list(ctx, address, list_text, caseless, expand)


# ---------------------------------------------------------------- hosts

def _in_net(address: str, pattern: str) -> bool:
    key = (address, pattern)
    r = _NET_CACHE.get(key)
    if r is None:
        r = _in_net_uncached(address, pattern)
        if len(_NET_CACHE) > 8192:
            _NET_CACHE.clear()
        _NET_CACHE[key] = r
    return r


_NET_CACHE: dict[tuple[str, str], bool] = {}


def _in_net_uncached(address: str, pattern: str) -> bool:
    base, slash, mlen = pattern.partition("/")
    if slash and mlen.isdigit():
        # Exim does not check the mask length: too big means "all bits".
        mx = 128 if ":" in base else 32
        if int(mlen) > mx:
            pattern = f"{base}/{mx}"
    try:
        a = ipaddress.ip_address(address.split("%")[0])
        net = ipaddress.ip_network(pattern.split("%")[0] if "/" not in pattern else
                                   pattern.split("%")[0], strict=False)
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped and net.version == 4:
        a = a.ipv4_mapped
    if a.version != net.version:
        return False
    return a in net


def _check_host(ctx, host_address: str, host_name: str, pattern: str, flags,
                ip_only: bool) -> str:
    from eximpy.expand.operators import ip_type
    ctx._match_value = None
    if pattern == "":
        return OK if not host_address else FAIL
    if pattern == "*":
        ctx._match_value = "*"
        return OK
    if not host_address:
        return FAIL
    t, _ = ip_type(pattern)
    if t:
        if _in_net(host_address, pattern):
            return OK
        return FAIL
    k = 0
    while k < len(pattern) and (pattern[k].isdigit() or pattern[k] == "."):
        k += 1
    if k == len(pattern) or (pattern[k] == "/" and k != 0):
        _error_msg(ctx, "malformed IPv4 address or address mask")
        return ERROR
    if pattern == "@":
        pattern = ctx.get_var("primary_hostname") or ""
    elif pattern == "@[]":
        if host_address in local_interface_addresses(ctx):
            ctx._match_value = "@[]"
            return OK
        return FAIL
    semi = pattern.find(";")
    if semi >= 0:
        tname = pattern[:semi]
        import re
        m = re.match(r"net(\d*)-(.*)$", tname)
        if m or ip_only:
            addr = host_address
            if addr.startswith("::ffff:") and ip_type(addr[7:])[0] == 4:
                addr = addr[7:]
            if m:
                mlen = m.group(1)
                rest = m.group(2)
                v = ip_type(addr)[0]
                if mlen:
                    masked = ipaddress.ip_network(f"{addr}/{mlen}", strict=False)
                    na = masked.network_address
                    key = (str(na) if v == 4 else na.exploded.replace(":", "."))
                    key += f"/{mlen}"
                else:
                    key = addr if v == 4 else ipaddress.ip_address(addr).exploded
                p2 = rest + pattern[semi:]
                return _lookup_item(ctx, key, p2, len(rest), False, -1)
            return _lookup_item(ctx, addr, pattern, semi, False, -1)
        if not host_name:
            return _host_name_needed(ctx, host_address, flags, pattern)
        return _lookup_item(ctx, _lc(host_name), pattern, semi, True, -1)
    if ip_only:
        _error_msg(ctx, "cannot use a host name item in an IP-only list")
        return ERROR
    name = host_name or _reverse_lookup(ctx, host_address, pattern)
    if name is None:
        return ERROR
    return check_string(ctx, name, pattern, True, -1, False, False)


def _host_name_needed(ctx, host_address, flags, pattern=None):
    name = _reverse_lookup(ctx, host_address, pattern)
    if name is None:
        return ERROR
    return FAIL


def _reverse_lookup(ctx, address: str, pattern: str | None = None
                    ) -> str | None:
    """The host's name for name items in host lists (Exim's
    host_name_lookup()): ctx.host_name_lookup(address) when the caller
    provides one, else $sender_host_name when it is for this address, else
    a DNS PTR lookup whose names are confirmed by a forward lookup.  The
    answer is remembered in the context.  None: no name (an "unknown"
    host, see +include_unknown)."""
    trace = getattr(ctx, "list_trace", None)
    if trace is not None and pattern is not None:
        trace(f"sender host name required, to match against {pattern}")
    fn = getattr(ctx, "host_name_lookup", None)
    if fn is not None:
        return fn(address)
    known = ctx.__dict__.setdefault("_host_names", {})
    if address in known:
        return known[address]
    name = None
    if ctx.variables.get("sender_host_address") == address:
        v = ctx.variables.get("sender_host_name")
        if callable(v) and not isinstance(v, str):
            # The session looks the name up (once) and remembers failure.
            name = v() or None
            known[address] = name
            return name
        name = v or None
    if name is None:
        name = _dns_host_name(ctx, address)
    known[address] = name
    return name


def _dns_host_name(ctx, address: str) -> str | None:
    """The forward-confirmed host name of ``address`` (eximpy.hostlookup),
    or None."""
    from eximpy.hostlookup import host_name_lookup
    order = None
    cfg = getattr(ctx, "config", None)
    if cfg is not None:
        try:
            order = cfg.main.get("host_lookup_order")
        except (AttributeError, KeyError):
            order = None
    try:
        return host_name_lookup(address, order, ctx).name
    except Exception:
        return None


def match_host_list(ctx, host_address: str, host_name: str, list_text: str,
                    ip_only: bool = False, expand: bool = False):
    """(rc, value) for a host list."""
    def func(c, item, flags):
        return _check_host(c, host_address, host_name, item, flags, ip_only)
    func.subject = (host_address, host_name, ip_only)
    return match_check_list(ctx, list_text, MCL_HOST, func, expand, True)


def match_host(host_address: str, host_name: str, list_text: str, ctx,
               expand: bool = True):
    """Host list match: (OK|FAIL|DEFER, value for $host_data)."""
    return match_host_list(ctx, host_address, host_name, list_text, False, expand)
