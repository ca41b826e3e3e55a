"""chroot deployment: the roles run inside a jail that holds only the spool,
the logs and the mailboxes (and the passwd/group lines of the users they
need), and mail is received and delivered inside it."""
from __future__ import annotations

import mailbox
import os
import pwd
import grp
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from oracle import ROOT
from proc_support import free_port, roles_of, wait_for

CONF = """\
chroot = {jail}
primary_hostname = jail.example
qualify_domain = jail.example
spool_directory = /spool
log_file_path = /log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
acl_smtp_rcpt = accept
begin routers
local:
  driver = accept
  local_parts = dsearch;/mail
  transport = maildir
begin transports
maildir:
  driver = appendfile
  directory = /mail/${{local_part_data}}/
  user = eximpy
  maildir_format
"""


def test_daemon_in_a_chroot_jail() -> None:
    assert os.geteuid() == 0
    exim = pwd.getpwnam("eximpy")
    jail = Path(tempfile.mkdtemp(prefix="eximpy-jail-"))
    jail.chmod(0o755)
    (jail / "etc").mkdir()
    (jail / "etc" / "passwd").write_text(
        f"eximpy:x:{exim.pw_uid}:{exim.pw_gid}::/nonexistent:/bin/false\n")
    (jail / "etc" / "group").write_text(
        f"{grp.getgrgid(exim.pw_gid).gr_name}:x:{exim.pw_gid}:\n")
    (jail / "mail" / "alice").mkdir(parents=True)
    os.chown(jail / "mail" / "alice", exim.pw_uid, exim.pw_gid)
    port = free_port()
    conf = jail / "eximpy.conf"          # the configuration may live anywhere
    conf.write_text(CONF.format(jail=jail, port=port))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "eximpy", "-C", str(conf),
                             "-bdf", "-q1s"], env=env)
    try:
        roles = wait_for(lambda: len(roles_of(proc.pid)) == 3 and
                         roles_of(proc.pid), what="three roles")
        for name, pid in roles.items():
            assert os.readlink(f"/proc/{pid}/root") == str(jail), name
        assert os.readlink(f"/proc/{proc.pid}/root") == "/"
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1),
                 what="the listener")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("sender@jail.example", ["alice@jail.example"],
                       b"Subject: jailed\r\n\r\nfrom inside\r\n")
        maildir = jail / "mail" / "alice"
        wait_for(lambda: (maildir / "new").exists() and
                 any((maildir / "new").iterdir()),
                 what="delivery inside the jail")
        [msg] = list(mailbox.Maildir(str(maildir), create=False))
        assert msg["Subject"] == "jailed"
        main = (jail / "log" / "mainlog").read_text()
        assert "=> alice <alice@jail.example> R=local T=maildir" in main
        assert (jail / "spool" / "exim-daemon.pid").read_text().strip() == \
            str(proc.pid)
        # Nothing was written outside the jail under the configured names.
        assert not Path("/spool").exists() and not Path("/mail").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        shutil.rmtree(jail, ignore_errors=True)
