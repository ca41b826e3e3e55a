"""The skeleton every long-running eximpy process goes through.

SUMMARY
    RoleContext     what a role was started with (config, name, fds)
    become_role()   drop privilege as the role allows, set the title,
                    install SIGUSR1 (exiwhat) and SIGTERM handling
    set_title()     the process title exiwhat and ps show
    fork_child()    fork from the warmed parent (gc frozen first); the child
                    gets default signals and a parent-death signal

DESCRIPTION
    Roles are exec'd once by the launcher (`python -m eximpy.proc.role NAME`)
    and then fork for each connection or message, never exec again: the
    interpreter and every module are warm.  Before forking, gc.freeze()
    moves the parent's objects out of the collector's reach so that the
    children share those pages copy-on-write.

    SIGUSR1 makes a process append "<pid> <title>" to process_log_path
    (default <spool>/exim-process.info), which is what exiwhat prints.

SECURITY
    Privilege is dropped here and only here for the roles (eximpy.privilege
    verifies every change).  A child never regains what its parent dropped.

SEE ALSO
    DESIGN.md section 2; eximpy.proc.launcher; spec 54.x "exiwhat".
"""
from __future__ import annotations

import gc
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import prctl

from eximpy import privilege

_TITLE = ["eximpy"]


def set_title(title: str) -> None:
    """Set the process title (ps, /proc/PID/cmdline) and the short name."""
    _TITLE[0] = title
    try:
        prctl.set_proctitle(title)
        prctl.set_name(title.split(":")[-1].strip()[:15] or "eximpy")
    except (OSError, ValueError):
        pass


def title() -> str:
    return _TITLE[0]


def process_log_path(config: Any) -> str:
    path = config.main.get("process_log_path")
    if not path:
        path = os.path.join(config.main.get("spool_directory"),
                            "exim-process.info")
    return path


def _report_activity(path: str) -> None:
    """SIGUSR1: append this process's activity for exiwhat."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, f"{os.getpid():5d} {_TITLE[0]}\n".encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def install_activity_reporter(config: Any) -> None:
    """Answer SIGUSR1 (exiwhat) by appending our activity to the log."""
    plog = process_log_path(config)
    signal.signal(signal.SIGUSR1, lambda *_: _report_activity(plog))


@dataclass
class RoleContext:
    """A role's start-up data."""

    name: str
    config: Any
    config_file: str
    macros: dict[str, str] = field(default_factory=dict)
    fds: list[int] = field(default_factory=list)
    queue_interval: int | None = None
    stopping: bool = False


def exim_ids(config: Any) -> tuple[int, int]:
    """The uid and gid the roles run as (exim_user / exim_group)."""
    uid = config.main.get("exim_user")
    gid = config.main.get("exim_group")
    if uid is None:
        uid = os.getuid()
    if gid is None:
        import pwd
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = os.getgid()
    return int(uid), int(gid)


def become_role(ctx: RoleContext, keep: tuple[str, ...] = (),
                ids: tuple[int, int] | None = None) -> None:
    """Drop to the exim user with only ``keep`` capabilities; set signals.

    ``ids`` (uid, gid) are looked up by the caller when the user database
    may not be readable any more (inside a chroot jail).
    """
    uid, gid = ids if ids is not None else exim_ids(ctx.config)
    privilege.drop_permanently(uid, gid, keep=keep)
    set_title(f"eximpy: {ctx.name}")
    install_activity_reporter(ctx.config)

    def stop(*_: Any) -> None:
        ctx.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, stop)


def fork_child(run: Callable[[], int], title_text: str) -> int:
    """Fork a child that runs ``run`` and exits with its status.

    Returns the child's pid in the parent.  An exception in the child is
    written to stderr (the launcher's paniclog relay) and ends only it.
    """
    gc.freeze()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        privilege.set_parent_death_signal(signal.SIGTERM)
        set_title(title_text)
        code = run()
    except BaseException as e:  # the child must never return into the parent
        try:
            sys.stderr.write(f"eximpy: {title_text}: {type(e).__name__}: {e}\n")
            sys.stderr.flush()
        except Exception:
            pass
        code = 1
    finally:
        os._exit(code if isinstance(code, int) else 0)
    return 0  # not reached
