"""DANE on the client side, after the seed's "DANE in 1 Minute" example
(dnslookup router with dnssec_request_domains = *, smtp transport with
hosts_try_dane = *), against real Exim.

DNS comes from a small authoritative server on loopback
(tests/remote/adns.py: dnsmasq gives neither the AD bit nor the authority
records Exim's dns_trust_aa needs) serving the MX, the A record and TLSA
records made from the test server's key, with the AD and AA bits; both
MTAs run in a private mount namespace whose /etc/resolv.conf names it
(with "options trust-ad", without which glibc hides AD from Exim).  One
case serves the same data without AD ("insecure"), and dns_trust_aa then
decides.  The SMTP server is the scripted one with STARTTLS on
127.0.0.2."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import adns  # noqa: E402
from _remote import WORK, resolv_wrap, run_both  # noqa: E402
from smtpserver import ScriptedServer, make_cert  # noqa: E402
from test_smtp_transport import MESSAGE  # noqa: E402

CONF = """\
primary_hostname = sender.example
qualify_domain = sender.example
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
@MAIN@

begin routers
  bounces:
    driver = redirect
    domains = sender.example
    data = :blackhole:

  dnslookup:
    driver = dnslookup
    transport = remote_smtp
    dnssec_request_domains = *

begin transports
  remote_smtp:
    driver = smtp
    hosts_try_dane = *
    port = @PORT@
@TRANSPORT@

begin retry
  * * F,1h,10m
"""


def _spki_sha256(cert_pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


CASES = {
    # name: (TLSA data or None, transport options, STARTTLS offered,
    #        AD bit set, main options)
    "dane-ee-match": ("good", "", True, True, ""),
    "dane-ee-mismatch": ("bad", "", True, True, ""),
    "dane-no-tlsa": (None, "", True, True, ""),
    "dane-no-starttls": ("good", "", False, True, ""),
    "dane-required-no-tlsa": (None, "    hosts_require_dane = *\n", True,
                              True, ""),
    "dane-insecure": ("good", "", True, False, ""),
    "dane-insecure-required": ("good", "    hosts_require_dane = *\n", True,
                               False, ""),
    "dane-trust-aa": ("good", "", True, False, "dns_trust_aa = dane.test"),
    "dane-no-try": ("good", "NO-TRY", True, True, ""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dane(case):
    tlsa, topts, starttls, secure, main = CASES[case]
    d = WORK / f"{case}-certs"
    d.mkdir(parents=True, exist_ok=True)
    cert, key, _ca = make_cert(str(d), names=("mx.dane.test",))
    exts = ("PIPELINING", "STARTTLS", "SIZE 0") if starttls else \
        ("PIPELINING", "SIZE 0")
    srv = ScriptedServer(extensions=exts, tls_cert=(cert, key)).start()
    records = ["mx.dane.test. 60 IN A 127.0.0.2",
               "dane.test. 60 IN MX 10 mx.dane.test."]
    if tlsa:
        data = _spki_sha256(cert) if tlsa == "good" else "00" * 32
        records.append(f"_{srv.port}._tcp.mx.dane.test. 60 IN TLSA 3 1 1 {data}")
    dns, resolv = adns.start(records, d / "dns", "dane.test.", secure)
    try:
        conf = CONF
        if topts == "NO-TRY":
            conf, topts = conf.replace("hosts_try_dane = *", "hosts_try_dane ="), ""
        res = run_both(case, conf.replace("@TRANSPORT@", topts)
                       .replace("@MAIN@", main),
                       [(["-f", "sender@sender.example", "a@dane.test",
                          "b@dane.test"], MESSAGE)], srv,
                       wrap=resolv_wrap(resolv))
    finally:
        adns.stop(dns)
        srv.stop()
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]
