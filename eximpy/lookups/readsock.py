"""readsock: the lookup behind ${readsocket} (socket spec as the "file",
request as the key).  Registered for completeness of the query framework;
${readsocket} itself is served by eximpy.expand.items.readsocket().

SEE ALSO
    spec section "Expansion items" (readsocket).
"""
from __future__ import annotations

from eximpy.lookups import register
from eximpy.lookups.base import Lookup, LookupDefer


class ReadSock(Lookup):
    name = "readsock"
    names = ("readsock",)
    style = "query"

    def open(self, filename):
        return filename

    def find(self, handle, filename, key, opts, ctx):
        from eximpy.expand import items
        args = [filename, key]
        try:
            return items.readsocket(ctx, args)
        except items.SockFail as e:
            raise LookupDefer(str(e))


register(ReadSock())
