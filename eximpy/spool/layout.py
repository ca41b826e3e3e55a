"""Spool directory layout: where input/, msglog/, db/ and split subdirs live.

SUMMARY
    SpoolLayout(spool_directory, split=False, queue="")
    SpoolLayout.from_config(config, queue="")
    layout.input_dir(id) / msglog_dir(id) / file(id, "-H") / find(id, "-H")
    layout.list_ids() -> sorted ids that have a -H file

DESCRIPTION
    ``<spool>/input/<id>-H`` and ``-D``, ``<spool>/msglog/<id>``, hints in
    ``<spool>/db/``.  With ``split_spool_directory`` the files go into one of
    62 subdirectories named by the 6th character of the id (the last
    character of its time field), e.g. ``input/j/1xWBAj-0002pL-1F-H``; as in
    Exim, a message is also looked for in the other layout, so turning the
    option on or off does not lose messages.  Named queues live in
    ``<spool>/<queue>/input`` and ``<spool>/<queue>/msglog``.

    Ids are validated before they are used in a path: nothing from the
    command line or a directory listing becomes a path unless it is a
    well-formed message id.

SECURITY
    Paths are built only from validated ids and the configured spool
    directory.

SEE ALSO
    spec "Format of spool files", option split_spool_directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

from eximpy.message.ids import ANY_ID_RE, is_message_id

SPOOL_MODE = 0o640
INPUT_DIRECTORY_MODE = 0o750
SPLIT_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class BadMessageId(ValueError):
    """A string used as a message id is not one."""


def config_get(config: Any, name: str, default: Any = None) -> Any:
    """A main option's value, or ``default`` when it is unset, unknown or
    a computed default the configuration cannot resolve (yet)."""
    try:
        v = config.main.get(name)
    except (KeyError, AttributeError):
        return default
    return default if v is None else v


def spool_owner(config: Any) -> tuple[int | None, int | None]:
    """(uid, gid) that spool and log files should belong to: the exim
    user and group, when running as root; (None, None) otherwise."""
    if os.geteuid() != 0:
        return None, None
    import grp
    import pwd
    u = config_get(config, "exim_user", "Debian-exim")
    g = config_get(config, "exim_group")
    uid = gid = None
    try:
        if isinstance(u, int):
            uid = u
        else:
            pw = pwd.getpwnam(str(u))
            uid, gid = pw.pw_uid, pw.pw_gid
    except KeyError:
        uid = None
    try:
        if isinstance(g, int):
            gid = g
        elif g:
            gid = grp.getgrnam(str(g)).gr_gid
        elif gid is None and uid is not None:
            gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        pass
    return uid, gid


def check_id(mid: str) -> str:
    if not is_message_id(mid):
        raise BadMessageId(f"{mid!r} is not a valid message id")
    return mid


def split_char(mid: str) -> str:
    """The split_spool_directory subdirectory name for ``mid``."""
    return mid[5]


@dataclass(frozen=True)
class SpoolLayout:
    """Paths under one spool directory (and optionally one named queue)."""

    spool_directory: str
    split: bool = False
    queue: str = ""
    uid: int | None = None      # owner for files/dirs created (exim user)
    gid: int | None = None

    @classmethod
    def from_config(cls, config: Any, queue: str = "") -> "SpoolLayout":
        spool = config_get(config, "spool_directory", "/var/spool/exim4")
        uid, gid = spool_owner(config)
        return cls(str(spool), bool(config_get(config,
                                               "split_spool_directory")),
                   queue, uid, gid)

    def chown(self, fd_or_path: int | str) -> None:
        """Give a created file or directory to the exim user (as root)."""
        if self.uid is None and self.gid is None:
            return
        u = -1 if self.uid is None else self.uid
        g = -1 if self.gid is None else self.gid
        try:
            if isinstance(fd_or_path, int):
                os.fchown(fd_or_path, u, g)
            else:
                os.chown(fd_or_path, u, g)
        except OSError:
            pass

    # --- directories -------------------------------------------------
    @cached_property
    def base(self) -> str:
        if self.queue:
            return os.path.join(self.spool_directory, self.queue)
        return self.spool_directory

    @cached_property
    def input_root(self) -> str:
        return os.path.join(self.base, "input")

    @cached_property
    def msglog_root(self) -> str:
        return os.path.join(self.base, "msglog")

    @cached_property
    def db_dir(self) -> str:
        return os.path.join(self.spool_directory, "db")

    def subdir(self, mid: str, split: bool | None = None) -> str:
        use = self.split if split is None else split
        return split_char(check_id(mid)) if use else ""

    def input_dir(self, mid: str, split: bool | None = None) -> str:
        sub = self.subdir(mid, split)
        return os.path.join(self.input_root, sub) if sub else self.input_root

    def msglog_dir(self, mid: str, split: bool | None = None) -> str:
        sub = self.subdir(mid, split)
        return os.path.join(self.msglog_root, sub) if sub else self.msglog_root

    def file(self, mid: str, suffix: str, split: bool | None = None) -> str:
        """Path of ``<id><suffix>`` (suffix ``-H``, ``-D``, ``-J``) in input/."""
        return os.path.join(self.input_dir(mid, split), mid + suffix)

    def temp_header(self, mid: str, split: bool | None = None) -> str:
        return os.path.join(self.input_dir(mid, split), "hdr." + mid)

    def msglog_file(self, mid: str, split: bool | None = None) -> str:
        return os.path.join(self.msglog_dir(mid, split), mid)

    def find(self, mid: str, suffix: str = "-H") -> str | None:
        """Locate an existing spool file, trying the configured layout first
        and then the other one (as Exim does); None if neither exists."""
        check_id(mid)
        for split in (self.split, not self.split):
            p = self.file(mid, suffix, split)
            if os.path.lexists(p):
                return p
        return None

    def find_split(self, mid: str) -> bool | None:
        """Which layout holds ``mid``'s -H file (None: not found)."""
        for split in (self.split, not self.split):
            if os.path.lexists(self.file(mid, "-H", split)):
                return split
        return None

    def find_msglog(self, mid: str) -> str | None:
        for split in (self.split, not self.split):
            p = self.msglog_file(mid, split)
            if os.path.lexists(p):
                return p
        return None

    # --- creation ----------------------------------------------------
    def ensure_dirs(self, mid: str | None = None) -> None:
        """Create input/, msglog/ (and the split subdir for ``mid``),
        owned by the exim user as Exim makes them."""
        dirs = [self.spool_directory, self.base, self.input_root,
                self.msglog_root]
        if mid is not None and self.split:
            dirs += [self.input_dir(mid), self.msglog_dir(mid)]
        for d in dirs:
            if not os.path.isdir(d):
                os.makedirs(d, mode=INPUT_DIRECTORY_MODE, exist_ok=True)
                self.chown(d)

    # --- listing -----------------------------------------------------
    def _scan(self, d: str) -> Iterator[tuple[str, str]]:
        try:
            names = os.listdir(d)
        except OSError:
            return
        for n in names:
            if n.endswith("-H") and ANY_ID_RE.fullmatch(n[:-2]):
                yield n[:-2], d

    def list_ids(self) -> list[str]:
        """All message ids with a -H file, in both layouts, sorted as Exim
        lists them (by id).  Duplicates (same id in both places) once."""
        found: dict[str, str] = {}
        root = self.input_root
        for mid, d in self._scan(root):
            found.setdefault(mid, d)
        try:
            subs = [n for n in os.listdir(root)
                    if len(n) == 1 and n in SPLIT_CHARS
                    and os.path.isdir(os.path.join(root, n))]
        except OSError:
            subs = []
        for s in subs:
            for mid, d in self._scan(os.path.join(root, s)):
                found.setdefault(mid, d)
        return sorted(found)

    def list_files(self) -> list[tuple[str, str]]:
        """(id, directory) for every -H file, sorted by id."""
        out: list[tuple[str, str]] = []
        root = self.input_root
        out.extend(self._scan(root))
        try:
            subs = sorted(n for n in os.listdir(root)
                          if len(n) == 1 and n in SPLIT_CHARS
                          and os.path.isdir(os.path.join(root, n)))
        except OSError:
            subs = []
        for s in subs:
            out.extend(self._scan(os.path.join(root, s)))
        seen: set[str] = set()
        uniq = []
        for mid, d in sorted(out):
            if mid not in seen:
                seen.add(mid)
                uniq.append((mid, d))
        return uniq


class _Umask:
    """This process's umask, read once per process (the daemon never
    changes it; a fork re-reads)."""

    pid = -1
    keeps = False


def spool_mode_kept() -> bool:
    """True when open(..., SPOOL_MODE) gives exactly SPOOL_MODE (the umask
    clears none of its bits), so no fchmod() is needed."""
    pid = os.getpid()
    if _Umask.pid != pid:
        mask = os.umask(0o022)
        os.umask(mask)
        _Umask.pid, _Umask.keeps = pid, not (mask & SPOOL_MODE)
    return _Umask.keeps


def open_regular(path: str) -> int:
    """Open a spool file for reading: never through a symlink, never
    blocking on a FIFO or device planted in the spool (OSError EINVAL
    for anything that is not a regular file)."""
    import errno
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                 | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(path: str) -> None:
    """fsync a directory (after a rename or create), ignoring EINVAL as
    Exim does for file systems that cannot sync directories."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            os.fsync(fd)
        except OSError as e:
            import errno
            if e.errno != errno.EINVAL:
                raise
    finally:
        os.close(fd)
