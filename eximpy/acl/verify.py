"""The `verify =` ACL condition: Exim's acl_verify().

SUMMARY
    acl_verify(call, arg, msgs) -> OK | FAIL | DEFER | ERROR
    Callout (protocol)   .callout(address, is_recipient, options, call)
                             -> (rc, message)

DESCRIPTION
    recipient           routes the RCPT address through the router chain in
                        verify mode (eximpy.routing, V_RECIPIENT); failure
                        messages are the router's ("Unrouteable address").
    sender[=addr]       the same for the envelope sender (cached per
                        message: "using cached sender verify result"); the
                        failing address is reported in
                        result.sender_verify_failed for the session, which
                        writes Exim's "Verification failed for <...>" lines.
    helo                the HELO/EHLO name resolves to the client address
                        (or is its address literal).
    reverse_host_lookup the client address has a name whose forward lookup
                        gives the address back.
    header_syntax, header_sender, not_blind, header_names_ascii
                        checks on the message's header lines (DATA ACLs).
    certificate         the client presented a verified certificate.
    csa                 Client SMTP Authorization (eximpy.acl.csa).

    Callouts (/callout=...): the options are parsed as Exim does; the SMTP
    dialogue itself is delegated to ``engine.callout`` (an object with a
    ``callout`` method, see above), which eximpy's remote-delivery code
    will provide.  Without one, a callout counts as "could not complete"
    (DEFER, or OK with defer_ok), never as a success.

SEE ALSO
    spec 44.45-44.50 "Address verification", "Callout verification";
    Exim acl.c acl_verify(), verify.c.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from eximpy.acl.runner import DEFER, ERROR, FAIL, OK

_START = ">" * 35


@dataclass
class SenderVerifyFailure:
    """A failed sender verification, for the session to report once per
    message when it rejects (Exim's sender_verified_failed)."""

    address: str
    message: str | None          # for the log line
    user_message: str | None     # extra reply lines
    defer: bool


def sender_verify_report(svf: SenderVerifyFailure, host_and_ident: str,
                         rc: str, log_reject: bool = True
                         ) -> tuple[str | None, str | None]:
    """What Exim's smtp_handle_acl_fail() adds for a sender verify failure:
    (log line for main+reject log or None, non-final reply text or None).
    ``rc`` is the ACL's result (FAIL or DEFER)."""
    log = None
    if rc != FAIL or log_reject:
        log = (f"{host_and_ident} sender verify "
               f"{'defer' if svf.defer else 'fail'} for <{svf.address}>"
               + (f": {svf.message}" if svf.message else ""))
    reply = None
    if rc == FAIL and svf.user_message:
        reply = f"Verification failed for <{svf.address}>\n{svf.user_message}"
    return log, reply
_END = "----------- end verify ------------"


def _route(call: Any, address: str, recipient: bool) -> tuple[str, Any]:
    rc, addr, _rctx = route_for_verify(call, address, recipient)
    call.trace(_END)
    return rc, addr


_NO_CALLOUT = ("Cannot do callout: neither router nor transport provided a "
               "host list, or transport is not smtp")


def route_for_verify(call: Any, address: str, recipient: bool
                     ) -> tuple[str, Any, Any]:
    """Route ``address`` in verify mode; (status, Address, RoutingContext)."""
    from eximpy import routing as R
    v = dict(call.ctx.variables)
    rctx = R.RoutingContext(call.engine.config,
                            verify=R.V_RECIPIENT if recipient else R.V_SENDER,
                            sender_address=call.var("sender_address"),
                            variables=v,
                            headers=getattr(call.env, "headers", None))
    rctx.acl_c = call.env.acl_c
    rctx.acl_m = call.env.acl_m
    addr = R.make_address(address)
    call.trace(_START)
    if call.engine.trace is not None:
        # Exim's routing debug lines (HDEBUG(D_route)) and list matches.
        rctx.trace = call.trace
        a = call.addr
        if a is not None and a.address == address:
            rctx.list_caches = {"domain": a.domain_cache,
                                "localpart": a.localpart_cache}
    try:
        rc = R.route_address(addr, rctx)
    except Exception as e:                     # a broken router config
        addr.message = str(e)
        rc = DEFER
    return rc, addr, rctx


def _parse_options(arg: str) -> tuple[str, list[str]]:
    parts = arg.split("/")
    return parts[0].strip(), [p.strip() for p in parts[1:]]


def _callout_opts(opts: list[str], msgs: Any) -> dict[str, Any] | None:
    """Parse "callout[=...]" options; None on a syntax error."""
    out: dict[str, Any] = {}
    for o in opts:
        if o.startswith("callout"):
            out["callout"] = True
            rest = o[7:]
            if rest.startswith("="):
                for item in rest[1:].split(","):
                    item = item.strip()
                    if not item:
                        continue
                    k, eq, val = item.partition("=")
                    k = k.strip()
                    if k in ("defer_ok", "no_cache", "random", "use_sender",
                             "use_postmaster", "fullpostmaster", "hold",
                             "pipeline"):
                        out[k] = True
                    elif k in ("postmaster", "mailfrom", "maxwait",
                               "connect", "ratelimit"):
                        out[k] = val
                    elif eq == "" and k[:1].isdigit():
                        out["timeout"] = k
                    else:
                        msgs.log = f'unknown option "{k}" in ACL verify condition'
                        return None
        elif o in ("defer_ok", "no_details", "success_on_redirect", "quota"):
            out[o] = True
        elif o.startswith("quota"):
            out["quota"] = o
        elif o:
            msgs.log = f'unknown option "{o}" in ACL verify condition'
            return None
    return out


def _do_callout(call: Any, address: str, recipient: bool,
                opts: dict[str, Any], msgs: Any, addr: Any, rctx: Any) -> str:
    """The callout part of a verification (between the verify markers)."""
    from eximpy.acl.engine import ERRNO_CALLOUTDEFER
    eng = call.engine
    call.trace("Attempting full verification using callout")
    if eng.host_checking and not eng.callouts_in_bh:
        call.trace("... callout omitted by default when host testing")
        call.trace("(Use -bhc if you want the callouts to happen.)")
        return OK
    impl = eng.callout
    if impl is None:
        from eximpy.acl.callout import SmtpCallout
        impl = eng.callout = SmtpCallout()
    rc, logm, userm = impl.callout(address, recipient, opts, call, addr, rctx)
    if rc != OK:
        msgs.log = logm
        msgs.user = userm
        detail = getattr(impl, "last_detail", None)
        if not recipient and rc == FAIL and detail:
            msgs.user = detail
    if rc == DEFER:
        msgs.basic_errno = ERRNO_CALLOUTDEFER
    return rc


def acl_verify(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.acl.engine import WHERE_NAMES
    what, opts = _parse_options(arg)
    where = call.where
    wname = WHERE_NAMES.get(where, where)
    low = what.lower()
    if low == "certificate":
        if opts:
            msgs.log = "unexpected '/' found in \"certificate\" (this verify item has no options)"
            return ERROR
        if call.var("tls_in_certificate_verified") in ("1", "yes", "true"):
            return OK
        msgs.user = "no verified certificate"
        return FAIL
    if low == "helo":
        if opts:
            msgs.log = "unexpected '/' found in \"helo\" (this verify item has no options)"
            return ERROR
        cached = call.engine.conn.get("helo_verify")
        if cached is None or cached[0] != call.var("sender_helo_name"):
            cached = (call.var("sender_helo_name"), _verify_helo(call))
            call.engine.conn["helo_verify"] = cached
        return cached[1]
    if low == "reverse_host_lookup":
        if not call.var("sender_host_address"):
            return OK
        name = _forward_confirmed_name(call)
        if name is None:
            msgs.log = ("host lookup failed for reverse lookup check"
                        + (" (defer)" if False else ""))
            return FAIL
        call.ctx.variables["sender_host_name"] = name
        return OK
    if low == "csa":
        from eximpy.acl.csa import verify_csa
        return verify_csa(call, arg.split("/", 1)[1] if "/" in arg else "",
                          msgs)
    if low in ("header_syntax", "header_sender", "not_blind",
               "header_names_ascii"):
        if where not in ("data", "notsmtp", "prdr", "mime", "dkim"):
            msgs.log = f"cannot verify {low} in ACL for {wname}"
            return ERROR
        from eximpy.acl import headers as H
        return H.verify_headers(call, low, opts, msgs)
    if low == "recipient":
        if where not in ("rcpt", "vrfy"):
            msgs.log = ('cannot verify recipient in ACL for '
                        f"{wname}")
            return ERROR
        copts = _callout_opts(opts, msgs)
        if copts is None:
            return ERROR
        a = call.addr
        if a is None:
            return FAIL
        if True:            # Exim routes every RCPT afresh
            rc, addr, rctx = route_for_verify(call, a.address, True)
            m = addr.message
            um = addr.user_message or addr.message
            if rc == "OK":
                rc = OK
                call.ctx.variables["address_data"] = \
                    getattr(addr.prop, "address_data", "") or ""
                # Callouts are made only for addresses routed to a remote
                # transport (Exim: local deliveries are not called out).
                if copts.get("callout") and addr in rctx.addr_remote:
                    rc = _do_callout(call, a.address, True, copts, msgs,
                                     addr, rctx)
                    call.trace(_END)
                    if rc == DEFER and copts.get("defer_ok"):
                        call.trace("verify defer overridden by "
                                   "callout_defer_ok")
                        msgs.log = msgs.user = None
                        rc = OK
                    return rc
                if copts.get("callout"):
                    call.trace(_NO_CALLOUT)
                call.trace(_END)
            elif rc in ("FAIL", "DISCARD"):
                call.trace(_END)
                rc = FAIL
            else:
                call.trace(_END)
                rc = DEFER
        if rc != OK:
            msgs.log = m
            msgs.user = um
        return rc
    if low.startswith("sender"):
        if where in ("connect", "helo", "auth", "mailauth", "etrn", "expn",
                     "starttls", "vrfy", "quit") and "=" not in what:
            msgs.log = f"cannot verify sender in ACL for {wname}"
            return ERROR
        copts = _callout_opts(opts, msgs)
        if copts is None:
            return ERROR
        if "=" in what:
            sender = what.split("=", 1)[1].strip()
        else:
            sender = call.var("sender_address")
        if sender == "":
            return OK
        cached = call.engine.msg.get("sender_verify")
        if cached is not None and cached[3] == sender and \
                not copts.get("callout"):
            call.trace("using cached sender verify result")
            rc, m, um = cached[0], cached[1], cached[2]
        else:
            rrc, addr, rctx = route_for_verify(call, sender, False)
            m = addr.message
            um = addr.user_message or addr.message
            rc = OK if rrc == "OK" else FAIL if rrc in ("FAIL", "DISCARD") \
                else DEFER
            via_callout = False
            if rc == OK and copts.get("callout") and addr in rctx.addr_remote:
                rc = _do_callout(call, sender, False, copts, msgs, addr, rctx)
                if rc != OK:
                    m, um = msgs.log, msgs.user
                    via_callout = True
            elif rc == OK and copts.get("callout"):
                call.trace(_NO_CALLOUT)
            call.trace(_END)
            if rc == DEFER and copts.get("defer_ok"):
                call.trace("verify defer overridden by callout_defer_ok")
                rc = OK
            call.engine.msg["sender_verify"] = (rc, m, um, sender,
                                                via_callout)
        if rc == OK:
            return OK
        if not call.engine.msg.get("sverify_told"):
            call.result.__dict__["sender_verify_failed"] = \
                SenderVerifyFailure(sender, m, um, rc == DEFER)
        cached = call.engine.msg["sender_verify"]
        if rc == FAIL:
            msgs.user = msgs.log = "Sender verify failed"
        elif cached[4]:
            msgs.user = msgs.log = "Could not complete sender verify callout"
        else:
            msgs.user = msgs.log = "Could not complete sender verify"
        return rc
    msgs.log = ('expected "sender[=address]", "recipient", "helo", '
                '"header_syntax", "header_sender", "header_names_ascii" or '
                '"reverse_host_lookup" at start of ACL condition '
                f'"verify {arg}"')
    return ERROR


def _forward_confirmed_name(call: Any) -> str | None:
    from eximpy import match as M
    addr = call.var("sender_host_address")
    try:
        return M._dns_host_name(call.ctx, addr)
    except Exception:
        return None


def _verify_helo(call: Any) -> str:
    helo = call.var("sender_helo_name")
    addr = call.var("sender_host_address")
    if not addr:
        return OK
    if not helo:
        return FAIL
    call.trace(f'verifying EHLO/HELO argument "{helo}"')
    if helo.startswith("[") and helo.endswith("]"):
        lit = helo[1:-1]
        if lit.lower().startswith("ipv6:"):
            lit = lit[5:]
        if lit == addr:
            call.trace("matched host address")
            return OK
        return FAIL
    name = call.var("sender_host_name")
    if name and name.lower() == helo.lower():
        return OK
    try:
        infos = socket.getaddrinfo(helo, None)
    except OSError:
        return FAIL
    return OK if any(i[4][0] == addr for i in infos) else FAIL
