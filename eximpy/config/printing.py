"""The -bP printer: configuration values as `exim -bP` shows them.

SUMMARY
    print_args(config, args, out, no_labels=False, admin=True) -> bool
        Exim's -bP argument loop: "router NAME", "transport NAME",
        "authenticator NAME", "macro NAME", "environment X" take the next
        argument; anything else is one item; no arguments means "all".
        Returns False when an item failed (exit status 1, as Exim).
    print_main_all(config, out, no_labels=False, admin=True)
    print_main_option(config, name, out, no_labels=False, admin=True) -> bool
        One item: an option name, "all", "config_file"/"configure_file",
        "+listname", "config", "local_scan", "routers", "transports",
        "authenticators", "macros", "router_list", "transport_list",
        "authenticator_list", "macro_list", "environment".
    print_drivers(config, kind, out, name=None, names_only=False,
                  no_labels=False, admin=True) -> bool
    print_macros(config, out, name=None, names_only=False) -> bool
    print_config(config, out, admin=True, terse=False)
    builtin_macros() -> list[tuple[str, str]]
        The built-in macros eximpy defines (_OPT_*, _DRIVER_*), in the order
        `exim -bP macros` prints them; the reader defines them.

DESCRIPTION
    Formatting follows Exim 4.96 readconf_print()/print_ol(): a blank line
    and "NAME router:" before each driver when all are listed, generic
    options then private ones, hidden table entries skipped, "hide"
    values shown as "<value not displayable>" to non-admin callers only.

    The Config object is the one eximpy.config.load_config() returns; this
    module reads config.main (OptionStore), config.named_lists,
    config.routers/.transports/.authenticators (instances with .name,
    .generic and .private OptionStores), config.macros, config.filename
    and config.config_lines (the logical lines as read, for -bP config).

SECURITY
    Non-admin callers never see hidden values or macro values (Exim keeps
    passwords there); callers pass admin=True only for root, the exim user
    and members of admin_groups.

SEE ALSO
    spec 5.x "-bP" (command line), 6.x "hide"; Exim readconf.c
    readconf_print(), print_config().
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, TextIO

from eximpy.config.options import HIDDEN_TEXT, OptionStore

_LIST_KINDS = (("address", "address"), ("domain", "domain"), ("host", "host"),
               ("localpart", "localpart"))

_PLURAL = {"routers": "router", "transports": "transport",
           "authenticators": "authenticator"}
_LISTS = {"router_list": "router", "transport_list": "transport",
          "authenticator_list": "authenticator"}


def _drivers(config: Any, kind: str) -> list[Any]:
    return list({"router": config.routers, "transport": config.transports,
                 "authenticator": config.authenticators}[kind])


def print_args(config: Any, args: list[str], out: TextIO,
               no_labels: bool = False, admin: bool = True) -> bool:
    """Exim's -bP loop over its arguments; False if any item failed."""
    if not args:
        return print_main_option(config, "all", out, no_labels, admin)
    ok = True
    i = 0
    while i < len(args):
        a = args[i]
        if i < len(args) - 1 and a in ("router", "transport", "authenticator",
                                       "macro", "environment"):
            if a == "macro":
                ok &= print_macros(config, out, name=args[i + 1], admin=admin)
            elif a == "environment":
                ok &= print_main_option(config, "environment", out,
                                        no_labels, admin)
            else:
                ok &= print_drivers(config, a, out, name=args[i + 1],
                                    no_labels=no_labels, admin=admin)
            i += 2
            continue
        ok &= print_main_option(config, a, out, no_labels, admin)
        i += 1
    return bool(ok)


def print_item(config: Any, name: str, kind: str | None, no_labels: bool,
               out: TextIO, admin: bool = True) -> bool:
    """Exim's readconf_print(name, type, no_labels): one -bP item.

    ``kind`` None: ``name`` is an option or special word; else ``kind`` is
    "router", "transport", "authenticator", "macro" or "environment" and
    ``name`` the instance/macro name.
    """
    if kind is None:
        return print_main_option(config, name, out, no_labels, admin)
    if kind == "macro":
        return print_macros(config, out, name=name, admin=admin)
    if kind == "environment":
        return print_main_option(config, "environment", out, no_labels, admin)
    return print_drivers(config, kind, out, name=name, no_labels=no_labels,
                         admin=admin)


