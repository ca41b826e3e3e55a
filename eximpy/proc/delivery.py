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


def _deliver_one(ctx: RoleContext, mid: str, kind: str) -> int:
    """kind "Q": a queue run's delivery; "S": local deliveries only."""
    from eximpy.deliver.deliver import deliver_message
    deliver_message(ctx.config, mid, queue_run=kind == "Q",
                    first_pass_route=kind == "S")
    return 0


def run_delivery(ctx: RoleContext) -> int:
    from eximpy.deliver.slots import DeliverySlots
    reader = fifo.Reader(fifo.path(ctx.config))
    limit = int(ctx.config.main.get("queue_run_max") or DEFAULT_PARALLEL)
    pending: deque[str] = deque()
    # How each pending id was offered (fifo.Reader.read_entries): by the
    # queue runner ("Q": retry times are honoured), or by a receiver ("",
    # or "S" for local deliveries only).
    kinds: dict[str, str] = {}
    slots = DeliverySlots(lambda m, k: _deliver_one(ctx, m, k), limit,
                          fork=fork_child)
    while not ctx.stopping:
        slots.collect()
        while pending and slots.room():
            mid = pending.popleft()
            kind = kinds.pop(mid, "")
            if mid in slots.busy().values():
                continue
            slots.start(mid, kind)
        try:
            ready, _, _ = select.select([reader] + slots.fds(), [], [], 0.5)
        except InterruptedError:
            continue
        if reader in ready:
            for mid, kind in reader.read_entries():
                if mid not in pending and mid not in slots.busy().values():
                    pending.append(mid)
                    kinds[mid] = kind
    reader.close()
    slots.close()
    return 0
