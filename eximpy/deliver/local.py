"""Running a local transport as the mailbox owner (Exim's findugid and
deliver_local subprocess).

SUMMARY
    find_ugid(config, addr, tp, expand) -> LocalIds   or raises UgidError
    Privilege.detect(config)            what this delivery process may do
    run_local(priv, ids, addr, tp, fn, log, mid) -> TransportResult
    encode_report(res, addr) / decode_report(data)  the child's report

DESCRIPTION
    The ids of a local delivery are found as Exim 4.96's findugid() finds
    them: the transport's group, else the router's; the transport's user
    (a user given by name or expansion brings its passwd group when no
    group is set), else the router's user (with the router's initgroups),
    else the Exim user and group.  A uid on never_users or on
    fixed_never_users (Exim's Debian build: root) defers the address with
    "User N set for T transport is on the never_users list" (errno -29,
    written to the main and panic logs).  A user without any group gives
    "User set without group for T transport".

    A delivery process is *privileged* when it may change its uid: it is
    root, or it holds CAP_SETUID (the delivery role, DESIGN.md section 2).
    Then every local transport runs in a warm worker process of its user
    (eximpy.deliver.worker: forked once per uid, gid and group list, it
    has called eximpy.privilege.run_as(uid, gid, groups) -- real,
    effective and saved ids, supplementary groups (initgroups()'s list
    when initgroups is set, else just the gid), every capability gone, so
    even a delivery as the Exim user never runs with CAP_SETUID -- and
    serves delivery after delivery; it changes to the working directory
    for each one).  When a request cannot be handed to a worker, and in a
    process that dropped privilege, run_local() forks a one-off child
    instead, which does the same for one delivery: run_as, RLIMIT_CORE 0,
    SIGINT/SIGTERM/SIGUSR1 ignored, chdir, the transport, its report.

    With deliver_drop_privilege a privileged delivery process first becomes
    the Exim user for good (privilege.drop_permanently); a later delivery
    that needs another uid then fails in its child exactly as Exim's does:
    "unable to set gid=G or uid=U (euid=E): local delivery to LP <ADDR>
    transport=T", "failed to read delivery status for ADDR from delivery
    subprocess", "T transport process returned non-zero status 0x0100: exit
    code 1" (main and panic logs), and the address is deferred (-1).

    A process that was never privileged (eximpy run by a plain user) runs
    every transport as itself, in this process, without a fork (DESIGN.md
    section 2, plain-user mode); so does a process that dropped privilege
    when the transport's ids are its own.

THE CHILD'S REPORT
    The child (or worker, eximpy.deliver.worker) writes one JSON object to
    a pipe or socket (close-on-exec, so that a command run by the pipe
    transport never holds it); a one-off child then exits 0:

        {"v": 1, "status": "OK"|"DEFER"|"FAIL", "message": str|null,
         "user_message": str|null, "errno": int, "more_errno": int,
         "special_action": int, "returned_output": str|null,
         "delivered_path": str|null, "reply": null | {"data": base64}}

    The parent reads at most REPORT_LIMIT bytes and accepts only exactly
    these keys and types (anything else: the address is deferred as for a
    child that said nothing).  No pickle: the child runs as the mailbox
    owner and is less trusted than its parent.  "reply" carries a message
    the autoreply transport composed; the child cannot write the spool, so
    the parent (the Exim user) spools it, as Exim's child_open_exim hands
    it to a new Exim process.

SECURITY
    The parent never runs a transport as another user itself and never
    switches only its effective ids.  run_as refuses uid/gid 0 whatever the
    configuration says.

SEE ALSO
    eximpy.deliver.worker;
    spec 3.9 "Delivery in detail" (local deliveries), options never_users,
    deliver_drop_privilege, initgroups; Exim deliver.c findugid(),
    deliver_local(), exim_setugid().
"""
from __future__ import annotations

import base64
import json
import os
import resource
import signal
from dataclasses import dataclass
from typing import Any, Callable

from eximpy import routing as R

