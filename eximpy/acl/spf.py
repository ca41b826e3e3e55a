"""The `spf` and `spf_guess` ACL conditions, with the pyspf library.

SUMMARY
    acl_spf(call, name, arg, msgs) -> OK | FAIL | ERROR

DESCRIPTION
    Exim links libspf2; eximpy uses the pure-Python pyspf package (PyPI
    "pyspf").  The client address, $sender_address (or postmaster@ the HELO
    name for a null sender) and the HELO name are checked; the result name
    is matched against the condition's list (no list trace, as in Exim).
    Results and texts follow what Exim 4.96 with libspf2 produces:
    pass fail softfail neutral none temperror permerror, and "invalid" for
    a record with a syntax error, where $spf_result is "(invalid)" and the
    comments are empty.  $spf_header_comment, $spf_smtp_comment,
    $spf_received and $spf_result_guessed are set as Exim sets them
    ("<primary_hostname>: domain of <d> designates <ip> as permitted
    sender", "Please see http://www.open-spf.org/Why : Reason: mechanism",
    "Received-SPF: ..."), so they can be used in headers and messages.
    spf_guess uses spf_guess = "v=spf1 a/24 mx/24 ptr ?all" (Exim's
    default) when the domain publishes no record.

    DNS queries go through eximpy.lookups.dnsdb's resolver (the system
    resolv.conf, or EXIMPY_RESOLV_CONF), installed as pyspf's lookup
    function.  Without pyspf the conditions return ERROR (a temporary
    rejection), so an SPF policy never passes by accident.

SEE ALSO
    spec 44.54 "SPF (Sender Policy Framework)"; Exim spf.c.
"""
from __future__ import annotations

from typing import Any

from eximpy.acl.runner import ERROR, FAIL

_WHY = "Please see http://www.open-spf.org/Why : Reason: "
_SYNTAX = ("unknown mechanism", "unknown modifier", "invalid",
           "syntax", "unknown qualifier", "missing mechanism")


def _dns_lookup_for(ctx: Any):
    """A pyspf DNSLookup function using eximpy's resolver settings."""
    def lookup(name: str, qtype: str, tcpfallback: bool = True,
               timeout: int = 30) -> list:
        import spf  # type: ignore[import-not-found]
        from eximpy.lookups import dnsdb
        st, ans = dnsdb.query(ctx, name, qtype)
        if st == "AGAIN":
            raise spf.TempError(f"DNS lookup of {name} failed")
        out: list = []
        if st != "OK" or ans is None:
            return out
        for rd in ans.rrset:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rd.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rd.preference, rd.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), rd.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), rd.strings))
        return out
    return lookup


def acl_spf(call: Any, name: str, arg: str, msgs: Any) -> str:
    try:
        import spf  # type: ignore[import-not-found]
    except ImportError:
        msgs.log = (f'ACL condition "{name}" is not supported by eximpy '
                    "(the pyspf library is not installed)")
        return ERROR
    from eximpy import match as M
    v = call.ctx.variables
    ip = call.var("sender_host_address")
    helo = call.var("sender_helo_name")
    sender = call.var("sender_address")
    if not ip:
        return FAIL
    spf.DNSLookup = _dns_lookup_for(call.ctx)
    mail = sender or f"postmaster@{helo}"
    domain = mail.rpartition("@")[2]
    host = call.engine.main("primary_hostname") or "localhost"
    try:
        q = spf.query(i=ip, s=mail, h=helo, querytime=20)
        res, _code, expl = q.check()
    except Exception as e:                         # pragma: no cover
        res, expl, q = "temperror", str(e), None
    guessed = "no"
    if name == "spf_guess" and res == "none":
        guess = call.engine.main("spf_guess", "v=spf1 a/24 mx/24 ptr ?all")
        try:
            res, _code, expl = q.check(spf=guess)
            guessed = "yes"
        except Exception:                          # pragma: no cover
            pass
    mech = getattr(q, "mechanism", None) or "default"
    reason = "default" if mech == "default" else "mechanism"
    match_name = res
    if res == "permerror" and any(k in str(expl).lower() for k in _SYNTAX):
        match_name = "invalid"
    if match_name == "invalid":
        shown, hc, sc, recv = "(invalid)", "", "", ""
    else:
        shown = res
        hc = {
            "pass": f"domain of {domain} designates {ip} as permitted sender",
            "fail": f"domain of {domain} does not designate {ip} as "
                    "permitted sender",
            "softfail": f"transitioning domain of {domain} does not "
                        f"designate {ip} as permitted sender",
            "neutral": f"{ip} is neither permitted nor denied by domain of "
                       f"{domain}",
            "none": f"domain of {domain} does not provide an SPF record",
            "permerror": f"error in processing during lookup of domain of "
                         f"{domain}: Could not find a valid SPF record",
            "temperror": f"error in processing during lookup of {domain}: "
                         "DNS problem",
        }.get(res, "")
        hc = f"{host}: {hc}"
        sc = _WHY + reason if res in ("fail", "softfail", "neutral") else ""
        recv = (f"Received-SPF: {res} ({hc}) client-ip={ip}; "
                f"envelope-from={mail}; helo={helo};")
    v["spf_result"] = shown
    v["spf_header_comment"] = hc
    v["spf_smtp_comment"] = sc
    v["spf_received"] = recv
    v["spf_result_guessed"] = guessed
    rc, _ = M.match_isinlist(call.ctx, match_name, arg, M.MCL_STRING, True,
                             False)
    return rc
