"""SMTP AUTH on the server side: advertising, the exchange, the outcome.

SUMMARY
    server_authenticators(config) -> list[AuthMech]     in configuration order
    AuthMech.advertise(expand_cond) -> bool             server_advertise_condition
    AuthMech.exchange(initial, ctx) -> generator        yields prompts (bytes to
                                                        base64), is sent the
                                                        client's lines, returns
                                                        OK/FAIL/DEFER/...
    result_reply(rc) -> (reply line, log text)          Exim's texts

DESCRIPTION
    The session (eximpy.smtp.server) runs an exchange as a sans-IO
    generator: each value it yields is a prompt that goes out as
    "334 <base64>", and the client's next line is sent back in.  The server
    sides of the plaintext (PLAIN, LOGIN, any server_prompts) and cram_md5
    drivers are here, following Exim's plaintext.c and cram_md5.c: data on
    the AUTH command and each answer are base64-decoded and split at binary
    zeros into $auth1, $auth2 ... ("=" is one empty string; "*" cancels);
    plaintext then expands server_condition, cram_md5 computes the
    HMAC-MD5 of its challenge with the expanded server_secret.  The other
    drivers (dovecot, cyrus_sasl, spa, external, tls) are not offered yet.

    These mechanisms belong in eximpy/auths/ (one module per driver) once
    that package implements server(); the interface there can call
    plaintext_exchange() / cram_md5_exchange() unchanged.

SECURITY
    Secrets are compared in constant time; the credentials never appear in
    logs (only $auth1 via server_set_id, as Exim).

SEE ALSO
    spec chapters 33-35 (SMTP authentication, plaintext, cram_md5).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator

OK, FAIL, DEFER, BAD64, CANCELLED, UNEXPECTED = (
    "OK", "FAIL", "DEFER", "BAD64", "CANCELLED", "UNEXPECTED")
EXPAND_MAXN = 20
AUTH_VARS = 4

Exchange = Generator[bytes, str, str]


def b64decode(data: str) -> bytes | None:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _split_items(clear: bytes, items: list[str]) -> None:
    """Split decoded data at binary zeros into $auth<n> items."""
    parts = clear.split(b"\0")
    for p in parts:
        if len(items) >= EXPAND_MAXN:
            break
        items.append(p.decode("utf-8", "surrogateescape"))


def _split_prompts(text: str) -> list[str]:
    """Colon-separated list (doubled colon is a colon), Exim's
    string_nextinlist(): an empty string is one empty item."""
    items: list[str] = []
    cur: list[str] = []
    i = 0
    ended_at_sep = False
    while i < len(text):
        c = text[i]
        ended_at_sep = False
        if c == ":":
            if i + 1 < len(text) and text[i + 1] == ":":
                cur.append(":")
                i += 2
                continue
            items.append("".join(cur).strip())
            cur = []
            ended_at_sep = True
        else:
            cur.append(c)
        i += 1
    if text and not ended_at_sep:
        items.append("".join(cur).strip())
    return items


@dataclass
class AuthMech:
    """One server-side authenticator instance."""

    name: str               # instance name (A=name in the log)
    driver: str
    public_name: str
    instance: Any

    def opt(self, name: str) -> Any:
        try:
            return self.instance.get(name)
        except (KeyError, AttributeError):
            return None

    def exchange(self, initial: str, expand: Callable[[str, list[str]], str]
                 ) -> Exchange:
        if self.driver == "plaintext":
            return plaintext_exchange(self, initial, expand)
        if self.driver == "dovecot":
            return dovecot_exchange(self, initial, expand)
        return cram_md5_exchange(self, initial, expand)


#: Authenticator drivers whose server side is implemented here.
SERVER_DRIVERS = ("cram_md5", "dovecot", "plaintext")


def server_authenticators(config: Any) -> list[AuthMech]:
    out = []
    for inst in getattr(config, "authenticators", None) or []:
        try:
            driver = inst.driver
        except AttributeError:
            continue
        if driver not in SERVER_DRIVERS:
            continue
        m = AuthMech(inst.name, driver, "", inst)
        m.public_name = (m.opt("public_name") or inst.name).upper()
        if driver == "plaintext" and m.opt("server_condition") is None:
            continue
        if driver == "cram_md5" and m.opt("server_secret") is None:
            continue
        if driver == "dovecot" and m.opt("server_socket") is None:
            continue
        out.append(m)
    return out


def check_server_condition(mech: AuthMech, items: list[str],
                           expand: Callable[[str, list[str]], str]) -> str:
    """Exim's auth_check_serv_cond()."""
    cond = mech.opt("server_condition")
    if cond is None:
        return FAIL
    from eximpy.errors import ExpansionForcedFail
    try:
        r = expand(cond, items)
    except ExpansionForcedFail:
        return FAIL
    except Exception:
        return DEFER
    if r == "" or r == "0" or r.lower() in ("no", "false"):
        return FAIL
    if r.lower() in ("1", "yes", "true"):
        return OK
    return DEFER


