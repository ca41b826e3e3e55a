"""The -H spool file: read, format and durably write it, as Exim 4.96 does.

SUMMARY
    parse(data: bytes, name: str, read_headers=True) -> SpoolMessage
    read(path, read_headers=True) -> SpoolMessage
    format(msg) -> bytes
    write(layout, msg) -> int          (header size, as spool_write_header)
    SpoolFormatError                   (corrupt / hostile file)

DESCRIPTION
    Line 1 is ``<id>-H``; then ``login uid gid``; ``<sender>``;
    ``time warning_count``; then ``-name [value]`` lines (``--name`` when the
    value is tainted, ``--(quoter)name`` when quoted for a lookup; unknown
    names are ignored, as Exim does, so newer spool files still load); the
    non-recipients tree (``XX`` or preorder ``YN address`` lines); the
    recipient count and recipients (plain, or Exim's ``#3``/``#1``/older
    extended forms, parsed right to left because addresses may contain
    spaces); a blank line; then headers, each ``NNNx text`` where NNN is the
    byte length of text (which may span lines) and x its type letter.

    The writer emits the fields in the order Exim 4.96's spool_out.c does,
    so a file written by eximpy for the same state is byte-identical to
    Exim's.  Writes go to ``hdr.<id>``, are fsynced, renamed to ``<id>-H``
    and the directory is fsynced.

SECURITY
    Every byte of a -H file is untrusted.  The parser enforces limits
    (recipient count <= 16384 as Exim, field and header sizes), refuses NUL
    bytes, short reads and lengths that run past the end, and raises
    SpoolFormatError with the file name and line number; it never raises
    anything else for bad input.

SEE ALSO
    spec "Format of spool files"; EXIM-INVENTORY 3.3.
"""
from __future__ import annotations

import errno
import os
import re
from typing import Any

from eximpy.errors import EximpyError
from eximpy.spool.layout import (SPOOL_MODE, SpoolLayout, fsync_dir,
                                 open_regular, spool_mode_kept)
from eximpy.spool.message import (
    Header, NonRecipients, Recipient, SpoolMessage, _Node, blen)
from eximpy.message.ids import ANY_ID_RE

MAX_RECIPIENTS = 16384
MAX_LINE = 1 << 20            # a -tls_peercert line can be long; not 1 MiB
MAX_ACL_VALUE = 1 << 24
MAX_TREE_DEPTH = 200