FIXED_NEVER_USERS = (0,)
ERRNO_UIDFAIL = -29
ERRNO_GIDFAIL = -30
REPORT_LIMIT = 16 * 1024 * 1024
_STATUSES = (R.OK, R.DEFER, R.FAIL)
# {"dropped": True} once deliver_drop_privilege made this process give up
# its privilege (a cache of the process's state, inherited by its children)
_DROPPED: dict[str, bool] = {}


class UgidError(Exception):
    """findugid() failed: the address is deferred with this message."""

    def __init__(self, message: str, errno: int, panic: bool) -> None:
        super().__init__(message)
        self.message, self.errno, self.panic = message, errno, panic


@dataclass(frozen=True)
class LocalIds:
    uid: int
    gid: int
    initgroups: bool


def _exim_ids(config: Any) -> tuple[int, int]:
    import pwd
    uid = config.main.get("exim_user")
    gid = config.main.get("exim_group")
    if uid is None:
        uid = os.getuid()
    if gid is None:
        try:
            gid = pwd.getpwuid(int(uid)).pw_gid
        except KeyError:
            gid = os.getgid()
    return int(uid), int(gid)


def _uid_of(name: str) -> int | None:
    import pwd
    name = name.strip()
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def never_users(config: Any) -> list[int]:
    """The never_users option as uids (names are looked up)."""
    v = config.main.get("never_users")
    if v is None:
        return []
    if isinstance(v, int):
        return [v]
    if isinstance(v, str):
        from eximpy.expand.lists import iter_list
        items = list(iter_list(v))
    else:
        items = list(v)
    out = []
    for it in items:
        u = it if isinstance(it, int) else _uid_of(str(it))
        if u is not None:
            out.append(int(u))
    return out


def find_ugid(config: Any, addr: Any, tp: Any,
              expand: Callable[[str], str]) -> LocalIds:
    """The uid, gid and initgroups flag of a local delivery (findugid)."""
    import grp
    import pwd
    initgroups = bool(tp.get("initgroups"))
    gid: int | None = None
    g = tp.get("group")
    if isinstance(g, int):
        gid = g
    elif isinstance(g, str) and g:
        try:
            name = expand(g)
            gid = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
        except Exception:  # noqa: BLE001 - expansion or lookup failure
            raise UgidError(f'Failed to find group from expanded string '
                            f'"{g}" for the {tp.name} transport',
                            ERRNO_GIDFAIL, False) from None
    if gid is None and addr.gid is not None:
        gid = addr.gid
    u = tp.get("user")
    if isinstance(u, int):
        uid = u
        if gid is None:
            try:
                gid = pwd.getpwuid(u).pw_gid
            except KeyError:
                pass
    elif isinstance(u, str) and u:
        try:
            name = expand(u)
        except Exception as e:  # noqa: BLE001 - expansion failure
            raise UgidError(f'Failed to expand user string "{u}" for the '
                            f'{tp.name} transport: {e}', ERRNO_UIDFAIL,
                            False) from None
        try:
            pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
            uid = pw.pw_uid
            if gid is None:
                gid = pw.pw_gid
        except KeyError:
            if not name.isdigit():
                raise UgidError(f'Failed to find user "{name}" from expanded '
                                f'string "{u}" for the {tp.name} transport',
                                ERRNO_UIDFAIL, False) from None
            uid = int(name)
    elif addr.uid is not None:
        uid = addr.uid
        initgroups = bool(getattr(addr, "initgroups", False))
    else:
        uid, egid = _exim_ids(config)
        if gid is None:
            gid = egid
    if gid is None:
        raise UgidError(f"User set without group for {tp.name} transport",
                        ERRNO_GIDFAIL, True)
    listname = "never_users" if uid in never_users(config) else \
        "fixed_never_users" if uid in FIXED_NEVER_USERS else None
    if listname:
        raise UgidError(f"User {uid} set for {tp.name} transport is on the "
                        f"{listname} list", ERRNO_UIDFAIL, True)
    return LocalIds(int(uid), int(gid), initgroups)


