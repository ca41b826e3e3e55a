"""Start-up checks on router, transport and authenticator instances.

SUMMARY
    check_instance(d) runs when one instance is complete (Exim's driver
    *_init() functions); check_routers(config) runs when the routers section
    is complete (Exim's route_init() loop).  Each raises ConfigError with
    Exim's text.

DESCRIPTION
    These are configuration-time facts about drivers (which options must or
    must not be set together), so that `eximpy -bP` and `-bV` refuse exactly
    the files Exim refuses.  A driver module may also check its own options
    (its class's check_options(), run first, as manualroute does); the
    checks that Exim makes for all routers at once live here.

SEE ALSO
    spec chapters 15-22 (routers), 24-30 (transports); Exim route.c
    route_init(), transport.c, and each driver's init function.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from eximpy.errors import ConfigError

if TYPE_CHECKING:
    from eximpy.config.model import Config, DriverInstance

# Router drivers that must have / must not have a transport (Exim's
# ri_yestransport / ri_notransport flags).
_NEEDS_TRANSPORT = {"accept", "dnslookup", "ipliteral"}
_NO_TRANSPORT = {"iplookup", "redirect"}
_SELF_WORDS = ("freeze", "defer", "send", "pass", "fail")


def _for(d: "DriverInstance", message: str) -> ConfigError:
    return ConfigError(message, for_what=f"{d.name} {d.kind}")


def _redirect(d: "DriverInstance") -> None:
    data, file = d.get("data"), d.get("file")
    if data is None and file is None:
        raise _for(d, 'one of "file" or "data" must be specified')
    if data is not None and file is not None:
        raise _for(d, 'only one of "file" or "data" must be specified')


def _iplookup(d: "DriverInstance") -> None:
    if not d.get("port"):
        raise _for(d, "a port must be specified")


def _queryprogram(d: "DriverInstance") -> None:
    if d.get("command") is None:
        raise _for(d, "a command specification is required")


def _appendfile(d: "DriverInstance") -> None:
    if d.get("file") is not None and d.get("directory") is not None:
        raise _for(d, 'only one of "file" or "directory" can be specified')
    directory_form = d.get("maildir_format") or d.get("mailstore_format")
    if not directory_form and not any(
            d.get(o) for o in ("use_fcntl_lock", "use_flock_lock",
                               "use_lockfile", "use_mbx_lock")):
        raise _for(d, "no locking configured")


def _lmtp(d: "DriverInstance") -> None:
    if (d.get("command") is None) == (d.get("socket") is None):
        raise ConfigError("one (and only one) of command or socket must be "
                          f"set for the {d.name} transport")


_INSTANCE_CHECKS: dict[tuple[str, str], Callable[["DriverInstance"], None]] = {
    ("router", "redirect"): _redirect,
    ("router", "iplookup"): _iplookup,
    ("router", "queryprogram"): _queryprogram,
    ("transport", "appendfile"): _appendfile,
    ("transport", "lmtp"): _lmtp,
}


def check_instance(d: "DriverInstance") -> None:
    """Checks made by the driver's init function when the instance ends."""
    check = _INSTANCE_CHECKS.get((d.kind, d.driver or ""))
    if check is not None:
        check(d)


def check_routers(config: "Config") -> None:
    """Checks made once every router has been read (Exim's route_init())."""
    for r in config.routers:
        has_transport = r.get("transport") is not None
        if r.driver in _NEEDS_TRANSPORT and not has_transport and \
                not r.get("verify_only"):
            raise ConfigError(f"{r.name} router:\n  a transport is required "
                              "for this router")
        if r.driver in _NO_TRANSPORT and has_transport:
            raise ConfigError(f"{r.name} router:\n  a transport must not be "
                              "defined for this router")
        self_opt = r.get("self") or "freeze"
        if self_opt not in _SELF_WORDS and not self_opt.startswith("reroute:"):
            raise _for(r, f"{self_opt} is not valid for the self option")
    names = {r.name for r in config.routers}
    for r in config.routers:
        for option in ("pass_router", "redirect_router"):
            target = r.get(option)
            if target is not None and target not in names:
                raise ConfigError(
                    f'new_router "{target}" not found for "{r.name}" router')
