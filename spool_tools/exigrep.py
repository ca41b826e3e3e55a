"""exigrep: find all the mainlog lines of messages that match a pattern.

SUMMARY
    exigrep [-I] [-l] [-M] [-v] [-t secs] [--no-pager] pattern [log ...]

DESCRIPTION
    As Exim 4.96's exigrep: log lines are grouped by message id; when any
    line of a message matches the (Perl-style, case-insensitive unless -I;
    literal with -l) pattern, all the message's lines are printed as one
    block, followed by a blank line, once the message's ``Completed`` (or
    ``rejected`` / ``SMTP data timeout``) line is seen.  Lines without an id
    are printed on their own when they match.  Messages still open at the
    end are printed with ``+++ <id> has not completed +++``.  -v inverts,
    -t skips messages that spent no more than <secs> on the queue, -M also
    selects messages whose lines mention a selected id (bounces).
    Compressed logs (.gz .bz2 .xz .zst) are read through the matching
    decompressor.  Syslog-prefixed lines (``... exim[pid]: ``) are accepted.

SEE ALSO
    spec 54.7 "Selecting messages from the log (exigrep)".
"""
from __future__ import annotations

import calendar
import re
import subprocess
import sys
import time
from typing import Iterable, TextIO

from spool_tools._common import run_main

_LINE_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[+-]\d{4} )?)"
    r"(?:\[\d+\] )?(\w{6}-(?:\w{11}-\w{4}|\w{6}-\w{2}))?")
_REJ_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:[+-]\d{4} )?)"
    r"(?:\[\d+\] )?\w{6}-\w{6}-\w{2} rejected")
_DECOMP = {".gz": ["zcat"], ".bz2": ["bzcat"], ".xz": ["xzcat"],
           ".lzma": ["lzma", "-dc"], ".zst": ["zstdcat"]}


def _seconds(stamp: str) -> float:
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)\s(\d\d):(\d\d):(\d\d)(?:\.\d+)?"
                 r"(?:\s([+-])(\d\d)(\d\d))?", stamp)
    if not m:
        return 0.0
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    t = time.mktime((y, mo, d, h, mi, s, 0, 0, -1))
    if m.group(7):
        off = int(m.group(8)) * 3600 + int(m.group(9)) * 60
        t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        t += -off if m.group(7) == "+" else off
    return t


class Exigrep:
    def __init__(self, pattern: str, out: TextIO, insensitive: bool = True,
                 invert: bool = False, related: bool = False,
                 queue_time: int = -1) -> None:
        self.rx = re.compile(pattern, re.I if insensitive else 0)
        self.out = out
        self.invert = invert
        self.related = related
        self.queue_time = queue_time
        self.saved: dict[str, str] = {}
        self.selected: dict[str, int] = {}
        self.related_ids: list[str] = []

    def line(self, line: str) -> None:
        if not re.match(r"\d{4}-", line):
            line = re.sub(r"^.*? exim\b.*?: ", "", line, count=1)
        m = _LINE_RE.match(line)
        if not m:
            return
        date, mid = m.group(1), m.group(2)
        hit = self.rx.search(line) is not None
        if mid is None:
            if hit != self.invert:
                self.out.write(line + "\n")
            return
        self.saved[mid] = self.saved.get(mid, "") + line
        if self.invert:
            self.selected.setdefault(mid, 1)
            if hit:
                self.selected[mid] = 0
        elif mid in self.selected or hit:
            self.selected[mid] = 1
            if self.related and mid not in self.related_ids:
                self.related_ids.append(mid)
        elif self.related and self.related_ids and \
                any(r in line for r in self.related_ids):
            self.selected[mid] = 1
        if "Completed" in line or "SMTP data timeout" in line or \
                ("rejected" in line and _REJ_RE.match(line)):
            if self.queue_time != -1 and self.selected.get(mid):
                # As Exim's: a timestamp with milliseconds does not match,
                # so such messages are never filtered out by -t.
                first = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                                 r"(?:[+-]\d{4} )?)", self.saved[mid])
                if first and _seconds(date) - _seconds(first.group(1)) \
                        <= self.queue_time:
                    self.selected[mid] = 0
            if self.selected.get(mid):
                self.out.write(self.saved[mid] + "\n")
            self.selected.pop(mid, None)
            self.saved.pop(mid, None)

    def feed(self, lines: Iterable[str]) -> None:
        for ln in lines:
            self.line(ln if ln.endswith("\n") else ln + "\n")

    def finish(self) -> None:
        for mid in sorted(self.selected):
            self.out.write(f"+++ {mid} has not completed +++\n"
                           f"{self.saved.get(mid, '')}\n")


def _open(name: str) -> Iterable[str]:
    for ext, cmd in _DECOMP.items():
        if name.endswith(ext):
            r = subprocess.run(cmd + [name], capture_output=True)
            if r.returncode != 0:
                raise OSError(f"Unable to decompress {name}")
            return r.stdout.decode("utf-8", "surrogateescape") \
                .splitlines(keepends=True)
    with open(name, encoding="utf-8", errors="surrogateescape") as f:
        return f.readlines()


USAGE = "Usage:\n    exigrep [options] pattern [log] ...\n"


def main(argv: list[str], out: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    out = out or sys.stdout
    insensitive, literal, related, invert, qt = True, False, False, False, -1
    args = list(argv)
    rest: list[str] = []
    while args:
        a = args.pop(0)
        if a in ("-I", "--sensitive"):
            insensitive = False
        elif a in ("-l", "--literal"):
            literal = True
        elif a in ("-M", "--related"):
            related = True
        elif a in ("-v", "--invert"):
            invert = True
        elif a in ("--pager", "--no-pager"):
            pass
        elif a in ("-t", "--queue-time") or a.startswith("-t"):
            v = a[2:] if len(a) > 2 and a.startswith("-t") else \
                (args.pop(0) if args else "")
            try:
                qt = int(v)
            except ValueError:
                sys.stderr.write(USAGE)
                return 2
        elif a == "--version":
            out.write("exigrep: eximpy\nbuild: 4.96\n")
            return 0
        elif a in ("-h", "--help"):
            out.write(__doc__ or "")
            return 0
        elif a == "--":
            rest.extend(args)
            break
        else:
            rest.append(a)
    if not rest:
        sys.stderr.write(USAGE)
        return 2
    pattern = re.escape(rest[0]) if literal else rest[0]
    g = Exigrep(pattern, out, insensitive, invert, related, qt)
    try:
        if len(rest) > 1:
            for name in rest[1:]:
                g.feed(_open(name))
        else:
            g.feed(stdin or sys.stdin)
    except OSError as e:
        sys.stderr.write(f"Unable to open: {e}\n")
        return 2
    g.finish()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