class SpoolFormatError(EximpyError):
    """A -H file that cannot be used.  ``str()`` names file and line."""

    def __init__(self, name: str, lineno: int, reason: str,
                 envelope: bool = True, partial: SpoolMessage | None = None,
                 header_bytes: int = 0) -> None:
        self.name = name
        self.lineno = lineno
        self.reason = reason
        self.envelope = envelope     # error before the headers (enverror)
        # For errors in the header section: the envelope as read, and the
        # header byte count Exim would have summed so far (for -bp sizes).
        self.partial = partial
        self.header_bytes = header_bytes
        super().__init__(f"spool file {name}: line {lineno}: {reason}")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.pos = 0
        self.lineno = 0
        self.name = name
        self.in_headers = False
        self.msg: SpoolMessage | None = None
        self.hsize = 0

    def fail(self, reason: str) -> SpoolFormatError:
        return SpoolFormatError(self.name, self.lineno, reason,
                                not self.in_headers,
                                self.msg if self.in_headers else None,
                                self.hsize)

    def line(self) -> bytes:
        """Next line without its newline; error at EOF or if unterminated."""
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.fail("last line is not terminated")
        if end - self.pos > MAX_LINE:
            raise self.fail("line too long")
        out = self.data[self.pos:end]
        self.pos = end + 1
        self.lineno += 1
        if b"\0" in out:
            raise self.fail("binary zero in file")
        return out

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail("length runs past the end of the file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        self.lineno += out.count(b"\n")
        return out


_ORIG_RE = re.compile(rb"(.*) (-?[0-9]+) (-?[0-9]+)\s*")
_TIME_RE = re.compile(rb"\s*(-?[0-9]+) +(-?[0-9]+)\s*")
_ACL_RE = re.compile(rb"acl([cm]) (\S+) ([0-9]+)")
_OLD_ACL_RE = re.compile(rb"acl ([0-9]+) ([0-9]+)")
# Exim reads "%d%c " : digits, one type character, then any whitespace.
_HDR_RE = re.compile(rb"([0-9]{1,9})([^\0])[ \t\n\r\f\v]*")
_HOSTPORT_RE = re.compile(r"\[(.*)\]:(\d+)|(.*)\.(\d+)")

# -name value fields that are plain strings, by spool name -> attribute.
_STRING_FIELDS = {
    "helo_name": "helo_name", "host_name": "host_name",
    "host_auth": "host_auth", "host_auth_pubname": "host_auth_pubname",
    "active_hostname": "active_hostname", "ident": "ident",
    "received_protocol": "received_protocol", "auth_id": "auth_id",
    "auth_sender": "auth_sender", "local_scan": "local_scan",
    "spam_bar": "spam_bar", "spam_score": "spam_score",
    "spam_score_int": "spam_score_int", "tls_cipher": "tls_cipher",
    "tls_peercert": "tls_peercert", "tls_peerdn": "tls_peerdn",
    "tls_sni": "tls_sni", "tls_ourcert": "tls_ourcert",
    "tls_ver": "tls_ver", "dsn_envid": "dsn_envid",
    "debuglog_name": "debuglog_name",
}
_FLAG_FIELDS = {
    "allow_unqualified_recipient": "allow_unqualified_recipient",
    "allow_unqualified_sender": "allow_unqualified_sender",
    "deliver_firsttime": "deliver_firsttime", "N": "dont_deliver",
    "host_lookup_deferred": "host_lookup_deferred",
    "host_lookup_failed": "host_lookup_failed", "local": "sender_local",
    "localerror": "local_error_message", "manual_thaw": "manual_thaw",
    "sender_set_untrusted": "sender_set_untrusted",
    "spool_file_wireformat": "spool_file_wireformat",
    "tls_certificate_verified": "tls_certificate_verified",
    "smtputf8": "smtputf8",
}
_INT_FIELDS = {"body_linecount", "body_zerocount", "max_received_linelength",
               "dsn_ret", "tls_ocsp"}


def _split_hostport(v: str) -> tuple[str, int]:
    m = _HOSTPORT_RE.fullmatch(v)
    if not m:
        return v, 0
    if m.group(1) is not None:
        return m.group(1), int(m.group(2))
    return m.group(3), int(m.group(4))


def _int(r: _Reader, v: str, what: str) -> int:
    try:
        return int(v.strip())
    except ValueError:
        raise r.fail(f"bad number for {what}: {v!r}") from None


def _read_tree(r: _Reader, first: bytes, depth: int = 0) -> _Node:
    if depth > MAX_TREE_DEPTH:
        raise r.fail("non-recipients tree too deep")
    if len(first) < 4 or first[0:1] not in b"YN" or first[1:2] not in b"YN" \
            or first[2:3] != b" ":
        raise r.fail("malformed non-recipients tree line")
    node = _Node(_s(first[3:]))
    if first[0:1] == b"Y":
        node.left = _read_tree(r, r.line(), depth + 1)
    if first[1:2] == b"Y":
        node.right = _read_tree(r, r.line(), depth + 1)
    return node


def _parse_recipient(r: _Reader, line: bytes) -> Recipient:
    """Parse a recipient line, right to left, accepting every form Exim
    has written: plain, Exim 3 ``a n,n,n``, early Exim 4 ``a pno`` and the
    ``data#bits`` form (bit 1: errors_to + pno, bit 2: orcpt + dsn flags).
    Lengths in the #-form are byte counts, so this works on bytes."""
    if not line:
        raise r.fail("empty recipient line")
    p = len(line) - 1
    while p >= 0 and line[p:p + 1].isdigit():
        p -= 1
    if p < 0 or p == len(line) - 1:
        return Recipient(_s(line))
    c = line[p:p + 1]
    if c == b",":
        q = p
        while q > 0 and (line[q - 1:q].isdigit() or line[q - 1:q] == b","):
            q -= 1
        if q > 0 and line[q - 1:q] == b" ":
            parts = line[q:].split(b",")
            pno = int(parts[1]) if len(parts) > 1 and parts[1] else -1
            return Recipient(_s(line[:q - 1]), pno=pno)
        return Recipient(_s(line))
    if c == b" ":
        return Recipient(_s(line[:p]), pno=int(line[p + 1:]))
    if c != b"#":
        return Recipient(_s(line))
    flags = int(line[p + 1:])
    end = p                      # line[:end] is the data before '#'

    def field(end: int, what: str) -> tuple[int, int, bytes | None]:
        q = end
        while q > 0 and (line[q - 1:q].isdigit() or line[q - 1:q] in b",-"):
            q -= 1
        nums = line[q:end].split(b",")
        if len(nums) != 2 or q < 1 or line[q - 1:q] != b" ":
            raise r.fail(f"malformed recipient {what} field")
        try:
            ln, num = int(nums[0]), int(nums[1])
        except ValueError:
            raise r.fail(f"malformed recipient {what} field") from None
        q -= 1                   # the space before "len,num"
        if ln < 0 or ln > q:
            raise r.fail(f"recipient {what} length out of range")
        value = line[q - ln:q] if ln > 0 else None
        q -= ln
        if q < 1 or line[q - 1:q] != b" ":
            raise r.fail("malformed recipient line")
        return q - 1, num, value

    pno, dsn = -1, 0
    errors_to = orcpt = None
    if flags & 0x01:
        end, pno, et = field(end, "errors_to")
        errors_to = _s(et) if et is not None else None
    if flags & 0x02:
        end, dsn, oc = field(end, "DSN")
        orcpt = _s(oc) if oc is not None else None
    if end < 1:
        raise r.fail("empty recipient address")
    return Recipient(_s(line[:end]), pno=pno, errors_to=errors_to,
                     orcpt=orcpt, dsn_flags=dsn)


def parse(data: bytes, name: str, read_headers: bool = True) -> SpoolMessage:
    """Parse the bytes of a -H file whose file name is ``name`` (``<id>-H``).

    Raises SpoolFormatError for anything Exim would refuse (and for a few
    hostile things it would not notice).
    """
    r = _Reader(data, name)
    first = r.line()
    base = os.path.basename(name)
    mid = _s(first[:-2]) if first.endswith(b"-H") else ""
    if not ANY_ID_RE.fullmatch(mid) or (base.endswith("-H") and
                                        _s(first) != base):
        raise r.fail("first line does not name the file")
    msg = SpoolMessage(id=mid, tls_resumption=None)

    m = _ORIG_RE.fullmatch(r.line())
    if not m:
        raise r.fail("malformed login/uid/gid line")
    msg.originator_login = _s(m.group(1))
    msg.originator_uid, msg.originator_gid = int(m.group(2)), int(m.group(3))

    line = r.line()
    if len(line) < 2 or line[:1] != b"<" or line[-1:] != b">":
        raise r.fail("malformed sender line")
    msg.sender = _s(line[1:-1])

    m = _TIME_RE.fullmatch(r.line())
    if not m:
        raise r.fail("malformed time/warning line")
    msg.received_time, msg.warning_count = int(m.group(1)), int(m.group(2))

    while True:
        line = r.line()
        if not line.startswith(b"-"):
            break
        tainted = line.startswith(b"--")
        var = line[2:] if tainted else line[1:]
        quoter = None
        if tainted and var.startswith(b"("):
            close = var.find(b")")
            if close < 0:
                raise r.fail("unterminated taint quoter")
            quoter = _s(var[1:close])
            var = var[close + 1:]
        am = _ACL_RE.match(var)
        if am and len(var) == am.end():
            count = int(am.group(3))
            if count > MAX_ACL_VALUE:
                raise r.fail("ACL variable too long")
            aval = r.take(count + 1)
            if b"\0" in aval:
                raise r.fail("binary zero in ACL variable")
            vname = _s(am.group(1) + am.group(2))
            msg.acl_vars[vname] = _s(aval[:count])
            if tainted:
                msg.tainted.add("acl_" + vname)
            continue
        om = _OLD_ACL_RE.fullmatch(var)
        if om:
            idx, count = int(om.group(1)), int(om.group(2))
            if idx >= 20 or count > 16384:
                raise r.fail("bad -acl line")
            aval = r.take(count + 1)
            vname = f"c{idx}" if idx < 10 else f"m{idx - 10}"
            msg.acl_vars[vname] = _s(aval[:count])
            continue
        text = _s(var)
        key, _, value = text.partition(" ")
        if tainted:
            msg.tainted.add(key)
        if quoter:
            msg.quoters[key] = quoter
        if key in ("tls_peerdn", "tls_sni"):
            setattr(msg, key, _unprinting(value))
        elif key in _STRING_FIELDS:
            setattr(msg, _STRING_FIELDS[key], value)
        elif key in _FLAG_FIELDS:
            setattr(msg, _FLAG_FIELDS[key], True)
        elif key in _INT_FIELDS:
            setattr(msg, key, _int(r, value, key))
        elif key == "host_address":
            msg.host_address, msg.host_port = _split_hostport(value)
        elif key == "interface_address":
            msg.interface_address, msg.interface_port = \
                _split_hostport(value)
        elif key == "received_time_usec":
            v = value.lstrip(".")
            msg.received_time_usec = _int(r, v, key) if v else 0
        elif key == "received_time_complete":
            sec, _, us = value.partition(".")
            msg.received_time_complete = (_int(r, sec, key),
                                          _int(r, us or "0", key))
        elif key == "frozen":
            msg.frozen = True
            msg.frozen_at = _int(r, value, key)
        elif key == "tls_resumption":
            msg.tls_resumption = value[:1] or None
        elif key == "utf8_downcvt":
            msg.utf8_downconvert = 1
        elif key == "utf8_optdowncvt":
            msg.utf8_downconvert = -1
        elif key == "debug_selector":
            try:
                msg.debug_selector = int(value, 0)
            except ValueError:
                raise r.fail("bad -debug_selector") from None
        else:
            msg.unknown_lines.append(_s(line))

    if line != b"XX":
        msg.non_recipients = NonRecipients.from_nodes(_read_tree(r, line))

    rc = r.line().strip()
    if not rc.isdigit() or int(rc) > MAX_RECIPIENTS:
        raise r.fail("bad recipient count")
    for _ in range(int(rc)):
        msg.recipients.append(_parse_recipient(r, r.line()))

    r.in_headers = True
    r.msg = msg
    if r.line() != b"":
        raise r.fail("no blank line before the headers")
    data_len = len(data)
    while r.pos < data_len:
        hm = _HDR_RE.match(data, r.pos)
        if not hm:
            raise r.fail("malformed header length/type")
        n = int(hm.group(1))
        htype = _s(hm.group(2))
        if htype != "*":
            r.hsize += n
        r.pos = hm.end()
        htext = r.take(n)
        if b"\0" in htext:
            raise r.fail("binary zero in header")
        if read_headers:
            msg.headers.append(Header(htype, _s(htext)))
    return msg


def read(path: str, read_headers: bool = True) -> SpoolMessage:
    """Read a -H file (OSError if it cannot be opened)."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return parse(data, os.path.basename(path), read_headers)


def _var(msg: SpoolMessage, name: str, value: str) -> str:
    prefix = "-"
    if name in msg.tainted:
        prefix = "--"
        if name in msg.quoters:
            prefix += "(" + msg.quoters[name] + ")"
    return f"{prefix}{name} {_oneline(value)}\n"


def _oneline(v: str) -> str:
    # A newline inside a value would break the line structure.
    return v.replace("\n", " ")


_ESC_OUT = {0x5C: b"\\\\", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
_ESC_IN = {ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("b"): 0x08,
           ord("f"): 0x0C, ord("v"): 0x0B, ord("e"): 0x1B, 0x5C: 0x5C}


def _printing(v: str) -> str:
    """Exim's string_printing(): every byte outside printable ASCII becomes
    an escape (``\\n`` ... or ``\\ooo``), a backslash is doubled."""
    out = bytearray()
    for c in _b(v):
        if c in _ESC_OUT:
            out += _ESC_OUT[c]
        elif 32 <= c < 127:
            out.append(c)
        else:
            out += b"\\%03o" % c
    return _s(bytes(out))


def _unprinting(v: str) -> str:
    """Exim's string_unprinting(), the inverse of _printing (used for
    -tls_peerdn and -tls_sni, which Exim writes escaped)."""
    raw = _b(v)
    if b"\\" not in raw:
        return v
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x5C or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        d = raw[i + 1]
        if d in _ESC_IN:
            out.append(_ESC_IN[d])
            i += 2
        elif 0x30 <= d <= 0x37:
            j = i + 1
            while j < n and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                j += 1
            out.append(int(raw[i + 1:j], 8) & 0xFF)
            i = j
        elif d == ord("x"):
            j = i + 2
            while j < n and j < i + 4 and chr(raw[j]) in \
                    "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                out.append(d)
                i += 2
            else:
                out.append(int(raw[i + 2:j], 16))
                i = j
        else:
            out.append(d)
            i += 2
    return _s(bytes(out))


def format(msg: SpoolMessage) -> bytes:  # noqa: A001 - Exim's word
    """The bytes of the -H file for ``msg``, in Exim 4.96's field order."""
    o: list[str] = [f"{msg.id}-H\n",
                    f"{msg.originator_login[:63]} {msg.originator_uid} "
                    f"{msg.originator_gid}\n",
                    f"<{_oneline(msg.sender)}>\n",
                    f"{msg.received_time} {msg.warning_count}\n",
                    f"-received_time_usec .{msg.received_time_usec:06d}\n"]
    if msg.received_time_complete is not None:
        s, u = msg.received_time_complete
        o.append(f"-received_time_complete {s}.{u:06d}\n")
    if msg.helo_name is not None:
        o.append(_var(msg, "helo_name", msg.helo_name))
    if msg.host_address is not None:
        o.append(_var(msg, "host_address",
                      f"[{msg.host_address}]:{msg.host_port}"))
        if msg.host_name is not None:
            o.append(_var(msg, "host_name", msg.host_name))
        if msg.host_auth is not None:
            o.append(_var(msg, "host_auth", msg.host_auth))
            if msg.host_auth_pubname is not None:
                o.append(_var(msg, "host_auth_pubname",
                              msg.host_auth_pubname))
    elif msg.host_auth is not None:    # local -bs with AUTH
        o.append(_var(msg, "host_auth", msg.host_auth))
        if msg.host_auth_pubname is not None:
            o.append(_var(msg, "host_auth_pubname", msg.host_auth_pubname))
    if msg.interface_address is not None:
        o.append(_var(msg, "interface_address",
                      f"[{msg.interface_address}]:{msg.interface_port}"))
    if msg.active_hostname is not None:
        o.append(_var(msg, "active_hostname", msg.active_hostname))
    if msg.ident is not None:
        o.append(_var(msg, "ident", msg.ident))
    if msg.received_protocol is not None:
        o.append(_var(msg, "received_protocol", msg.received_protocol))
    for kind in "cm":
        for name in sorted((n for n in msg.acl_vars if n[:1] == kind),
                           key=lambda n: _b(n[1:])):
            value = msg.acl_vars[name]
            dash = "--" if "acl_" + name in msg.tainted else "-"
            o.append(f"{dash}acl{kind} {name[1:]} {blen(value)}\n{value}\n")
    if msg.debuglog_name is not None:
        if msg.debug_selector is not None:
            o.append(f"-debug_selector 0x{msg.debug_selector:x}\n")
        o.append(_var(msg, "debuglog_name", msg.debuglog_name))
    if msg.spool_file_wireformat:
        o.append("-spool_file_wireformat\n")
    else:
        o.append(f"-body_linecount {msg.body_linecount}\n")
    o.append(f"-max_received_linelength {msg.max_received_linelength}\n")
    if msg.body_zerocount > 0:
        o.append(f"-body_zerocount {msg.body_zerocount}\n")
    if msg.auth_id is not None:
        o.append(_var(msg, "auth_id", msg.auth_id))
    if msg.auth_sender is not None:
        o.append(_var(msg, "auth_sender", msg.auth_sender))
    for flag, attr in (("allow_unqualified_recipient",
                        "allow_unqualified_recipient"),
                       ("allow_unqualified_sender",
                        "allow_unqualified_sender"),
                       ("deliver_firsttime", "deliver_firsttime")):
        if getattr(msg, attr):
            o.append(f"-{flag}\n")
    if msg.frozen:
        o.append(f"-frozen {msg.frozen_at}\n")
    for flag, attr in (("N", "dont_deliver"),
                       ("host_lookup_deferred", "host_lookup_deferred"),
                       ("host_lookup_failed", "host_lookup_failed"),
                       ("local", "sender_local"),
                       ("localerror", "local_error_message")):
        if getattr(msg, attr):
            o.append(f"-{flag}\n")
    for name in ("local_scan", "spam_bar", "spam_score", "spam_score_int"):
        v = getattr(msg, name)
        if v is not None:
            o.append(_var(msg, name, v))
    if msg.manual_thaw:
        o.append("-manual_thaw\n")
    if msg.sender_set_untrusted:
        o.append("-sender_set_untrusted\n")
    if msg.tls_certificate_verified:
        o.append("-tls_certificate_verified\n")
    if msg.tls_cipher is not None:
        o.append(_var(msg, "tls_cipher", msg.tls_cipher))
    if msg.tls_peercert is not None:
        o.append(_var(msg, "tls_peercert", msg.tls_peercert))
    if msg.tls_peerdn is not None:
        o.append(_var(msg, "tls_peerdn", _printing(msg.tls_peerdn)))
    if msg.tls_sni is not None:
        o.append(_var(msg, "tls_sni", _printing(msg.tls_sni)))
    if msg.tls_ourcert is not None:
        o.append(_var(msg, "tls_ourcert", msg.tls_ourcert))
    if msg.tls_ocsp is not None:
        o.append(f"-tls_ocsp {msg.tls_ocsp}\n")
    if msg.tls_resumption is not None:
        o.append(f"-tls_resumption {msg.tls_resumption}\n")
    if msg.tls_ver is not None:
        o.append(_var(msg, "tls_ver", msg.tls_ver))
    if msg.smtputf8:
        o.append("-smtputf8\n")
        if msg.utf8_downconvert:
            o.append("-utf8_optdowncvt\n" if msg.utf8_downconvert < 0
                     else "-utf8_downcvt\n")
    if msg.dsn_envid is not None:
        o.append(_var(msg, "dsn_envid", msg.dsn_envid))
    if msg.dsn_ret:
        o.append(f"-dsn_ret {msg.dsn_ret}\n")
    o.extend(line + "\n" for line in msg.non_recipients.lines())
    o.append(f"{len(msg.recipients)}\n")
    for rc in msg.recipients:
        if rc.simple:
            o.append(_oneline(rc.address) + "\n")
        else:
            et = _oneline(rc.errors_to or "")
            oc = _oneline(rc.orcpt or "")
            o.append(f"{_oneline(rc.address)} {oc} {blen(oc)},{rc.dsn_flags}"
                     f" {et} {blen(et)},{rc.pno}#3\n")
    o.append("\n")
    for h in msg.headers:
        o.append(f"{h.slen:03d}{h.type} {h.text}")
    return _b("".join(o))


