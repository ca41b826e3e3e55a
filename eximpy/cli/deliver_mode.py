"""Delivery modes: -M, -Mc (and the delivery half of -odi).

SUMMARY
    run_deliver(config, inv) -> exit status

DESCRIPTION
    -M ID... forces delivery of each message (frozen ones too); -Mc ID...
    delivers without forcing (as a queue runner would, but ignoring retry
    times).  Each message is delivered by eximpy.deliver.deliver_message;
    a message locked by another process, or not in the queue, is reported
    in the main log (not on the terminal) and skipped, as Exim does.

SEE ALSO
    spec 5 (-M, -Mc, -odi); eximpy.deliver.deliver.
"""
from __future__ import annotations

import sys
from typing import Any


def run_deliver(config: Any, inv: Any, stderr: Any = None) -> int:
    """Deliver the messages named on the command line."""
    from eximpy.deliver.deliver import deliver_message
    from eximpy.log.writer import LogWriter
    err = stderr or sys.stderr
    forced = getattr(inv, "mode", "M") == "M"
    rc = 0
    for mid in inv.args:
        try:
            outcome = deliver_message(config, mid, forced=forced)
        except FileNotFoundError:
            # As Exim: a mainlog line, nothing on the terminal, status 0.
            LogWriter.from_config(config).main(
                f"Spool file {mid}-D not found", mid)
            continue
        except Exception as e:  # noqa: BLE001 - a broken spool file
            LogWriter.from_config(config).main(
                f"Spool read error for {mid}: {e}", mid)
            continue
        if outcome.locked:
            LogWriter.from_config(config).main(
                f"Spool file for {mid} is locked (another process is "
                "handling this message)", mid)
    return rc
