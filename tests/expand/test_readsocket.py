"""${readsocket} against real Unix and TCP servers, compared with Exim."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.expand.conftest import WORK
from tests.expand.test_differential import compare


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            c, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=_handle, args=(c,), daemon=True).start()


def _handle(c: socket.socket) -> None:
    with c:
        data = b""
        c.settimeout(10)
        try:
            while b"\n" not in data:
                b = c.recv(1024)
                if not b:
                    break
                data += b
        except OSError:
            return
        if data.startswith(b"sleep"):
            time.sleep(3)
        try:
            c.sendall(b"ECHO:" + data.strip().upper() + b"\nline2\n")
        except OSError:
            pass


@pytest.fixture(scope="module")
def servers(work):
    path = str(WORK / "sock")
    if os.path.exists(path):
        os.unlink(path)
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(path)
    u.listen(8)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 47531))
    t.listen(8)
    for s in (u, t):
        threading.Thread(target=_serve, args=(s,), daemon=True).start()
    yield
    u.close()
    t.close()


CASES = [
    "${readsocket{@W@/sock}{hello\\n}}", "${readsocket{@W@/sock}{hello\\n}{5s}{|}}",
    "${readsocket{@W@/sock}{hello\\n}{5s}{}}", "${readsocket{@W@/sock}{}}",
    "${readsocket{@W@/sock}{hi}}", "${readsocket{@W@/sock}{hi\\n}{5s:shutdown=no}}",
    "${readsocket{inet:127.0.0.1:47531}{tcp\\n}}", "${readsocket{inet:localhost:47531}{x\\n}{2s}}",
    "${readsocket{inet:127.0.0.1:47531}{sleep\\n}{1s}{}{timed out}}",
    "${readsocket{@W@/sock}{sleep\\n}{1s}}", "${readsocket{@W@/nosock}{x}{1s}{}{fallback $value}}",
    "${readsocket{inet:127.0.0.1:1}{x}{1s}{}{refused}}",
    "${readsocket{inet:127.0.0.1:xyzzy}{x}}", "${readsocket{@W@/sock}{a\\n}{x}}",
    "${uc:${readsocket{@W@/sock}{nested\\n}}}",
    "${if eq{${readsocket{@W@/sock}{q\\n}}}{ECHO:Q\\nline2\\n}{same}{different}}",
]


def test_readsocket(servers):
    compare("readsocket", CASES)
