"""pipe_as_creator against real Exim 4.96: a message whose originator (the
-H file's uid/gid line) is nobody is piped as that user with
pipe_as_creator, and as the Exim user without it (no user on the router
or transport)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from _pair import DELIVER_MAIN, ROOT, log_lines, prepare
from oracle import EXIM

WORK = ROOT / "tests" / "_work" / "transport_opts_creator"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
keep_environment =
exim_user = Debian-exim
exim_group = Debian-exim
begin routers
r:
  driver = accept
  local_parts = creator : default
  transport = p_$local_part_data
begin transports
p_creator:
  driver = pipe
  pipe_as_creator
  command = /bin/sh -c 'id -u > @ROOT@/mail/creator'
p_default:
  driver = pipe
  command = /bin/sh -c 'id -u > @ROOT@/mail/default'
begin retry
* * F,1h,15m
"""


def test_pipe_as_creator():
    ex, py = WORK / "exim", WORK / "eximpy"
    cex = prepare(ex, CONF, {})
    cpy = prepare(py, CONF, {})
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "creator", "default"],
                       input=b"Subject: c\n\nbody\n", capture_output=True)
    assert p.returncode == 0, p.stderr
    # as if nobody had submitted it: the -H file's originator line
    for h in (ex / "spool" / "input").glob("*-H"):
        lines = h.read_text().split("\n")
        lines[1] = "nobody 65534 65534"
        h.write_text("\n".join(lines))
    ids = sorted(f.name[:-2] for f in (ex / "spool" / "input").glob("*-H"))
    assert ids
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, fs in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in fs:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")
    for mid in ids:
        subprocess.run([EXIM, "-C", str(cex), "-M", mid], capture_output=True)
        subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(cpy), "-M",
                        mid], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert log_lines(py, ids) == log_lines(ex, ids)

    def uids(root: Path):
        return [(root / "mail" / n).read_text() if (root / "mail" / n).exists()
                else None for n in ("creator", "default")]
    assert uids(py) == uids(ex)
