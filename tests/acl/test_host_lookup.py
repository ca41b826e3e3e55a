"""host_lookup (eximpy/hostlookup.py) against a real DNS server, compared
with real Exim's `-bh` sessions.

dnsmasq serves PTR and A records for 192.0.2.0/24 (tests/acl/dnsserver.py):
a name that confirms, one whose forward lookup gives another address, an
address with two PTR names of which only the second confirms, and an
address with no PTR record.  Exim runs in a private mount namespace with
the test resolv.conf; eximpy reads it through EXIMPY_RESOLV_CONF.  The
connect ACL writes $sender_host_name and $host_lookup_failed to the log,
and the H= of the LOG lines shows the name.  Needs root.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from acl import dnsserver
from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, _run

pytestmark = [pytest.mark.root, pytest.mark.network]

WORK = ROOT / "tests" / "_work" / "acl_host_lookup"
RECORDS = [
    "--local=/2.0.192.in-addr.arpa/",
    "--host-record=good.example,192.0.2.5",
    "--ptr-record=6.2.0.192.in-addr.arpa,liar.example",
    "--host-record=liar.example,192.0.2.99",
    "--ptr-record=8.2.0.192.in-addr.arpa,first.example",
    "--ptr-record=8.2.0.192.in-addr.arpa,second.example",
    "--host-record=first.example,192.0.2.98",
    "--host-record=second.example,192.0.2.8",
]
IPS = ("192.0.2.5", "192.0.2.6", "192.0.2.7", "192.0.2.8")
CONF = """\
primary_hostname = mx.example.com
spool_directory = {d}/spool
log_file_path = {d}/spool/log/%slog
exim_user = root
exim_group = root
never_users =
host_lookup = {lookup}
host_lookup_order = bydns
acl_smtp_connect = c
acl_smtp_rcpt = r
begin acl
c:
  warn logwrite = name=<$sender_host_name> failed=$host_lookup_failed
  accept
r:
  deny hosts = *.example
       message = named host $sender_host_name
  accept
"""
DIALOGUE = "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@x.y>\r\nQUIT\r\n"


@pytest.fixture(scope="module")
def resolv():
    proc, path = dnsserver.start(RECORDS, WORK)
    yield path
    dnsserver.stop(proc)


def _norm(text: str, d: Path) -> str:
    return dnsserver.bh_norm(text, d)


def _exim(case: str, conf: Path, ip: str, resolv: Path, d: Path) -> Result:
    path = GOLDEN / "acl" / case
    if EXIM is None:
        return _parse_golden(path.read_text())
    r = _run(dnsserver.exim_argv(EXIM, resolv, ["-C", str(conf), "-bh", ip]),
             DIALOGUE, None, 120)
    live = Result(r.rc, _norm(r.out, d), _norm(r.err, d))
    from oracle import keep_golden
    keep_golden(path, live.as_text())
    return live


@pytest.mark.parametrize("lookup", ["*", "192.0.2.5 : 192.0.2.8"])
@pytest.mark.parametrize("ip", IPS)
def test_host_lookup_matches_exim(lookup: str, ip: str, resolv: Path,
                                  monkeypatch) -> None:
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    tag = "all" if lookup == "*" else "some"
    d = WORK / f"{tag}-{ip}"
    if d.exists():
        shutil.rmtree(d)
    (d / "spool" / "log").mkdir(parents=True)
    conf = d / "conf"
    conf.write_text(CONF.format(d=d, lookup=lookup))
    want = _exim(f"host_lookup-{tag}-{ip}", conf, ip, resolv, d)
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(resolv))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(DIALOGUE.encode()), out, err)
    assert (_norm(out.getvalue().decode(), d), _norm(err.getvalue(), d)) \
        == (want.out, want.err)
