"""List matching for ACL conditions, with Exim's `-bh` debug trace.

SUMMARY
    ListMatcher(ctx, trace)                     one per ACL evaluation
    m.match(subject, label, text, kind, item, cache=None, caseless=True)
        -> (rc, value)                          rc: OK FAIL DEFER
    m.domain(domain, text, cache) / m.local_part(lp, text, cache)
    m.address(address, text, cache) / m.host(address, name, text, cache)
    m.string(subject, text)                    plain string list

DESCRIPTION
    The matching rules are Exim's match_check_list() (see eximpy.match,
    whose per-item functions are used here); what this module adds is the
    debug output Exim writes while it matches, which `exim -bh` shows as
    ``>>> example.org in "example.org : example.com"? yes (matched
    "example.org")``, one line per list (and per named list inside it), and
    Exim's per-subject caching of named-list results: a cached success is
    reported as ``(matched "+name" - cached)``, a cached failure silently
    moves on.  Caches are dicts the caller keeps for the lifetime Exim
    gives them (per address for domains and local parts, per connection for
    the sending host, per message for the sender).

SEE ALSO
    spec chapter 10 "Domain, host, address, and local part lists"; Exim
    match.c.
"""
from __future__ import annotations

from typing import Any, Callable

from eximpy import match as M
from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.lists import iter_list

OK, FAIL, DEFER, ERROR = "OK", "FAIL", "DEFER", "ERROR"


_FILE_LOOKUPS = ("lsearch", "wildlsearch", "nwildlsearch", "iplsearch",
                 "cdb", "dbm", "dbmnz", "dbmjz", "dsearch")


def _tainted_lookup_file(item: str) -> str | None:
    """The file name of a single-key lookup item ("partial-lsearch;/f")
    when it came from tainted data, else None."""
    from eximpy.expand.taint import is_tainted
    semi = item.find(";")
    if semi < 0 or not is_tainted(item):
        return None
    kind = item[:semi].strip()
    if "-" in kind:
        kind = kind.rsplit("-", 1)[1]
    kind = kind.rstrip("*@")
    if kind.split(",")[0] not in _FILE_LOOKUPS:
        return None
    return item[semi + 1:].strip()


