#!/usr/bin/env python3
"""Generate eximpy's option tables from the installed Exim 4.96.

SUMMARY
    tools/gen_option_tables.py [--write]

DESCRIPTION
    Exim's option tables are facts about Exim 4.96 (names, types, defaults),
    so they are read off the real binary rather than typed in:

    * names: `exim -bP macros` lists _OPT_MAIN_*, _OPT_ROUTERS_*,
      _OPT_ROUTER_<driver>_* ... for every option of this build, including
      hidden synonyms;
    * order and defaults: `exim -bP`, `-bP router NAME` ... on minimal
      configurations (one instance of each driver);
    * types: by probing.  Each option is set to a few test values
      ("0x10", "2048", "$x", "1h:2h", "root:root") and the answer (the
      value printed back, or the error message) tells the type: an int
      prints 16, a string prints 0x10, a time says "invalid time value", a
      uid says "user 0x10 was not found", and so on;
    * expanded: the "Type: string*" marks in the manual (spec.txt.gz).

    The result is written, as readable Python data, between the markers
    "# BEGIN GENERATED OPTIONS" and "# END GENERATED OPTIONS" in
    eximpy/config/main_options.py and the driver modules.  Without --write
    it prints a summary and the options it could not classify.  Values that
    depend on the build or the machine (primary_hostname, exim_user, paths)
    are emitted as Computed(...) markers; see main_options.py.

    Run it only as root on a machine with exim4-daemon-heavy installed.  It
    never starts a daemon: only `exim -C file -bP ...`.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eximpy.config.options import (OptionSpec, OptType,  # noqa: E402
                                   parse_default)

EXIM = "/usr/sbin/exim"
CACHE = Path(tempfile.gettempdir()) / "eximpy-optprobe-cache.json"
SCRATCH = Path(tempfile.gettempdir()) / "eximpy-gen-scratch"

BASE_MAIN = (f"spool_directory = {SCRATCH}/spool\n"
             f"log_file_path = {SCRATCH}/log/%slog\n")

ROUTERS = ["accept", "dnslookup", "ipliteral", "iplookup", "manualroute",
           "queryprogram", "redirect"]
TRANSPORTS = ["appendfile", "autoreply", "lmtp", "pipe", "smtp"]
AUTHS = ["cram_md5", "cyrus_sasl", "dovecot", "external", "plaintext", "spa",
         "tls"]

# Options a driver instance needs before Exim accepts it at all.
REQUIRED = {
    "accept": {"transport": "t_smtp"},
    "dnslookup": {"transport": "t_smtp"},
    "ipliteral": {"transport": "t_smtp"},
    "manualroute": {"transport": "t_smtp", "route_list": "* localhost"},
    "iplookup": {"port": "1234", "hosts": "localhost", "query": "$local_part"},
    "queryprogram": {"command": "/bin/true", "command_user": "nobody"},
    "redirect": {"data": "foo"},
    "appendfile": {"file": "/tmp/x"},
    "lmtp": {"command": "/bin/true"},
    "cram_md5": {"public_name": "Xcram_md5"},
    "cyrus_sasl": {"public_name": "PLAIN"},
    "dovecot": {"public_name": "Xdovecot"},
    "external": {"public_name": "Xexternal"},
    "plaintext": {"public_name": "Xplaintext"},
    "spa": {"public_name": "Xspa"},
    "tls": {"public_name": "Xtls"},
}

# Main options whose default depends on the machine or on how Exim was
# built; main_options.compute_default() works them out for eximpy.
COMPUTED_MAIN = {
    "exim_group", "exim_path", "exim_user", "log_file_path", "pid_file_path",
    "primary_hostname", "process_log_path", "qualify_domain",
    "qualify_recipient", "spool_directory",
}

# Types the probes cannot see (the value is checked after reading, so every
# probe value is refused).  From the manual and Exim's readconf.c.
TYPE_OVERRIDES = {
    ("main", "tls_dh_max_bits"): OptType.INT,
}

# Hidden entries: synonyms that share another option's storage.
ALIASES = {
    ("main", "daemon_smtp_port"): "daemon_smtp_ports",
    ("main", "return_size_limit"): "bounce_return_size_limit",
    # not hidden: -bP shows both names (found by setting each string option
    # of each driver and looking for the value elsewhere in the output)
    ("authenticator:tls", "server_param"): "server_param1",
}

_cache: dict[str, list] = {}


def run_exim(conf: str, args: list[str]) -> tuple[int, str, str]:
    key = json.dumps([conf, args])
    if key in _cache:
        return tuple(_cache[key])  # type: ignore[return-value]
    path = SCRATCH / "probe.conf"
    path.write_text(conf)
    p = subprocess.run([EXIM, "-C", str(path)] + args, capture_output=True,
                       text=True, errors="surrogateescape")
    err = ""
    m = re.search(r"Exim configuration error[^\n]*\n\s+([^\n]*)", p.stderr)
    if m:
        err = m.group(1)
    elif p.returncode:
        err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "?"
    res = (p.returncode, p.stdout, err)
    _cache[key] = list(res)
    return res


def driver_conf(kind: str, drv: str, extra: dict[str, str] | None = None,
                order: list[str] | None = None) -> tuple[str, str]:
    """A config with one instance of drv, and the -bP args to print it."""
    opts = dict(REQUIRED.get(drv, {}))
    opts.update(extra or {})
    body = "".join(f"  {k} = {v}\n" for k, v in opts.items())
    inst = f"x_{drv}"
    section = {"router": "routers", "transport": "transports",
               "authenticator": "authenticators"}[kind]
    conf = BASE_MAIN + f"begin {section}\n{inst}:\n  driver = {drv}\n{body}"
    if kind == "router":
        conf += "begin transports\nt_smtp:\n  driver = smtp\n"
    return conf, ["-bP", kind, inst]


def macros() -> list[str]:
    _, out, _ = run_exim(BASE_MAIN, ["-bP", "macro_list"])
    return out.split()


def printed_lines(conf: str, args: list[str]) -> list[str]:
    rc, out, err = run_exim(conf, args)
    if rc:
        raise SystemExit(f"exim failed: {err}\n{conf}")
    return [ln for ln in out.split("\n") if ln != ""]


def line_for(lines: list[str], name: str) -> str | None:
    for ln in lines:
        if ln == name or ln == "no_" + name or ln.startswith(name + " =") \
                or (ln == name + " ="):
            return ln
    return None


def probe(kind: str, drv: str | None, name: str, value: str) -> tuple[str, str]:
    """Set name = value; return ("ok", printed line) or ("err", message)."""
    if kind == "main":
        conf = BASE_MAIN.replace(f"{name} = ", "#")  # never duplicates
        conf = conf + f"{name} = {value}\n"
        rc, out, err = run_exim(conf, ["-bP", name])
        if rc:
            return "err", err
        return "ok", out.rstrip("\n")
    conf, args = driver_conf(kind, drv or "", {name: value})
    rc, out, err = run_exim(conf, args)
    if rc:
        return "err", err
    ln = line_for(out.split("\n"), name)
    return "ok", ln or ""


def classify(kind: str, drv: str | None, name: str, default_line: str | None
             ) -> tuple[OptType | None, str]:
    """Work out an option's type from probes.  Returns (type, note)."""
    if default_line is not None and (default_line == name
                                     or default_line == "no_" + name):
        st, got = probe(kind, drv, name, "$x")
        if st == "ok" and got.endswith("= $x"):
            return OptType.EXPAND_BOOL, ""
        return OptType.BOOL, ""
    st, got = probe(kind, drv, name, "0x10")
    if st == "ok":
        val = got.split("=", 1)[1].strip() if "=" in got else got
        if val == "16":
            st2, got2 = probe(kind, drv, name, "2048")
            return (OptType.MKINT if got2.endswith("2K") else OptType.INT), ""
        if val == "16K":
            return OptType.KINT, ""
        if val == "0x10":
            st3, got3 = probe(kind, drv, name, "1h:2h")
            return OptType.STRING, ""
        return None, f"0x10 printed {got!r}"
    if "octal integer value" in got:
        return OptType.OCTINT, ""
    if "fixed-point value" in got:
        return OptType.FIXED, ""
    if "invalid time value" in got:
        st2, got2 = probe(kind, drv, name, "1h:2h")
        if st2 == "ok":
            return OptType.TIMELIST, ""
        st3, got3 = probe(kind, drv, name, "$x")
        if st3 == "ok":
            return OptType.TIME_OR_EXPAND, ""
        return OptType.TIME, ""
    for word, single, expand, lst in (
            ("user", OptType.UID, OptType.EXPAND_UID, OptType.UIDLIST),
            ("group", OptType.GID, OptType.EXPAND_GID, OptType.GIDLIST)):
        if got.startswith(f"{word} 0x10 was not found"):
            st2, got2 = probe(kind, drv, name, "root:root")
            if st2 == "ok":
                return lst, ""
            st3, got3 = probe(kind, drv, name, "$x")
            if st3 == "ok":
                return expand, ""
            return single, ""
    if got.startswith('"" is not a valid value for the'):
        return OptType.BOOL, ""
    if "missing rewrite replacement" in got:
        return OptType.REWRITE, ""
    # Some string options are checked after reading; try a plain word.
    return None, f"0x10 -> {got!r}"


