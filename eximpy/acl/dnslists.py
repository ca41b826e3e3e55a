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


def _lookup(call: Any, name: str, rtype: str, trace: bool = True
            ) -> tuple[str, list[str]]:
    """(status, values) through eximpy.lookups.dnsdb (same resolver
    configuration as dnsdb lookups: /etc/resolv.conf or
    EXIMPY_RESOLV_CONF).  Results are cached for the connection until
    their TTL runs out (negative answers: an hour), as Exim's dnsbl cache."""
    from eximpy.lookups import dnsdb
    cache = call.engine.conn.setdefault("dnsbl_cache", {})
    k = (name, rtype)
    now = call.engine.clock()
    hit = cache.get(k)
    if hit is not None:
        if hit[0] > now:
            if trace:
                call.trace("dnslists: using result of previous lookup")
            return hit[1]
        if trace:
            call.trace("cached data found but past valid time; "
                       f"new DNS lookup for {name}")
    elif trace:
        call.trace(f"new DNS lookup for {name}")
    if any(not (c.isalnum() or c in ".-_") for c in name):
        # The C resolver will not even send such a name: "not found".
        st, ans = "NOMATCH", None
    else:
        try:
            st, ans = dnsdb.query(call.ctx, name, rtype)
        except Exception:
            st, ans = "AGAIN", None
    vals: list[str] = []
    ttl = 3600
    if st == "OK" and ans is not None:
        ttl = int(ans.rrset.ttl)
        for r in ans.rrset:
            if rtype == "A":
                vals.append(r.address)
            else:
                vals.append(b"".join(r.strings).decode("utf-8", "replace"))
    res = ("DEFER" if st == "AGAIN" else "OK" if vals else "NOMATCH", vals)
    if st != "AGAIN":
        cache[k] = (now + ttl, res)
        if trace:
            call.trace(f"dnslists: wrote cache entry, ttl={ttl}")
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
        # Exim's parse: the first "=" (else the first "&", a bitmask)
        # starts the address list; "!" before it inverts, "==" / "&="
        # after it requires all addresses to match.
        crit = None
        bitmask = negate = all_ = False
        domain = head
        i = head.find("=")
        if i < 0:
            i = head.find("&")
            bitmask = i >= 0
        if i >= 0:
            domain = head[:i]
            if i > 0 and head[i - 1] == "!":
                negate = True
                domain = head[:i - 1]
            crit = head[i + 1:]
            if crit.startswith("="):
                all_ = True
                crit = crit[1:]
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
        call.trace(f"dnslists check: {item}")
        if any(not (c.isalnum() or c in ".-_") for c in domain):
            call.engine.log_main(f'dnslists domain "{domain}" contains '
                                 "strange characters - is this right?")
        for k in keys:
            rev = _reverse(k)
            query = f"{rev if rev else k}.{domain}"
            st, addrs = _lookup(call, query, "A")
            if st == "DEFER":
                call.trace(f"DNS lookup for {query} deferred")
                continue
            if st != "OK":
                call.trace(f"DNS lookup for {query} failed")
                call.trace(f"=> that means {k} is not listed at {domain}")
                continue
            call.trace(f"DNS lookup for {query} succeeded (yielding "
                       f"{', '.join(addrs)})")
            good = []
            for a in addrs:
                if not a.startswith("127."):
                    call.engine.log_main(
                        f"DNS list lookup for {k} at {domain} returned {a};"
                        " not in 127.0/8 and discarded")
                    continue
                good.append(a)
            if not good:
                continue
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
                    op = ("&" if bitmask else "=") + ("=" if all_ else "")
                    call.trace("=> but we are not accepting this block "
                               "class because")
                    if negate and all_:
                        why = "there were no IP addresses that did not match"
                    elif negate:
                        why = "there was an exclude match"
                    elif all_:
                        why = "there was an IP address that did not match"
                    else:
                        why = "there was no match"
                    call.trace(f"=> {why} for {op}{crit}")
                    continue
            call.trace(f"=> that means {k} is listed at {domain}")
            v["dnslist_domain"] = domain
            v["dnslist_matched"] = k
            v["dnslist_value"] = ",".join(good)
            st2, txt = _lookup(call, query, "TXT", trace=False)
            v["dnslist_text"] = txt[0] if st2 == "OK" and txt else ""
            return OK
    return FAIL
