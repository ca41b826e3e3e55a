"""Writing mainlog, rejectlog and paniclog (files and/or syslog).

SUMMARY
    LogWriter.from_config(config, pid=None, clock=time.time)
    w.main(text, mid=None) -> bool            mainlog (and syslog target)
    w.reject(text, mid=None, block=None) -> bool   mainlog + rejectlog
    w.panic(text, mid=None) -> bool           paniclog + mainlog
    w.failed / w.last_error                   a write failed (daemon: 4xx)
    LogWriteError                             raised instead with strict=True
    parse_log_file_path(value, spool) -> LogTargets

DESCRIPTION
    log_file_path is a colon-separated list of at most two items: a path
    containing ``%s`` (replaced by main, reject or panic; ``%D`` by
    YYYYMMDD, ``%M`` by YYYYMM, ``%%`` by %) and/or the word ``syslog``.
    An empty value means ``<spool>/log/%slog``.  Each line is
    ``timestamp [+zone] [[pid]] [id ]text``; timestamp milliseconds with
    +millisec, the zone with log_timezone, the pid with +pid.

    Files are opened O_APPEND|O_CREAT (mode 0640) per write, so a rotated
    log is followed at once (Exim re-opens after stat() shows a change; the
    effect is the same).  If a file cannot be written, the line goes to
    syslog (LOG_MAIL; CRIT for panics) and the failure is recorded in
    ``failed``/``last_error`` -- callers that must not lose an audit trail
    (the SMTP receiver) check it and answer 4xx; with ``strict=True`` a
    LogWriteError is raised instead.

    write_rejectlog = false suppresses the rejectlog file (the mainlog
    still gets the line).

SECURITY
    Text is written as given; callers build it with eximpy.log.format,
    which escapes non-printing characters.  Log paths come only from the
    configuration.

SEE ALSO
    spec chapter "Log files" (53.1-53.5); EXIM-INVENTORY 3.5, 3.6.
"""
from __future__ import annotations

import os
import syslog
import time
from dataclasses import dataclass
from typing import Any, Callable

from eximpy.errors import ConfigError, EximpyError
from eximpy.log.format import LogSelector, timestamp

LOG_MODE = 0o640


class LogWriteError(EximpyError):
    """A log line could not be written to its file(s)."""


@dataclass(frozen=True)
class LogTargets:
    path: str | None          # template with %s, or None
    syslog: bool


def parse_log_file_path(value: str | None, spool_directory: str
                        ) -> LogTargets:
    """Decode log_file_path (ConfigError on more than two items or a path
    without %s, as Exim refuses them)."""
    v = (value or "").strip()
    if not v:
        return LogTargets(os.path.join(spool_directory, "log", "%slog"),
                          False)
    items = [i.strip() for i in v.split(":")]
    if len(items) > 2:
        raise ConfigError("log_file_path: more than two items")
    path = None
    use_syslog = False
    for item in items:
        if item == "syslog":
            use_syslog = True
        elif item == "":
            path = os.path.join(spool_directory, "log", "%slog")
        else:
            if "%s" not in item:
                raise ConfigError(
                    f"log_file_path \"{item}\" does not contain \"%s\"")
            path = item
    return LogTargets(path, use_syslog)


