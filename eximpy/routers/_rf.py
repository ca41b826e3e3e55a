"""Helpers shared by the router drivers (Exim's rf_*.c functions).

SUMMARY
    get_transport(r, addr, rctx, option)   expand and find a transport
    get_errors_address(r, addr, rctx)      errors_to
    get_munge_headers(r, addr, rctx)       headers_add / headers_remove
    get_ugid(r, addr, rctx, pw)            user / group / initgroups
    queue_add(r, addr, rctx, pw)           put a routed address on a chain
    expand_data(r, addr, rctx, text, what) expansion; forced fail -> DECLINE
    lookup_hostlist(r, addr, rctx, ...)    find IP addresses for a host list
    self_action(r, addr, rctx, host)       the `self` option
    build_hostlist(text, randomize)        host list text -> [Host]

    Each returns a routing status string (eximpy.routing.OK/DEFER/...) or a
    value; on DEFER/FAIL the address's message is set with Exim's wording.

SEE ALSO
    spec chapter 15; Exim routers/rf_*.c.
"""
from __future__ import annotations

import ipaddress
import random
import socket
from typing import Any

from eximpy.address import Address, Host, MX_NONE, PORT_NONE
from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy import routing as R


def transport_is_local(tp: Any) -> bool:
    info = getattr(tp, "info", None)
    return bool(getattr(info, "local", True))


def find_transport(rctx: Any, name: str) -> Any:
    return rctx.config.transport(name)


def get_transport(r: Any, addr: Address, rctx: Any, option: str = "transport",
                  text: str | None = None) -> tuple[bool, Any]:
    """(ok, transport instance or None) for an option naming a transport."""
    tpname = text if text is not None else r.opt(option)
    if not tpname:
        return True, None
    name = tpname
    if "$" in tpname:
        try:
            name = rctx.expand(tpname, addr)
        except ExpansionForcedFail as e:
            addr.message = (f'forced failure when expanding "{tpname}" for '
                            f"{option} in {r.name} router")
            addr.basic_errno = R.ERRNO_EXPANDFAIL
            return False, None
        except ExpansionError as e:
            addr.message = (f'failed to expand transport "{tpname}" in '
                            f"{r.name} router: {e}")
            addr.basic_errno = R.ERRNO_EXPANDFAIL
            return False, None
        from eximpy.expand.taint import is_tainted
        if is_tainted(name):
            addr.message = (f'attempt to use tainted value "{name}" from '
                            f'"{tpname}" for transport')
            addr.basic_errno = R.ERRNO_EXPANDFAIL
            return False, None
    tp = find_transport(rctx, name)
    if tp is None:
        addr.message = f'transport "{name}" not found in {r.name} router'
        addr.basic_errno = R.ERRNO_EXPANDFAIL
        return False, None
    return True, tp


def get_errors_address(r: Any, addr: Address, rctx: Any) -> str:
    """errors_to: set addr.prop.errors_address (Exim rf_get_errors_address)."""
    text = r.opt("errors_to")
    if not text:
        return R.OK
    try:
        s = rctx.expand(text, addr)
    except ExpansionForcedFail:
        return R.OK
    except ExpansionError as e:
        addr.message = (f'failed to expand "{text}" in {r.name} router: {e}')
        return R.DEFER
    if not s:
        addr.prop.ignore_error = True
        addr.prop.errors_address = None
        return R.OK
    # Exim verifies the errors address (as a recipient) unless it is
    # itself verifying an address; one that does not verify is ignored.
    if rctx.verify == R.V_NONE and not getattr(rctx, "_in_errors_verify", False):
        rctx._in_errors_verify = True
        try:
            from eximpy.address import parse_find_at
            target = s if parse_find_at(s) >= 0 else f"{s}@{rctx.qualify_recipient()}"
            res = R.verify(rctx.config, target, is_recipient=True,
                           sender_address=rctx.sender_address)
        finally:
            rctx._in_errors_verify = False
        if res.status != R.OK:
            return R.OK
    addr.prop.errors_address = s
    return R.OK


def get_munge_headers(r: Any, addr: Address, rctx: Any) -> str:
    """headers_add / headers_remove (Exim rf_get_munge_headers)."""
    from eximpy.expand.lists import iter_list
    add = r.opt("headers_add")
    if add:
        for item in iter_list(add, "\n"):
            try:
                s = rctx.expand(item, addr)
            except ExpansionForcedFail:
                continue
            except ExpansionError as e:
                addr.message = (f'failed to expand "{item}" in {r.name} '
                                f"router: {e}")
                return R.DEFER
            if s:
                if not s.endswith("\n"):
                    s += "\n"
                addr.prop.extra_headers.append(s)
    rem = r.opt("headers_remove")
    if rem:
        items = list(addr.prop.remove_headers.split(":")) \
            if addr.prop.remove_headers else []
        for item in iter_list(rem):
            try:
                s = rctx.expand(item, addr)
            except ExpansionForcedFail:
                continue
            except ExpansionError as e:
                addr.message = (f'failed to expand "{item}" in {r.name} '
                                f"router: {e}")
                return R.DEFER
            if s:
                items.append(s)
        addr.prop.remove_headers = ":".join(items) if items else None
    return R.OK


