"""ACL conditions and modifiers: Exim's acl_check_condition().

SUMMARY
    check_conditions(call, statement, msgs) -> (rc, endpass_seen)

DESCRIPTION
    Runs the conditions and modifiers of one statement in order, stopping
    at the first that is not OK; negation inverts OK/FAIL; then handles
    ``message`` and ``log_message`` for the result that uses them (Exim's
    msgcond table).  Which arguments are expanded before the test, which
    conditions are forbidden in which ACL, and the trace lines ("check
    name = arg", the expanded value under it) follow acl.c.

    The content-scanning conditions (decode, mime_regex, regex, malware,
    spam) live in eximpy.acl.content and the modules it names; dkim_signers
    and dkim_status in eximpy.acl.dkim; verify = csa in eximpy.acl.csa.
    Conditions that need a subsystem eximpy does not have raise no
    exception: they return ERROR with a log message naming what is missing
    (spf without a library), so the SMTP session answers 4xx and the
    policy fails closed.

SEE ALSO
    spec 44.16-44.27; Exim acl.c acl_check_condition().
"""
from __future__ import annotations

import re
import socket
from typing import Any

from eximpy.acl.runner import DEFER, DISCARD, ERROR, FAIL, FAIL_DROP, OK
from eximpy.errors import ExpansionError, ExpansionForcedFail

# name -> (expand_at_top, is_modifier, forbidden wheres)
_ALL = ("rcpt", "mail", "predata", "mime", "dkim", "data", "prdr", "notsmtp",
        "auth", "connect", "etrn", "expn", "helo", "mailauth",
        "notsmtp_start", "notquit", "quit", "starttls", "vrfy", "delivery",
        "unknown", "wellknown")


def _not(*allowed: str) -> frozenset[str]:
    return frozenset(w for w in _ALL if w not in allowed)


_NONSMTP = frozenset(("notsmtp", "notsmtp_start"))
_NO_SENDER = frozenset(("auth", "connect", "helo", "mailauth", "quit", "etrn",
                        "expn", "starttls", "vrfy"))
COND: dict[str, tuple[bool, bool, frozenset[str]]] = {
    "acl": (False, False, frozenset()),
    "add_header": (True, True, _not("mail", "rcpt", "predata", "data",
                                    "prdr", "mime", "notsmtp", "dkim",
                                    "notsmtp_start")),
    "authenticated": (False, False, _NONSMTP | {"connect", "helo"}),
    "condition": (True, False, frozenset()),
    "continue": (True, True, frozenset()),
    "control": (True, True, frozenset()),
    "decode": (True, False, _not("mime")),
    "delay": (True, True, frozenset(("notquit",))),
    "dkim_signers": (True, False, _not("dkim")),
    "dkim_status": (True, False, _not("dkim")),
    "dnslists": (True, False, frozenset()),
    "domains": (False, False, _not("rcpt", "vrfy", "prdr")),
    "encrypted": (False, False, _NONSMTP | {"helo"}),
    "endpass": (True, True, frozenset()),
    "hosts": (False, False, _NONSMTP),
    "local_parts": (False, False, _not("rcpt", "vrfy", "prdr")),
    "log_message": (True, True, frozenset()),
    "log_reject_target": (True, True, frozenset()),
    "logwrite": (True, True, frozenset()),
    "malware": (True, False, _not("data", "prdr", "notsmtp")),
    "message": (True, True, frozenset()),
    "mime_regex": (True, False, _not("mime")),
    "queue": (True, True, frozenset(("notsmtp", "prdr", "data"))),
    "ratelimit": (True, False, frozenset()),
    "recipients": (False, False, _not("rcpt")),
    "regex": (True, False, _not("data", "prdr", "notsmtp", "mime")),
    "remove_header": (True, True, _not("mail", "rcpt", "predata", "data",
                                       "prdr", "mime", "notsmtp",
                                       "notsmtp_start")),
    "seen": (True, False, frozenset()),
    "sender_domains": (False, False, _NO_SENDER),
    "senders": (False, False, _NO_SENDER),
    "set": (True, True, frozenset()),
    "spam": (True, False, _not("data", "prdr", "notsmtp")),
    "spf": (True, False, _NO_SENDER - {"quit", "vrfy"} | _NONSMTP
            | {"vrfy"}),
    "spf_guess": (True, False, _NO_SENDER - {"quit", "vrfy"} | _NONSMTP
                  | {"vrfy"}),
    "udpsend": (True, True, frozenset()),
    "verify": (True, False, frozenset()),
}


