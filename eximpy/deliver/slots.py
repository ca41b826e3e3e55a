"""Delivery slots: long-lived forked children that deliver message after
message (so that their warm local-delivery workers serve them all).

SUMMARY
    slots = DeliverySlots(deliver, limit, fork=None, title="eximpy")
                                    deliver(mid, kind) in each slot
    slots.room() -> bool            an idle slot exists or may be started
    slots.start(mid, kind="")       hand mid to an idle (or new) slot
    slots.busy() -> dict[int, str]  pid -> message being delivered
    slots.fds() -> list[int]        readable when a slot finished or died
    slots.collect() -> list[str]    messages finished since the last call
    slots.close()                   end every slot and wait for it
    run_queue(config, ids, forced, limit=1)  deliver ids through slots

DESCRIPTION
    Exim forks (and execs) a delivery process per message.  eximpy's
    roles fork from a warm parent instead, and a *slot* is such a child
    that is kept: it reads message ids from a pipe, runs
    ``deliver(mid)`` for each (eximpy.deliver.deliver.deliver_message) and
    writes the id back when it is done.  Because a slot lives on, the
    workers it starts for local transports (eximpy.deliver.worker, one per
    mailbox owner) serve all the messages it delivers; they end with it.

    At most ``limit`` slots run.  A slot that has been idle for SLOT_IDLE
    seconds, or has delivered SLOT_MAX_MESSAGES messages, is retired by the
    parent (it closes the slot's pipe; the slot ends its workers and
    exits), so that a quiet daemon keeps no processes around and no slot
    grows without bound.  A slot that dies while delivering loses nothing:
    the message lock dies with it and the message stays in the queue for
    the next run; the parent forgets the id, reaps the slot and starts a
    new one when needed.  An exception in deliver() is written to stderr
    and ends only that delivery.  Between messages a slot forgets its
    cached lookups (eximpy.lookups.cache.tidyup, Exim's search_tidyup), as
    a new delivery process would.

SECURITY
    A slot has its parent's privilege (the delivery role: the Exim user
    with CAP_SETUID/CAP_SETGID); transports run only in workers.  Message
    ids passed to a slot come from the parent and are checked against
    Exim's id syntax by the slot before use.

SEE ALSO
    eximpy.proc.delivery (the daemon's delivery role), eximpy.proc.queuerun
    (-q/-qf), eximpy.deliver.worker.
"""
from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from collections import deque
from typing import Any, Callable

SLOT_IDLE = 60.0
SLOT_MAX_MESSAGES = 2000
_ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}")


class _Slot:
    def __init__(self, pid: int, to_fd: int, from_fd: int) -> None:
        self.pid = pid
        self.to_fd = to_fd
        self.from_fd = from_fd
        self.mid: str | None = None
        self.count = 0
        self.idle_since = time.monotonic()
        self.buf = b""


def _plain_fork(run: Callable[[], int], _title: str) -> int:
    """A child that gets SIGTERM when its parent dies and never returns."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        from eximpy import privilege
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        privilege.set_parent_death_signal(signal.SIGTERM)
        code = run()
    except BaseException as e:  # noqa: BLE001 - the child never returns
        try:
            sys.stderr.write(f"eximpy: delivery slot: {type(e).__name__}: {e}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    finally:
        os._exit(code if isinstance(code, int) else 0)
    return 0


def _slot_main(rfd: int, wfd: int, deliver: Callable[[str], Any]) -> int:
    """The slot's loop: one id per line in, the same id out when done."""
    from eximpy.deliver import worker
    buf = b""
    try:
        while True:
            while b"\n" not in buf:
                try:
                    b = os.read(rfd, 4096)
                except InterruptedError:
                    continue
                if not b:
                    return 0
                buf += b
            line, _, buf = buf.partition(b"\n")
            mid = line.decode("ascii", "replace").strip()
            kind = ""
            if mid[:2] in ("Q ", "S "):
                kind, mid = mid[0], mid[2:]
            if _ID.fullmatch(mid):
                _title(f"eximpy: delivering {mid}")
                try:
                    deliver(mid, kind)
                except Exception as e:  # noqa: BLE001 - one message only
                    sys.stderr.write(f"eximpy: delivering {mid}: "
                                     f"{type(e).__name__}: {e}\n")
                    sys.stderr.flush()
                _tidyup()
                _title("eximpy: delivery slot")
            os.write(wfd, mid.encode("ascii", "replace") + b"\n")
    finally:
        worker.shutdown()


def _tidyup() -> None:
    """Exim's search_tidyup() between messages: lookup files are closed
    and cached results forgotten, so that the next message sees changed
    alias files and databases as a new delivery process would."""
    from eximpy.lookups.cache import tidyup
    tidyup()