def write(layout: SpoolLayout, msg: SpoolMessage,
          split: bool | None = None, uid: int | None = None,
          gid: int | None = None, sync_first: int | None = None,
          dir_fd: int | None = None) -> int:
    """Durably write ``msg``'s -H file; returns the header size.

    hdr.<id> is created exclusively (one unlink-and-retry if a crash left
    it behind, as Exim), written, fsynced, renamed over ``<id>-H`` and the
    directory fsynced.  ``split`` overrides the layout's split choice (use
    the layout the message already lives in).  ``uid``/``gid`` chown the
    file (the exim user) when running as root.

    ``sync_first`` is a descriptor (the new -D file, written but not yet
    synced) that is fsynced after hdr.<id> is written and before hdr.<id>
    itself: both are on disk before the rename gives the -H its name, as
    in Exim, but the two syncs share one file-system journal commit.
    ``dir_fd`` is an open descriptor of the input directory to fsync (a
    receiving session keeps one); without it the directory is opened.
    """
    data = format(msg)
    tname = layout.temp_header(msg.id, split)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(tname, flags, SPOOL_MODE)
    except FileExistsError:
        os.unlink(tname)
        fd = os.open(tname, flags, SPOOL_MODE)
    try:
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid,
                      -1 if gid is None else gid)
        else:
            layout.chown(fd)
        if not spool_mode_kept():
            os.fchmod(fd, SPOOL_MODE)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if sync_first is not None:
            # Start the -H's write-back first, so that its blocks are
            # allocated in the journal transaction the -D's fsync commits;
            # the -H's own fsync then rarely waits for a second commit.
            start_writeback(fd)
            os.fsync(sync_first)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tname)
        except OSError:
            pass
        raise
    os.close(fd)
    fname = layout.file(msg.id, "-H", split)
    try:
        os.rename(tname, fname)
    except OSError:
        try:
            os.unlink(tname)
        except OSError:
            pass
        raise
    if dir_fd is not None:
        try:
            os.fsync(dir_fd)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    else:
        fsync_dir(os.path.dirname(fname))
    return msg.header_size


