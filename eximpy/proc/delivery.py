"""The delivery role: delivers the messages announced on the FIFO.

SUMMARY
    run_delivery(ctx) reads message ids from the delivery FIFO (written by
    receivers and the queue runner) and hands each to a delivery slot
    (eximpy.deliver.slots: a forked child that runs
    eximpy.deliver.deliver_message() for message after message, so that
    its warm local-delivery workers serve them all).  At most queue_run_max
    slots run at once (Exim's limit on simultaneous queue-runner processes,
    each of which delivers one message at a time; default 5); further ids
    wait in order.  An id already being delivered is not
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

import select
from collections import deque

from eximpy.proc import fifo
from eximpy.proc.skeleton import RoleContext, fork_child

DEFAULT_PARALLEL = 5


def _deliver_one(ctx: RoleContext, mid: str, queue_run: bool) -> int:
    from eximpy.deliver.deliver import deliver_message
    deliver_message(ctx.config, mid, queue_run=queue_run)
    return 0


def run_delivery(ctx: RoleContext) -> int:
    from eximpy.deliver.slots import DeliverySlots
    reader = fifo.Reader(fifo.path(ctx.config))
    limit = int(ctx.config.main.get("queue_run_max") or DEFAULT_PARALLEL)
    pending: deque[str] = deque()
    # Ids the queue runner offered: their delivery is a queue run (retry
    # times are honoured); ids from receivers are first deliveries.
    from_queue_run: dict[str, bool] = {}
    slots = DeliverySlots(lambda m, q: _deliver_one(ctx, m, q), limit,
                          fork=fork_child)
    while not ctx.stopping:
        slots.collect()
        while pending and slots.room():
            mid = pending.popleft()
            queue_run = from_queue_run.pop(mid, False)
            if mid in slots.busy().values():
                continue
            slots.start(mid, queue_run)
        try:
            ready, _, _ = select.select([reader] + slots.fds(), [], [], 0.5)
        except InterruptedError:
            continue
        if reader in ready:
            for mid, queue_run in reader.read_entries():
                if mid not in pending and mid not in slots.busy().values():
                    pending.append(mid)
                    from_queue_run[mid] = queue_run
    reader.close()
    slots.close()
    return 0
