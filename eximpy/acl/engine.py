"""The ACL engine: Exim's access control lists, with its -bh debug trace.

SUMMARY
    make_runner(config, *, log=None, trace=None, host_checking=False)
        -> AclEngine                       (an eximpy.acl.runner.AclRunner)
    engine.check(where, acl, env) -> AclResult
    engine.trace                          callable(str) for ">>> " lines
    place_added_headers(headers, added)   add_header texts put where their
                                          :at_start: ... prefix says

DESCRIPTION
    check() is Exim's acl_check(): ``acl`` is the value of the
    acl_smtp_<where> option (None when unset); it is expanded, then looked
    up as the name of an ACL from `begin acl`, read from a file when it
    starts with "/", or else parsed as inline ACL text.  Statements are run
    in order with Exim's semantics for each verb (accept defer deny discard
    drop require warn, endpass) and its rules for message/log_message.  The
    conditions and modifiers live in eximpy.acl.conditions; controls in
    eximpy.acl.controls; ratelimit/seen in eximpy.acl.ratelimit; dnslists
    in eximpy.acl.dnslists; verify in eximpy.acl.verify.

    State that Exim keeps in globals is kept here with the lifetime Exim
    gives it: per connection (the host-list cache, $acl_c variables are the
    session's), per message (sender caches, warnings already logged,
    per_mail ratelimit results), per address (domain and local-part named
    list caches).  A new connection or message is recognised by the
    session handing in a new acl_c / acl_m dictionary, so one engine can
    serve several sessions one after another.

    The trace: when ``trace`` is set, every line Exim writes with the acl
    debug selector (and its list-matching lines) is passed to it without
    the ">>> " prefix that -bh adds; nesting indents by one space per level.

SECURITY
    ACL text from files is read only from paths in the configuration (after
    expansion); an ERROR result never accepts anything (the session turns
    it into a 4xx).

SEE ALSO
    spec chapter 44 "Access control lists"; Exim acl.c; eximpy.acl.runner.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import eximpy.config  # noqa: F401  (config.model imports acl.parse first)
from eximpy.acl.parse import AclStatement, AclSyntaxError, read_acl
from eximpy.acl.runner import (DEFER, DISCARD, ERROR, FAIL, FAIL_DROP, OK,
                               AclEnv, AclResult)
from eximpy.errors import ExpansionError, ExpansionForcedFail

# Exim's acl_wherenames (in messages), by the session's "where" keys.
WHERE_NAMES = {
    "rcpt": "RCPT", "mail": "MAIL", "predata": "PREDATA", "mime": "MIME",
    "dkim": "DKIM", "data": "DATA", "prdr": "PRDR", "notsmtp": "non-SMTP",
    "auth": "AUTH", "connect": "connection", "etrn": "ETRN", "expn": "EXPN",
    "helo": "EHLO or HELO", "mailauth": "MAILAUTH",
    "notsmtp_start": "non-SMTP-start", "notquit": "NOTQUIT", "quit": "QUIT",
    "starttls": "STARTTLS", "vrfy": "VRFY", "delivery": "delivery",
    "unknown": "unknown", "wellknown": "WELLKNOWN",
}
# "Message" ACLs (Exim: where <= ACL_WHERE_NOTSMTP).
MESSAGE_WHERES = ("rcpt", "mail", "predata", "mime", "dkim", "data", "prdr",
                  "notsmtp")

VERB_MSGCOND = {
    "accept": (OK, FAIL, FAIL_DROP), "discard": (OK, FAIL, FAIL_DROP),
    "defer": (OK,), "deny": (OK,), "drop": (OK,),
    "require": (FAIL, FAIL_DROP), "warn": (OK,),
}

def _tainted(s: str) -> bool:
    from eximpy.expand.taint import is_tainted
    return is_tainted(s)


_HEADER_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]+[ \t]*:")


@dataclass
class Msgs:
    """Exim's user_msgptr / log_msgptr / basic_errno for one check."""

    user: str | None = None
    log: str | None = None
    basic_errno: int = 0
    temp_details: bool = False


