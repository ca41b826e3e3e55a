"""mailq: list the queue, as ``eximpy -bp`` (Exim's mailq is ``exim -bp``).

SUMMARY
    mailq [-C config] [exim -bp options and message ids]

SEE ALSO
    spec 5 (-bp); eximpy.cli.queue_ops.
"""
from __future__ import annotations

import sys

from spool_tools._common import run_main


def main(argv: list[str]) -> int:
    from eximpy.cli.main import main as eximpy_main
    args = list(argv)
    if not any(a.startswith("-bp") for a in args):
        args.insert(0, "-bp")
    return eximpy_main(["mailq"] + args)


if __name__ == "__main__":
    sys.exit(run_main(main))
