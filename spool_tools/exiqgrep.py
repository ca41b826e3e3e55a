"""exiqgrep: select queued messages from ``-bp`` output.

SUMMARY
    exiqgrep [-C conf] [-E cmd] [-G queue] [-a] selection... [display]
    selection: -f re (sender) -r re (recipient) -s re (size field)
               -y secs (younger) -o secs (older) -z (frozen) -x (not frozen)
    display:   -c (count) -l (long, default) -i (ids) -b (brief) -R (reverse)

DESCRIPTION
    Behaves as Exim 4.96's exiqgrep: it reads the listing of undelivered
    recipients (``-bpu``; all recipients with ``-a``), matches regular
    expressions case-insensitively on sender and recipients (the size
    regex is case-sensitive), computes ages from the id's time field, and
    prints in the same formats, oldest first (``-R``: newest first).  The
    listing comes from eximpy in-process, or from the program named by -E
    (e.g. ``-E /usr/sbin/exim`` to filter real Exim's queue).

SEE ALSO
    spec 54.3 "Selective queue listing (exiqgrep)".
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from typing import Any, TextIO

from eximpy.message.ids import base62_decode
from spool_tools._common import load_config_quiet, run_main

HELP = """Exim message queue display utility.

	-h		This help message.
	-C		Specify which exim.conf to use.
	-E		Specify exim binary to use.

Selection criteria:
	-f <regexp>	Match sender address sender (field is "< >" wrapped)
	-r <regexp>	Match recipient address
	-s <regexp>	Match against the size field from long output
	-y <seconds>	Message younger than
	-o <seconds>	Message older than
	-z		Frozen messages only (exclude non-frozen)
	-x		Non-frozen messages only (exclude frozen)
	-G <queuename>	Match in given queue only

[ NB: for regexps, provided string sits in /<string>/ ]

Display options:
	-c		Display match count
	-l		Long Format [Default]
	-i		Message IDs only
	-b		Brief Format
	-R		Reverse order
	-a		All recipients (including delivered)
"""
_WITH_ARG = set("frysoCGE")
_FLAGS = set("hzxlibRca")
_ENTRY_RE = re.compile(
    r"^\s*(\w+)\s+((?:\d+(?:\.\d+)?[A-Z]?)?)\s*(\w{6}-\w{6}-\w{2})\s+(<.*?>)")
_RCPT_RE = re.compile(r"\s+(.*?@.*)$")


def _parse(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return opts, argv[i + 1:]
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            if c in _WITH_ARG:
                val = a[j + 1:]
                if not val:
                    i += 1
                    if i >= len(argv):
                        raise ValueError(f"Option {c} requires an argument")
                    val = argv[i]
                opts[c] = val
                break
            if c in _FLAGS:
                opts[c] = True
                j += 1
                continue
            raise ValueError(f"Unknown option: {c}")
        i += 1
    return opts, argv[i:]


def _perl_true(v: str | bool | None) -> bool:
    """Perl truth, as exiqgrep tests its options ("0" and "" are false,
    so ``-o 0`` selects nothing and shows the help, as in Exim's)."""
    return bool(v) and v != "0"


def _listing(opts: dict[str, str | bool]) -> str:
    mode = "-bp" if opts.get("a") else "-bpu"
    if opts.get("E"):
        cmd = [str(opts["E"]), mode]
        if opts.get("C"):
            cmd += ["-C", str(opts["C"])]
        if opts.get("G"):
            cmd += ["-qG" + str(opts["G"])]
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0:
            raise OSError("Error closing pipe")
        return r.stdout.decode("utf-8", "surrogateescape")
    from eximpy.cli.queue_ops import run_queue_listing
    from eximpy.spool.layout import SpoolLayout
    cfg = load_config_quiet(str(opts["C"]) if opts.get("C") else None)
    if cfg is None:
        raise OSError("cannot read the configuration")
    buf = io.StringIO()
    run_queue_listing(cfg, mode[1:], [], buf,
                      layout=SpoolLayout.from_config(
                          cfg, str(opts.get("G") or "")))
    return buf.getvalue()


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if argv[:1] == ["--version"]:
        out.write("exiqgrep: eximpy\nbuild: 4.96\n")
        return 0
    try:
        opts, rest = _parse(argv)
    except ValueError as e:
        sys.stderr.write(f"{e}\n")
        out.write(HELP)
        return 0
    if opts.get("h"):
        out.write(HELP)
        return 0
    opts = {k: v for k, v in opts.items() if _perl_true(v)}
    if rest or not any(opts.get(k) for k in "frsyozxc"):
        out.write(HELP)
        return 1
    try:
        text = _listing(opts)
    except OSError as e:
        sys.stderr.write(f"Error opening pipe: {e}\n")
        return 1
    msgs: dict[str, dict] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    now = time.time()
    while i < len(lines):
        line = lines[i]
        m = _ENTRY_RE.match(line)
        if not m:
            sys.stderr.write(f"Line mismatch: {line}\n")
            return 1
        mid = m.group(3)
        birth = base62_decode(mid[:6])
        rec: dict[str, Any] = {"age": m.group(1), "size": m.group(2), "from": m.group(4),
               "birth": birth, "ages": now - birth,
               "frozen": line.endswith("*** frozen ***"), "rcpt": []}
        i += 1
        while i < len(lines):
            rm = _RCPT_RE.match(lines[i])
            i += 1
            if not rm:
                break
            rec["rcpt"].append(rm.group(1))  # list[str]
        msgs[mid] = rec
    chosen = []
    for mid, r in msgs.items():
        if opts.get("f") and not re.search(str(opts["f"]), r["from"], re.I):
            continue
        if opts.get("r") and not any(re.search(str(opts["r"]), a, re.I)
                                     for a in r["rcpt"]):
            continue
        if opts.get("s") and not re.search(str(opts["s"]), r["size"]):
            continue
        if opts.get("y") and not r["ages"] < float(str(opts["y"])):
            continue
        if opts.get("o") and not r["ages"] > float(str(opts["o"])):
            continue
        if opts.get("z") and not r["frozen"]:
            continue
        if opts.get("x") and r["frozen"]:
            continue
        chosen.append(mid)
    if opts.get("c"):
        out.write(f"{len(chosen)} matches out of {len(msgs)} messages\n")
        return 0
    chosen.sort(key=lambda k: (msgs[k]["birth"], k), reverse=bool(opts.get("R")))
    for mid in chosen:
        r = msgs[mid]
        if opts.get("i"):
            out.write(mid + "\n")
        elif opts.get("b"):
            out.write(f"{mid} From: {r['from']} To: {';'.join(r['rcpt'])}\n")
        else:
            out.write(f"{r['age']:>3} {r['size']:>5} {mid} {r['from']}"
                      f"{' *** frozen ***' if r['frozen'] else ''}\n")
            for a in r["rcpt"]:
                out.write(f"\t  {a}\n")
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
