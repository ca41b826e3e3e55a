"""Exim's command-line grammar, parsed into an Invocation.

SUMMARY
    parse_args(argv) reads the arguments Exim 4.96 accepts (spec chapter 5)
    and returns an Invocation: the mode (-b*, -M*, -q*, ...), its settings,
    and the remaining arguments (recipients, addresses, message ids or option
    names, depending on the mode).  A malformed or unknown option raises
    UsageError with Exim's wording.

DESCRIPTION
    As in Exim, an option's value may be attached (-fsender, -DNAME=v) or be
    the next argument (-f sender, -C file); "--" ends the options; arguments
    that do not start with "-" are the mode's operands.  The sendmail
    compatibility options that Exim accepts and ignores are accepted and
    ignored here too.

SEE ALSO
    spec chapter 5 "The Exim command line".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class UsageError(Exception):
    """A command line Exim would refuse; str() is Exim's message."""


@dataclass
class Invocation:
    """What the command line asks for."""

    argv0: str = "eximpy"
    argv: list[str] = field(default_factory=list)  # the whole command line
    mode: str = "receive"          # e.g. "bV", "bP", "be", "bt", "bp", "Mrm"
    mode_arg: str | None = None    # -bh IP, -bem FILE, -Mset ID, -R/-S string
    args: list[str] = field(default_factory=list)
    config_file: str | None = None                 # -C
    macros: dict[str, str] = field(default_factory=dict)   # -D
    debug: str | None = None                       # -d[selector]
    verbose: bool = False                          # -v
    no_labels: bool = False                        # -n (with -bP)
    sender: str | None = None                      # -f / -r
    sender_name: str | None = None                 # -F
    extract_recipients: bool = False               # -t
    dot_ends: bool = True                          # -i / -oi turn it off
    delivery_mode: str | None = None               # -od[bfiq] / -odqs
    error_mode: str | None = None                  # -oe[empqw]
    queue_run: str | None = None                   # -q forms: "", "f", "ff", ...
    queue_interval: int | None = None              # -q30m
    queue_select: str | None = None                # -R / -S value kind
    daemon_foreground: bool = False                # -bdf
    daemon_ports: str | None = None                # -oX
    pid_file: str | None = None                    # -oP
    received_protocol: str | None = None           # -oMr / -p
    host_address: str | None = None                # -oMa
    host_name: str | None = None                   # -oMs
    interface_address: str | None = None           # -oMi
    ident: str | None = None                       # -oMt
    auth_id: str | None = None                     # -oMai
    auth_sender: str | None = None                 # -oMas
    auth_name: str | None = None                   # -oMaa
    message_reference: str | None = None           # -oMm
    max_parallel: int | None = None                # -oB
    deliver_force: bool = False                    # -M, -qf
    message_set: str | None = None                 # -Mset ID (for -be)
    perl_start: bool | None = None                 # -ps True, -pd False
    ignored: list[str] = field(default_factory=list)


_UNKNOWN = "exim abandoned: unknown, malformed, or incomplete option {}"

# -b options that take no argument and set the mode directly.
_B_MODES = {
    "bd", "bdf", "bF", "bf", "bh", "bhc", "bi", "bm", "bnq", "bp", "bpa",
    "bpc", "bpr", "bpra", "bpru", "bpu", "bP", "brt", "brw", "bs", "bS",
    "bt", "bV", "bv", "bvs", "be", "bem", "bmalware", "bw", "bI:help",
    "bI:dscp", "bI:sieve",
}
# -M options and whether they take an extra argument before the ids.
_M_MODES = {
    "M": 0, "Mc": 0, "Mf": 0, "Mg": 0, "Mar": 0, "Mmad": 0, "Mmd": 0,
    "Mes": 0, "Mrm": 0, "Mt": 0, "Mvb": 0, "Mvc": 0, "Mvh": 0, "Mvl": 0,
    "Mset": 0,
}
_Q_RE = re.compile(r"^q(q?)(i?)(f?f?)(l?)(G[^/]*(?:/\d+)?)?(.*)$")


def _take(argv: list[str], i: int, opt: str, attached: str) -> tuple[str, int]:
    """The value of an option: attached text, or the next argument."""
    if attached:
        return attached, i
    if i + 1 >= len(argv):
        raise UsageError(_UNKNOWN.format("-" + opt))
    return argv[i + 1], i + 1


def parse_args(argv: list[str]) -> Invocation:
    """Parse ``argv`` (including argv[0]) into an Invocation."""
    inv = Invocation(argv0=argv[0] if argv else "eximpy", argv=list(argv))
    base = inv.argv0.rsplit("/", 1)[-1]
    if base == "mailq":
        inv.mode = "bp"
    elif base in ("rsmtp",):
        inv.mode = "bS"
    elif base in ("rmail",):
        inv.dot_ends = False
    elif base == "runq":
        inv.mode, inv.queue_run = "q", ""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if inv.mode == "bP" and not arg.startswith("-"):
            inv.args.append(arg)
            i += 1
            continue
        if arg == "--":
            inv.args.extend(argv[i + 1:])
            break
        if not arg.startswith("-") or arg == "-":
            inv.args.extend(argv[i:])
            break
        i = _parse_one(argv, i, arg[1:], inv) + 1
    return inv


