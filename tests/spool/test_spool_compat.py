"""Spool compatibility with real Exim 4.96, in both directions.

- eximpy's local submission writes the same -H/-D files and the same <=
  line as Exim for the same input (ids and times normalized);
- real `exim -bp`, `-Mvh`, exipick and exiqsumm read eximpy's spool;
- eximpy reads Exim's spool (local and SMTP with AUTH and DSN):
  `eximpy -bp*` equals `exim -bp*` byte for byte;
- corrupt and hostile spool files are reported like Exim does.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import (EXIM, config_for, eximpy, exim, golden_check,
                     make_scratch, normalize, only_id, smtp_script,
                     spool_files)
from eximpy.cli import queue_ops
from eximpy.log.writer import LogWriter
from eximpy.receive import LocalOptions, receive_local

CASES = {
    "basic": (["-f", "alice@example.test"],
              ["bob@example.test", "carol@remote.test"],
              b"From: Alice <alice@example.test>\nSubject: Hello world\n\n"
              b"body line 1\nbody line two\n", {}),
    "dot-ends": (["-f", "alice@example.test"], ["bob@example.test"],
                 b"Subject: nofrom\n\nline\n.\nafter dot\n", {}),
    "extract": (["-t", "-i", "-f", "alice@example.test"],
                ["b@example.test", "x@example.test"],
                b'To: a@example.test, "B" <b@example.test>\n'
                b"Cc: c@example.test\nBcc: d@example.test\nSubject: t\n\n"
                b"line\r\n", dict(extract_recipients=True, dot_ends=False)),
    "no-headers": (["-oi"], ["bob"], b"no header line here\nmore\n",
                   dict(dot_ends=False)),
    "all-headers": (["-oi"], ["bob"],
                    b"From: x@y\nDate: Tue, 1 Jan 2030 00:00:00 +0000\n"
                    b"Message-ID: <m@x>\nX-Long: aa\n  continued\n\nbody\n",
                    dict(dot_ends=False)),
    "null-sender": (["-f", "<>"], ["bob"], b"Subject: x\n\nb", {}),
    "sender-name": (["-F", "Bob Smith"], ["bob"], b"Subject: x\n\nb",
                    dict(sender_name="Bob Smith")),
    "empty-headers": (["-f", "s@x"], ["Foo <bob@example.test>"],
                      b"\n\nb\n\n", {}),
    "binary-zero": (["-f", "s@x"], ["bob"], b"Subject: zero\n\nb\0c\n", {}),
    "mbox-from-line": ([], ["bob"], b"From someone@else.example Wed Nov 25 "
                       b"11:00:00 2026\nSubject: mbox\n\nbody\n", {}),
    "mbox-from-line-f": (["-f", "x@y"], ["bob"], b"From someone@else.example "
                         b"Wed Nov 25 11:00:00 2026\nSubject: m\n\nbody\n",
                         {}),
    "long-line": ([], ["bob"], b"From: a@b\nSubject: big\n\n" + b"x" * 100
                  + b"\n", {}),
    "crlf-and-cr": (["-f", "s@x"], ["bob"],
                    b"Subject: crlf\r\n\r\nline\r\nbare\rcr\n", {}),
}


def _spool_texts(base: Path, mid: str) -> tuple[str, str, str]:
    inp = base / "spool" / "input"
    h = (inp / f"{mid}-H").read_bytes().decode("utf-8", "surrogateescape")
    d = (inp / f"{mid}-D").read_bytes().decode("utf-8", "surrogateescape")
    log = (base / "log" / "mainlog").read_text()
    ids = {mid: "ID"}
    return normalize(h, ids), normalize(d, ids), normalize(log, ids)


@pytest.mark.parametrize("case", sorted(CASES))
def test_local_submission_writes_what_exim_writes(tmp_path: Path,
                                                  case: str) -> None:
    eargs, rcpts, data, kw = CASES[case]
    econf = make_scratch(tmp_path / "exim")
    r = exim(econf, ["-odq"] + eargs + rcpts, data)
    assert r.returncode == 0, r.stderr
    ebase = tmp_path / "exim"
    want = _spool_texts(ebase, only_id(ebase))
    golden_check(f"local-{case}.H", want[0])

    pbase = tmp_path / "eximpy"
    make_scratch(pbase)
    cfg = config_for(pbase)
    sender = eargs[eargs.index("-f") + 1] if "-f" in eargs else None
    res = receive_local(cfg, sender, rcpts, io.BytesIO(data),
                        LocalOptions(log=LogWriter.from_config(cfg), **kw))
    got = _spool_texts(pbase, res.id)
    assert got == want


def test_cli_submission_read_by_real_exim(tmp_path: Path) -> None:
    conf = make_scratch(tmp_path)
    r = eximpy(conf, ["-odq", "-f", "alice@example.test", "bob@example.test",
                      "carol@remote.test"],
               b"From: Alice <alice@example.test>\nSubject: hi\n\nbody\n")
    assert r.returncode == 0, r.stderr
    mid = only_id(tmp_path)
    e = exim(conf, ["-bp"])
    p = eximpy(conf, ["-bp"])
    assert e.returncode == 0 and e.stdout == p.stdout
    assert f"{mid} <alice@example.test>".encode() in e.stdout
    e = exim(conf, ["-Mvh", mid])
    assert e.stdout == (tmp_path / "spool" / "input" / f"{mid}-H").read_bytes()
    assert e.stdout == eximpy(conf, ["-Mvh", mid]).stdout
    for opt in ("-Mvb", "-Mvc", "-Mvl"):
        assert exim(conf, [opt, mid]).stdout == eximpy(conf, [opt, mid]).stdout


def _exim_smtp(conf: Path, extra: list[str] | None = None) -> None:
    script = smtp_script([
        "EHLO client.example.org",
        "AUTH PLAIN AHVzZXIxAHBhc3M=",
        "MAIL FROM:<sender@client.example.org> RET=HDRS ENVID=abc123",
        "RCPT TO:<carol@example.test> NOTIFY=SUCCESS,DELAY "
        "ORCPT=rfc822;carol@example.test",
        "RCPT TO:<dave@example.test>",
        'RCPT TO:<"odd person"@example.test> NOTIFY=NEVER',
        "DATA", "From: sender@client.example.org", "To: carol@example.test",
        "Subject: dsn test", "", "body", "..dotted", ".",
        "MAIL FROM:<s2@client.example.org>", "RCPT TO:<carol@example.test>",
        "BDAT 30 LAST", "Subject: chunk", "", "body chunk", "QUIT"])
    # BDAT 30: "Subject: chunk\r\n\r\nbody chunk\r\n" is exactly 30 bytes
    r = exim(conf, ["-odq", "-bs"] + (extra or []), script)
    assert b"250 OK id=" in r.stdout, r.stdout


def _exim_queue(base: Path) -> Path:
    """A spool filled by real Exim: local, SMTP (AUTH, DSN, ACL vars,
    remote host), frozen, partly delivered, bounce."""
    conf = make_scratch(base)
    for i, (args, data) in enumerate([
            (["-f", "alice@example.test", "bob@example.test",
              "carol@remote.test", "dave@example.test"],
             b"Subject: one\n\nx\n"),
            (["-f", "<>", "bob@example.test"], b"Subject: bounce\n\nx\n"),
            (["bob"], b"Subject: " + b"y" * 3000 + b"\n\n" + b"z\n" * 3000)]):
        assert exim(conf, ["-odq"] + args, data).returncode == 0
    _exim_smtp(conf, ["-oMa", "192.0.2.10.45679", "-oMi", "192.0.2.1.25",
                      "-oMr", "esmtp"])
    _exim_smtp(conf)
    ids = sorted(n[:-2] for n in spool_files(base) if n.endswith("-H"))
    assert exim(conf, ["-Mf", ids[1]]).returncode == 0
    assert exim(conf, ["-Mmd", ids[0], "carol@remote.test",
                       "bob@example.test"]).returncode == 0
    return conf


LIST_MODES = ["-bp", "-bpa", "-bpu", "-bpc"]


def test_eximpy_lists_exims_queue_byte_for_byte(tmp_path: Path) -> None:
    conf = _exim_queue(tmp_path)
    for mode in LIST_MODES:
        e = exim(conf, [mode])
        p = eximpy(conf, [mode])
        assert (p.returncode, p.stdout) == (e.returncode, e.stdout), mode
    # -bpr is in random order in Exim: compare as sets of entries
    e = exim(conf, ["-bpr"]).stdout.split(b"\n\n")
    p = eximpy(conf, ["-bpr"]).stdout.split(b"\n\n")
    assert sorted(e) == sorted(p)
    golden_check("exim-queue.bp", normalize(exim(conf, ["-bp"]).stdout
                                            .decode()))


def test_eximpy_reads_every_exim_header_field(tmp_path: Path) -> None:
    from eximpy.spool import header_file
    _exim_queue(tmp_path)
    for name, data in spool_files(tmp_path).items():
        if not name.endswith("-H"):
            continue
        msg = header_file.parse(data, name)
        assert header_file.format(msg) == data, name
        assert not msg.unknown_lines, msg.unknown_lines
    smtp = [header_file.parse(d, n) for n, d in spool_files(tmp_path).items()
            if n.endswith("-H") and b"--host_address" in d][0]
    assert (smtp.host_address, smtp.host_port) == ("192.0.2.10", 45679)
    assert (smtp.interface_address, smtp.interface_port) == ("192.0.2.1", 25)
    assert smtp.host_auth == "plain" and smtp.auth_id == "user1"
    assert smtp.acl_vars == {"c_helo": "client.example.org",
                             "m_checked": "rcpt ok for odd person",
                             "m_nl": "first\nsecond line\n"}
    assert smtp.dsn_envid == "abc123" and smtp.dsn_ret == 2
    r0 = smtp.recipients[0]
    assert (r0.orcpt, r0.dsn_flags) == ("rfc822;carol@example.test", 0x14)
    assert smtp.recipients[2].address == '"odd person"@example.test'
    assert {"helo_name", "host_address", "interface_address", "auth_id",
            "acl_c_helo", "acl_m_checked"} <= smtp.tainted


def _copy_tree(a: Path, b: Path) -> None:
    """Copy a scratch directory keeping owners (Exim checks them)."""
    shutil.copytree(a, b, symlinks=True)
    for src in [a, *a.rglob("*")]:
        st = os.lstat(src)
        os.lchown(b / src.relative_to(a), st.st_uid, st.st_gid)


@pytest.mark.parametrize("action", [
    ["-Mf", 1], ["-Mt", 1], ["-Mf", 0], ["-Mmad", 0], ["-Mrm", 2],
    ["-Mar", 0, "new1@example.test", "new2@example.test"],
    ["-Mes", 0, "newsender@example.test"], ["-Mes", 0, "bad"],
    ["-Mmd", 2, "bob@example.test"], ["-Mmd", 2, "nobody@x"],
    ["-Mar", 0, "bob"], ["-Mvh", 0], ["-Mvb", 2], ["-Mvc", 0], ["-Mvl", 0],
    ["-Mrm", "1xWDFA-000299-2J"], ["-Mvh", "1xWDFA-000299-2J"],
    ["-Mvl", "1xWDFA-000299-2J"], ["-Mf", "1xWDFA-000299-2J"],
    ["-Mmad", "1xWDFA-000299-2J"],
    ["-Mes", 0, "<>"], ["-Mar", 0, "good@example.test", "bad"],
    ["-Mmd", 0, "dave@example.test", "nobody@x"], ["-Mt", 0],
    ["-Mar", 0, "UPPER@Example.TEST"], ["-Mf", 1, "ID0"], ["-Mrm", 2, "1xWDFA-000299-2J", "ID0"],
    ["locked", "-Mf", 0], ["locked", "-Mrm", 0], ["locked", "-Mmad", 0],
    ["locked", "-Mar", 0, "x@example.test"], ["locked", "-Mvc", 0],
    ["locked", "-Mvh", 0],
])
def test_actions_do_what_exim_does(tmp_path: Path, action: list) -> None:
    """Exim acts on one copy of a queue, eximpy on another; outputs, spool
    files and logs must agree.  "locked": the message's -D is locked
    (fcntl, as Exim and eximpy lock it) by this test while they run."""
    import fcntl
    locked = action[0] == "locked"
    if locked:
        action = action[1:]
    a = tmp_path / "a"
    conf_a = _exim_queue(a)
    b = tmp_path / "b"
    _copy_tree(a, b)
    conf_b = b / "conf"
    conf_b.write_text(conf_a.read_text().replace(str(a), str(b)))
    ids = sorted(n[:-2] for n in spool_files(a) if n.endswith("-H"))
    opt, which, *rest = action
    mid = ids[which] if isinstance(which, int) else which
    rest = [ids[int(r[2:])] if r.startswith("ID") else r for r in rest]
    held = []
    if locked:
        for base in (a, b):
            fd = os.open(base / "spool" / "input" / f"{mid}-D", os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 19, 0)
            held.append(fd)
    e = exim(conf_a, [opt, mid] + rest)
    p = eximpy(conf_b, [opt, mid] + rest)
    for fd in held:
        os.close(fd)
    assert (p.returncode, p.stdout, p.stderr) == \
        (e.returncode, e.stdout, e.stderr)
    norm = {str(a): "DIR", str(b): "DIR"}
    fa = {k: normalize(v.decode("utf-8", "surrogateescape"), norm)
          for k, v in spool_files(a).items()}
    fb = {k: normalize(v.decode("utf-8", "surrogateescape"), norm)
          for k, v in spool_files(b).items()}
    assert fb == fa
    la = normalize((a / "log" / "mainlog").read_text())
    lb = normalize((b / "log" / "mainlog").read_text())
    assert lb == la
    assert exim(conf_a, ["-bp"]).stdout == exim(conf_b, ["-bp"]).stdout


def _corrupt_queue(base: Path) -> Path:
    conf = make_scratch(base)
    for _ in range(8):
        assert exim(conf, ["-odq", "-f", "a@example.test", "bob"],
                    b"Subject: x\n\nb\n").returncode == 0
    inp = base / "spool" / "input"
    ids = sorted(n[:-2] for n in os.listdir(inp) if n.endswith("-H"))
    (inp / f"{ids[0]}-D").unlink()                         # -H without -D
    h = inp / f"{ids[1]}-H"
    h.write_bytes(h.read_bytes()[:60])                     # truncated
    h = inp / f"{ids[2]}-H"
    h.write_bytes(h.read_bytes().replace(b"\n1\n", b"\n9\n"))  # bad count
    (inp / f"{ids[3]}-H").write_bytes(os.urandom(300))     # binary junk
    h = inp / f"{ids[4]}-H"
    h.write_bytes(h.read_bytes().replace(b"011  Subject", b"099  Subject"))
    h = inp / f"{ids[5]}-H"                                # NUL in a header
    h.write_bytes(h.read_bytes().replace(b"Subject: x", b"Subject:\0x"))
    h = inp / f"{ids[6]}-H"                                # bad sender line
    h.write_bytes(h.read_bytes().replace(b"<a@example.test>\n",
                                         b"a@example.test\n", 1))
    os.chown(inp, *(lambda s: (s.st_uid, s.st_gid))(os.stat(base / "spool")))
    return conf


def test_corrupt_spool_files_reported_like_exim(tmp_path: Path) -> None:
    conf = _corrupt_queue(tmp_path)
    for mode in LIST_MODES:
        e = exim(conf, [mode])
        p = eximpy(conf, [mode])
        assert (p.returncode, p.stdout) == (e.returncode, e.stdout), mode
    golden_check("corrupt-queue.bp",
                 normalize(exim(conf, ["-bp"]).stdout.decode()))
    ids = sorted(n[:-2] for n in spool_files(tmp_path) if n.endswith("-H"))
    copy = tmp_path.parent / (tmp_path.name + "-copy")
    _copy_tree(tmp_path, copy)
    conf_b = copy / "conf"
    conf_b.write_text(conf.read_text().replace(str(tmp_path), str(copy)))
    for mid in ids:
        for opt in ("-Mvc", "-Mf"):
            e = exim(conf, [opt, mid])
            p = eximpy(conf_b, [opt, mid])
            assert (p.returncode, p.stdout) == (e.returncode, e.stdout), \
                (opt, mid)
    shutil.rmtree(copy)


def test_hostile_bytes_never_crash_the_parser() -> None:
    from hypothesis import given, settings, strategies as st
    from eximpy.spool import header_file
    base = (b"1xWDBB-0001JM-08-H\nroot 0 0\n<a@b>\n1795613817 0\n"
            b"-received_time_usec .041808\n-aclc x 5\nhello\nXX\n1\n"
            b"b@c  0,2 e@f 3,-1#3\n\n011  Subject: x\n")

    @settings(max_examples=400, deadline=None)
    @given(st.integers(0, len(base)), st.binary(max_size=20),
           st.integers(0, len(base)))
    def check(cut: int, junk: bytes, where: int) -> None:
        data = base[:where] + junk + base[where:cut] if where < cut \
            else base[:cut] + junk
        try:
            header_file.parse(data, "1xWDBB-0001JM-08-H")
        except header_file.SpoolFormatError:
            pass
    check()


def test_real_exipick_and_exiqsumm_read_eximpy_spool(tmp_path: Path) -> None:
    conf = make_scratch(tmp_path)
    for args in (["-f", "alice@example.test", "bob@example.test",
                  "carol@remote.test"], ["-f", "<>", "dave@example.test"]):
        r = eximpy(conf, ["-odq"] + args, b"Subject: hi\n\nbody\n")
        assert r.returncode == 0, r.stderr
    spool = str(tmp_path / "spool")
    pick = subprocess.run(["exipick", "--spool", spool, "-bp"],
                          capture_output=True)
    assert pick.returncode == 0, pick.stderr
    ours = eximpy(conf, ["-bp"]).stdout
    # exipick lists a message's recipients in Perl hash order
    assert sorted(pick.stdout.split(b"\n")) == sorted(ours.split(b"\n"))
    assert pick.stdout.split(b"\n")[0] == ours.split(b"\n")[0]
    summ = subprocess.run(["exiqsumm"], input=exim(conf, ["-bp"]).stdout,
                          capture_output=True)
    ours_summ = subprocess.run(["exiqsumm"], input=ours, capture_output=True)
    assert summ.stdout == ours_summ.stdout
    assert b"example.test" in summ.stdout
    pick = subprocess.run(["exipick", "--spool", spool, "-i", "-f",
                           "alice"], capture_output=True)
    assert len(pick.stdout.split()) == 1


def test_split_spool_directory(tmp_path: Path) -> None:
    conf = make_scratch(tmp_path, "split_spool_directory = true")
    r = eximpy(conf, ["-odq", "-f", "a@example.test", "bob"],
               b"Subject: s\n\nb\n")
    assert r.returncode == 0, r.stderr
    mid = only_id(tmp_path)
    assert (tmp_path / "spool" / "input" / mid[5] / f"{mid}-H").exists()
    assert (tmp_path / "spool" / "msglog" / mid[5] / mid).exists()
    assert exim(conf, ["-odq", "-f", "a@example.test", "bob"],
                b"Subject: e\n\nb\n").returncode == 0
    for mode in LIST_MODES:
        assert exim(conf, [mode]).stdout == eximpy(conf, [mode]).stdout
    assert exim(conf, ["-Mvh", mid]).stdout == eximpy(conf, ["-Mvh", mid]).stdout


def test_tls_and_auth_message_from_real_exim(tmp_path: Path) -> None:
    """Exim receives over STARTTLS (client certificate, SNI) with AUTH; eximpy
    reads every field, rewrites the file byte for byte, lists it as Exim
    does, and rebuilds the same <= log line from the spool data."""
    from eximpy.log import format as lf
    from eximpy.spool import header_file
    from support import EXIM
    from tls_client import make_cert, tls_session
    cert, key = make_cert(tmp_path)
    conf = make_scratch(tmp_path, f"tls_certificate = {cert}\n"
                        f"tls_privatekey = {key}\ntls_advertise_hosts = *\n"
                        f"tls_verify_certificates = {cert}\n"
                        "tls_try_verify_hosts = *")
    replies = tls_session(EXIM, conf, cert, key, [
        "EHLO client.example.org", "AUTH PLAIN AHVzZXIxAHBhc3M=",
        "MAIL FROM:<tls@client.example.org>", "RCPT TO:<carol@example.test>",
        "DATA", "DATA:Subject: tls\r\n\r\nsecret\r\n.\r\n", "QUIT"],
        ["-oMa", "192.0.2.10.45679", "-oMi", "192.0.2.1.25"])
    assert any(r.startswith(b"250 OK id=") for r in replies), replies
    mid = only_id(tmp_path)
    raw = (tmp_path / "spool" / "input" / f"{mid}-H").read_bytes()
    msg = header_file.parse(raw, f"{mid}-H")
    assert header_file.format(msg) == raw
    assert not msg.unknown_lines
    assert msg.tls_cipher and msg.tls_cipher.startswith("TLS1.")
    assert msg.tls_certificate_verified and msg.tls_ver
    assert msg.tls_peerdn == "CN=mx.example.test,O=Example"
    assert msg.tls_sni == "mx.example.test"
    assert msg.tls_peercert and msg.tls_peercert.startswith("-----BEGIN")
    assert msg.tls_ourcert and "tls_peercert" in msg.tainted
    assert msg.received_protocol == "esmtpsa" and msg.auth_id == "user1"
    for mode in LIST_MODES:
        assert eximpy(conf, [mode]).stdout == exim(conf, [mode]).stdout
    assert eximpy(conf, ["-Mvh", mid]).stdout == raw
    # the <= line from what the spool says
    want = [ln for ln in (tmp_path / "log" / "mainlog").read_text()
            .splitlines() if " <= " in ln][0].split(f" {mid} ", 1)[1]
    msg.body_size = len((tmp_path / "spool" / "input" / f"{mid}-D")
                        .read_bytes()) - 19
    got = lf.received(lf.LogSelector(), msg.sender, helo=msg.helo_name,
                      host_address=msg.host_address, ident=msg.ident,
                      protocol=msg.received_protocol,
                      tls_cipher=msg.tls_cipher,
                      tls_cert_verified="yes" if
                      msg.tls_certificate_verified else "no",
                      authenticator=msg.host_auth, auth_id=msg.auth_id,
                      size=msg.message_size)
    assert got == want


def test_give_up_sends_exims_bounce(tmp_path: Path) -> None:
    """-Mg: Exim logs "cancelled by", spools a bounce from the exim user
    (R=<parent>) and completes the message; the bounce delivered into a
    mailbox by Exim equals the bounce eximpy spools (ids, times
    normalized)."""
    def setup(base: Path) -> tuple[Path, str]:
        conf = make_scratch(base)
        t = conf.read_text().replace("file = /dev/null",
                                     f"file = {base}/mail")
        t = t.replace("begin routers\n", "begin routers\nr0:\n  driver = "
                      "accept\n  local_parts = alice\n  transport = "
                      "local_file\n").replace(
            "local_user:\n  driver = accept\n",
            "local_user:\n  driver = accept\n  local_parts = nomatch\n")
        conf.write_text(t)
        (base / "mail").touch()
        os.chown(base / "mail", *(lambda s: (s.st_uid, s.st_gid))(
            os.stat(base / "spool")))
        assert exim(conf, ["-odq", "-f", "alice@example.test",
                           "bob@example.test", "carol@remote.test"],
                    b"From: alice@example.test\nSubject: cancel me\n\n"
                    b"body\n").returncode == 0
        return conf, only_id(base)
    ea, pa = tmp_path / "e", tmp_path / "p"
    ce, mide = setup(ea)
    cp, midp = setup(pa)
    assert exim(ce, ["-Mg", mide]).returncode == 0
    r = eximpy(cp, ["-Mg", midp])
    assert (r.returncode, r.stdout) == (0, b"")

    def parent_lines(base: Path, mid: str) -> list[str]:
        return [normalize(ln, {mid: "PARENT"}) for ln in
                (base / "log" / "mainlog").read_text().splitlines()
                if mid in ln and "=>" not in ln]
    assert parent_lines(pa, midp) == parent_lines(ea, mide)
    import re
    mbox = (ea / "mail").read_text()
    assert mbox.startswith("From MAILER-DAEMON ")
    want = mbox.split("\n", 1)[1]
    bid = only_id(pa)
    h = header_file_read(pa, bid)
    body = (pa / "spool" / "input" / f"{bid}-D").read_text()
    got = "".join(x.text for x in h.headers if x.type != "*") + "\n" + \
        body.split("\n", 1)[1] + "\n"

    def norm(t: str) -> str:
        t = re.sub(r"\d{10}-eximdsn", "B-eximdsn", t)
        return normalize(t)
    assert norm(got) == norm(want)


def header_file_read(base: Path, mid: str):  # type: ignore[no-untyped-def]
    from eximpy.spool import header_file
    return header_file.read(str(base / "spool" / "input" / f"{mid}-H"))


def test_message_size_limit_like_exim(tmp_path: Path) -> None:
    data = b"Subject: big\n\n" + b"y" * 300 + b"\n"
    out = {}
    for name, prog in (("e", exim), ("p", eximpy)):
        conf = make_scratch(tmp_path / name, "message_size_limit = 200")
        r = prog(conf, ["-odq", "-oep", "-f", "s@x", "bob"], data)
        log = normalize((tmp_path / name / "log" / "mainlog").read_text())
        rej = normalize((tmp_path / name / "log" / "rejectlog").read_text())
        out[name] = (r.returncode, r.stderr, log, rej,
                     spool_files(tmp_path / name))
    assert out["p"] == out["e"]


@pytest.mark.parametrize("text", [
    "Received: by $primary_hostname (custom) for ${lc:$received_for} "
    "from <$sender_address> ident $sender_ident",
    "X-Stamp: ${if def:sender_ident{local $sender_ident}{remote}} "
    "id=$message_exim_id"])
def test_received_header_text_is_expanded(tmp_path: Path, text: str) -> None:
    data = b"Subject: custom\n\nbody\n"
    got = {}
    for name, prog in (("e", exim), ("p", eximpy)):
        conf = make_scratch(tmp_path / name, f"received_header_text = {text}")
        r = prog(conf, ["-odq", "-f", "alice@example.test", "BOB@example.test"],
                 data)
        assert r.returncode == 0, r.stderr
        mid = only_id(tmp_path / name)
        got[name] = _spool_texts(tmp_path / name, mid)
    assert got["p"] == got["e"]


@pytest.mark.parametrize("text", ["${if eq{1}{2}{x}fail}", "${foo:bar}"])
def test_received_header_text_failure_panics_like_exim(tmp_path: Path,
                                                        text: str) -> None:
    got = {}
    for name, prog in (("e", exim), ("p", eximpy)):
        conf = make_scratch(tmp_path / name, f"received_header_text = {text}")
        r = prog(conf, ["-odq", "-f", "a@example.test", "bob"],
                 b"Subject: x\n\nb\n")
        logs = tuple(normalize((tmp_path / name / "log" / f).read_text())
                     for f in ("mainlog", "paniclog"))
        got[name] = (r.returncode, normalize(r.stderr.decode()), logs,
                     spool_files(tmp_path / name))
    assert got["p"] == got["e"]


def test_nonrecipient_tree_shape_matches_exim(tmp_path: Path) -> None:
    """Marking many addresses delivered in a scrambled order exercises the
    AVL rotations; the -H tree lines must be the ones Exim writes."""
    rcpts = [f"{c}@example.test" for c in "abcdefghij"]
    order = ["e@example.test", "a@example.test", "i@example.test",
             "d@example.test", "b@example.test", "j@example.test",
             "c@example.test", "h@example.test"]
    files = {}
    for name, prog in (("e", exim), ("p", eximpy)):
        conf = make_scratch(tmp_path / name)
        assert exim(conf, ["-odq", "-f", "s@example.test"] + rcpts,
                    b"Subject: t\n\nb\n").returncode == 0
        mid = only_id(tmp_path / name)
        for a in order:
            assert prog(conf, ["-Mmd", mid, a]).returncode == 0
        h = (tmp_path / name / "spool" / "input" / f"{mid}-H").read_text()
        files[name] = [ln for ln in h.splitlines() if ln[:3] in
                       ("YY ", "YN ", "NY ", "NN ")]
    assert files["p"] == files["e"] and len(files["e"]) == len(order)


def test_listing_given_ids(tmp_path: Path) -> None:
    conf = make_scratch(tmp_path)
    for _ in range(3):
        assert exim(conf, ["-odq", "-f", "a@example.test", "bob"],
                    b"Subject: x\n\nb\n").returncode == 0
    ids = sorted(n[:-2] for n in spool_files(tmp_path) if n.endswith("-H"))
    for args in (["-bp", ids[2], ids[0]], ["-bpc", ids[1]],
                 ["-bpu", "1xWDFA-000299-2J", ids[1]], ["-bpa", ids[1]]):
        e, p = exim(conf, args), eximpy(conf, args)
        assert (p.returncode, p.stdout) == (e.returncode, e.stdout), args


def test_local_submission_not_refused_for_received_count(tmp_path: Path
                                                         ) -> None:
    """received_headers_max is a delivery-time check: Exim accepts a local
    submission with more Received: lines than that (as it accepts one over
    SMTP)."""
    data = b"".join(b"Received: from hop%d\n" % i for i in range(5)) + \
        b"Subject: loop\n\nbody\n"
    out = {}
    for name, prog in (("e", exim), ("p", eximpy)):
        conf = make_scratch(tmp_path / name, "received_headers_max = 2")
        r = prog(conf, ["-odq", "-oep", "-f", "s@x", "bob"], data)
        log = normalize((tmp_path / name / "log" / "mainlog").read_text())
        files = spool_files(tmp_path / name)
        out[name] = (r.returncode, r.stderr, log,
                     normalize("\n".join(k + "\n" + v.decode()
                                         for k, v in files.items())))
    assert out["e"][0] == 0
    assert out["p"] == out["e"]
