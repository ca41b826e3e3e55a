"""Real scanners for the content-scanning tests: clamd, spamd, a sock server.

clamd (Debian clamav-daemon) runs with its own configuration, a private
UNIX socket and TCP port on 127.0.0.1, and a DatabaseDirectory that holds
only TEST_SIG (a one-line .ndb signature for the string VIRUS_TEXT): there
is no network to download signatures.  spamd (Debian spamassassin) runs on
127.0.0.1 with local tests only (-L) and the rules in SPAM_RULES: a body
rule scoring 12.5 for SPAM_TEXT and a Subject: rule scoring 2.3 for
MILD_SUBJECT.  Both are started once per test session; a test fails (no
skip) when they cannot be started.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

VIRUS_TEXT = "EXIMPY-TEST-VIRUS-SIGNATURE"
VIRUS_NAME = "EximTestSig.UNOFFICIAL"
SPAM_TEXT = "EXIMPY-SPAM-TEST"
MILD_SUBJECT = "eximpy-mild"
SPAM_RULES = f"""body EXIMPY_TEST /{SPAM_TEXT}/
describe EXIMPY_TEST Test string for eximpy
score EXIMPY_TEST 12.5
header EXIMPY_SUBJ Subject =~ /{MILD_SUBJECT}/
describe EXIMPY_SUBJ Mild test subject
score EXIMPY_SUBJ 2.3
required_score 5
clear_report_template
report Test report: _SCORE_ points, _REQD_ required
report
report _SUMMARY_
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, what: str, log: Path | None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    extra = log.read_text(errors="replace")[-2000:] if log and log.exists() \
        else ""
    raise RuntimeError(f"{what} did not start\n{extra}")


def _can_connect(addr) -> bool:
    fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(addr)
        return True
    except OSError:
        return False


class Clamd:
    def __init__(self, base: Path) -> None:
        clamd = shutil.which("clamd") or "/usr/sbin/clamd"
        if not os.path.exists(clamd):
            raise RuntimeError("clamd is not installed (Debian package "
                               "clamav-daemon)")
        self.dir = base
        if base.exists():
            shutil.rmtree(base)
        (base / "db").mkdir(parents=True)
        (base / "db" / "eximpy.ndb").write_text(
            f"EximTestSig:0:*:{VIRUS_TEXT.encode().hex()}\n")
        self.socket = str(base / "clamd.sock")
        self.port = free_port()
        conf = base / "clamd.conf"
        conf.write_text(f"LocalSocket {self.socket}\nTCPSocket {self.port}\n"
                        f"TCPAddr 127.0.0.1\nDatabaseDirectory {base}/db\n"
                        f"Foreground yes\nUser root\n"
                        f"LogFile {base}/clamd.log\n")
        self.log = base / "clamd.out"
        self.proc = subprocess.Popen([clamd, "-c", str(conf)],
                                     stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _wait(lambda: _can_connect(self.socket) and
              _can_connect(("127.0.0.1", self.port)), 90, "clamd",
              self.log)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Spamd:
    def __init__(self, base: Path) -> None:
        spamd = shutil.which("spamd") or "/usr/sbin/spamd"
        if not os.path.exists(spamd):
            raise RuntimeError("spamd is not installed (Debian packages "
                               "spamassassin, spamd)")
        if base.exists():
            shutil.rmtree(base)
        (base / "rules").mkdir(parents=True)
        (base / "site").mkdir()
        (base / "rules" / "local.cf").write_text(SPAM_RULES)
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, base / "site")
        tlds = Path("/usr/share/spamassassin/20_aux_tlds.cf")
        if tlds.exists():
            shutil.copy(tlds, base / "rules")
        self.port = free_port()
        self.socket = str(base / "spamd.sock")
        self.log = base / "spamd.out"
        self.proc = subprocess.Popen(
            [spamd, "-L", "-C", str(base / "rules"),
             f"--siteconfigpath={base}/site",
             f"--listen=127.0.0.1:{self.port}", f"--listen={self.socket}",
             "-u", "nobody", "-x",
             "--max-children=2", "-s", "stderr"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        _wait(lambda: _can_connect(("127.0.0.1", self.port)) and
              _can_connect(self.socket), 90, "spamd", self.log)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class SockScanner:
    """A "sock" scanner on a UNIX socket: reads a command line naming the
    .eml file and answers "VIRUS <name>" when VIRUS_TEXT is in the file,
    else "CLEAN"."""

    def __init__(self, path: str, delay: float = 0) -> None:
        self.path = path
        self.delay = delay
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.commands: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                data = b""
                c.settimeout(5)
                while not data.endswith(b"\n"):
                    try:
                        b = c.recv(4096)
                    except OSError:
                        break
                    if not b:
                        break
                    data += b
                    c.settimeout(0.3)
                cmd = data.decode().strip()
                self.commands.append(cmd)
                fname = cmd.split()[-1] if cmd else ""
                try:
                    body = Path(fname).read_text(errors="replace")
                except OSError:
                    body = ""
                time.sleep(self.delay)
                try:
                    c.sendall(b"VIRUS Sock.Test.Virus found\n"
                              if VIRUS_TEXT in body else b"CLEAN\n")
                except OSError:
                    pass

    def stop(self) -> None:
        self.srv.close()


class FakeSpamd:
    """A TCP server that records each request (headers and body, read by
    Content-length) and answers with ``reply`` (bytes); for checking what
    Exim and eximpy send, and the Rspamd variant (no rspamd package)."""

    def __init__(self, reply: bytes, delay: float = 0) -> None:
        self.reply = reply
        self.delay = delay
        self.requests: list[bytes] = []
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        b = c.recv(65536)
                        if not b:
                            break
                        data += b
                    head, _, body = data.partition(b"\r\n\r\n")
                    n = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            n = int(line.split(b":")[1])
                    while len(body) < n:
                        b = c.recv(65536)
                        if not b:
                            break
                        body += b
                    self.requests.append(head + b"\r\n\r\n" + body)
                    time.sleep(self.delay)
                    c.sendall(self.reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self.srv.close()


class FakeClamd:
    """A UNIX-socket stand-in for clamd with a canned answer, counting the
    scans asked for (odd answers real clamd will not give on demand)."""

    def __init__(self, path: str, reply: bytes) -> None:
        self.path = path
        self.reply = reply
        self.commands: list[bytes] = []
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"\n" not in data:
                        b = c.recv(4096)
                        if not b:
                            break
                        data += b
                    self.commands.append(data)
                    c.sendall(self.reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self.srv.close()
