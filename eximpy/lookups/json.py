"""json: look up a value in a JSON file (an eximpy extra: Debian's Exim
4.96 is built without it).

DESCRIPTION
    ${lookup{k1:k2:...}json{/file.json}}: the key is a list of object keys
    and array indices walked from the top; a string result is returned
    without quotes, anything else as compact JSON.

SEE ALSO
    spec section "Single-key lookup types" (json).
"""
from __future__ import annotations

import json as _json

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer, LookupFailure


class JSONLookup(Lookup):
    name = "json"
    names = ("json",)
    style = "absfile"

    def open(self, filename):
        try:
            with open(filename, "rb") as f:
                return _json.loads(f.read().decode("utf-8"))
        except OSError as e:
            raise LookupFailure(f"{filename}: {e.strerror}")
        except ValueError as e:
            raise LookupFailure(f"json error: {e}")

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand.lists import iter_list
        j = handle
        for k in iter_list(key):
            if isinstance(j, dict):
                if k not in j:
                    return None
                j = j[k]
            elif isinstance(j, list):
                if not k.isdigit() or int(k) >= len(j):
                    return None
                j = j[int(k)]
            else:
                return None
        if isinstance(j, str):
            return j
        # jansson writes UTF-8 as it is (no \u escapes for non-ASCII)
        return _json.dumps(j, separators=(",", ":"), ensure_ascii=False)


register(JSONLookup())
