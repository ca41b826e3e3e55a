"""dnslists against a real DNS server on loopback, compared with real Exim.

A dnsmasq (Debian package dnsmasq-base) serves a test blacklist zone on
the first free address of 127.0.0.100-119.  Exim reads only
/etc/resolv.conf, so it runs in a private mount namespace (unshare -m)
with a resolv.conf naming the test server bind-mounted over it; eximpy is
pointed at the same file through EXIMPY_RESOLV_CONF (eximpy.lookups.dnsdb).
The `-bh` sessions are compared on replies, the ">>>" trace (lookups,
cache entries, "=> that means ... is listed") and LOG lines.  Needs root.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from acl import dnsserver
from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, _run

pytestmark = [pytest.mark.root, pytest.mark.network]

WORK = ROOT / "tests" / "_work" / "acl_dnslists"
ADDRS = [f"127.0.0.{n}" for n in range(100, 120)]

RECORDS = [
    "--host-record=2.0.0.127.bl.example,127.0.0.2",
    "--host-record=5.2.0.192.bl.example,127.0.0.2",
    "--host-record=5.2.0.192.bl2.example,127.0.0.3",
    "--host-record=5.2.0.192.bad.example,10.0.0.1",
    "--txt-record=5.2.0.192.bl.example,listed for testing",
    "--host-record=b.c.dbl.example,127.0.1.2",
    "--host-record=9.0.0.127.wl.example,127.0.0.9",
    "--host-record=4.3.2.1.multi.example,127.0.0.4",
    "--host-record=4.3.2.1.multi.example,127.0.0.10",
]

CONFS = {
    "forms": """\
r:
  warn dnslists = bl.example
       logwrite = listed $dnslist_domain $dnslist_value $dnslist_text $dnslist_matched
  warn dnslists = bl2.example=127.0.0.2
  warn dnslists = bl2.example!=127.0.0.2
  warn dnslists = bl2.example&0.0.0.3
  warn dnslists = bad.example
  warn dnslists = nx.example : bl.example
  warn dnslists = dbl.example/$sender_address_domain
  accept
""",
    "matching": """\
r:
  warn dnslists = bl2.example==127.0.0.3
  warn dnslists = bl2.example!==127.0.0.3
  warn dnslists = bl2.example&=0.0.0.3
  warn dnslists = bl2.example!&0.0.0.4
  warn dnslists = bl2.example&0.0.0.1
  warn dnslists = bl.example/<;192.0.2.5;127.0.0.2
  warn dnslists = bl.example/<;1.1.1.1;127.0.0.9
  warn !dnslists = bl.example
  warn dnslists = multi.example==127.0.0.4,127.0.0.10
  warn dnslists = multi.example=127.0.0.10
  deny dnslists = bl.example : bl2.example
       message = listed at $dnslist_domain ($dnslist_value): $dnslist_text
  accept
""",
    "policy": """\
c:
  accept dnslists = wl.example
  drop   dnslists = bl2.example
         message = go away
  accept
r:
  deny   message = $sender_host_address is listed at $dnslist_domain
         log_message = RBL $dnslist_domain
         dnslists = bl.example : bl2.example
  require dnslists = !wl.example : *
  accept
""",
}
IPS = ("192.0.2.5", "127.0.0.2", "127.0.0.9", "1.2.3.4", "10.0.0.1")
DIALOGUE = ("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@x.y>\r\n"
            "RCPT TO:<v@x.y>\r\nQUIT\r\n")


@pytest.fixture(scope="module")
def dns_server():
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    assert os.path.exists(exe), "dnsmasq is needed: apt-get install dnsmasq-base"
    WORK.mkdir(parents=True, exist_ok=True)
    for addr in ADDRS:
        p = subprocess.Popen([exe, "--keep-in-foreground", "--no-resolv",
                              "--no-hosts", f"--listen-address={addr}",
                              "--bind-interfaces", "--port=53",
                              "--local=/example/",
                              f"--pid-file={WORK / 'dnsmasq.pid'}",
                              "--log-facility=/dev/null"] + RECORDS,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if p.poll() is None:
            break
    assert p.poll() is None, "dnsmasq did not start"
    resolv = WORK / "resolv.conf"
    resolv.write_text(f"nameserver {addr}\n")
    yield resolv
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def _conf(d: Path, acl: str) -> Path:
    spool = d / "spool"
    (spool / "log").mkdir(parents=True, exist_ok=True)
    hooks = "acl_smtp_rcpt = r\n" + ("acl_smtp_connect = c\n"
                                     if "\nc:" in "\n" + acl else "")
    conf = d / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {spool}\n"
                    f"log_file_path = {spool}/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    + hooks + "begin acl\n" + acl)
    return conf


def _norm(text: str, d: Path) -> str:
    return dnsserver.bh_norm(text, d)


def _exim(case: str, conf: Path, ip: str, resolv: Path, d: Path) -> Result:
    path = GOLDEN / "acl" / case
    if EXIM is None:
        return _parse_golden(path.read_text())
    argv = ["unshare", "-m", "sh", "-c",
            f"mount --bind {resolv} /etc/resolv.conf && "
            f"exec {EXIM} -C {conf} -bh {ip}"]
    r = _run(argv, DIALOGUE, None, 120)
    live = Result(r.rc, _norm(r.out, d), _norm(r.err, d))
    if not path.exists() or os.environ.get("EXIMPY_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(live.as_text())
    else:
        assert path.read_text() == live.as_text(), \
            f"real Exim's answer differs from golden {path}"
    return live


@pytest.mark.parametrize("name", sorted(CONFS))
@pytest.mark.parametrize("ip", IPS)
def test_dnslists(name: str, ip: str, dns_server: Path, monkeypatch) -> None:
    import io
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    d = WORK / f"{name}-{ip}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    conf = _conf(d, CONFS[name])
    want = _exim(f"dnslists-{name}-{ip}", conf, ip, dns_server, d)
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(DIALOGUE.encode()), out, err)
    assert (_norm(out.getvalue().decode(), d), _norm(err.getvalue(), d)) \
        == (want.out, want.err)