def _has_expansion(text: str) -> bool:
    return "$" in text or "\\" in text


def check_conditions(call: Any, st: Any, msgs: Any) -> tuple[str, bool]:
    """Exim's acl_check_condition() for one statement."""
    from eximpy.acl.engine import VERB_MSGCOND, WHERE_NAMES
    verb = st.verb
    where = call.where
    user_message: str | None = None
    log_message: str | None = None
    endpass = False
    rc = OK
    for cb in st.conditions:
        name = cb.name
        if name == "message":
            call.trace(f"  message: {cb.arg}")
            user_message = cb.arg
            continue
        if name == "log_message":
            call.trace(f"l_message: {cb.arg}")
            log_message = cb.arg
            continue
        if name == "endpass":
            endpass = True
            continue
        top, is_mod, forbids = COND.get(name, (True, False, frozenset()))
        raw = cb.arg or ""
        arg = raw
        if top and _has_expansion(raw):
            try:
                arg = call.expand(raw)
            except ExpansionForcedFail:
                continue
            except ExpansionError as e:
                msgs.log = f'failed to expand ACL string "{raw}": {e}'
                return (DEFER if call.ctx.search_find_defer else ERROR), \
                    endpass
        neg = "!" if (not is_mod and cb.negated) else ""
        lhs = f"check {neg}{name} "
        if name == "set":
            vn = cb.varname or ""
            lhs += (vn if vn.startswith("dkim_") else f"acl_{vn}") + " "
        call.trace(f"{lhs}= {raw}")
        if top and _has_expansion(raw):
            _trace_value(call, len(lhs), arg)
        if where in forbids:
            msgs.log = (f"cannot {'use' if is_mod else 'test'} {name} "
                        f"condition in {WHERE_NAMES.get(where, where)} ACL")
            return ERROR, endpass
        fn = _DISPATCH.get(name)
        if fn is None:
            msgs.log = f'ACL condition "{name}" is not supported by eximpy'
            return ERROR, endpass
        r = fn(call, cb, arg, msgs, verb)
        if r is None:
            r = OK
        if r == ERROR:
            return ERROR, endpass
        rc = r
        if not is_mod and cb.negated:
            if rc == OK:
                rc = FAIL
            elif rc in (FAIL, FAIL_DROP):
                rc = OK
        if rc != OK:
            break

    if endpass and rc == OK:
        user_message = None
    if rc in VERB_MSGCOND[verb]:
        old_user = msgs.user
        old_log = msgs.log if msgs.log is not None else old_user
        if verb == "warn" or (rc == OK and verb in ("accept", "discard")):
            msgs.log = msgs.user = None
        if user_message is not None:
            call.ctx.variables["acl_verify_message"] = old_user or ""
            try:
                m = call.expand(user_message)
                if m:
                    msgs.user = m
            except ExpansionForcedFail:
                pass
            except ExpansionError as e:
                call.engine.log_write(f'failed to expand ACL message '
                                      f'"{user_message}": {e}', main=True,
                                      panic=True)
        if log_message is not None:
            call.ctx.variables["acl_verify_message"] = old_log or ""
            try:
                m = call.expand(log_message)
                if m:
                    msgs.log = m if msgs.log is None else f"{m}: {msgs.log}"
            except ExpansionForcedFail:
                pass
            except ExpansionError as e:
                call.engine.log_write(f'failed to expand ACL message '
                                      f'"{log_message}": {e}', main=True,
                                      panic=True)
        if msgs.log is None:
            msgs.log = msgs.user
    call.ctx.variables.pop("acl_verify_message", None)
    return rc, endpass