def expand_log_path(template: str, kind: str, now: float) -> str:
    """Replace %s, %D, %M (and %%) in a log path template."""
    lt = time.localtime(now)
    out = []
    i = 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template):
            n = template[i + 1]
            if n == "s":
                out.append(kind)
            elif n == "D":
                out.append(time.strftime("%Y%m%d", lt))
            elif n == "M":
                out.append(time.strftime("%Y%m", lt))
            elif n == "%":
                out.append("%")
            else:
                out.append(c + n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


_SYSLOG_PRIO = {"main": syslog.LOG_INFO, "reject": syslog.LOG_NOTICE,
                "panic": syslog.LOG_ALERT}


class LogWriter:
    """Writes Exim-format log lines for one process."""

    def __init__(self, targets: LogTargets, selector: LogSelector,
                 *, pid: int | None = None, write_rejectlog: bool = True,
                 timezone: bool = False, syslog_processname: str = "exim",
                 syslog_timestamp: bool = True, strict: bool = False,
                 clock: Callable[[], float] = time.time,
                 uid: int | None = None, gid: int | None = None) -> None:
        self.targets = targets
        self.selector = selector
        self.pid = pid
        self.write_rejectlog = write_rejectlog
        self.timezone = timezone
        self.syslog_processname = syslog_processname
        self.syslog_timestamp = syslog_timestamp
        self.strict = strict
        self.clock = clock
        self.uid, self.gid = uid, gid
        self.failed = False
        self.last_error: str | None = None
        self._syslog_open = False
        # Open log files, kept between writes: path -> (fd, inode).  As in
        # Exim, a file that was renamed (rotated) or removed is reopened;
        # the check is one stat() instead of an open() per line.
        self._open: dict[str, tuple[int, int]] = {}
        # Exim's log_stderr: a command-line mode that sets it also gets
        # each panic line on stderr, as Exim prints them.
        self.panic_stderr = False

    @classmethod
    def from_config(cls, config: Any, pid: int | None = None,
                    strict: bool = False,
                    clock: Callable[[], float] = time.time) -> "LogWriter":
        from eximpy.spool.layout import config_get as g, spool_owner
        uid, gid = spool_owner(config)
        spool = g(config, "spool_directory", "/var/spool/exim4")
        targets = parse_log_file_path(g(config, "log_file_path"), spool)
        sel = LogSelector.parse(g(config, "log_selector"))
        return cls(targets, sel, pid=pid,
                   write_rejectlog=bool(g(config, "write_rejectlog", True)),
                   timezone=bool(g(config, "log_timezone", False)),
                   syslog_processname=g(config, "syslog_processname", "exim"),
                   syslog_timestamp=bool(g(config, "syslog_timestamp", True)),
                   strict=strict, clock=clock, uid=uid, gid=gid)

    # --- formatting -----------------------------------------------------
    def prefix(self, now: float | None = None) -> str:
        t = self.clock() if now is None else now
        p = timestamp(t, "millisec" in self.selector, self.timezone)
        if "pid" in self.selector:
            p += f" [{self.pid if self.pid is not None else os.getpid()}]"
        return p

    def line(self, text: str, mid: str | None = None,
             now: float | None = None) -> str:
        body = f"{mid} {text}" if mid else text
        return f"{self.prefix(now)} {body}\n"

    # --- output ---------------------------------------------------------
    def path_for(self, kind: str, now: float | None = None) -> str | None:
        tpl = self.targets.path
        if tpl is None:
            return None
        if "%D" not in tpl and "%M" not in tpl:
            # No date in the name: the path is the same for every line.
            cache = self.__dict__.setdefault("_fixed_paths", {})
            path = cache.get((tpl, kind))
            if path is None:
                path = cache[(tpl, kind)] = expand_log_path(tpl, kind, 0.0)
            return path
        return expand_log_path(tpl, kind,
                               self.clock() if now is None else now)

    def _cached_fd(self, path: str) -> int | None:
        """The kept descriptor of ``path`` if it still names that file."""
        entry = self._open.get(path)
        if entry is None:
            return None
        fd, ino = entry
        try:
            if os.stat(path).st_ino == ino:
                return fd
        except OSError:
            pass
        os.close(fd)
        del self._open[path]
        return None

    def close(self) -> None:
        """Close the kept log files (a new process should call this)."""
        for fd, _ino in self._open.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._open.clear()

    def _append(self, kind: str, data: str, now: float) -> bool:
        path = self.path_for(kind, now)
        if path is None:
            return True
        fd = self._cached_fd(path)
        if fd is not None:
            try:
                b = data.encode("utf-8", "surrogateescape")
                view = memoryview(b)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                return True
            except OSError:
                os.close(fd)
                del self._open[path]
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                             | os.O_CLOEXEC | os.O_NOFOLLOW, LOG_MODE)
            except FileNotFoundError:
                d = os.path.dirname(path)
                os.makedirs(d, mode=0o750, exist_ok=True)
                if self.uid is not None:
                    try:
                        os.chown(d, self.uid, -1 if self.gid is None
                                 else self.gid)
                    except OSError:
                        pass
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                             | os.O_CLOEXEC | os.O_NOFOLLOW, LOG_MODE)
            try:
                if self.uid is not None or self.gid is not None:
                    try:
                        os.fchown(fd, -1 if self.uid is None else self.uid,
                                  -1 if self.gid is None else self.gid)
                    except OSError:
                        pass
                b = data.encode("utf-8", "surrogateescape")
                view = memoryview(b)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except BaseException:
                os.close(fd)
                raise
            self._open[path] = (fd, os.fstat(fd).st_ino)
        except OSError as e:
            self.failed = True
            self.last_error = f"cannot write {kind} log {path}: {e.strerror}"
            self._syslog(kind, data, fallback=True)
            if self.strict:
                raise LogWriteError(self.last_error) from e
            return False
        return True

    def _syslog(self, kind: str, data: str, fallback: bool = False) -> None:
        try:
            if not self._syslog_open:
                syslog.openlog(self.syslog_processname,
                               syslog.LOG_PID | syslog.LOG_CONS,
                               syslog.LOG_MAIL)
                self._syslog_open = True
            prio = _SYSLOG_PRIO[kind]
            if fallback and kind == "panic":
                prio = syslog.LOG_CRIT
            for ln in data.rstrip("\n").split("\n"):
                if not self.syslog_timestamp and ln[:4].isdigit():
                    ln = ln.split(" ", 2)[2] if ln.count(" ") >= 2 else ln
                syslog.syslog(prio, ln)
        except OSError:
            pass

    def _emit(self, kinds: tuple[str, ...], text: str, mid: str | None,
              extra: str = "") -> bool:
        now = self.clock()
        data = self.line(text, mid, now)
        ok = True
        for kind in kinds:
            payload = data + (extra if kind == "reject" else "")
            if self.targets.path is not None:
                ok = self._append(kind, payload, now) and ok
            if self.targets.syslog:
                self._syslog(kind, payload)
            if kind == "panic" and self.panic_stderr:
                try:
                    os.write(2, data.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass
        return ok

    def main(self, text: str, mid: str | None = None) -> bool:
        """Write a mainlog line; False if the file write failed."""
        return self._emit(("main",), text, mid)

    def reject(self, text: str, mid: str | None = None,
               block: str | None = None) -> bool:
        """A rejection: the line goes to mainlog and (with the optional
        Envelope/headers block) to rejectlog."""
        kinds: tuple[str, ...] = ("main", "reject") if self.write_rejectlog \
            else ("main",)
        return self._emit(kinds, text, mid, block or "")

    def panic(self, text: str, mid: str | None = None,
              also_main: bool = True) -> bool:
        """A panic: paniclog, and mainlog unless ``also_main`` is False
        (Exim's LOG_MAIN|LOG_PANIC versus LOG_PANIC)."""
        kinds = ("main", "panic") if also_main else ("panic",)
        return self._emit(kinds, text, mid)
