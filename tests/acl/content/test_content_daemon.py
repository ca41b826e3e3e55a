"""Content scanning in the real daemon (eximpy -bdf): the receiver role,
with its dropped privileges, writes the scan directory, clamd and spamd
read the message, and the directory is gone afterwards.

Exim is never run as a daemon here; what each step answers is what the
-bh and -bs differential tests (beside this file) compare with Exim.
This test checks that it also holds in eximpy's process model.
"""
from __future__ import annotations

import mailbox
import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from content_scanners import (SPAM_TEXT, VIRUS_NAME, VIRUS_TEXT,  # noqa: E402
                              free_port)
from oracle import ROOT  # noqa: E402

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
av_scanner = clamd:{clamd}
spamd_address = 127.0.0.1 {spamd}
acl_smtp_rcpt = accept
acl_smtp_mime = mime
acl_smtp_data = data
begin acl
mime:
  deny decode = default
       condition = ${{if >{{$mime_content_size}}{{100}}}}
       message = part too big
  accept
data:
  deny malware = *
       message = virus found: $malware_name
  warn spam = nobody:true
       add_header = X-Spam-Score: $spam_score ($spam_bar)
  accept
begin routers
local:
  driver = accept
  local_parts = dsearch;{dir}/mail
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = {dir}/mail/${{local_part_data}}/
  user = eximpy
  maildir_format
  create_directory
"""


def test_daemon_scans(clamd, spamd) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "proc"))
    from proc_support import roles_of, wait_for
    d = Path(tempfile.mkdtemp(prefix="eximpy-content-"))
    d.chmod(0o755)
    port = free_port()
    conf = d / "eximpy.conf"
    conf.write_text(CONF.format(dir=d, port=port, clamd=clamd.socket,
                                spamd=spamd.port))
    ex = pwd.getpwnam("eximpy")
    (d / "mail" / "alice").mkdir(parents=True)
    os.chown(d / "mail" / "alice", ex.pw_uid, ex.pw_gid)
    proc = subprocess.Popen([sys.executable, "-m", "eximpy", "-C", str(conf),
                             "-bdf", "-q1s"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_for(lambda: len(roles_of(proc.pid)) == 3, what="three roles",
                 timeout=30)
        wait_for(lambda: _connects(port), what="the listener")
        # (a HELO name that is not one of ours: no reverse lookup)
        with smtplib.SMTP("127.0.0.1", port, timeout=60,
                          local_hostname="client.example") as c:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("a@test.example", ["alice@test.example"],
                           f"Subject: bad\r\n\r\n{VIRUS_TEXT}\r\n".encode())
            assert e.value.smtp_code == 550
            assert e.value.smtp_error.decode() == \
                f"virus found: {VIRUS_NAME}"
            c.rset()
            c.sendmail("a@test.example", ["alice@test.example"],
                       f"Subject: spammy\r\nContent-Type: text/plain\r\n"
                       f"\r\n{SPAM_TEXT}\r\n".encode())
        maildir = d / "mail" / "alice"
        wait_for(lambda: (maildir / "new").exists() and
                 any((maildir / "new").iterdir()), what="delivery",
                 timeout=30)
        [msg] = list(mailbox.Maildir(str(maildir), create=False))
        assert msg["X-Spam-Score"] == "12.5 (++++++++++++)"
        scan = d / "spool" / "scan"
        assert not scan.exists() or not any(scan.iterdir())
        main = (d / "log" / "mainlog").read_text()
        assert "rejected after DATA: virus found: " + VIRUS_NAME in main
        panic = d / "log" / "paniclog"
        assert not panic.exists() or panic.read_text() == ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        if os.environ.get("KEEP_CONTENT_DAEMON") != "1":
            shutil.rmtree(d, ignore_errors=True)


def _connects(port: int) -> bool:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            return s.recv(100).startswith(b"220")
    except OSError:
        return False
