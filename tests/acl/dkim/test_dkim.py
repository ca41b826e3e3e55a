"""DKIM verification on receipt, compared with real Exim 4.96 (-bh).

Messages are signed here with dkimpy (keys made once by `cryptography`,
kept in keys/; the signature time is fixed so the messages, and Exim's
answers, are the same on every run): rsa-sha256 and ed25519-sha256, good
and tampered (body, header), with missing or broken key records.  The
public keys are served by a real dnsmasq on loopback (tests/acl/
dnsserver.py); Exim runs under `unshare -m` with a private resolv.conf,
eximpy is pointed at the same file through EXIMPY_RESOLV_CONF.

Each case is an `-bh` session (EHLO, MAIL, RCPT, DATA, QUIT): the SMTP
replies and the whole stderr (">>>" ACL trace and "LOG:" lines: the
"DKIM: ..." lines, the DKIM ACL runs, $dkim_* values, ${authresults} and
the "<=" line with DKIM=) must be identical.  Needs root.
"""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest

from oracle import EXIM, GOLDEN, ROOT, Result, _parse_golden, _run, keep_golden

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dnsserver  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.network]

HERE = Path(__file__).resolve().parent
WORK = ROOT / "tests" / "_work" / "acl_dkim"
SUITE = "acl_dkim"
T = 1700000000               # the signatures' t= (fixed)

BASE = (b"From: Alice <a@b.example>\r\n"
        b"To: u@example.org\r\n"
        b"Subject:  hello   there\r\n"
        b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        b"Message-ID: <1@b.example>\r\n"
        b"\r\n"
        b"body line  with   spaces \r\n"
        b"\r\n"
        b"second line\r\n"
        b"\r\n\r\n")
HDRS = [b"from", b"to", b"subject", b"date"]


def _key(name: str) -> bytes:
    return (HERE / "keys" / f"{name}.pem").read_bytes()


