"""Who may do what: Exim's trusted and admin callers.

SUMMARY
    is_trusted(config, uid=None, gid=None)   root, the exim user, a user in
                                             trusted_users, or a member of a
                                             group in trusted_groups
    is_admin(config, uid=None, gid=None)     root, the exim user, or a
                                             member of a group in admin_groups

DESCRIPTION
    Without uid/gid the answer is about this process (real uid, its group
    and supplementary groups).  With them it is about another process, such
    as a local submission's peer (SO_PEERCRED): its supplementary groups are
    then taken from the group database.  Trusted callers may set the sender
    with -f and the -oM* options; admin users may see hidden -bP values and
    act on the queue.

SEE ALSO
    spec 5.2 "Trusted and admin users".
"""
from __future__ import annotations

import grp
import os
import pwd
from typing import Any, Iterable


def _ids(values: Any, lookup) -> set[int]:
    """Option values (parsed ints, or names in a colon list) as ids."""
    if not values:
        return set()
    if isinstance(values, str):
        values = [v for v in values.split(":") if v]
    out = set()
    for v in values:
        if isinstance(v, int) or (isinstance(v, str) and v.isdigit()):
            out.add(int(v))
        else:
            try:
                out.add(lookup(v))
            except KeyError:
                pass
    return out


def _groups_of(uid: int, gid: int, own: bool) -> set[int]:
    if own:
        return {os.getgid(), *os.getgroups()}
    groups = {gid}
    try:
        name = pwd.getpwuid(uid).pw_name
        groups |= {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    except KeyError:
        pass
    return groups


def _base(config: Any, uid: int) -> bool:
    return uid == 0 or uid == config.main.get("exim_user")


def is_trusted(config: Any, uid: int | None = None,
               gid: int | None = None) -> bool:
    own = uid is None
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if _base(config, uid):
        return True
    if uid in _ids(config.main.get("trusted_users"),
                   lambda n: pwd.getpwnam(n).pw_uid):
        return True
    groups: Iterable[int] = _groups_of(uid, gid, own)
    return bool(set(groups) & _ids(config.main.get("trusted_groups"),
                                   lambda n: grp.getgrnam(n).gr_gid))


def is_admin(config: Any, uid: int | None = None,
             gid: int | None = None) -> bool:
    own = uid is None
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    if _base(config, uid):
        return True
    return bool(_groups_of(uid, gid, own) & _ids(
        config.main.get("admin_groups"), lambda n: grp.getgrnam(n).gr_gid))
