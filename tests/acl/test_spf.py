"""spf / spf_guess (pyspf) against SPF records served by dnsmasq, vs Exim.

Exim 4.96 (libspf2) and eximpy (pyspf) check the same senders from two
client addresses; compared are the replies, the ACL trace and the LOG
lines, which print $spf_result, $spf_header_comment, $spf_smtp_comment,
$spf_received and $spf_result_guessed.  Needs root (private mount
namespace for Exim's resolv.conf) and the pyspf package.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

import dnsserver
from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, _run

pytestmark = [pytest.mark.root, pytest.mark.network]

WORK = ROOT / "tests" / "_work" / "acl_spf"
RECORDS = [
    "--txt-record=spf.example,v=spf1 ip4:192.0.2.5 ~all",
    "--txt-record=hard.example,v=spf1 ip4:192.0.2.5 -all",
    "--txt-record=neu.example,v=spf1 ?all",
    "--txt-record=bad.example,v=spf1 foo:bar",
    "--txt-record=inc.example,v=spf1 include:nx.example -all",
    "--txt-record=def.example,v=spf1 ip4:1.1.1.1",
]
ACL = """\
m:
  warn spf = pass
       logwrite = spf $spf_result ($spf_header_comment) [$spf_smtp_comment] {$spf_received}
  warn spf = fail : softfail : neutral : none : permerror : temperror : invalid
       logwrite = spf2 $spf_result ($spf_header_comment) [$spf_smtp_comment] {$spf_received} <$spf_result_guessed>
  warn spf = permerror
       logwrite = perm $spf_result
  deny spf = fail
       message = $spf_smtp_comment
  accept
"""
SENDERS = ("a@spf.example", "a@hard.example", "a@neu.example",
           "a@bad.example", "a@none.example", "a@inc.example",
           "a@def.example")
IPS = ("192.0.2.5", "10.1.1.1")


@pytest.fixture(scope="module")
def resolv():
    p, path = dnsserver.start(RECORDS, WORK)
    yield path
    dnsserver.stop(p)


def _norm(text: str, d: Path) -> str:
    return dnsserver.bh_norm(text, d)


@pytest.mark.parametrize("ip", IPS)
def test_spf(ip: str, resolv: Path, monkeypatch) -> None:
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    d = WORK / ip
    if d.exists():
        shutil.rmtree(d)
    (d / "spool" / "log").mkdir(parents=True)
    conf = d / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {d}/spool\n"
                    f"log_file_path = {d}/spool/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    "acl_smtp_mail = m\nbegin acl\n" + ACL)
    dlg = "EHLO x.y\r\n" + "".join(f"MAIL FROM:<{s}>\r\nRSET\r\n"
                                   for s in SENDERS) + "QUIT\r\n"
    path = GOLDEN / "acl" / f"spf-{ip}"
    if EXIM is None:
        want = _parse_golden(path.read_text())
    else:
        r = _run(dnsserver.exim_argv(EXIM, resolv, ["-C", str(conf), "-bh",
                                                    ip]), dlg, None, 120)
        want = Result(r.rc, _norm(r.out, d), _norm(r.err, d))
        if not path.exists() or os.environ.get("EXIMPY_REGEN_GOLDEN") == "1":
            path.write_text(want.as_text())
        else:
            assert path.read_text() == want.as_text()
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(resolv))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(dlg.encode()), out, err)
    assert (_norm(out.getvalue().decode(), d), _norm(err.getvalue(), d)) \
        == (want.out, want.err)
