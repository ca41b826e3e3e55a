"""verify = csa: Client SMTP Authorization, as Exim 4.96's acl.c does it.

SUMMARY
    verify_csa(call, rest, msgs) -> OK | FAIL     (sets $csa_status)

DESCRIPTION
    The CSA domain is the argument after "csa/" (already expanded), else
    $sender_helo_name, else the client's address; a local client (no host
    address) is "unknown".  An address literal ([192.0.2.5] or
    [IPv6:...]) loses its framing, and an IP address becomes its reverse
    DNS name (unless dns_csa_use_reverse is false: "unknown").

    The SRV record _client._smtp.<domain> is looked up; when there is none,
    the parent domains are searched (Exim's dns_special_lookup for T_CSA:
    from the domain under the top-level one downwards, at most
    dns_csa_search_limit of them, in-addr.arpa / ip6.arpa names by
    address chunks), and a parent record is used only if it makes the
    "explicit authorization required" assertion (port & 1).

    For the records with priority 1 (the CSA version): a parent's record
    gives "failed (explicit authorization required)" when port & 1; the
    domain's own record with weight 0 or 1 is "failed (host name not
    authorized)", weight 3 or more is skipped, weight 2 authorizes the
    SRV target: its addresses (from the additional section, else an A or
    AAAA lookup matching the client's address family) must include the
    client's address ("ok"; else "failed (client address mismatch)", or
    "failed (no authorized addresses)" when it has none or the target is
    ".").  DNS trouble gives "deferred (SRV lookup failed)" or "deferred
    (target address lookup failed)".  Results are cached per domain for
    the life of the process, as Exim's csa_cache.

    The condition fails only for the "failed" results; $csa_status is
    unknown, ok, defer or fail; the user and log messages are "client SMTP
    authorization <reason>".  Exim writes its "CSA ..." lines only with
    -d (DEBUG, not HDEBUG), so -bh shows none of them.

SECURITY
    DNS data is remote data; only compared, never used as a path.

SEE ALSO
    spec 44.52 "Client SMTP authorization (CSA)"; options
    dns_csa_search_limit, dns_csa_use_reverse; the dnsdb csa= lookup.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from eximpy.acl.runner import FAIL, OK

(UNKNOWN, CSA_OK, DEFER_SRV, DEFER_ADDR, FAIL_EXPLICIT, FAIL_DOMAIN,
 FAIL_NOADDR, FAIL_MISMATCH) = range(8)
RETURN = (OK, OK, OK, OK, FAIL, FAIL, FAIL, FAIL)
STATUS = ("unknown", "ok", "defer", "defer", "fail", "fail", "fail", "fail")
REASON = ("unknown", "ok", "deferred (SRV lookup failed)",
          "deferred (target address lookup failed)",
          "failed (explicit authorization required)",
          "failed (host name not authorized)",
          "failed (no authorized addresses)",
          "failed (client address mismatch)")

# Exim's csa_cache: per process, never reset.
_CACHE: dict[str, int] = {}


def _opt(call: Any, name: str, default: Any) -> Any:
    try:
        v = call.engine.config.main.get(name)
    except (KeyError, AttributeError):
        return default
    return default if v is None else v


def _reverse(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return addr.reverse_pointer


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _again_means_nonexist(call: Any, name: str) -> bool:
    """Exim's dns_basic_lookup() on a temporary error: is the name in
    dns_again_means_nonexist (a traced domain list check)?"""
    try:
        text = call.engine.config.main.get("dns_again_means_nonexist")
    except (KeyError, AttributeError):
        text = None
    if text is None:
        call.trace(f"{name} in dns_again_means_nonexist? no (option unset)")
        return False
    from eximpy.acl.runner import OK as _OK
    rc, _ = call.lists.domain(name, str(text), None,
                              display="dns_again_means_nonexist")
    return rc == _OK


def _srv(name: str, call: Any = None) -> tuple[str, Any]:
    from eximpy.lookups import dnsdb
    qname = f"_client._smtp.{name}"
    status, ans = dnsdb.query(None, qname, "SRV")
    if status == "AGAIN" and call is not None and \
            _again_means_nonexist(call, qname):
        return "NOMATCH", None
    return status, ans


def _srv_records(ans: Any) -> list[tuple[int, int, int, str]]:
    out = []
    if ans is None or ans.rrset is None:
        return out
    for rd in ans.rrset:
        t = rd.target.to_text(omit_final_dot=True)
        if t in (".", "@"):
            t = ""
        out.append((rd.priority, rd.weight, rd.port, t))
    return out


def _nx_soa_names(name: str) -> list[str] | None:
    """The SOA owner names in the authority section of the NXDOMAIN answer
    for the CSA SRV name (None when it cannot be had)."""
    import dns.rdatatype
    import dns.resolver
    from eximpy.lookups import dnsdb
    try:
        dnsdb.resolver().resolve(f"_client._smtp.{name}", "SRV",
                                 search=False)
    except dns.resolver.NXDOMAIN as e:
        for resp in (e.responses() or {}).values():
            return [r.name.to_text(omit_final_dot=True)
                    for r in resp.authority if r.rdtype == dns.rdatatype.SOA]
        return []
    except Exception:
        return None
    return None


def _special_lookup(name: str, limit: int,
                    call: Any = None) -> tuple[str, Any, str]:
    """dns_special_lookup() for T_CSA: (status, answer, found name)."""
    status, ans = _srv(name, call)
    if status in ("OK", "AGAIN"):
        return status, ans, name
    low = name.lower()
    ipv6 = False
    end = len(name)
    if low.endswith(".in-addr.arpa"):
        end = len(name) - len(".in-addr.arpa")
        limit = 3
    elif low.endswith(".ip6.arpa"):
        end = len(name) - len(".ip6.arpa")
        ipv6, limit = True, 3
    else:
        k = name.rfind(".")
        if k < 0:
            return "NOMATCH", None, name
        end = k
    tld = name[end + 1:].lower()
    if status == "NOMATCH":
        # Exim skips the search when the authority section shows that the
        # top or second level domain does not exist (a root or TLD SOA);
        # with no SOA at all, 4.96 was seen to skip it too (its answer
        # buffer is not usable then).
        soas = _nx_soa_names(name)
        if not soas or any(n in ("", tld) for n in
                           (x.lower() for x in soas)):
            return "NOMATCH", None, name
    suff = end
    for _ in range(limit):
        if ipv6:
            suff -= 8
            if suff <= 0:
                return "NOMATCH", None, name
        else:
            while True:
                suff -= 1
                if suff <= 0:
                    return "NOMATCH", None, name
                if name[suff] == ".":
                    break
        parent = name[suff + 1:]
        status, ans = _srv(parent, call)
        if status == "AGAIN":
            return status, ans, name
        if status != "OK":
            continue
        for prio, _w, port, _t in _srv_records(ans):
            if prio == 1 and port & 1:
                return "OK", ans, parent
    return "NOMATCH", None, name


def _addresses(call: Any, records: list[tuple[str, str]], target: str,
               client: str) -> int:
    """acl_verify_csa_address(): (name, address) pairs of A/AAAA data."""
    found = False
    for rname, addr in records:
        if rname.lower() != target.lower():
            continue
        found = True
        if addr.lower() == client.lower():
            return CSA_OK
    return FAIL_MISMATCH if found else FAIL_NOADDR


def _rr_addresses(rrsets: Any) -> list[tuple[str, str]]:
    out = []
    for rrset in rrsets or []:
        import dns.rdatatype
        if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            continue
        rname = rrset.name.to_text(omit_final_dot=True)
        for rd in rrset:
            out.append((rname, rd.address))
    return out


def _check(call: Any, domain: str) -> int:
    client = call.var("sender_host_address")
    limit = int(_opt(call, "dns_csa_search_limit", 5))
    status, ans, found = _special_lookup(domain, limit, call)
    if status == "AGAIN" or status not in ("OK", "NOMATCH", "NODATA"):
        return DEFER_SRV
    if status != "OK":
        return UNKNOWN
    target = None
    for prio, weight, port, t in _srv_records(ans):
        if prio != 1:
            continue
        if found != domain:
            return FAIL_EXPLICIT if port & 1 else UNKNOWN
        if weight < 2:
            return FAIL_DOMAIN
        if weight > 2:
            continue
        target = t
        break
    if target is None:
        return UNKNOWN
    if target == "":
        return FAIL_NOADDR
    rc = _addresses(call, _rr_addresses(getattr(ans.response, "additional",
                                                None)), target, client)
    if rc != FAIL_NOADDR:
        return rc
    from eximpy.lookups import dnsdb
    rtype = "AAAA" if ":" in client else "A"
    status, a = dnsdb.query(None, target, rtype)
    if status == "OK":
        rc = _addresses(call, _rr_addresses([a.rrset]), target, client)
        if rc != FAIL_NOADDR:
            return rc
        return FAIL_NOADDR
    if status in ("NOMATCH", "NODATA"):
        return FAIL_NOADDR
    return DEFER_ADDR


def acl_verify_csa(call: Any, rest: str) -> int:
    """acl_verify_csa(): the CSA result code for the argument ``rest``."""
    domain = rest.lstrip()
    if not domain:
        domain = call.var("sender_helo_name") or None
    if domain is None:
        domain = call.var("sender_host_address")
    if not call.var("sender_host_address"):
        return UNKNOWN
    if domain.startswith("["):
        k = domain.find(":")
        start = k if k >= 0 else 0
        domain = domain[start + 1:len(domain) - 1]
    if _is_ip(domain):
        if not _opt(call, "dns_csa_use_reverse", True):
            return UNKNOWN
        domain = _reverse(domain)
    hit = _CACHE.get(domain)
    if hit is not None:
        return hit
    rc = _check(call, domain)
    _CACHE[domain] = rc
    return rc


def verify_csa(call: Any, rest: str, msgs: Any) -> str:
    """The verify = csa condition (acl_verify()'s VERIFY_CSA case)."""
    rc = acl_verify_csa(call, rest)
    msgs.log = msgs.user = f"client SMTP authorization {REASON[rc]}"
    call.ctx.variables["csa_status"] = STATUS[rc]
    call.engine.conn["csa_status"] = STATUS[rc]
    return RETURN[rc]
