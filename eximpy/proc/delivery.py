"""The delivery role: one forked child per message announced on the FIFO.

SUMMARY
    run_delivery(ctx) reads message ids from the delivery FIFO (written by
    receivers and the queue runner) and forks a child for each, which runs
    eximpy.deliver.deliver_message().  At most queue_run_max children run
    at once (Exim's limit on simultaneous queue-runner processes, each of
    which delivers one message at a time; default 5); further ids wait in
    order.  An id already being delivered is not
    started twice; a message locked by another process is skipped by
    deliver_message itself.

SECURITY
    Runs as exim_user.  Started by root it keeps CAP_SETUID and CAP_SETGID
    and nothing else, for the code that runs local transports as the
    mailbox owner (eximpy.privilege.run_as); it reads no network input.

SEE ALSO
    DESIGN.md section 2; eximpy.proc.fifo; eximpy.deliver.
"""
from __future__ import annotations

import os
import select
from collections import deque

from eximpy.proc import fifo
from eximpy.proc.skeleton import RoleContext, fork_child

DEFAULT_PARALLEL = 5


def _deliver_one(ctx: RoleContext, mid: str) -> int:
    from eximpy.deliver.deliver import deliver_message
    deliver_message(ctx.config, mid)
    return 0


def run_delivery(ctx: RoleContext) -> int:
    reader = fifo.Reader(fifo.path(ctx.config))
    limit = int(ctx.config.main.get("queue_run_max") or DEFAULT_PARALLEL)
    pending: deque[str] = deque()
    running: dict[int, str] = {}
    while not ctx.stopping:
        _reap(running)
        while pending and len(running) < limit:
            mid = pending.popleft()
            if mid in running.values():
                continue
            pid = fork_child(lambda m=mid: _deliver_one(ctx, m),
                             f"eximpy: delivering {mid}")
            running[pid] = mid
        try:
            ready, _, _ = select.select([reader], [], [], 0.5)
        except InterruptedError:
            continue
        if ready:
            for mid in reader.read_ids():
                if mid not in pending and mid not in running.values():
                    pending.append(mid)
    reader.close()
    while running:
        _reap(running, block=True)
    return 0


def _reap(running: dict[int, str], block: bool = False) -> None:
    while running:
        try:
            pid, _status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            running.clear()
            return
        if pid == 0:
            return
        running.pop(pid, None)
        if block:
            return
