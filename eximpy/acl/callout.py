"""Callout verification: a short SMTP dialogue with the address's own hosts.

SUMMARY
    SmtpCallout(timeout_default=30)        the engine's ``callout`` object
    c.callout(address, is_recipient, opts, call, addr, rctx)
        -> (rc, log_message, user_message)          rc: OK FAIL DEFER

DESCRIPTION
    For an address that routed to a remote transport, connect to its hosts
    in order (host port, else the transport's ``port``, else 25), read the
    greeting, EHLO (falling back to HELO) with the transport's helo_data
    (default $primary_hostname), MAIL FROM:<> (or the sender with
    use_sender, or mailfrom=), RCPT TO:<address>, QUIT.  A 2xx to RCPT is
    OK; 5xx is FAIL with Exim's texts ("SMTP error from remote mail server
    after RCPT TO:<...>: 550 ..." for the log, "Callout verification
    failed:\\n550 ..." for the client); anything else is DEFER ("Could not
    complete recipient verify callout").  Results are kept in the "callout"
    hints database (positive for callout_positive_expire, default 24h,
    negative for callout_negative_expire, default 2h) unless no_cache.

    In -bh mode callouts are not made (Exim: "callout omitted by default
    when host testing") and count as success; -bhc makes them.

SECURITY
    Only hosts chosen by the router are contacted; the address is sent as
    it was given, after the SMTP session's own syntax checks.

SEE ALSO
    spec 44.50 "Callout verification", 44.51 "Callout caching"; Exim
    verify.c do_callout().
"""
from __future__ import annotations

import socket
import struct
from typing import Any

from eximpy.acl.runner import DEFER, FAIL, OK

_REC = struct.Struct("<qi")          # time stamp, result (1 ok, 2 fail)


def _seconds(value: Any, default: int) -> int:
    """A time option's value: parsed already (int) or text like "2h"."""
    from eximpy.config.options import readtime
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        t = readtime(value)
        if t is not None and t >= 0:
            return t
    return default


def _read_reply(f: Any, call: Any) -> tuple[int, str]:
    lines = []
    while True:
        line = f.readline(2048)
        if not line:
            raise OSError("connection closed")
        s = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(s)
        if len(s) < 4 or s[3] != "-":
            break
    call.trace_raw("  SMTP<< " + "\n         ".join(lines))
    try:
        code = int(lines[-1][:3])
    except ValueError:
        code = 0
    return code, "\n".join(lines)


def _send(sock: Any, text: str, call: Any) -> None:
    call.trace_raw(f"  SMTP>> {text}")
    sock.sendall(text.encode("utf-8", "surrogateescape") + b"\r\n")