def get_ugid(r: Any, addr: Address, rctx: Any, pw: Any) -> tuple[bool, dict]:
    """user/group of a router (Exim rf_get_ugid): (ok, ugid dict)."""
    import grp
    import pwd
    ugid: dict[str, Any] = {"uid": None, "gid": None,
                            "initgroups": bool(r.opt("initgroups"))}
    user = r.opt("user")
    if user is not None:
        if isinstance(user, int):
            ugid["uid"] = user
        else:
            try:
                name = rctx.expand(user, addr)
            except (ExpansionError, ExpansionForcedFail) as e:
                addr.message = (f'Failed to expand user string "{user}" for '
                                f"the {r.name} router: {e}")
                return False, ugid
            try:
                p = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
            except KeyError:
                addr.message = (f'Failed to find user "{name}" from expanded '
                                f'string "{user}" for the {r.name} router')
                return False, ugid
            ugid["uid"] = p.pw_uid
            ugid["gid"] = p.pw_gid
    group = r.opt("group")
    if group is not None:
        if isinstance(group, int):
            ugid["gid"] = group
        else:
            try:
                name = rctx.expand(group, addr)
                ugid["gid"] = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
            except (ExpansionError, ExpansionForcedFail, KeyError):
                addr.message = (f'Failed to find group from expanded string '
                                f'"{group}" for the {r.name} router')
                return False, ugid
    elif user is not None and isinstance(user, int):
        try:
            ugid["gid"] = pwd.getpwuid(user).pw_gid
        except KeyError:
            pass
    return True, ugid


def set_ugid(addr: Address, ugid: dict) -> None:
    if ugid.get("uid") is not None:
        addr.uid = ugid["uid"]
    if ugid.get("gid") is not None:
        addr.gid = ugid["gid"]
    addr.initgroups = bool(ugid.get("initgroups"))


def queue_add(r: Any, addr: Address, rctx: Any, pw: Any) -> bool:
    """Put a routed address on the local or remote chain (rf_queue_add)."""
    addr.prop.domain_data = addr.prop.domain_data
    if addr.transport is not None and transport_is_local(addr.transport):
        if pw is not None:
            if addr.uid is None:
                addr.uid = pw.pw_uid
            if addr.gid is None:
                addr.gid = pw.pw_gid
        if addr.home_dir is None:
            thd = r.opt("transport_home_directory")
            if thd:
                try:
                    addr.home_dir = rctx.expand(thd, addr)
                except ExpansionForcedFail:
                    pass
                except ExpansionError as e:
                    addr.message = (f'home directory "{thd}" failed to expand '
                                    f"for transport: {e}")
                    addr.basic_errno = R.ERRNO_EXPANDFAIL
                    return False
            elif rctx.home is not None:
                addr.home_dir = rctx.home
        if addr.current_dir is None:
            tcd = r.opt("transport_current_directory")
            if tcd:
                try:
                    addr.current_dir = rctx.expand(tcd, addr)
                except (ExpansionError, ExpansionForcedFail):
                    pass
        rctx.addr_local.insert(0, addr)
    else:
        rctx.addr_remote.insert(0, addr)
    fh = r.opt("fallback_hosts")
    if fh and not addr.fallback_hosts:
        addr.fallback_hosts = build_hostlist(fh, False)
    return True


def expand_data(r: Any, addr: Address, rctx: Any, text: str, what: str) -> tuple[str, str | None]:
    """(status, value): forced failure declines, other errors defer."""
    try:
        return R.OK, rctx.expand(text, addr)
    except ExpansionForcedFail:
        return R.DECLINE, None
    except ExpansionError as e:
        addr.message = f'failed to expand "{text}": {e}'
        addr.basic_errno = R.ERRNO_EXPANDFAIL
        return R.DEFER, None


# ---------------------------------------------------------------------------
# Host lists

