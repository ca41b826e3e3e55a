"""Built-in configuration macros (`_HAVE_*`, `_DRIVER_*`, `_OPT_*`, `_LOG_*`).

SUMMARY
    builtin_macros() lists the macros Exim predefines so that a
    configuration can test for features with `.ifdef`, derived from what
    eximpy really has: its option tables, its driver registries, its lookups
    and its log selectors.  The list is in Exim's order (newest first), which
    is also the order in which they are applied to configuration lines.

SEE ALSO
    spec 6.9 "Builtin macros"; `eximpy -bP macros`.
"""
from __future__ import annotations

from eximpy.config.reader import Macro

# Features eximpy provides that Exim announces with _HAVE_<name>.  Keep this
# honest: a configuration uses these to decide what it may ask for.
HAVE_FEATURES = ("IPV6", "TLS", "OPENSSL")


def _visible(table) -> list[str]:
    return [spec.name for spec in table if not spec.hidden]


def _creation_order() -> list[str]:
    """Macro names in the order Exim creates them (oldest first)."""
    from eximpy.auths import AUTHS
    from eximpy.auths.base import AUTH_GENERIC_OPTIONS
    from eximpy.config.main_options import MAIN_OPTIONS
    from eximpy.routers import ROUTERS
    from eximpy.routers.base import ROUTER_GENERIC_OPTIONS
    from eximpy.transports import TRANSPORTS
    from eximpy.transports.base import TRANSPORT_GENERIC_OPTIONS

    names = [f"_OPT_MAIN_{n.upper()}" for n in _visible(MAIN_OPTIONS)]
    for kind, generic, registry in (
            ("ROUTER", ROUTER_GENERIC_OPTIONS, ROUTERS),
            ("TRANSPORT", TRANSPORT_GENERIC_OPTIONS, TRANSPORTS),
            ("AUTHENTICATOR", AUTH_GENERIC_OPTIONS, AUTHS)):
        names += [f"_OPT_{kind}S_{n.upper()}" for n in _visible(generic)]
        for drv in registry.names():
            info = registry.get(drv)
            names.append(f"_DRIVER_{kind}_{drv.upper()}")
            names += [f"_OPT_{kind}_{drv.upper()}_{n.upper()}"
                      for n in _visible(info.options)]
    try:
        from eximpy.log.selector import SELECTOR_NAMES
    except ImportError:
        SELECTOR_NAMES = ()
    names += [f"_LOG_{n.upper()}" for n in SELECTOR_NAMES]
    try:
        from eximpy.lookups import LOOKUPS
        names += [f"_HAVE_LOOKUP_{n.upper()}" for n in LOOKUPS.names()]
    except ImportError:
        pass
    names += [f"_HAVE_{f}" for f in HAVE_FEATURES]
    return names


_CACHE: list[tuple[str, str]] | None = None


def builtin_macros() -> list[Macro]:
    """Fresh Macro objects for every built-in macro, in application order."""
    global _CACHE
    if _CACHE is None:
        _CACHE = [(n, "y") for n in reversed(_creation_order())]
    return [Macro(n, v, builtin=True) for n, v in _CACHE]
