"""dnsdb and @mx_* against a real DNS server (Debian's dnsmasq) on
127.0.0.77:53 (or the next free 127.0.0.x), compared with real Exim.  Exim's resolver reads only
/etc/resolv.conf, so it runs in a private mount namespace (unshare -m)
where a resolv.conf naming the test server is bind-mounted; eximpy is
pointed at the same file with EXIMPY_RESOLV_CONF.  Needs root and the
dnsmasq binary (apt-get install dnsmasq-base)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests import oracle
from tests.expand.conftest import WORK, normalize
from tests.expand.test_differential import stdin_text, results, run_eximpy

pytestmark = [pytest.mark.root, pytest.mark.network]

ADDRS = [f"127.0.0.{n}" for n in range(77, 97)]   # first free one is used
TLSA = "0301" "01" + "ab" * 32

RECORDS = [
    "--host-record=mail.test.example,192.0.2.10,2001:db8::10",
    "--host-record=mx2.test.example,192.0.2.11",
    "--host-record=self.test.example,127.0.0.1",
    "--mx-host=test.example,mail.test.example,10",
    "--mx-host=test.example,mx2.test.example,20",
    "--mx-host=local.example,self.test.example,5",
    "--txt-record=test.example,v=spf1 -all",
    "--txt-record=multi.test.example,part1,part2",
    "--txt-record=utf.test.example,Grüße,f\udcfcr \udcff",   # UTF-8 and raw bytes
    "--srv-host=_smtp._tcp.test.example,mail.test.example,25,1,2",
    "--ptr-record=10.2.0.192.in-addr.arpa,mail.test.example",
    "--cname=alias.test.example,mail.test.example",
    f"--dns-rr=_25._tcp.mail.test.example,52,{TLSA}",
]

CASES = [
    "${lookup dnsdb{a=mail.test.example}}", "${lookup dnsdb{aaaa=mail.test.example}}",
    "${lookup dnsdb{mx=test.example}}", "${lookup dnsdb{>; mx=test.example}}",
    "${lookup dnsdb{>;, mx=test.example}}", "${lookup dnsdb{>;: mx=test.example}}",
    "${lookup dnsdb{mxh=test.example}}", "${lookup dnsdb{test.example}}",
    "${lookup dnsdb{txt=multi.test.example}}", "${lookup dnsdb{>:, txt=multi.test.example}}",
    "${lookup dnsdb{>:; txt=multi.test.example}}", "${lookup dnsdb{spf=test.example}{y}{n}}",
    "${lookup dnsdb{txt=utf.test.example}}", "${lookup dnsdb{>:, txt=utf.test.example}}",
    "${strlen:${lookup dnsdb{>:, txt=utf.test.example}}}",
    "${lookup dnsdb{srv=_smtp._tcp.test.example}}", "${lookup dnsdb{>:/ srv=_smtp._tcp.test.example}}",
    "${lookup dnsdb{ptr=192.0.2.10}}", "${lookup dnsdb{ptr=10.2.0.192.in-addr.arpa}}",
    "${lookup dnsdb{cname=alias.test.example}}", "${lookup dnsdb{tlsa=_25._tcp.mail.test.example}}",
    "${lookup dnsdb{a=nosuch.test.example}{y}{n}}",
    "${lookup dnsdb{a=mail.test.example:mx2.test.example}}",
    "${lookup dnsdb{a=<; mail.test.example;nosuch.test.example}}",
    "${lookup dnsdb{>, a=mail.test.example:mx2.test.example}}",
    "${lookup dnsdb{defer_strict,a=mail.test.example}}",
    "${lookup dnsdb{defer_foo,a=mail.test.example}}", "${lookup dnsdb{foo=mail.test.example}}",
    "${lookup dnsdb{a=mail.test.example}{$value}}", "${lookup dnsdb{ns=test.example}{y}{n}}",
    "${lookup dnsdb{zns=mail.test.example}{y}{n}}", "${lookup dnsdb{a mail.test.example}{y}{n}}",
    "${lookup dnsdb{retrans_2s,retry_1,a=mail.test.example}}",
    "${lookup dnsdb{dnssec_lax,a=mail.test.example}}", "${lookup dnsdb{dnssec_foo,a=x}}",
    "${lookup dnsdb{defer_never,a=mail.test.example}}",
    "${lookup dnsdb{defer_lax a=mail.test.example}}",
    "${lookup dnsdb{A=mail.test.example}}", "${lookup dnsdb{ a = mail.test.example}}",
    "${if match_domain{local.example}{@mx_any}{y}{n}}",
    "${if match_domain{test.example}{@mx_any}{y}{n}}",
    "${if match_domain{local.example}{@mx_primary}{y}{n}}",
    "${if match_domain{local.example}{@mx_secondary}{y}{n}}",
    "${lookup dnsdb{soa=test.example}{y}{n}}",
    "${map{<, mail.test.example,mx2.test.example}{${lookup dnsdb{a=$item}}}}",
    "${if isip{${lookup dnsdb{a=mail.test.example}}}{y}{n}}",
]


@pytest.fixture(scope="module")
def dns_server():
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    assert os.path.exists(exe), "dnsmasq is needed: apt-get install dnsmasq-base"
    WORK.mkdir(parents=True, exist_ok=True)
    pidfile = WORK / "dnsmasq.pid"
    resolv = WORK / "resolv.conf"
    for addr in ADDRS:            # another test run may hold one address
        p = subprocess.Popen([exe, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                              f"--listen-address={addr}", "--bind-interfaces", "--port=53",
                              "--local=/example/", f"--pid-file={pidfile}",
                              "--log-facility=/dev/null"] + RECORDS,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if p.poll() is None:
            break
    assert p.poll() is None, "dnsmasq did not start"
    resolv.write_text(f"nameserver {addr}\n")
    yield resolv
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def exim_in_namespace(case: str, resolv, lines) -> str:
    """exim -be with a private /etc/resolv.conf; golden kept like oracle.exim_run."""
    conf = str(WORK / "conf")
    text = stdin_text(lines, None)
    path = oracle.GOLDEN / "expand" / case
    if oracle.EXIM is None:
        return oracle._parse_golden(path.read_text()).out
    argv = ["unshare", "-m", "sh", "-c",
            f"mount --bind {resolv} /etc/resolv.conf && exec {oracle.EXIM} -C {conf} -be"]
    r = oracle._run(argv, text, None, 120)
    live = oracle.Result(r.rc, normalize(r.out), normalize(r.err))
    oracle.keep_golden(path, live.as_text())
    return live.out


def test_dnsdb_against_exim(work, dns_server, monkeypatch):
    from eximpy.lookups import dnsdb
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    want = exim_in_namespace("dnsdb", dns_server, CASES)
    got = run_eximpy(CASES, str(WORK / "conf"))
    w, g = results(want), results(got)
    bad = [f"  {c}\n    exim:   {a!r}\n    eximpy: {b!r}"
           for c, a, b in zip(CASES, w, g) if a != b]
    assert not bad and len(w) == len(g) == len(CASES), "\n".join(bad)


def test_host_list_names_via_dns(dns_server, monkeypatch):
    """Name items in host lists use reverse DNS with forward confirmation."""
    from eximpy import match as M
    from eximpy.expand import ExpandContext
    from eximpy.lookups import dnsdb
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    ctx = ExpandContext()
    assert M.match_host("192.0.2.10", "", "*.test.example", ctx)[0] == M.OK
    assert M.match_host("192.0.2.10", "", "mail.test.example", ctx)[0] == M.OK
    assert M.match_host("192.0.2.10", "", "^mail\\.", ctx)[0] == M.OK
    assert M.match_host("192.0.2.10", "", "other.example", ctx)[0] == M.FAIL
    # no PTR record: the host is "unknown"
    assert M.match_host("192.0.2.99", "", "*.example : 192.0.2.99", ctx)[0] == M.FAIL
    assert M.match_host("192.0.2.99", "", "+ignore_unknown : *.example : 192.0.2.99",
                        ctx)[0] == M.OK
    assert M.match_host("192.0.2.99", "", "+include_unknown : *.example", ctx)[0] == M.OK


def test_sender_host_name_lookup(work, dns_server, monkeypatch):
    """$sender_host_name is looked up on first use (-be -oMa), as in Exim."""
    import io
    from eximpy.cli import expand_test
    from eximpy.cli.options import parse_args
    from eximpy.config import load_config
    from eximpy.lookups import dnsdb
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    conf = str(WORK / "conf")
    args = ["${if eq{a}{b}{$sender_host_name}{skipped}}|$host_lookup_failed",
            "$sender_host_name|$host_lookup_failed", "$sender_host_name"]
    for ip in ("192.0.2.10", "192.0.2.99"):
        argv = ["unshare", "-m", "sh", "-c",
                f"mount --bind {dns_server} /etc/resolv.conf && exec {oracle.EXIM} -C {conf}"
                f" -be -oMa {ip} " + " ".join(f"'{a}'" for a in args)]
        want = oracle._run(argv, None, None, 60).out
        inv = parse_args(["exim", "-C", conf, "-oMa", ip, "-be"] + args)
        out = io.BytesIO()
        expand_test.run(load_config(conf), inv.args, io.BytesIO(b""), out,
                        stderr=io.StringIO(), invocation=inv)
        assert out.getvalue().decode() == want, ip