def spec_expanded() -> dict[str, set[str]]:
    """Option names per "Use:" marked string* / list* in the manual."""
    text = gzip.open("/usr/share/doc/exim4-base/spec.txt.gz", "rt",
                     errors="replace").read()
    out: dict[str, set[str]] = {}
    rows = re.findall(r"^\|([a-z0-9_]+)\s*\|Use: ([^|]*)\|Type: ([^|]*)\|", text,
                      re.M)
    for name, use, typ in rows:
        if "*" in typ:
            out.setdefault(name, set()).add(use.strip())
    # The two options whose table rows wrap over two lines.
    out.setdefault("spf_smtp_comment_template", set()).add("main")
    return out


def manual_expanded(name: str, where: str, exp: dict[str, set[str]]) -> bool:
    uses = exp.get(name, set())
    return bool(uses) and (where in uses or any(where in u for u in uses)
                           or len(uses) == 1)


def build_section(kind: str, drv: str | None, names: list[str],
                  exp: dict[str, set[str]], where: str,
                  generic: set[str] | None = None) -> tuple[list[OptionSpec], list[str]]:
    if kind == "main":
        lines = printed_lines(BASE_MAIN, ["-bP"])
    else:
        conf, args = driver_conf(kind, drv or "")
        lines = printed_lines(conf, args)
        # The required options show their test values; print them unset
        # where Exim allows it, else keep the generic default.
    specs: list[OptionSpec] = []
    problems: list[str] = []
    printed_names = set()
    for ln in lines:
        nm = ln.split(" =")[0]
        printed_names.add(nm[3:] if nm.startswith("no_") and nm[3:] in names
                          else nm)
    stars = {n for n in printed_names if n.startswith("*")}
    if generic is None and kind != "main":
        stars = set()   # "*" entries belong to the driver's private table
    all_names = sorted(set(names) | stars, key=lambda s: s.encode())
    for name in all_names:
        if generic is not None and name in generic:
            continue
        dline = line_for(lines, name)
        hidden = dline is None
        alias = ALIASES.get((kind, name), "") if generic is None and \
            kind == "main" else ALIASES.get((f"{kind}:{drv}", name), "") \
            if generic is not None else ""
        if (kind, name) in TYPE_OVERRIDES:
            typ, note = TYPE_OVERRIDES[(kind, name)], ""
        elif kind == "router" and name in ("verify", "fail_verify"):
            typ, note = OptType.BOOL_VERIFY, ""
        elif alias:
            typ, note = None, ""
        elif name.startswith("*"):
            typ, note = OptType.STRING, ""
        else:
            typ, note = classify(kind, drv, name, dline)
        if typ is None and not alias:
            problems.append(f"{kind} {drv or ''} {name}: {note}")
            typ = OptType.STRING
        default = None
        if dline is not None and typ is not None:
            text = dline.split("=", 1)[1][1:] if " = " in dline or \
                dline.endswith(" =") else dline
            if dline.endswith(" =") and typ is not OptType.FIXED:
                text = ""
            if name.startswith("*"):
                default = None
            elif kind == "main" and name in COMPUTED_MAIN:
                default = ("COMPUTED", name)
            elif kind != "main" and name in REQUIRED.get(drv or "", {}):
                default = None if not typ.is_bool else False
            else:
                try:
                    default = parse_default(OptionSpec(name, typ), text)
                    if typ in (OptType.STRING, OptType.REWRITE,
                               OptType.EXPAND_BOOL, OptType.EXPAND_UID,
                               OptType.EXPAND_GID) and default == "":
                        default = None   # -bP prints unset strings as empty
                    elif isinstance(default, str) and ("\\n" in default
                                                       or "\\t" in default):
                        # string_printing() turned newlines and tabs into
                        # \n and \t; no default holds a literal backslash-n.
                        unesc = default.replace("\\n", "\n").replace(
                            "\\t", "\t")
                        problems.append(f"note: {kind} {drv or ''} {name}: "
                                        "unescaped \\n/\\t in default")
                        default = unesc
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{kind} {drv or ''} {name}: default "
                                    f"{dline!r}: {exc}")
        if name == "driver" and kind != "main":
            default = None
        if typ is OptType.BOOL_VERIFY:
            default = name == "verify"
        if typ in (OptType.UIDLIST, OptType.GIDLIST) and default == ():
            default = None
        specs.append(OptionSpec(
            name, typ or OptType.STRING, default,
            expanded=manual_expanded(name, where, exp) and typ in (
                OptType.STRING, OptType.EXPAND_BOOL, OptType.EXPAND_UID,
                OptType.EXPAND_GID, OptType.TIME_OR_EXPAND, OptType.REWRITE,
                OptType.UIDLIST, OptType.GIDLIST, OptType.INT, OptType.TIME),
            hidden=hidden))
        if alias:
            target = next(x for x in specs if x.name == alias) \
                if any(x.name == alias for x in specs) else None
            specs[-1] = OptionSpec(name, target.type if target else
                                   OptType.STRING, None, hidden=hidden,
                                   alias=alias)
    return specs, problems


