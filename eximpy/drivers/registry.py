"""Driver registries: which routers, transports and authenticators exist.

SUMMARY
    ROUTERS, TRANSPORTS, AUTHS, LOOKUPS are Registry objects.  A driver
    module registers itself with a decorator:

        @ROUTERS.register("accept", OPTIONS)
        class AcceptRouter(Router): ...

    and the configuration reader turns `driver = accept` into
    ROUTERS.get("accept") -> DriverInfo (or None: Exim's
    `router r1: cannot find router driver "x"`).

DESCRIPTION
    DriverInfo is Exim's *_info record: the driver's name, its private
    option table, the class that implements it, and the start-up
    adjustments Exim's *_init() makes to generic options (for example the
    accept router turns log_as_local on when it was not set).  Registration
    is explicit: eximpy.routers/__init__.py imports each built-in module by
    name, so no module name taken from a configuration file is ever
    imported, and -bV lists drivers in a fixed order.

    DriverInfo.check(instance) is called by the configuration reader when an
    instance is complete (DriverInstance.finish()); it applies the init
    defaults, then the driver class's own `check_options(instance)` if it
    has one (static/class method raising ConfigError).

SEE ALSO
    spec chapters 15 (generic router options), 24 (generic transport
    options), 33 (SMTP authentication); Exim drtables.c.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, TypeVar

from eximpy.config.options import OptionTable

T = TypeVar("T")


@dataclass(frozen=True)
class DriverInfo:
    """One driver: its `driver =` name, private options and implementation.

    ``init_defaults``: options (generic or private) whose default this
    driver's init changes (applied when the instance is complete, if the
    option was not set); a value may be a callable(instance) -> value.
    ``local``: for transports, a local (not remote SMTP) transport.
    """

    name: str
    options: OptionTable
    factory: type | None = None
    kind: str = ""
    init_defaults: Mapping[str, Any] = field(default_factory=dict)
    local: bool = True

    def check(self, instance: Any) -> None:
        """Finish an instance as Exim's init function does; may raise ConfigError."""
        generic = getattr(instance, "generic", None)
        private = getattr(instance, "private", None)
        for name, value in self.init_defaults.items():
            store = generic if generic is not None and \
                generic.table.get(name) is not None else private
            if store is not None and not store.is_set(name):
                store.set_default(
                    name, value(instance) if callable(value) else value)
        checker = getattr(self.factory, "check_options", None)
        if checker is not None:
            checker(instance)


class Registry:
    """The drivers of one kind ("router", "transport", "authenticator", "lookup")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_name: dict[str, DriverInfo] = {}

    def register(self, name: str, options: OptionTable, *,
                 init_defaults: Mapping[str, Any] | None = None,
                 local: bool = True) -> Callable[[type[T]], type[T]]:
        """Class decorator adding a driver; a duplicate name is a bug."""
        def deco(cls: type[T]) -> type[T]:
            if name in self._by_name:
                raise RuntimeError(f"{self.kind} driver {name!r} registered twice")
            self._by_name[name] = DriverInfo(name, options, cls, self.kind,
                                             dict(init_defaults or {}), local)
            return cls
        return deco

    def add(self, info: DriverInfo) -> None:
        """Register a DriverInfo built elsewhere (lookups, tests)."""
        if info.name in self._by_name:
            raise RuntimeError(f"{self.kind} driver {info.name!r} registered twice")
        self._by_name[info.name] = info

    def get(self, name: str) -> DriverInfo | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted (the order -bV and the macros use)."""
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[DriverInfo]:
        return iter(self._by_name[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name


ROUTERS = Registry("router")
TRANSPORTS = Registry("transport")
AUTHS = Registry("authenticator")
LOOKUPS = Registry("lookup")
