"""Writing a message for a local transport (Exim's transport_write_message).

SUMMARY
    tctx = TransportContext(config, msg, body, rctx)
    data = message_bytes(tp_instance, addr, tctx, prefix=..., suffix=...,
                         check_string=..., escape_string=...)
    TransportResult(status, message, errno, more_errno)

DESCRIPTION
    message_bytes() builds what a local transport writes: message_prefix,
    then Return-path: (return_path_add), Delivery-date: (delivery_date_add),
    Envelope-to: (envelope_to_add), the message's headers without those
    removed by the router's and transport's headers_remove, the router's
    and the transport's headers_add, a blank line and the body, with
    check_string/escape_string applied at line starts, body_only /
    headers_only, and message_suffix.  Lines end in LF (CRLF with
    use_crlf).

    Status values are the strings of eximpy.routing (OK, DEFER, FAIL).

    A transport may ask for main-log lines to be written by the delivering
    process (which, unlike a delivery child running as the mailbox owner,
    can write the logs): add_log_line() records them ahead of the output in
    the returned_output field, so that they travel in the delivery child's
    report unchanged; the deliverer calls split_output() to get the output
    proper and the lines (pipe log_output, permit_coredump's setrlimit
    failure); a line starting with SWITCH_MARK names the transport that
    did the delivery instead (appendfile file_format).

SEE ALSO
    spec chapter 24 "Generic options for transports"; Exim transport.c.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from eximpy.errors import ExpansionError, ExpansionForcedFail


@dataclass
class TransportResult:
    status: str
    message: str | None = None
    errno: int = 0
    more_errno: int = 0
    user_message: str | None = None
    special_action: int = 0
    returned_output: str | None = None     # pipe output for the bounce

    def add_log_line(self, line: str) -> None:
        """Ask the deliverer to write ``line`` to the main log."""
        out, lines = split_output(self.returned_output)
        lines.append(line.replace("\n", " "))
        self.returned_output = _LOGMARK + "\n".join(lines) + _LOGMARK + \
            (out if out is not None else _NOOUT)


    def switch_transport(self, name: str) -> None:
        """Tell the deliverer that another transport did the delivery
        (appendfile's file_format): the log lines name that one."""
        self.add_log_line(SWITCH_MARK + name)


    def mark_panic(self) -> "TransportResult":
        """Exim's PANIC return (a configuration problem): the deferral is
        logged to the panic log as well."""
        self.add_log_line(PANIC_MARK)
        return self


SWITCH_MARK = "\x01transport="
PANIC_MARK = "\x01panic"
_LOGMARK = "\x00eximpy-log\x00"
_NOOUT = "\x00none\x00"


def split_output(packed: str | None) -> tuple[str | None, list[str]]:
    """(output, main-log lines) from a TransportResult.returned_output."""
    if packed is None or not packed.startswith(_LOGMARK):
        return packed, []
    rest = packed[len(_LOGMARK):]
    k = rest.find(_LOGMARK)
    if k < 0:
        return packed, []
    lines = rest[:k].split("\n") if rest[:k] else []
    out = rest[k + len(_LOGMARK):]
    return (None if out == _NOOUT else out), lines


class TransportContext:
    """What a transport needs: config, the message, its body, expansion."""

    def __init__(self, config: Any, msg: Any, body: bytes, rctx: Any) -> None:
        self.config = config
        self.msg = msg
        self.body = body
        self.rctx = rctx

    def expand(self, text: str, addr: Any, **extra: Any) -> str:
        batch = getattr(addr, "batch", None)
        if batch and len(batch) > 1:
            # Exim's deliver_set_expansions() for several addresses: no
            # local part (nor its affixes, the original or parent ones);
            # the domain and $self_hostname only when all have the same.
            for name in ("local_part", "local_part_prefix", "local_part_suffix",
                         "original_local_part", "original_domain",
                         "parent_local_part", "parent_domain"):
                extra.setdefault(name, "")
            if any(a.domain != addr.domain for a in batch):
                extra.setdefault("domain", "")
            if any(a.self_hostname != addr.self_hostname for a in batch):
                extra.setdefault("self_hostname", "")
        return self.rctx.expand(text, addr, **extra)


def _opt(inst: Any, name: str) -> Any:
    try:
        return inst.get(name)
    except KeyError:
        return None


class WriteError(str):
    """Why message_bytes() could not build the message (the text is the
    old plain message): ``kind`` "filter" (the transport filter exited
    with ``rc``; 127 when it could not be run), "filter_timeout", or
    "headers" (headers_add/headers_remove did not expand; ``detail`` is
    the expansion error)."""
    kind: str = ""
    rc: int = 0
    detail: str = ""


def _werr(text: str, kind: str, rc: int = 0, detail: str = "") -> WriteError:
    e = WriteError(text)
    e.kind, e.rc, e.detail = kind, rc, detail
    return e


def rfc822_date(now: float | None = None) -> str:
    """Exim's tod_full: "Wed, 25 Nov 2026 13:00:00 +0000"."""
    t = time.localtime(now if now is not None else time.time())
    off = t.tm_gmtoff // 60
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", t) + f"{sign}{off // 60:02d}{off % 60:02d}"


def _remove_matches(name: str, patterns: list[str]) -> bool:
    low = name.lower()
    for p in patterns:
        p = p.strip()
        if not p:
            continue
        if p.endswith("*"):
            if low.startswith(p[:-1].lower()):
                return True
        elif low == p.lower().rstrip(":"):
            return True
    return False


def header_lines(inst: Any, addr: Any, tctx: TransportContext) -> tuple[list[str], str | None]:
    """The message's header lines as the transport writes them, or an error."""
    from eximpy.expand.lists import iter_list
    msg = tctx.msg
    remove: list[str] = []
    if addr.prop.remove_headers:
        remove += list(iter_list(addr.prop.remove_headers))
    trem = _opt(inst, "headers_remove")
    if trem:
        for item in iter_list(trem):
            try:
                s = tctx.expand(item, addr)
            except ExpansionForcedFail:
                continue
            except ExpansionError as e:
                return [], _werr(f"failed to expand headers_remove: {e}",
                                 "headers", detail=str(e))
            remove += list(iter_list(s))
    out: list[str] = []
    hrw = _opt(inst, "headers_rewrite")
    rules = None
    if hrw:
        from eximpy.rewrite import parse_rules
        rules = parse_rules(hrw)
    for h in msg.headers:
        if h.type == "*":
            continue
        name = h.text.split(":", 1)[0]
        if remove and _remove_matches(name, remove):
            continue
        text = h.text
        if rules:
            from eximpy.expand import ExpandContext
            from eximpy.rewrite import rewrite_header
            text = rewrite_header(
                text, rules,
                lambda v: ExpandContext(config=tctx.config, variables=v),
                tctx.rctx.qualify_recipient())
        out.append(text)
    for text in addr.prop.extra_headers:
        out.append(text if text.endswith("\n") else text + "\n")
    tadd = _opt(inst, "headers_add")
    if tadd:
        for item in iter_list(tadd, "\n"):
            try:
                s = tctx.expand(item, addr)
            except ExpansionForcedFail:
                continue
            except ExpansionError as e:
                return [], _werr(f"failed to expand headers_add: {e}",
                                 "headers", detail=str(e))
            if s:
                out.append(s if s.endswith("\n") else s + "\n")
    return out, None


def envelope_to(addr: Any) -> str:
    """The Envelope-to: value: every address of the batch (the original
    address of a pipe or file), each once, joined as Exim's write_env_to()
    joins them."""
    out: list[str] = []
    for a in getattr(addr, "batch", None) or [addr]:
        top = a
        while top.parent is not None:
            top = top.parent
        if top.address not in out:
            out.append(top.address)
    return ",\n ".join(out)


def message_bytes(inst: Any, addr: Any, tctx: TransportContext, *,
                  prefix: str | None, suffix: str | None,
                  check_string: str | None, escape_string: str | None,
                  return_path: str) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, error message)."""
    parts: list[str] = []
    body_only = bool(_opt(inst, "body_only"))
    headers_only = bool(_opt(inst, "headers_only"))
    if not body_only:
        if _opt(inst, "return_path_add"):
            parts.append(f"Return-path: <{return_path}>\n")
        if _opt(inst, "envelope_to_add"):
            parts.append(f"Envelope-to: {envelope_to(addr)}\n")
        if _opt(inst, "delivery_date_add"):
            parts.append(f"Delivery-date: {rfc822_date()}\n")
        lines, err = header_lines(inst, addr, tctx)
        if err:
            return None, err
        parts.extend(lines)
        parts.append("\n")
    head = "".join(parts).encode("utf-8", "surrogateescape")
    body = b"" if headers_only else tctx.body
    data = head + body
    tf = _opt(inst, "transport_filter")
    if tf:
        filtered, err = _filter(inst, addr, tctx, tf, data)
        if filtered is None:
            return None, err
        data = filtered
    if check_string and escape_string is not None:
        cs = check_string.encode("utf-8", "surrogateescape")
        es = escape_string.encode("utf-8", "surrogateescape")
        data = re.sub(rb"(?m)^" + re.escape(cs), es.replace(b"\\", b"\\\\"), data)
    if _opt(inst, "use_crlf"):
        data = data.replace(b"\n", b"\r\n")
    pre = (prefix or "").encode("utf-8", "surrogateescape")
    suf = (suffix or "").encode("utf-8", "surrogateescape")
    return pre + data + suf, None


def _filter(inst: Any, addr: Any, tctx: TransportContext, cmd: str,
            data: bytes) -> tuple[bytes | None, str | None]:
    """Run the message through transport_filter (argument vector, no shell)."""
    import subprocess
    from eximpy.transports._command import CommandError, set_up_command
    try:
        argv = set_up_command(cmd, lambda a: tctx.expand(a, addr),
                              f"{inst.name} transport")
    except CommandError as e:
        return None, str(e)
    timeout = _opt(inst, "transport_filter_timeout") or None
    try:
        p = subprocess.run(argv, input=data, capture_output=True,
                           timeout=timeout, env={"PATH": "/bin:/usr/bin"})
    except subprocess.TimeoutExpired:
        return None, _werr("transport filter process timed out",
                           "filter_timeout")
    except OSError:
        # the filter's child exits EX_EXECFAILED when execve() fails
        return None, _werr("transport filter process failed (127)", "filter",
                           127)
    if p.returncode != 0:
        rc = p.returncode if p.returncode > 0 else 128 - p.returncode
        return None, _werr(f"transport filter process failed ({rc})",
                           "filter", rc)
    return p.stdout, None
