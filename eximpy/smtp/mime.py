"""The MIME ACL's walk over a message's parts (Exim's mime.c).

SUMMARY
    is_mime(headers) -> bool
    mime_parts(header_lines, body, content=None)
        -> iterator of dict of $mime_* variables (one per part)
    PART_KEY                  key of the part's MimePart in that dict
    MimePart                  where the part's body starts in the stream
    decode_part(part, option, log) -> (rc, filename | None, size)
    rfc2047_decode(raw) -> bytes

DESCRIPTION
    acl_smtp_mime runs (before the DATA ACL) only for messages with a
    Content-Type: header.  Exim reads the MBOX copy of the message
    (eximpy.acl.content) as a stream: the top-level header block (with the
    "From " line and X-Envelope- lines in front) is part 0; for a multipart
    entity with a boundary it goes on to each part after a "--boundary"
    line (recursing into nested multiparts) and stops at "--boundary--" or
    the end.  For every part the $mime_* variables are set and the ACL
    runs; a result other than OK stops the walk (the caller stops
    consuming the iterator).

    Header lines are read as Exim's mime_get_header() reads them: folded
    lines joined, CRs and control characters dropped, white space and
    (comments) outside parameter values removed, a ";" at the end.  The
    value of Content-Type, Content-Disposition, Content-Transfer-Encoding,
    Content-ID and Content-Description up to the first ";" is lower-cased;
    the parameters name=/filename= (-> $mime_filename), charset=,
    boundary= are RFC 2047-decoded (no charset conversion);
    "filename*=" in Content-Disposition is RFC 2231 (charset'lang'%XX,
    continuations appended), turned into an RFC 2047 word and decoded.

    After the ACL accepts a message/rfc822 part, the part is decoded into
    <scan dir>/__rfc822_NNNNN; when the whole walk has accepted, each such
    file is walked in turn with $mime_is_rfc822 = 1 and $mime_part_count
    restarting at 0, then unlinked ($mime_part_count afterwards is the
    count of the outer message, as in Exim's receive.c).

    decode_part() is the "decode" condition's work (mime_decode()):
    base64, quoted-printable or as-is from the part's body up to the
    boundary of the enclosing multipart, into a file named after the
    option (default: <scan dir>/<message id>-NNNNN, the first free
    number); $mime_content_size is the decoded size rounded up to KiB.
    Broken encodings set $mime_anomaly_level/_text.

SECURITY
    Everything here is client data: values are returned as strings for the
    ACL to use as tainted.  Files are written only in the scan directory or
    where the configuration's decode option names, mode 0640.

SEE ALSO
    spec 45.4 "Scanning MIME parts"; Exim mime.c, receive.c
    run_mime_acl(); eximpy.acl.mime_decode (the decode/mime_regex
    conditions).
"""
from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

PART_KEY = "mime part"           # has a space: not a variable name
MAX_HEADER = 8192                # MIME_MAX_HEADER_SIZE
MAX_LINE = 32768                 # MIME_MAX_LINE_LENGTH

_HEADERS = ((b"content-type:", "mime_content_type"),
            (b"content-disposition:", "mime_content_disposition"),
            (b"content-transfer-encoding:", "mime_content_transfer_encoding"),
            (b"content-id:", "mime_content_id"),
            (b"content-description:", "mime_content_description"))
_PARAMS = ((b"name=", "mime_filename"), (b"filename=", "mime_filename"),
           (b"charset=", "mime_charset"), (b"boundary=", "mime_boundary"))
_VARS = ("mime_anomaly_text", "mime_boundary",
         "mime_charset", "mime_content_description",
         "mime_content_disposition", "mime_content_id",
         "mime_content_transfer_encoding", "mime_content_type",
         "mime_decoded_filename", "mime_filename")

ONESHOT, ALL, ATTACHMENT = 1, 2, 3        # Exim's MBC_* contexts
_ANOMALY = {"qp": ("1", "Broken Quoted-Printable encoding detected"),
            "b64": ("2", "Broken BASE64 encoding detected")}


