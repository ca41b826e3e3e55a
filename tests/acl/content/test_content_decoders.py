"""The base64 fast path (binascii) gives the bytes of the byte-level port
of Exim's decoder (which the differential cases check against Exim) on
random well-formed and malformed inputs."""
from __future__ import annotations

import random


def test_b64_fast_path_equals_exim_decoder() -> None:
    from eximpy.smtp.mime import MimePart, Stream, _decode_b64, \
        _decode_b64_exim
    rnd = random.Random(20261125)
    alpha = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
             b"0123456789+/")
    for _ in range(3000):
        k = rnd.randrange(0, 60)
        d = bytes(rnd.choice(alpha) for _ in range(k))
        if rnd.random() < 0.3:
            d += b"=" * rnd.randrange(1, 3)
        if rnd.random() < 0.3:
            d = d[:k // 2] + rnd.choice([b"\n", b"\r\n", b"\n\n"]) + d[k // 2:]
        if rnd.random() < 0.1:
            d = d.replace(b"A", rnd.choice([b"!", b" ", b"\0", b"\r"]))
        d += b"\n"
        fast = _decode_b64(MimePart(Stream(d), 0, None, "base64", None))
        slow = _decode_b64_exim(MimePart(Stream(d), 0, None, "base64",
                                         None))
        assert fast == slow, d
