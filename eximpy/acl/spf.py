"""The `spf` and `spf_guess` ACL conditions.

DESCRIPTION
    Exim links libspf2; eximpy would use the pure-Python pyspf package
    (on PyPI as "pyspf").  It is not installed in this environment, so the
    conditions return ERROR ("not supported"), which the session turns into
    a temporary rejection: an SPF policy never passes by accident.  When
    pyspf is importable, the result (pass fail softfail neutral none
    temperror permerror) is matched against the condition's list and
    $spf_result / $spf_header_comment / $spf_received are set.

SEE ALSO
    spec 44 "SPF (Sender Policy Framework)"; Exim spf.c.
"""
from __future__ import annotations

from typing import Any

from eximpy.acl.runner import ERROR, FAIL


def acl_spf(call: Any, name: str, arg: str, msgs: Any) -> str:
    try:
        import spf  # type: ignore[import-not-found]
    except ImportError:
        msgs.log = (f'ACL condition "{name}" is not supported by eximpy '
                    "(the pyspf library is not installed)")
        return ERROR
    ip = call.var("sender_host_address")
    sender = call.var("sender_address")
    helo = call.var("sender_helo_name")
    if not ip:
        return FAIL
    try:
        res, expl = spf.check2(i=ip, s=sender or f"postmaster@{helo}", h=helo)
    except Exception as e:                      # pragma: no cover
        msgs.log = f"spf check failed: {e}"
        return ERROR
    if name == "spf_guess" and res == "none":
        res = "neutral"
    call.ctx.variables["spf_result"] = res
    call.ctx.variables["spf_header_comment"] = expl
    rc, _ = call.lists.string(res, arg)
    return rc
