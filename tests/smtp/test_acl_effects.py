"""What the SMTP session does with ACL results that the differential
dialogues cannot show: `delay` flushes the pending replies first (Exim
fflush()es smtp_out before sleeping), unless control = no_delay_flush;
queue/freeze controls keep -bs from delivering."""
from __future__ import annotations

from pathlib import Path

from smtp.conftest import write_conf


def _session(smtpdir: Path, extra: str):
    from eximpy.acl.engine import make_runner
    from eximpy.config import load_config
    from eximpy.smtp.server import Session
    cfg = load_config(str(write_conf(smtpdir, extra)))
    runner = make_runner(cfg)
    written: list[bytes] = []
    at_sleep: list[bytes] = []
    runner.sleep = lambda s: at_sleep.append(b"".join(written))
    sess = Session(cfg, runner)
    sess.writer = written.append
    return sess, written, at_sleep


def test_delay_flushes_pending_replies(smtpdir: Path) -> None:
    sess, written, at_sleep = _session(
        smtpdir, "acl_smtp_rcpt = accept delay = 1s\n")
    written.append(sess.start())
    out = sess.feed(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"
                    b"RCPT TO:<c@d.example>\r\n")
    assert len(at_sleep) == 1
    # The MAIL reply was on the wire before the delay, the RCPT one after.
    assert at_sleep[0].endswith(b"250 OK\r\n")
    assert out == b"250 Accepted\r\n"


def test_no_delay_flush(smtpdir: Path) -> None:
    sess, written, at_sleep = _session(
        smtpdir, "acl_smtp_rcpt = r\nbegin acl\nr:\n"
        "  accept control = no_delay_flush\n         delay = 1s\n")
    written.append(sess.start())
    out = sess.feed(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"
                    b"RCPT TO:<c@d.example>\r\n")
    assert len(at_sleep) == 1
    assert b"250 OK\r\n" not in at_sleep[0]
    assert out.endswith(b"250 OK\r\n250 Accepted\r\n")


def test_bs_queue_control_is_not_delivered(smtpdir: Path) -> None:
    """-bs -odi with control = queue (or freeze): spooled, not delivered
    (Exim: queue_only_policy / deliver_freeze)."""
    import io
    import os
    from eximpy.cli.options import parse_args
    from eximpy.cli.smtp_modes import run_bs
    from eximpy.config import load_config
    d = smtpdir
    conf = write_conf(d, "acl_smtp_rcpt = accept control = queue\n")
    text = conf.read_text().replace("queue_only\n", "")
    text = text.replace("begin routers\nbegin transports\n", f"""\
begin routers
local:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = {d}/mbox
  user = nobody
""")
    conf.write_text(text)
    inv = parse_args(["exim", "-C", str(conf), "-bs", "-odi"])
    out = io.BytesIO()
    run_bs(load_config(str(conf)), inv, io.BytesIO(
        b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
        b"DATA\r\nSubject: s\r\n\r\nhi\r\n.\r\nQUIT\r\n"), out)
    assert b"250 OK id=" in out.getvalue()
    assert not (d / "mbox").exists()
    assert len([n for n in os.listdir(d / "spool" / "input")
                if n.endswith("-H")]) == 1
    log = (d / "log" / "mainlog").read_text()
    assert "no immediate delivery: queued by ACL" in log
    # No delivery was even attempted.
    assert not any(f" {flag} " in log for flag in ("=>", "==", "**"))


def _socket_dialogue(smtpdir: Path, extra: str, data: bytes) -> bytes:
    """One connection served by serve_socket (as the daemon does, with the
    ACL engine) over a socket pair; ``data`` is sent in one write after
    the banner."""
    import socket
    import threading
    from eximpy.acl.engine import make_runner
    from eximpy.config import load_config
    from eximpy.smtp.connection import serve_socket
    cfg = load_config(str(write_conf(smtpdir, extra)))
    a, b = socket.socketpair()
    t = threading.Thread(target=serve_socket, args=(a, cfg), kwargs=dict(
        peer=("192.0.2.9", 1234), local=("192.0.2.1", 25),
        acl=make_runner(cfg)), daemon=True)
    t.start()
    b.settimeout(10)
    got = b.recv(4096)
    assert got.startswith(b"220 ")
    b.sendall(data)
    t.join(10)                  # the session ends (QUIT or sync error)
    assert not t.is_alive()
    b.settimeout(0.5)
    while True:
        try:
            chunk = b.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    b.close()
    a.close()
    return got


def test_enforce_sync_by_default(smtpdir: Path) -> None:
    got = _socket_dialogue(smtpdir, "acl_smtp_rcpt = accept\n",
                           b"HELO x\r\nNOOP\r\nQUIT\r\n")
    assert b"554 SMTP synchronization error" in got


def test_no_enforce_sync_control(smtpdir: Path) -> None:
    """control = no_enforce_sync in the connect ACL lets an unsynchronised
    client through (Exim's smtp_enforce_sync = FALSE for the session)."""
    got = _socket_dialogue(
        smtpdir, "acl_smtp_connect = accept control = no_enforce_sync\n"
        "acl_smtp_rcpt = accept\n", b"HELO x\r\nNOOP\r\nQUIT\r\n")
    assert b"554" not in got
    assert got.endswith(b"250 OK\r\n221 test.example closing connection\r\n")


def test_no_pipelining_control_on_socket(smtpdir: Path) -> None:
    """control = no_pipelining: EHLO does not offer PIPELINING, so a
    pipelined MAIL after it is a synchronisation error."""
    got = _socket_dialogue(
        smtpdir, "acl_smtp_connect = accept control = no_pipelining\n"
        "acl_smtp_rcpt = accept\n",
        b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n")
    assert b"PIPELINING" not in got
    assert b"554 SMTP synchronization error" in got
