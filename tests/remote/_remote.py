"""Shared set-up for the remote-delivery differential tests.

A message is received once by real Exim (-odq); the spool is copied; the
copy is delivered by real Exim (``exim -C conf -M id``) and by eximpy, each
time to the same scripted SMTP server (tests/remote/smtpserver.py) or real
Exim serving -bs on a socket.  The tests compare the main log lines and
what the server received.  Exim's view is kept as a golden file under
tests/golden/remote/ (refreshed from the live run).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from oracle import EXIM  # noqa: E402

DELIVER_MAIN = ROOT / "tests" / "delivery" / "deliver_main.py"
GOLDEN = ROOT / "tests" / "golden" / "remote"
WORK = ROOT / "tests" / "_work" / "remote"


def prepare(root: Path, conf_text: str, files: dict[str, str]) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log"):
        (root / d).mkdir(parents=True)
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.replace("@ROOT@", str(root)))
        p.chmod(0o644)
    conf = root / "exim.conf"
    conf.write_text(conf_text.replace("@ROOT@", str(root)))
    return conf


def receive(conf: Path, args: list[str], text: str) -> None:
    p = subprocess.run([EXIM, "-C", str(conf), "-odq"] + args,
                       input=text.encode(), capture_output=True)
    assert p.returncode == 0, p.stderr


def copy_spool(src: Path, dst: Path) -> None:
    shutil.rmtree(dst / "spool")
    shutil.copytree(src / "spool", dst / "spool")
    for d, _, fs in os.walk(dst / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in fs:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")


def ids_in(root: Path) -> list[str]:
    return sorted(f.name[:-2] for f in (root / "spool" / "input").glob("*-H"))


def resolv_wrap(resolv: Path) -> Callable[[list[str]], list[str]]:
    """Run a command in a private mount namespace whose /etc/resolv.conf
    is ``resolv`` (Exim and dnspython read only that file)."""
    def wrap(argv: list[str]) -> list[str]:
        return ["unshare", "-m", "sh", "-c",
                f"mount --bind {resolv} /etc/resolv.conf && exec \"$0\" \"$@\"",
                *argv]
    return wrap


def _ident(argv: list[str]) -> list[str]:
    return argv


def deliver_exim(conf: Path, mid: str, extra: list[str] | None = None,
                 wrap: Callable[[list[str]], list[str]] = _ident) -> None:
    subprocess.run(wrap([EXIM, "-C", str(conf)] + (extra or []) + ["-M", mid]),
                   capture_output=True, timeout=120)


def deliver_eximpy(conf: Path, mid: str, extra: list[str] | None = None,
                   wrap: Callable[[list[str]], list[str]] = _ident) -> None:
    p = subprocess.run(wrap([sys.executable, str(DELIVER_MAIN), "-C", str(conf)]
                            + (extra or []) + ["-M", mid]),
                       capture_output=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode not in (0, 1) or b"Traceback" in p.stderr:
        raise AssertionError(p.stderr.decode(errors="replace"))


def log_lines(root: Path, mids: list[str], port: int | None = None) -> list[str]:
    out = []
    path = root / "log" / "mainlog"
    if not path.exists():
        return out
    for ln in path.read_text().splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln).replace(str(root), "@ROOT@")
        if " <= " in ln:
            continue
        if not any(ln.startswith(m) for m in mids):
            continue
        out.append(normalize_line(ln, port))
    return out


def normalize_line(ln: str, port: int | None) -> str:
    # TLS cipher names differ between GnuTLS (Exim) and OpenSSL (eximpy)
    ln = re.sub(r" X=\S+", " X=<cipher>", ln)
    # the receiving server's message ids in C="... id=..."
    ln = re.sub(r"id=1\w{5}-\w{6}-\w{2}", "id=<srvid>", ln)
    ln = re.sub(r"\(SSL_connect\): .*|\(gnutls_handshake\): .*", "<tls error>", ln)
    if port:
        ln = ln.replace(f":{port}", ":<port>")
    # the local port of an outgoing connection (I=[ip]:port)
    ln = re.sub(r"( I=\[[^]]*\]):\d+", r"\1:<lport>", ln)
    return ln


def normalize_commands(cmds: list[str], port: int | None = None) -> list[str]:
    return [c.replace(f":{port}", ":<port>") if port else c for c in cmds]


def write_golden(name: str, text: str) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    (GOLDEN / name).write_text(text, errors="backslashreplace")


def run_both(name: str, conf_text: str, messages: list[tuple[list[str], str]],
             server: Any, files: dict[str, str] | None = None,
             between: Callable[[], None] | None = None,
             deliver_args: list[str] | None = None,
             wrap: Callable[[list[str]], list[str]] = _ident) -> dict[str, Any]:
    """Receive ``messages`` with Exim, deliver the same spool with Exim and
    with eximpy to ``server`` (an object with .sessions (list) and .port);
    return both views."""
    assert EXIM is not None, "real Exim is needed"
    work = WORK / name
    ex, py = work / "exim", work / "eximpy"
    conf_text = conf_text.replace("@PORT@", str(server.port))
    cex = prepare(ex, conf_text, files or {})
    cpy = prepare(py, conf_text, files or {})
    for args, text in messages:
        receive(cex, args, text)
    copy_spool(ex, py)
    mids = ids_in(ex)
    server.sessions.clear()
    for mid in mids:
        deliver_exim(cex, mid, deliver_args, wrap)
    ex_sessions = list(server.sessions)
    server.sessions.clear()
    if between:
        between()
    for mid in mids:
        deliver_eximpy(cpy, mid, deliver_args, wrap)
    py_sessions = list(server.sessions)
    res = {
        "mids": mids,
        "exim_log": log_lines(ex, mids, server.port),
        "eximpy_log": log_lines(py, mids, server.port),
        "exim_cmds": [normalize_commands(s.commands, server.port)
                      for s in ex_sessions],
        "eximpy_cmds": [normalize_commands(s.commands, server.port)
                        for s in py_sessions],
        "exim_data": [d for s in ex_sessions for d in getattr(s, "data", [])],
        "eximpy_data": [d for s in py_sessions for d in getattr(s, "data", [])],
        "exim_root": ex, "eximpy_root": py,
        "exim_queue": ids_in(ex), "eximpy_queue": ids_in(py),
    }
    golden = ["--- mainlog"] + [re.sub(r"\b1\w{5}-\w{6}-\w{2}\b", "<id>", ln)
                                for ln in res["exim_log"]]
    for k, cmds in enumerate(res["exim_cmds"]):
        golden.append(f"--- session {k + 1}")
        golden.extend(c if c.isprintable() else "<binary data>" for c in cmds)
    write_golden(name, "\n".join(golden) + "\n")
    return res
