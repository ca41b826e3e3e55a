"""passwd: the system password database (getpwnam).

DESCRIPTION
    ${lookup passwd{user}} yields the passwd entry as a colon-separated
    list "x:uid:gid:gecos:home:shell" (the password field is "*" when
    shadowed, as Exim prints it).

SEE ALSO
    spec section "Query-style lookup types" (passwd).
"""
from __future__ import annotations

import pwd

from eximpy.lookups import register
from eximpy.lookups.base import Lookup


class Passwd(Lookup):
    name = "passwd"
    names = ("passwd",)
    style = "query"

    def find(self, handle, filename, key, opts, ctx):
        try:
            pw = pwd.getpwnam(key)
        except (KeyError, ValueError):
            return None
        pwfield = "*" if pw.pw_passwd in ("x", "") else pw.pw_passwd
        return f"{pwfield}:{pw.pw_uid}:{pw.pw_gid}:{pw.pw_gecos}:{pw.pw_dir}:{pw.pw_shell}"


register(Passwd())
