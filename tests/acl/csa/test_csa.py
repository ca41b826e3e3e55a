"""verify = csa (Client SMTP Authorization) against real Exim 4.96 (-bh).

SRV records _client._smtp.<domain> (and the targets' A records) are served
by a real dnsmasq on loopback (tests/acl/dnsserver.py); Exim runs under
`unshare -m` with a private resolv.conf, eximpy reads the same file
through EXIMPY_RESOLV_CONF.  Each case is a -bh session from two client
addresses with a chosen HELO name; the SMTP replies and the whole stderr
(the ">>>" trace with Exim's "CSA ..." lines, $csa_status, LOG lines) must
match.  Needs root.
"""
from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, _run, keep_golden

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dnsserver  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.network]

WORK = ROOT / "tests" / "_work" / "acl_csa"
SUITE = "acl_csa"

RECORDS = [
    # --srv-host=<name>,<target>,<port>,<priority>,<weight>
    "--srv-host=_client._smtp.good.example,host.good.example,0,1,2",
    "--host-record=host.good.example,192.0.2.5",
    "--srv-host=_client._smtp.deny.example,host.good.example,0,1,1",
    "--srv-host=_client._smtp.zero.example,host.good.example,0,1,0",
    "--srv-host=_client._smtp.w3.example,host.good.example,0,1,3",
    "--srv-host=_client._smtp.nohost.example,missing.example,0,1,2",
    "--srv-host=_client._smtp.v2.example,host.good.example,0,2,2",
    "--srv-host=_client._smtp.strict.example,host.good.example,1,1,0",
    "--srv-host=_client._smtp.lax.example,host.good.example,0,1,0",
    "--srv-host=_client._smtp.own.strict.example,host.good.example,0,1,2",
    "--srv-host=_client._smtp.multi.example,many.example,0,1,2",
    "--host-record=many.example,10.9.9.9",
    "--host-record=many.example,192.0.2.5",
    "--srv-host=_client._smtp.5.2.0.192.in-addr.arpa,host.good.example,0,1,2",
    # names that exist (TXT) without SRV: a NODATA answer, so Exim
    # searches the parents
    "--txt-record=_client._smtp.sub.strict.example,x",
    "--txt-record=_client._smtp.sub.lax.example,x",
    "--txt-record=_client._smtp.deep.sub.strict.example,x",
    "--local=/arpa/",
]

HELOS = ["good.example", "deny.example", "zero.example", "w3.example",
         "nohost.example", "v2.example", "a.b.strict.example",
         "own.strict.example", "x.lax.example", "multi.example",
         "sub.strict.example", "sub.lax.example",
         "deep.sub.strict.example",
         "none.example", "[192.0.2.5]", "192.0.2.5", "[IPv6:2001:db8::1]",
         "elsewhere.test", None]
IPS = ["192.0.2.5", "10.0.0.1"]

ACL = """\
r:
  warn  logwrite = before <$csa_status>
  warn  !verify = csa
        logwrite = csa failed: $acl_verify_message
  warn  logwrite = status <$csa_status>
  warn  verify = csa/$sender_host_address
        logwrite = by address: $csa_status
  deny  !verify = csa
  accept
"""
EXTRA = {"noreverse": "dns_csa_use_reverse = false\n",
         "limit1": "dns_csa_search_limit = 1\n"}


@pytest.fixture(scope="module")
def dns_server():
    p, resolv = dnsserver.start(RECORDS, WORK)
    yield resolv
    dnsserver.stop(p)


def _conf(d: Path, extra: str) -> Path:
    spool = d / "spool"
    (spool / "log").mkdir(parents=True, exist_ok=True)
    conf = d / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {spool}\n"
                    f"log_file_path = {spool}/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    "acl_smtp_rcpt = r\n" + extra + "begin acl\n" + ACL)
    return conf


def _norm(text: str, d: Path) -> str:
    text = text.replace("\r\n", "\n").replace(str(d), "DIR")
    return re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                  "DATE", text)


def _dialogue(helo: str | None) -> str:
    return ((f"EHLO {helo}\r\n" if helo else "") +
            "MAIL FROM:<a@b.c>\r\nRCPT TO:<u@x.y>\r\nRCPT TO:<v@x.y>\r\n"
            "QUIT\r\n")


def _params():
    for helo in HELOS:
        for ip in IPS:
            yield pytest.param("plain", helo, ip, id=f"{helo}-{ip}")
    for extra in EXTRA:
        for helo in ("[192.0.2.5]", "deep.sub.strict.example"):
            yield pytest.param(extra, helo, "192.0.2.5",
                               id=f"{extra}-{helo}")


@pytest.mark.parametrize("extra,helo,ip", list(_params()))
def test_csa(extra: str, helo: str | None, ip: str, dns_server: Path,
             monkeypatch) -> None:
    from eximpy.acl import csa
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    case = f"{extra}-{helo or 'nohelo'}-{ip}".replace(":", "_")
    d = WORK / case
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    conf = _conf(d, EXTRA.get(extra, ""))
    dlg = _dialogue(helo)
    path = GOLDEN / SUITE / case
    if EXIM is None:
        want = _parse_golden(path.read_text())
    else:
        r = _run(dnsserver.exim_argv(EXIM, dns_server,
                                     ["-C", str(conf), "-bh", ip]),
                 dlg, None, 120)
        want = Result(r.rc, _norm(r.out, d), _norm(r.err, d))
        keep_golden(path, want.as_text())
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    monkeypatch.setattr(csa, "_CACHE", {})      # one process per session
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(dlg.encode()), out, err)
    got = (_norm(out.getvalue().decode(), d), _norm(err.getvalue(), d))
    assert got == (want.out, want.err), _diff(got, want)


def _diff(got: tuple[str, str], want: Result) -> str:
    import difflib
    return "\n".join(difflib.unified_diff(
        (want.out + want.err).split("\n"), (got[0] + got[1]).split("\n"),
        "exim", "eximpy", lineterm="", n=1))
