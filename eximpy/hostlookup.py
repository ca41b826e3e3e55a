"""Finding the client's host name from its IP address, as Exim does.

SUMMARY
    host_name_lookup(address, order="bydns:byaddr", ctx=None) -> HostLookup
        .rc          "OK" | "FAIL" | "DEFER"
        .name        the verified name ($sender_host_name) or None
        .aliases     further verified names
        .msg         Exim's host_lookup_msg (" (failed to find host name
                     from IP address)" ...), empty on success

DESCRIPTION
    Exim's host_name_lookup(): the sources in host_lookup_order are tried
    in turn; "bydns" asks the DNS for PTR records (the first non-empty
    name is the name, the others aliases, all lower-cased), "byaddr" asks
    the system resolver (gethostbyaddr).  A temporary DNS error defers.
    Every name found must then be confirmed by a forward A/AAAA lookup
    that yields the address; names that do not are dropped (the first
    surviving alias replaces a dropped main name).  When nothing survives
    the lookup fails with " (<ip> does not match any IP address for
    <name>)".

    The SMTP session calls this for hosts matching host_lookup; the ACL
    conditions that need a name (host lists with names, verify =
    reverse_host_lookup) use the same function.

SECURITY
    A PTR record alone is never believed: only forward-confirmed names are
    returned.

SEE ALSO
    spec 11.x "host_lookup" option, 44.45 "Reverse host lookup"; Exim
    host.c host_name_lookup().
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

OK, FAIL, DEFER = "OK", "FAIL", "DEFER"


@dataclass
class HostLookup:
    rc: str
    name: str | None = None
    aliases: list[str] = field(default_factory=list)
    msg: str = ""


def _query(ctx: Any, name: str, rdtype: str) -> tuple[str, Any]:
    """dnsdb.query(), with a resolver that cannot even be set up (no
    resolv.conf, e.g. in a chroot) counted as a temporary failure."""
    from eximpy.lookups import dnsdb
    try:
        return dnsdb.query(ctx, name, rdtype)
    except Exception:
        return "AGAIN", None


def _ptr_names(address: str, ctx: Any) -> tuple[str, list[str]]:
    """("OK"|"NOMATCH"|"NODATA"|"AGAIN", names) from PTR records."""
    from eximpy.lookups import dnsdb
    st, ans = _query(ctx, dnsdb._ptr_name(address), "PTR")
    if st != "OK":
        return st, []
    names = []
    for rd in ans.rrset:
        n = dnsdb._name(rd.target).lower()
        if n:
            names.append(n)
    return st, names


def _byaddr_names(address: str) -> tuple[str, list[str]]:
    try:
        name, aliases, _ = socket.gethostbyaddr(address)
    except socket.herror:
        return FAIL, []
    except OSError:
        return DEFER, []
    return OK, [n.lower() for n in [name] + aliases if n]


def _forward(name: str, ctx: Any) -> tuple[str, list[str]]:
    """A and AAAA addresses of ``name``: ("OK"|"FAIL"|"DEFER", addrs)."""
    addrs: list[str] = []
    again = False
    for t in ("AAAA", "A"):
        st, ans = _query(ctx, name, t)
        if st == "OK":
            addrs += [r.address for r in ans.rrset]
        elif st == "AGAIN":
            again = True
    if addrs:
        return OK, addrs
    return (DEFER if again else FAIL), []


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def host_name_lookup(address: str, order: str | None = None,
                     ctx: Any = None,
                     trace: Callable[[str], None] | None = None
                     ) -> HostLookup:
    """``trace`` gets Exim's host_lookup debug lines (shown by -bh)."""
    def say(text: str) -> None:
        if trace is not None:
            trace(text)
    say(f"looking up host name for {address}")
    names: list[str] = []
    for source in (order or "bydns:byaddr").split(":"):
        source = source.strip().lower()
        if source == "bydns":
            st, found = _ptr_names(address, ctx)
            if st == "AGAIN":
                say("IP address PTR lookup gave temporary error")
                return HostLookup(DEFER)
            if found:
                names = found
                break
        elif source == "byaddr":
            say("IP address lookup using gethostbyaddr()")
            st, found = _byaddr_names(address)
            if st == DEFER:
                return HostLookup(DEFER)
            if found:
                names = found
                break
    if not names:
        return HostLookup(FAIL, msg=" (failed to find host name from IP "
                          "address)")
    say(f'IP address lookup yielded "{names[0]}"')
    for alias in names[1:]:
        say(f'  alias "{alias}"')
    confirmed: list[str] = []
    for name in names:
        st, addrs = _forward(name, ctx)
        if st == DEFER:
            say("temporary error for host name lookup")
            return HostLookup(DEFER)
        if st != OK:
            say(f"no IP addresses found for {name}")
            continue
        say(f"checking addresses for {name}")
        ok = False
        for a in addrs:
            if _same_address(a, address):
                say(f"  {a} OK")
                ok = True
                break
            say(f"  {a}")
        if ok:
            confirmed.append(name)
        else:
            say(f"no IP address for {name} matched {address}")
    if not confirmed:
        say(f"{address} does not match any IP address for {names[0]}")
        return HostLookup(FAIL, msg=f" ({address} does not match any IP "
                          f"address for {names[0]})")
    return HostLookup(OK, confirmed[0], confirmed[1:])
