"""Helpers shared by the daemon tests: ports, waiting, the process tree."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 15.0, what: str = "condition"):
    """Poll ``pred`` until it returns something true; fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            st = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        out[int(d)] = (ppid, cmd.replace(b"\0", b" ").decode(errors="replace")
                       .strip())
    return out


def roles_of(launcher_pid: int) -> dict[str, int]:
    """The eximpy roles started by a launcher: role name -> pid."""
    out = {}
    for pid, (ppid, cmd) in processes().items():
        if ppid == launcher_pid and cmd.startswith("eximpy: "):
            out[cmd[len("eximpy: "):]] = pid
    return out
