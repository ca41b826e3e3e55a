"""${authresults}: the iprev, auth and spf parts against real Exim.

`exim -bh` and eximpy's -bh run the same dialog with ACLs that logwrite
${authresults} before and after an spf (and an spf_guess) condition, for
senders whose SPF records a dnsmasq on loopback serves (as in
tests/acl/test_spf.py); the LOG lines with the results are compared.
Needs root (Exim reads only /etc/resolv.conf: private mount namespace) and
the pyspf package.  The dkim part is eximpy.acl.dkim's (tests/acl/dkim).
"""
from __future__ import annotations

import importlib.util
import io
import re
import shutil

import pytest

from tests.oracle import EXIM, GOLDEN, ROOT, _run, keep_golden

pytestmark = [pytest.mark.root, pytest.mark.network]

WORK = ROOT / "tests" / "_work" / "expand_authresults"
RECORDS = [
    "--txt-record=spf.example,v=spf1 ip4:192.0.2.5 ~all",
    "--txt-record=hard.example,v=spf1 -all",
    "--txt-record=neu.example,v=spf1 ?all",
    "--txt-record=bad.example,v=spf1 foo:bar",
    "--txt-record=x.y,v=spf1 ip4:192.0.2.5 -all",
]
RESULTS = "pass : fail : softfail : neutral : none : permerror : temperror : invalid"
ACL = f"""\
m:
  warn logwrite = AR0 ${{authresults{{mx.example.com}}}}
  warn spf = {RESULTS}
  warn logwrite = AR1 ${{authresults{{mx.example.com}}}}
  accept
r:
  warn spf_guess = {RESULTS}
  warn logwrite = AR2 ${{authresults{{mx.example.com}}}}
  accept
"""
SENDERS = ("a@spf.example", "a@hard.example", "a@neu.example", "a@bad.example", "a@none.example", "",
           "a@spf.example")


def _dnsserver():
    spec = importlib.util.spec_from_file_location(
        "dnsserver", ROOT / "tests" / "acl" / "dnsserver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def resolv():
    ds = _dnsserver()
    p, path = ds.start(RECORDS, WORK)
    yield path
    ds.stop(p)


def _ar_lines(err: str) -> str:
    return "".join(line + "\n" for line in err.splitlines() if re.match(r"LOG: AR\d", line))


@pytest.mark.parametrize("ip", ("192.0.2.5", "10.1.1.1"))
def test_authresults_spf(ip, resolv, monkeypatch):
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    d = WORK / ip
    shutil.rmtree(d, ignore_errors=True)
    (d / "spool" / "log").mkdir(parents=True)
    conf = d / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {d}/spool\n"
                    f"log_file_path = {d}/spool/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    "acl_smtp_mail = m\nacl_smtp_rcpt = r\nbegin acl\n" + ACL)
    dlg = "EHLO x.y\r\n" + "".join(f"MAIL FROM:<{s}>\r\nRCPT TO:<u@mx.example.com>\r\n"
                                   "RSET\r\n" for s in SENDERS) + "QUIT\r\n"
    golden = GOLDEN / "expand" / f"authresults-{ip}"
    if EXIM:
        ds = _dnsserver()
        r = _run(ds.exim_argv(EXIM, resolv, ["-C", str(conf), "-bh", ip]), dlg, None, 120)
        want = _ar_lines(r.err)
        keep_golden(golden, want)
    else:
        want = golden.read_text()
    assert want.count("LOG: AR") == 3 * len(SENDERS)
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(resolv))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(dlg.encode()), out, err)
    assert _ar_lines(err.getvalue()) == want
