"""The -bP printer's special cases, against real Exim.

* What a non-admin caller sees (hidden values, -bP config, macros refused):
  real Exim run as `nobody` versus eximpy's printer with admin=False.
* Driver option errors (unknown private option, option before `driver`,
  unknown driver, bad values of driver option types): `exim -C f -bP`
  versus `eximpy -C f -bP`, message and line.
* -bV has Exim's line structure.
"""
from __future__ import annotations

import io
import os

import pytest

from eximpy.config import load_config
from eximpy.config import printing
from oracle import ROOT, eximpy_run, exim_run
from config_support import BASE, config_error, exim_run_as, normalize, run_both, \
    scratch, write_conf

MAIN_TYPES = str((ROOT / "tests/config/confs/main_types.conf").relative_to(ROOT))
DRIVERS = str((ROOT / "tests/config/confs/drivers.conf").relative_to(ROOT))

NONADMIN = {
    "options": (MAIN_TYPES, ["smtp_banner", "qualify_domain", "+local_domains"]),
    "config": (MAIN_TYPES, ["config"]),
    "config_terse": (MAIN_TYPES, ["-n", "config"]),
    "driver_hidden": (DRIVERS, ["authenticator", "cram", "router", "r_redirect2"]),
}


def _readable_by_nobody() -> None:
    p = ROOT
    while p != p.parent:
        assert os.stat(p).st_mode & 0o005 == 0o005, f"{p} not readable by nobody"
        p = p.parent


@pytest.mark.parametrize("case", sorted(NONADMIN))
def test_nonadmin_view_like_exim(case: str) -> None:
    path, items = NONADMIN[case]
    _readable_by_nobody()
    scratch()
    no_labels = items[0] == "-n"
    items = items[1:] if no_labels else items
    exim = exim_run_as("nobody", "config", f"nonadmin-{case}",
                       (["-n"] if no_labels else []) + ["-C", path, "-bP"] + items)
    config = load_config(str(ROOT / path))
    config.filename = path
    out = io.StringIO()
    ok = printing.print_args(config, items, out, no_labels=no_labels, admin=False)
    assert (0 if ok else 1) == exim.rc
    text = out.getvalue().replace(str(ROOT / path), path)
    assert normalize(text) == exim.out


def test_macros_refused_to_nonadmin() -> None:
    _readable_by_nobody()
    exim = exim_run_as("nobody", "config", "nonadmin-macros",
                       ["-C", MAIN_TYPES, "-bP", "macros"])
    config = load_config(str(ROOT / MAIN_TYPES))
    with pytest.raises(PermissionError) as e:
        printing.print_args(config, ["macros"], io.StringIO(), admin=False)
    assert exim.rc == 1 and exim.err.strip() == str(e.value)


DRIVER_ERRORS = {
    "private_before_driver": "begin routers\nr1:\n  domains = foo\n  bogus = 1\n",
    "private_unknown": "begin routers\nr1:\n  driver = accept\n  bogus = 1\n",
    "private_unknown_no": "begin routers\nr1:\n  driver = accept\n  no_bogus\n",
    "driver_unknown": "begin routers\nr1:\n  driver = nosuch\n",
    "driver_twice": "begin routers\nr1:\n  driver = accept\n  driver = redirect\n",
    "generic_twice": "begin routers\nr1:\n  driver = accept\n  domains = a\n"
                     "  domains = b\n",
    "private_twice": "begin routers\nr1:\n  driver = redirect\n  data = a\n"
                     "  data = b\n",
    "user_unknown": "begin routers\nr1:\n  driver = redirect\n  data = a\n"
                    "  user = nosuchuserxyz\n",
    "group_unknown": "begin transports\nt1:\n  driver = pipe\n"
                     "  group = nosuchgroupxyz\n",
    "expand_bool_bad": "begin routers\nr1:\n  driver = redirect\n  data = a\n"
                       "  more = maybe\n",
    "octal_bad": "begin transports\nt1:\n  driver = appendfile\n  file = /x\n"
                 "  mode = 0x10\n",
    "octal_empty": "begin transports\nt1:\n  driver = appendfile\n  file = /x\n"
                   "  mode =\n",
    "rewrite_flag": "begin transports\nt1:\n  driver = smtp\n"
                    "  headers_rewrite = a@b c@d Z\n",
    "rewrite_envelope": "begin transports\nt1:\n  driver = smtp\n"
                        "  headers_rewrite = a@b c@d F\n",
    "rewrite_missing": "begin transports\nt1:\n  driver = smtp\n"
                       "  headers_rewrite = a@b\n",
    "rewrite_S": "begin transports\nt1:\n  driver = smtp\n"
                 "  headers_rewrite = a@b c@d S\n",
    "time_bad": "begin transports\nt1:\n  driver = smtp\n  connect_timeout = 5\n",
    "verify_value": "begin routers\nr1:\n  driver = redirect\n  data = a\n"
                    "  verify = maybe\n",
    "auth_before_driver": "begin authenticators\na1:\n  server_secret = x\n",
    "kint_bad": "begin transports\nt1:\n  driver = smtp\n  size_addition = 1x\n",
}


@pytest.mark.parametrize("case", sorted(DRIVER_ERRORS))
def test_driver_error_like_exim(case: str) -> None:
    path = write_conf("drverr-" + case, BASE + DRIVER_ERRORS[case])
    exim, ours = run_both("config", "drverr-" + case, ["-C", path, "-bP"])
    assert exim.rc == 1 and config_error(exim.err)
    assert (ours.rc, ours.err) == (exim.rc, exim.err)


def test_version_lines_like_exim() -> None:
    """-bV: Exim's line prefixes in Exim's order (values are eximpy's own)."""
    scratch()
    path = write_conf("version", BASE)
    exim = exim_run("config", "bV", ["-C", path, "-bV"], normalize=normalize)
    ours = eximpy_run(["-C", path, "-bV"])
    assert ours.rc == exim.rc == 0
    wanted = ("Support for:", "Lookups (built-in):", "Authenticators:",
              "Routers:", "Transports:", "Configuration file is")
    exim_order = [w for line in exim.out.splitlines() for w in wanted
                  if line.startswith(w)]
    ours_order = [w for line in ours.out.splitlines() for w in wanted
                  if line.startswith(w)]
    assert ours_order == exim_order
    assert f"Configuration file is {path}\n" in ours.out
    assert ours.out.startswith("eximpy version ")
    assert "Known but not yet implemented options:" in ours.out
