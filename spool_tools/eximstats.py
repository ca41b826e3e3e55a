"""eximstats: statistics from Exim-format mainlogs (text or HTML report).

SUMMARY
    eximstats [-txt] [-html[=FILE]] [-t N] [-h N] [-nt] [--nosort] log ...

DESCRIPTION
    Reads mainlogs written by eximpy or Exim (through eximpy.log.format's
    line parser) and reports what Exim's eximstats reports:

      Grand total summary   received (volume, messages, hosts, messages
                            with at least one delayed / failed address) and
                            delivered (volume, messages, addresses, hosts);
                            rejects and temporary rejects when present
      Deliveries by transport
      Messages received / deliveries per hour (-h N: N buckets per hour)
      Time spent on the queue (Completed lines)
      Top N (-t N, default 50) sending hosts, local senders, host and
      local destinations, by message count and by volume
      Errors (** lines) with counts

    Counting follows eximstats: volume is the S= of ``<=`` lines; a
    delivery without S= counts the size the message was received with;
    hosts are the H= name part (``local`` for local traffic); ``->``
    lines count as deliveries to the same message.  -html writes an HTML
    report with the same tables and SVG bar charts of volume and messages
    per hour (no external libraries, no scripts).

SEE ALSO
    spec 54.8 "Mail statistics (eximstats)"; eximpy.log.format.
"""
from __future__ import annotations

import gzip
import html
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, TextIO

from eximpy.log.format import parse_line
from spool_tools._common import run_main

_QUEUE_BUCKETS = [(60, "Under   1m"), (300, "  1m -  5m"), (900, "  5m - 15m"),
                  (1800, " 15m - 30m"), (3600, " 30m -  1h"),
                  (10800, "  1h -  3h"), (21600, "  3h -  6h"),
                  (43200, "  6h - 12h"), (86400, " 12h -  1d")]


def volume(x: float) -> str:
    """eximstats' rounding: bytes below 10000, KB below 10 million, MB."""
    if x < 10000:
        return str(int(x))
    if x < 10000000:
        return f"{int((x + 512) / 1024)}KB"
    return f"{int((x + 512 * 1024) / (1024 * 1024))}MB"


def _seconds(date: str, tm: str) -> float:
    import time
    y, mo, d = (int(p) for p in date.split("-"))
    hms = tm.split(".")[0]
    h, mi, s = (int(p) for p in hms.split(":"))
    frac = float("0." + tm.split(".")[1]) if "." in tm else 0.0
    return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + frac


def _host_of(tag: str | None, rest: str) -> str | None:
    """The H= name part of a line (without [ip]:port), or None."""
    m = re.search(r" H=(.*?)(?: \[[^\]]*\](?::\d+)?|$)(?= |$)", rest)
    if not m:
        return None
    h = m.group(1)
    if h.startswith("[") or not h:
        m2 = re.search(r" H=\[([^\]]*)\]", rest)
        return m2.group(1) if m2 else h
    return h


