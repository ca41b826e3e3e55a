"""ExpandContext: everything an expansion can see, without globals.

DESCRIPTION
    An ExpandContext is made by whoever expands (the receiver, an ACL, a
    router, a transport, -be) and passed to expand_string().  It holds:

      config      the Config (or None): config.main.get(name) gives
                  primary_hostname, qualify_domain, spool_directory ...;
                  config.named_lists gives +name lists.
      variables   {name (no '$'): str | callable() -> str} for message,
                  address, host, TLS and authentication variables; use
                  eximpy.expand.taint.Tainted for untrusted values.
      headers     the message's header lines, as (name, raw_value) pairs
                  (raw_value is what follows the colon, folding included),
                  or (name, raw_value, type_char) with Exim's header type.
      acl_c/acl_m {"acl_c0": value, "acl_m_foo": value ...}
      router_vars {"x": value} for $r_x
      auth_vars   [value, ...] for $auth1..$auth4
      environ     the environment ${env} sees (default: os.environ)
      acl_runner  callable(name, args) -> (rc_name, user_message) for ${acl}
                  and the acl condition; rc_name is "OK", "FAIL", "DEFER" ...
      lookup_cache  eximpy.lookups.cache.SearchCache; by default the one
                  process-wide cache (eximpy.lookups.cache.tidyup() clears it)

    Per-expansion state Exim keeps in globals lives here too: $value
    (lookup_value), $item, $0..$9 (nstrings), $runrc, the $prvscheck_*
    results.

SEE ALSO
    spec chapter "String expansions", section "Expansion variables".
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from eximpy.expand import variables as V
from eximpy.expand.taint import Tainted

# Computed variables whose value cannot change during a context's life
# (they come from the configuration or the installation).
_STATIC_COMPUTED = frozenset((
    "primary_hostname", "qualify_domain", "qualify_recipient", "spool_directory",
    "config_file", "config_dir", "exim_path", "exim_version", "version_number",
    "compile_number", "compile_date", "exim_uid", "exim_gid", "bounce_return_size_limit",
    "return_size_limit"))


class ExpandContext:
    """See module docstring."""

    def __init__(self, config: Any = None,
                 variables: dict[str, Any] | None = None,
                 headers: list | None = None,
                 acl_c: dict[str, str] | None = None,
                 acl_m: dict[str, str] | None = None,
                 router_vars: dict[str, str] | None = None,
                 auth_vars: list[str] | None = None,
                 environ: dict[str, str] | None = None,
                 acl_runner: Callable[[str, list[str]], tuple[str, str | None]] | None = None,
                 lookup_cache: Any = None,
                 filter_running: bool = False,
                 strict_acl_vars: bool = False,
                 message_body: str | None = None,
                 message_body_end: str | None = None,
                 **kw: Any) -> None:
        self.config = config
        self.variables: dict[str, Any] = dict(variables or {})
        self.headers = headers
        self.acl_c = acl_c if acl_c is not None else {}
        self.acl_m = acl_m if acl_m is not None else {}
        self.router_vars = router_vars if router_vars is not None else {}
        self.auth_vars = auth_vars if auth_vars is not None else []
        self.environ = environ if environ is not None else os.environ
        self.acl_runner = acl_runner
        if lookup_cache is None:
            from eximpy.lookups.cache import process_cache
            lookup_cache = process_cache()
        self.lookup_cache = lookup_cache
        self.filter_running = filter_running
        self.filter_n = [0] * 10
        self.filter_sn = [0] * 10
        self.strict_acl_vars = strict_acl_vars
        if message_body is not None:
            self.variables["message_body"] = message_body
        if message_body_end is not None:
            self.variables["message_body_end"] = message_body_end
        # Per-expansion state (Exim globals).
        self.lookup_value: str | None = None
        self.iterate_item: str | None = None
        self.nstrings: list[str] = []
        self.runrc = 0
        self.prvscheck: dict[str, str | None] = {}
        self.expand_forbid = 0
        self.search_find_defer = False
        self.perl = None
        self.python = None
        self.pid = os.getpid()
        self.lookup_dnssec_authenticated: str | None = None
        self.search_error_message = ""
        self._match_value: str | None = None
        self.log_panic: Callable[[str], None] | None = None
        self._cfgcache: dict[str, str] = {}
        self._nl_tables: tuple | None = None    # (config, its named_lists)
        for k, v in kw.items():
            setattr(self, k, v)

    # -- configuration --
    def main_option(self, name: str) -> Any:
        if self.config is None:
            return None
        main = getattr(self.config, "main", None)
        if main is None:
            return None
        try:
            return main.get(name)
        except (KeyError, AttributeError):
            return None

    def named_list(self, kind: str, name: str) -> Any:
        """The NamedList (with .value) for +name in a list of ``kind``
        ("domain", "host", "address", "localpart"), or None."""
        cfg = self.config
        cached = self._nl_tables
        if cached is None or cached[0] is not cfg:
            if cfg is None:
                return None
            cached = self._nl_tables = (cfg, getattr(cfg, "named_lists", None) or {})
        t = cached[1].get(kind)
        return t.get(name) if t else None

    def headers_charset_name(self) -> str:
        return self.main_option("headers_charset") or "UTF-8"

    def headers_tainted(self) -> bool:
        return bool(getattr(self, "taint_headers", False))

    # -- variables --
    def get_var(self, name: str) -> str | None:
        """The value of $name, or None if it is unknown (an error)."""
        v = self.variables.get(name)
        if v is not None:
            return v if v.__class__ is str or v.__class__ is Tainted or not callable(v) \
                else v()
        if name in _STATIC_COMPUTED:
            c = self._cfgcache.get(name)
            if c is None:
                c = self._cfgcache[name] = self._computed(name)
            return c
        return self._get_var_slow(name)

    def _get_var_slow(self, name: str) -> str | None:
        if name == "sender_host_name":
            return self._sender_host_name()
        if name.startswith("acl_") and len(name) > 4 and name[4] in "cm" and not (
                len(name) > 5 and name[5].isalpha()):
            store = self.acl_c if name[4] == "c" else self.acl_m
            r = store.get(name)
            if r is None:
                return None if self.strict_acl_vars else ""
            return r
        if name.startswith("r_"):
            r = self.router_vars.get(name[2:])
            if r is None:
                return None if self.strict_acl_vars else ""
            return r
        if name == "value":
            return self.lookup_value if self.lookup_value is not None else ""
        if name == "item":
            return self.iterate_item if self.iterate_item is not None else ""
        if name == "runrc":
            return str(self.runrc)
        if name.startswith("prvscheck_"):
            return self.prvscheck.get(name[10:]) or ""
        if name.startswith("auth") and name[4:].isdigit():
            k = int(name[4:])
            if 0 < k <= V.AUTH_VARS:
                return self.auth_vars[k - 1] if k <= len(self.auth_vars) else ""
        if name.startswith("regex") and name[5:].isdigit():
            return ""
        if name in V.FILTER_VARS:
            if not self.filter_running:
                return None
            arr = self.filter_n if name[0] == "n" else self.filter_sn
            return str(arr[int(name[-1])])
        if name in V.KNOWN:
            d = V.KNOWN[name]
            if d is not None:
                if name in ("sender_address_domain", "sender_address_local_part"):
                    sa = self.get_var("sender_address") or ""
                    if "@" not in sa:
                        return sa if name.endswith("local_part") else ""
                    lp, _, dom = sa.rpartition("@")
                    return dom if name.endswith("domain") else lp
                if name == "reply_address":
                    return self._reply_address()
                if name == "message_headers" or name == "message_headers_raw":
                    from eximpy.expand.evaluate import find_header
                    r = find_header(self, None, name == "message_headers_raw", False, None)
                    return r or ""
                if name == "lookup_dnssec_authenticated":
                    return self.lookup_dnssec_authenticated or ""
                return d
            return self._computed(name)
        return None

    def _sender_host_name(self) -> str:
        """$sender_host_name: looked up (reverse DNS, forward-confirmed) the
        first time it is used when only the address is known, as Exim
        does (a failure is remembered here, but, as in Exim's -be, does not
        set $host_lookup_failed)."""
        addr = self.variables.get("sender_host_address")
        if not addr or self._cfgcache.get("_host_name_failed") == addr:
            return ""
        from eximpy.match import _dns_host_name
        name = _dns_host_name(self, addr)
        if name is None:
            self._cfgcache["_host_name_failed"] = addr
            return ""
        self.variables["sender_host_name"] = name
        return name

    def _reply_address(self) -> str:
        from eximpy.expand.evaluate import find_header
        s = find_header(self, "reply-to:", True, False, None)
        if s is not None:
            s = s.lstrip(" \t\n")
        if not s:
            s = find_header(self, "from:", True, False, None)
        if s is None:
            return ""
        s = s.lstrip(" \t\n").replace("\n", " ").rstrip(" \t\n\r")
        return s

    def _computed(self, name: str) -> str:
        if name.startswith("tod_"):
            return V.tod(name)
        if name == "pid":
            return str(os.getpid())
        if name == "primary_hostname":
            return self.main_option("primary_hostname") or _hostname()
        if name == "qualify_domain":
            return self.main_option("qualify_domain") or self._computed("primary_hostname")
        if name == "qualify_recipient":
            return self.main_option("qualify_recipient") or self._computed("qualify_domain")
        if name == "spool_directory":
            return self.main_option("spool_directory") or "/var/spool/exim4"
        if name == "config_file":
            return getattr(self.config, "filename", None) or ""
        if name == "config_dir":
            f = getattr(self.config, "filename", None) or ""
            if not f:
                return ""
            if f.startswith("/"):
                return os.path.dirname(f)
            try:
                return os.getcwd() + "/" + os.path.dirname(f)
            except OSError:
                return ""
        if name == "exim_path":
            return self.main_option("exim_path") or "/usr/sbin/exim4"
        if name in ("exim_version", "version_number"):
            return "4.96"
        if name == "compile_number":
            return "2"
        if name == "compile_date":
            return "27-May-2026 16:52:26"
        if name in ("exim_uid", "exim_gid"):
            import grp
            import pwd
            user = self.main_option("exim_user")
            group = self.main_option("exim_group")
            try:
                if isinstance(user, int):
                    uid = user
                    pw = pwd.getpwuid(uid)
                else:
                    pw = pwd.getpwnam(user or "Debian-exim")
                    uid = pw.pw_uid
                if name == "exim_uid":
                    return str(uid)
                if isinstance(group, int):
                    return str(group)
                if isinstance(group, str) and group:
                    return str(grp.getgrnam(group).gr_gid)
                return str(pw.pw_gid)
            except (KeyError, TypeError):
                return "0"
        if name in ("caller_uid", "originator_uid"):
            return str(os.getuid())
        if name in ("caller_gid", "originator_gid"):
            return str(os.getgid())
        if name == "initial_cwd":
            # Exim changes to "/" at start; the front door should record the
            # directory it started in as config.initial_cwd.
            cwd = getattr(self.config, "initial_cwd", None)
            if cwd:
                return cwd
            try:
                return os.getcwd()
            except OSError:
                return ""
        if name == "load_average":
            try:
                return str(int(os.getloadavg()[0] * 1000))
            except OSError:
                return "-1"
        if name in ("spool_space", "spool_inodes"):
            sp, ino = V.statvfs_values(self._computed("spool_directory"))
            return sp if name == "spool_space" else ino
        if name in ("log_space", "log_inodes"):
            lp = self.main_option("log_file_path") or "/var/log/exim4"
            lp = lp.split(":")[0]
            d = os.path.dirname(lp) if "%s" in lp else lp
            sp, ino = V.statvfs_values(d or "/")
            return sp if name == "log_space" else ino
        if name in ("bounce_return_size_limit", "return_size_limit"):
            v = self.main_option("bounce_return_size_limit")
            return str(v if v is not None else 102400)
        return ""


def _hostname() -> str:
    import socket
    return socket.gethostname()