def print_main_all(config: Any, out: TextIO, no_labels: bool = False,
                   admin: bool = True) -> None:
    """Every main option that is not hidden, in table order."""
    store: OptionStore = config.main
    for spec in store.table:
        if not spec.hidden:
            out.write(store.format(spec.name, no_labels, admin) + "\n")


def print_main_option(config: Any, name: str, out: TextIO,
                      no_labels: bool = False, admin: bool = True) -> bool:
    """One -bP item (see module doc); False when Exim would fail."""
    if name.startswith("+"):
        return _print_named_list(config, name[1:], out, no_labels)
    if name in ("configure_file", "config_file"):
        out.write(f"{config.filename}\n")
        return True
    if name == "all":
        print_main_all(config, out, no_labels, admin)
        return True
    if name == "local_scan":
        out.write("local_scan() options are not supported\n")
        return True
    if name == "config":
        print_config(config, out, admin, no_labels)
        return True
    if name in _PLURAL:
        return print_drivers(config, _PLURAL[name], out, no_labels=no_labels,
                             admin=admin)
    if name in _LISTS:
        return print_drivers(config, _LISTS[name], out, names_only=True)
    if name == "macros":
        return print_macros(config, out, admin=admin)
    if name == "macro_list":
        return print_macros(config, out, names_only=True, admin=admin)
    if name == "environment":
        _print_environment(config, out, no_labels)
        return True
    store: OptionStore = config.main
    line = store.format(name, no_labels, admin)
    out.write(line + "\n")
    return store.table.get(name) is not None


def _print_named_list(config: Any, name: str, out: TextIO,
                      no_labels: bool) -> bool:
    found = False
    lists: Mapping[str, Mapping[str, Any]] = config.named_lists
    for kind, label in _LIST_KINDS:
        nl = lists.get(kind, {}).get(name)
        if nl is not None:
            found = True
            if no_labels:
                out.write(f"{nl.value}\n")
            else:
                out.write(f"{label}list {name} = {nl.value}\n")
    if not found:
        out.write(f'no address, domain, host, or local part list called '
                  f'"{name}" exists\n')
    return found


def _instance_lines(inst: Any, no_labels: bool, admin: bool) -> Iterable[str]:
    for store in (inst.generic, getattr(inst, "private", None)):
        if store is None:
            continue
        for spec in store.table:
            if not spec.hidden:
                yield store.format(spec.name, no_labels, admin)


def print_drivers(config: Any, kind: str, out: TextIO, name: str | None = None,
                  names_only: bool = False, no_labels: bool = False,
                  admin: bool = True) -> bool:
    """Driver instances of one kind, as -bP routers / router NAME / router_list."""
    instances = _drivers(config, kind)
    if names_only:
        for inst in instances:
            out.write(f"{inst.name}\n")
        return True
    for inst in instances:
        if name is None:
            out.write(f"\n{inst.name} {kind}:\n")
        elif inst.name != name:
            continue
        for line in _instance_lines(inst, no_labels, admin):
            out.write(line + "\n")
        if name is not None:
            return True
    if name is not None:
        out.write(f"{kind} {name} not found\n")
        return False
    return True


def _macro_items(config: Any) -> list[tuple[str, str]]:
    macros = config.macros
    if hasattr(macros, "all"):
        return [(m.name, m.replacement if hasattr(m, "replacement") else m.value)
                for m in macros.all()]
    if isinstance(macros, Mapping):
        return list(macros.items())
    return [(m.name, m.value) for m in macros]


def print_macros(config: Any, out: TextIO, name: str | None = None,
                 names_only: bool = False, admin: bool = True) -> bool:
    """-bP macros / macro_list / macro NAME (admin only, as in Exim)."""
    if not admin:
        raise PermissionError("exim: permission denied")
    for mname, value in _macro_items(config):
        if name is None or name == mname:
            out.write(f"{mname}\n" if names_only else f"{mname}={value}\n")
            if name is not None:
                return True
    if name is not None:
        out.write(f"macro {name} not found\n")
        return False
    return True


