"""dnsdb: DNS queries as a lookup (dnspython), and @mx_* list items.

DESCRIPTION
    ${lookup dnsdb{[>sep[,fieldsep]] [modifiers,] [type=]name[:name...]}}

      >sep            separator between records (default newline)
      ;               (instead of ,fieldsep) join TXT strings with nothing
      ,fieldsep       separator between fields of MX/SRV/TLSA/SOA records
                      (default space) and between the strings of a TXT
                      record (default: only the first string, as 4.96 does)
      defer_strict    any DNS failure defers the lookup
      defer_lax       (default) a failure defers only if nothing was found
      defer_never     failures are treated as "not found"
      dnssec_strict|dnssec_lax|dnssec_never, retrans_<time>, retry_<n>
      type            a aaaa cname csa mx mxh ns ptr soa spf srv tlsa txt zns
                      (txt when omitted); for ptr (and csa) an IP address is
                      turned into its in-addr.arpa / ip6.arpa name

    Results are tainted (they come from the network).  The resolver reads
    /etc/resolv.conf (or the file named by the EXIMPY_RESOLV_CONF variable
    in the environment, used by tests) and asks the server over UDP with
    TCP fallback; no mock in production code.

SEE ALSO
    spec section "The dnsdb lookup".
"""
from __future__ import annotations

import os

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer
from eximpy.expand.taint import Tainted

TYPES = ("a", "a6", "aaaa", "cname", "csa", "mx", "mxh", "ns", "ptr", "soa", "spf",
         "srv", "tlsa", "txt", "zns")

_RESOLVERS: dict[str, object] = {}

OK, FAIL, DEFER = "OK", "FAIL", "DEFER"


def resolver(ctx=None, retrans: float | None = None, retry: int | None = None):
    import dns.resolver
    path = os.environ.get("EXIMPY_RESOLV_CONF", "/etc/resolv.conf")
    r = _RESOLVERS.get(path)
    if r is None:
        r = dns.resolver.Resolver(filename=path, configure=True)
        _RESOLVERS.clear()
        _RESOLVERS[path] = r
    r.timeout = retrans or 5.0
    r.lifetime = (retrans or 5.0) * (retry or 2)
    r.use_edns(0, 0, 1232)
    return r


def query(ctx, name: str, rdtype: str, retrans=None, retry=None):
    """(status, answer) with status "OK" | "NOMATCH" | "NODATA" | "AGAIN"."""
    import dns.resolver
    import dns.exception
    r = resolver(ctx, retrans, retry)
    try:
        ans = r.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return "NOMATCH", None
    except dns.resolver.NoNameservers:
        return "AGAIN", None
    except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
        return "AGAIN", None
    except dns.exception.DNSException:
        return "AGAIN", None
    if ans.rrset is None:
        return "NODATA", None
    return "OK", ans


def _ptr_name(domain: str) -> str:
    from eximpy.expand.operators import ip_type, reverse_ip
    t, _ = ip_type(domain)
    if t == 4:
        return reverse_ip(domain) + ".in-addr.arpa"
    return reverse_ip(domain) + ".ip6.arpa"


def _txt(rd, fieldsep):
    strs = [s.decode("utf-8", "surrogateescape") for s in rd.strings]
    if fieldsep is None:
        return strs[0] if strs else ""     # Exim 4.96: only the first string
    return fieldsep.join(strs)


def _name(n) -> str:
    return n.to_text(omit_final_dot=True)