def plaintext_exchange(mech: AuthMech, initial: str,
                       expand: Callable[[str, list[str]], str]) -> Exchange:
    items: list[str] = []
    try:
        prompts = expand(mech.opt("server_prompts") or "", items)
    except Exception:
        return DEFER
    if initial:
        if initial == "=":
            items.append("")
        else:
            clear = b64decode(initial)
            if clear is None:
                return BAD64
            _split_items(clear, items)
    number = 1
    for prompt in _split_prompts(prompts):
        if len(items) >= EXPAND_MAXN:
            break
        if number <= len(items):
            number += 1
            continue
        number += 1
        line = yield prompt.encode("utf-8", "surrogateescape")
        if line.strip() == "*":
            return CANCELLED
        clear = b64decode(line)
        if clear is None:
            return BAD64
        _split_items(clear, items)
    mech.last_items = items                       # type: ignore[attr-defined]
    return check_server_condition(mech, items, expand)


def cram_md5_exchange(mech: AuthMech, initial: str,
                      expand: Callable[[str, list[str]], str]) -> Exchange:
    if initial:
        return UNEXPECTED
    try:
        host = expand("$primary_hostname", [])
    except Exception:
        host = "localhost"
    challenge = f"<{os.getpid()}.{int(time.time())}@{host}>".encode()
    line = yield challenge
    if line.strip() == "*":
        return CANCELLED
    clear = b64decode(line)
    if clear is None:
        return BAD64
    text = clear.decode("utf-8", "surrogateescape")
    user, _, digest = text.rpartition(" ")
    if not user:
        return FAIL
    items = [user, digest]
    mech.last_items = items                       # type: ignore[attr-defined]
    from eximpy.errors import ExpansionForcedFail
    try:
        secret = expand(mech.opt("server_secret"), items)
    except ExpansionForcedFail:
        return FAIL
    except Exception:
        return DEFER
    want = hmac.new(secret.encode("utf-8", "surrogateescape"), challenge,
                    hashlib.md5).hexdigest()
    return OK if hmac.compare_digest(want, digest.lower()) else FAIL


def dovecot_exchange(mech: AuthMech, initial: str,
                     expand: Callable[[str, list[str]], str]) -> Exchange:
    """The dovecot driver: the exchange is relayed to Dovecot's auth
    socket (auth-client protocol 1.x): VERSION/CPID, then AUTH with the
    mechanism, CONT lines in both directions, OK or FAIL with user=."""
    import socket as _socket
    items: list[str] = []
    mech.last_items = items                       # type: ignore[attr-defined]
    try:
        path = expand(mech.opt("server_socket"), [])
        rip = expand("$sender_host_address", [])
        lip = expand("$interface_address", [])
        secured = expand("${if def:tls_in_cipher{yes}{}}", [])
    except Exception:
        return DEFER
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
        f = sock.makefile("rwb", buffering=0)

        def send(line: str) -> None:
            sock.sendall(line.encode("utf-8", "surrogateescape") + b"\n")

        def read() -> list[str]:
            ln = f.readline()
            if not ln.endswith(b"\n"):
                raise OSError("dovecot auth socket closed")
            return ln[:-1].decode("utf-8", "surrogateescape").split("\t")
        send(f"VERSION\t1\t0\nCPID\t{os.getpid()}")
        mechs = set()
        while True:
            parts = read()
            if parts[0] == "VERSION" and (len(parts) < 2 or parts[1] != "1"):
                return DEFER
            if parts[0] == "MECH" and len(parts) > 1:
                mechs.add(parts[1].upper())
            if parts[0] == "DONE":
                break
        if mech.public_name.upper() not in mechs:
            return DEFER
        fields = [f"AUTH\t1\t{mech.public_name}\tservice=smtp"]
        if secured:
            fields.append("secured")
        if lip:
            fields.append(f"lip={lip}")
        if rip:
            fields.append(f"rip={rip}")
        if initial:
            fields.append(f"resp={initial}")
        send("\t".join(fields))
        while True:
            parts = read()
            kind = parts[0]
            params: dict[str, str] = {}
            for p in parts[2:]:
                k, _eq, v = p.partition("=")
                params[k] = v
            if kind == "CONT":
                data = parts[2] if len(parts) > 2 else ""
                clear = b64decode(data) if data else b""
                line = yield clear if clear is not None else b""
                if line.strip() == "*":
                    return CANCELLED
                send(f"CONT\t1\t{line.strip()}")
                continue
            if "user" in params:
                items.append(params["user"])
            if kind == "OK":
                return OK
            if kind == "FAIL":
                return DEFER if "temp" in params else FAIL
            return DEFER
    except (OSError, ValueError):
        return DEFER
    finally:
        sock.close()


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