def is_mime(headers: list[tuple[str, str, str]]) -> bool:
    """True when a live Content-Type: header is there."""
    return any(t != "*" and n.strip().lower() == "content-type"
               for n, _v, t in headers)


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class Stream:
    """A byte stream with fgets()/getc() and a position (a FILE*)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def getc(self) -> int:
        if self.pos >= len(self.data):
            return -1
        self.pos += 1
        return self.data[self.pos - 1]

    def fgets(self, size: int) -> bytes | None:
        """Up to size-1 bytes, ending after a newline (C's fgets)."""
        d = self.data
        if self.pos >= len(d):
            return None
        end = d.find(b"\n", self.pos, self.pos + size - 1)
        end = (self.pos + size - 1) if end < 0 else end + 1
        line = d[self.pos:end]
        self.pos += len(line)
        return line


@dataclass
class MimePart:
    """The part the MIME ACL is looking at: where its body starts in the
    stream and the boundary of the multipart around it."""
    stream: Stream
    body_pos: int
    boundary: bytes | None
    encoding: str | None
    content: Any = None
    decoded_filename: str | None = None
    anomaly: tuple[str, str] | None = None
    vars: dict[str, Any] = field(default_factory=dict)


def _get_header(f: Stream) -> bytes | None:
    """Exim's mime_get_header(): one header, or None at the blank line or
    the end."""
    out = bytearray()
    c = -1
    done = False
    value_mode = 0
    brackets = 0
    while not done:
        c = f.getc()
        if c < 0:
            break
        if c == 13:
            continue
        if c == 10:
            if out:
                c = f.getc()
                if c < 0:
                    break
                if c in (9, 32):
                    continue
                f.pos -= 1
            c = 59                              # ';'
            done = True
        if c < 32:
            continue
        if value_mode:
            if c in (9, 32) and value_mode == 1:
                continue
            value_mode = 2
            if c == 34:                         # '"'
                value_mode = 3
            if value_mode == 2 and c == 59:
                value_mode = 0
        else:
            if c in (9, 32):
                continue
            if c == 92:                         # '\\'
                c = f.getc()
                if c < 0:
                    break
            elif c == 40:                       # '('
                brackets += 1
                continue
            elif c == 41 and brackets:
                brackets -= 1
                continue
            elif c == 61 and not brackets:      # '='
                value_mode = 1
            if brackets > 0:
                continue
        out.append(c)
        if len(out) > MAX_HEADER - 1:
            done = True
    if out and out[-1] != 59:
        out[-1] = 59
    if c < 0 or len(out) == 1:
        return None
    return bytes(out)


def _param_val(p: bytes, i: int) -> tuple[bytes, int]:
    """Exim's mime_param_val(): the value at p[i:] up to an unquoted ";"
    (quotes removed), and the index of that ";" (or the end)."""
    val = bytearray()
    n = len(p)
    while i < n and p[i] != 59:
        if p[i] == 34:
            i += 1
            while i < n and p[i] != 34:
                val.append(p[i])
                i += 1
            if i < n:
                i += 1
        else:
            val.append(p[i])
            i += 1
    return bytes(val), i


def _next_semicolon(p: bytes, i: int) -> int:
    n = len(p)
    while i < n and p[i] != 59:
        if p[i] == 34:
            i += 1
            while i < n and p[i] != 34:
                i += 1
            if i < n:
                i += 1
        else:
            i += 1
    return i


_EW = re.compile(rb"=\?([^?]*)\?([qQbB])\?([^?]+)\?=")


def rfc2047_decode(raw: bytes, check_length: bool = True) -> bytes:
    """Exim's rfc2047_decode() without charset conversion: encoded words
    decoded, white space between adjacent words dropped, zero bytes
    turned into spaces."""
    out = bytearray()
    pos = 0
    prev_word = False
    for m in _EW.finditer(raw):
        if check_length and len(m.group(0)) > 75:
            continue
        between = raw[pos:m.start()]
        if not (prev_word and between.strip(b" \t\r\n") == b""):
            out += between
        enc, text = m.group(2).lower(), m.group(3)
        if enc == b"q":
            dec = bytearray()
            j = 0
            while j < len(text):
                ch = text[j]
                if ch == 95:                    # '_'
                    dec.append(32)
                elif ch == 61 and j + 2 < len(text) + 0 and \
                        re.fullmatch(rb"[0-9A-Fa-f]{2}", text[j + 1:j + 3]):
                    dec.append(int(text[j + 1:j + 3], 16))
                    j += 2
                else:
                    dec.append(ch)
                j += 1
        else:
            try:
                pad = b"=" * (-len(text) % 4)
                dec = bytearray(base64.b64decode(text + pad))
            except (binascii.Error, ValueError):
                dec = bytearray()
        out += dec.replace(b"\0", b" ")
        pos = m.end()
        prev_word = True
    out += raw[pos:]
    return bytes(out)


def _rfc2231_to_2047(fname: bytes, charset: bytes | None) -> bytes:
    out = bytearray(b"=?")
    if charset:
        out += charset
    out += b"?Q?"
    i = 0
    hexd = b"0123456789abcdefABCDEF"
    while i < len(fname):
        c = fname[i]
        if c == 37 and i + 2 < len(fname) + 0 and fname[i + 1] in hexd \
                and fname[i + 2] in hexd:
            out += b"=" + fname[i + 1:i + 3]
            i += 3
        else:
            out.append(c)
            i += 1
    out += b"?="
    return bytes(out)


def _part_headers(f: Stream) -> dict[str, bytes]:
    """Parse one part's header block (Exim's header loop in
    mime_acl_check())."""
    v: dict[str, bytes] = {}
    while True:
        h = _get_header(f)
        if h is None:
            break
        low = h.lower()
        for name, var in _HEADERS:
            if not low.startswith(name):
                continue
            i = len(name)
            q = h.find(b";", i)
            if q < 0:
                q = len(h)
            v[var] = h[i:q].lower()
            p = h[q + 1:] if q < len(h) else b""
            is_disp = var == "mime_content_disposition"
            fname: bytes | None = None
            fname_2231: bytes | None = None
            fcharset: bytes | None = None
            failed = False
            i = 0
            while i < len(p):
                if is_disp and p[i:i + 9].lower() == b"filename*":
                    i += 9
                    while i < len(p) and p[i] != 61:
                        i += 1
                    if i < len(p):
                        i += 1
                    val, i = _param_val(p, i)
                    if val:
                        fname_2231 = (fname_2231 or b"") + val
                        if not failed:
                            if fcharset is None:
                                k = val.find(b"'")
                                if k < 0:
                                    k = len(val)
                                if k > 0:
                                    fcharset = val[:k]
                                rest = val[k + 1:] if k < len(val) else b""
                                rest = rest.lstrip(b"'")
                            else:
                                rest = val
                            word = _rfc2231_to_2047(rest, fcharset)
                            plain = rfc2047_decode(word, False)
                            if len(plain) == len(word):
                                failed = True
                            else:
                                fname = (fname or b"") + plain
                                v["mime_filename"] = fname
                else:
                    for pname, pvar in _PARAMS:
                        if p[i:i + len(pname)].lower() == pname:
                            val, i = _param_val(p, i + len(pname))
                            if val:
                                v[pvar] = rfc2047_decode(val)
                            else:
                                v.pop(pvar, None)
                            break
                i = _next_semicolon(p, i)
                if i < len(p):
                    i += 1
            if is_disp and failed:
                if fname_2231 is None:
                    v.pop("mime_filename", None)
                else:
                    v["mime_filename"] = fname_2231
            break
    return v


def _boundary_line(line: bytes, boundary: bytes) -> bool:
    return line.startswith(b"--") and line[2:].startswith(boundary)


def mime_parts(header_lines: list[str], body: str | bytes,
               content: Any = None) -> Iterator[dict[str, Any]]:
    """The $mime_* variables of each part, in Exim's order (see the module
    description); with ``content`` (an eximpy.acl.content.ContentScan) the
    walk reads its .eml copy and message/rfc822 parts are unpacked."""
    # Exim's run_mime_acl() looks for a header line that starts
    # "Content-Type:" exactly (no space before the colon).
    if not any(h[:13].lower() == "content-type:" for h in header_lines):
        return
    if content is not None:
        try:
            content.mbox_path()
        except OSError:
            pass
        data = content.mbox_bytes() if not content.spooled else \
            _read(content)
    else:
        data = b"".join((h if h.endswith("\n") else h + "\n").encode(
            "utf-8", "surrogateescape") for h in header_lines) + b"\n" + (
            body if isinstance(body, bytes) else
            body.encode("utf-8", "surrogateescape"))
    state = {"count": -1, "rfc822": "0", "stop": False}
    yield from _walk(Stream(data), None, state, content)
    if content is None or state["stop"]:
        return
    top_count = state["count"]
    content.mime_part_count = top_count
    while True:
        # each attached message is walked, then unlinked; walking one may
        # have written more (the first free names, so names come again)
        path = _next_rfc822(content)
        if path is None:
            break
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            _log_panic(content, "acl_smtp_mime: can't open RFC822 spool "
                       "file, skipping.")
            try:
                os.unlink(path)
            except OSError:
                return
            continue
        state["count"] = -1
        state["rfc822"] = "1"
        yield from _walk(Stream(data), None, state, content)
        content.mime_part_count = top_count
        try:
            os.unlink(path)
        except OSError:
            _log_panic(content, "acl_smtp_mime: can't unlink RFC822 spool "
                       "file, skipping.")
            return


def _log_panic(content: Any, text: str) -> None:
    log = getattr(content, "sticky", {}).get("log_panic")
    if log is not None:
        log(text)


def _read(content: Any) -> bytes:
    try:
        with open(content.mbox_path(), "rb") as fh:
            return fh.read()
    except OSError:
        return content.mbox_bytes()


def _next_rfc822(content: Any) -> str | None:
    try:
        names = os.listdir(content.scan_dir)     # readdir() order, as Exim
    except OSError:
        return None
    for n in names:
        if n.lower().startswith("__rfc822_"):
            return f"{content.scan_dir}/{n}"
    return None


def _walk(f: Stream, ctx: list | None, state: dict[str, Any],
          content: Any) -> Iterator[dict[str, Any]]:
    while True:
        if ctx is not None:
            b = ctx[0]
            while True:
                line = f.fgets(MAX_HEADER)
                if line is None:
                    return
                if _boundary_line(line, b):
                    if line[2 + len(b):].startswith(b"--"):
                        return
                    break
        v = _part_headers(f)
        ctype = v.get("mime_content_type")
        state["count"] += 1
        out: dict[str, Any] = {k: "" for k in _VARS}
        for k, val in v.items():
            out[k] = _s(val)
        ctype_s = out["mime_content_type"]
        out["mime_is_multipart"] = "1" if ctype_s.startswith("multipart") \
            else "0"
        out["mime_is_rfc822"] = state["rfc822"]
        out["mime_anomaly_level"] = "0"
        out["mime_content_size"] = "0"
        out["mime_part_count"] = str(state["count"])
        out["mime_is_coverletter"] = "0" if (ctx is not None and
                                             ctx[1] == ATTACHMENT) else "1"
        enc = v.get("mime_content_transfer_encoding")
        part = MimePart(f, f.pos, ctx[0] if ctx is not None else None,
                        _s(enc) if enc is not None else None, content)
        part.vars = out
        out[PART_KEY] = part
        if content is not None:
            # Exim's globals that outlive the walk (seen by the DATA ACL)
            content.mime_last = {
                "mime_is_rfc822": out["mime_is_rfc822"],
                "mime_is_coverletter": out["mime_is_coverletter"]}
        state["stop"] = True
        yield out
        state["stop"] = False
        f.pos = part.body_pos
        boundary = v.get("mime_boundary")
        if ctype is not None and boundary and ctype.startswith(b"multipart"):
            if ctx is not None and ctx[1] == ATTACHMENT:
                kind = ATTACHMENT
            elif ctype in (b"multipart/alternative", b"multipart/related"):
                kind = ALL
            else:
                kind = ONESHOT
            yield from _walk(f, [boundary, kind], state, content)
            if state["stop"]:
                return
        elif ctype is not None and ctype.startswith(b"message/rfc822") \
                and content is not None:
            _unpack_rfc822(part, content)
        if ctx is None:
            return
        if ctx[1] == ONESHOT:
            ctx[1] = ATTACHMENT


def _unpack_rfc822(part: MimePart, content: Any) -> None:
    """Decode an attached message into the first free __rfc822_NNNNN."""
    for n in range(127):
        path = f"{content.scan_dir}/__rfc822_{n:05d}"
        if not os.path.exists(path):
            break
    else:
        return
    decode_part(part, path, None)


# ---------------------------------------------------------------------------
# decoding (mime_decode())

_B64 = {c: i for i, c in enumerate(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _lines(part: MimePart) -> Iterator[bytes]:
    f = part.stream
    pos = part.body_pos
    d = f.data
    b = part.boundary
    while pos < len(d):
        end = d.find(b"\n", pos, pos + MAX_LINE - 1)
        end = (pos + MAX_LINE - 1) if end < 0 else end + 1
        line = d[pos:end]
        pos = end
        if b is not None and _boundary_line(line, b):
            return
        yield line


_CLEAN_B64 = re.compile(rb"[A-Za-z0-9+/]*")
_PAD_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _decode_b64(part: MimePart) -> bytes:
    """Exim's base64 decoding; well-formed parts (the usual case) go
    through binascii, which gives the same bytes much faster."""
    pieces: list[bytes] = []
    lines = list(_lines(part))
    last = len(lines) - 1
    while last >= 0 and lines[last].strip(b"\r\n") == b"":
        last -= 1
    for i, line in enumerate(lines):
        text = line.rstrip(b"\n")
        if text.endswith(b"\r"):
            text = text[:-1]
        rx = _PAD_B64 if i == last else _CLEAN_B64
        if not rx.fullmatch(text):
            return _decode_b64_exim(part)
        pieces.append(text)
    data = b"".join(pieces)
    if len(data) % 4:
        return _decode_b64_exim(part)
    return binascii.a2b_base64(data) if data else b""


def _decode_b64_exim(part: MimePart) -> bytes:
    """Exim's mime_decode_base64(), byte for byte: "=" only advances the
    state, so a byte can be completed over what an earlier line left in
    the output buffer (which is simulated, zero-filled at the start).
    Where Exim's buffer holds what was on its stack before (a malformed
    part whose first lines already end mid-byte after an "="), the bytes
    can differ: that is uninitialised memory in Exim."""
    out = bytearray()
    obuf = bytearray(MAX_LINE)
    opos = 0
    state = 0
    for line in _lines(part):
        for c in line:
            if c in (13, 10, 0):
                break
            if c == 61:
                state += 1
                continue
            v = _B64.get(c)
            if v is None:
                part.anomaly = _ANOMALY["b64"]
                continue
            k = state & 3
            state += 1
            if k == 0:
                obuf[opos] = (v << 2) & 0xFF
            elif k == 1:
                obuf[opos] |= v >> 4
                opos += 1
                obuf[opos] = (v << 4) & 0xFF
            elif k == 2:
                obuf[opos] |= v >> 2
                opos += 1
                obuf[opos] = (v << 6) & 0xFF
            else:
                obuf[opos] |= v
                opos += 1
        if opos > 0:
            out += obuf[:opos]
            if state & 3:
                obuf[0] = obuf[opos]
            opos = 0
    if state & 3:
        out.append(obuf[0])
    return bytes(out)


def _decode_qp(part: MimePart) -> bytes:
    out = bytearray()
    for line in _lines(part):
        i = 0
        n = len(line)
        while i < n:
            c = line[i]
            if c != 61:
                out.append(c)
                i += 1
                continue
            j = i + 1
            if j + 1 < n + 0 and line[j] in _HEX and line[j + 1] in _HEX:
                out.append(int(line[j:j + 2], 16))
                i = j + 2
                continue
            while j < n and line[j] in (9, 32, 13):
                j += 1
            if j < n and line[j] == 10:
                break                            # soft line break
            part.anomaly = _ANOMALY["qp"]
            out.append(61)
            i += 1
    return bytes(out)


def _decode_asis(part: MimePart) -> bytes:
    return b"".join(_lines(part))


def decode_part(part: MimePart, option: str | None,
                log: Callable[[str], None] | None, tainted: bool = False
                ) -> tuple[str, str | None, int]:
    """Exim's mime_decode(): ("OK"|"FAIL"|"DEFER", file name, size in
    KiB).  ``option`` is the first item of the decode list (None: the
    default path and names).  A file name made from client data
    (``tainted``) is refused, as Exim refuses to open it: DEFER, logged
    "Tainted filename '<path>'" through ``log``."""
    content = part.content
    if content is None:
        return "DEFER", None, 0
    decode_path = content.scan_dir
    if option in ("false", "0"):
        return "FAIL", None, 0
    if option is None or option == "" or option == "default":
        directory, fname = decode_path, None
    elif option.startswith("/"):
        if os.path.isdir(option):
            directory, fname = option, None
        else:
            directory, fname = None, option
    else:
        directory, fname = decode_path, option
    if directory is not None and fname is not None:
        target = f"{directory}/{fname}"
    elif directory is None:
        target = fname or ""
    else:
        target = ""
        for n in range(1024):
            target = f"{directory}/{content.message_id}-{n:05d}"
            if not os.path.exists(target):
                break
    if tainted and option not in (None, "", "default"):
        if log is not None:
            log(f"Tainted filename '{target}'")
        return "DEFER", None, 0
    enc = part.encoding
    if enc == "base64":
        data = _decode_b64(part)
    elif enc == "quoted-printable":
        data = _decode_qp(part)
    else:
        data = _decode_asis(part)
    try:
        os.makedirs(os.path.dirname(target) or ".", mode=0o750, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError:
        return "DEFER", None, 0
    part.decoded_filename = target
    return "OK", target, (len(data) + 1023) // 1024
