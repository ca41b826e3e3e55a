"""Header checks for `verify = header_syntax / header_sender / not_blind /
header_names_ascii` (DATA ACLs).

DESCRIPTION
    The message's header lines come from the session through AclEnv.headers
    as (name, value) pairs (value is what follows the colon).  Exim's texts
    are used for failures.

SEE ALSO
    spec 44.46 "Header verification"; Exim verify.c verify_check_headers(),
    verify_check_header_address(), verify_check_notblind().
"""
from __future__ import annotations

from typing import Any

from eximpy.acl.runner import FAIL, OK

_ADDR_HEADERS = ("sender", "reply-to", "from", "to", "cc", "bcc",
                 "resent-sender", "resent-reply-to", "resent-from",
                 "resent-to", "resent-cc", "resent-bcc")


def _headers(call: Any) -> list[tuple[str, str]]:
    out = []
    for h in getattr(call.env, "headers", None) or []:
        if isinstance(h, (tuple, list)):
            out.append((str(h[0]), str(h[1])))
        else:
            n, _, v = str(h).partition(":")
            out.append((n, v))
    return out


def _addresses(value: str) -> list[str] | None:
    import email.utils
    v = value.replace("\n", " ")
    pairs = email.utils.getaddresses([v])
    out = []
    for _name, a in pairs:
        if a:
            out.append(a)
    if v.strip() and not out:
        return None
    return out


def verify_headers(call: Any, what: str, opts: list[str], msgs: Any) -> str:
    hdrs = _headers(call)
    if what == "header_names_ascii":
        for n, _v in hdrs:
            if any(ord(c) > 126 or ord(c) < 33 for c in n):
                msgs.log = msgs.user = (f"Invalid character in header \"{n}\" "
                                        "found")
                return FAIL
        return OK
    if what == "header_syntax":
        # Exim's verify_check_headers(): every address in the address
        # headers must parse; "empty address" items are ignored.
        from eximpy.smtp.address import (AddressError, extract_address,
                                          find_address_end)
        for n, v in hdrs:
            if n.strip().lower() not in _ADDR_HEADERS:
                continue
            s = v
            i = 0
            while i < len(s):
                end = find_address_end(s, i, False)
                item = s[i:end]
                try:
                    extract_address(item, False)
                except AddressError as e:
                    err = str(e)
                    if err != "empty address":
                        text = item.strip(" \t\n")
                        while text.endswith("\n"):
                            text = text[:-1]
                        msgs.log = msgs.user = (
                            f'{err}: failing address in "{n}:" header is: '
                            f"{text}")
                        return FAIL
                i = end + 1
        return OK
    if what == "not_blind":
        seen: set[str] = set()
        for n, v in hdrs:
            if n.strip().lower() in ("to", "cc"):
                for a in _addresses(v) or []:
                    seen.add(a.lower())
        for r in (call.var("recipients") or "").split(","):
            r = r.strip()
            if r and r.lower() not in seen:
                msgs.log = "bcc recipient detected"
                return FAIL
        return OK
    # header_sender: some address in Sender/Reply-To/From verifies as sender.
    from eximpy.acl.verify import _route
    for n, v in hdrs:
        if n.strip().lower() in ("sender", "reply-to", "from"):
            for a in _addresses(v) or []:
                rc, _addr = _route(call, a, False)
                if rc == "OK":
                    return OK
    msgs.log = msgs.user = "No valid sender in message header lines"
    return FAIL