def main() -> None:
    global _cache
    if CACHE.exists():
        _cache = json.loads(CACHE.read_text())
    (SCRATCH / "spool").mkdir(parents=True, exist_ok=True)
    (SCRATCH / "log").mkdir(exist_ok=True)
    os.chmod(SCRATCH, 0o755)
    mac = macros()
    exp = spec_expanded()
    result: dict[str, object] = {}
    problems: list[str] = []

    def names_with(prefix: str) -> list[str]:
        return [m[len(prefix):].lower() for m in mac if m.startswith(prefix)]

    main_names = names_with("_OPT_MAIN_")
    specs, p = build_section("main", None, main_names, exp, "main")
    result["main"] = specs
    problems += p
    for kind, plural, drivers in (("router", "ROUTERS", ROUTERS),
                                  ("transport", "TRANSPORTS", TRANSPORTS),
                                  ("authenticator", "AUTHENTICATORS", AUTHS)):
        gnames = names_with(f"_OPT_{plural}_")
        # Generic defaults are read from a driver whose init changes none
        # of them (accept turns on log_as_local; smtp turns off
        # retry_use_local_part): see the drivers' init_defaults.
        neutral = {"router": "dnslookup", "transport": "appendfile",
                   "authenticator": "plaintext"}[kind]
        specs, p = build_section(kind, neutral, gnames, exp, plural.lower())
        result[kind + "s"] = specs
        problems += p
        for drv in drivers:
            pnames = names_with(f"_OPT_{kind.upper()}_{drv.upper()}_")
            specs, p = build_section(kind, drv, pnames, exp, drv,
                                     generic=set(gnames))
            result[f"{kind}:{drv}"] = specs
            problems += p
    CACHE.write_text(json.dumps(_cache))
    for k, v in result.items():
        print(k, len(v))  # type: ignore[arg-type]
    print("\n".join(problems))
    if "--write" in sys.argv:
        write_all(result)


