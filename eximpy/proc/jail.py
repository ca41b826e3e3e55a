"""chroot deployment: the roles run inside a jail directory.

SUMMARY
    jail_of(config)        the `chroot` main option (eximpy's own), or None
    host_view(config)      the configuration as seen from outside the jail
    enter(config)          (in a role) read what is needed, then chroot

DESCRIPTION
    With `chroot = /srv/eximpy` in the main section, every path in the
    configuration is a path inside the jail: `spool_directory = /spool`
    means /srv/eximpy/spool on the host.  The launcher stays outside (it
    starts the roles' interpreter, which is not in the jail) and works on
    host_view(config), whose path options carry the jail prefix.  Each role
    imports everything, reads what it will need later from outside the jail
    (time zone, DNS resolver configuration, its user and group ids, the TLS
    keys, which the receiver loads before forking), then enters the jail and
    only after that drops privilege.  From then on every file it touches is
    under the jail: the spool, the logs and the mailboxes the configuration
    names.

    Exim has no such option; `chroot` is eximpy's, hidden from `-bP` like
    python_startup, so that a configuration without it reads as Exim's.

SECURITY
    chroot() needs root; after it the role keeps no way out (it drops to the
    exim user, and the delivery role's CAP_SETUID/CAP_SETGID do not allow
    chroot or mounts).  Files inside the jail must not be writable by the
    exim user where that would let it plant a library or a passwd file.

SEE ALSO
    DESIGN.md section 2 ("chroot deployment"); issue 8.
"""
from __future__ import annotations

import os
import time
from typing import Any

# Main options that name files or directories (log_file_path is a list).
_PATH_OPTIONS = ("spool_directory", "pid_file_path", "process_log_path")


def jail_of(config: Any) -> str | None:
    jail = config.main.get("chroot")
    return jail.rstrip("/") or None if jail else None


class _JailedMain:
    """config.main with the jail prefix on the path options."""

    def __init__(self, main: Any, jail: str) -> None:
        self._main = main
        self._jail = jail

    def get(self, name: str) -> Any:
        value = self._main.get(name)
        if not value or not isinstance(value, str):
            return value
        if name in _PATH_OPTIONS and value.startswith("/"):
            return self._jail + value
        if name == "log_file_path":
            return ":".join(self._jail + i if i.startswith("/") else i
                            for i in value.split(":"))
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._main, name)


class _HostView:
    """A configuration whose path options are host paths (see module doc)."""

    def __init__(self, config: Any, jail: str) -> None:
        self._config = config
        self.main = _JailedMain(config.main, jail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


def host_view(config: Any) -> Any:
    """``config`` itself without a jail; else the outside view of it."""
    jail = jail_of(config)
    return config if jail is None else _HostView(config, jail)


def enter(config: Any) -> None:
    """Read what must come from outside, then chroot into the jail."""
    jail = jail_of(config)
    if jail is None:
        return
    time.tzset()
    time.localtime()                 # the C library keeps the zone it read
    try:
        import dns.resolver
        dns.resolver.get_default_resolver()   # reads /etc/resolv.conf now
    except Exception:
        pass
    os.chroot(jail)
    os.chdir("/")