def _trace_value(call: Any, width: int, value: str) -> None:
    lines = (" " * width + "= " + value).split("\n")
    for ln in lines:
        call.trace_raw(ln)


# ---------------------------------------------------------------------------
# the conditions

def _acl(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.config.options import dequote
    s = arg
    i = 0
    parts: list[str] = []
    while True:
        while i < len(s) and s[i].isspace():
            i += 1
        if i >= len(s) or len(parts) >= 10:
            break
        if s[i] == '"':
            word, i = dequote(s, i)
        else:
            j = i
            while j < len(s) and not s[j].isspace():
                j += 1
            word, i = s[i:j], j
        parts.append(word)
    if not parts:
        parts = [""]
    try:
        exp = [call.expand(p) for p in parts]
    except ExpansionForcedFail:
        return ERROR
    except ExpansionError as e:
        msgs.log = f'failed to expand ACL string "{parts[0]}": {e}'
        return DEFER if call.ctx.search_find_defer else ERROR
    saved = call._set_args(exp[1:])
    call.level += 1
    try:
        rc = call.engine._internal(call, exp[0], msgs, expanded=True)
    finally:
        call.level -= 1
        call._restore_args(saved)
    if rc == DISCARD and verb not in ("accept", "discard"):
        msgs.log = (f'nested ACL returned "discard" for "{verb}" command '
                    '(only allowed with "accept" or "discard")')
        return ERROR
    return rc


def _add_header(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.engine import setup_header
    setup_header(call, arg)
    return OK


def _authenticated(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    auth = call.var("sender_host_authenticated")
    if not auth:
        return FAIL
    rc, _ = call.lists.string(auth, arg)
    return rc


def _condition(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    a = arg
    digits = a[1:] if a.startswith("-") else a
    if digits == "" or digits.isdigit():
        try:
            return FAIL if int(a or "0") == 0 else OK
        except ValueError:
            return FAIL
    low = a.lower()
    if low in ("no", "false"):
        return FAIL
    if low in ("yes", "true"):
        return OK
    msgs.log = f'invalid "condition" value "{arg}"'
    return DEFER


def _continue(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    return OK


def _control(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.controls import apply_control
    return apply_control(call, arg, msgs)


def _delay(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.config.options import readtime
    try:
        delay = readtime(arg.strip())
    except Exception:
        delay = -1
    if delay is None or delay < 0:
        msgs.log = ('syntax error in argument for "delay" modifier: '
                    f'"{arg}" is not a time value')
        return ERROR
    call.trace(f"delay modifier requests {delay}-second delay")
    if call.engine.host_checking:
        call.trace("delay skipped in -bh checking mode")
    else:
        call.result.__dict__.setdefault("delays", []).append(delay)
        flush = getattr(call.env, "flush", None)
        if flush is not None and "no_delay_flush" not in call.result.controls:
            flush()
        call.engine.sleep(delay)
    return OK


def _dnslists(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.dnslists import check_dnsbl
    return check_dnsbl(call, arg, msgs)


def _domains(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    a = call.addr
    if a is None:
        return FAIL
    rc, val = call.lists.domain(a.domain, arg, a.domain_cache)
    if rc == OK and val is not None:
        call.ctx.variables["domain_data"] = val
    return rc


def _encrypted(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    cipher = call.var("tls_in_cipher") or call.var("tls_cipher")
    if not cipher:
        return FAIL
    parts = cipher.split(":")
    c = parts[1] if len(parts) > 1 else parts[0]
    rc, _ = call.lists.string(c, arg)
    return rc


def _hosts(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    name = call.ctx.variables.get("sender_host_name")
    # A name the session has not looked up yet stays unknown until a
    # name item needs it (eximpy.match._reverse_lookup), as in Exim.
    name = "" if callable(name) else call.var("sender_host_name")
    rc, val = call.lists.host(call.var("sender_host_address"), name, arg,
                              call.engine.conn["host_cache"])
    if rc == DEFER:
        msgs.log = call.ctx.search_error_message or None
    if val is not None:
        call.ctx.variables["host_data"] = val
        call.engine.conn["host_data"] = val
    return rc


def _local_parts(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    a = call.addr
    if a is None:
        return FAIL
    rc, val = call.lists.local_part(a.local_part, arg, a.localpart_cache)
    if rc == OK and val is not None:
        call.ctx.variables["local_part_data"] = val
    return rc


def _log_reject_target(call: Any, cb: Any, arg: str, msgs: Any,
                       verb: str) -> str:
    from eximpy.acl.engine import WHERE_NAMES
    from eximpy.expand.lists import iter_list
    targets: set[str] = set()
    for item in iter_list(arg):
        if item in ("main", "panic", "reject"):
            targets.add(item)
        else:
            targets |= {"main", "reject"}
            call.engine.log_write(
                f'unknown log name "{item}" in "log_reject_target" in '
                f"{WHERE_NAMES.get(call.where, call.where)} ACL",
                main=True, panic=True)
    call.result.__dict__["log_reject_target"] = sorted(targets)
    return OK


def _logwrite(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.engine import WHERE_NAMES
    from eximpy.log.format import printing
    main = reject = panic = False
    s = arg
    if s.startswith(":"):
        end = s.find(":", 1)
        names = s[1:end] if end > 0 else s[1:]
        rest = s[end + 1:] if end > 0 else ""
        for nm in names.split(","):
            if nm == "main":
                main = True
            elif nm == "panic":
                panic = True
            elif nm == "reject":
                reject = True
            else:
                main = panic = True
                rest = (f'unknown log name in "{arg}" in "logwrite" in '
                        f"{WHERE_NAMES.get(call.where, call.where)} ACL")
                break
        s = rest
    s = s.lstrip()
    if not (main or reject or panic):
        main = True
    call.engine.log_write(printing(s, allow_tab=True), main=main,
                          reject=reject, panic=panic)
    return OK


def _queue(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    if "/" in arg:
        msgs.log = f"Directory separator not permitted in queue name: '{arg}'"
        return ERROR
    call.result.__dict__["queue_name"] = arg
    return OK


def _ratelimit(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.ratelimit import acl_ratelimit
    return acl_ratelimit(call, arg, msgs)


def _seen(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.ratelimit import acl_seen
    return acl_seen(call, arg, msgs)


def _recipients(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    a = call.addr
    if a is None:
        return FAIL
    rc, val = call.lists.address(a.address, arg, None)
    if rc == OK and val is not None:
        call.ctx.variables["recipient_data"] = val
    return rc


def _regex(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    """regex = pattern : pattern ... against the message (headers + body,
    as Exim's mime-less regex(): lines, with $regex1.. from the match)."""
    from eximpy.expand.lists import iter_list
    from eximpy.expand.regex import compile_pcre
    text = getattr(call.env, "message_text", None)
    if text is None:
        hdrs = getattr(call.env, "headers", None) or []
        body = call.var("message_body")
        text = "".join(f"{h[0]}:{h[1]}" if isinstance(h, tuple) else str(h)
                       for h in hdrs) + "\n" + body
    for pat in iter_list(arg):
        try:
            rx = compile_pcre(pat, False)
        except Exception as e:
            msgs.log = f"regex acl condition warning - error in regex '{pat}': {e}"
            return ERROR
        for line in text.split("\n"):
            m = rx.search(line) if hasattr(rx, "search") else None
            if m:
                call.ctx.variables["regex_match_string"] = m.group(0)
                for i, g in enumerate(m.groups()[:9], 1):
                    call.ctx.variables[f"regex{i}"] = g or ""
                return OK
    return FAIL


def _remove_header(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    call.result.__dict__.setdefault("removed_headers", []).append(arg)
    return OK


def _sender_domains(call: Any, cb: Any, arg: str, msgs: Any,
                    verb: str) -> str:
    sa = call.var("sender_address")
    sdom = sa.rpartition("@")[2] if "@" in sa else ""
    rc, _ = call.lists.domain(sdom, arg,
                              call.engine.msg["sender_domain_cache"])
    return rc


def _senders(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    rc, val = call.lists.address(call.var("sender_address"), arg,
                                 call.engine.msg["sender_cache"])
    if rc == OK and val is not None:
        call.ctx.variables["sender_data"] = val
    return rc


def _set(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    vn = cb.varname or ""
    if vn.startswith("dkim_"):
        call.ctx.variables[vn] = arg
        call.result.__dict__.setdefault("set_vars", {})[vn] = arg
        return OK
    key = "acl_" + vn
    store = call.env.acl_c if vn.startswith("c") else call.env.acl_m
    store[key] = arg
    return OK


def _udpsend(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.expand.lists import iter_list
    from eximpy.config.options import nextinlist
    host, i, _ = nextinlist(arg, 0, None)
    port = None
    if host is not None:
        port, i, _ = nextinlist(arg, i, None)
    if not host:
        msgs.log = 'missing destination host in "udpsend" modifier'
        return ERROR
    if not port:
        msgs.log = 'missing destination port in "udpsend" modifier'
        return ERROR
    # Exim sends whatever follows the port, possibly nothing.
    payload = arg[i:]
    if not port.isdigit():
        msgs.log = 'bad destination port in "udpsend" modifier'
        return ERROR
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
    except OSError:
        msgs.log = 'DNS lookup failed in "udpsend" modifier'
        return DEFER
    fam, _t, _p, _c, sa = info[0]
    call.trace(f"udpsend [{sa[0]}]:{port} {payload}")
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect(sa)
            n = s.send(payload.encode("utf-8", "surrogateescape"))
    except OSError as e:
        msgs.log = f'"udpsend" failed: {e.strerror}'
        return DEFER
    call.trace(f"udpsend {n} bytes")
    return OK


def _verify(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.verify import acl_verify
    rc = acl_verify(call, arg, msgs)
    if msgs.user:
        call.ctx.variables["acl_verify_message"] = msgs.user
    if verb == "warn":
        msgs.user = None
    return rc


def _unsupported(what: str):
    def fn(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
        msgs.log = (f'ACL condition "{cb.name}" is not supported by eximpy '
                    f"({what})")
        return ERROR
    return fn


def _spf(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.spf import acl_spf
    return acl_spf(call, cb.name, arg, msgs)


def _dkim(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl import dkim
    fn = dkim.acl_dkim_signers if cb.name == "dkim_signers" \
        else dkim.acl_dkim_status
    return fn(call, arg, msgs)


_DISPATCH = {
    "acl": _acl, "add_header": _add_header, "authenticated": _authenticated,
    "condition": _condition, "continue": _continue, "control": _control,
    "delay": _delay, "dnslists": _dnslists, "domains": _domains,
    "encrypted": _encrypted, "hosts": _hosts, "local_parts": _local_parts,
    "log_reject_target": _log_reject_target, "logwrite": _logwrite,
    "queue": _queue, "ratelimit": _ratelimit, "recipients": _recipients,
    "regex": _regex, "remove_header": _remove_header, "seen": _seen,
    "sender_domains": _sender_domains, "senders": _senders, "set": _set,
    "udpsend": _udpsend, "verify": _verify, "spf": _spf, "spf_guess": _spf,
    "decode": _unsupported("no MIME ACL support"),
    "malware": _unsupported("no malware scanner interface"),
    "spam": _unsupported("no spamd interface"),
    "mime_regex": _unsupported("no MIME ACL support"),
    "dkim_signers": _dkim, "dkim_status": _dkim,
}

# Content scanning (decode, mime_regex, regex, malware, spam): eximpy.acl.content.
from eximpy.acl.content import CONTENT_DISPATCH  # noqa: E402

_DISPATCH.update(CONTENT_DISPATCH)