# ----------------------------------------------------------------------
def _has_cap_setuid() -> bool:
    try:
        import prctl
        return bool(prctl.cap_effective.setuid and prctl.cap_effective.setgid)
    except Exception:  # noqa: BLE001 - no prctl: no capabilities known
        return False


@dataclass
class Privilege:
    """What this delivery process may do with ids."""

    privileged: bool        # it could change ids when the delivery began
    dropped: bool = False   # ... and gave that up (deliver_drop_privilege)

    @classmethod
    def detect(cls, config: Any) -> "Privilege":
        """Look at this process; apply deliver_drop_privilege."""
        if _DROPPED.get("dropped"):
            return cls(True, True)
        priv = os.geteuid() == 0 or _has_cap_setuid()
        if priv and config.main.get("deliver_drop_privilege"):
            from eximpy import privilege
            from eximpy.deliver.deliver import _warm_imports
            _warm_imports()     # the library may be unreadable afterwards
            uid, gid = _exim_ids(config)
            privilege.drop_permanently(uid, gid)
            _DROPPED["dropped"] = True
            return cls(True, True)
        return cls(priv)

    def needs_child(self, ids: LocalIds) -> bool:
        """Whether a transport run as ``ids`` needs a child: always in a
        process that holds privilege (no transport runs with it), else
        when the ids differ (which fails after deliver_drop_privilege, as
        in Exim)."""
        if not self.privileged:
            return False
        if not self.dropped:
            return True
        return (ids.uid, ids.gid) != (os.getuid(), os.getgid())


def _groups(ids: LocalIds) -> tuple[int, ...] | None:
    if not ids.initgroups:
        return None
    import pwd
    try:
        name = pwd.getpwuid(ids.uid).pw_name
    except KeyError:
        raise OSError(f"cannot run initgroups(): no passwd entry for "
                      f"uid={ids.uid}") from None
    return tuple(os.getgrouplist(name, ids.gid))


def encode_report(res: Any, addr: Any, reply: bytes | None) -> bytes:
    """The child's report (see THE CHILD'S REPORT)."""
    return json.dumps({
        "v": 1, "status": res.status, "message": res.message,
        "user_message": res.user_message, "errno": int(res.errno or 0),
        "more_errno": int(res.more_errno or 0),
        "special_action": int(res.special_action or 0),
        "returned_output": res.returned_output,
        "delivered_path": getattr(addr, "delivered_path", None),
        "reply": None if reply is None else
        {"data": base64.b64encode(reply).decode("ascii")},
    }).encode("utf-8")


_REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "v": (int,), "status": (str,), "message": (str, type(None)),
    "user_message": (str, type(None)), "errno": (int,), "more_errno": (int,),
    "special_action": (int,), "returned_output": (str, type(None)),
    "delivered_path": (str, type(None)), "reply": (dict, type(None))}


