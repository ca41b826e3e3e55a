"""${certextract} and the certificate hashes, against real Exim over TLS.

Real Exim runs as ``exim -bs`` (a test mode, no daemon) with its standard
input and output on one end of a socketpair.  The test speaks SMTP on the
other end, starts TLS with a client certificate, and the MAIL and RCPT ACLs
logwrite the expansion of every field of the client's and the server's
certificate.  eximpy expands the same strings with the same certificates
(tests/expand/fixtures/certs, made by make.py there).  Exim's answers are
kept in tests/golden/expand/certextract.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from eximpy.expand import ExpandContext, Tainted, expand_string
from eximpy.errors import ExpansionError, ExpansionForcedFail
from tests.expand.conftest import WORK
from tests.oracle import EXIM, GOLDEN, ROOT, keep_golden

pytestmark = [pytest.mark.root]        # exim -C with a throw-away configuration

CERTS = ROOT / "tests" / "expand" / "fixtures" / "certs"

FIELDS = [
    "version", "serial_number", "subject", "issuer", "notbefore", "notafter",
    "notbefore,int", "notafter,int", "notafter,foo", "sig_algorithm", "signature",
    "subj_altname", "subj_altname,dns", "subj_altname,mail", "subj_altname,uri",
    "subj_altname,>;", "subj_altname,dns,>;", "subj_altname,>;,mail", "subj_altname,>,",
    "ocsp_uri", "crl_uri", "ocsp_uri,>;", "crl_uri,>|",
    "subject,CN", "subject,O", "subject,OU", "subject,DC", "subject,EMAIL", "subject,L",
    "subject,UID", "subject,C", "subject,>;", "subject,>;,OU", "subject,OU,>:",
    "subject,cn", "subject,XX", "issuer,O", "issuer,CN", "issuer,>;",
    "2.5.29.17", "2.5.29.17,0", "2.5.29.17,1", "2.5.29.19", "1.3.6.1.5.5.7.1.1",
    "2.5.29.31", "1.2.3.4", "bogus", "Version", "SUBJECT", "bogus,x",
    "versionX", "subjectfoo", "notafterint", "sig_algorithm,x", "2.5.29.17x",
    "subj_altname,foo,dns", "subj_altname,dns,foo", "subj_altname,>", "subj_altname,mailx",
    "subj_altname,uri,>;,dns", "ocsp_uri,foo", "ocsp_uri,>", "subject,,CN", "subject,CN,O",
    "issuer,>", "serial_number,x", "notbefore,int,x",
]
# Given as tainted data (taken from the RCPT command, case kept) rather
# than literally.
TFIELD = '${sg{$smtp_command}{\\N^[^"]*"([^"]*)".*$\\N}{\\$1}}'
TAINTED = ["version", "subject", "subject,CN", "subject,>;", "issuer,O", "subj_altname,dns"]
HASHES = ("${md5:$tls_in_peercert}|${sha1:$tls_in_peercert}|${sha256:$tls_in_peercert}|"
          "${base64:$tls_in_peercert}|${md5:$tls_in_ourcert}|${sha256:$tls_in_ourcert}")


def item(field: str, var: str) -> str:
    return "${escape:${certextract{" + field + "}{$" + var + "}{<$value>}{NONE}}}"


def config(work) -> str:
    lines = [f"primary_hostname = mx.example.test",
             f"spool_directory = {work}/spool",
             f"log_file_path = {work}/log/%slog",
             "log_selector = -tls_cipher -tls_certificate_verified",
             "tls_advertise_hosts = *",
             f"tls_certificate = {work}/server.pem",
             f"tls_privatekey = {work}/server.key",
             f"tls_verify_certificates = {work}/ca.pem",
             "tls_try_verify_hosts = *",
             "acl_smtp_rcpt = r",
             "begin acl", "r:"]
    # One recipient per expansion: an expansion error fails that RCPT only.
    for i, f in enumerate(FIELDS):
        for tag, var in (("P", "tls_in_peercert"), ("O", "tls_in_ourcert")):
            lines.append(f"  warn condition = ${{if eqi{{$local_part}}{{{tag}{i}}}}}")
            lines.append(f"       logwrite = <{tag}{i}>{item(f, var)}")
    lines.append("  warn condition = ${if eqi{$local_part}{H}}")
    lines.append(f"       logwrite = <H>{HASHES}")
    lines.append("  warn condition = ${if eq{$domain}{t.example.test}}")
    lines.append("       logwrite = <T>" + TFIELD + ":" + item(TFIELD, "tls_in_peercert"))
    lines.append("  deny")
    return "\n".join(lines) + "\n"


def _reply(f) -> list[str]:
    out = []
    while True:
        line = f.readline()
        out.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return out


def exim_answers(work, argv0: list[str] | None = None) -> str:
    """Run the TLS session against `exim -bs` (or ``argv0 -bs``, e.g.
    eximpy's); the logwrite lines, in order."""
    a, b = socket.socketpair()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen((argv0 or [EXIM]) + ["-C", str(work / "conf"), "-bs"],
                         stdin=b, stdout=b, stderr=subprocess.PIPE, env=env,
                         cwd=str(ROOT))
    b.close()
    try:
        a.settimeout(30)
        f = a.makefile("rb")
        _reply(f)
        a.sendall(b"EHLO client.example.test\r\n")
        assert "250-STARTTLS" in _reply(f)
        a.sendall(b"STARTTLS\r\n")
        assert _reply(f)[0].startswith("220")
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.load_cert_chain(str(work / "client.pem"), str(work / "client.key"))
        t = c.wrap_socket(a, server_hostname="mx.example.test")
        f = t.makefile("rb")
        t.sendall(b"EHLO client.example.test\r\n")
        _reply(f)
        t.sendall(b"MAIL FROM:<a@example.test>\r\n")
        assert _reply(f)[0].startswith("250")
        rcpts = [f"{tag}{i}@example.test" for i in range(len(FIELDS)) for tag in "PO"]
        rcpts += ["H@example.test"] + [f'"{fl}"@t.example.test' for fl in TAINTED]
        for r in rcpts:
            t.sendall(f"RCPT TO:<{r}>\r\n".encode())
            _reply(f)
        t.sendall(b"QUIT\r\n")
        _reply(f)
        t.close()
    finally:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stderr.close()
    log = (work / "log" / "mainlog").read_text("latin-1")
    out = []
    for line in log.splitlines():
        m = re.search(r" (<[POHT]\d*>.*)$", line)
        if m:
            out.append(m.group(1))
        elif "failed to expand" in line:
            m = re.search(r'"(<[POHT]\d*>)[^"]*": (.*)$', line)
            out.append(f"FAILED {m.group(1)}: {m.group(2)}" if m else line[20:])
    return "\n".join(out) + "\n"


def eximpy_answers() -> str:
    peer = (CERTS / "client.pem").read_bytes()
    ours = (CERTS / "server.pem").read_bytes()
    from cryptography import x509
    variables = {"tls_in_peercert_object": x509.load_pem_x509_certificate(peer),
                 "tls_in_ourcert_object": x509.load_pem_x509_certificate(ours)}
    ctx = ExpandContext(variables=variables)
    out = []

    def one(tag: str, text: str) -> None:
        try:
            out.append(f"<{tag}>" + expand_string(text, ctx))
        except ExpansionForcedFail:
            pass
        except ExpansionError as e:
            # (the log drops a message's trailing newline)
            out.append(f"FAILED <{tag}>: {str(e).rstrip(chr(10))}")

    for i, f in enumerate(FIELDS):
        one(f"P{i}", item(f, "tls_in_peercert"))
        one(f"O{i}", item(f, "tls_in_ourcert"))
    one("H", HASHES)
    for fl in TAINTED:
        ctx.variables["smtp_command"] = Tainted(f'RCPT TO:<"{fl}"@t.example.test>')
        one("T", TFIELD + ":" + item(TFIELD, "tls_in_peercert"))
    return "\n".join(out) + "\n"


@pytest.fixture()
def work():
    # Exim drops privilege: the directory must be reachable by its user
    # (pytest's tmp_path is not).
    tmp_path = WORK / "certextract"
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(parents=True)
    for d in ("spool", "log"):
        (tmp_path / d).mkdir()
        os.chmod(tmp_path / d, 0o777)
    os.chmod(tmp_path, 0o755)
    for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"):
        shutil.copy(CERTS / n, tmp_path / n)
        os.chmod(tmp_path / n, 0o644)
    (tmp_path / "conf").write_text(config(tmp_path))
    return tmp_path


def test_certextract_against_exim(work, monkeypatch):
    import time
    monkeypatch.setenv("TZ", "UTC")       # as Exim runs (notbefore/notafter)
    time.tzset()
    golden = GOLDEN / "expand" / "certextract"
    if EXIM:
        want = exim_answers(work)
        keep_golden(golden, want)
    else:
        want = golden.read_text()
    try:
        got = eximpy_answers()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert got == want


def test_certextract_in_a_real_session(work):
    """The same TLS session through eximpy's own -bs: its SMTP session
    gives the ACLs both certificates ($tls_in_peercert, $tls_in_ourcert)."""
    golden = GOLDEN / "expand" / "certextract"
    want = exim_answers(work) if EXIM else golden.read_text()
    for name in ("mainlog",):
        (work / "log" / name).unlink(missing_ok=True)
    ours = exim_answers(work, [str(ROOT / ".venv" / "bin" / "python"), "-m",
                               "eximpy"])
    assert ours == want
