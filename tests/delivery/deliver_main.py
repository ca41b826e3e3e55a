"""Run eximpy's -M/-Mc directly (until the lead wires run_deliver into modes)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    from eximpy.cli.deliver_mode import run_deliver
    from eximpy.cli.main import load
    from eximpy.cli.options import parse_args
    inv = parse_args(["exim"] + argv)
    return run_deliver(load(inv), inv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