class _Writeback:
    """sync_file_range(2) through ctypes, looked up once per process
    (None where the C library has no such call)."""

    looked_up = False
    func: Any = None


def start_writeback(fd: int) -> None:
    """Start writing ``fd``'s dirty pages (SYNC_FILE_RANGE_WRITE) without
    waiting; a no-op where sync_file_range(2) does not exist.  Durability
    still comes from fsync()."""
    f = writeback_function()
    if f is not None:
        f(fd, 0, 0, 2)                      # SYNC_FILE_RANGE_WRITE


def writeback_function() -> Any:
    """The sync_file_range function (looked up once; a receiver calls this
    before forking sessions)."""
    if not _Writeback.looked_up:
        _Writeback.looked_up = True
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            f = libc.sync_file_range
            f.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong,
                          ctypes.c_uint]
            f.restype = ctypes.c_int
            _Writeback.func = f
        except (OSError, AttributeError):
            _Writeback.func = None
    return _Writeback.func


def remove_files(layout: SpoolLayout, mid: str,
                 suffixes: tuple[str, ...] = ("-D", "-H", "-J")) -> list[str]:
    """Unlink a message's spool files (whichever layout holds them) and its
    msglog; returns the paths removed."""
    gone = []
    for split in (layout.split, not layout.split):
        for suf in suffixes:
            p = layout.file(mid, suf, split)
            try:
                os.unlink(p)
                gone.append(p)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
        p = layout.msglog_file(mid, split)
        try:
            os.unlink(p)
            gone.append(p)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return gone
