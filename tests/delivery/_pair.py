"""Shared set-up for delivery differential tests: receive messages once
with real Exim (-odq), copy the spool, deliver one copy with Exim (-M) and
the other with eximpy, and give back both directories."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from oracle import EXIM

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DELIVER_MAIN = HERE / "deliver_main.py"


def prepare(root: Path, conf_text: str, files: dict[str, str | None]) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    (root / "mail").chmod(0o777)
    for name, text in files.items():
        p = root / name
        if text is None:          # an existing, empty file owned by root
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("")
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.replace("@ROOT@", str(root)))
        p.chmod(0o644)
    conf = root / "exim.conf"
    conf.write_text(conf_text.replace("@ROOT@", str(root)))
    return conf


def run_pair(work: Path, conf_text: str, messages: list[tuple[list[str], str]],
             files: dict[str, str | None] | None = None,
             pause: float = 0, home_hook: Any = None) -> tuple[Path, Path, list[str]]:
    assert EXIM is not None, "real Exim is needed"
    ex, py = work / "exim", work / "eximpy"
    cex = prepare(ex, conf_text, files or {})
    cpy = prepare(py, conf_text, files or {})
    if home_hook is not None:
        home_hook(ex)
        home_hook(py)
    for args, text in messages:
        p = subprocess.run([EXIM, "-C", str(cex), "-odq"] + args,
                           input=text.encode(), capture_output=True)
        assert p.returncode == 0, p.stderr
    if pause:
        import time
        time.sleep(pause)
    ids = sorted(f.name[:-2] for f in (ex / "spool" / "input").glob("*-H"))
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, fs in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in fs:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    for mid in ids:
        subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
        subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M", mid],
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return ex, py, ids


def log_lines(root: Path, ids: list[str]) -> list[str]:
    out = []
    for ln in (root / "log" / "mainlog").read_text().splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln).replace(str(root), "@ROOT@")
        if ln[:16] in ids and " <= " not in ln:
            out.append(ln)
    return out


def mbox_text(p: Path) -> bytes | None:
    if not p.exists():
        return None
    b = p.read_bytes()
    b = re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", b)
    return re.sub(rb"(?m)^Delivery-date: .*$", b"Delivery-date: DATE", b)


def spool_reports(root: Path, parents: list[str]) -> list[tuple[list[str], str]]:
    """Messages queued besides ``parents`` (bounces, DSNs, warnings): their
    headers (without Received/Message-Id/Date) and bodies, boundaries
    normalized."""
    out = []
    for f in sorted((root / "spool" / "input").glob("*-H")):
        mid = f.name[:-2]
        if mid in parents:
            continue
        text = f.read_text()
        hdrs = [re.sub(r"\d+-eximdsn-\d+", "B", ln[5:])
                for ln in re.findall(r"(?m)^\d{3}[A-Z* ] [^\n]*", text)
                if not ln[5:].startswith(("Received:", "Message-Id:", "Date:"))]
        body = (root / "spool" / "input" / f"{mid}-D").read_text().split("\n", 1)[1]
        out.append((hdrs, re.sub(r"\d+-eximdsn-\d+", "B", body)))
    return sorted(out)
