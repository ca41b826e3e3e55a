"""The router chain: route_address() and the generic router preconditions.

SUMMARY
    rctx = RoutingContext(config, verify=V_NONE, address_test_mode=True,
                          sender_address="a@b")
    status = route_address(addr, rctx)        # OK DISCARD FAIL DEFER ERROR
    rctx.addr_local / addr_remote / addr_new / addr_succeed   (the chains)

DESCRIPTION
    route_address() walks the routers in configuration order, as Exim's
    route.c does: ancestor loop protection (repeat_use), caseful/caseless
    local part, local_part_prefix/suffix (+ _optional, "*" wildcards), then
    check_conditions() in Exim's order (verify_only, address_test,
    verify_sender/verify_recipient, expn, domains, local_parts,
    check_local_user, router_home_directory, senders, debug_print,
    require_files, condition), then address_data, then the driver's route().
    DECLINE continues unless `more` is false; PASS continues at pass_router;
    fail_verify_* turn success into failure while verifying; `unseen` makes a
    clone that continues at the next router; the message of an address that
    no router accepts is cannot_route_message of the last router that saw
    it, or "Unrouteable address".

    Driver route() methods receive (addr, rctx, pw) and return one of the
    status strings below; they put routed addresses on rctx's chains with
    eximpy.routers._rf helpers.

    Expansion variables while routing ($domain, $local_part, $local_part_data,
    $domain_data, $address_data, $home, $local_part_prefix ...) are made by
    RoutingContext.expand_context(addr); $local_part and $domain are tainted,
    $local_part_data and $domain_data are not (Exim 4.96 rules).

SEE ALSO
    spec 3.8-3.12, chapter 15 "Generic options for routers"; Exim route.c.
"""
from __future__ import annotations

import os
import pwd
from typing import Any, Callable

from eximpy.address import Address
from eximpy.errors import ExpansionError, ExpansionForcedFail

OK = "OK"
DECLINE = "DECLINE"
PASS = "PASS"
DEFER = "DEFER"
FAIL = "FAIL"
ERROR = "ERROR"
REROUTED = "REROUTED"
DISCARD = "DISCARD"
SKIP = "SKIP"

V_NONE, V_SENDER, V_RECIPIENT, V_EXPN = 0, 1, 2, 3

ERRNO_BADTRANSPORT = -14
ERRNO_EXPANDFAIL = -15


class RouterRuntime:
    """A configured router together with its driver object."""

    def __init__(self, index: int, instance: Any) -> None:
        self.index = index
        self.instance = instance
        self.name: str = instance.name
        factory = getattr(instance.info, "factory", None)
        self.driver = factory(instance) if factory is not None else None
        if self.driver is not None:
            self.driver.rt = self

    def opt(self, name: str) -> Any:
        try:
            return self.instance.get(name)
        except KeyError:
            return None

    def is_set(self, name: str) -> bool:
        inst = self.instance
        if inst.private is not None and inst.private.table.get(name):
            return inst.private.is_set(name)
        return inst.generic.is_set(name)