class SmtpCallout:
    """The callout client (see module docstring)."""

    def __init__(self, timeout_default: float = 30.0) -> None:
        self.timeout_default = timeout_default
        # "Called/Sent/Response" of the last refused callout (Exim puts it
        # in the sender verify failure reply).
        self.last_detail: str | None = None

    # -- cache ----------------------------------------------------------
    def _db(self, call: Any) -> Any:
        try:
            from eximpy import hintsdb
            return hintsdb.open(call.engine.main("spool_directory",
                                                 "/var/spool/exim4"),
                                "callout")
        except Exception:
            return None

    def callout(self, address: str, is_recipient: bool, opts: dict,
                call: Any, addr: Any, rctx: Any
                ) -> tuple[str, str | None, str | None]:
        from eximpy.config.options import readtime
        sender = call.var("sender_address")
        mailfrom = ""
        if opts.get("use_sender"):
            mailfrom = sender
        elif "mailfrom" in opts:
            mailfrom = opts["mailfrom"]
        key = address + (f"/<{mailfrom}>" if mailfrom else "")
        db = None if opts.get("no_cache") else self._db(call)
        now = int(call.engine.clock())
        if db is not None:
            raw = db.read(key.encode("utf-8", "surrogateescape"))
            if raw is not None and len(raw) >= _REC.size:
                stamp, res = _REC.unpack(raw[:_REC.size])
                pos = _seconds(call.engine.main("callout_positive_expire"),
                               86400)
                neg = _seconds(call.engine.main("callout_negative_expire"),
                               7200)
                if res == 1 and now - stamp < pos:
                    call.trace("callout cache: address record is positive")
                    return OK, None, None
                if res == 2 and now - stamp < neg:
                    call.trace("callout cache: address record is negative")
                    m = "Previous (cached) callout verification failure"
                    return FAIL, m, m
            call.trace(f"callout cache: no address record found for {key}")
        timeout = self.timeout_default
        if opts.get("timeout"):
            try:
                timeout = float(readtime(opts["timeout"]))
            except Exception:
                pass
        connect_to = timeout
        if opts.get("connect"):
            try:
                connect_to = float(readtime(opts["connect"]))
            except Exception:
                pass
        tp = getattr(addr, "transport", None)

        def topt(name: str, default: Any) -> Any:
            try:
                v = tp.get(name) if tp is not None else None
            except Exception:
                v = None
            return default if v is None else v
        helo = call.engine.main("primary_hostname") or socket.gethostname()
        hd = topt("helo_data", None)
        if isinstance(hd, str):
            try:
                helo = call.expand(hd)
            except Exception:
                pass
        tport = topt("port", 25)
        try:
            tport = int(tport)
        except (TypeError, ValueError):
            tport = 25
        what = "recipient" if is_recipient else "sender"
        self.last_detail = None
        last_err = "no hosts"
        for h in getattr(addr, "host_list", None) or []:
            ip = getattr(h, "address", None)
            if not ip:
                continue
            port = h.port if getattr(h, "port", -1) not in (-1, None) \
                else tport
            hostdesc = f"{h.name} [{ip}]"
            try:
                call.trace_raw(f"Connecting to {hostdesc}:{port} ...")
                sock = socket.create_connection((ip, port), connect_to)
            except OSError as e:
                last_err = f"{hostdesc} : {e.strerror or e}"
                continue
            sock.settimeout(timeout)
            try:
                with sock, sock.makefile("rb") as f:
                    code, _t = _read_reply(f, call)
                    if code // 100 != 2:
                        last_err = (f"{hostdesc} : SMTP error from remote mail "
                                    f"server after initial connection: {_t}")
                        continue
                    _send(sock, f"EHLO {helo}", call)
                    code, _t = _read_reply(f, call)
                    if code // 100 != 2:
                        _send(sock, f"HELO {helo}", call)
                        code, _t = _read_reply(f, call)
                    cmd = f"MAIL FROM:<{mailfrom}>"
                    _send(sock, cmd, call)
                    code, text = _read_reply(f, call)
                    if code // 100 == 2:
                        cmd = f"RCPT TO:<{address}>"
                        _send(sock, cmd, call)
                        code, text = _read_reply(f, call)
                    _send(sock, "QUIT", call)
                    try:
                        _read_reply(f, call)
                    except OSError:
                        pass
            except OSError as e:
                last_err = f"{hostdesc} : {e.strerror or e}"
                continue
            if code // 100 == 2:
                if db is not None:
                    db.put(key.encode("utf-8", "surrogateescape"),
                           _REC.pack(now, 1))
                    call.trace("wrote positive callout cache address record "
                               f"for {key}")
                return OK, None, None
            err = (f"{hostdesc} : SMTP error from remote mail server after "
                   f"{cmd}: {text}")
            if code // 100 == 5:
                self.last_detail = (f"Called:   {ip}\nSent:     {cmd}\n"
                                    f"Response: {text}")
                if db is not None:
                    db.put(key.encode("utf-8", "surrogateescape"),
                           _REC.pack(now, 2))
                    call.trace("wrote negative callout cache address record "
                               f"for {key}")
                return FAIL, err, f"Callout verification failed:\n{text}"
            return DEFER, (f"Could not complete {what} verify callout: "
                           f"{err}"), f"Could not complete {what} verify callout"
        return DEFER, f"Could not complete {what} verify callout: {last_err}", \
            f"Could not complete {what} verify callout"