def decode_report(data: bytes) -> dict[str, Any] | None:
    """A validated report, or None for anything malformed."""
    try:
        rep = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rep, dict) or set(rep) != set(_REPORT_TYPES):
        return None
    for k, types in _REPORT_TYPES.items():
        if not isinstance(rep[k], types) or \
                (isinstance(rep[k], bool) and bool not in types):
            return None
    if rep["v"] != 1 or rep["status"] not in _STATUSES:
        return None
    if rep["reply"] is not None:
        r = rep["reply"]
        if set(r) != {"data"} or not isinstance(r["data"], str):
            return None
        try:
            rep["reply"] = base64.b64decode(r["data"], validate=True)
        except ValueError:
            return None
    return rep


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def run_local(priv: Privilege, ids: LocalIds, addr: Any, tp: Any,
              fn: Callable[[], Any], log: Any, mid: str, workdir: str,
              tctx: Any) -> Any:
    """Run ``fn`` (one transport run) as ids.uid/ids.gid in a forked child
    and give back its TransportResult; see the module docstring."""
    from eximpy.deliver.deliver import _warm_imports
    from eximpy.transports._write import TransportResult
    if not priv.dropped:
        # (a process that dropped privilege cannot start a worker for
        # another user: it fails in the child below, as Exim's does)
        from eximpy.deliver import worker
        res = worker.deliver(priv, ids, addr, tp, log, mid, workdir, tctx)
        if res is not None:
            return res
    _warm_imports()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            code = _child(priv, ids, addr, tp, fn, log, mid, workdir, tctx, w)
        except BaseException:  # noqa: BLE001 - a child never returns
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    total = 0
    with os.fdopen(r, "rb") as f:
        while True:
            b = f.read(65536)
            if not b:
                break
            total += len(b)
            if total <= REPORT_LIMIT:
                chunks.append(b)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:       # reaped by a SIGCHLD handler (Exim's words)
        log.main(f"{tp.driver} transport process vanished unexpectedly", mid)
        status = 0
    rep = decode_report(b"".join(chunks)) if total <= REPORT_LIMIT else None
    if rep is None:
        log.panic(f"failed to read delivery status for {addr.address} "
                  f"from delivery subprocess", mid)
        return TransportResult(R.DEFER, None, -1,
                               special_action=_child_status(status, tp, log, mid))
    freeze = _child_status(status, tp, log, mid)
    if rep["delivered_path"] is not None:
        addr.delivered_path = rep["delivered_path"]
    res = TransportResult(rep["status"], rep["message"], rep["errno"],
                          rep["more_errno"], rep["user_message"],
                          rep["special_action"] or freeze,
                          rep["returned_output"])
    if rep["reply"] is not None and res.status == R.OK:
        from eximpy.transports.autoreply import submit_reply
        res = submit_reply(tctx, rep["reply"], ids.uid, ids.gid) or res
    return res


def _child_status(status: int, tp: Any, log: Any, mid: str) -> int:
    """Exim's check of a local delivery process's exit status: a non-zero
    status is logged (main and panic) and freezes the message (special
    action 1), except for death by SIGTERM, SIGKILL or SIGQUIT."""
    if not status & 0xffff:
        return 0
    msb, lsb = (status >> 8) & 255, status & 255
    code = msb if msb else lsb & 0x7f
    log.panic(f"{tp.driver} transport process returned non-zero status "
              f"0x{status & 0xffff:04x}: "
              f"{'exit code' if msb else 'terminated by signal'} {code}", mid)
    if msb or code not in (signal.SIGTERM, signal.SIGKILL, signal.SIGQUIT):
        return 1
    return 0


def _child(priv: Privilege, ids: LocalIds, addr: Any, tp: Any,
           fn: Callable[[], Any], log: Any, mid: str, workdir: str,
           tctx: Any, w: int) -> int:
    from eximpy import privilege
    from eximpy.transports._write import TransportResult
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    try:
        groups = _groups(ids)
    except OSError as e:
        log.panic(str(e), mid)
        return 1
    try:
        privilege.run_as(ids.uid, ids.gid, groups)
    except (OSError, privilege.PrivilegeError):
        log.panic(f"unable to set gid={ids.gid} or uid={ids.uid} "
                  f"(euid={os.geteuid()}): local delivery to "
                  f"{addr.local_part} <{addr.address}> transport={tp.name}",
                  mid)
        return 1
    replies: list[bytes] = []
    tctx.submit_reply = replies.append
    try:
        os.chdir(workdir)
    except OSError as e:
        res = TransportResult(R.DEFER, f"{os.strerror(e.errno or 0)}: "
                              f"failed to chdir to {workdir}", e.errno or 0)
    else:
        try:
            res = fn()
        except NotImplementedError as e:
            res = TransportResult(R.DEFER, str(e))
        except OSError as e:
            res = TransportResult(R.DEFER, f"{tp.name} transport: "
                                  f"{os.strerror(e.errno or 0)}", e.errno or 0)
    _write_all(w, encode_report(res, addr, replies[0] if replies else None))
    os.close(w)
    return 0