class ListMatcher:
    """Traced list matching bound to one expansion context."""

    def __init__(self, ctx: Any, trace: Callable[[str], None] | None) -> None:
        self.ctx = ctx
        self.trace = trace
        # eximpy.match traces "sender host name required ..." through it.
        ctx.list_trace = trace

    # ------------------------------------------------------------------
    def match(self, subject: str, label: str, text: str, kind: str,
              item: Callable[[str, Any], str], cache: dict | None = None,
              caseless: bool = True, expand: bool = True,
              _depth: int = 0, display: str | None = None
              ) -> tuple[str, Any]:
        """match_check_list() with its debug lines; ``display`` is the
        option name Exim shows for a list that is an option's value
        ("host in helo_accept_junk_hosts? ..."), else the quoted list."""
        ctx = self.ctx
        if expand:
            from eximpy.expand import expand_string
            try:
                text = expand_string(text, ctx)
            except ExpansionForcedFail:
                return FAIL, None
            except ExpansionError as e:
                self._log_panic(
                    f'failed to expand "{text}" while checking a list: {e}')
                return DEFER, None
        shown = display if display is not None else f'"{text}"'
        flags = M._Flags(caseless)
        yield_ = OK
        for raw in iter_list(text):
            yield_ = OK
            if kind in (M.MCL_ADDRESS, M.MCL_LOCALPART) and raw == "+caseful":
                flags.caseless = False
                continue
            if kind == M.MCL_HOST and raw[:1] == "+" and raw[1:] in (
                    "ignore_unknown", "include_unknown", "ignore_defer",
                    "include_defer"):
                setattr(flags, raw[1:], True)
                continue
            ss = raw
            while ss.startswith("!"):
                ss = ss[1:].lstrip(" \t\n\r")
                yield_ = FAIL if yield_ == OK else OK
            if ss.startswith("+"):
                nl = ctx.named_list(kind if kind != M.MCL_STRING else "domain",
                                    ss[1:])
                if nl is None:
                    what = {"domain": " domain", "host": " host",
                            "address": " address",
                            "localpart": " local part"}.get(kind, "")
                    self._log_panic(f'unknown named{what} list "{ss}"')
                    return DEFER, None
                value = getattr(nl, "value", nl)
                # Exim caches a named list's result per subject unless the
                # list contains "$" (its value could change).
                ncache = cache if cache is not None and "$" not in value \
                    else None
                if ncache is not None and ss in ncache:
                    rc, val = ncache[ss]
                    if rc == OK:
                        self._out(subject, label, shown,
                                  "yes" if yield_ == OK else "no",
                                  f'matched "{raw}" - cached')
                        return yield_, val
                    continue
                rc, val = self.match(subject, label, value, kind, item, cache,
                                     flags.caseless, expand, _depth + 1)
                if ncache is not None and rc in (OK, FAIL):
                    ncache[ss] = (rc, val)
                if rc == OK:
                    self._out(subject, label, shown,
                              "yes" if yield_ == OK else "no",
                              f'matched "{raw}"')
                    return yield_, val
                if rc == DEFER:
                    self._deferred(subject, label, shown, raw)
                    return DEFER, None
                continue
            if ss.startswith("/"):
                try:
                    with open(ss, "rb") as f:
                        lines = f.read().decode("utf-8", "surrogateescape").split("\n")
                except OSError as e:
                    self._log_panic(f"{ss}: failed to open file while "
                                    f"checking a list: {e.strerror}")
                    return DEFER, None
                file_yield = yield_
                for line in lines:
                    k = line.find("#")
                    if k >= 0:
                        line = line[:k]
                    line = line.strip(" \t\r\n")
                    if not line:
                        continue
                    y = file_yield
                    rawline = line
                    while line.startswith("!"):
                        line = line[1:].lstrip(" \t")
                        y = FAIL if y == OK else OK
                    rc = item(line, flags)
                    if rc == OK:
                        self._out(subject, label, shown,
                                  "yes" if file_yield == OK else "no",
                                  f'matched "{rawline}" in {ss}')
                        v = ctx._match_value
                        return y, (line if v is None else v)
                    if rc == DEFER:
                        if flags.ignore_defer:
                            continue
                        if flags.include_defer:
                            return OK, None
                        self._deferred(subject, label, shown, line)
                        return DEFER, None
                    yield_ = y
                continue
            bad = _tainted_lookup_file(ss)
            if bad is not None:
                # Exim 4.96 dies here (log_write LOG_PANIC_DIE); eximpy
                # refuses the lookup and defers instead.
                self._log_panic(f"Tainted filename for search: '{bad}'")
                self.ctx.search_error_message = \
                    f"Tainted filename for search: '{bad}'"
                return DEFER, None
            rc = item(ss, flags)
            if rc == OK:
                self._out(subject, label, shown,
                          "yes" if yield_ == OK else "no",
                          f'matched "{raw}"')
                return yield_, ctx._match_value
            if rc == DEFER:
                if flags.ignore_defer:
                    continue
                if flags.include_defer:
                    return OK, None
                self._deferred(subject, label, shown, raw)
                return DEFER, None
            if rc == ERROR:
                if flags.ignore_unknown:
                    continue
                if flags.include_unknown:
                    self._out(subject, label, shown,
                              "yes" if yield_ == OK else "no",
                              "include_unknown")
                    return yield_, None
                self._out(subject, label, shown, "no",
                          "failed to find host name for "
                          f"{getattr(item, 'host_address', '')}")
                return FAIL, None
        final = FAIL if yield_ == OK else OK
        self._out(subject, label, shown, "no" if final == FAIL else "yes",
                  "end of list")
        return final, None

    def _out(self, subject: str, label: str, text: str, yn: str,
             why: str) -> None:
        if self.trace is not None:
            self.trace(f'{label} in {text}? {yn} ({why})')

    def _deferred(self, subject: str, label: str, text: str,
                  item: str) -> None:
        if self.trace is not None:
            self.trace(f'{label} in {text}? list match deferred for {item}')

    def _log_panic(self, msg: str) -> None:
        fn = getattr(self.ctx, "log_panic", None)
        if fn is not None:
            fn(msg)

    # ------------------------------------------------------------------
    def string(self, subject: str, text: str, caseless: bool = True
               ) -> tuple[str, Any]:
        ctx = self.ctx

        def item(pat: str, flags: Any) -> str:
            return M.check_string(ctx, subject, pat, flags.caseless, 0, False,
                                  False)
        return self.match(subject, subject, text, M.MCL_STRING, item, None,
                          caseless)

    def domain(self, domain: str, text: str, cache: dict | None = None,
               expand: bool = True, display: str | None = None
               ) -> tuple[str, Any]:
        ctx = self.ctx

        def item(pat: str, flags: Any) -> str:
            return M.check_string(ctx, domain, pat, flags.caseless, 0, True,
                                  True)
        return self.match(domain, domain, text, M.MCL_DOMAIN, item, cache,
                          True, expand, display=display)

    def local_part(self, lp: str, text: str, cache: dict | None = None
                   ) -> tuple[str, Any]:
        ctx = self.ctx

        def item(pat: str, flags: Any) -> str:
            return M.check_string(ctx, lp, pat, flags.caseless, 0, False,
                                  False)
        return self.match(lp, lp, text, M.MCL_LOCALPART, item, cache, True)

    def address(self, address: str, text: str, cache: dict | None = None,
                caseless: bool = True) -> tuple[str, Any]:
        ctx = self.ctx

        def item(pat: str, flags: Any) -> str:
            return self._check_address(address, pat, flags)
        return self.match(address, address, text, M.MCL_ADDRESS, item, cache,
                          caseless)

    def host(self, address: str, name: str, text: str,
             cache: dict | None = None, display: str | None = None
             ) -> tuple[str, Any]:
        ctx = self.ctx

        def item(pat: str, flags: Any) -> str:
            return M._check_host(ctx, address, name, pat, flags, False)
        item.host_address = address  # type: ignore[attr-defined]
        return self.match(address, "host", text, M.MCL_HOST, item, cache,
                          True, display=display)

    # ------------------------------------------------------------------
    def _check_address(self, address: str, pattern: str, flags: Any) -> str:
        """Exim's check_address(), tracing the domain sub-match."""
        ctx = self.ctx
        ctx._match_value = None
        if pattern.startswith("^") or pattern.startswith("@@") or \
                (";" in pattern and "@" not in pattern.split(";", 1)[0]):
            return M._check_address(ctx, address, pattern, flags)
        if address == "":
            if pattern == "":
                ctx._match_value = ""
                return OK
            return FAIL
        at = address.rfind("@")
        if at < 0:
            return M._check_address(ctx, address, pattern, flags)
        lp, dom = address[:at], M._lc(address[at + 1:])
        pat_at = pattern.rfind("@")
        if pat_at < 0:
            rc, val = self.domain(dom, pattern.replace(":", "::")
                                  if ":" in pattern else pattern, None,
                                  expand=False) \
                if pattern else self._empty_domain(dom)
            if rc == OK:
                ctx._match_value = val
            return rc
        plp, pdom = pattern[:pat_at], pattern[pat_at + 1:]
        if plp.startswith("*"):
            suf = plp[1:]
            ok = (M._lc(lp).endswith(M._lc(suf))) if flags.caseless \
                else lp.endswith(suf)
            if not ok:
                return FAIL
        elif (M._lc(lp) != M._lc(plp)) if flags.caseless else (lp != plp):
            return FAIL
        rc, _val = self.domain(dom, pdom, None, expand=False) if pdom \
            else self._empty_domain(dom)
        if rc == OK:
            ctx._match_value = pattern
        return rc

    def _empty_domain(self, dom: str) -> tuple[str, Any]:
        self._out(dom, dom, '""', "no", "end of list")
        return FAIL, None
