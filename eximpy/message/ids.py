"""Exim 4.96 message ids: generation, validation and parsing.

SUMMARY
    new_message_id(localhost_number=None) -> str
    is_message_id(text) -> bool          (4.96 16-char form or 4.97 23-char form)
    parse_message_id(text) -> MessageIdInfo
    base62_encode(n, width) / base62_decode(text)

DESCRIPTION
    A 4.96 id is ``TTTTTT-PPPPPP-SS`` in base 62 (alphabet ``0-9A-Za-z``):
    seconds since the epoch, the pid field, and the fraction of the second
    in 5 ms ticks (with ``localhost_number`` N: ``N*200 + tick``).  4.97's
    ``TTTTTT-PPPPPPPPPPP-SSSS`` form (11-char pid, microseconds/2 or
    ``N*500000 + usec/2``) is accepted wherever ids are parsed.

    Uniqueness without Exim's 5 ms sleep per message (DESIGN.md section 6):
    the pid field holds ``pid + PID_SPAN * seq`` where PID_SPAN is Linux's
    hard PID_MAX_LIMIT (2**22, a constant, so the decomposition never
    depends on the runtime pid_max) and ``seq`` counts the ids this process
    made in the current second.  Two live processes never share a pid, and
    one process never repeats (second, seq), so ids are unique and, within
    one process, strictly increasing in sort order.  The one case left is
    pid reuse: a process that exits and a later process with the same pid.
    Exim covers it by sleeping after every id; eximpy sleeps at most once
    per process, at exit, until the tick of its last id has passed (an
    ``atexit`` hook), so the later process's ids carry later ticks.  For
    seq 0 the id is exactly the one Exim itself would make, so ids from
    real Exim and eximpy processes on the same spool cannot clash either.
    After fork() the child notices its new pid and starts its own count.

    The per-process counter is a cache-like private state object, not a
    configuration global.

SEE ALSO
    spec chapter "Format of spool files" (message ids), EXIM-INVENTORY 3.1.
"""
from __future__ import annotations

import atexit
import os
import re
import time
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {c: i for i, c in enumerate(ALPHABET)}

ID_RESOLUTION_USEC = 5000          # 4.96: 1/200 s in both branches
TICKS_PER_SECOND = 1_000_000 // ID_RESOLUTION_USEC
PID_SPAN = 1 << 22                 # Linux PID_MAX_LIMIT on 64-bit
PID_FIELD_MAX = 62 ** 6
MAX_SEQ = PID_FIELD_MAX // PID_SPAN - 1   # 13541 ids per second per process
MESSAGE_ID_LENGTH = 16
MESSAGE_ID_LENGTH_497 = 23

ID_RE = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
ID_RE_497 = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}")
ANY_ID_RE = re.compile(
    r"[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{2}|"
    r"[0-9A-Za-z]{11}-[0-9A-Za-z]{4})")


def base62_encode(n: int, width: int) -> str:
    """Encode a non-negative int as exactly ``width`` base-62 digits."""
    if n < 0:
        raise ValueError("negative value for base 62")
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    if n:
        raise ValueError("value too large for base-62 width")
    return "".join(reversed(out))


def base62_decode(text: str) -> int:
    """Decode base-62 digits (``ValueError`` on any other character)."""
    n = 0
    for c in text:
        d = _DIGIT.get(c)
        if d is None:
            raise ValueError(f"bad base-62 digit {c!r}")
        n = n * 62 + d
    return n


def is_message_id(text: str) -> bool:
    """True for a 4.96 (16-char) or 4.97 (23-char) message id."""
    return ANY_ID_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class MessageIdInfo:
    """What a message id says: time received, pid field, fraction, host."""

    id: str
    time: int            # seconds since the epoch
    pid_field: int       # the raw pid field (may carry eximpy's seq)
    pid: int             # pid_field modulo PID_SPAN (the process id)
    fraction: int        # the raw sub-second field
    usec: int            # sub-second time in microseconds (host removed)
    localhost_number: int | None   # only meaningful when the caller knows
    new_format: bool     # True for 4.97's 23-char ids


def parse_message_id(text: str, localhost_number: int | None = None
                     ) -> MessageIdInfo:
    """Decode a message id; ``ValueError`` if it is not one.

    ``localhost_number`` must be given when ids were made with one, since
    the id alone cannot tell (as in Exim).
    """
    if ID_RE.fullmatch(text):
        t, p, s = text.split("-")
        frac = base62_decode(s)
        if localhost_number is not None:
            host, tick = divmod(frac, TICKS_PER_SECOND)
        else:
            host, tick = None, frac
        usec = tick * ID_RESOLUTION_USEC
        new = False
    elif ID_RE_497.fullmatch(text):
        t, p, s = text.split("-")
        frac = base62_decode(s)
        if localhost_number is not None:
            host, half = divmod(frac, 500000)
        else:
            host, half = None, frac
        usec = half * 2
        new = True
    else:
        raise ValueError(f"{text!r} is not a message id")
    pf = base62_decode(p)
    return MessageIdInfo(text, base62_decode(t), pf, pf % PID_SPAN, frac,
                         usec, host, new)


class _IdState:
    """Per-process counter (private; reset when the pid changes)."""

    def __init__(self) -> None:
        self.pid = -1
        self.second = -1
        self.seq = 0
        self.last_tick_end = 0.0     # epoch time at which the last id's tick ends
        self.hooked = False

    def exit_guard(self) -> None:
        # Sleep (once per process) until the tick of our last id is over,
        # so a later process that gets our pid cannot make the same id.
        if self.pid != os.getpid():
            return
        delay = self.last_tick_end - time.time()
        if 0 < delay <= 1:
            time.sleep(delay)


_STATE = _IdState()


def new_message_id(localhost_number: int | None = None,
                   now: float | None = None) -> str:
    """Make a new, unique 4.96-format message id (no per-message sleep).

    ``localhost_number`` (0..16) selects Exim's host-number variant of the
    fraction field.  ``now`` is for tests (a fixed clock); normally the
    current time is used.
    """
    if localhost_number is not None and not 0 <= localhost_number <= 16:
        raise ValueError("localhost_number must be 0..16")
    st = _STATE
    pid = os.getpid()
    if st.pid != pid:
        st.pid, st.second, st.seq = pid, -1, 0
        if not st.hooked:
            atexit.register(st.exit_guard)
            st.hooked = True
    while True:
        t = time.time() if now is None else now
        sec = int(t)
        usec = int((t - sec) * 1_000_000)
        if sec < st.second:          # clock stepped back: keep counting
            sec = st.second
            usec = 999_999
        if sec != st.second:
            st.second, st.seq = sec, 0
            break
        if st.seq < MAX_SEQ:
            st.seq += 1
            break
        if now is not None:
            raise RuntimeError("message id sequence exhausted for this second")
        time.sleep(max(0.0, sec + 1 - time.time()))
    tick = usec // ID_RESOLUTION_USEC
    st.last_tick_end = sec + (tick + 1) * ID_RESOLUTION_USEC / 1_000_000
    frac = tick if localhost_number is None else \
        localhost_number * TICKS_PER_SECOND + tick
    return "-".join((base62_encode(sec, 6),
                     base62_encode(pid % PID_SPAN + PID_SPAN * st.seq, 6),
                     base62_encode(frac, 2)))


def external_id(message_id: str) -> str:
    """The id as used in Message-Id: headers (``E`` prefix, as Exim)."""
    return "E" + message_id
