"""The external and tls authenticators (eximpy/auths/external.py, tls.py).

external is compared with real `exim -C conf -bs` dialogues, the same way
as the other AUTH dialogues in test_smtp_differential.py.  The tls
authenticator only runs after a TLS handshake with a verified client
certificate: it is checked against a listening session with certificates
made by `cryptography`, and against real `exim -bs` with STARTTLS on a
socketpair (AUTH then no longer advertised, the same P= and A=).
"""
from __future__ import annotations

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from eximpy.config import load_config
from oracle import EXIM, ROOT
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


CERTS = Path(__file__).resolve().parent.parent / "expand" / "fixtures" / "certs"
def _bs_tls_session(argv0, work):
    """A -bs session on a socketpair with STARTTLS and a client certificate:
    the AUTH lines of the EHLO after TLS, and the <= log lines."""
    conf=work/"conf"
    conf.write_text(f"""primary_hostname = mx.example.test
spool_directory = {work}/spool
log_file_path = {work}/log/%slog
exim_user = root
exim_group = root
never_users =
tls_advertise_hosts = *
tls_certificate = {work}/server.pem
tls_privatekey = {work}/server.key
tls_verify_certificates = {work}/ca.pem
tls_try_verify_hosts = *
acl_smtp_rcpt = accept
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = yes
  server_set_id = $auth2
cert:
  driver = tls
  server_param1 = ${{certextract{{subject,CN}}{{$tls_in_peercert}}}}
  server_condition = ${{if eq{{$tls_in_certificate_verified}}{{1}}}}
  server_set_id = c:$auth1
""")
    a,b=socket.socketpair()
    p=subprocess.Popen(argv0+["-C",str(conf),"-bs"],stdin=b,stdout=b,stderr=subprocess.PIPE,env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))
    b.close(); f=a.makefile("rb")
    def reply(f):
        out=[]
        while True:
            l=f.readline(); out.append(l.decode().rstrip()); 
            if len(l)<4 or l[3:4]!=b"-": return out
    reply(f); a.sendall(b"EHLO c\r\n"); reply(f); a.sendall(b"STARTTLS\r\n"); reply(f)
    c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); c.check_hostname=False; c.verify_mode=ssl.CERT_NONE
    c.load_cert_chain(str(work/"client.pem"),str(work/"client.key"))
    t=c.wrap_socket(a,server_hostname="mx.example.test"); f=t.makefile("rb")
    t.sendall(b"EHLO c\r\n"); e=reply(f)
    t.sendall(b"MAIL FROM:<a@b.example>\r\n"); reply(f); t.sendall(b"RCPT TO:<x@y.example>\r\n"); reply(f)
    t.sendall(b"DATA\r\n"); reply(f); t.sendall(b"Subject: s\r\n\r\nb\r\n.\r\n"); reply(f); t.sendall(b"QUIT\r\n"); reply(f); t.close(); p.wait(30)
    log=(work/"log"/"mainlog").read_text()
    return [x for x in e if "AUTH" in x], [l.split(" <= ")[1] for l in log.splitlines() if " <= " in l]

def test_tls_authenticator_matches_exim():
    """The same STARTTLS session with a verified client certificate through
    real `exim -bs` and eximpy's -bs (both on a socket): AUTH is no longer
    offered, and the <= line has the same P= and A= (the cipher names
    differ: Debian's Exim uses GnuTLS)."""
    got = {}
    for name, argv0 in (("exim", [EXIM]),
                        ("eximpy", [str(ROOT / ".venv" / "bin" / "python"),
                                    "-m", "eximpy"])):
        w = ROOT / "tests" / "_work" / "tls_auth" / name
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        os.chmod(w, 0o755)
        for sub in ("spool", "log"):
            (w / sub).mkdir()
            os.chmod(w / sub, 0o777)
        for n in ("ca.pem", "server.pem", "server.key", "client.pem",
                  "client.key"):
            shutil.copy(CERTS / n, w / n)
            os.chmod(w / n, 0o644)
        auth_lines, received = _bs_tls_session(argv0, w)
        got[name] = (auth_lines, [re.sub(r" (X|S)=\S+", "", ln)
                                  for ln in received[:1]])
    assert "A=cert:c:client.example.test" in got["exim"][1][0]
    assert got["eximpy"] == got["exim"]
