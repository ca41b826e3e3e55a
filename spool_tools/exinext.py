"""exinext: show the retry data for an address, domain or host, as Exim's.

SUMMARY
    exinext [-C file] [-Dmacro=value ...] <address>|<domain>|<local-part>
    exinext --dump [<spool directory>]        (exim_dumpdb SPOOL retry)
    exinext --tidy [-t <time>] [<spool directory>]   (exim_tidydb, retry)

DESCRIPTION
    As Exim's exinext script: routes the address with ``eximpy -v -bt`` to
    find its hosts, builds the retry keys to look for (host:ip for each
    host, the full address, a message id, or local-part@qualify_domain for
    a bare local part), and prints every retry record whose dump line
    matches, in Exim's words:

        Transport: <host> [<ip>] error <n>: <text>
        Route: <domain> error <n>: <text>
          first failed: 25-Nov-2026 11:28:22
          last tried:   25-Nov-2026 11:28:22
          next try at:  25-Nov-2026 11:43:22
          past final cutoff time

    or "No retry data found for <subject>".  The records come from eximpy's
    retry database (an LMDB environment <spool>/db/retry, see
    eximpy.deliver.retry), not Exim's DBM file.

    --dump prints the database as ``exim_dumpdb <spool> retry`` does (two
    lines per record); --tidy removes records older than -t (default 30d)
    and message-specific records of messages no longer queued, as
    ``exim_tidydb`` does for the retry database.

SEE ALSO
    spec chapter 54 "Exim utilities" (exinext, exim_dumpdb, exim_tidydb);
    eximpy.deliver.retry.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import TextIO

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eximpy.deliver.retry import RetryRecord, read_all, tidy  # noqa: E402

USAGE = "Usage: exinext <address>|<domain>|<local-part>"


def print_time(t: int) -> str:
    return time.strftime("%d-%b-%Y %H:%M:%S", time.localtime(t))


def dump_lines(records: list[tuple[str, RetryRecord]]) -> list[str]:
    """exim_dumpdb's two lines per retry record."""
    out = []
    for key, r in records:
        out.append(f"  {key} {r.basic_errno} {r.more_errno} {r.text}")
        out.append(f"{print_time(r.first_failed)}  {print_time(r.last_try)}  "
                   f"{print_time(r.next_try)} {'*' if r.expired else ''}")
    return out


def _config_values(conf: str | None, macros: list[str]) -> tuple[str, str]:
    from spool_tools._common import load_config_quiet
    config = load_config_quiet(conf)
    spool = "/var/spool/exim4"
    qualify = ""
    if config is not None:
        spool = config.main.get("spool_directory") or spool
        qualify = config.main.get("qualify_domain") or \
            config.main.get("primary_hostname") or ""
    return spool, qualify


def _hosts(conf: str | None, macros: list[str], address: str,
           out: TextIO) -> list[str]:
    argv = [sys.executable, "-m", "eximpy"] + macros
    if conf:
        argv += ["-C", conf]
    argv += ["-v", "-bt", address]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"]
                                if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run(argv, capture_output=True, text=True, env=env,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in p.stdout.splitlines():
        m = re.match(r"\s*host (\S+)\s+\[(.+?)\]", line)
        if m:
            found.append(f"{m.group(1)}:{m.group(2)}")
        if "cannot be resolved" in line:
            out.write(line + "\n")
    return found


def show(subject: str, spool: str, qualify: str, hosts: list[str],
         out: TextIO) -> int:
    """The exinext report for ``subject`` given its routed hosts."""
    wanted = list(hosts)
    if not wanted:
        if re.fullmatch(r"\w{6}-\w{6}-\w{2}", subject):
            wanted.append(subject)
        if "@" not in subject and "." not in subject:
            wanted.append(f"{subject}@{qualify}")
        else:
            out.write(f"No remote hosts found for {subject}\n")
    wanted.append(subject)
    printed = False
    for key, r in read_all(spool):
        line = f"  {key} {r.basic_errno} {r.more_errno} {r.text}"
        for w in wanted:
            try:
                hit = re.search(w, line) is not None
            except re.error:
                hit = w in line
            if not hit:
                continue
            printed = True
            if re.match(r"T:[^:\s]*:", key):
                body = key[2:]
                parts = body.split(":")
                if len(parts) <= 4:
                    host, ip = parts[0], parts[1] if len(parts) > 1 else ""
                    port = parts[2] if len(parts) > 2 else None
                    mid = parts[3] if len(parts) > 3 else None
                else:
                    m = re.search(r"host\s(\S+)\s\[([^]]+)\]", r.text)
                    host, ip = (m.group(1), m.group(2)) if m else \
                        (parts[0], ":".join(parts[1:]))
                    port = mid = None
                out.write(f"Transport: {host} [{ip}]")
                if port is not None:
                    out.write(f":{port}")
                if mid is not None:
                    out.write(f" {mid}")
                out.write(f" error {r.basic_errno}: {r.text}\n")
            else:
                kind = {"R": "Route: ", "T": "Transport: "}.get(key[0], "")
                out.write(f"{kind}{key[2:]} error {r.basic_errno}: {r.text}\n")
            out.write(f"  first failed: {print_time(r.first_failed)}\n")
            out.write(f"  last tried:   {print_time(r.last_try)}\n")
            out.write(f"  next try at:  {print_time(r.next_try)}\n")
            if r.expired:
                out.write("  past final cutoff time\n")
    if not printed:
        out.write(f"No retry data found for {subject}\n")
    return 0


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = list(argv)
    if args[:1] == ["--version"]:
        out.write("exinext: eximpy\nbuild: 4.96\n")
        return 0
    if args[:1] in (["--dump"], ["--tidy"]):
        mode = args.pop(0)
        max_age = 30 * 86400
        if mode == "--tidy" and args[:1] == ["-t"] and len(args) > 1:
            from eximpy.config.options import readtime
            max_age = readtime(args[1])
            if max_age < 0:
                sys.stderr.write(f"exinext: bad time value {args[1]}\n")
                return 1
            args = args[2:]
        spool = args[0] if args else "/var/spool/exim4"
        if mode == "--dump":
            for line in dump_lines(read_all(spool)):
                out.write(line + "\n")
        else:
            out.write("Tidying Exim hints database "
                      f"{os.path.join(spool, 'db', 'retry')}\n")
            for key, why in tidy(spool, max_age):
                out.write(f"deleted {key} ({why})\n")
            out.write("Tidying complete\n")
        return 0
    conf = None
    macros: list[str] = []
    while args and args[0].startswith("-"):
        if args[0] == "-C" and len(args) > 1:
            conf = args[1]
            args = args[2:]
        elif args[0].startswith("-D"):
            macros.append(args.pop(0))
        else:
            break
    if not args or not args[0]:
        out.write(USAGE + "\n")
        return 1
    subject = args[0]
    m = re.fullmatch(r"([^@]*)@([^@]*)", subject)
    address = f"{m.group(1)}@{m.group(2).lower()}" if m else \
        f"User@{subject.lower()}"
    spool, qualify = _config_values(conf, macros)
    hosts = _hosts(conf, macros, address, out)
    return show(subject, spool, qualify, hosts, out)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        sys.exit(0)
