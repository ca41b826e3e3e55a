"""The systemd units verify, and the launcher speaks sd_notify."""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from eximpy.proc.launcher import sd_notify
from oracle import ROOT

UNITS = ["eximpy.service", "eximpy-nonroot.service"]


def test_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed"
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        # Point the unit at this checkout instead of an installed eximpy.
        text = text.replace("/usr/bin/eximpy", str(ROOT / "bin" / "eximpy"))
        (tmp_path / unit).write_text(text)
        p = subprocess.run([analyze, "verify", str(tmp_path / unit)],
                           capture_output=True, text=True)
        problems = [ln for ln in p.stderr.splitlines()
                    if unit in ln or "eximpy" in ln]
        assert p.returncode == 0 and not problems, p.stderr


def test_unit_settings() -> None:
    svc = (ROOT / "systemd" / "eximpy.service").read_text()
    assert "Type=notify" in svc and "ExecReload=/bin/kill -HUP $MAINPID" in svc
    assert "ProtectSystem=strict" in svc and "PrivateTmp=yes" in svc
    nonroot = (ROOT / "systemd" / "eximpy-nonroot.service").read_text()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in nonroot
    assert "NoNewPrivileges=yes" in nonroot
    assert "u eximpy" in (ROOT / "systemd" / "eximpy.sysusers.conf").read_text()


def test_sd_notify_sends_ready(tmp_path: Path, monkeypatch) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1")
        assert s.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")