def _pub(name: str) -> tuple[str, str]:
    """(k=, p=) for the key record."""
    from cryptography.hazmat.primitives import serialization as S
    k = S.load_pem_private_key(_key(name), None)
    if name == "ed25519":
        raw = k.public_key().public_bytes(S.Encoding.Raw, S.PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    der = k.public_key().public_bytes(S.Encoding.DER,
                                      S.PublicFormat.SubjectPublicKeyInfo)
    return "rsa", base64.b64encode(der).decode()


def _txt(name: str, value: str) -> str:
    """A dnsmasq TXT record, split into 255-byte strings."""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    return f"--txt-record={name}," + ",".join(f'"{p}"' if "," in p else p
                                              for p in parts)


def records() -> list[str]:
    kr, pr = _pub("rsa1024")
    ke, pe = _pub("ed25519")
    kb, pb = _pub("rsa2048")
    return [
        _txt("sel._domainkey.b.example", f"v=DKIM1; k={kr}; p={pr}"),
        _txt("ed._domainkey.b.example", f"v=DKIM1; k={ke}; p={pe}"),
        _txt("big._domainkey.c.example", f"v=DKIM1; p={pb}"),
        _txt("notes._domainkey.b.example",
             f"v=DKIM1; k=rsa; t=y:s; n=test=20key; g=*; p={pr}"),
        _txt("badrec._domainkey.b.example", "v=DKIM1; k=rsa; p="),
        _txt("badder._domainkey.b.example", "v=DKIM1; k=rsa; p=AAAAAAAA"),
        _txt("svc._domainkey.b.example", f"v=DKIM1; s=tlsrpt; p={pr}"),
        _txt("sha1only._domainkey.b.example", f"v=DKIM1; h=sha1; p={pr}"),
        _txt("spf._domainkey.b.example", "v=spf1 -all"),
    ]


def _sign(msg: bytes, selector: str, domain: str, key: str, *,
          canon=(b"relaxed", b"simple"), identity: bytes | None = None,
          length: bool = False, algo: bytes | None = None) -> bytes:
    import dkim
    if key == "ed25519":
        from cryptography.hazmat.primitives import serialization as S
        k = S.load_pem_private_key(_key(key), None)
        raw = k.private_bytes(S.Encoding.Raw, S.PrivateFormat.Raw,
                              S.NoEncryption())
        priv, algo = base64.b64encode(raw), b"ed25519-sha256"
    else:
        priv = _key(key)
        algo = algo or b"rsa-sha256"
    with mock.patch("time.time", return_value=T):
        sig = dkim.sign(msg, selector.encode(), domain.encode(), priv,
                        identity=identity, canonicalize=canon,
                        include_headers=HDRS, length=length,
                        signature_algorithm=algo)
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def messages() -> dict[str, bytes]:
    rsa = _sign(BASE, "sel", "b.example", "rsa1024")
    ed = _sign(BASE, "ed", "b.example", "ed25519")
    big = _sign(BASE, "big", "c.example", "rsa2048",
                canon=(b"relaxed", b"relaxed"))
    simple = _sign(BASE, "sel", "b.example", "rsa1024",
                   canon=(b"simple", b"simple"),
                   identity=b"alice@b.example")
    lengthy = _sign(BASE, "sel", "b.example", "rsa1024", length=True)
    m = {
        "good": rsa + ed + BASE,
        "multi": big + rsa + ed + BASE,
        "simple": simple + BASE,
        "tbody": rsa + ed + BASE.replace(b"second line", b"second lime"),
        "thdr": rsa + ed + BASE.replace(b"hello", b"jello"),
        "nokey": rsa.replace(b"s=sel;", b"s=nosel;") + ed + BASE,
        "lengthy": lengthy + BASE + b"appended\r\n",
        "none": BASE,
    }
    for sel in ("badrec", "badder", "svc", "sha1only", "notes", "spf"):
        m[sel] = _sign(BASE, sel, "b.example", "rsa1024") + BASE
    m["notes"] = _sign(BASE, "notes", "b.example", "rsa1024") + BASE
    return m


DKIM_LOG = ("  warn logwrite = cur=$dkim_cur_signer st=$dkim_verify_status "
            "r=$dkim_verify_reason d=$dkim_domain i=$dkim_identity "
            "s=$dkim_selector a=$dkim_algo len=$dkim_key_length\n"
            "  warn logwrite = cb=$dkim_canon_body ch=$dkim_canon_headers "
            "bl=$dkim_bodylength t=$dkim_created x=$dkim_expires "
            "h=$dkim_headernames z=$dkim_copiedheaders\n"
            "  warn logwrite = kt=$dkim_key_testing kn=$dkim_key_nosubdomains "
            "ks=$dkim_key_srvtype kg=$dkim_key_granularity "
            "knotes=$dkim_key_notes\n")
DATA_LOG = ("d:\n"
            "  warn logwrite = signers=$dkim_signers status=$dkim_verify_status"
            " cur=$dkim_cur_signer d=$dkim_domain\n"
            "  warn logwrite = ${authresults{mx.example.com}}\n"
            "  accept\n")

CONFS = {
    # every signature through the DKIM ACL, all variables logged
    "acl": ("acl_smtp_dkim = k\n",
            "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    # no DKIM ACL: each signature logged (dkim_verbose), DKIM= on <=
    "noacl": ("log_selector = +dkim_verbose\n", DATA_LOG),
    # conditions, policy override, denial
    "policy": ("acl_smtp_dkim = k\nlog_selector = +dkim_verbose\n",
               "k:\n"
               "  warn dkim_signers = c.example : @b.example\n"
               "       logwrite = signer $dkim_cur_signer in list\n"
               "  warn dkim_status = invalid\n"
               "       set dkim_verify_status = fail\n"
               "       set dkim_verify_reason = policy says no\n"
               "  warn dkim_signers = b.example\n"
               "       dkim_status = pass\n"
               "       condition = ${if eq{$dkim_algo}{rsa-sha256}}\n"
               "       set dkim_verify_status = neutral\n"
               "  deny dkim_status = fail\n"
               "       message = DKIM says $dkim_verify_reason\n"
               "  accept\n" + DATA_LOG),
    # extra signers, minimal verification
    "signers": ("acl_smtp_dkim = k\ndkim_verify_minimal = true\n"
                "dkim_verify_signers = other.example : $dkim_signers : "
                "b.example : alice@b.example\n",
                "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    # verification switched off in the RCPT ACL
    "disable": ("acl_smtp_dkim = k\nacl_smtp_rcpt = r\n",
                "r:\n  accept control = dkim_disable_verify\n"
                "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    # ... in the connect ACL (Exim's smtp_reset at the first message
    # clears it) and in the MAIL ACL
    "disable_connect": ("acl_smtp_dkim = k\nacl_smtp_connect = c\n",
                        "c:\n  accept control = dkim_disable_verify\n"
                        "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    "disable_mail": ("acl_smtp_dkim = k\nacl_smtp_mail = m\n",
                     "m:\n  accept control = dkim_disable_verify\n"
                     "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    # preferences and key sizes
    "prefs": ("acl_smtp_dkim = k\ndkim_verify_keytypes = rsa\n"
              "dkim_verify_min_keysizes = rsa=2048\n"
              "log_selector = +dkim_verbose -dkim\n",
              "k:\n" + DKIM_LOG + "  accept\n" + DATA_LOG),
    # discard from the DKIM ACL
    "discard": ("acl_smtp_dkim = k\n",
                "k:\n  discard dkim_status = pass\n"
                "          log_message = thrown away\n  accept\n" + DATA_LOG),
}
CASES = [(c, m) for c in ("acl", "noacl") for m in (
    "good", "multi", "simple", "tbody", "thdr", "nokey", "lengthy", "none",
    "badrec", "badder", "svc", "sha1only", "notes", "spf")] + [
    (c, m) for c in ("policy", "signers", "prefs") for m in (
        "good", "multi", "nokey", "none", "simple")] + [
    ("disable", "good"), ("discard", "good"), ("discard", "tbody"),
    ("disable_connect", "good"), ("disable_mail", "good"),
    ("acl", "good+bdat"), ("noacl", "tbody+bdat")]


@pytest.fixture(scope="module")
def dns_server():
    p, resolv = dnsserver.start(records(), WORK)
    yield resolv
    dnsserver.stop(p)


@pytest.fixture(scope="module")
def msgs():
    return messages()


def _conf(d: Path, opts: str, acl: str) -> Path:
    spool = d / "spool"
    (spool / "log").mkdir(parents=True, exist_ok=True)
    hooks = "acl_smtp_data = d\n"
    if "acl_smtp_rcpt" not in opts:
        hooks += "acl_smtp_rcpt = accept\n"
    conf = d / "conf"
    conf.write_text("primary_hostname = mx.example.com\n"
                    f"spool_directory = {spool}\n"
                    f"log_file_path = {spool}/log/%slog\n"
                    "exim_user = root\nexim_group = root\nnever_users =\n"
                    + hooks + opts + "begin acl\n" + acl)
    return conf


_ID = re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b")
_DATE = re.compile(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _norm(text: str, d: Path) -> str:
    text = text.replace("\r\n", "\n").replace(str(d), "DIR")
    text = _ID.sub("MSGID", text)
    return _DATE.sub("DATE", text)


def _dialogue(msg: bytes) -> bytes:
    return (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
            b"RCPT TO:<u@example.org>\r\nDATA\r\n" + msg + b".\r\nQUIT\r\n")


def _exim(case: str, conf: Path, resolv: Path, dlg: bytes,
          d: Path) -> Result:
    path = GOLDEN / SUITE / case
    if EXIM is None:
        return _parse_golden(path.read_text())
    argv = dnsserver.exim_argv(EXIM, resolv,
                               ["-C", str(conf), "-bh", "192.0.2.5"])
    r = _run(argv, dlg, None, 120)
    live = Result(r.rc, _norm(r.out, d), _norm(r.err, d))
    keep_golden(path, live.as_text())
    return live


@pytest.mark.parametrize("conf_name,msg_name", CASES)
def test_dkim_bh(conf_name: str, msg_name: str, dns_server: Path, msgs,
                 monkeypatch) -> None:
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.lookups import dnsdb
    case = f"{conf_name}-{msg_name}"
    d = WORK / case
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    opts, acl = CONFS[conf_name]
    conf = _conf(d, opts, acl)
    if msg_name.endswith("+bdat"):
        body = msgs[msg_name[:-5]]
        dlg = (b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n"
               b"RCPT TO:<u@example.org>\r\n" +
               f"BDAT {len(body)} LAST\r\n".encode() + body +
               b"QUIT\r\n")
    else:
        dlg = _dialogue(msgs[msg_name])
    want = _exim(case, conf, dns_server, dlg, d)
    monkeypatch.setenv("EXIMPY_RESOLV_CONF", str(dns_server))
    monkeypatch.setattr(dnsdb, "_RESOLVERS", {})
    inv = parse_args(["exim", "-C", str(conf), "-bh", "192.0.2.5"])
    out, err = io.BytesIO(), io.StringIO()
    run_bh(_load(inv), inv, io.BytesIO(dlg), out, err)
    got = (_norm(out.getvalue().decode(), d), _norm(err.getvalue(), d))
    assert got == (want.out, want.err), _diff(got, want)


def _diff(got: tuple[str, str], want: Result) -> str:
    import difflib
    return "\n".join(difflib.unified_diff(
        (want.out + want.err).split("\n"), (got[0] + got[1]).split("\n"),
        "exim", "eximpy", lineterm="", n=1))


def test_signing_is_reproducible(msgs) -> None:
    """The messages (hence the goldens) do not change between runs."""
    again = messages()
    assert again == msgs
    assert os.path.exists(HERE / "keys" / "rsa2048.pem")


BS_CASES = [("noacl", "good"), ("noacl", "multi"), ("noacl", "tbody"),
            ("acl", "nokey"), ("policy", "nokey"), ("policy", "good"),
            ("discard", "good"), ("disable", "good")]


def _logs(d: Path) -> str:
    out = []
    for name in ("mainlog", "rejectlog"):
        p = d / "spool" / "log" / name
        text = p.read_text() if p.exists() else ""
        text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", text,
                      flags=re.M)
        text = "\n".join(ln for ln in text.split("\n")
                         if "purging the environment" not in ln and
                         "Suggested action: use keep_environment" not in ln)
        out.append(f"--- {name}\n" + _norm(text, d))
    return "\n".join(out)


@pytest.mark.parametrize("conf_name,msg_name", BS_CASES)
def test_dkim_bs(conf_name: str, msg_name: str, dns_server: Path,
                 msgs) -> None:
    """-bs: the log files themselves (DKIM: lines, DKIM= on "<=",
    rejections in mainlog and rejectlog)."""
    import subprocess
    from oracle import EXIMPY
    case = f"bs-{conf_name}-{msg_name}"
    dlg = _dialogue(msgs[msg_name])
    opts, acl = CONFS[conf_name]
    got = {}
    for who in ("exim", "py"):
        d = WORK / case / who
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        conf = _conf(d, opts + "queue_only = true\n", acl)
        if who == "exim":
            if EXIM is None:
                got[who] = (GOLDEN / SUITE / case).read_text()
                continue
            argv = dnsserver.exim_argv(EXIM, dns_server,
                                       ["-C", str(conf), "-bs"])
            env = None
        else:
            argv = EXIMPY + ["-C", str(conf), "-bs"]
            env = dict(os.environ, EXIMPY_RESOLV_CONF=str(dns_server),
                       PYTHONPATH=str(ROOT))
        subprocess.run(argv, input=dlg, capture_output=True, timeout=120,
                       cwd=str(ROOT), env=env)
        got[who] = _logs(d)
    if EXIM is not None:
        keep_golden(GOLDEN / SUITE / case, got["exim"])
    assert got["py"] == got["exim"]
