"""The queue runner role: every -q interval, announce queued messages.

SUMMARY
    run_queue_runner(ctx) wakes every ctx.queue_interval seconds, lists the
    spool, and announces every message that is not frozen and not being
    delivered right now to the delivery role through the FIFO.
    queue_run_once(config, force) is `eximpy -q` / `-qf` without a daemon:
    it delivers each queued message in turn, in a forked delivery slot.

DESCRIPTION
    Every run offers every queued message; deliver_message, told that this
    is a queue run, skips the addresses whose retry time has not come
    (unless forced) and leaves frozen messages alone (unless -qff).

SECURITY
    Runs as exim_user with no capabilities.

SEE ALSO
    spec 5.x "-q", options queue_run_max, queue_only.
"""
from __future__ import annotations

import time
from typing import Any

from eximpy.proc import fifo
from eximpy.proc.skeleton import RoleContext


def queued_ids(config: Any) -> list[str]:
    """Messages in the spool that a queue run should try, oldest first."""
    from eximpy.spool.layout import SpoolLayout
    from eximpy.spool.lock import is_locked
    layout = SpoolLayout.from_config(config)
    out = []
    for mid in sorted(layout.list_ids(), key=lambda m: m[:6] + m[7:]):
        dpath = layout.find(mid, "-D")
        if dpath is None or is_locked(dpath, mid):
            continue
        out.append(mid)
    return out


def run_queue_runner(ctx: RoleContext) -> int:
    interval = ctx.queue_interval or 1800
    next_run = time.monotonic()
    while not ctx.stopping:
        now = time.monotonic()
        if now >= next_run:
            ids = queued_ids(ctx.config)
            path = fifo.path(ctx.config)
            for i in range(0, len(ids), 100):
                if ctx.stopping or not fifo.notify(path, ids[i:i + 100],
                                                   queue_run=True):
                    break
            next_run = now + interval
        time.sleep(min(1.0, max(0.05, next_run - time.monotonic())))
    return 0


def queue_run_once(config: Any, force: bool = False,
                   force_thaw: bool = False) -> int:
    """`eximpy -q`: one queue run in the foreground; the messages are
    delivered one at a time by a forked delivery slot (replaced if it
    dies), whose local-delivery workers serve them all.  ``force`` (-qf)
    ignores retry times; ``force_thaw`` (-qff) also thaws frozen ones."""
    from eximpy.deliver.slots import run_queue
    run_queue(config, queued_ids(config), forced=force, queue_run=True,
              force_thaw=force_thaw)
    return 0
