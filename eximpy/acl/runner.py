"""The interface between the SMTP session and the ACL engine, and a minimal engine.

SUMMARY
    AclResult(rc, user_message, log_message)      rc: OK FAIL DEFER DISCARD
                                                  FAIL_DROP ERROR
    AclRunner (protocol)   .check(where, acl, env) -> AclResult
    MinimalAclRunner(config, expand=True)         a small engine (see below)
    WHERE_CODES            default reply code when an ACL denies, per hook
    acl_definition(config, text) -> list[AclStatement] | None

DESCRIPTION
    The SMTP session (eximpy.smtp.server) calls ``runner.check(where, acl,
    env)`` at each hook: ``where`` is one of connect helo mail rcpt predata
    data quit notquit vrfy expn etrn starttls auth mime mailauth; ``acl`` is
    the value of the acl_smtp_<where> option (an ACL name, inline ACL text,
    or None when unset); ``env`` is an AclEnv holding what an ACL can look
    at (sender, recipient, host, HELO name, the current command, ACL
    variables, headers added).  An unset ACL is handled by the session
    (Exim: RCPT, VRFY, EXPN and ETRN are denied, the others accepted).

    The ACL engine of issue 6 replaces MinimalAclRunner, implementing the
    same ``check`` method.  MinimalAclRunner knows the verbs accept, deny,
    defer, discard, drop, require and warn with endpass, and only the
    conditions and modifiers it can evaluate reliably: ``hosts`` (literal
    addresses, CIDR, ``*`` and empty lists, or eximpy.match when present),
    ``condition`` and ``message``/``log_message`` (through eximpy.expand),
    ``set acl_c*/acl_m*``, ``add_header``, ``logwrite``, ``control`` (noted,
    not acted on) and ``delay`` (ignored).  Any other condition makes the
    ACL return ERROR, which the session turns into a temporary rejection,
    so a policy it cannot evaluate never accepts mail by accident.

SECURITY
    Failing closed: an unknown condition is an ERROR (4xx), never an accept.

SEE ALSO
    spec chapter 44 "Access control lists"; eximpy.acl.parse.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import eximpy.config  # noqa: F401  (loads acl.parse via config.model first:
#                       acl.parse imports eximpy.config.options)
from eximpy.acl.parse import VERBS, AclStatement, AclSyntaxError, read_acl

OK, FAIL, DEFER, DISCARD, FAIL_DROP, ERROR = (
    "OK", "FAIL", "DEFER", "DISCARD", "FAIL_DROP", "ERROR")

# Exim's acl_wherecodes: the code for a FAIL at each hook.
WHERE_CODES = {
    "rcpt": 550, "mail": 550, "predata": 550, "mime": 550, "dkim": 550,
    "data": 550, "prdr": 550, "auth": 503, "connect": 550, "etrn": 458,
    "expn": 550, "helo": 550, "mailauth": 0, "notquit": 0, "quit": 0,
    "starttls": 550, "vrfy": 252, "wellknown": 550,
}
# Exim's acl_wherenames (for log lines).
WHERE_NAMES = {
    "rcpt": "RCPT", "mail": "MAIL", "predata": "PREDATA", "mime": "MIME",
    "dkim": "DKIM", "data": "DATA", "prdr": "PRDR", "auth": "AUTH",
    "connect": "connection", "etrn": "ETRN", "expn": "EXPN", "helo": "EHLO or HELO",
    "mailauth": "MAILAUTH", "notquit": "NOTQUIT", "quit": "QUIT",
    "starttls": "STARTTLS", "vrfy": "VRFY", "wellknown": "WELLKNOWN",
}


@dataclass
class AclResult:
    rc: str
    user_message: str | None = None
    log_message: str | None = None
    # Header lines added by add_header (text with final newline).
    added_headers: list[str] = field(default_factory=list)
    # control = ... settings seen on the way (e.g. "no_multiline_responses").
    controls: list[str] = field(default_factory=list)
    # Exim's acl_temp_details: a 4xx may show user_message (true for the
    # "defer" verb and callout defers).
    temp_details: bool = False


@dataclass
class AclEnv:
    """What the session tells an ACL."""

    variables: dict[str, Any] = field(default_factory=dict)
    acl_c: dict[str, str] = field(default_factory=dict)
    acl_m: dict[str, str] = field(default_factory=dict)
    host_address: str | None = None
    log: Callable[[str], None] | None = None
    # The message's header lines for $h_ (DATA/MIME ACLs): (name, value
    # after the colon, -H type letter), Received: and fix-ups included.
    headers: list[tuple[str, str, str]] | None = None
    # Called by `delay` (unless control=no_delay_flush) to send the
    # replies the session has not written yet.
    flush: Callable[[], None] | None = None


class AclRunner(Protocol):
    def check(self, where: str, acl: str | None, env: AclEnv) -> AclResult:
        ...


def acl_definition(config: Any, text: str) -> list[AclStatement] | None:
    """The statements for an acl_smtp_* value: a named ACL or inline text.

    Returns None when ``text`` is a single word that names no ACL
    (Exim's verbs alone, "accept" or "deny", are inline ACLs); raises
    AclSyntaxError for inline text Exim would refuse.
    """
    acls = getattr(config, "acls", None) or {}
    name = text.strip()
    if name in acls:
        return acls[name].statements
    if " " not in name and "\n" not in name and name not in VERBS:
        return None                    # a name, but no such ACL
    lines = [ln for ln in text.split("\n")]
    it = iter([(ln, i + 1) for i, ln in enumerate(lines) if ln.strip()])
    stmts, _rest = read_acl(lambda: next(it, None))   # AclSyntaxError
    return stmts or None


class MinimalAclRunner:
    """Evaluates the few conditions it can do reliably; see module doc."""

    def __init__(self, config: Any, expand: bool = True) -> None:
        self.config = config
        self.expand_enabled = expand

    # --- helpers -------------------------------------------------------
    def _expand(self, text: str, env: AclEnv) -> str:
        if not self.expand_enabled or ("$" not in text and "\\" not in text):
            return text
        from eximpy.expand import ExpandContext, expand_string
        ctx = ExpandContext(config=self.config, variables=env.variables,
                            acl_c=env.acl_c, acl_m=env.acl_m,
                            headers=env.headers)
        return expand_string(text, ctx)

    def _hosts(self, arg: str, env: AclEnv) -> str:
        """OK / FAIL / DEFER / ERROR for ``hosts = arg``."""
        try:
            from eximpy.match import match_host
        except ImportError:                       # pragma: no cover
            return match_host_simple(arg, env.host_address)
        from eximpy.expand import ExpandContext
        ctx = ExpandContext(config=self.config, variables=env.variables,
                            acl_c=env.acl_c, acl_m=env.acl_m,
                            headers=env.headers)
        try:
            rc, _value = match_host(env.host_address or "",
                                    env.variables.get("sender_host_name", ""),
                                    arg, ctx)
        except Exception:
            return ERROR
        return rc if rc in (OK, FAIL, DEFER) else ERROR

    def _list_condition(self, name: str, arg: str, env: AclEnv
                        ) -> str | None:
        """domains / local_parts / senders / recipients / sender_domains
        through eximpy.match; None when the value is not available at
        this ACL (Exim then refuses the configuration)."""
        from eximpy import match as M
        from eximpy.expand import ExpandContext
        v = env.variables
        ctx = ExpandContext(config=self.config, variables=v,
                            acl_c=env.acl_c, acl_m=env.acl_m)
        if name == "domains":
            if "domain" not in v:
                return None
            rc, _val = M.match_domain(v["domain"], arg, ctx)
        elif name == "local_parts":
            if "local_part" not in v:
                return None
            rc, _val = M.match_local_part(v["local_part"], arg, ctx)
        elif name == "recipients":
            if "local_part" not in v:
                return None
            addr = v["local_part"] + ("@" + v["domain"] if v.get("domain")
                                      else "")
            rc, _val = M.match_address(addr, arg, ctx)
        elif name == "senders":
            rc, _val = M.match_address(v.get("sender_address", ""), arg, ctx)
        else:
            rc, _val = M.match_domain(v.get("sender_address_domain", ""),
                                      arg, ctx)
        return rc if rc in (OK, FAIL, DEFER) else ERROR

    # --- evaluation ----------------------------------------------------
    def check(self, where: str, acl: str | None, env: AclEnv) -> AclResult:
        if acl is None:
            return AclResult(FAIL if where in ("rcpt", "vrfy", "expn", "etrn")
                             else OK)
        if "$" in acl or "\\" in acl:
            # The acl_smtp_* option values are expanded first (Exim); the
            # result must not be tainted (it is configuration).
            try:
                acl = self._expand(acl, env)
            except Exception as exc:
                return AclResult(ERROR, log_message=str(exc))
            from eximpy.expand.taint import is_tainted
            if is_tainted(acl):
                if env.log is not None:
                    env.log(f'attempt to use tainted ACL text "{acl}"')
                return AclResult(ERROR,
                                 log_message="internal configuration error")
        try:
            stmts = acl_definition(self.config, acl)
        except AclSyntaxError as exc:
            return AclResult(ERROR, log_message=str(exc))
        if stmts is None:
            return AclResult(ERROR, log_message=f'ACL "{acl}" not found')
        result = AclResult(FAIL)
        for st in stmts:
            rc = self._statement(st, env, result)
            if rc is not None:
                result.rc = rc
                return result
        result.rc = FAIL                      # implicit deny at the end
        return result

    def _statement(self, st: AclStatement, env: AclEnv,
                   result: AclResult) -> str | None:
        verb = st.verb
        endpass_seen = False
        user_msg: str | None = None
        log_msg: str | None = None
        outcome = OK
        for cond in st.conditions:
            name, arg = cond.name, cond.arg or ""
            try:
                if name == "endpass":
                    endpass_seen = True
                    continue
                if name == "message":
                    user_msg = arg
                    continue
                if name == "log_message":
                    log_msg = arg
                    continue
                if name == "set":
                    val = self._expand(arg, env)
                    key = "acl_" + (cond.varname or "")
                    (env.acl_c if key.startswith("acl_c") else env.acl_m)[key] = val
                    continue
                if name == "add_header":
                    text = self._expand(arg, env)
                    if text:
                        result.added_headers.append(
                            text if text.endswith("\n") else text + "\n")
                    continue
                if name == "logwrite":
                    text = self._expand(arg, env)
                    if env.log is not None:
                        env.log(text)
                    continue
                if name == "control":
                    result.controls.append(self._expand(arg, env))
                    continue
                if name in ("delay",):
                    continue
                if name == "hosts":
                    rc = self._hosts(arg, env)
                elif name in ("domains", "local_parts", "senders",
                              "recipients", "sender_domains"):
                    lrc = self._list_condition(name, arg, env)
                    if lrc is None:
                        result.log_message = (f'ACL condition "{name}" is '
                                              "not valid here")
                        return ERROR
                    rc = lrc
                elif name == "condition":
                    from eximpy.expand import expand_check_condition, ExpandContext
                    ctx = ExpandContext(config=self.config,
                                        variables=env.variables,
                                        acl_c=env.acl_c, acl_m=env.acl_m,
                                        headers=env.headers)
                    if not self.expand_enabled:
                        return ERROR
                    rc = OK if expand_check_condition(arg, ctx) else FAIL
                else:
                    result.log_message = (f'ACL condition "{name}" is not '
                                          "supported yet")
                    return ERROR
            except Exception as exc:            # expansion failure
                result.log_message = str(exc)
                return ERROR
            if rc == ERROR:
                return ERROR
            if cond.negated and rc in (OK, FAIL):
                rc = FAIL if rc == OK else OK
            if rc != OK:
                outcome = rc
                break
        matched = outcome == OK
        decides = (matched and verb in ("accept", "discard", "deny", "defer",
                                        "drop")) or \
            (not matched and (verb == "require" or
                              (verb in ("accept", "discard") and endpass_seen)))
        if decides:
            # Modifiers take effect only if processing reached them: a
            # message after the condition that failed is not used (Exim).
            # With endpass in accept/discard, message is for the denial
            # only; an empty or failed expansion is ignored (spec 44).
            if user_msg is not None and not (
                    matched and endpass_seen and verb in ("accept",
                                                          "discard")):
                try:
                    text = self._expand(user_msg, env)
                except Exception:
                    text = ""
                if text:
                    result.user_message = text
            if log_msg is not None:
                try:
                    result.log_message = self._expand(log_msg, env)
                except Exception:
                    result.log_message = log_msg
            elif result.user_message is not None and \
                    result.log_message is None:
                # Without log_message, the message text is logged (Exim).
                result.log_message = result.user_message
        if verb == "accept":
            if matched:
                return OK
            return FAIL if endpass_seen else None
        if verb == "discard":
            if matched:
                return DISCARD
            return FAIL if endpass_seen else None
        if verb == "deny":
            return FAIL if matched else None
        if verb == "defer":
            if matched:
                result.temp_details = True
                return DEFER
            return None
        if verb == "drop":
            return FAIL_DROP if matched else None
        if verb == "require":
            return None if matched else FAIL
        return None                               # warn


def match_host_simple(listtext: str, address: str | None) -> str:
    """Host list matching for literal items only: ``*``, IP addresses,
    CIDR networks, ``!`` negation, ``:`` and ``<;`` separators.  Other
    items (names, lookups, +lists) give ERROR.  With no host address (local
    -bs) only ``*`` and an empty item match, as in Exim."""
    text = listtext.strip()
    sep = ":"
    if text.startswith("<") and len(text) > 1 and not text[1].isalnum():
        sep = text[1]
        text = text[2:]
    items = _split_list(text, sep)
    for item in items:
        neg = False
        while item.startswith("!"):
            neg = not neg
            item = item[1:].strip()
        hit: bool
        if item == "*":
            hit = True
        elif item == "":
            hit = address is None
        else:
            if address is None:
                hit = False
            else:
                try:
                    if "/" in item:
                        net = ipaddress.ip_network(item, strict=False)
                        hit = ipaddress.ip_address(address) in net
                    else:
                        hit = ipaddress.ip_address(item) == \
                            ipaddress.ip_address(address)
                except ValueError:
                    return ERROR
        if hit:
            return FAIL if neg else OK
    return FAIL


def _split_list(text: str, sep: str) -> list[str]:
    """Exim list splitting: doubled separator is a literal separator."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == sep:
            if i + 1 < len(text) and text[i + 1] == sep:
                cur.append(sep)
                i += 2
                continue
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur or out:
        out.append("".join(cur).strip())
    return [x for x in out] if text.strip() else []
