"""Real Exim as the receiving server, started per connection as inetd
would start it: a listener on a loopback address accepts a connection
and runs ``exim -C <conf> -bs`` with the connected TCP socket as its
standard input and output.  No Exim daemon is started; the server's
spool and logs are in the test's directory and nothing outlives stop()."""
from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path


class InetdExim:
    def __init__(self, exim: str, conf: Path, address: str = "127.0.0.2") -> None:
        self.exim = exim
        self.conf = conf
        self.sessions: list = []          # (nothing recorded: see the logs)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(8)
        self.procs: list[subprocess.Popen] = []
        self._stop = False
        self._t = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> "InetdExim":
        self._t.start()
        return self

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            p = subprocess.Popen([self.exim, "-C", str(self.conf), "-bs"],
                                 stdin=c.fileno(), stdout=c.fileno(),
                                 stderr=subprocess.DEVNULL)
            c.close()
            self.procs.append(p)

    def wait(self) -> None:
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    def stop(self) -> None:
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