@dataclass
class Stats:
    first: str | None = None
    last: str | None = None
    received: int = 0
    received_volume: int = 0
    received_hosts: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)
    arrival: dict[str, float] = field(default_factory=dict)
    delayed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    delivered_ids: set[str] = field(default_factory=set)
    delivered_addresses: int = 0
    delivered_msgs: int = 0
    delivered_volume: int = 0
    delivered_hosts: set[str] = field(default_factory=set)
    transports: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0]))
    received_per_hour: Counter[int] = field(default_factory=Counter)
    received_volume_per_hour: Counter[int] = field(default_factory=Counter)
    delivered_per_hour: Counter[int] = field(default_factory=Counter)
    queue_times: list[float] = field(default_factory=list)
    remote_queue_times: list[float] = field(default_factory=list)
    remote_ids: set[str] = field(default_factory=set)
    sending_hosts: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0]))
    local_senders: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0]))
    host_dest: dict[str, list] = field(
        default_factory=lambda: defaultdict(lambda: [[], 0, 0]))
    local_dest: dict[str, list] = field(
        default_factory=lambda: defaultdict(lambda: [[], 0, 0]))
    errors: Counter[str] = field(default_factory=Counter)
    rejects: int = 0
    temp_rejects: int = 0

    def add(self, line: str) -> None:
        ll = parse_line(line)
        if ll is None:
            return
        stamp = f"{ll.date} {ll.time.split('.')[0]}"
        # eximstats looks at the two characters after the id: a delivery
        # flag, "Co" (Completed), or "Re" for a line mentioning
        # rejected/refused/dropped; only such lines date the report.
        f2 = ll.rest[:2] if ll.id else ""
        if not re.fullmatch(r"[<>=*-]+|SA", f2) and \
                re.search(r"rejected|refused|dropped", line):
            f2 = "Re"
        if f2 in ("<=", "=>", "->", "==", "**", "Co", "SA", "Re"):
            if self.first is None or stamp < self.first:
                self.first = stamp
            if self.last is None or stamp > self.last:
                self.last = stamp
        hour = int(ll.time[:2])
        rest = " " + ll.rest
        if ll.id is None or ll.flag is None:
            if ll.id and ll.rest.startswith("Completed"):
                t0 = self.arrival.get(ll.id)
                if t0 is not None:
                    qt = _seconds(ll.date, ll.time) - t0
                    self.queue_times.append(qt)
                    if ll.id in self.remote_ids:
                        self.remote_queue_times.append(qt)
            elif " rejected " in rest or rest.startswith(" rejected"):
                if " temporarily rejected " in rest:
                    self.temp_rejects += 1
                else:
                    self.rejects += 1
            return
        mid = ll.id
        if ll.flag == "<=":
            size = int(ll.tags.get("S", "0") or 0)
            self.received += 1
            self.received_volume += size
            self.sizes[mid] = size
            self.arrival[mid] = _seconds(ll.date, ll.time)
            host = _host_of(ll.tags.get("H"), rest) or "local"
            self.received_hosts.add(host)
            self.received_per_hour[hour] += 1
            self.received_volume_per_hour[hour] += size
            sh = self.sending_hosts[host]
            sh[0] += 1
            sh[1] += size
            if host == "local" and "U" in ll.tags:
                ls = self.local_senders[ll.tags["U"]]
                ls[0] += 1
                ls[1] += size
        elif ll.flag in ("=>", "->"):
            # As eximstats: a delivery counts the size the message was
            # received with; "=>" is a message and an address, "->" one
            # more address of the same delivery.
            first = ll.flag == "=>"
            size = self.sizes.get(mid, 0) if first else 0
            self.delivered_addresses += 1
            host = _host_of(ll.tags.get("H"), rest) or "local"
            hd = self.host_dest[host]
            hd[1] += 1
            if host == "local" and ll.address:
                user = ll.rest[3:].split(" <" if " <" in ll.rest else " ",
                                         1)[0]
                ld = self.local_dest[user]
                ld[1] += 1
                if first:
                    ld[0].append(mid)
                    ld[2] += size
            if not first:
                return
            self.delivered_msgs += 1
            self.delivered_ids.add(mid)
            self.delivered_volume += size
            self.delivered_hosts.add(host)
            if host != "local":
                self.remote_ids.add(mid)
            self.delivered_per_hour[hour] += 1
            tr = self.transports[ll.tags.get("T") or ":blackhole:"]
            tr[0] += size
            tr[1] += 1
            hd[0].append(mid)
            hd[2] += size
        elif ll.flag == "==":
            self.delayed.add(mid)
        elif ll.flag == "**":
            self.failed.add(mid)
            m = re.search(r": (.*?)(?: DT=\S+)?$", ll.rest)
            self.errors[m.group(1) if m else ll.rest] += 1


def _pct(n: int, total: int) -> float:
    return 100.0 * n / total if total else 0.0