def _print_environment(config: Any, out: TextIO, no_labels: bool,
                       environ: Mapping[str, str] | None = None) -> None:
    env = getattr(config, "environment", None)
    if env is None:
        env = environment_for(config, environ)
    # Exim sorts the "NAME=value" strings themselves (strcmp order).
    for k in sorted(env, key=lambda k: f"{k}={env[k]}".encode(
            "utf-8", "surrogateescape")):
        out.write(f"{k}\n" if no_labels else f"{k}={env[k]}\n")


def print_config(config: Any, out: TextIO, admin: bool = True,
                 terse: bool = False) -> None:
    """-bP config: the logical lines as read, re-indented (print_config())."""
    ts = 0 if terse else 2
    indent = 0
    lines = list(getattr(config, "config_lines", []))
    if not lines or not str(lines[0]).startswith("# Exim Configuration"):
        lines.insert(0, "# Exim Configuration (4.96)")
    for raw in lines:
        current = raw.lstrip(" \t\n\r\f\v")
        if not current:
            continue
        current = _collapse_spaces(current)
        if current.startswith("#"):
            out.write(current + "\n")
        elif current.startswith("begin") and len(current) > 5 and \
                current[5] in " \t\n\r\f\v":
            if not terse:
                out.write("\n")
            out.write(current + "\n")
            indent = ts
        elif current.endswith(":") and "=" not in current:
            if not terse:
                out.write("\n")
            out.write(" " * ts + current + "\n")
            indent = 2 * ts
        elif not admin and ("A" <= current[0] <= "Z" or (
                current.startswith("hide") and len(current) > 4
                and current[4] in " \t\n\r\f\v")):
            eq = current.find("=")
            if eq >= 0:
                out.write(" " * indent + current[:eq] + "= " + HIDDEN_TEXT + "\n")
            else:
                out.write(" " * indent + HIDDEN_TEXT + "\n")
        else:
            out.write(" " * indent + current + "\n")


def _collapse_spaces(s: str) -> str:
    """print_config()'s collapsing of white-space runs, as 4.96 does it.

    Each run becomes one space; the scan stops when the character found at
    the run's old end (looked at after the text has been moved down, as
    Exim's loop does) is a quote or "$".
    """
    buf = list(s)
    p = 0
    while p < len(buf):
        if buf[p] not in " \t\n\r\f\v":
            p += 1
            continue
        buf[p] = " "
        nxt = p
        while nxt < len(buf) and buf[nxt] in " \t\n\r\f\v":
            nxt += 1
        if nxt - p > 1:
            del buf[p + 1:nxt]
        if nxt < len(buf) and buf[nxt] in "\"'$":
            break
        p += 1
    return "".join(buf)


def builtin_macros() -> list[tuple[str, str]]:
    """Built-in macros, in `exim -bP macros` order (newest definition first)."""
    from eximpy.config.builtin_macros import builtin_macro_values
    return builtin_macro_values()


def environment_for(config: Any, environ: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """The environment Exim keeps: keep_environment names, plus add_environment.

    Exim empties its environment at start except for the names (or
    ^regex / wildcard items) in keep_environment, then adds the
    NAME=value items of add_environment.
    """
    import fnmatch
    import re
    from eximpy.config.options import list_items
    env = dict(os.environ if environ is None else environ)
    keep = config.main.get("keep_environment")
    kept: dict[str, str] = {}
    if keep:
        for item in list_items(keep):
            for k, v in env.items():
                if (item.startswith("^") and re.search(item, k)) or \
                        fnmatch.fnmatchcase(k, item):
                    kept[k] = v
    tz = config.main.get("timezone")
    if tz:
        kept["TZ"] = tz       # Exim exports its timezone setting
    add = config.main.get("add_environment")
    if add:
        for item in list_items(add):
            if "=" in item:
                k, v = item.split("=", 1)
                kept[k] = v
    return kept
