"""SMTP AUTH on the server side: which mechanisms, and the outcome's reply.

SUMMARY
    server_authenticators(config) -> list[AuthMech]     in configuration order
    tls_authenticator(config) -> AuthMech | None        the tls driver's instance
    server_drivers() -> tuple[str, ...]                 drivers with a server side
    AuthMech.exchange(initial, expand) -> generator     the driver's exchange
    result_reply(rc, set_id) -> (reply line, log text)  Exim's texts
    xtext_decode(value)                                 RFC 3461 xtext (AUTH=)

DESCRIPTION
    The session (eximpy.smtp.server) runs an exchange as a sans-IO
    generator: each value it yields is a prompt that goes out as
    "334 <base64>", and the client's next line is sent back in.  The
    exchanges themselves are the drivers' server() methods, one module per
    driver in eximpy/auths/ (plaintext, cram_md5, dovecot, external, tls).

SECURITY
    Credentials never appear in logs (only $auth1 via server_set_id, as
    Exim does).

SEE ALSO
    spec chapters 33 "SMTP authentication" and 34-42 (the drivers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eximpy.auths.base import (  # noqa: F401  (the session imports these)
    BAD64, CANCELLED, DEFER, FAIL, OK, UNEXPECTED, Authenticator, Exchange,
    Expander)


@dataclass
class AuthMech:
    """One server-side authenticator instance, as the session sees it."""

    name: str               # instance name (A=name in the log)
    driver: str
    public_name: str
    instance: Any
    driver_obj: Authenticator
    last_items: list[str] = field(default_factory=list)

    def opt(self, name: str) -> Any:
        return self.driver_obj.option(name)

    def exchange(self, initial: str, expand: Expander) -> Exchange:
        """Start one exchange; its $auth items end up in last_items."""
        self.last_items = []
        return self.driver_obj.server(initial, expand, self.last_items)


def server_drivers() -> tuple[str, ...]:
    """The authenticator drivers that have a server side in eximpy."""
    import eximpy.auths  # noqa: F401  (registers the drivers)
    from eximpy.drivers.registry import AUTHS
    return tuple(i.name for i in AUTHS if i.factory is not None and
                 i.factory.server is not Authenticator.server)


def server_authenticators(config: Any) -> list[AuthMech]:
    """The instances offered by AUTH, in configuration order: those whose
    driver has a server side and whose server options are set (Exim's
    ablock->server).  The tls driver is not an AUTH mechanism."""
    import eximpy.auths  # noqa: F401
    from eximpy.drivers.registry import AUTHS
    out = []
    for inst in getattr(config, "authenticators", None) or []:
        driver = getattr(inst, "driver", None)
        info = AUTHS.get(driver) if driver else None
        if info is None or info.factory is None or driver == "tls" or \
                info.factory.server is Authenticator.server:
            continue
        obj = info.factory(inst)
        if not obj.server_configured():
            continue
        out.append(AuthMech(inst.name, driver, obj.public_name, inst, obj))
    return out


def tls_authenticator(config: Any) -> AuthMech | None:
    """The (at most one) instance of the tls driver with a server side."""
    import eximpy.auths  # noqa: F401
    from eximpy.drivers.registry import AUTHS
    for inst in getattr(config, "authenticators", None) or []:
        if getattr(inst, "driver", None) == "tls":
            info = AUTHS.get("tls")
            obj = info.factory(inst)
            if obj.server_configured():
                return AuthMech(inst.name, "tls", obj.public_name, inst, obj)
    return None


def result_reply(rc: str, set_id: str | None) -> tuple[str, str]:
    """(reply line, log text) for an exchange's outcome (smtp_in_auth)."""
    sid = f" (set_id={set_id})" if set_id else ""
    if rc == OK:
        return "235 Authentication succeeded", ""
    if rc == DEFER:
        return ("435 Unable to authenticate at present",
                f"435 Unable to authenticate at present{sid}")
    if rc == BAD64:
        return "501 Invalid base64 data", "501 Invalid base64 data"
    if rc == CANCELLED:
        return "501 Authentication cancelled", "501 Authentication cancelled"
    if rc == UNEXPECTED:
        return "553 Initial data not expected", "553 Initial data not expected"
    return ("535 Incorrect authentication data",
            f"535 Incorrect authentication data{sid}")


def xtext_decode(value: str) -> str | None:
    """RFC 3461 xtext: "+XX" hex escapes; None when malformed."""
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "+":
            h = value[i + 1:i + 3]
            if len(h) != 2 or any(x not in "0123456789ABCDEFabcdef"
                                  for x in h):
                return None
            out.append(chr(int(h, 16)))
            i += 3
            continue
        if c == "=" or ord(c) < 33 or ord(c) > 126:
            return None
        out.append(c)
        i += 1
    return "".join(out)
