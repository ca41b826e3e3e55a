"""exiwhat: what is each eximpy process doing right now?

SUMMARY
    exiwhat [-C config] [-D MACRO=v ...]

DESCRIPTION
    As Exim's exiwhat: empties the process log file (process_log_path,
    by default <spool_directory>/exim-process.info), sends SIGUSR1 to
    every eximpy process (found by the "eximpy: " process titles that
    eximpy.proc.skeleton sets), waits a moment, and prints what they wrote:
    one line per process, "<pid> <activity>".

SECURITY
    Signalling the daemon's processes needs root or the exim user, as with
    Exim.

SEE ALSO
    spec chapter "Exim utilities", exiwhat.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def eximpy_pids() -> list[int]:
    """Processes whose title starts with "eximpy: " (not this one)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"eximpy: "):
            out.append(int(d))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="exiwhat")
    ap.add_argument("-C", dest="config")
    ap.add_argument("-D", dest="macros", action="append", default=[])
    ap.add_argument("--wait", type=float, default=1.0,
                    help="seconds to wait for the answers (default 1)")
    a = ap.parse_args(argv)
    from eximpy.config import DEFAULT_SEARCH_PATH, ConfigError, load_config
    from eximpy.proc.skeleton import process_log_path
    macros = dict(m.partition("=")[::2] for m in a.macros)
    try:
        config = load_config(a.config or DEFAULT_SEARCH_PATH, macros)
    except ConfigError as e:
        sys.stderr.write(e.exim_text() + "\n")
        return 1
    from eximpy.proc.jail import host_view
    path = process_log_path(host_view(config))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)
    except OSError as e:
        sys.stderr.write(f"exiwhat: cannot empty {path}: {e.strerror}\n")
        return 1
    pids = eximpy_pids()
    if not pids:
        print("No exim process data")
        return 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            pass
    time.sleep(a.wait)
    with open(path) as f:
        sys.stdout.write(f.read())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