def _finduser(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except (KeyError, ValueError):
        return None


class RoutingContext:
    """State shared by the routing of one message's (or one test's) addresses.

    ``variables`` are extra expansion variables (message variables, sender
    host ...); ``headers`` the message's header lines for $h_ expansions.
    """

    def __init__(self, config: Any, verify: int = V_NONE,
                 address_test_mode: bool = False, sender_address: str = "",
                 variables: dict[str, Any] | None = None,
                 headers: list | None = None,
                 log: Callable[..., None] | None = None) -> None:
        self.config = config
        self.verify = verify
        self.address_test_mode = address_test_mode
        self.sender_address = sender_address
        self.variables = dict(variables or {})
        self.headers = headers
        # log(message, panic=False): a main (and panic) log line
        self.log = log or (lambda s, panic=False, main=True: None)
        self.routers = [RouterRuntime(i, r) for i, r in enumerate(config.routers)]
        self.addr_local: list[Address] = []
        self.addr_remote: list[Address] = []
        self.addr_new: list[Address] = []
        self.addr_succeed: list[Address] = []
        self.lookup_cache: Any = None
        self.acl_c: dict[str, str] = {}
        self.acl_m: dict[str, str] = {}
        self.router_vars: dict[str, str] = {}
        # per-router-run state (Exim globals deliver_home etc.)
        self.home: str | None = None
        self.local_user_uid: int | None = None
        self.local_user_gid: int | None = None
        self.sender_data: str | None = None
        self.router_name: str | None = None
        self.search_error: str | None = None
        # Optional debug trace (callable(str)): Exim's HDEBUG(D_route)
        # lines and list matches, for VRFY in -bh test sessions.
        self.trace: Callable[[str], None] | None = None
        # With trace: named-list caches of the top-level address
        # ({"domain": {...}, "localpart": {...}}, the ACL's, as Exim's
        # verify shares the RCPT address's cache bits).
        self.list_caches: dict[str, dict] | None = None

    # -- helpers ----------------------------------------------------------
    def main(self, name: str) -> Any:
        try:
            return self.config.main.get(name)
        except (KeyError, AttributeError):
            return None

    def router_by_name(self, name: str) -> RouterRuntime | None:
        return next((r for r in self.routers if r.name == name), None)

    def qualify_recipient(self) -> str:
        return (self.main("qualify_recipient") or self.main("qualify_domain")
                or self.main("primary_hostname") or "")

    def qualify_domain(self) -> str:
        return self.main("qualify_domain") or self.main("primary_hostname") or ""

    def expand_context(self, addr: Address | None, **extra: Any) -> Any:
        """An ExpandContext with the address variables set."""
        from eximpy.expand import ExpandContext
        from eximpy.expand.taint import Tainted
        v: dict[str, Any] = dict(self.variables)
        v.setdefault("sender_address", self.sender_address)
        if addr is not None:
            lp = addr.local_part
            v["local_part"] = Tainted(lp)
            v["domain"] = Tainted(addr.domain)
            v["local_part_prefix"] = Tainted(addr.prefix or "")
            v["local_part_suffix"] = Tainted(addr.suffix or "")
            v["local_part_prefix_v"] = Tainted(addr.prefix_v or "")
            v["local_part_suffix_v"] = Tainted(addr.suffix_v or "")
            top = addr
            while top.parent is not None and not top.parent.address.startswith(
                    ("|", "/", ">")):
                top = top.parent
            if addr.parent is not None:
                v["original_local_part"] = Tainted(top.cc_local_part
                                                   or top.local_part)
                v["original_domain"] = Tainted(top.domain)
                v["parent_local_part"] = Tainted(addr.parent.cc_local_part
                                                 or addr.parent.local_part)
                v["parent_domain"] = Tainted(addr.parent.domain)
            else:
                v["original_local_part"] = Tainted(addr.cc_local_part
                                                   or addr.local_part)
                v["original_domain"] = Tainted(addr.domain)
            if addr.prop.address_data is not None:
                v["address_data"] = addr.prop.address_data
            if addr.prop.domain_data is not None:
                v["domain_data"] = addr.prop.domain_data
            if addr.prop.localpart_data is not None:
                v["local_part_data"] = addr.prop.localpart_data
            if addr.self_hostname:
                v["self_hostname"] = addr.self_hostname
            if addr.prop.errors_address:
                v["errors_address"] = addr.prop.errors_address
        if self.home is not None:
            v["home"] = self.home
        if self.local_user_uid is not None:
            v["local_user_uid"] = str(self.local_user_uid)
            v["local_user_gid"] = str(self.local_user_gid)
        if self.sender_data is not None:
            v["sender_data"] = self.sender_data
        if self.router_name is not None:
            v["router_name"] = self.router_name
        v.update(extra)
        kw: dict[str, Any] = {}
        if self.lookup_cache is not None:
            kw["lookup_cache"] = self.lookup_cache
        ctx = ExpandContext(config=self.config, variables=v,
                            headers=self.headers, acl_c=self.acl_c,
                            acl_m=self.acl_m, router_vars=self.router_vars,
                            **kw)
        if self.lookup_cache is None:
            self.lookup_cache = ctx.lookup_cache
        ctx.search_error_message = ""
        return ctx

    def rewrite(self, address: str, is_recipient: bool) -> str:
        """Apply the global rewrite rules to an envelope address."""
        rules = getattr(self.config, "rewrite_rules", None)
        if not rules:
            return address
        from eximpy.expand import ExpandContext
        from eximpy.rewrite import rewrite_address
        return rewrite_address(
            address, "T" if is_recipient else "F", list(rules),
            lambda v: ExpandContext(config=self.config, variables=v),
            self.qualify_recipient(), lambda m: self.log(m))

    def expand(self, text: str, addr: Address | None, **extra: Any) -> str:
        """Expand text for addr; raises ExpansionError/ExpansionForcedFail."""
        from eximpy.expand import expand_string
        return expand_string(text, self.expand_context(addr, **extra))

    def expand_bool(self, value: Any, addr: Address, name: str,
                    rname: str) -> bool:
        """An opt_expand_bool option's value (Exim exp_bool); raises
        _RouteDefer with Exim's message when the expansion fails."""
        if isinstance(value, bool) or value is None:
            return bool(value)
        try:
            s = self.expand(value, addr)
        except ExpansionForcedFail:
            return False
        except ExpansionError as e:
            raise _RouteDefer(f"failed to expand \"{name}\" in {rname} router: "
                              f"{e}")
        low = s.strip().lower()
        if low in ("true", "yes"):
            return True
        if low in ("false", "no", ""):
            return False
        raise _RouteDefer(f"\"{s}\" is not a valid value for the \"{name}\" "
                          f"option in the {rname} router")


class _RouteDefer(Exception):
    pass


# ---------------------------------------------------------------------------
# List matching (domains, local_parts, senders)

def _match(rctx: RoutingContext, addr: Address | None, subject: str,
           listtext: str, kind: str, caseless: bool) -> tuple[str, str | None]:
    """(OK|FAIL|DEFER, matched value) for a domain/localpart/address list."""
    from eximpy import match as M
    ctx = rctx.expand_context(addr)
    if rctx.trace is not None:
        cache = None
        if rctx.list_caches is not None and addr is not None and \
                addr.parent is None:
            cache = rctx.list_caches.get(kind)
        rc, value = _match_traced(rctx, ctx, subject, listtext, kind,
                                  caseless, cache)
    elif kind == "address":
        rc, value = M.match_address_list(ctx, subject, listtext, caseless=caseless,
                                           expand=True)
    else:
        mcl = M.MCL_DOMAIN if kind == "domain" else M.MCL_LOCALPART
        rc, value = M.match_isinlist(ctx, subject, listtext, mcl,
                                     caseless=caseless, expand=True)
    if rc == M.OK:
        return OK, value
    if rc == M.FAIL:
        return FAIL, None
    rctx.search_error = getattr(ctx, "search_error_message", "") or ""
    return DEFER, None


def _match_traced(rctx: RoutingContext, ctx: Any, subject: str,
                  listtext: str, kind: str, caseless: bool,
                  cache: dict | None = None) -> tuple[str, str | None]:
    """The same match through the ACL engine's traced list matcher."""
    from eximpy import match as M
    from eximpy.acl.lists import ListMatcher
    lm = ListMatcher(ctx, rctx.trace)
    if kind == "address":
        return lm.address(subject, listtext, None, caseless)
    if kind == "domain":
        return lm.domain(subject, listtext, cache)

    def item(pat: str, flags: Any) -> str:
        return M.check_string(ctx, subject, pat, flags.caseless, 0, False,
                              False)
    return lm.match(subject, subject, listtext, M.MCL_LOCALPART, item, cache,
                    caseless)


def _check_dls(rctx: RoutingContext, rname: str, what: str, listtext: str,
               subject: str, addr: Address | None, kind: str,
               caseless: bool) -> tuple[str, str | None, str | None]:
    rc, value = _match(rctx, addr, subject, listtext, kind, caseless)
    if rc == OK:
        return OK, value, None
    if rc == FAIL:
        return SKIP, None, f"{rname} router skipped: {what} mismatch"
    return DEFER, None, f"{what} check lookup or other defer"


# ---------------------------------------------------------------------------
# require_files

def _route_check_access(path: str, uid: int, gid: int, bits: int) -> bool:
    rp = os.path.realpath(path)
    parts = rp.split("/")
    cur = ""
    for comp in parts[1:-1]:
        cur += "/" + comp
        st = os.stat(cur)
        need = 0o100 if st.st_uid == uid else (0o010 if st.st_gid == gid else 0o001)
        if not st.st_mode & need:
            raise PermissionError(13, "Permission denied")
    st = os.stat(rp)
    if st.st_uid == uid:
        bits <<= 6
    elif st.st_gid == gid:
        bits <<= 3
    if (st.st_mode & bits) != bits:
        raise PermissionError(13, "Permission denied")
    return True


def check_files(rctx: RoutingContext, addr: Address, text: str) -> tuple[str, str | None]:
    """Exim's check_files(): OK, SKIP or DEFER (with message)."""
    from eximpy.expand.lists import iter_list
    uid = gid = None
    for check in iter_list(text):
        try:
            ss = rctx.expand(check, addr)
        except ExpansionForcedFail:
            continue
        except ExpansionError as e:
            return DEFER, f'failed to expand "{check}" for require_files: {e}'
        if not ss:
            continue
        if "/" not in ss:
            user, _, group = ss.partition(",")
            if user.lstrip("-").isdigit() and (user[0].isdigit() or user[0] == "-"):
                uid, pwent = int(user), None
            else:
                pwent = _finduser(user)
                if pwent is None:
                    return DEFER, f'user "{ss}" for require_files not found'
                uid = pwent.pw_uid
            if not group:
                if pwent is None:
                    return DEFER, (f"group missing after numerical uid {uid} "
                                   "for require_files")
                gid = pwent.pw_gid
            else:
                import grp
                if group.lstrip("-").isdigit():
                    gid = int(group)
                else:
                    try:
                        gid = grp.getgrnam(group).gr_gid
                    except KeyError:
                        return DEFER, (f'group "{group}" for require_files '
                                       "not found\n")
            continue
        eacces = False
        invert = False
        if ss.startswith("+"):
            eacces = True
            ss = ss[1:].lstrip()
        if ss.startswith("!"):
            invert = True
            ss = ss[1:].lstrip()
        if not ss.startswith("/"):
            return DEFER, f'require_files: "{ss}" is not absolute'
        exists = True
        try:
            os.stat(ss)
            if uid is not None:
                _route_check_access(ss, uid, gid if gid is not None else -1, 4)
        except OSError as e:
            import errno as E
            err = e.errno
            if err == E.EACCES and eacces:
                err = E.ENOENT
            if err != E.ENOENT:
                return DEFER, f"require_files: error for {ss}: {os.strerror(err or 0)}"
            exists = False
        if exists == invert:
            return SKIP, None
    return OK, None


# ---------------------------------------------------------------------------
# Prefix and suffix

def check_prefix(local_part: str, prefixes: str) -> tuple[int, int]:
    """(length of matched prefix, length of its wildcard part) or (0, 0)."""
    from eximpy.expand.lists import iter_list
    lp = local_part.lower()
    for p in iter_list(prefixes):
        if p.startswith("*"):
            fixed = p[1:].lower()
            # wildcard prefix: the fixed part may appear anywhere; use the
            # last position Exim's backwards scan finds first.
            for start in range(len(lp) - len(fixed), -1, -1):
                if lp[start:start + len(fixed)] == fixed:
                    return start + len(fixed), start
        elif len(local_part) > len(p) and lp.startswith(p.lower()):
            return len(p), 0
    return 0, 0


def check_suffix(local_part: str, suffixes: str) -> tuple[int, int]:
    """(length of matched suffix, length of its wildcard part) or (0, 0)."""
    from eximpy.expand.lists import iter_list
    lp = local_part.lower()
    alen = len(lp)
    for s in iter_list(suffixes):
        if s.endswith("*"):
            fixed = s[:-1].lower()
            for p in range(0, alen - len(fixed) + 1):
                if lp[p:p + len(fixed)] == fixed:
                    return alen - p, alen - p - len(fixed)
        elif alen > len(s) and lp.endswith(s.lower()):
            return len(s), 0
    return 0, 0


# ---------------------------------------------------------------------------
# The preconditions

def check_router_conditions(r: RouterRuntime, addr: Address,
                            rctx: RoutingContext) -> tuple[str, Any, str | None]:
    """Exim's check_router_conditions(): (OK|SKIP|DEFER|FAIL, pw, message)."""
    rctx.home = None
    rctx.local_user_uid = rctx.local_user_gid = None
    rctx.sender_data = None
    addr.prop.domain_data = None
    addr.prop.localpart_data = None
    verify = rctx.verify
    pw = None
    if verify in (V_NONE, V_EXPN) and r.opt("verify_only"):
        return SKIP, None, None
    if rctx.address_test_mode and not r.opt("address_test"):
        return SKIP, None, None
    if (verify == V_SENDER and not r.opt("verify_sender")) or \
            (verify == V_RECIPIENT and not r.opt("verify_recipient")):
        return SKIP, None, None
    if verify == V_EXPN and not r.opt("expn"):
        return SKIP, None, None

    domains = r.opt("domains")
    if domains:
        rc, value, msg = _check_dls(rctx, r.name, "domains", domains,
                                    addr.domain, addr, "domain", True)
        if rc != OK:
            return rc, None, msg
        addr.prop.domain_data = value

    local_parts = r.opt("local_parts")
    if local_parts:
        check_lp = addr.cc_local_part
        if addr.prefix:
            check_lp = check_lp[len(addr.prefix):]
        if addr.suffix:
            check_lp = check_lp[:len(check_lp) - len(addr.suffix)]
        rc, value, msg = _check_dls(rctx, r.name, "local_parts", local_parts,
                                    check_lp, addr, "localpart",
                                    not r.opt("caseful_local_part"))
        if rc != OK:
            return rc, None, msg
        addr.prop.localpart_data = value

    if r.opt("check_local_user"):
        pw = _finduser(addr.local_part)
        if pw is None:
            return SKIP, None, None
        rctx.home = pw.pw_dir
        rctx.local_user_uid = pw.pw_uid
        rctx.local_user_gid = pw.pw_gid
        # Exim 4.96: the passwd entry's name is the de-tainted
        # $local_part_data.
        addr.prop.localpart_data = pw.pw_name

    rhd = r.opt("router_home_directory")
    if rhd:
        try:
            rctx.home = rctx.expand(rhd, addr)
            addr.home_expanded = True
        except ExpansionForcedFail:
            pass
        except ExpansionError as e:
            return DEFER, pw, (f'failed to expand "{rhd}" for '
                               f"router_home_directory: {e}")

    senders = r.opt("senders")
    if senders:
        rc, value, msg = _check_dls(rctx, r.name, "senders", senders,
                                    rctx.sender_address or "", addr,
                                    "address", True)
        if rc != OK:
            return rc, None, msg
        rctx.sender_data = value

    dp = r.opt("debug_print")
    if dp and (rctx.address_test_mode or os.environ.get("EXIMPY_DEBUG_PRINT")):
        try:
            import sys
            sys.stderr.write(rctx.expand(dp, addr) + "\n")
        except (ExpansionError, ExpansionForcedFail):
            pass

    rf = r.opt("require_files")
    if rf:
        rc, msg = check_files(rctx, addr, rf)
        if rc != OK:
            return rc, pw, msg

    cond = r.opt("condition")
    if cond:
        from eximpy.expand import expand_check_condition
        ctx = rctx.expand_context(addr)
        errors: list[str] = []
        if not expand_check_condition(cond, ctx, errors.append):
            if ctx.search_find_defer:
                return DEFER, pw, "condition check lookup defer"
            if errors:
                rctx.log(f"failed to expand condition \"{cond}\" for "
                         f"{r.name} router: {errors[0]}", panic=True)
            return SKIP, None, None
    return OK, pw, None


# ---------------------------------------------------------------------------
# route_address

def _route_unseen(r: RouterRuntime, addr: Address, rctx: RoutingContext) -> None:
    """Clone an address routed by an `unseen` router (Exim route_unseen)."""
    import copy
    parent = copy.copy(addr)
    parent.prop = addr.prop.copy()
    parent.child_count = 2
    parent.prop.errors_address = (addr.parent.prop.errors_address
                                  if addr.parent else None)
    addr.parent = parent
    new = Address(addr.address, parent)
    new.cc_local_part, new.lc_local_part = addr.cc_local_part, addr.lc_local_part
    new.local_part, new.domain = addr.local_part, addr.domain
    new.prop.errors_address = parent.prop.errors_address
    new.prop.ignore_error = addr.prop.ignore_error
    new.prop.address_data = addr.prop.address_data
    new.dsn_flags = addr.dsn_flags
    new.unseen_clone = True  # type: ignore[attr-defined]
    new.start_router = r.index + 1
    rctx.addr_new.insert(0, new)
    addr.unique = f"{addr.unique}/{r.name}"


def route_address(addr: Address, rctx: RoutingContext) -> str:
    """Route one address through the router chain (Exim route_address()).

    Returns OK, DISCARD, FAIL, DEFER or ERROR; sets addr.message on failure.
    """
    routers = rctx.routers
    i = addr.start_router or 0
    r: RouterRuntime | None = None
    yield_ = OK
    t = rctx.trace or (lambda s: None)
    t(f"routing {addr.address}")
    try:
        while i < len(routers):
            r = routers[i]
            nexti = i + 1
            rctx.search_error = None
            addr.router = r.instance
            # Loop protection.
            loop = False
            count = 0
            p = addr.parent
            while p is not None:
                if p.router is r.instance:
                    brk = not r.opt("repeat_use") if r.instance.private is not None \
                        and r.instance.private.table.get("repeat_use") else False
                    if not brk:
                        brk = p.address.lower() == addr.address.lower()
                        if brk and r.opt("caseful_local_part"):
                            at = addr.address.rfind("@")
                            brk = p.address[:at] == addr.address[:at]
                    if brk:
                        loop = True
                        break
                count += 1
                if count > 100:
                    rctx.log(f"routing loop for {addr.address}", panic=True)
                    return DEFER
                p = p.parent
            if loop:
                i = nexti
                continue

            addr.prefix = addr.suffix = None
            addr.prefix_v = addr.suffix_v = None
            addr.local_part = (addr.cc_local_part if r.opt("caseful_local_part")
                               else addr.lc_local_part)
            prefix = r.opt("local_part_prefix")
            if prefix:
                plen, vlen = check_prefix(addr.local_part, prefix)
                if plen > 0:
                    addr.prefix = addr.local_part[:plen]
                    addr.prefix_v = addr.local_part[:vlen] if vlen else None
                    addr.local_part = addr.local_part[plen:]
                elif not r.opt("local_part_prefix_optional"):
                    i = nexti
                    continue
            suffix = r.opt("local_part_suffix")
            if suffix:
                slen, vlen = check_suffix(addr.local_part, suffix)
                if slen > 0:
                    lplen = len(addr.local_part) - slen
                    addr.suffix = addr.local_part[lplen:]
                    addr.suffix_v = addr.suffix[slen - vlen:] if vlen else None
                    addr.local_part = addr.local_part[:lplen]
                elif not r.opt("local_part_suffix_optional"):
                    i = nexti
                    continue

            rctx.router_name = r.name
            rc, pw, msg = check_router_conditions(r, addr, rctx)
            if rc != OK:
                rctx.router_name = None
                if rc == SKIP:
                    i = nexti
                    continue
                addr.message = msg
                return rc

            ad = r.opt("address_data")
            if ad:
                try:
                    addr.prop.address_data = rctx.expand(ad, addr)
                except ExpansionForcedFail:
                    if not rctx.expand_bool(r.opt("more"), addr, "more", r.name):
                        r = None
                        break
                    i = nexti
                    continue
                except ExpansionError as e:
                    addr.message = (f'expansion of "{ad}" failed in {r.name} '
                                    f"router: {e}")
                    return DEFER

            addr.local_host_removed = False
            if r.driver is None:
                raise NotImplementedError(f"router driver for {r.name}")
            t(f"calling {r.name} router")
            yield_ = r.driver.route(addr, rctx, pw)
            rctx.router_name = None

            if yield_ == FAIL:
                t(f"{r.name} router forced address failure")
                return FAIL
            if ((rctx.verify == V_SENDER and r.opt("fail_verify_sender")) or
                    (rctx.verify == V_RECIPIENT and r.opt("fail_verify_recipient"))) \
                    and yield_ in (OK, PASS):
                addr.message = f"{r.name} router forced verify failure"
                for chain in (rctx.addr_remote, rctx.addr_local):
                    if chain and chain[0] is addr:
                        chain.pop(0)
                return FAIL
            if yield_ not in (PASS, DECLINE):
                break
            t(f"{r.name} router {'passed' if yield_ == PASS else 'declined'}"
              f" for {addr.address}")
            addr.host_list = []
            addr.transport = None
            if yield_ == PASS:
                pr = r.opt("pass_router")
                if pr:
                    target = rctx.router_by_name(pr)
                    if target is not None:
                        nexti = target.index
            else:
                if not rctx.expand_bool(r.opt("more"), addr, "more", r.name):
                    t('"more" is false: skipping remaining routers')
                    r = None
                    break
            i = nexti
        else:
            r = None
    except _RouteDefer as e:
        addr.message = str(e)
        return DEFER

    if r is None:
        t("no more routers")
        if not addr.message:
            message = "Unrouteable address"
            last = addr.router
            crm = last.get("cannot_route_message") if last is not None else None
            if crm:
                try:
                    message = rctx.expand(crm, addr)
                except ExpansionForcedFail:
                    pass
                except ExpansionError as e:
                    rctx.log(f"failed to expand cannot_route_message in "
                             f"{last.name} router: {e}", panic=True)
            addr.message = addr.user_message = message
        addr.router = None
        return FAIL

    if yield_ == DEFER:
        t(f"{r.name} router: defer for {addr.address}")
        t(f"  message: {addr.message or '<none>'}")
    if yield_ in (DEFER, DISCARD):
        return yield_
    if yield_ == ERROR:
        return DEFER if addr.message else ERROR
    if yield_ == REROUTED:
        t(f"re-routed to {addr.address}")
        return OK
    if yield_ != OK:
        raise RuntimeError(f"{r.name} router returned unknown value {yield_}")
    try:
        unseen = rctx.expand_bool(r.opt("unseen"), addr, "unseen", r.name)
    except _RouteDefer as e:
        addr.message = str(e)
        return DEFER
    t(f"routed by {r.name} router{' (unseen)' if unseen else ''}")
    addr.message = None
    if unseen and r.index + 1 < len(routers):
        _route_unseen(r, addr, rctx)
    return OK


def make_address(text: str) -> Address:
    """A top-level Address with local part and domain split."""
    from eximpy.address import split_address
    a = Address(text)
    split_address(a)
    return a


class VerifyResult:
    """What verify() found: ``status`` OK, FAIL or DEFER; ``message`` (for
    logs), ``user_message`` (for SMTP replies), ``address_data`` and the
    final Address."""

    def __init__(self, status: str, addr: Address | None) -> None:
        self.status = status
        self.address = addr
        self.message = addr.message if addr is not None else None
        self.user_message = (addr.user_message or addr.message) \
            if addr is not None else None
        self.address_data = addr.prop.address_data if addr is not None else None


def verify(config: Any, address: str, *, is_recipient: bool = True,
           sender_address: str = "", variables: dict[str, Any] | None = None,
           headers: list | None = None,
           log: Callable[..., None] | None = None,
           trace: Callable[[str], None] | None = None) -> VerifyResult:
    """Verify one (qualified) address as an ACL's verify=recipient/sender
    does: route it in verify mode, following a single redirection child;
    no output.  Callouts are not done here."""
    import io
    from eximpy.cli.address_test import verify_address
    rctx = RoutingContext(config, V_RECIPIENT if is_recipient else V_SENDER,
                          sender_address=sender_address, variables=variables,
                          headers=headers, log=log)
    rctx.trace = trace
    rctx.duplicates = set()
    rctx.last_address = None
    status = verify_address(address, rctx, io.StringIO(), False, is_recipient,
                            address_test_mode=False)
    return VerifyResult(status, rctx.last_address)
