"""dsearch: is there a directory entry with this name?

DESCRIPTION
    ${lookup{name}dsearch{/dir}} succeeds when /dir/name exists (lstat),
    yielding the name, or with ",ret=full" the full path.  ",filter=file",
    ",filter=dir" and ",filter=subdir" (a directory other than . and ..)
    restrict the kind of entry.  A key containing '/' is refused.

SEE ALSO
    spec section "Single-key lookup types" (dsearch).
"""
from __future__ import annotations

import os
import stat

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


class DSearch(Lookup):
    name = "dsearch"
    names = ("dsearch",)
    style = "absfile"

    def open(self, filename):
        try:
            st = os.stat(filename)
        except OSError as e:
            raise LookupFailure(f"failed to open {filename} for directory search: "
                                f"{e.strerror}")
        if not stat.S_ISDIR(st.st_mode):
            raise LookupFailure(f"failed to open {filename} for directory search: "
                                f"Not a directory")
        return filename

    def find(self, handle, filename, key, opts, ctx):
        if "/" in key:
            raise LookupDefer(f'key for dsearch lookup contains a slash: {key}')
        full = False
        filt = None
        if opts:
            from eximpy.expand.lists import iter_list
            for o in iter_list(opts, ","):
                if o == "ret=full":
                    full = True
                elif o.startswith("filter="):
                    filt = o[7:]
        path = f"{filename}/{key}"
        try:
            st = os.lstat(path)
        except OSError as e:
            if e.errno == 2:
                return None
            raise LookupDefer(f"{path}: lstat: {e.strerror}")
        if filt == "file" and not stat.S_ISREG(st.st_mode):
            return None
        if filt == "dir" and not stat.S_ISDIR(st.st_mode):
            return None
        if filt == "subdir" and (not stat.S_ISDIR(st.st_mode) or key in (".", "..")):
            return None
        return path if full else key


register(DSearch())
