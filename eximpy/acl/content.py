"""The message copy that content scanning works on (Exim's spool_mbox.c).

SUMMARY
    CONTENT_KEY                     key of the ContentScan in ACL variables
    ContentScan(spool_directory, message_id, header_lines, body, sender,
                recipients)
    scan.mbox_path() -> str        writes <spool>/scan/<id>/<id>.eml once
    scan.mbox_bytes() -> bytes
    scan.unspool(trace)            removes the scan directory
    content_scan_for(session, mid, header_lines, res, extra) -> ContentScan
                                   the SMTP session's hook (server.py)
    attach_content_scan(variables, spool, mid, header_lines, body, sender,
                        recipients) -> ContentScan    other callers
    run_mime_acl(run, variables, header_lines, body) -> result | None
    note_acl_result(variables, result)   after a MIME ACL run
    unspool_after(variables, result, trace)   after the MIME/DATA ACLs
    spam_spool_values(session, mid) -> {spam_bar, spam_score, ...}
    get_content(call) -> ContentScan | None
    CONTENT_DISPATCH               decode mime_regex regex malware spam,
                                   merged into eximpy.acl.conditions

DESCRIPTION
    Every content-scanning facility (the MIME ACL, decode, regex,
    mime_regex, malware, spam) works on an MBOX copy of the message,
    written when first needed to

        <spool_directory>/scan/<message_id>/<message_id>.eml

    as Exim writes it: a "From <return path or MAILER-DAEMON> <bsd date>"
    line, X-Envelope-From: / X-Envelope-To: lines, the header lines that
    are not deleted, a blank line and the body as in the -D file.  Decoded
    MIME parts go to the same directory.  unspool() removes the directory
    (with Exim's "unspool_mbox(): unlinking '...'" debug line per file)
    unless control = no_mbox_unspool was obeyed.

    The object also holds what Exim keeps in globals for one message: the
    malware and spam results with their "already done" markers, and
    $mime_part_count, $mime_is_rfc822 and $mime_is_coverletter after the
    MIME ACL (the DATA ACL sees them); the spam values also go into the
    -H file (spam_spool_values).  The SMTP session puts one into
    the variables of the MIME and DATA ACLs under CONTENT_KEY (a name no
    expansion can reach).

SECURITY
    The directory is made 0750 and files 0640 (SPOOL_MODE), under the
    spool directory only; the message id names them, never client data.

SEE ALSO
    spec 45 "Content scanning at ACL time"; Exim spool_mbox.c.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

CONTENT_KEY = "content scan"       # has a space: not a variable name

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
           "Oct", "Nov", "Dec")


def _bsdinbox(t: float) -> str:
    lt = time.localtime(int(t))
    return (f"{_DAYS[lt.tm_wday]} {_MONTHS[lt.tm_mon - 1]} {lt.tm_mday:2d} "
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {lt.tm_year}")


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class ContentScan:
    """One message's scan directory and content-scanning state."""

    def __init__(self, spool_directory: str, message_id: str,
                 header_lines: list[str], body: bytes | bytearray,
                 sender: str | None,
                 recipients: list[str], return_path: str | None = None
                 ) -> None:
        self.spool_directory = spool_directory
        self.message_id = message_id
        self.header_lines = header_lines
        self.body = body
        self.sender = sender
        self.recipients = recipients
        # $return_path is not set yet while the SMTP ACLs run, so Exim's
        # "From " line names MAILER-DAEMON there.
        self.return_path = return_path
        self.spooled = False
        self.no_unspool = False
        # Exim's globals for the message
        self.malware_ok = False
        self.malware_name: str | None = None
        self.spam_ok = False
        self.spam_user: str | None = None
        self.spam_address: str | None = None
        self.spam_rc: str | None = None
        self.spam_vars: dict[str, str] = {}
        self.mime_part_count = -1
        self.mime_last: dict[str, str] = {}
        self.sticky: dict[str, Any] = {}

    # -- the files ------------------------------------------------------
    @property
    def scan_dir(self) -> str:
        return f"{self.spool_directory}/scan/{self.message_id}"

    def mbox_bytes(self) -> bytes:
        rp = self.return_path
        out = [_b(f"From {rp if rp else 'MAILER-DAEMON'} "
                  f"{_bsdinbox(time.time())}\n")]
        if self.sender:
            out.append(_b(f"X-Envelope-From: <{self.sender}>\n"))
        if self.recipients:
            out.append(_b(f"X-Envelope-To: {', '.join(self.recipients)}\n"))
        for h in self.header_lines:
            out.append(_b(h if h.endswith("\n") else h + "\n"))
        out.append(b"\n")
        out.append(bytes(self.body))
        return b"".join(out)

    def mbox_path(self) -> str:
        """The .eml file, written the first time (OSError when it cannot
        be)."""
        path = f"{self.scan_dir}/{self.message_id}.eml"
        if not self.spooled:
            os.makedirs(self.scan_dir, mode=0o750, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with os.fdopen(fd, "wb") as f:
                f.write(self.mbox_bytes())
            self.spooled = True
        return path

    def unspool(self, trace: Callable[[str], None] | None = None) -> None:
        """Exim's unspool_mbox(): forget the scan results and remove the
        directory (kept with control = no_mbox_unspool)."""
        self.spam_ok = False
        self.malware_ok = False
        if self.spooled and not self.no_unspool:
            d = self.scan_dir
            try:
                names = os.listdir(d)
            except OSError:
                names = []
            for name in names:
                p = f"{d}/{name}"
                if trace is not None:
                    trace(f"unspool_mbox(): unlinking '{p}'")
                try:
                    os.unlink(p)
                except OSError:
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.spooled = False


def content_scan_for(session: Any, mid: str, header_lines: list[str],
                     res: Any, extra: dict[str, Any]) -> ContentScan:
    """The ContentScan for a message the SMTP session has just read, put
    into ``extra`` (the MIME/DATA ACL variables) with a $mime_part_count
    that follows the MIME ACL."""
    try:
        spool = session.config.main.get("spool_directory") or ""
    except (KeyError, AttributeError):
        spool = ""
    # the body is not copied: it is final once DATA has ended
    scan = ContentScan(spool, mid, list(header_lines), res.body,
                       session.sender, [r[0] for r in session.recipients])
    extra[CONTENT_KEY] = scan
    session._content_scan = scan          # for spam_spool_values()
    _mime_globals(extra, scan)
    return scan


_SPAM_VARS = ("spam_score", "spam_score_int", "spam_bar", "spam_action",
              "spam_report")
_REGEX_VARS = ("regex_match_string",) + tuple(f"regex{i}"
                                               for i in range(1, 10))


def _mime_globals(variables: dict[str, Any], scan: ContentScan) -> None:
    """What Exim keeps in globals for the message, so that a later ACL
    (the DATA ACL after the MIME ACL, after each PRDR recipient) sees it:
    $mime_part_count, $mime_is_rfc822 and $mime_is_coverletter (not reset
    after the MIME ACL), $malware_name, the $spam_* values, and
    $regex_match_string / $regex<n> of the last regex condition."""
    variables["mime_part_count"] = lambda: str(scan.mime_part_count)
    for name in ("mime_is_rfc822", "mime_is_coverletter"):
        variables[name] = (lambda n: lambda: scan.mime_last.get(n, "0"))(
            name)
    variables["malware_name"] = lambda: scan.malware_name or ""
    for name in _SPAM_VARS:
        variables[name] = (lambda n: lambda: scan.spam_vars.get(n, ""))(
            name)
    for name in _REGEX_VARS:
        variables[name] = (lambda n: lambda: scan.sticky.get(
            "regex", {}).get(n, ""))(name)


def attach_content_scan(variables: dict[str, Any], spool_directory: str,
                        mid: str, header_lines: list[str], body: bytes,
                        sender: str | None, recipients: list[str]
                        ) -> ContentScan:
    """For callers other than the SMTP session (acl_not_smtp and
    acl_not_smtp_mime, not wired yet): put a ContentScan into an ACL's
    ``variables`` so decode, regex, mime_regex, malware and spam work;
    call unspool_after(variables, result, None) when the ACLs are done."""
    scan = ContentScan(spool_directory, mid, list(header_lines), body,
                       sender, list(recipients))
    variables[CONTENT_KEY] = scan
    _mime_globals(variables, scan)
    return scan


def run_mime_acl(run: Callable[[dict[str, Any]], Any],
                 variables: dict[str, Any], header_lines: list[str],
                 body: bytes) -> Any:
    """Exim's run_mime_acl() for any caller: ``run(vars)`` runs the MIME
    ACL once per part (eximpy.smtp.mime.mime_parts) with the part's
    $mime_* variables over ``variables``; returns the first result that
    is not OK, or the last one (None when the message is not MIME)."""
    from eximpy.acl.runner import OK
    from eximpy.smtp.mime import mime_parts
    r = None
    for part in mime_parts(header_lines, body, variables.get(CONTENT_KEY)):
        v = dict(variables)
        v.update(part)
        r = run(v)
        note_acl_result(variables, r)
        if getattr(r, "rc", OK) != OK:
            break
    return r


def note_acl_result(extra: dict[str, Any] | None, result: Any) -> None:
    """After a MIME ACL run: remember control = no_mbox_unspool (a flag for
    the rest of the message, as Exim's global)."""
    scan = (extra or {}).get(CONTENT_KEY)
    if isinstance(scan, ContentScan) and "no_mbox_unspool" in (
            getattr(result, "controls", None) or ()):
        scan.no_unspool = True


def unspool_after(extra: dict[str, Any] | None, result: Any,
                  trace: Callable[[str], None] | None) -> None:
    """After the MIME/DATA ACLs: remove the scan directory (not when the
    ACL obeyed control = no_mbox_unspool)."""
    scan = (extra or {}).get(CONTENT_KEY)
    if not isinstance(scan, ContentScan):
        return
    if "no_mbox_unspool" in (getattr(result, "controls", None) or ()):
        scan.no_unspool = True
    scan.unspool(trace)


def spam_spool_values(session: Any, mid: str | None) -> dict[str, str]:
    """$spam_bar, $spam_score and $spam_score_int after the DATA ACL of
    message ``mid``, for the -H file's "-spam_bar ..." lines (Exim keeps
    them for delivery); empty when no spam condition ran."""
    scan = getattr(session, "_content_scan", None)
    if not isinstance(scan, ContentScan) or scan.message_id != mid or \
            not scan.spam_vars:
        return {}
    return {k: str(scan.spam_vars[k])
            for k in ("spam_bar", "spam_score", "spam_score_int")}


def get_content(call: Any) -> ContentScan | None:
    """The message's ContentScan in an ACL call, if the session gave one."""
    v = call.ctx.variables.get(CONTENT_KEY)
    return v if isinstance(v, ContentScan) else None


def slash_list(text: str) -> list[str]:
    """A condition's argument as Exim's acl.c splits it: a list separated
    by "/" unless it starts with "<c"."""
    from eximpy.expand.lists import iter_list
    if len(text) >= 2 and text.lstrip().startswith("<"):
        return list(iter_list(text))
    return list(iter_list(text, "/"))


# ---------------------------------------------------------------------------
# the conditions, as eximpy.acl.conditions calls them

def _decode(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.mime_decode import acl_decode
    return acl_decode(call, arg, msgs)


def _mime_regex(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.mime_decode import acl_mime_regex
    return acl_mime_regex(call, arg, msgs)


def _regex(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.mime_decode import acl_regex
    return acl_regex(call, arg, msgs)


def _malware(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.malware import acl_malware
    return acl_malware(call, arg, msgs)


def _spam(call: Any, cb: Any, arg: str, msgs: Any, verb: str) -> str:
    from eximpy.acl.spam import acl_spam
    return acl_spam(call, arg, msgs)


CONTENT_DISPATCH = {"decode": _decode, "mime_regex": _mime_regex,
                    "regex": _regex, "malware": _malware, "spam": _spam}
