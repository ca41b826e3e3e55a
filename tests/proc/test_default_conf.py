"""What `make run` starts: conf/default.conf, driven by swaks.

The embedded default configuration must work as shipped: mail from a relay
host (127.0.0.1) to an existing mailbox lands in its Maildir; a client that
is not a relay host gets Exim's verify=recipient rejection for an unknown
user and "relay not permitted" for a remote domain.
"""
from __future__ import annotations

import mailbox
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from oracle import ROOT
from proc_support import free_port, wait_for


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def _swaks(port: int, to: str, src: str = "127.0.0.1") -> str:
    swaks = shutil.which("swaks")
    assert swaks, "swaks is needed (make test installs it)"
    p = subprocess.run([swaks, "--server", f"127.0.0.1:{port}", "--to", to,
                        "--from", "someone@example.com", "--local-interface",
                        src, "--header", "Subject: via swaks"],
                       capture_output=True, text=True, timeout=60)
    return p.stdout


def test_default_conf_with_swaks() -> None:
    assert os.geteuid() == 0
    exim = pwd.getpwnam("eximpy")
    var = Path(tempfile.mkdtemp(prefix="eximpy-run-"))
    var.chmod(0o755)
    (var / "mail" / "eximpy").mkdir(parents=True)
    for p in (var, var / "mail", var / "mail" / "eximpy"):
        os.chown(p, exim.pw_uid, exim.pw_gid)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "eximpy", "-C", str(ROOT / "conf/default.conf"),
         f"-DEXIMPY_VAR={var}", "-DEXIMPY_USER=eximpy", "-bdf", "-q1m",
         "-oX", str(port)], env=env)
    try:
        wait_for(lambda: _connects(port), 20, what="the listener")
        out = _swaks(port, "eximpy@localhost")
        assert "<-  250 OK id=" in out, out
        maildir = var / "mail" / "eximpy"
        try:
            wait_for(lambda: (maildir / "new").exists() and
                     any((maildir / "new").iterdir()), 20, what="delivery")
        except AssertionError:
            logs = "".join(p.read_text() for p in sorted(
                (var / "log").glob("*log")))
            raise AssertionError("no delivery within 20 s; logs:\n" + logs)
        [msg] = list(mailbox.Maildir(str(maildir), create=False))
        assert msg["Subject"] == "via swaks"
        assert msg["Return-path"] == "<someone@example.com>"
        assert msg["Envelope-to"] == "eximpy@localhost"
        assert msg["Delivery-date"]
        f = next((maildir / "new").iterdir())
        assert f.stat().st_uid == exim.pw_uid
        # Not a relay host: recipients are verified, relaying is refused.
        out = _swaks(port, "nosuchuser@localhost", src="127.0.0.2")
        assert "<** 550 Unknown user" in out, out
        out = _swaks(port, "someone@remote.example", src="127.0.0.2")
        assert "<** 550 relay not permitted" in out, out
        main = (var / "log" / "mainlog").read_text()
        assert "=> eximpy <eximpy@localhost> R=local_maildir " \
               "T=maildir_delivery" in main
        reject = (var / "log" / "rejectlog").read_text()
        assert "rejected RCPT <someone@remote.example>: relay not permitted" \
            in reject
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        shutil.rmtree(var, ignore_errors=True)
