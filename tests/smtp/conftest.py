"""Fixtures for the SMTP tests: a throw-away Exim configuration in a temp dir."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

BASE_CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
exim_user = root
exim_group = root
never_users =
keep_environment =
queue_only
{extra}
begin routers
begin transports
"""


def write_conf(d: Path, extra: str = "") -> Path:
    """``extra`` goes into the main section; a part of it starting with
    "begin authenticators" goes after the transports."""
    (d / "spool").mkdir(parents=True, exist_ok=True)
    (d / "log").mkdir(parents=True, exist_ok=True)
    conf = d / "conf"
    auths = ""
    if "begin authenticators" in extra:
        extra, auths = extra.split("begin authenticators", 1)
        auths = "begin authenticators" + auths
    text = BASE_CONF.format(dir=d, extra=extra)
    if "begin routers" in extra:
        # the extra text brings its own routers/transports sections
        text = text.replace("begin routers\nbegin transports\n", "")
    conf.write_text(text + auths)
    return conf


@pytest.fixture
def smtpdir(workdir: Path):
    """The test's directory, made unique to this pytest process (another
    run of the same tests at the same time must not share its spool);
    the length of the path stays the same from run to run."""
    d = workdir.parent / f"{workdir.name}-{os.getpid():07d}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)
