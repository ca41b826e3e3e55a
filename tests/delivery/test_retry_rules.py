"""Retry rule selection against real Exim's -brt: address and domain
patterns, *@ forms, error-specific rules (quota_<time>, refused_MX/_A,
timeout[_connect][_MX/_A], rcpt_4xx digit forms, mail_4xx, auth_failed,
lost_connection, tls_required, lookup), senders= (never matching without a
sender), the alternate domain argument, and the printed rule (G
multipliers, H without).  eximpy's answer comes from
eximpy.deliver.retry.retry_test, the function behind -brt.
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from oracle import EXIM, GOLDEN, ROOT, keep_golden

WORK = ROOT / "tests" / "_work" / "retry_rules"

RULES = """\
a.example refused_MX F,1h,10m
a.example timeout_connect_A F,2h,10m
*.b.example rcpt_45x G,3h,5m,2
*.b.example rcpt_4xx G,3h,5m,1.25
c.example quota_7d F,4h,1h
c.example quota F,5h,1h
x@d.example * F,6h,1h
d.example * senders=s@example.org F,7h,1h
e.example lost_connection F,1h,10m
f.example tls_required F,1h,10m
g.example timeout_connect_MX H,1h,10m,1.25
h.example timeout_A F,1h,10m
i.example lookup F,1h,10m
j.example mail_4xx F,1h,10m
k.example refused F,1h,10m
"\\\\N^\\\\d+@l\\\\.example$\\\\N" * F,9h,1h
* auth_failed
* * F,2h,15m; G,16h,1h,1.5; F,4d,6h
"""

CASES = [
    "a.example refused_MX", "a.example refused", "a.example refused_A",
    "a.example timeout_connect_A", "a.example timeout", "h.b.example rcpt_452",
    "h.b.example rcpt_461", "h.b.example rcpt_4xx", "c.example quota_8d",
    "c.example quota_1d", "c.example quota", "x@d.example", "y@d.example",
    "zz.example auth_failed", "zz.example", "e.example lost_connection",
    "f.example tls_required", "g.example timeout_connect_MX",
    "g.example timeout_MX", "h.example timeout_A",
    "h.example timeout_connect_A", "i.example lookup", "j.example mail_451",
    "k.example refused_MX", "nodots", "x@a.example other.example",
    "host.example a.example refused_MX", "123@l.example", "abc@l.example",
    "bogus.example rcpt_4", "a.example junk", "a.example timeout_xyz",
]


@pytest.fixture(scope="module")
def conf() -> Path:
    import shutil
    (WORK / "log").mkdir(parents=True, exist_ok=True)
    shutil.chown(WORK / "log", "Debian-exim", "Debian-exim")
    path = WORK / "exim.conf"
    path.write_text(f"spool_directory = {WORK}/spool\n"
                    f"log_file_path = {WORK}/log/%slog\n"
                    "begin retry\n" + RULES)
    return path


@pytest.mark.parametrize("case", CASES)
def test_brt(conf, case):
    if EXIM is None:
        pytest.fail("real Exim is needed")
    p = subprocess.run([EXIM, "-C", str(conf), "-brt"] + case.split(),
                       capture_output=True, text=True)
    want = f"rc={p.returncode}\n{p.stdout}"
    keep_golden(GOLDEN / "delivery_retry" / "brt" / case.replace(" ", "_"), want)
    from eximpy.config import load_config
    from eximpy.deliver.retry import retry_test
    out = io.StringIO()
    rc = retry_test(load_config(str(conf)), case.split(), out)
    assert f"rc={rc}\n{out.getvalue()}" == want