class DNSDB(Lookup):
    name = "dnsdb"
    names = ("dnsdb",)
    style = "query"

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand.lists import iter_list
        from eximpy.expand.operators import ip_type, readtime
        ks = key.lstrip()
        outsep = "\n"
        outsep2 = None
        if ks.startswith(">"):
            outsep = ks[1:2]
            ks = ks[2:]
            if ks.startswith(","):
                outsep2 = ks[1:2]
                ks = ks[2:]
            elif ks.startswith(";"):
                outsep2 = ""
                ks = ks[1:]
            ks = ks.lstrip()
        defer_mode = "lax"
        retrans = retry = None
        while True:
            low = ks.lower()
            if low.startswith("defer_"):
                rest = low[6:]
                for m in ("strict", "lax", "never"):
                    if rest.startswith(m):
                        defer_mode = m
                        ks = ks[6 + len(m):]
                        break
                else:
                    raise LookupDefer("unsupported dnsdb defer behaviour")
            elif low.startswith("dnssec_"):
                rest = low[7:]
                for m in ("strict", "lax", "never"):
                    if rest.startswith(m):
                        ks = ks[7 + len(m):]
                        break
                else:
                    raise LookupDefer("unsupported dnsdb dnssec behaviour")
            elif low.startswith("retrans_"):
                ks = ks[8:]
                j = 0
                while j < len(ks) and ks[j] not in ", \t":
                    j += 1
                t = readtime(ks[:j])
                if t <= 0:
                    raise LookupDefer("dnsdb: bad retrans value")
                retrans = float(t)
                ks = ks[j:]
            elif low.startswith("retry_"):
                ks = ks[6:]
                j = 0
                while j < len(ks) and ks[j].isdigit():
                    j += 1
                if j == 0:
                    raise LookupDefer("dnsdb: bad retry value")
                retry = int(ks[:j])
                ks = ks[j:]
            else:
                break
            ks = ks.lstrip()
            if not ks.startswith(","):
                raise LookupDefer("dnsdb modifier syntax error")
            ks = ks[1:].lstrip()
        rtype = "txt"
        eq = ks.find("=")
        if eq >= 0:
            t = ks[:eq].rstrip().lower()
            if t not in TYPES:
                raise LookupDefer("unsupported DNS record type")
            rtype = t
            ks = ks[eq + 1:].lstrip()
        if outsep2 is None:
            if rtype == "spf":
                outsep2 = ""
            elif rtype in ("srv", "mx", "tlsa"):
                outsep2 = " "
        out: list[str] = []
        failrc = FAIL
        sep = None
        # a list of domains; the separator may be set with <c
        for domain in iter_list(ks):
            if rtype in ("ptr", "csa") and ip_type(domain)[0]:
                domain = _ptr_name(domain)
            names = [domain]
            qtype = {"mxh": "MX", "zns": "NS", "a6": "AAAA", "csa": "SRV"}.get(
                rtype, rtype.upper())
            if rtype == "zns":
                parts = domain.split(".")
                names = [".".join(parts[i:]) for i in range(len(parts))]
            for n in names:
                status, ans = query(ctx, n, qtype, retrans, retry)
                if status in ("NOMATCH", "NODATA"):
                    continue
                if status != "OK":
                    if defer_mode == "strict":
                        raise LookupDefer("")
                    if defer_mode == "lax":
                        failrc = DEFER
                    break
                ctx.lookup_dnssec_authenticated = "no"
                for rd in ans.rrset:
                    txt = self._format(rtype, rd, outsep2)
                    if txt is None:
                        continue
                    out.append(txt)
                break
        if not out:
            if failrc == DEFER:
                raise LookupDefer("")
            return None
        return Tainted(outsep.join(out))

    def _format(self, rtype, rd, fs):
        if rtype in ("txt", "spf"):
            return _txt(rd, fs)
        if rtype in ("a", "aaaa", "a6"):
            return rd.address
        if rtype in ("ptr", "cname", "ns", "zns"):
            return _name(rd.target)
        if rtype == "mx":
            return f"{rd.preference}{fs}{_name(rd.exchange)}"
        if rtype == "mxh":
            return _name(rd.exchange)
        if rtype == "srv" or rtype == "csa":
            return f"{rd.priority}{fs}{rd.weight}{fs}{rd.port}{fs}{_name(rd.target)}"
        if rtype == "tlsa":
            return f"{rd.usage}{fs}{rd.selector}{fs}{rd.mtype}{fs}{rd.cert.hex()}"
        if rtype == "soa":
            f = fs if fs is not None else " "
            return (f"{_name(rd.mname)}{f}{_name(rd.rname)}{f}{rd.serial}{f}{rd.refresh}"
                    f"{f}{rd.retry}{f}{rd.expire}{f}{rd.minimum}")
        return None


register(DNSDB())


def check_mx(ctx, domain: str, pattern: str) -> str:
    """@mx_any / @mx_primary / @mx_secondary[/ignore=list] in a domain list:
    OK when an MX host of ``domain`` is this host (an address of it is one
    of the local interface addresses)."""
    from eximpy.match import local_interface_addresses
    low = pattern.lower()
    which, _, opts = low[4:].partition("/")
    ignore = []
    if opts.startswith("ignore="):
        from eximpy.expand.lists import iter_list
        ignore = list(iter_list(pattern.split("=", 1)[1]))
    status, ans = query(ctx, domain, "MX")
    if status == "AGAIN":
        return DEFER
    if status != "OK":
        return FAIL
    mxs = sorted(((rd.preference, _name(rd.exchange)) for rd in ans.rrset))
    if not mxs:
        return FAIL
    local = set(local_interface_addresses(ctx)) - set(ignore)
    best = mxs[0][0]
    for pref, host in mxs:
        for t in ("A", "AAAA"):
            st, a = query(ctx, host, t)
            if st != "OK":
                continue
            for rd in a.rrset:
                if rd.address in local:
                    if which == "any" or (which == "primary" and pref == best) or \
                            (which == "secondary" and pref != best):
                        ctx._match_value = pattern
                        return "OK"
    return FAIL