def text_report(s: Stats, top: int = 50, hist: int = 1) -> str:
    o: list[str] = []
    o.append(f"\nExim statistics from {s.first or ''} to {s.last or ''}\n\n")
    o.append("Grand total summary\n-------------------\n")
    o.append(" " * 66 + "At least one address\n")
    o.append("  TOTAL               Volume   Messages Addresses     Hosts"
             "      Delayed       Failed\n")
    o.append(f"  {'Received':<16} {volume(s.received_volume):>9}     "
             f"{s.received:6d}    {'':>6} {len(s.received_hosts):>9}"
             f"  {len(s.delayed):6d} {_pct(len(s.delayed), s.received):4.1f}%"
             f" {len(s.failed):6d} {_pct(len(s.failed), s.received):4.1f}%\n")
    o.append(f"  {'Delivered':<16} {volume(s.delivered_volume):>9}     "
             f"{s.delivered_msgs:6d}    {s.delivered_addresses:6d} "
             f"{len(s.delivered_hosts):>9}\n")
    if s.rejects:
        o.append(f"  {'Rejects':<16} {'':>9}     {s.rejects:6d}\n")
    if s.temp_rejects:
        o.append(f"  {'Temp Rejects':<16} {'':>9}     {s.temp_rejects:6d}\n")
    o.append("\n")
    o.append("Deliveries by transport\n-----------------------\n")
    o.append("                      Volume    Messages\n")
    for t in sorted(s.transports):
        v, n = s.transports[t]
        o.append(f"  {t:<16} {volume(v):>9}      {n:6d}\n")
    o.append("\n")
    for title, counts in (("Messages received per hour (each dot is 1 "
                           "message)", s.received_per_hour),
                          ("Deliveries per hour (each dot is 1 delivery)",
                           s.delivered_per_hour)):
        o.append(f"{title}\n{'-' * len(title)}\n\n")
        for h in range(24):
            n = counts.get(h, 0)
            o.append(f"{h:02d}-{h + 1:02d}  {n:5d} {'.' * min(n, 100)}\n")
        o.append("\n")
    def queue_table(title: str, times: list[float]) -> None:
        o.append(f"{title}\n{'-' * len(title)}\n\n")
        total = len(times)
        cum = 0
        prev = 0.0
        for limit, label in _QUEUE_BUCKETS + [(float("inf"),
                                               "Over   1d")]:
            n = sum(1 for t in times if prev <= t < limit)
            prev = limit
            if n:
                cum += n
                o.append(f"{label} {n:8d} {_pct(n, total):5.1f}%  "
                         f"{_pct(cum, total):5.1f}%\n")
        o.append("\n")
    if s.queue_times:
        queue_table("Time spent on the queue: all messages", s.queue_times)
        queue_table("Time spent on the queue: messages with at least one "
                    "remote delivery", s.remote_queue_times)
        o.append("No relayed messages\n-------------------\n\n")

    def table(title: str, rows: dict, key_title: str, by: str,
              with_addr: bool = False, always: bool = False) -> None:
        # eximstats prints the host tables even when empty (and then
        # without the Addresses column); the others only with content.
        if not rows and not always:
            return
        t = f"Top {top} {title} by {by}"
        o.append(f"{t}\n{'-' * len(t)}\n")
        if with_addr and rows:
            o.append(f"  Messages  Addresses      Bytes    Average   "
                     f"{key_title}\n")
        else:
            o.append(f"  Messages      Bytes    Average   {key_title}\n")

        def msgs(v: list) -> int:
            return len(v[0]) if with_addr else v[0]

        def vol(v: list) -> int:
            return v[2] if with_addr else v[1]
        keyf = (lambda k: (-msgs(rows[k]), -vol(rows[k]), k)) \
            if by == "message count" else \
            (lambda k: (-vol(rows[k]), -msgs(rows[k]), k))
        for k in sorted(rows, key=keyf)[:top]:
            v = rows[k]
            n = msgs(v)
            # eximstats averages the rounded figure it shows (13KB / 7)
            shown = volume(vol(v))
            base = int(shown.rstrip("KMB")) * (1024 if shown.endswith("KB")
                                               else 1048576 if
                                               shown.endswith("MB") else 1)
            avg = int(base / n) if n else 0
            if with_addr:
                o.append(f"  {n:8d}   {v[1]:8d} {volume(vol(v)):>10} "
                         f"{volume(avg):>10}   {k}\n")
            else:
                o.append(f"  {n:8d} {volume(vol(v)):>10} {volume(avg):>10}"
                         f"   {k}\n")
        o.append("\n")
    for by in ("message count", "volume"):
        table("sending hosts", s.sending_hosts, "Sending host", by,
              always=True)
    for by in ("message count", "volume"):
        table("local senders", s.local_senders, "Local sender", by)
    for by in ("message count", "volume"):
        table("host destinations", s.host_dest, "Host destination", by,
              True, always=True)
    for by in ("message count", "volume"):
        table("local destinations", s.local_dest, "Local destination", by,
              True)
    if s.errors:
        t = f"List of errors"
        o.append(f"{t}\n{'-' * len(t)}\n\n")
        for err, n in sorted(s.errors.items(), key=lambda x: (-x[1], x[0])):
            o.append(f"  {n:5d} {err}\n")
        o.append("\n")
    return "".join(o)


