"""exiqsumm: summarise ``-bp`` output per recipient domain.

SUMMARY
    eximpy -bp | exiqsumm [-a] [-c] [-b] [-f] [-s]

DESCRIPTION
    Reads a queue listing and prints, per recipient domain, the number of
    (undelivered) addresses, the volume of the messages they belong to,
    and the oldest and newest message ages, then a TOTAL line -- the same
    columns, rounding and order as Exim 4.96's exiqsumm:
    ``-a`` sorts by oldest age, ``-c`` by count (default: domain name),
    ``-b`` marks bounce messages ``(b)``, ``-f`` frozen ones ``(f)``, ``-s``
    prefixes the sender domain (``src > dst``).  Delivered (``D``) lines are
    not counted.

SEE ALSO
    spec 54.4 "Summarizing the queue (exiqsumm)".
"""
from __future__ import annotations

import re
import sys
from typing import Iterable, TextIO

from spool_tools._common import run_main

_ENTRY_RE = re.compile(r"^([\d\s]{2,3}\w)\s+(\S+)\s(\S+)\s<(\S*)>")
_RCPT_RE = re.compile(r"^\s+[^@]*@([\w.\-]+|\[(\d+\.){3}\d+\])")
_DELIVERED_RE = re.compile(r"^\s*D\s\S+")
_UNITS = "mhdw"


def _age_key(age: str) -> tuple[int, int]:
    m = re.search(r"(\d+)(\w)", age)
    if not m:
        return (0, 0)
    unit = _UNITS.find(m.group(2))
    return (unit, int(m.group(1)))


def older(a: str, b: str) -> int:
    """>0 if age ``a`` is older than ``b`` (units first, then value)."""
    ka, kb = _age_key(a), _age_key(b)
    return (ka > kb) - (ka < kb)


def _size_bytes(text: str) -> float:
    m = re.match(r"([\d.]+)([A-Z]|)", text)
    if not m:
        return 0.0
    try:
        v = float(m.group(1))
    except ValueError:
        return 0.0
    return v * {"K": 1024, "M": 1024 * 1024}.get(m.group(2), 1)


def volume(x: float) -> str:
    if x < 10000:
        return f"{int(x):6d}"
    if x < 10000000:
        return f"{int((x + 512) / 1024):4d}KB"
    return f"{int((x + 512 * 1024) / (1024 * 1024)):4d}MB"


def summarise(lines: Iterable[str], by_age: bool = False,
              by_count: bool = False, bounces: bool = False,
              frozen_flag: bool = False, source: bool = False) -> str:
    count: dict[str, int] = {}
    oldest: dict[str, str] = {}
    newest: dict[str, str] = {}
    size: dict[str, float] = {}
    age, sz, src, frozen, bounce = "0d", "0", "", False, False
    for line in lines:
        line = line.rstrip("\n")
        if not line or _DELIVERED_RE.match(line):
            continue
        m = _ENTRY_RE.match(line)
        if m:
            age, sz, src = m.group(1), m.group(2), m.group(4)
            src = re.sub(r"([^@]*)@(.*?)$", r"\2", src, count=1)
            frozen = "*** frozen ***" in line
            bounce = src == ""
            if bounce:
                src = "<>"
            continue
        m = _RCPT_RE.match(line)
        if not m:
            continue
        dom = f"{src} > {m.group(1)}".lower() if source else \
            m.group(1).lower()
        if bounce and bounces:
            dom += " (b)"
        if frozen and frozen_flag:
            dom += " (f)"
        count[dom] = count.get(dom, 0) + 1
        if dom not in oldest or older(age, oldest[dom]) > 0:
            oldest[dom] = age
        if dom not in newest or older(newest[dom], age) > 0:
            newest[dom] = age
        size[dom] = size.get(dom, 0.0) + _size_bytes(sz)

    if by_age:
        keys = sorted(count, key=lambda k: (_age_key(oldest[k]), k),
                      reverse=True)
    elif by_count:
        keys = sorted(count, key=lambda k: (-count[k], k))
    else:
        keys = sorted(count)
    out = ["\nCount  Volume  Oldest  Newest  Domain",
           "\n-----  ------  ------  ------  ------\n\n"]
    total, vol, max_age, min_age = 0, 0.0, "0m", None
    for k in keys:
        out.append(f"{count[k]:5d}  {volume(size[k])[:6]}  {oldest[k]:>6}  "
                   f"{newest[k]:>6}  {k[:80]}\n")
        if older(oldest[k], max_age) > 0:
            max_age = oldest[k]
        if min_age is None or older(min_age, newest[k]) > 0:
            min_age = newest[k]
        vol += size[k]
        total += count[k]
    out.append("-" * 63 + "\n")
    out.append(f"{total:5d}  {volume(vol)[:6]}  {max_age:>6}  "
               f"{min_age or '0000d':>6}  TOTAL\n\n")
    return "".join(out)


def main(argv: list[str], stdin: TextIO | None = None,
         out: TextIO | None = None) -> int:
    opts = set()
    args = list(argv)
    while args and args[0].startswith("-"):
        opts.add(args.pop(0))
    if "--version" in opts:
        (out or sys.stdout).write("exiqsumm: eximpy\nbuild: 4.96\n")
        return 0
    if args:
        lines: list[str] = []
        for name in args:
            with open(name, encoding="utf-8", errors="surrogateescape") as f:
                lines.extend(f)
    else:
        lines = list(stdin or sys.stdin)
    (out or sys.stdout).write(summarise(
        lines, by_age="-a" in opts, by_count="-c" in opts,
        bounces="-b" in opts, frozen_flag="-f" in opts,
        source="-s" in opts))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