def _split_port(item: str) -> tuple[str, int]:
    """host[:port] / [ip]:port / ip6 with port via "." -> (name, port)."""
    if item.startswith("["):
        end = item.find("]")
        if end > 0:
            name = item[1:end]
            rest = item[end + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                return name, int(rest[1:])
            return name, PORT_NONE
    if item.count(":") == 1:
        name, _, port = item.partition(":")
        if port.isdigit():
            return name, int(port)
    return item, PORT_NONE


def build_hostlist(text: str, randomize: bool) -> list[Host]:
    """Exim's host_build_hostlist(): a colon list of hosts, each with an
    optional /MX and :port.  A "+" item separates randomized groups."""
    from eximpy.expand.lists import iter_list
    hosts: list[Host] = []
    group = 0
    for item in iter_list(text):
        if item == "+":
            group += 1
            continue
        mx = MX_NONE
        name = item
        if name.lower().endswith("/mx"):
            name = name[:-3]
            mx = -2            # MX_NONE-like marker "look up MX" (see manualroute)
        name, port = _split_port(name)
        h = Host(name=name, port=port, mx=mx)
        h.sort_key = random.randrange(1000) + group * 1000 if randomize else group
        hosts.append(h)
    if randomize:
        hosts.sort(key=lambda h: h.sort_key)
    return hosts


def is_ip_address(s: str) -> int:
    """4 or 6 when s is an IP address, else 0."""
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return 0
    return a.version


def local_interface_addresses(rctx: Any) -> set[str]:
    """Addresses Exim treats as "this host" (local_interfaces or all)."""
    cached = getattr(rctx, "_local_ifaces", None)
    if cached is not None:
        return cached
    out: set[str] = {"127.0.0.1", "::1"}
    li = rctx.main("local_interfaces")
    extra = rctx.main("extra_local_interfaces")
    texts = [t for t in (li, extra) if t]
    ifaces: set[str] = set()
    try:
        import fcntl  # noqa: F401
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
        for k, line in enumerate(lines):
            if "/32 host LOCAL" in line and k > 0:
                ifaces.add(lines[k - 1].split()[-1])
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                h = line.split()[0]
                ifaces.add(str(ipaddress.ip_address(int(h, 16))))
    except OSError:
        pass
    if texts:
        from eximpy.expand.lists import iter_list
        listed: set[str] = set()
        for t in texts:
            for item in iter_list(t):
                item = item.split(".")[0] if item.count(".") == 4 and \
                    item.rsplit(".", 1)[1].isdigit() and False else item
                if item in ("0.0.0.0", "::0", "::"):
                    listed |= ifaces
                    listed.add("::1" if ":" in item else "127.0.0.1")
                else:
                    listed.add(item.strip("[]"))
        out = listed
    else:
        out |= ifaces
    rctx._local_ifaces = out
    return out


def host_is_local(rctx: Any, address: str) -> bool:
    return address in local_interface_addresses(rctx)


def find_byname(name: str, ipv4_only: bool = False) -> list[str]:
    """Addresses of a host via the system resolver (getaddrinfo), in order;
    raises OSError when not found."""
    fam = socket.AF_INET if ipv4_only else socket.AF_UNSPEC
    infos = socket.getaddrinfo(name, None, fam, socket.SOCK_STREAM)
    seen: list[str] = []
    v6 = [i[4][0] for i in infos if i[0] == socket.AF_INET6]
    v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
    for a in v6 + v4:
        if a not in seen:
            seen.append(a)
    return seen


def find_bydns(name: str, rctx: Any, want_mx: bool = False,
               ipv4_only: bool = False) -> tuple[str, list[tuple[str, list[str], int]]]:
    """DNS lookup with dnspython: ("OK"|"FAILED"|"AGAIN", [(host, addrs, mx)])."""
    import dns.exception
    import dns.resolver
    res = dns.resolver.Resolver()
    res.lifetime = float(rctx.main("dns_retrans") or 5) * max(
        1, int(rctx.main("dns_retry") or 2))
    out: list[tuple[str, list[str], int]] = []

    def addrs(host: str) -> tuple[str, list[str]]:
        found: list[str] = []
        again = False
        for rtype in (("A",) if ipv4_only else ("AAAA", "A")):
            try:
                ans = res.resolve(host, rtype, search=False)
                found.extend(str(x) for x in ans)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                pass
            except (dns.exception.Timeout, dns.resolver.NoNameservers,
                    dns.resolver.LifetimeTimeout):
                again = True
        if found:
            return "OK", found
        return ("AGAIN" if again else "FAILED"), []

    if want_mx:
        try:
            ans = res.resolve(name, "MX", search=False)
            mxs = sorted(((r.preference, str(r.exchange).rstrip(".")) for r in ans))
            for pref, host in mxs:
                st, a = addrs(host)
                out.append((host, a, pref))
            if out:
                return "OK", out
        except (dns.resolver.NXDOMAIN,):
            return "FAILED", []
        except dns.resolver.NoAnswer:
            pass
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.LifetimeTimeout):
            return "AGAIN", []
    st, a = addrs(name)
    if st != "OK":
        return st, []
    return "OK", [(name, a, MX_NONE)]


