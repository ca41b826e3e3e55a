"""A dnsmasq on a free loopback address for the ACL tests (root only).

start(records, work) -> (process, resolv.conf path); stop(process);
bh_norm(text, d): a -bh transcript with the work directory and dates
replaced, for comparing Exim's with eximpy's.
Exim reads /etc/resolv.conf only, so tests run it through exim_argv(),
which bind-mounts the test resolv.conf in a private mount namespace.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ADDRS = [f"127.0.0.{n}" for n in range(100, 130)]


def start(records: list[str], work: Path) -> tuple[subprocess.Popen, Path]:
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    assert os.path.exists(exe), "dnsmasq is needed: apt-get install dnsmasq-base"
    work.mkdir(parents=True, exist_ok=True)
    for addr in ADDRS:
        p = subprocess.Popen([exe, "--keep-in-foreground", "--no-resolv",
                              "--no-hosts", f"--listen-address={addr}",
                              "--bind-interfaces", "--port=53",
                              "--local=/example/",
                              f"--pid-file={work / 'dnsmasq.pid'}",
                              "--log-facility=/dev/null"] + records,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if p.poll() is None:
            break
    assert p.poll() is None, "dnsmasq did not start"
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {addr}\n")
    return p, resolv


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def exim_argv(exim: str, resolv: Path, args: list[str]) -> list[str]:
    return ["unshare", "-m", "sh", "-c",
            f"mount --bind {resolv} /etc/resolv.conf && exec {exim} "
            + " ".join(args)]


def bh_norm(text: str, d: Path) -> str:
    """A -bh transcript made comparable: CRLF as LF, the work directory as
    DIR, RFC 2822 dates as DATE."""
    import re
    text = text.replace("\r\n", "\n").replace(str(d), "DIR")
    return re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                  "DATE", text)
