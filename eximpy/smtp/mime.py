"""The MIME ACL's walk over a message's parts (Exim's mime_acl_check()).

SUMMARY
    mime_parts(headers, body) -> iterator of dict of $mime_* variables
    is_mime(headers) -> bool

DESCRIPTION
    acl_smtp_mime runs (before the DATA ACL) only for messages with a
    Content-Type: header.  Exim then reads the message as a stream: the
    top-level header block is part 0; for a multipart entity with a
    boundary it goes on to each part after a "--boundary" line (recursing
    into nested multiparts) and stops at "--boundary--" or the end.  For
    every part the variables below are set and the ACL runs; a result other
    than OK stops the walk (the caller stops consuming the iterator).

    Interesting headers (Content-Type, Content-Disposition,
    Content-Transfer-Encoding, Content-ID, Content-Description) are
    unfolded, their whitespace outside quotes dropped, and the value up to
    the first ";" lower-cased, as Exim's mime_get_header() does; the
    parameters name=/filename= (-> $mime_filename), charset=, boundary= are
    taken from what follows.  $mime_is_coverletter follows Exim's
    cover-letter rules.  Not done: decode=, mime_regex, RFC 2047/2231
    filename decoding, message/rfc822 unpacking.

SECURITY
    Everything here is client data: values are only returned as tainted
    strings for the ACL; nothing is written anywhere.

SEE ALSO
    spec chapter 45 "Content scanning at ACL time" (the MIME ACL); Exim mime.c.
"""
from __future__ import annotations

from typing import Any, Iterator

_HEADERS = {"content-type:": "mime_content_type",
            "content-disposition:": "mime_content_disposition",
            "content-transfer-encoding:": "mime_content_transfer_encoding",
            "content-id:": "mime_content_id",
            "content-description:": "mime_content_description"}
_PARAMS = (("name=", "mime_filename"), ("filename=", "mime_filename"),
           ("charset=", "mime_charset"), ("boundary=", "mime_boundary"))
_VARS = ("mime_anomaly_level", "mime_anomaly_text", "mime_boundary",
         "mime_charset", "mime_content_description",
         "mime_content_disposition", "mime_content_id", "mime_content_size",
         "mime_content_transfer_encoding", "mime_content_type",
         "mime_decoded_filename", "mime_filename", "mime_is_coverletter",
         "mime_is_multipart", "mime_is_rfc822", "mime_part_count")

ONESHOT, ALL, ATTACHMENT = 1, 2, 3        # Exim's MBC_* contexts


def is_mime(headers: list[tuple[str, str, str]]) -> bool:
    """True when a live Content-Type: header is there."""
    return any(t != "*" and n.strip().lower() == "content-type"
               for n, _v, t in headers)


class _Stream:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.i = 0

    def readline(self) -> str | None:
        if self.i >= len(self.lines):
            return None
        self.i += 1
        return self.lines[self.i - 1]


def _get_header(st: _Stream) -> str | None:
    """One unfolded header line with whitespace outside quotes removed and
    a ";" at the end; None at the blank line or the end."""
    out: list[str] = []
    quoted = False
    while True:
        line = st.readline()
        if line is None:
            break
        text = line.rstrip("\r\n")
        if not out and text == "":
            return None
        for c in text:
            if c == '"':
                quoted = not quoted
            if c in " \t" and not quoted:
                continue
            out.append(c)
        nxt = st.lines[st.i] if st.i < len(st.lines) else ""
        if not (nxt[:1] in (" ", "\t")):
            break
    if not out:
        return None
    s = "".join(out)
    if not s.endswith(";"):
        s += ";"
    return s


def _param_val(p: str) -> tuple[str, str]:
    """(value, rest after the ";") of a parameter value."""
    if p.startswith('"'):
        val: list[str] = []
        i = 1
        while i < len(p) and p[i] != '"':
            if p[i] == "\\" and i + 1 < len(p):
                i += 1
            val.append(p[i])
            i += 1
        rest = p[i + 1:]
        j = rest.find(";")
        return "".join(val), rest[j + 1:] if j >= 0 else ""
    j = p.find(";")
    return (p, "") if j < 0 else (p[:j], p[j + 1:])


def _part_vars(st: _Stream) -> dict[str, str]:
    v: dict[str, str] = {}
    while True:
        h = _get_header(st)
        if h is None:
            break
        low = h.lower()
        for name, var in _HEADERS.items():
            if not low.startswith(name):
                continue
            p = h[len(name):]
            q = p.find(";")
            v[var] = p[:q].lower()
            p = p[q + 1:]
            while p:
                for pname, pvar in _PARAMS:
                    if p.lower().startswith(pname):
                        val, p = _param_val(p[len(pname):])
                        if val:
                            v[pvar] = val
                        else:
                            v.pop(pvar, None)
                        break
                else:
                    j = p.find(";")
                    p = p[j + 1:] if j >= 0 else ""
            break
    return v


def mime_parts(header_lines: list[str], body: str) -> Iterator[dict[str, Any]]:
    """The $mime_* variables of each part, in Exim's order."""
    lines: list[str] = []
    for h in header_lines:
        lines += (h if h.endswith("\n") else h + "\n").splitlines(True)
    lines.append("\n")
    lines += body.splitlines(keepends=True)
    st = _Stream(lines)
    count = [-1]
    yield from _walk(st, None, count)


def _walk(st: _Stream, ctx: list | None, count: list[int]
          ) -> Iterator[dict[str, Any]]:
    while True:
        if ctx is not None:
            while True:
                line = st.readline()
                if line is None:
                    return
                b = ctx[0]
                if line.startswith("--" + b):
                    if line[2 + len(b):].startswith("--"):
                        return
                    break
        v = _part_vars(st)
        ctype = v.get("mime_content_type", "")
        count[0] += 1
        out: dict[str, Any] = {k: "" for k in _VARS}
        out.update(v)
        out["mime_is_multipart"] = "1" if ctype.startswith("multipart") \
            else "0"
        out["mime_is_rfc822"] = "0"
        out["mime_anomaly_level"] = "0"
        out["mime_content_size"] = "0"
        out["mime_part_count"] = str(count[0])
        out["mime_is_coverletter"] = "0" if (ctx is not None and
                                             ctx[1] == ATTACHMENT) else "1"
        yield out
        boundary = v.get("mime_boundary")
        if ctype.startswith("multipart") and boundary:
            if ctx is not None and ctx[1] == ATTACHMENT:
                kind = ATTACHMENT
            elif ctype in ("multipart/alternative", "multipart/related"):
                kind = ALL
            else:
                kind = ONESHOT
            yield from _walk(st, [boundary, kind], count)
        if ctx is None:
            return
        if ctx[1] == ONESHOT:
            ctx[1] = ATTACHMENT
