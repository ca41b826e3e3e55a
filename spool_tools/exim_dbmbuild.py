"""exim_dbmbuild: build a keyed database file from an lsearch-format file.

DESCRIPTION
    exim_dbmbuild [-nolc] [-nozero] [-lastdup] [-nowarn] <source> <output>

    Reads "key: data" lines (continuation lines start with white space,
    '#' lines are comments, keys may be "quoted") and writes a Berkeley DB
    hash file, as Debian's Exim's own tool does: real Exim's dbm, dbmnz and
    dbmjz lookups read it, and eximpy's read files Exim's tool built (see
    eximpy/lookups/dbm.py).  Keys are lowercased
    unless -nolc; a NUL is appended to keys and data unless -nozero; the
    first of duplicate keys wins unless -lastdup.  Prints "N entries
    written" and, for duplicates, a count and '** Duplicate key "k"' lines
    (unless -nowarn); the exit status is 1 when there were duplicates or
    on errors (with Exim's 'unable to open' / 'unable to create' texts).

SEE ALSO
    spec section "exim_dbmbuild".
"""
from __future__ import annotations

import os
import sys


def _entries(text: str):
    lines = text.split("\n")
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#") or line[0] in " \t":
            continue
        if line.startswith('"'):
            j = 1
            key = []
            while j < len(line) and line[j] != '"':
                if line[j] == "\\" and j + 1 < len(line):
                    j += 1
                key.append(line[j])
                j += 1
            k = "".join(key)
            rest = line[j + 1:]
        else:
            j = 0
            while j < len(line) and line[j] not in ": \t":
                j += 1
            k = line[:j]
            rest = line[j:]
        rest = rest.lstrip(" \t")
        if rest.startswith(":"):
            rest = rest[1:].lstrip(" \t")
        data = [rest.rstrip()]
        while i < n and lines[i][:1] in (" ", "\t") and lines[i].strip():
            data.append(" " + lines[i].strip())
            i += 1
        yield k, "".join(data)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    lc = zero = True
    lastdup = False
    warn = True
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a == "-nolc":
            lc = False
        elif a == "-nozero":
            zero = False
        elif a == "-lastdup":
            lastdup = True
        elif a == "-nowarn":
            warn = False
        else:
            args = []
            break
    if len(args) != 2:
        print("usage: exim_dbmbuild [-nolc] <source file> <dbm base name>")
        return 1
    src, dst = args
    try:
        with open(src, "rb") as f:
            text = f.read().decode("latin-1")
    except OSError as e:
        print(f"exim_dbmbuild: unable to open {src}: {e.strerror}")
        return 1
    seen: dict[bytes, bytes] = {}
    dups = []
    for k, d in _entries(text):
        if lc:
            k = k.lower()
        kb = k.encode("latin-1") + (b"\0" if zero else b"")
        db = d.encode("latin-1") + (b"\0" if zero else b"")
        if kb in seen:
            dups.append(k)
            if lastdup:
                seen[kb] = db
            continue
        seen[kb] = db
    from eximpy.lookups.dbm import build
    try:
        build(seen.items(), dst)
    except Exception as e:  # Berkeley DB or file system errors
        code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
        why = os.strerror(code) if code > 0 else str(e)
        print(f"exim_dbmbuild: unable to create {dst}.dbmbuild_temp: {why}")
        return 1
    n = len(seen)
    print(f"{n} entr{'y' if n == 1 else 'ies'} written")
    if dups:
        print(f"{len(dups)} duplicate key{'' if len(dups) == 1 else 's'} ")
        if warn:
            for k in dups:
                sys.stderr.write(f'** Duplicate key "{k}"\n')
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