@dataclass
class Address:
    """The recipient being checked (RCPT, VRFY), with its list caches."""

    address: str
    local_part: str
    domain: str
    domain_cache: dict = field(default_factory=dict)
    localpart_cache: dict = field(default_factory=dict)
    verify_result: tuple | None = None


class Call:
    """Everything one top-level check() works with."""

    def __init__(self, engine: "AclEngine", where: str, env: AclEnv,
                 result: AclResult) -> None:
        from eximpy.acl.lists import ListMatcher
        from eximpy.expand import ExpandContext
        self.engine = engine
        self.where = where
        self.env = env
        self.result = result
        self.level = 0
        v = dict(env.variables)
        self.ctx = ExpandContext(config=engine.config, variables=v,
                                 acl_c=env.acl_c, acl_m=env.acl_m,
                                 acl_runner=self._expand_acl,
                                 headers=getattr(env, "headers", None))
        self.ctx.log_panic = engine.log_panic
        if engine.host_checking:
            v.setdefault("host_checking", "1")
        self.lists = ListMatcher(self.ctx, self.trace if engine.trace
                                 else None)
        self.addr: Address | None = None
        self._expanding: list | None = None
        self.indent_extra = 0

    # -- tracing ---------------------------------------------------------
    def trace(self, text: str) -> None:
        t = self.engine.trace
        if t is not None:
            t(_indent(self.level + self.indent_extra) + text)

    def trace_raw(self, text: str) -> None:
        t = self.engine.trace
        if t is not None:
            t(text)

    # -- expansion -------------------------------------------------------
    def var(self, name: str) -> str:
        """$name as the session gave it (a Tainted value stays Tainted)."""
        v = self.ctx.variables.get(name)
        if callable(v):
            v = v()
        if v is None:
            return ""
        return v if isinstance(v, str) else str(v)

    def expand(self, text: str) -> str:
        from eximpy.expand import expand_string
        saved = self._expanding
        self._expanding = [text, 0]
        try:
            return expand_string(text, self.ctx)
        finally:
            self._expanding = saved

    def _acl_item_depth(self) -> int:
        """How deep the n-th ${acl}/acl{} of the text being expanded sits
        in ${...} nesting (Exim indents its debug output by it)."""
        st = self._expanding
        if st is None:
            return 1
        text, n = st
        st[1] = n + 1
        import re
        hits = [m.start() for m in re.finditer(r"\$\{acl\{|\bacl\{\{", text)]
        if n >= len(hits):
            return 1
        pos = hits[n]
        stack: list[bool] = []          # True for "${", False for "{"
        i = 0
        while i < pos:
            if text.startswith("\\", i):
                i += 2
                continue
            if text.startswith("${", i):
                stack.append(True)
                i += 2
                continue
            if text[i] == "{":
                stack.append(False)
            elif text[i] == "}" and stack:
                stack.pop()
            i += 1
        depth = sum(stack)
        if text.startswith("${acl{", pos):
            depth += 1
        return max(depth, 1)

    def _expand_acl(self, name: str, args: list[str]) -> tuple[str, str | None]:
        """${acl{name}{args}} and the acl expansion condition."""
        msgs = Msgs()
        saved = self._set_args(args)
        extra = self._acl_item_depth()
        self.level += 1
        self.indent_extra += extra
        try:
            rc = self.engine._internal(self, name, msgs, expanded=True)
        finally:
            self.level -= 1
            self.indent_extra -= extra
            self._restore_args(saved)
        return rc, msgs.user

    def _set_args(self, args: list[str]) -> dict[str, Any]:
        v = self.ctx.variables
        saved = {k: v.get(k) for k in ["acl_narg"] +
                 [f"acl_arg{i}" for i in range(1, 10)]}
        v["acl_narg"] = str(len(args))
        for i in range(1, 10):
            v[f"acl_arg{i}"] = args[i - 1] if i <= len(args) else ""
        return saved

    def _restore_args(self, saved: dict[str, Any]) -> None:
        v = self.ctx.variables
        for k, val in saved.items():
            if val is None:
                v.pop(k, None)
            else:
                v[k] = val

    # -- logging ---------------------------------------------------------
    def host_and_ident(self, useflag: bool = True) -> str:
        from eximpy.log.format import host_text
        addr = self.var("sender_host_address")
        ident = self.var("sender_ident")
        if not addr:
            return f"U={ident}" if useflag and ident else ident
        # Exim's host_and_ident() reads the sender_host_name global: it
        # never starts the lazy host name lookup $sender_host_name does.
        v = self.ctx.variables.get("sender_host_name")
        if callable(v):
            v = getattr(getattr(v, "__self__", None), "host_name", None)
        h = host_text(v or None,
                      self.var("sender_helo_name") or None, addr)
        if useflag:
            h = "H=" + h
        if ident:
            h += f" U={ident}"
        return h


