"""Privilege changes: the one module that calls setuid and friends.

SUMMARY
    drop_permanently(uid, gid, keep=())  become uid/gid for good, keeping
                                         only the named capabilities
    run_as(uid, gid)                     (in a child) become a mailbox owner
    set_no_new_privs()                   PR_SET_NO_NEW_PRIVS
    set_parent_death_signal(sig)         PR_SET_PDEATHSIG
    status()                             this process's ids and capabilities

DESCRIPTION
    Every change verifies itself with getresuid()/getresgid() and, where
    python-prctl is available, the capability sets; a change that did not
    take effect is fatal (PrivilegeError; the caller logs to the paniclog
    and exits), never something to continue from.

    A process started as an ordinary user cannot change users: then
    drop_permanently() to that same user only clears capabilities and sets
    no_new_privs, which is how the whole daemon runs for a plain user.

SECURITY
    Capabilities that are kept (the delivery role keeps CAP_SETUID and
    CAP_SETGID to run local transports as the mailbox owner) survive the
    uid change through SECBIT_KEEP_CAPS, are then reduced to exactly the
    kept set in the permitted, effective and bounding sets, and the
    securebits are locked.

SEE ALSO
    DESIGN.md section 2; STYLE.md rule 9; Exim's exim_setugid().
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import prctl


class PrivilegeError(Exception):
    """A privilege change did not take effect; the process must stop."""


@dataclass(frozen=True)
class ProcessPrivilege:
    """What /proc/self/status says about this process's privilege."""

    uid: tuple[int, int, int]
    gid: tuple[int, int, int]
    groups: tuple[int, ...]
    cap_effective: int
    cap_permitted: int
    cap_bounding: int
    no_new_privs: bool


def _cap_mask(names: tuple[str, ...]) -> int:
    mask = 0
    for n in names:
        mask |= 1 << getattr(prctl, "CAP_" + n.upper())
    return mask


def status(pid: int | str = "self") -> ProcessPrivilege:
    """Read a process's ids and capability sets from /proc/PID/status."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    uid = tuple(int(x) for x in fields["Uid"].split()[:3])
    gid = tuple(int(x) for x in fields["Gid"].split()[:3])
    return ProcessPrivilege(
        uid=uid, gid=gid,  # type: ignore[arg-type]
        groups=tuple(int(x) for x in fields.get("Groups", "").split()),
        cap_effective=int(fields["CapEff"], 16),
        cap_permitted=int(fields["CapPrm"], 16),
        cap_bounding=int(fields["CapBnd"], 16),
        no_new_privs=fields.get("NoNewPrivs", "0") == "1")


def _caps_now() -> tuple[int, int]:
    """This process's effective and permitted capability sets (masks)."""
    eff = prm = 0
    for name in prctl.ALL_CAP_NAMES:
        bit = 1 << getattr(prctl, "CAP_" + name.upper())
        if getattr(prctl.cap_effective, name):
            eff |= bit
        if getattr(prctl.cap_permitted, name):
            prm |= bit
    return eff, prm


def set_no_new_privs() -> None:
    prctl.set_no_new_privs(1)
    if prctl.get_no_new_privs() != 1:
        raise PrivilegeError("PR_SET_NO_NEW_PRIVS did not take effect")


def set_parent_death_signal(sig: int) -> None:
    prctl.set_pdeathsig(sig)


def _drop_bounding(keep: tuple[str, ...]) -> None:
    """Drop every capability but ``keep`` from the bounding set (needs
    CAP_SETPCAP, so this is done while still root)."""
    keep_mask = _cap_mask(keep)
    for cap in range(prctl.CAP_LAST_CAP + 1):
        if not keep_mask & (1 << cap):
            try:
                prctl.capbset_drop(cap)
            except (OSError, ValueError):
                pass


def _limit_caps(keep: tuple[str, ...]) -> None:
    """Reduce the permitted, effective and inheritable sets to ``keep``
    (one capset() each: this runs once per local delivery)."""
    caps = [getattr(prctl, "CAP_" + n.upper()) for n in keep]
    prctl.cap_effective.limit(*caps)
    prctl.cap_permitted.limit(*caps)
    prctl.cap_inheritable.limit()


def drop_permanently(uid: int, gid: int, keep: tuple[str, ...] = (),
                     groups: tuple[int, ...] | None = None) -> None:
    """Become ``uid``/``gid`` for good, keeping only capabilities ``keep``.

    Raises PrivilegeError when the result is not exactly what was asked.
    """
    if os.getuid() == 0 or os.geteuid() == 0:
        _drop_bounding(keep)
        if keep:
            prctl.securebits.keep_caps = True
        os.setgroups(list(groups) if groups is not None else [gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if keep:
            # setuid() emptied the effective set; the permitted set was kept.
            # CAP_SETPCAP is raised just long enough to lock the securebits
            # so that the kept capabilities can never make root again.
            for name in ("setpcap",) + tuple(keep):
                setattr(prctl.cap_effective, name, True)
            prctl.securebits.keep_caps = False
            prctl.securebits.no_setuid_fixup = True
            prctl.securebits.noroot = True
            prctl.securebits.keep_caps_locked = True
            prctl.securebits.no_setuid_fixup_locked = True
            prctl.securebits.noroot_locked = True
    elif (os.getuid(), os.getgid()) != (uid, gid):
        raise PrivilegeError(
            f"cannot become uid={uid} gid={gid}: not started as root")
    _limit_caps(keep)
    set_no_new_privs()
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivilegeError(
            f"privilege drop to {uid}:{gid} failed: resuid={os.getresuid()} "
            f"resgid={os.getresgid()}")
    # Verified through the kernel's capget() rather than /proc, which a
    # chroot jail does not have.
    eff, prm = _caps_now()
    if eff & ~_cap_mask(keep) or prm & ~_cap_mask(keep):
        raise PrivilegeError(
            f"capabilities left after drop: eff={eff:#x} prm={prm:#x}")


def run_as(uid: int, gid: int, groups: tuple[int, ...] | None = None) -> None:
    """In a delivery child: become the mailbox owner, keeping nothing.

    Needs CAP_SETUID/CAP_SETGID (the delivery role keeps them) or that the
    process already is ``uid``.  Root is refused whatever never_users says:
    with SECBIT_NOROOT a uid of 0 brings no capabilities, but it would still
    own root's files.
    """
    if uid == 0 or gid == 0:
        raise PrivilegeError("refusing to run a delivery as root")
    if (os.getuid(), os.getgid()) != (uid, gid):
        os.setgroups(list(groups) if groups is not None else [gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    _limit_caps(())
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivilegeError(f"run_as({uid}, {gid}) failed: "
                             f"resuid={os.getresuid()}")
