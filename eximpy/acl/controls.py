"""The `control =` modifier: Exim's decode_control() and the controls.

SUMMARY
    apply_control(call, arg, msgs) -> OK | ERROR

DESCRIPTION
    A control is recorded in the AclResult the session receives:
    ``result.controls`` lists the control names in the order they were
    applied (e.g. "no_multiline_responses", "queue_only", "freeze",
    "fakereject", "cutthrough_delivery"), and ``result.control_args`` maps a
    name to its parsed options (fakereject/fakedefer text, submission
    domain/name/sender_retain, freeze no_tell, cutthrough defer=pass, debug
    tag/opts/kill, dscp value, utf8_downconvert value).  Acting on them is
    the session's and the receiver's business, as in Exim, where controls
    set globals that smtp_in.c and receive.c read.

    Each control is allowed only in the ACLs Exim allows it in; elsewhere
    the ACL returns ERROR with Exim's text 'cannot use "control=X" in Y
    ACL'.

SEE ALSO
    spec 44.20 "ACL modifiers" (control); Exim acl.c controls_list.
"""
from __future__ import annotations

from typing import Any

from eximpy.acl.runner import ERROR, OK

_ALL = ("rcpt", "mail", "predata", "mime", "dkim", "data", "prdr", "notsmtp",
        "auth", "connect", "etrn", "expn", "helo", "mailauth",
        "notsmtp_start", "notquit", "quit", "starttls", "vrfy", "delivery",
        "unknown", "wellknown")


def _not(*allowed: str) -> frozenset[str]:
    return frozenset(w for w in _ALL if w not in allowed)


_NS = frozenset(("notsmtp", "notsmtp_start"))
_MSG = ("mail", "rcpt", "predata", "data", "prdr", "mime")

# name -> (has_option, forbidden wheres); sorted as Exim's table.
CONTROLS: dict[str, tuple[bool, frozenset[str]]] = {
    "allow_auth_unadvertised": (False, _not("connect", "helo")),
    "caseful_local_part": (False, _not("rcpt")),
    "caselower_local_part": (False, _not("rcpt")),
    "cutthrough_delivery": (True, frozenset()),
    "debug": (True, frozenset()),
    "dkim_disable_verify": (False, frozenset(("data", "notsmtp", "prdr",
                                               "notsmtp_start"))),
    "dscp": (True, _NS | {"notquit"}),
    "enforce_sync": (False, _NS),
    "fakedefer": (True, _not(*_MSG)),
    "fakereject": (True, _not(*_MSG)),
    "freeze": (True, _not("mail", "rcpt", "predata", "data", "notsmtp",
                          "mime")),
    "no_callout_flush": (False, _NS),
    "no_delay_flush": (False, _NS),
    "no_enforce_sync": (False, _NS),
    "no_mbox_unspool": (False, _not("mail", "rcpt", "predata", "data",
                                    "mime")),
    "no_multiline_responses": (False, _NS),
    "no_pipelining": (False, _NS),
    "queue": (True, _not("mail", "rcpt", "predata", "data", "notsmtp",
                         "mime")),
    "queue_only": (False, _not("mail", "rcpt", "predata", "data", "notsmtp",
                               "mime")),
    "submission": (True, _not("mail", "rcpt", "predata")),
    "suppress_local_fixups": (False, _not("mail", "rcpt", "predata",
                                          "notsmtp_start")),
    "utf8_downconvert": (True, _not("rcpt", "vrfy")),
}

FAKE_TEXT = ("Your message has been rejected but is being kept for "
             "evaluation.\nIf it was a legitimate message, it may still be "
             "delivered to the target\nrecipient(s).")


def _decode(arg: str) -> tuple[str | None, str]:
    best = None
    for name in CONTROLS:
        if arg.startswith(name) and (best is None or len(name) > len(best)):
            rest = arg[len(name):]
            if rest == "" or (CONTROLS[name][0] and rest.startswith("/")):
                best = name
    if best is None:
        return None, ""
    return best, arg[len(best):]


def apply_control(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.acl.engine import WHERE_NAMES
    name, p = _decode(arg)
    if name is None:
        msgs.log = f'syntax error in "control={arg}"'
        return ERROR
    if call.where in CONTROLS[name][1]:
        msgs.log = (f'cannot use "control={name}" in '
                    f"{WHERE_NAMES.get(call.where, call.where)} ACL")
        return ERROR
    res = call.result
    cargs: dict[str, Any] = res.__dict__.setdefault("control_args", {})
    opts: dict[str, Any] = {}
    if name in ("fakereject", "fakedefer"):
        if p.startswith("/"):
            try:
                opts["text"] = call.expand(p[1:])
            except Exception:
                opts["text"] = p[1:]
        else:
            opts["text"] = FAKE_TEXT
    elif name == "freeze":
        if p.startswith("/no_tell"):
            opts["no_tell"] = True
            p = p[8:]
        if p:
            msgs.log = f'syntax error in "control={arg}"'
            return ERROR
    elif name == "submission":
        while p.startswith("/"):
            if p.startswith("/sender_retain"):
                opts["sender_retain"] = True
                p = p[14:]
            elif p.startswith("/domain="):
                end = p.find("/", 8)
                end = len(p) if end < 0 else end
                opts["domain"] = p[8:end]
                p = p[end:]
            elif p.startswith("/name="):
                opts["name"] = p[6:]
                p = ""
            else:
                break
        if p:
            msgs.log = f'syntax error in "control={arg}"'
            return ERROR
    elif name == "queue":
        for o in filter(None, p.split("/")):
            if o in ("only", "first_pass_route"):
                opts[o] = True
            else:
                msgs.log = f'syntax error in "control={arg}"'
                return ERROR
    elif name == "cutthrough_delivery":
        ignored = None
        ctl = res.controls
        if "freeze" in ctl:
            ignored = "frozen"
        elif "queue_only" in ctl or "queue" in ctl:
            ignored = "queue-only"
        elif "fakereject" in ctl:
            ignored = "fakereject"
        elif call.var("rcpt_count") not in ("", "1"):
            ignored = "nonfirst rcpt"
        if ignored:
            # Exim reports this only under full debugging, not in -bh.
            return OK
        for o in filter(None, p.split("/")):
            if o.startswith("defer="):
                opts["defer"] = o[6:]
    elif name == "debug":
        for o in filter(None, p.split("/")):
            if o.startswith("tag="):
                opts["tag"] = o[4:]
            elif o.startswith("opts="):
                opts["opts"] = o[5:]
            elif o.startswith("kill"):
                opts["kill"] = True
    elif name == "dscp":
        if not p.startswith("/"):
            msgs.log = f'syntax error in "control={arg}"'
            return ERROR
        opts["value"] = p[1:]
    elif name == "utf8_downconvert":
        if p:
            if p in ("/1", "/0", "/-1"):
                opts["value"] = int(p[1:])
            else:
                msgs.log = "bad option value for control=utf8_downconvert"
                return ERROR
        else:
            opts["value"] = 1
    if name in ("caseful_local_part", "caselower_local_part") and \
            call.addr is not None:
        from eximpy.acl.engine import _keep_taint, _lc
        lp = call.addr.local_part
        call.ctx.variables["local_part"] = lp if name == \
            "caseful_local_part" else _keep_taint(lp, _lc(lp))
    res.controls.append(name)
    cargs[name] = opts
    return OK