class AclEngine:
    """A full AclRunner; see the module docstring."""

    def __init__(self, config: Any, *, log: Any = None,
                 trace: Callable[[str], None] | None = None,
                 host_checking: bool = False,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 resolver: Any = None, callout: Any = None,
                 callouts_in_bh: bool = False) -> None:
        self.config = config
        self.log = log
        self.trace = trace
        self.host_checking = host_checking
        self.clock = clock
        self.sleep = sleep
        self.resolver = resolver
        self.callout = callout
        self.callouts_in_bh = callouts_in_bh
        self._file_acls: dict[str, list[AclStatement]] = {}
        self._inline_acls: dict[str, list[AclStatement]] = {}
        self._conn_key: Any = None
        self._msg_key: Any = None
        self.conn: dict[str, Any] = {}
        self.msg: dict[str, Any] = {}
        self._env_log: Callable[[str], None] | None = None

    # -- option helper ------------------------------------------------
    def main(self, name: str, default: Any = None) -> Any:
        try:
            v = self.config.main.get(name)
        except (KeyError, AttributeError):
            return default
        return default if v is None else v

    # -- logs ---------------------------------------------------------
    def _mid(self) -> str | None:
        """The current message id (Exim prefixes log lines with it)."""
        return self.__dict__.get("_message_id") or None

    def log_main(self, text: str) -> None:
        mid = self._mid()
        if self.log is not None:
            self.log.main(text, mid) if mid else self.log.main(text)
        elif self._env_log is not None:
            self._env_log(text)

    def log_reject(self, text: str) -> None:
        mid = self._mid()
        if self.log is not None:
            self.log.reject(text, mid) if mid else self.log.reject(text)
        elif self._env_log is not None:
            self._env_log(text)

    def log_panic(self, text: str) -> None:
        if self.log is not None:
            self.log.panic(text)
        elif self._env_log is not None:
            self._env_log(text)

    def log_write(self, text: str, main: bool = False, reject: bool = False,
                  panic: bool = False) -> None:
        """Exim's log_write with LOG_MAIN/LOG_REJECT/LOG_PANIC bits."""
        lg = self.log
        mid = self._mid()
        if mid:
            text = f"{mid} {text}"
        if lg is not None and hasattr(lg, "write"):
            lg.write(text, main=main, reject=reject, panic=panic)
            return
        if mid:
            # main/reject/panic below add no id of their own here
            self.__dict__["_message_id"] = None
            try:
                self.log_write(text, main, reject, panic)
            finally:
                self.__dict__["_message_id"] = mid
            return
        if panic:
            self.log_panic(text)
        elif reject:
            self.log_reject(text)
        elif main:
            self.log_main(text)

    # -- state lifetimes ------------------------------------------------
    def _lifetimes(self, env: AclEnv) -> None:
        if env.acl_c is not self._conn_key:
            self._conn_key = env.acl_c
            self.conn = {"host_cache": {}, "ratelimit": {}}
            self._msg_key = None
        if env.acl_m is not self._msg_key:
            self._msg_key = env.acl_m
            self.msg = {"sender_cache": {}, "sender_domain_cache": {},
                        "warn_logged": set(), "ratelimit": {},
                        "sender_verify": None, "recipient_verify": {}}

    # -- the entry point ------------------------------------------------
    def check(self, where: str, acl: str | None, env: AclEnv) -> AclResult:
        self._lifetimes(env)
        self._env_log = env.log
        mid = env.variables.get("message_id")
        self.__dict__["_message_id"] = mid if isinstance(mid, str) else None
        result = AclResult(FAIL)
        result.__dict__.setdefault("log_reject_target", None)
        call = Call(self, where, env, result)
        v = call.ctx.variables
        if "csa_status" in self.conn:
            # $csa_status stays set once verify = csa has run (Exim global)
            v.setdefault("csa_status", self.conn["csa_status"])
        if where in ("rcpt", "vrfy", "prdr") and \
                ("local_part" in v or "domain" in v):
            lp = call.var("local_part")
            rawdom = call.var("domain")
            dom = _keep_taint(rawdom, rawdom.lower())
            # Exim: $local_part is lower-cased in the RCPT ACL unless
            # control=caseful_local_part; lists see the caseful form.
            v["local_part"] = _keep_taint(lp, _lc(lp))
            v["domain"] = dom
            call.addr = Address(f"{lp}@{rawdom}" if dom else lp, lp, dom)
        msgs = Msgs()
        if acl is None:
            call.trace("ACL is NULL: implicit DENY")
            rc = FAIL
        else:
            rc = self._internal(call, acl, msgs, expanded=False)
        if rc == DISCARD and where not in MESSAGE_WHERES:
            self.log_write(f'"discard" verb not allowed in '
                           f"{WHERE_NAMES.get(where, where)} ACL",
                           main=True, panic=True)
            msgs.log = msgs.user = None
            rc = ERROR
        if rc in (FAIL, DEFER, FAIL_DROP) and \
                result.__dict__.get("sender_verify_failed") is not None:
            self.msg["sverify_told"] = True     # Exim tells once a message
        else:
            result.__dict__["sender_verify_failed"] = None
        result.rc = rc
        # Exim's acl_check(): a long user message is split into lines
        # before it becomes a reply (the log keeps it whole).
        result.user_message = split_message(msgs.user)
        result.log_message = msgs.log
        result.temp_details = msgs.temp_details
        return result

    # -- acl_check_internal -------------------------------------------
    def _find(self, call: Call, ss: str, msgs: Msgs
              ) -> tuple[list[AclStatement] | None, str, str | None]:
        """(statements, acl name for messages, source file) or ERROR via
        msgs.log (statements None)."""
        acls = getattr(self.config, "acls", None) or {}
        fname = getattr(self.config, "filename", None) or ""
        if " " not in ss:
            d = acls.get(ss)
            if d is not None:
                call.trace(f'using ACL "{ss}"')
                return d.statements, f'ACL "{ss}"', fname
            if ss.startswith("/"):
                stmts = self._file_acls.get(ss)
                if stmts is not None:
                    call.trace(f'using ACL "{ss}"')
                else:
                    if _tainted(ss):
                        self.log_panic("attempt to open tainted ACL file "
                                       f'name "{ss}"')
                        msgs.log = "internal configuration error"
                        return None, "", None
                    try:
                        with open(ss, "rb") as f:
                            text = f.read().decode("utf-8", "surrogateescape")
                    except OSError as e:
                        msgs.log = (f'failed to open ACL file "{ss}": '
                                    f"{e.strerror}")
                        return None, "", None
                    call.trace(f"read ACL from file {ss}")
                    try:
                        stmts = _parse_text(text)
                    except AclSyntaxError as e:
                        msgs.log = str(e)
                        return None, "", None
                    self._file_acls[ss] = stmts
                # Exim notes the configuration position current when the
                # file is read (the end of the configuration).
                return stmts, f'ACL "{ss}"', None
        if _tainted(ss):
            # Exim: no ACL text from the client (nor a hint to it).
            self.log_panic(f'attempt to use tainted ACL text "{ss}"')
            msgs.log = "internal configuration error"
            return None, "", None
        stmts = self._inline_acls.get(ss)
        if stmts is None:
            try:
                stmts = _parse_text(ss)
            except AclSyntaxError as e:
                msgs.log = str(e)
                return None, "", None
            # Parsed once per process (statements are never changed).
            if len(self._inline_acls) > 256:
                self._inline_acls.clear()
            self._inline_acls[ss] = stmts
        return stmts, "inline ACL", None

    def _internal(self, call: Call, s: str, msgs: Msgs,
                  expanded: bool) -> str:
        if call.level > 20:
            msgs.log = "ACL nested too deep: possible loop"
            return ERROR
        ss = s
        if not expanded and call.level == 0:
            try:
                ss = call.expand(s)
            except ExpansionForcedFail:
                return OK
            except ExpansionError as e:
                msgs.log = f'failed to expand ACL string "{s}": {e}'
                return ERROR
        if _tainted(ss):
            from eximpy.expand.taint import Tainted
            ss = Tainted(ss.lstrip())
        else:
            ss = ss.lstrip()
        stmts, acl_name, srcfile = self._find(call, ss, msgs)
        if stmts is None:
            return ERROR
        if not stmts and acl_name.startswith("ACL") and srcfile is not None \
                and ss in (getattr(self.config, "acls", None) or {}):
            call.trace(f'ACL "{ss}" is empty: implicit DENY')
            return FAIL
        quit_check = call.level == 0 and call.where in ("quit", "notquit")
        from eximpy.acl.conditions import check_conditions
        for st in stmts:
            msgs.user = msgs.log = None
            msgs.temp_details = False
            msgs.basic_errno = 0
            if self.trace is None:
                pass                    # (no trace text built per statement)
            elif srcfile is not None:
                call.trace(f'processing "{st.verb}" ({srcfile} {st.lineno})')
            else:
                call.trace(f'processing "{st.verb}" ({_inline_src(self)})')
            call.ctx.search_error_message = ""
            cond, endpass = check_conditions(call, st, msgs)
            verb = st.verb
            if cond == DEFER:
                call.trace(f"{verb}: condition test deferred in {acl_name}")
                if msgs.basic_errno != ERRNO_CALLOUTDEFER:
                    sem = call.ctx.search_error_message
                    if sem:
                        msgs.log = sem
                    if self.main("smtp_return_error_details", False):
                        msgs.temp_details = True
                else:
                    msgs.temp_details = True
                if verb != "warn":
                    return DEFER
            elif cond == OK:
                call.trace(f"{verb}: condition test succeeded in {acl_name}")
            elif cond == FAIL:
                call.trace(f"{verb}: condition test failed in {acl_name}")
            elif cond == DISCARD:
                call.trace(f'{verb}: condition test yielded "discard" in '
                           f"{acl_name}")
            elif cond == FAIL_DROP:
                call.trace(f'{verb}: condition test yielded "drop" in '
                           f"{acl_name}")
            else:
                call.trace(f"{verb}: condition test error in {acl_name}")
                return ERROR

            def badquit() -> str:
                msgs.log = ("QUIT or not-QUIT toplevel ACL may not fail "
                            f"('{verb}' verb used incorrectly)")
                return ERROR

            if verb == "accept":
                if cond in (OK, DISCARD):
                    call.trace(f"end of {acl_name}: ACCEPT")
                    return cond
                if endpass:
                    call.trace("accept: endpass encountered - denying access")
                    return cond
            elif verb == "defer":
                if cond == OK:
                    call.trace(f"end of {acl_name}: DEFER")
                    if quit_check:
                        return badquit()
                    msgs.temp_details = True
                    return DEFER
            elif verb == "deny":
                if cond == OK:
                    call.trace(f"end of {acl_name}: DENY")
                    if quit_check:
                        return badquit()
                    return FAIL
            elif verb == "discard":
                if cond in (OK, DISCARD):
                    call.trace(f"end of {acl_name}: DISCARD")
                    if quit_check:
                        return badquit()
                    return DISCARD
                if endpass:
                    call.trace("discard: endpass encountered - denying access")
                    return cond
            elif verb == "drop":
                if cond == OK:
                    call.trace(f"end of {acl_name}: DROP")
                    if quit_check:
                        return badquit()
                    return FAIL_DROP
            elif verb == "require":
                if cond != OK:
                    call.trace(f"end of {acl_name}: not OK")
                    if quit_check:
                        return badquit()
                    return cond
            elif verb == "warn":
                if cond == OK:
                    self._warn(call, msgs.user, msgs.log)
                elif cond == DEFER and _selector_has(self, "acl_warn_skipped"):
                    self.log_main(
                        f"{call.host_and_ident(True)} Warning: ACL \"warn\" "
                        "statement skipped: condition test deferred"
                        + (f": {msgs.log}" if msgs.log else ""))
                msgs.user = msgs.log = None
        call.trace(f"end of {acl_name}: implicit DENY")
        return FAIL

    def _warn(self, call: Call, user: str | None, logm: str | None) -> None:
        """Exim's acl_warn()."""
        from eximpy.log.format import printing
        if logm is not None and logm is not user:
            text = f"{call.host_and_ident(True)} Warning: {printing(logm)}"
            sv = self.msg.get("sender_verify")
            if sv is not None and sv[0] == FAIL and sv[1] and \
                    logm.lower() == "sender verify failed":
                text = f"{text}: {sv[1]}"
            logged = self.msg["warn_logged"]
            if text not in logged:
                self.log_main(text)
                logged.add(text)
        if user is None:
            return
        if call.where not in MESSAGE_WHERES:
            self.log_write(
                'ACL "warn" with "message" setting found in a non-message '
                f"({WHERE_NAMES.get(call.where, call.where)}) ACL: cannot "
                "specify header lines here: message ignored",
                main=True, panic=True)
            return
        setup_header(call, user)


