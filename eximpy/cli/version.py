"""The -bV text: what this eximpy is, what it supports, which file it reads.

SUMMARY
    version_text(config, search_path, used_file, header_only=None) -> str

DESCRIPTION
    The shape is Exim's -bV (exim.c show_whats_supported()):

        eximpy version 0.1.0 (Exim 4.96 compatible)
        Support for: ...
        Lookups (built-in): ...
        Authenticators: ...
        Routers: ...
        Transports: ...
        Configuration file search path is A:B      (only for a list)
        Configuration file is FILE

    followed by eximpy's own blocks: the drivers and main options eximpy
    knows (accepts in a configuration) but does not implement yet.  Only
    what is really there is listed: a driver appears under Routers: etc.
    only when its class implements the driver's entry point, a lookup only
    when it is registered in LOOKUPS.

    header_only=True gives the part before the configuration is read
    (Exim prints it even when the configuration then fails);
    header_only=False the part after; None both.

SEE ALSO
    spec 5 "-bV"; eximpy.config.main_options.known_not_implemented().
"""
from __future__ import annotations

from typing import Any

EXIM_COMPAT = "4.96"


#: Exim's "Support for:" words for what eximpy really has: crypteq (the
#: expansion condition), IPv6 sockets and lists, ${perl} (a perl helper
#: process), PAM (the pam condition through libpam), OpenSSL (TLS through
#: Python's ssl module), SPF (the spf ACL condition, with pyspf).
SUPPORT_FOR = ("crypteq", "IPv6", "PAM", "Perl", "OpenSSL", "SPF")


def _version() -> str:
    try:
        from eximpy import __version__ as v
        return str(v)
    except ImportError:
        return "0.1.0"


def _implemented(info: Any, base: type, method: str) -> bool:
    cls = info.factory
    return cls is not None and getattr(cls, method, None) is not getattr(
        base, method, None)


def driver_status() -> dict[str, tuple[list[str], list[str]]]:
    """{"Authenticators"|"Routers"|"Transports": (implemented, known only)}."""
    import eximpy.auths  # noqa: F401
    import eximpy.routers  # noqa: F401
    import eximpy.transports  # noqa: F401
    from eximpy.auths.base import Authenticator
    from eximpy.drivers.registry import AUTHS, ROUTERS, TRANSPORTS
    from eximpy.routers.base import Router
    from eximpy.transports.base import Transport
    out: dict[str, tuple[list[str], list[str]]] = {}
    for label, reg, base, method in (
            ("Authenticators", AUTHS, Authenticator, "server"),
            ("Routers", ROUTERS, Router, "route"),
            ("Transports", TRANSPORTS, Transport, "deliver")):
        done = [i.name for i in reg if _implemented(i, base, method)]
        todo = [i.name for i in reg if i.name not in done]
        out[label] = (done, todo)
    return out


def _wrap(prefix: str, words: list[str], width: int = 78) -> list[str]:
    lines: list[str] = []
    cur = prefix
    for w in words:
        if len(cur) + 1 + len(w) > width and cur.strip():
            lines.append(cur)
            cur = "  " + w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return lines


def version_text(config: Any, search_path: str, used_file: str | None,
                 header_only: bool | None = None) -> str:
    """The -bV output (see module doc); every line ends in a newline."""
    lines: list[str] = []
    if header_only is not False:
        import eximpy.lookups  # noqa: F401  (registers the lookup types)
        from eximpy.drivers.registry import LOOKUPS
        status = driver_status()
        lines.append(f"eximpy version {_version()} (Exim {EXIM_COMPAT} "
                     "compatible)")
        lines.append("Support for: " + " ".join(SUPPORT_FOR))
        lines.append("Lookups (built-in):" + "".join(
            f" {n}" for n in LOOKUPS.names()))
        for label in ("Authenticators", "Routers", "Transports"):
            lines.append(f"{label}:" + "".join(f" {n}"
                                               for n in status[label][0]))
    if header_only is not True:
        if ":" in search_path:
            lines.append(f"Configuration file search path is {search_path}")
        if used_file is not None:
            lines.append(f"Configuration file is {used_file}")
        status = driver_status()
        todo = [f"{label.lower()[:-1]}:{n}" for label in
                ("Routers", "Transports", "Authenticators")
                for n in status[label][1]]
        if todo:
            lines.extend(_wrap("Known but not yet implemented drivers:", todo))
        from eximpy.config.main_options import known_not_implemented, \
            set_but_not_implemented
        names = known_not_implemented()
        set_names = []
        if config is not None and getattr(config, "main", None) is not None:
            set_names = set_but_not_implemented(config)
        if set_names:
            lines.extend(_wrap("Set in this configuration but not yet "
                               "implemented:", set_names))
        lines.extend(_wrap("Known but not yet implemented options:", names))
    return "".join(line + "\n" for line in lines)
