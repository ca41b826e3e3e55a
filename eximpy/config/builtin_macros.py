"""Built-in configuration macros (`_OPT_*`, `_DRIVER_*`, `_HAVE_*`).

SUMMARY
    builtin_macros() lists the macros Exim predefines so that a
    configuration can test with `.ifdef` whether it may set an option or use
    a driver or feature.  They are derived from what eximpy really has: its
    option tables (every option it accepts, implemented or not, since a
    configuration tests them to know whether it may set the option), its
    driver registries, and HAVE_FEATURES.  The list is in Exim's order,
    newest definition first, which is also the order in which they are
    applied to configuration lines.

DESCRIPTION
    Exim creates, in order: feature macros, _OPT_MAIN_* (table order),
    _OPT_ROUTERS_*, then per router driver _DRIVER_ROUTER_X and its
    _OPT_ROUTER_X_*, the same for transports and authenticators; hidden
    synonyms count, internal `*` entries do not.

SEE ALSO
    spec 6.9 "Builtin macros"; `eximpy -bP macros`.
"""
from __future__ import annotations

from typing import Any, Iterable

from eximpy.config.reader import Macro

# Features Exim announces with _HAVE_<name>.  A configuration decides by
# these what it may ask for, so a name goes here only for a feature that is
# part of eximpy's design and whose options eximpy reads: IPv6 sockets, and
# TLS through Python's ssl module, which is OpenSSL.  (While the TLS code is
# being built its options are "known, not implemented" and -bV says so.)
HAVE_FEATURES: tuple[str, ...] = ("IPV6", "TLS", "OPENSSL")

_CACHE: list[tuple[str, str]] | None = None


def builtin_macro_values() -> list[tuple[str, str]]:
    """(name, value) of every built-in macro, newest first."""
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    import eximpy.auths  # noqa: F401  (registers the drivers)
    import eximpy.routers  # noqa: F401
    import eximpy.transports  # noqa: F401
    from eximpy.auths.base import AUTH_GENERIC_OPTIONS
    from eximpy.config.main_options import MAIN_OPTIONS
    from eximpy.drivers.registry import AUTHS, ROUTERS, TRANSPORTS
    from eximpy.routers.base import ROUTER_GENERIC_OPTIONS
    from eximpy.transports.base import TRANSPORT_GENERIC_OPTIONS

    created = [f"_HAVE_{f}" for f in HAVE_FEATURES]

    from eximpy.config.main_options import EXTENSION_NAMES

    def opts(prefix: str, table: Iterable[Any]) -> None:
        created.extend(prefix + spec.name.upper() for spec in table
                       if not spec.name.startswith("*")
                       and spec.name not in EXTENSION_NAMES)

    opts("_OPT_MAIN_", MAIN_OPTIONS)
    for kind, generic, reg in (("ROUTER", ROUTER_GENERIC_OPTIONS, ROUTERS),
                               ("TRANSPORT", TRANSPORT_GENERIC_OPTIONS,
                                TRANSPORTS),
                               ("AUTHENTICATOR", AUTH_GENERIC_OPTIONS, AUTHS)):
        opts(f"_OPT_{kind}S_", generic)
        for info in reg:
            created.append(f"_DRIVER_{kind}_{info.name.upper()}")
            opts(f"_OPT_{kind}_{info.name.upper()}_", info.options)
    _CACHE = [(n, "y") for n in reversed(created)]
    return _CACHE


def builtin_macros() -> list[Macro]:
    """Fresh Macro objects for a new configuration's macro table."""
    return [Macro(n, v, builtin=True) for n, v in builtin_macro_values()]