def self_action(r: Any, addr: Address, rctx: Any, host: Host,
                itype: str = "host") -> str:
    """The `self` option: what to do when routing leads to this host."""
    code = (r.opt("self") or "freeze").strip()
    msg = ("lowest numbered MX record points to local host" if itype == "mx"
           else "remote host address is the local host")
    addr.self_hostname = host.name
    if code in ("freeze", "defer"):
        rctx.log(f"{msg}: {addr.domain} (while routing <{addr.address}>)")
    if code == "freeze":
        addr.message = msg
        addr.special_action = 1     # SPECIAL_FREEZE
        return R.DEFER
    if code == "defer":
        addr.message = msg
        return R.DEFER
    if code == "fail":
        addr.message = msg
        return R.FAIL
    if code == "send":
        return R.OK
    if code == "pass":
        return R.PASS
    if code.startswith("reroute:"):
        new_domain = code[8:].strip()
        rewrite = True
        if new_domain.startswith("rewrite:"):
            new_domain = new_domain[8:].strip()
        return change_domain(addr, new_domain, rewrite, rctx)
    addr.message = msg
    return R.DEFER


def change_domain(addr: Address, domain: str, rewrite: bool, rctx: Any) -> str:
    """Create a child with a new domain (Exim rf_change_domain): REROUTED."""
    from eximpy.address import split_address
    at = addr.address.rfind("@")
    lp = addr.address[:at] if at >= 0 else addr.address
    child = addr.make_child(f"{lp}@{domain}")
    split_address(child)
    rctx.addr_new.insert(0, child)
    return R.REROUTED


def lookup_hostlist(r: Any, addr: Address, rctx: Any, ignore_target_hosts: str,
                    lookup_type: str, hff_code: str) -> str:
    """Find IP addresses for addr.host_list (Exim rf_lookup_hostlist).

    lookup_type: "byname", "bydns" or "" (DNS, then byname on failure).
    hff_code: host_find_failed action (ignore, decline, defer, fail, freeze, pass).
    """
    from eximpy import match as M
    new_list: list[Host] = []
    for h in addr.host_list:
        if h.address is not None:
            new_list.append(h)
            continue
        ipv = is_ip_address(h.name)
        found: list[tuple[str, str, int]] = []
        status = "OK"
        if ipv:
            found = [(h.name, h.name, h.mx if h.mx >= 0 else MX_NONE)]
        elif lookup_type == "byname" and h.mx != -2:
            try:
                found = [(h.name, a, MX_NONE) for a in find_byname(h.name)]
            except OSError:
                status = "FAILED"
        else:
            want_mx = h.mx == -2
            st, res = find_bydns(h.name, rctx, want_mx=want_mx)
            if st == "OK":
                for host, addrs, mx in res:
                    for a in addrs:
                        found.append((host, a, mx))
            elif st == "FAILED" and not lookup_type and not want_mx:
                try:
                    found = [(h.name, a, MX_NONE) for a in find_byname(h.name)]
                except OSError:
                    status = "FAILED"
            else:
                status = st
        if status == "AGAIN":
            addr.message = f"host lookup for {h.name} did not complete (DNS timeout?)"
            return R.DEFER
        if ignore_target_hosts and found and status != "FAILED":
            ctx = rctx.expand_context(addr)
            found = [f for f in found if M.match_host_list(
                ctx, f[1], f[0], ignore_target_hosts, expand=True)[0] != M.OK]
            # Every address of this host is to be ignored: Exim treats that
            # as a failed lookup (host_find_failed applies, just below).
        if status == "FAILED" or not found:
            if hff_code == "ignore":
                continue
            if hff_code == "decline":
                return R.DECLINE
            if hff_code == "pass":
                return R.PASS
            addr.message = f"lookup of host \"{h.name}\" failed in {r.name} router"
            if hff_code == "fail":
                return R.FAIL
            if hff_code == "freeze":
                addr.special_action = 1
            return R.DEFER
        for name, a, mx in found:
            nh = Host(name=name, address=a, port=h.port, mx=mx if mx >= 0 else
                      (h.mx if h.mx >= 0 else MX_NONE), sort_key=h.sort_key)
            new_list.append(nh)
    addr.host_list = new_list
    # self check: the first host that is this host
    for k, h in enumerate(new_list):
        if h.address and host_is_local(rctx, h.address):
            if k == 0 or all(x.address and host_is_local(rctx, x.address)
                             for x in new_list[:k]):
                rc = self_action(r, addr, rctx, h, "host")
                if rc == R.OK:
                    continue
                return rc
    return R.OK
