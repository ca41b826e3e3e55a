"""Run eximpy's -bt/-bv/-bvs directly (until the lead wires them into modes).

Usage: python tests/routing/bt_main.py <exim-style arguments>
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    from eximpy.cli.address_test import run_bt, run_bv
    from eximpy.cli.main import load
    from eximpy.cli.options import parse_args
    from eximpy.errors import ConfigError
    inv = parse_args(["exim"] + argv)
    try:
        config = load(inv)
    except ConfigError as e:
        sys.stderr.write(f"config error: {e}\n")
        return 1
    if inv.mode == "brw":
        from eximpy.rewrite import rewrite_test
        return rewrite_test(config, (inv.args or [inv.mode_arg or ""])[0],
                            sys.stdout)
    if inv.mode == "bt":
        return run_bt(config, inv, sys.stdout)
    if inv.mode in ("bv", "bvs"):
        return run_bv(config, inv, sys.stdout, sender=inv.mode == "bvs")
    sys.stderr.write(f"unsupported mode {inv.mode}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
