"""The `dnslists` ACL condition: DNS black/white lists.

SUMMARY
    check_dnsbl(call, arg, msgs) -> OK | FAIL | DEFER

DESCRIPTION
    Items (colon-separated list): ``domain``, ``domain=a.b.c.d,...``,
    ``domain==...`` (all returned addresses must be in the set),
    ``domain&mask`` / ``domain&=mask`` (bitmask), each negatable with ``!``
    before the ``=``/``&``, and an optional ``/key`` (an explicit key or
    ``/<;key1;key2`` several keys).  The default key is the client's IP
    address, reversed (IPv4 octets, IPv6 nibbles); an explicit key that is
    an IP address is reversed too, anything else is used as it is.  The
    lookup is an A query for ``key.domain`` through the system resolver
    (/etc/resolv.conf, as Exim's res_init()); answers outside 127.0.0.0/8
    are discarded as Exim 4.96 does.  On a match $dnslist_domain,
    $dnslist_matched, $dnslist_value (the A records, comma-separated) and
    $dnslist_text (the TXT record) are set.  A lookup that cannot complete
    makes the item not match (Exim's behaviour), logged once.

SEE ALSO
    spec 44.29-44.37 "DNS block lists"; Exim verify.c verify_check_dnsbl().
"""
from __future__ import annotations

import ipaddress
from typing import Any

from eximpy.acl.runner import FAIL, OK


def _reverse(ip: str) -> str | None:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if a.version == 4:
        return ".".join(reversed(str(a).split(".")))
    return ".".join(reversed(a.exploded.replace(":", "")))


def _resolver(call: Any) -> Any:
    r = call.engine.resolver
    if r is None:
        import dns.resolver
        r = dns.resolver.Resolver()
        r.lifetime = 5.0
        r.timeout = 2.0
        call.engine.resolver = r
    return r


def _lookup(call: Any, name: str, rtype: str) -> tuple[str, list[str]]:
    import dns.exception
    import dns.resolver
    cache = call.engine.conn.setdefault("dnsbl_cache", {})
    k = (name, rtype)
    if k in cache:
        call.trace(f"dnslists: using result of previous lookup")
        return cache[k]
    call.trace(f"new DNS lookup for {name}")
    try:
        ans = _resolver(call).resolve(name, rtype, raise_on_no_answer=False)
        if rtype == "A":
            vals = [r.address for r in ans]
        else:
            vals = [b"".join(r.strings).decode("utf-8", "replace")
                    for r in ans]
        res = ("OK" if vals else "NOMATCH", vals)
    except dns.resolver.NXDOMAIN:
        res = ("NOMATCH", [])
    except (dns.exception.DNSException, OSError):
        res = ("DEFER", [])
    cache[k] = res
    return res


def _split_item(item: str) -> tuple[str, str | None, str | None]:
    """(domain part with any =/& criteria, criteria?, key)."""
    key = None
    slash = item.find("/")
    if slash >= 0:
        key = item[slash + 1:]
        item = item[:slash]
    return item, None, key


def check_dnsbl(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.expand.lists import iter_list
    v = call.ctx.variables
    for item in iter_list(arg):
        head, _c, key = _split_item(item)
        # criteria
        crit = None
        bitmask = False
        negate = False
        all_ = False
        for i, ch in enumerate(head):
            if ch in "=&":
                j = i
                if i > 0 and head[i - 1] == "!":
                    negate = True
                    j = i - 1
                domain = head[:j]
                rest = head[i + 1:]
                bitmask = ch == "&"
                if rest.startswith("="):
                    all_ = True
                    rest = rest[1:]
                crit = rest
                break
        else:
            domain = head
        keys: list[str]
        if key is None:
            hostaddr = call.var("sender_host_address")
            if not hostaddr:
                continue
            keys = [hostaddr]
        elif key.startswith("<") and len(key) > 1:
            keys = list(iter_list(key))
        else:
            keys = [key]
        for k in keys:
            rev = _reverse(k)
            query = f"{rev if rev else k}.{domain}"
            call.trace(f"dnslists check: {domain}/{k}")
            st, addrs = _lookup(call, query, "A")
            if st == "DEFER":
                call.trace(f"DNS lookup for {query} deferred")
                continue
            good = []
            for a in addrs:
                if not a.startswith("127."):
                    call.engine.log_main(
                        f"DNS list lookup for {k} at {domain} returned {a};"
                        " not in 127.0/8 and discarded")
                    continue
                good.append(a)
            if not good:
                call.trace(f"DNS lookup for {query} failed")
                call.trace(f"=> that means {k} is not listed at {domain}")
                continue
            call.trace(f"DNS lookup for {query} succeeded (yielding "
                       f"{', '.join(good)})")
            if crit is not None:
                want = [c.strip() for c in crit.split(",") if c.strip()]

                def one(a: str) -> bool:
                    if bitmask:
                        ai = int(ipaddress.ip_address(a))
                        return any((ai & int(ipaddress.ip_address(m))) ==
                                   int(ipaddress.ip_address(m)) for m in want)
                    return a in want
                hits = [one(a) for a in good]
                matched = all(hits) if all_ else any(hits)
                if negate:
                    matched = not matched
                if not matched:
                    call.trace(f"=> but we are not accepting this block "
                               f"class because there was no match for "
                               f"{'&' if bitmask else '='}{crit}")
                    continue
            call.trace(f"=> that means {k} is listed at {domain}")
            v["dnslist_domain"] = domain
            v["dnslist_matched"] = k
            v["dnslist_value"] = ",".join(good)
            st2, txt = _lookup(call, query, "TXT")
            v["dnslist_text"] = txt[0] if st2 == "OK" and txt else ""
            return OK
    return FAIL
