"""eximpy knows exactly the options and drivers real Exim 4.96 knows.

Real Exim lists every option of its build as a built-in macro
(`exim -bP macros`: _OPT_MAIN_*, _OPT_ROUTERS_*, _OPT_ROUTER_<drv>_* ...)
and every driver as _DRIVER_*.  eximpy's builtin_macros() derives the same
names from its tables and registries; the two sequences must be equal
(in Exim's order).  Other built-in families (_HAVE_*, _LOG_*, _ACL_*...)
describe Exim's build and are not compared here.
"""
from __future__ import annotations

from eximpy.config.printing import builtin_macros
from config_support import BASE, normalize, write_conf
from oracle import exim_run


def _exim_names() -> list[str]:
    path = write_conf("macros", BASE)
    exim = exim_run("config", "macros", ["-C", path, "-bP", "macro_list"],
                    normalize=normalize)
    assert exim.rc == 0
    return exim.out.split()


def test_option_and_driver_macros_like_exim() -> None:
    want = [n for n in _exim_names() if n.startswith(("_OPT_", "_DRIVER_"))]
    ours = [n for n, v in builtin_macros() if n.startswith(("_OPT_", "_DRIVER_"))]
    assert ours == want


def test_macro_values_are_y() -> None:
    assert all(v == "y" for _n, v in builtin_macros())
