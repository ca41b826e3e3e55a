"""Which addresses the daemon listens on (eximpy.proc.launcher
listen_addresses), for the local_interfaces / daemon_smtp_ports / -oX forms
the Exim manual gives (spec 13.x "Listening on several ports ...")."""
from __future__ import annotations

import pytest

from eximpy.proc.launcher import listen_addresses


class _Main(dict):
    def get(self, k, d=None):            # noqa: D401
        return super().get(k, d)


class _Config:
    def __init__(self, **kw):
        self.main = _Main(kw)


@pytest.mark.parametrize("interfaces,ports,ox,want", [
    ("127.0.0.1", "25 : 587", None, [("127.0.0.1", 25), ("127.0.0.1", 587)]),
    ("<; 127.0.0.1.1225 ; ::1.1226", "25", None,
     [("127.0.0.1", 1225), ("::1", 1226)]),
    ("<; [192.168.23.65]:1234 ; [3ffe:ffff:836f::fe86:a061]:1234", "25",
     None, [("192.168.23.65", 1234), ("3ffe:ffff:836f::fe86:a061", 1234)]),
    ("<; [127.0.0.1]:2641", "25", None, [("127.0.0.1", 2641)]),
    ("127.0.0.1", "25", "2525", [("127.0.0.1", 2525)]),
    ("127.0.0.1", "25", "<; [::1]:2600 ; 127.0.0.1.2601",
     [("::1", 2600), ("127.0.0.1", 2601)]),
])
def test_listen_addresses(interfaces, ports, ox, want):
    cfg = _Config(local_interfaces=interfaces, daemon_smtp_ports=ports)
    assert listen_addresses(cfg, ox) == want
