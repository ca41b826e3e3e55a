"""The configuration as a value: Config and the objects it holds.

SUMMARY
    Config holds what a configuration file defines: main option values,
    named lists, router/transport/authenticator instances, ACLs, retry and
    rewrite rules, and the macros.  It is built by eximpy.config.load_config
    and is read-only afterwards.

SEE ALSO
    eximpy.config.parser (how it is filled), eximpy.config.options (values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eximpy.config.reader import MacroTable
from eximpy.config.rules import RetryConfig, RewriteRule
from eximpy.errors import ConfigError, SourcePos

if TYPE_CHECKING:       # acl.parse imports config.options: no cycle at run time
    from eximpy.acl.parse import AclStatement

DRIVER_KINDS = ("router", "transport", "authenticator")


@dataclass
class NamedList:
    """A `domainlist`/`hostlist`/`addresslist`/`localpartlist` definition."""

    kind: str            # "domain", "host", "address" or "localpart"
    name: str
    value: str           # unexpanded list text
    pos: SourcePos
    cacheable: bool      # False when it contains "$" and is not *_cache


@dataclass
class AclDefinition:
    """A named ACL from `begin acl`."""

    name: str
    pos: SourcePos
    statements: list["AclStatement"]


def _tables(kind: str) -> tuple[Any, Any]:
    """The generic option table and the driver registry for a kind."""
    if kind == "router":
        from eximpy.routers import ROUTERS
        from eximpy.routers.base import ROUTER_GENERIC_OPTIONS
        return ROUTER_GENERIC_OPTIONS, ROUTERS
    if kind == "transport":
        from eximpy.transports import TRANSPORTS
        from eximpy.transports.base import TRANSPORT_GENERIC_OPTIONS
        return TRANSPORT_GENERIC_OPTIONS, TRANSPORTS
    from eximpy.auths import AUTHS
    from eximpy.auths.base import AUTH_GENERIC_OPTIONS
    return AUTH_GENERIC_OPTIONS, AUTHS


@dataclass
class DriverInstance:
    """One router, transport or authenticator instance (`name:` block).

    ``generic`` holds the options common to the kind, ``private`` those of
    the driver named by `driver =` (None until that line is read).
    """

    kind: str
    name: str
    pos: SourcePos
    generic: Any
    private: Any = None
    info: Any = None

    @classmethod
    def new(cls, kind: str, name: str, pos: SourcePos) -> "DriverInstance":
        from eximpy.config.options import OptionStore
        table, _registry = _tables(kind)
        return cls(kind, name, pos, OptionStore(table, kind))

    @property
    def driver(self) -> str | None:
        return self.generic.get("driver")

    def get(self, name: str) -> Any:
        """An option's value, private options first."""
        if self.private is not None and self.private.table.get(name):
            return self.private.get(name)
        return self.generic.get(name)

    def set_option_line(self, text: str, pos: SourcePos) -> None:
        """Bind one option line, as Exim's readconf_driver_init() does."""
        from eximpy.config.options import OptionStore
        from eximpy.config.parser import option_name
        stripped = text.lstrip()
        if not (stripped[:1].isascii() and stripped[:1].isalpha()):
            raise ConfigError(f"option setting expected: {stripped}", pos)
        name = option_name(text)
        bare = name[4:] if name.startswith("not_") else (
            name[3:] if name.startswith("no_") else name)
        table, registry = _tables(self.kind)
        if table.get(bare) is not None:
            self.generic.set_from_line(text, pos)
            if self.info is None and self.driver is not None:
                info = registry.get(self.driver)
                if info is None:
                    raise ConfigError(
                        f'{self.kind} {self.name}: cannot find {self.kind} '
                        f'driver "{self.driver}"', pos)
                self.info = info
                self.private = OptionStore(info.options, self.kind)
            return
        if self.private is not None:
            if self.private.table.get(bare) is None:
                raise ConfigError(f'option "{name}" unknown', pos)
            self.private.set_from_line(text, pos)
            return
        raise ConfigError(
            f'option "{name}" unknown ("driver" must be specified before any '
            'private options)', pos)

    def finish(self) -> None:
        """Checks made when the instance is complete (Exim's *_init())."""
        from eximpy.config.driver_checks import check_instance
        check = getattr(self.info, "check", None)
        if check is not None:
            check(self)
        check_instance(self)


@dataclass
class Config:
    """A loaded configuration."""

    filename: str
    main: Any
    macros: MacroTable
    named_lists: dict[str, dict[str, NamedList]] = field(
        default_factory=lambda: {"domain": {}, "host": {}, "address": {},
                                 "localpart": {}})
    routers: list[DriverInstance] = field(default_factory=list)
    transports: list[DriverInstance] = field(default_factory=list)
    authenticators: list[DriverInstance] = field(default_factory=list)
    acls: dict[str, AclDefinition] = field(default_factory=dict)
    retry_rules: list[RetryConfig] = field(default_factory=list)
    rewrite_rules: list[RewriteRule] = field(default_factory=list)
    config_lines: list[str] = field(default_factory=list)
    initial_cwd: str = ""       # where the process started ($initial_cwd)
    warnings: list[str] = field(default_factory=list)

    def drivers_of(self, kind: str) -> list[DriverInstance]:
        return {"router": self.routers, "transport": self.transports,
                "authenticator": self.authenticators}[kind]

    def router(self, name: str) -> DriverInstance | None:
        return next((d for d in self.routers if d.name == name), None)

    def transport(self, name: str) -> DriverInstance | None:
        return next((d for d in self.transports if d.name == name), None)
