"""The decode, mime_regex and regex ACL conditions (Exim mime.c, regex.c).

SUMMARY
    acl_decode(call, arg, msgs) -> rc
    acl_mime_regex(call, arg, msgs) -> rc
    acl_regex(call, arg, msgs) -> rc

DESCRIPTION
    decode = [/path/]name | default | false   (MIME ACL only)
        decodes the current MIME part (eximpy.smtp.mime.decode_part) and
        sets $mime_decoded_filename and $mime_content_size (KiB, rounded
        up); $mime_anomaly_level/_text when the encoding was broken.

    mime_regex = re : re ...                   (MIME ACL only)
        matches the first 32766 bytes of the decoded part (decoding it
        first, with default names, when decode has not run) as one
        string.

    regex = re : re ...
        in the DATA ACL: each line of the .eml copy of the message
        ("From " line, X-Envelope- lines, headers and body), lines split
        at 32766 bytes as fgets() into Exim's big_buffer does; in the MIME
        ACL: each raw line of the current part up to the boundary of the
        enclosing multipart.

    For both regex conditions "false" and "0" items are skipped, a
    regular expression that does not compile is logged ("regex acl
    condition warning - <error>, skipped") and skipped, and the
    expressions are tried last first on each line (Exim chains them that
    way).  On a match $regex_match_string is the expression and
    $regex1.. its captured substrings; all are cleared first.

SECURITY
    Message data is only matched, never expanded.  Decoded files go where
    eximpy.smtp.mime.decode_part() puts them.

SEE ALSO
    spec 45.4, 45.5; Exim mime.c mime_decode(), regex.c.
"""
from __future__ import annotations

import re
from typing import Any

from eximpy.acl.runner import DEFER, FAIL, OK
from eximpy.expand.taint import Tainted

REGEX_VARS = 9
BIG_BUFFER = 32767              # fgets() size: lines of up to 32766 bytes


def _part(call: Any) -> Any:
    from eximpy.smtp.mime import PART_KEY
    return call.ctx.variables.get(PART_KEY)


def _set_part_vars(call: Any, part: Any, filename: str | None,
                   size: int | None) -> None:
    v = call.ctx.variables
    if filename is not None:
        v["mime_decoded_filename"] = filename
    if size is not None:
        v["mime_content_size"] = str(size)
    if part.anomaly is not None:
        v["mime_anomaly_level"], v["mime_anomaly_text"] = part.anomaly


def acl_decode(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.expand.lists import iter_list
    from eximpy.smtp.mime import decode_part
    part = _part(call)
    if part is None:
        return FAIL
    items = iter_list(arg)
    option = items[0] if items else None
    rc, fname, size = decode_part(
        part, option, lambda t: call.engine.log_write(t, main=True,
                                                      panic=True),
        tainted=isinstance(arg, Tainted))
    if fname is not None:
        _set_part_vars(call, part, fname, size)
    return {"OK": OK, "FAIL": FAIL}.get(rc, DEFER)


def _compile(call: Any, arg: str) -> list[tuple[str, Any]]:
    from eximpy.expand.lists import iter_list
    from eximpy.expand.regex import compile_pcre
    out: list[tuple[str, Any]] = []
    for pat in iter_list(arg):
        if pat.lower() == "false" or pat == "0":
            continue
        try:
            rx = compile_pcre(pat, False)
        except Exception as e:
            m = re.match(r'regular expression error in ".*": (.*)$', str(e),
                         re.S)
            what = m.group(1) if m else str(e)
            call.engine.log_write("regex acl condition warning - error in "
                                  f"regex '{pat}': {what}, skipped.",
                                  main=True)
            continue
        out.insert(0, (pat, rx))
    return out


def _clear(call: Any) -> None:
    v = call.ctx.variables
    v["regex_match_string"] = ""
    for i in range(1, REGEX_VARS + 1):
        v[f"regex{i}"] = ""
    _keep(call)


def _keep(call: Any) -> None:
    """The values for later ACLs of the message (Exim's globals)."""
    from eximpy.acl.content import get_content
    scan = get_content(call)
    if scan is not None:
        v = call.ctx.variables
        scan.sticky["regex"] = {k: v.get(k, "") for k in
                                ["regex_match_string"] +
                                [f"regex{i}" for i in
                                 range(1, REGEX_VARS + 1)]}


def _match(call: Any, res: list[tuple[str, Any]], text: str) -> bool:
    for pat, rx in res:
        m = rx.search(text)
        if m is None:
            continue
        v = call.ctx.variables
        v["regex_match_string"] = pat
        groups = m.groups()
        last = m.lastindex or 0
        for i in range(1, min(len(groups), REGEX_VARS) + 1):
            if i > last:
                break
            g = groups[i - 1]
            # a C string: a captured NUL ends it
            v[f"regex{i}"] = Tainted((g or "").split("\0", 1)[0])
        _keep(call)
        return True
    return False


def acl_mime_regex(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.smtp.mime import decode_part
    _clear(call)
    part = _part(call)
    if part is None:
        return FAIL
    fname = part.decoded_filename
    if fname is None:
        _rc, fname, size = decode_part(part, "", None)
        if fname is None:
            call.engine.log_write("mime_regex acl condition warning - could "
                                  "not decode MIME part to file", main=True)
            return DEFER
        _set_part_vars(call, part, fname, size)
    try:
        with open(fname, "rb") as fh:
            data = fh.read(32766)
    except OSError:
        call.engine.log_write("mime_regex acl condition warning - can't "
                              f"open '{fname}' for reading", main=True)
        return DEFER
    res = _compile(call, arg)
    if not res:
        return FAIL
    text = data.decode("utf-8", "surrogateescape")
    return OK if _match(call, res, text) else FAIL


def _split_lines(data: bytes, start: int, boundary: bytes | None):
    size = BIG_BUFFER - 1
    pos = start
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos, pos + size)
        end = (pos + size) if end < 0 else end + 1
        line = data[pos:end]
        pos = end
        if boundary is not None and line.startswith(b"--") and \
                line[2:].startswith(boundary):
            return
        yield line


def acl_regex(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.acl.content import get_content
    _clear(call)
    part = _part(call)
    if part is not None:
        data, start, boundary = part.stream.data, part.body_pos, \
            part.boundary
    else:
        content = get_content(call)
        if content is None:
            return _regex_fallback(call, arg)
        try:
            with open(content.mbox_path(), "rb") as fh:
                data = fh.read()
        except OSError:
            call.engine.log_write("regex acl condition: error while creating "
                                  "mbox spool file", main=True, panic=True)
            return DEFER
        start, boundary = 0, None
    res = _compile(call, arg)
    if not res:
        return FAIL
    for line in _split_lines(data, start, boundary):
        if _match(call, res, line.decode("utf-8", "surrogateescape")):
            return OK
    return FAIL


def _regex_fallback(call: Any, arg: str) -> str:
    """No message copy (a caller that gives none): the headers and the
    body the session handed in."""
    hdrs = getattr(call.env, "headers", None) or []
    text = "".join(f"{h[0]}:{h[1]}" if isinstance(h, tuple) else str(h)
                   for h in hdrs) + "\n" + call.var("message_body")
    res = _compile(call, arg)
    for line in text.split("\n"):
        if _match(call, res, line + "\n"):
            return OK
    return FAIL