def _svg_bars(title: str, values: list[int], unit: str) -> str:
    w, h, pad = 24 * 22 + 60, 180, 40
    top = max(values) if any(values) else 1
    bars = []
    for i, v in enumerate(values):
        bh = int((h - 2 * pad) * v / top) if top else 0
        x = pad + i * 22
        y = h - pad - bh
        bars.append(f'<rect x="{x}" y="{y}" width="18" height="{bh}" '
                    f'fill="#4477aa"><title>{i:02d}-{i + 1:02d}: '
                    f'{html.escape(str(v))} {unit}</title></rect>'
                    f'<text x="{x + 9}" y="{h - pad + 14}" font-size="9" '
                    f'text-anchor="middle">{i:02d}</text>')
    return (f'<h3>{html.escape(title)}</h3><svg xmlns="http://www.w3.org/'
            f'2000/svg" width="{w}" height="{h}" role="img" '
            f'aria-label="{html.escape(title)}">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" '
            f'stroke="#000"/>' + "".join(bars) +
            f'<text x="{pad}" y="{pad - 10}" font-size="10">max '
            f'{html.escape(str(top))} {unit}</text></svg>\n')


def html_report(s: Stats, top: int = 50) -> str:
    text = text_report(s, top)
    rec = [s.received_per_hour.get(h, 0) for h in range(24)]
    vol = [s.received_volume_per_hour.get(h, 0) for h in range(24)]
    dlv = [s.delivered_per_hour.get(h, 0) for h in range(24)]
    out = ["<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
           f"<title>Exim statistics from {html.escape(s.first or '')} to "
           f"{html.escape(s.last or '')}</title></head><body>\n",
           f"<h1>Exim statistics from {html.escape(s.first or '')} to "
           f"{html.escape(s.last or '')}</h1>\n"]
    out.append("<h2>Grand total summary</h2>\n<table border=\"1\">"
               "<tr><th>TOTAL</th><th>Volume</th><th>Messages</th>"
               "<th>Addresses</th><th>Hosts</th><th>Delayed</th>"
               "<th>Failed</th></tr>\n")
    out.append(f"<tr><td>Received</td><td>{volume(s.received_volume)}</td>"
               f"<td>{s.received}</td><td></td>"
               f"<td>{len(s.received_hosts)}</td><td>{len(s.delayed)}</td>"
               f"<td>{len(s.failed)}</td></tr>\n")
    out.append(f"<tr><td>Delivered</td><td>{volume(s.delivered_volume)}"
               f"</td><td>{s.delivered_msgs}</td>"
               f"<td>{s.delivered_addresses}</td>"
               f"<td>{len(s.delivered_hosts)}</td><td></td><td></td></tr>"
               "\n</table>\n")
    out.append("<h2>Volume per hour</h2>\n")
    out.append(_svg_bars("Messages received per hour", rec, "messages"))
    out.append(_svg_bars("Volume received per hour", vol, "bytes"))
    out.append(_svg_bars("Deliveries per hour", dlv, "deliveries"))
    out.append("<h2>Full report</h2>\n<pre>" + html.escape(text) +
               "</pre>\n</body></html>\n")
    return "".join(out)


def _lines(names: list[str], stdin: TextIO) -> Iterable[str]:
    if not names:
        yield from stdin
        return
    for n in names:
        if n.endswith(".gz"):
            with gzip.open(n, "rt", encoding="utf-8",
                           errors="surrogateescape") as f:
                yield from f
        else:
            with open(n, encoding="utf-8", errors="surrogateescape") as f:
                yield from f


def main(argv: list[str], out: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    out = out or sys.stdout
    top, hist = 50, 1
    html_file: str | None = None
    want_html = False
    want_text = True
    names: list[str] = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "-txt" or a.startswith("-txt="):
            want_text = True
        elif a == "-html" or a.startswith("-html="):
            want_html = True
            want_text = False
            html_file = a[6:] or None
        elif a == "-t" and args:
            top = int(args.pop(0))
        elif a.startswith("-t") and a[2:].isdigit():
            top = int(a[2:])
        elif a == "-h" and args:
            hist = int(args.pop(0))
        elif a in ("-nt", "-ne", "-nr", "-nvr", "--nosort", "-q"):
            pass
        elif a in ("--version", "-version"):
            out.write("eximstats: eximpy\nbuild: 4.96\n")
            return 0
        elif a in ("--help", "-help"):
            out.write(__doc__ or "")
            return 0
        elif a.startswith("-"):
            sys.stderr.write(f"eximstats: unknown option {a}\n")
            return 1
        else:
            names.append(a)
    s = Stats()
    try:
        for line in _lines(names, stdin or sys.stdin):
            s.add(line)
    except OSError as e:
        sys.stderr.write(f"eximstats: {e}\n")
        return 1
    if want_text:
        out.write(text_report(s, top, hist))
    if want_html:
        page = html_report(s, top)
        if html_file:
            with open(html_file, "w", encoding="utf-8") as f:
                f.write(page)
        else:
            out.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
