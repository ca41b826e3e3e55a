"""Trusted and admin callers (eximpy.trust), as Exim defines them."""
from __future__ import annotations

import grp
import os
import pwd

from eximpy.config import load_config
from eximpy.trust import is_admin, is_trusted


def _config(workdir, text: str):
    conf = workdir / "t.conf"
    conf.write_text(f"spool_directory = {workdir}/spool\n" + text)
    return load_config(str(conf))


def test_root_and_exim_user_are_trusted_and_admin(workdir) -> None:
    exim = pwd.getpwnam("eximpy")
    c = _config(workdir, "exim_user = eximpy\n")
    assert is_trusted(c, 0, 0) and is_admin(c, 0, 0)
    assert is_trusted(c, exim.pw_uid, exim.pw_gid)
    assert is_admin(c, exim.pw_uid, exim.pw_gid)
    nobody = pwd.getpwnam("nobody")
    assert not is_trusted(c, nobody.pw_uid, nobody.pw_gid)
    assert not is_admin(c, nobody.pw_uid, nobody.pw_gid)


def test_trusted_users_groups_and_admin_groups(workdir) -> None:
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid).gr_name
    c = _config(workdir, "trusted_users = nobody\n")
    assert is_trusted(c, nobody.pw_uid, nobody.pw_gid)
    assert not is_admin(c, nobody.pw_uid, nobody.pw_gid)
    c = _config(workdir, f"trusted_groups = {nogroup}\n"
                f"admin_groups = {nogroup}\n")
    assert is_trusted(c, nobody.pw_uid, nobody.pw_gid)
    assert is_admin(c, nobody.pw_uid, nobody.pw_gid)


def test_this_process() -> None:
    # The tests run as root: trusted and admin without naming ids.
    assert os.getuid() == 0
    from types import SimpleNamespace
    c = SimpleNamespace(main={"exim_user": None}.copy())
    c.main = SimpleNamespace(get=lambda n: None)
    assert is_trusted(c) and is_admin(c)