def render(specs: list[OptionSpec], var: str, title: str) -> str:
    out = [f"# {title}",
           f"# Generated by tools/gen_option_tables.py from Exim 4.96; edit "
           "the generator's", "# overrides, not these lines (except "
           "implemented=True).",
           f"{var} = OptionTable((",
           ]
    for s in specs:
        args = [repr(s.name), f"T.{s.type.name}"]
        d = s.default
        if isinstance(d, tuple) and d[:1] == ("COMPUTED",):
            args.append(f"Computed({d[1]!r})")
        else:
            args.append(repr(d))
        if s.expanded:
            args.append("expanded=True")
        if s.hidden:
            args.append("hidden=True")
        if s.alias:
            args.append(f"alias={s.alias!r}")
        if s.name in ("condition",) and var == "ROUTER_GENERIC_OPTIONS":
            args.append('repeat="con"')
        if s.name in ("headers_add", "headers_remove") and \
                var in ("ROUTER_GENERIC_OPTIONS", "TRANSPORT_GENERIC_OPTIONS"):
            args.append('repeat="str"')
        if s.type is OptType.TIMELIST:
            args.append("maxcount=10")
        out.append(f"    S({', '.join(args)}),")
    out.append("))")
    return "\n".join(out) + "\n"


def replace_region(path: Path, text: str) -> None:
    src = path.read_text()
    begin, end = "# BEGIN GENERATED OPTIONS\n", "# END GENERATED OPTIONS\n"
    a = src.index(begin) + len(begin)
    b = src.index(end)
    path.write_text(src[:a] + text + src[b:])


def write_all(result: dict[str, object]) -> None:
    replace_region(ROOT / "eximpy/config/main_options.py",
                   render(result["main"], "_GENERATED_MAIN_OPTIONS",  # type: ignore[arg-type]
                          "Every main-section option of Exim 4.96"))
    for kind, pkg in (("router", "routers"), ("transport", "transports"),
                      ("authenticator", "auths")):
        var = {"router": "ROUTER", "transport": "TRANSPORT",
               "authenticator": "AUTH"}[kind] + "_GENERIC_OPTIONS"
        replace_region(ROOT / f"eximpy/{pkg}/base.py",
                       render(result[kind + "s"], var,  # type: ignore[arg-type]
                              f"Generic {kind} options of Exim 4.96"))
    for key, specs in result.items():
        if ":" not in key:
            continue
        kind, drv = key.split(":")
        pkg = {"router": "routers", "transport": "transports",
               "authenticator": "auths"}[kind]
        replace_region(ROOT / f"eximpy/{pkg}/{drv}.py",
                       render(specs, "OPTIONS",  # type: ignore[arg-type]
                              f"Private options of the {drv} {kind}"))


if __name__ == "__main__":
    main()