def _parse_one(argv: list[str], i: int, opt: str, inv: Invocation) -> int:
    """Handle one option; returns the index of the last argument used."""
    c = opt[:1]
    rest = opt[1:]
    if c == "b":
        return _parse_b(argv, i, opt, inv)
    if c == "M":
        return _parse_m(argv, i, opt, inv)
    if c == "q":
        return _parse_q(argv, i, opt, inv)
    if c == "o":
        return _parse_o(argv, i, opt, inv)
    if c == "C":
        inv.config_file, i = _take(argv, i, opt, rest)
        return i
    if c == "D":
        text = rest if rest else None
        if text is None:
            raise UsageError(_UNKNOWN.format("-D"))
        name, eq, value = text.partition("=")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9_]*", name):
            raise UsageError(
                "exim: macro name set by -D must start with an upper case "
                "letter")
        inv.macros[name] = value.strip() if eq else ""
        return i
    if c == "d":
        inv.debug = rest or "+default"
        return i
    if opt == "v":
        inv.verbose = True
        return i
    if opt == "n":
        inv.no_labels = True
        return i
    if c in ("f", "r"):
        inv.sender, i = _take(argv, i, opt, rest)
        return i
    if c == "F":
        inv.sender_name, i = _take(argv, i, opt, rest)
        return i
    if opt == "t":
        inv.extract_recipients = True
        return i
    if opt == "i":
        inv.dot_ends = False
        return i
    if c in ("R", "S"):
        value, i = _take(argv, i, opt, rest)
        inv.queue_select = c + value
        if inv.queue_run is None:
            inv.mode, inv.queue_run = "q", ""
        return i
    if opt in ("pd", "ps"):
        # Start the Perl interpreter when needed / at once (perl_at_start).
        inv.perl_start = opt == "ps"
        return i
    if c == "p":
        # -p<protocol>[:<host>] is -oMr protocol and -oMs host (Sendmail's).
        proto, colon, host = rest.partition(":")
        inv.received_protocol = proto
        if colon:
            inv.host_name = host
        return i
    if opt in ("h", "x", "X", "B", "N", "m", "em", "ep", "eq", "ew", "G"):
        inv.ignored.append("-" + opt)
        return i
    if c in ("A", "B", "h", "L", "X", "O"):
        inv.ignored.append("-" + opt)
        if not rest and c in ("h", "L", "X", "O") and i + 1 < len(argv):
            return i + 1
        return i
    if c == "E":
        inv.ignored.append("-" + opt)
        return i
    if c == "z":
        inv.mode = "z"
        inv.mode_arg, i = _take(argv, i, opt, rest)
        return i
    raise UsageError(_UNKNOWN.format("-" + opt))


def _parse_b(argv: list[str], i: int, opt: str, inv: Invocation) -> int:
    if opt not in _B_MODES:
        raise UsageError(_UNKNOWN.format("-" + opt))
    mode = opt
    if mode in ("bh", "bhc"):
        inv.mode_arg, i = _take(argv, i, opt, "")
    elif mode == "bem":
        inv.mode_arg, i = _take(argv, i, opt, "")
        mode = "be"
    elif mode == "be":
        inv.mode_arg = None        # "-Mset ID -be": ID is not a -bem file
    elif mode == "bdf":
        inv.daemon_foreground = True
        mode = "bd"
    if mode == "bd" and inv.mode == "q":
        inv.queue_run = None       # "-q30m -bd": a daemon with queue runs
    elif mode == "bvs":
        inv.mode_arg = "sender"
        mode = "bv"
    inv.mode = mode
    return i


def _parse_m(argv: list[str], i: int, opt: str, inv: Invocation) -> int:
    if opt not in _M_MODES:
        raise UsageError(_UNKNOWN.format("-" + opt))
    inv.mode = opt
    if opt == "Mset":
        inv.mode_arg, i = _take(argv, i, opt, "")
        inv.message_set = inv.mode_arg
    if opt in ("M", "Mc"):
        inv.deliver_force = opt == "M"
    return i


def _parse_q(argv: list[str], i: int, opt: str, inv: Invocation) -> int:
    m = _Q_RE.match(opt)
    if m is None:
        raise UsageError(_UNKNOWN.format("-" + opt))
    from eximpy.config.options import readtime
    qq, qi, ff, ql, group, interval = m.groups()
    if inv.mode != "bd":           # "-bd -q30m" stays a daemon
        inv.mode = "q"
    inv.queue_run = qq + qi + ff + ql + (group or "")
    if interval:
        t = readtime(interval)
        if t < 0:
            raise UsageError(f"exim: bad time value -{opt}: abandoned")
        inv.queue_interval = t
    inv.deliver_force = "f" in ff
    return i


def _parse_o(argv: list[str], i: int, opt: str, inv: Invocation) -> int:
    if opt in ("odb", "odf", "odi", "odq", "odqs", "odqi", "odqf"):
        inv.delivery_mode = opt[2:]
        return i
    if opt in ("oee", "oem", "oep", "oeq", "oew"):
        inv.error_mode = opt[2]
        return i
    if opt in ("oi", "oitrue"):
        inv.dot_ends = False
        return i
    if opt in ("om", "oo", "os", "ov", "oA", "or"):
        inv.ignored.append("-" + opt)
        if opt in ("oA", "or", "os") and i + 1 < len(argv):
            return i + 1
        return i
    settings = {"oMaa": "auth_name", "oMai": "auth_id", "oMas": "auth_sender",
                "oMa": "host_address", "oMi": "interface_address",
                "oMm": "message_reference", "oMr": "received_protocol",
                "oMs": "host_name", "oMt": "ident", "oX": "daemon_ports",
                "oP": "pid_file"}
    for prefix in sorted(settings, key=len, reverse=True):
        if opt.startswith(prefix):
            value, i = _take(argv, i, opt, opt[len(prefix):])
            setattr(inv, settings[prefix], value)
            return i
    if opt.startswith("oB"):
        # Exim reads the number with atoi(): trailing junk is ignored.
        digits = re.match(r"\d*", opt[2:]).group()
        inv.max_parallel = int(digits) if digits else 1
        return i
    if opt == "oPX":
        inv.pid_file = ""
        return i
    raise UsageError(_UNKNOWN.format("-" + opt))
