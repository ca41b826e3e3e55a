"""Configuration sections: main options, named lists, drivers, ACLs, rules.

SUMMARY
    parse(reader, config) reads every section of a configuration through a
    ConfigReader and fills a Config, with Exim's order of checks and its
    error texts (readconf_main(), read_named_list(), readconf_driver_init(),
    readconf_acl(), readconf_retries(), readconf_rewrites(), readconf_rest()).

DESCRIPTION
    Options are bound as each logical line is read, so that the first error
    in the file is the one reported, as in Exim.  Driver instances take
    generic options at any point and private options only after `driver =`.

SEE ALSO
    spec chapter 6; 10.5 "Named lists"; 44 ACLs; 31 rewriting; 32 retry.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from eximpy.acl.parse import AclSyntaxError, read_acl
from eximpy.config.driver_checks import check_routers
from eximpy.config.model import AclDefinition, DriverInstance, NamedList
from eximpy.config.reader import ConfigReader, LogicalLine
from eximpy.config.rules import parse_retry_rule, parse_rewrite_rule
from eximpy.config.options import read_string, readname
from eximpy.errors import ConfigError, SourcePos

if TYPE_CHECKING:
    from eximpy.config.model import Config

# Section names as Exim matches them, after adding a plural "s".
_SECTIONS = ("acls", "authenticators", "local_scans", "retrys", "rewrites",
             "routers", "transports")
_NAMED_LIST_KINDS = (("domainlist", "domain", "domain list"),
                     ("hostlist", "host", "host list"),
                     ("addresslist", "address", "address list"),
                     ("localpartlist", "localpart", "local part list"))
# Exim's MAX_NAMED_LIST
_MAX_NAMED_LIST = 16


def _isupper(c: str) -> bool:
    return "A" <= c <= "Z"


def option_name(text: str) -> str:
    """The option name of an option line, without `hide` or no_/not_."""
    i = 0
    while i < len(text) and text[i].isspace():
        i += 1
    name = ""
    for _ in range(2):
        j = i
        while j < len(text) and text[j].isascii() and (
                text[j].isalnum() or text[j] == "_"):
            j += 1
        name = text[i:j]
        while j < len(text) and text[j].isspace():
            j += 1
        i = j
        if name != "hide":
            break
    return name


def _bare_name(name: str) -> str:
    if name.startswith("not_"):
        return name[4:]
    if name.startswith("no_"):
        return name[3:]
    return name


def parse(reader: ConfigReader, config: "Config",
          after_main: Callable[["Config"], None] | None = None) -> None:
    """Read the whole configuration into ``config``.

    ``after_main`` runs when the main section is complete, before any other
    section is read (where Exim makes its main-option consistency checks).
    """
    _read_main(reader, config)
    if after_main is not None:
        after_main(config)
    had: set[str] = set()
    while reader.next_section:
        raw = reader.next_section
        name = raw if raw[-1:].lower() == "s" else raw + "s"
        if name.lower() not in _SECTIONS:
            raise ConfigError(
                f'"{raw}" is not a known configuration section name',
                reader.pos)
        key = name.lower()
        if key in had:
            raise ConfigError(
                f'"{raw}" section is repeated in the configuration file',
                reader.pos)
        had.add(key)
        if key == "acls":
            _read_acls(reader, config)
        elif key == "authenticators":
            _read_drivers(reader, config, "authenticator")
        elif key == "routers":
            _read_drivers(reader, config, "router")
            check_routers(config)
        elif key == "transports":
            _read_drivers(reader, config, "transport")
        elif key == "retrys":
            for line in reader.section_lines():
                config.retry_rules.append(parse_retry_rule(line.text, line.pos))
        elif key == "rewrites":
            for line in reader.section_lines():
                config.rewrite_rules.append(
                    parse_rewrite_rule(line.text, line.pos, True))
        else:  # local_scans
            raise ConfigError(
                "local_scan() options not supported: (LOCAL_SCAN_HAS_OPTIONS "
                "not defined in Local/Makefile)", reader.pos)


def _read_main(reader: ConfigReader, config: "Config") -> None:
    for line in reader.section_lines():
        s = line.text
        if _isupper(s[0]):
            reader.macros.read_assignment(s, line.pos)
            continue
        for keyword, kind, tname in _NAMED_LIST_KINDS:
            if s.startswith(keyword):
                _read_named_list(config, s[len(keyword):], kind, tname,
                                 line.pos)
                break
        else:
            config.main.set_from_line(s, line.pos)


def _read_named_list(config: "Config", s: str, kind: str, tname: str,
                     pos: SourcePos) -> None:
    forcecache = False
    if s.startswith("_cache"):
        forcecache = True
        s = s[6:]
    if not s[:1].isspace():
        raise ConfigError("unrecognized configuration line", pos)
    lists = config.named_lists[kind]
    if len(lists) >= _MAX_NAMED_LIST:
        raise ConfigError(
            f"too many named {tname}s (max is {_MAX_NAMED_LIST})\n", pos)
    s = s.lstrip()
    i = 0
    while i < len(s) and s[i].isascii() and (s[i].isalnum() or s[i] == "_"):
        i += 1
    name = s[:i]
    s = s[i:].lstrip()
    if name in lists:
        raise ConfigError(f'duplicate name "{name}" for a named {tname}', pos)
    if not s.startswith("="):
        raise ConfigError(f'missing \'=\' after "{name}"', pos)
    value = read_string(s[1:].lstrip(), name, pos)
    cacheable = forcecache or "$" not in value
    lists[name] = NamedList(kind, name, value, pos, cacheable)


def _finish_driver(d: DriverInstance | None, kind: str) -> None:
    if d is not None and d.driver is None:
        raise ConfigError(f'no driver defined for {kind} "{d.name}"', None)
    if d is not None:
        d.finish()


def _read_drivers(reader: ConfigReader, config: "Config", kind: str) -> None:
    instances: list[DriverInstance] = config.drivers_of(kind)
    d: DriverInstance | None = None
    for line in reader.section_lines():
        buf = line.text
        name, i = readname(buf)
        rest = buf[i:i + 1]
        if _isupper(name[:1]) and rest == "=":
            _finish_driver(d, kind)
            d = None
            reader.macros.read_assignment(buf, line.pos)
            continue
        if rest == ":":
            _finish_driver(d, kind)
            if any(x.name == name for x in instances):
                raise ConfigError(
                    f'there are two {kind}s called "{name}"', None)
            d = DriverInstance.new(kind, name, line.pos)
            instances.append(d)
            extra = buf[i + 1:].lstrip()
            if extra:
                comment = " (# is comment only at line start)" if \
                    extra.startswith("#") else ""
                raise ConfigError(
                    f"extra characters follow driver name {name}{comment}",
                    line.pos)
            continue
        if d is None:
            raise ConfigError(f"{kind} name missing", line.pos)
        d.set_option_line(buf, line.pos)
    _finish_driver(d, kind)


def _read_acls(reader: ConfigReader, config: "Config") -> None:
    pending: LogicalLine | None = reader.next_logical()

    def next_line() -> tuple[str, int] | None:
        nonlocal pending
        pending = reader.next_logical()
        if pending is None:
            return None
        return pending.text, pending.pos.lineno

    while pending is not None:
        line = pending
        name, i = readname(line.text)
        rest = line.text[i:i + 1]
        if _isupper(name[:1]) and rest == "=":
            reader.macros.read_assignment(line.text, line.pos)
            pending = reader.next_logical()
            continue
        if rest != ":" or not name:
            raise ConfigError("missing or malformed ACL name", line.pos)
        if name in config.acls:
            raise ConfigError(f'there are two ACLs called "{name}"', line.pos)
        try:
            statements, _end = read_acl(next_line)
        except AclSyntaxError as e:
            raise ConfigError(f"error in ACL: {e}", reader.pos) from None
        config.acls[name] = AclDefinition(name, line.pos, statements)
