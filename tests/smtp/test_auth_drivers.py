"""The external and tls authenticators (eximpy/auths/external.py, tls.py).

external is compared with real `exim -C conf -bs` dialogues, the same way
as the other AUTH dialogues in test_smtp_differential.py.  The tls
authenticator only runs after a TLS handshake with a verified client
certificate, which `-bs` cannot carry; it is checked against a listening
session with certificates made by `cryptography`, following Exim's
smtp_in.c (run once per handshake, silent on failure, AUTH then no
longer advertised).
"""
from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest

from eximpy.config import load_config
from smtp.conftest import write_conf
from smtp.test_network import _make_pki, _server_cfg, _spooled
from smtp.test_smtp_differential import (
    DATA, MF, MSG, Q, RT, _dialogue, d)

E = b"EHLO x\r\n"
EXTERNAL = """
begin authenticators
ext:
  driver = external
  public_name = EXTERNAL
  server_param2 = p2-${length_3:$auth1}
  server_param3 = p3-$auth2
  server_condition = ${if and{{eq{$auth1}{alice}}{eq{$auth2}{p2-ali}}\
                     {eq{$auth3}{p3-p2-ali}}{eq{$2}{p2-ali}}}}
  server_set_id = $auth1/$auth2/$auth3
"""
EXTERNAL_BARE = """
begin authenticators
ext:
  driver = external
  public_name = EXTERNAL
  server_condition = ${if eq{$auth1}{}{yes}{${if eq{$auth1}{bob}}}}
  server_set_id = <$auth1>
"""
BASE = "acl_smtp_rcpt = accept\nsmtp_max_synprot_errors = 100\n"
ALICE = b"YWxpY2U="                       # "alice"
BOB = b"Ym9i"                             # "bob"

CASES = {
    # data on the AUTH command, server_param2/3 as $auth2/$auth3 and $2
    "auth_external_initial": (
        BASE + EXTERNAL,
        d(E, b"AUTH EXTERNAL " + ALICE + b"\r\n", MF, RT, DATA, MSG, Q)),
    # no data: an empty 334 prompt, the answer becomes $auth1
    "auth_external_prompt": (
        BASE + EXTERNAL,
        d(E, b"AUTH EXTERNAL\r\n", ALICE + b"\r\n", MF, RT, DATA, MSG, Q)),
    "auth_external_wrong": (
        BASE + EXTERNAL,
        d(E, b"AUTH EXTERNAL " + BOB + b"\r\n", b"AUTH EXTERNAL\r\n",
          b"*\r\n", b"AUTH EXTERNAL\r\n", b"!!!\r\n", Q)),
    # "=" is one empty item; an empty answer to the prompt is one too
    "auth_external_empty": (
        BASE + EXTERNAL_BARE,
        d(E, b"AUTH EXTERNAL =\r\n", MF, RT, DATA, MSG, Q)),
    "auth_external_empty_prompt": (
        BASE + EXTERNAL_BARE,
        d(E, b"AUTH EXTERNAL\r\n", b"\r\n", MF, RT, DATA, MSG, Q)),
    "auth_external_bad64": (
        BASE + EXTERNAL_BARE,
        d(E, b"AUTH EXTERNAL %%%\r\n", b"AUTH EXTERNAL " + BOB + b"\r\n",
          MF, RT, DATA, MSG, Q)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_external_matches_exim(case: str, smtpdir: Path) -> None:
    extra, data = CASES[case]
    _dialogue(case, extra, data, [], smtpdir)


TLS_AUTH = """
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = yes
  server_set_id = $auth2
cert:
  driver = tls
  server_param1 = ${tls_in_peerdn}
  server_param2 = second
  server_condition = ${if and{{match{$auth1}{CN=client\\\\.test}}\
                     {eq{$auth2}{second}}}}
  server_set_id = cert:$auth2
"""


@pytest.fixture
def tls_auth_server(smtpdir: Path):
    pki = _make_pki(smtpdir)
    extra = ("acl_smtp_rcpt = accept\nsmtp_receive_timeout = 5s\n"
             f"tls_certificate = {pki['server']}\n"
             f"tls_privatekey = {pki['server_key']}\n"
             f"tls_verify_certificates = {pki['ca']}\n"
             "tls_try_verify_hosts = 127.0.0.1\n" + TLS_AUTH)
    cfg = load_config(str(write_conf(smtpdir, extra)))
    yield from _server_cfg(smtpdir, cfg, False, pki)


def _tls_session(port: int, pki: dict, with_cert: bool) -> str:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    if with_cert:
        ctx.load_cert_chain(str(pki["client"]), str(pki["client_key"]))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        c.starttls(context=ctx)
        code, text = c.ehlo("client.example")
        assert code == 250
        c.sendmail("a@b.example", ["c@d.example"], b"Subject: t\r\n\r\nx\r\n")
    return text.decode()


def test_tls_authenticator_with_verified_certificate(tls_auth_server):
    d, port, pki = tls_auth_server
    ehlo = _tls_session(port, pki, with_cert=True)
    # Authenticated by the certificate: AUTH is no longer offered.
    assert "AUTH" not in ehlo
    h = (d / "spool" / "input" / f"{_spooled(d)[0]}-H").read_text()
    assert "-auth_id cert:second" in h
    assert "-host_auth cert" in h
    log = (d / "log" / "mainlog").read_text()
    assert " P=esmtpsa " in log and " A=cert:cert:second " in log


def test_tls_authenticator_needs_a_certificate(tls_auth_server):
    d, port, pki = tls_auth_server
    ehlo = _tls_session(port, pki, with_cert=False)
    assert "AUTH PLAIN" in ehlo
    h = (d / "spool" / "input" / f"{_spooled(d)[0]}-H").read_text()
    assert "-auth_id" not in h
    log = (d / "log" / "mainlog").read_text()
    assert " P=esmtps " in log and " A=" not in log