def _title(text: str) -> None:
    try:
        from eximpy.proc.skeleton import set_title
        set_title(text)
    except Exception:  # noqa: BLE001 - a title is cosmetic
        pass


class DeliverySlots:
    """Up to ``limit`` long-lived delivery children; see module docstring."""

    def __init__(self, deliver: Callable[[str], Any], limit: int,
                 fork: Callable[[Callable[[], int], str], int] | None = None
                 ) -> None:
        self.deliver = deliver
        self.limit = max(1, int(limit))
        self.fork = fork or _plain_fork
        self.slots: dict[int, _Slot] = {}
        self.finished: list[str] = []

    def busy(self) -> dict[int, str]:
        return {s.pid: s.mid for s in self.slots.values() if s.mid is not None}

    def room(self) -> bool:
        return len(self.slots) < self.limit or \
            any(s.mid is None for s in self.slots.values())

    def fds(self) -> list[int]:
        return [s.from_fd for s in self.slots.values()]

    def _spawn(self) -> _Slot:
        r1, w1 = os.pipe()          # parent -> slot
        r2, w2 = os.pipe()          # slot -> parent
        others = [fd for s in self.slots.values() for fd in (s.to_fd, s.from_fd)]

        def run() -> int:
            os.close(w1)
            os.close(r2)
            for fd in others:       # other slots' pipes are not ours
                try:
                    os.close(fd)
                except OSError:
                    pass
            return _slot_main(r1, w2, self.deliver)
        pid = self.fork(run, "eximpy: delivery slot")
        os.close(r1)
        os.close(w2)
        os.set_inheritable(w1, False)
        os.set_inheritable(r2, False)
        slot = _Slot(pid, w1, r2)
        self.slots[pid] = slot
        return slot

    def start(self, mid: str, kind: str = "") -> None:
        """Give mid to an idle slot, starting one if there is room;
        ``kind`` goes with it (eximpy.proc.fifo: "Q" queue run, "S" local
        deliveries only)."""
        self._retire()
        slot = next((s for s in self.slots.values() if s.mid is None), None)
        if slot is None:
            slot = self._spawn()
        slot.mid = mid
        try:
            os.write(slot.to_fd, ((kind + " " if kind else "") + mid)
                     .encode("ascii") + b"\n")
        except OSError:
            self._end(slot)        # it died: the message stays queued

    def collect(self) -> list[str]:
        """Read what slots have finished (without blocking); reap the dead."""
        ready, _, _ = select.select(self.fds(), [], [], 0)
        for fd in ready:
            slot = next((s for s in self.slots.values() if s.from_fd == fd), None)
            if slot is None:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                self._end(slot)
                continue
            slot.buf += data
            while b"\n" in slot.buf:
                line, _, slot.buf = slot.buf.partition(b"\n")
                done = line.decode("ascii", "replace")
                if done == slot.mid:
                    self.finished.append(done)
                    slot.mid = None
                    slot.count += 1
                    slot.idle_since = time.monotonic()
        out, self.finished = self.finished, []
        self._retire()
        return out

    def wait(self, timeout: float | None = None) -> list[str]:
        """Block until a slot finishes or dies (or timeout); collect()."""
        fds = self.fds()
        if fds:
            try:
                select.select(fds, [], [], timeout)
            except InterruptedError:
                pass
        return self.collect()

    def _retire(self) -> None:
        now = time.monotonic()
        for slot in list(self.slots.values()):
            if slot.mid is None and (now - slot.idle_since > SLOT_IDLE or
                                     slot.count >= SLOT_MAX_MESSAGES):
                self._end(slot)

    def _end(self, slot: _Slot) -> None:
        self.slots.pop(slot.pid, None)
        for fd in (slot.to_fd, slot.from_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(slot.pid, 0)
        except ChildProcessError:
            pass

    def close(self) -> None:
        """End every slot: idle ones at once, busy ones after their
        current message."""
        for slot in list(self.slots.values()):
            self._end(slot)


def run_queue(config: Any, ids: list[str], forced: bool = False,
              limit: int = 1, queue_run: bool = True,
              force_thaw: bool = False) -> None:
    """Deliver ids through ``limit`` slots (the foreground `-q` run)."""
    from eximpy.deliver.deliver import _warm_imports, deliver_message
    _warm_imports()
    slots = DeliverySlots(
        lambda m, _q: deliver_message(config, m, forced=forced,
                                      queue_run=queue_run,
                                      force_thaw=force_thaw), limit)
    pending = deque(ids)
    try:
        while pending or slots.busy():
            while pending and slots.room():
                slots.start(pending.popleft())
            slots.wait()
    finally:
        slots.close()