ERRNO_CALLOUTDEFER = -40


def _indent(level: int) -> str:
    """Exim's debug_printf_indent(): a space per level, with a mark every
    four levels."""
    return "   \u254e" * (level // 4) + " " * (level % 4)
_LC = {i: i + 32 for i in range(65, 91)}


def _lc(s: str) -> str:
    return s.translate(_LC)


def _keep_taint(orig: str, new: str) -> str:
    """``new`` with the taint of ``orig`` (str methods drop the subclass)."""
    from eximpy.expand.taint import Tainted
    return Tainted(new) if isinstance(orig, Tainted) else new


def _selector_has(engine: AclEngine, name: str) -> bool:
    """Whether log_selector (with Exim's defaults) has ``name`` on."""
    sel = engine.__dict__.get("_log_selector")
    if sel is None:
        from eximpy.log.format import LogSelector
        sel = LogSelector.parse(engine.main("log_selector", "") or None)
        engine.__dict__["_log_selector"] = sel
    return name in sel


def _inline_src(engine: AclEngine) -> str:
    # Exim records the configuration position current when the inline text
    # is read at run time: the end of the configuration file.
    fname = getattr(engine.config, "filename", None) or ""
    n = engine.__dict__.get("_cfg_lines")
    if n is None:
        try:
            with open(fname, "rb") as f:
                n = f.read().count(b"\n")
        except OSError:
            n = 0
        engine.__dict__["_cfg_lines"] = n
    return f"{fname} {n}"


def split_message(msg: str | None) -> str | None:
    """Exim's string_split_message(): a message longer than 75 characters
    gets newlines instead of some spaces, so that no line of the reply
    is much longer than 75: each line is broken at the last space after
    its 35th character (one just after a colon is preferred), or, when
    there is none, at the next space or newline."""
    if msg is None or len(msg) <= 75:
        return msg
    b = list(msg)
    n = len(b)
    s = ss = 0
    while True:
        i = 0
        while i < 75 and ss < n and b[ss] != "\n":
            ss += 1
            i += 1
        if ss >= n:
            break
        if b[ss] == "\n":
            ss += 1
            s = ss
            continue
        tt = None
        t = ss + 1
        while True:
            t -= 1
            if t <= s + 35:
                break
            if t < n and b[t] == " ":
                if b[t - 1] == ":":
                    tt = t
                    break
                if tt is None:
                    tt = t
        if tt is None:
            t = ss + 1
            while t < n:
                if b[t] in (" ", "\n"):
                    tt = t
                    break
                t += 1
        if tt is None:
            break
        b[tt] = "\n"
        s = ss = tt + 1
    return "".join(b)


def setup_header(call: Call, text: str) -> None:
    """Exim's setup_header(): text to add as header line(s).

    Leading ``:at_start:``, ``:at_start_rfc:``, ``:after_received:`` or
    ``:at_end:`` choose the position (kept as a prefix for the spooler);
    lines that are not headers get "X-ACL-Warn: " in front."""
    pos = ""
    for p in (":after_received:", ":at_start_rfc:", ":at_start:", ":at_end:"):
        if text.startswith(p):
            pos = p
            text = text[len(p):]
            break
    out: list[str] = []
    for line in text.split("\n"):
        if not line:
            continue
        if line[0] in " \t" and out:
            out[-1] += "\n" + line
            continue
        if not _HEADER_RE.match(line):
            line = "X-ACL-Warn: " + line
        out.append(line)
    for h in out:
        call.result.added_headers.append(pos + h + "\n")


_POSITIONS = (":after_received:", ":at_start_rfc:", ":at_start:", ":at_end:")


def place_added_headers(headers: list[Any], added: list[str]) -> None:
    """Insert ACL-added header texts (each possibly with a position
    prefix) into ``headers`` as Exim's add_acl_headers() does: at_end
    appends; at_start goes before everything; after_received goes after
    the first block of Received: lines (that place is found once, and
    later after_received lines go in front of earlier ones there);
    at_start_rfc goes after the first header and the uninterrupted run of
    Received: and Resent-* lines that follows it."""
    anchor: Any = None

    def is_received(h: Any) -> bool:
        return h.name.lower() == "received"
    from eximpy.spool.message import Header
    for text in added:
        pos = ""
        for p in _POSITIONS:
            if text.startswith(p):
                pos, text = p, text[len(p):]
                break
        h = Header.make(text)
        if pos == ":at_start:" or (pos and not headers):
            headers.insert(0, h)
        elif pos == ":after_received:":
            if anchor is None:
                i = next((k for k, x in enumerate(headers)
                          if is_received(x)), None)
                if i is None:
                    headers.append(h)
                    continue
                while i + 1 < len(headers) and is_received(headers[i + 1]):
                    i += 1
                anchor = headers[i]
            headers.insert(_index(headers, anchor) + 1, h)
        elif pos == ":at_start_rfc:":
            i = 0
            while i + 1 < len(headers) and (
                    is_received(headers[i + 1]) or
                    headers[i + 1].name.lower().startswith("resent-")):
                i += 1
            anchor = headers[i]
            headers.insert(i + 1, h)
        else:
            headers.append(h)


def _index(headers: list[Any], h: Any) -> int:
    return next(k for k, x in enumerate(headers) if x is h)


def _parse_text(text: str) -> list[AclStatement]:
    """Inline or file ACL text to statements (Exim's acl_getline rules)."""
    lines = _logical_lines(text)
    it = iter(lines)
    stmts, rest = read_acl(lambda: next(it, None))
    if rest is not None:
        raise AclSyntaxError(f'unknown ACL verb "{rest[0].split()[0]}" in '
                             f'"{rest[0]}"')
    return stmts


def _logical_lines(text: str) -> list[tuple[str, int]]:
    phys = text.split("\n")
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(phys):
        line = phys[i].lstrip()
        lineno = i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.rstrip().endswith("\\") and i < len(phys):
            line = line.rstrip()[:-1]
            while i < len(phys) and phys[i].lstrip().startswith("#"):
                i += 1
            if i >= len(phys):
                break
            line += phys[i].lstrip(" \t")
            i += 1
        out.append((line.rstrip("\r"), lineno))
    return out


def make_runner(config: Any, **kw: Any) -> AclEngine:
    """The ACL runner for a session: ``make_runner(config, log=LogWriter,
    trace=callable, host_checking=bool)``."""
    return AclEngine(config, **kw)
