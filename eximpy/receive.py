"""Receiving a locally submitted (non-SMTP) message onto the spool.

SUMMARY
    receive_local(config, sender, recipients, input_stream, options)
        -> ReceiveResult
    LocalOptions(extract_recipients, dot_ends, sender_name, login, uid, gid,
                 received_protocol, trusted, now, log)
    ReceiveError(message, exit_status)

DESCRIPTION
    What ``exim -odq -f sender rcpt... < message`` (and ``-t``, ``-i``)
    does: read the message from the stream (a line holding only ``.`` ends
    it unless -i/-oi; CRLF becomes LF; a missing final newline is added),
    split header and body (a first line that is not a header makes the
    whole input body), take recipients from To:/Cc:/Bcc: with -t (Bcc:
    is then kept only as a deleted ``*`` header, and command-line addresses
    are removed and put in the non-recipients tree, as Exim does with
    extract_addresses_remove_arguments), qualify unqualified addresses,
    then add the headers Exim adds to local messages:

      Received:   prepended; from received_header_text, expanded with
                  eximpy.expand when that is available, else Exim's
                  default text built directly; then ``;\\n\\t<date>``
      Message-Id: ``<E<id>@<message_id_header_domain|primary_hostname>>``
      From:       ``name <sender>`` for a local sender (name from -F or the
                  passwd gecos field), just the address for -f; none for <>
      Date:       the time of reception (RFC 2822 form, as Exim's tod_full)

    each only when missing, appended in that order.  The -D file is
    written and fsynced, the -H file written durably, and the ``<=`` line
    logged (mainlog and the message log).

SECURITY
    The message is untrusted data; it only ever reaches the -D/-H files.
    Only the caller decides whether -f is honoured (``trusted``).

SEE ALSO
    spec "Message processing" (chapter 47: added headers), "The Exim
    command line" (-t, -i, -f, -F).
"""
from __future__ import annotations

import email.utils
import os
import pwd
import re
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from eximpy.acl.engine import place_added_headers
from eximpy.acl.nonsmtp import NonSmtpAcls
from eximpy.acl.runner import DISCARD, OK
from eximpy.log import format as logfmt
from eximpy.log.writer import LogWriter
from eximpy.message.ids import new_message_id
from eximpy.spool import data_file, header_file, msglog
from eximpy.spool.layout import SpoolLayout
from eximpy.spool.message import (
    HTYPE_OLD, HTYPE_RECEIVED, Header, Recipient, SpoolMessage,
    mark_tainted_acl_vars)

VERSION = "4.96"
_HEADER_RE = re.compile(rb"[!-9;-~]+[ \t]*:")
# Exim's default uucp_from_pattern.
_UUCP_FROM_RE = re.compile(
    r"^From\s+(\S+)\s+(?:[a-zA-Z]{3},?\s+)?(?:[a-zA-Z]{3}\s+\d?\d|"
    r"\d?\d\s+[a-zA-Z]{3}\s+\d\d(?:\d\d)?)\s+\d\d?:\d\d?")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
           "Oct", "Nov", "Dec")


class ReceiveError(Exception):
    """Reception failed; ``message`` is what Exim says, ``logged`` whether
    it went to the mainlog already."""

    def __init__(self, message: str, exit_status: int = 1,
                 logged: bool = False, panic: bool = False,
                 mid: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status
        self.logged = logged
        self.panic = panic      # Exim's LOG_PANIC_DIE: main+panic+stderr
        self.mid = mid


@dataclass
class LocalOptions:
    extract_recipients: bool = False       # -t
    dot_ends: bool = True                  # False with -i / -oi
    sender_name: str | None = None         # -F
    login: str | None = None               # default: the real uid's name
    uid: int | None = None
    gid: int | None = None
    gecos: str | None = None
    received_protocol: str | None = None   # -oMr (trusted callers)
    trusted: bool = True
    now: float | None = None               # fixed clock for tests
    log: LogWriter | None = None
    bounce_parent: str | None = None       # R= on the <= line of a bounce
    local_error: bool = False              # -localerror (Exim's own message)


@dataclass
class ReceiveResult:
    id: str
    message: SpoolMessage
    size: int
    recipients: list[str] = field(default_factory=list)
    queued: bool = False        # an ACL froze or queued it: no delivery now


def localhost_number(value: Any) -> int | None:
    """The localhost_number option as an int (None when unset).  The
    option is expanded in Exim; a plain number is all eximpy accepts
    without the expander."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ReceiveError(f"localhost_number value is not a number: "
                           f"{value}", 1) from None
    if not 0 <= n <= 16:
        raise ReceiveError("localhost_number is greater than 16", 1)
    return n


def _matches_any(address: str, patterns: str) -> bool:
    """untrusted_set_sender: ``*`` or a colon list of simple patterns
    (``*@domain``, ``^regex``, exact address).  Lookups in the list are
    not supported here."""
    for pat in (p.strip() for p in patterns.split(":")):
        if not pat:
            continue
        if pat == "*" or pat.lower() == address.lower():
            return True
        if pat.startswith("^") and re.search(pat, address):
            return True
        if pat.startswith("*") and address.lower().endswith(pat[1:].lower()):
            return True
    return False


def _untrusted_sender_header(msg: SpoolMessage, headers: list[Header],
                             added: list[Header], login: str, domain: str,
                             opt: "LocalOptions", gecos: str | None,
                             retain: bool) -> None:
    """spec 48.16: for an untrusted local caller, an existing Sender: is
    removed (unless local_sender_retain) and, when From: is not the
    caller's login@qualify_domain, a Sender: with that address is added
    (and becomes the envelope sender)."""
    own = f"{login}@{domain}"
    if not retain:
        for h in headers:
            if h.type == "S":
                h.type = HTYPE_OLD
    froms = [h for h in headers + added if h.type == "F"]
    addrs = [a for _, a in email.utils.getaddresses(
        [h.value.replace("\n", " ") for h in froms])]
    if len(addrs) == 1 and addrs[0].lower() == own.lower():
        return
    name = opt.sender_name if opt.sender_name is not None else gecos
    text = f"Sender: {name} <{own}>\n" if name else f"Sender: {own}\n"
    added.append(Header("S", text))
    if msg.sender:
        msg.sender = own


def size_value(value: Any) -> int:
    """An Exim size (``200``, ``50M``, ``10K``) as bytes; 0 when unset."""
    if value is None or value == "":
        return 0
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([KkMmGg]?)\s*", str(value))
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 ** 2,
                              "g": 1024 ** 3}[m.group(2).lower()]


def tod_full(t: float) -> str:
    """Exim's tod_full: ``Wed, 05 Nov 2026 13:36:57 +0000`` (local time)."""
    lt = time.localtime(t)
    off = lt.tm_gmtoff // 60
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return (f"{_DAYS[lt.tm_wday]}, {lt.tm_mday:02d} {_MONTHS[lt.tm_mon - 1]} "
            f"{lt.tm_year} {lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} "
            f"{sign}{off // 60:02d}{off % 60:02d}")


def read_message(stream: BinaryIO, dot_ends: bool) -> bytes:
    """The message bytes: CRLF and a bare CR each become LF (as Exim does
    for non-SMTP input), a lone ``.`` line ends the message if
    ``dot_ends``, and the result ends with a newline."""
    out = bytearray()
    for raw in iter(stream.readline, b""):
        for line in raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n") \
                .splitlines(keepends=True):
            if dot_ends and line in (b".\n", b"."):
                if out and not out.endswith(b"\n"):
                    out += b"\n"
                return bytes(out)
            out += line
    if out and not out.endswith(b"\n"):
        out += b"\n"
    return bytes(out)


def split_message(data: bytes) -> tuple[list[bytes], bytes]:
    """(header texts with their newlines, body).  Header continuation lines
    stay with their header; a line that is neither ends the headers."""
    headers: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        end = n if end < 0 else end + 1
        line = data[pos:end]
        if line == b"\n":
            return headers, data[end:]
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += line
        elif _HEADER_RE.match(line):
            headers.append(line)
        else:
            return headers, data[pos:]
        pos = end
    return headers, b""


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def extract_address(text: str) -> str:
    """The address in an RFC 2822 mailbox (``Name <a@b>`` -> ``a@b``)."""
    t = text.strip()
    if "<" in t and t.endswith(">"):
        return t[t.rindex("<") + 1:-1].strip()
    name, addr = email.utils.parseaddr(t)
    return addr or t


def qualify(address: str, domain: str) -> str:
    if address and "@" not in address:
        return f"{address}@{domain}"
    return address


def _addresses_from_headers(headers: list[Header]) -> list[str]:
    values = [h.value for h in headers
              if h.type != HTYPE_OLD and h.name.lower() in ("to", "cc", "bcc")]
    out = []
    for _name, addr in email.utils.getaddresses(
            [v.replace("\n", " ") for v in values]):
        if addr:
            out.append(addr)
    return out


def default_received_text(msg: SpoolMessage, primary_hostname: str,
                          received_for: str | None) -> str:
    """Exim 4.96's default received_header_text, as it expands for a
    local or SMTP message (used when eximpy.expand is not available)."""
    g = ["Received: "]
    if msg.host_address:
        # $sender_rcvhost: "name ([ip] helo=.. ident=..)" or "[ip] (...)"
        extra = []
        if msg.helo_name and msg.helo_name != msg.host_name:
            extra.append(f"helo={msg.helo_name}")
        if msg.ident:
            extra.append(f"ident={msg.ident}")
        if msg.host_name:
            host = f"{msg.host_name} ([{msg.host_address}]" + \
                "".join(" " + e for e in extra) + ")"
        else:
            host = f"[{msg.host_address}]" + \
                (f" ({' '.join(extra)})" if extra else "")
        g.append(f"from {host}\n\t")
    else:
        if msg.ident:
            g.append(f"from {msg.ident} ")
        if msg.helo_name:
            g.append(f"(helo={msg.helo_name})\n\t")
    g.append(f"by {primary_hostname} ")
    if msg.received_protocol:
        g.append(f"with {msg.received_protocol} ")
    if msg.tls_ver:
        g.append(f" ({msg.tls_ver})")
    g.append(f"(Exim {VERSION})\n\t")
    if msg.sender:
        g.append(f"(envelope-from <{msg.sender}>)\n\t")
    g.append(f"id {msg.id}")
    if received_for:
        g.append(f"\n\tfor {received_for}")
    return "".join(g)


def _received_header(config: Any, msg: SpoolMessage, primary: str,
                     received_for: str | None, now: float) -> str | None:
    """The Received: header text (with its ``;\\n\\t<date>``).  A failed
    or forced-to-fail expansion of received_header_text is Exim's panic:
    ReceiveError(panic=True).  If eximpy.expand cannot be used at all (not importable),
    Exim's default text is built directly."""
    from eximpy.errors import ExpansionError, ExpansionForcedFail
    from eximpy.spool.layout import config_get
    text = None
    template = config_get(config, "received_header_text")
    expander: Any = None
    try:
        from eximpy.expand import ExpandContext, expand_string
        expander = expand_string
    except Exception:           # the expander is not usable in this tree
        expander = None
    if template and expander is not None:
        variables = {
            "sender_address": msg.sender, "sender_ident": msg.ident or "",
            "received_protocol": msg.received_protocol or "",
            "message_exim_id": msg.id, "message_id": msg.id,
            "primary_hostname": primary, "version_number": VERSION,
            "received_for": received_for or "",
            "sender_helo_name": msg.helo_name or "",
            "sender_host_address": msg.host_address or "",
            "sender_rcvhost": "", "tls_in_ver": msg.tls_ver or "",
            "tls_in_cipher_std": "",
        }
        try:
            text = expander(template, ExpandContext(config=config,
                                                    variables=variables))
        except (ExpansionForcedFail, ExpansionError) as e:
            # Exim 4.96 panics for both (the manual's "forced failure adds
            # no header" is not what the code does).
            raise ReceiveError(f"Expansion of \"{template}\" "
                               f"(received_header_text) failed: {e}", 1,
                               panic=True, mid=msg.id) from None
        except (ImportError, SyntaxError):
            text = None         # expander modules incomplete: fall back
    if text is None:
        text = default_received_text(msg, primary, received_for)
    if not text.endswith("\n"):
        text += ";\n\t" + tod_full(now) + "\n"
    return text


def receive_local(config: Any, sender: str | None, recipients: list[str],
                  input_stream: BinaryIO,
                  options: LocalOptions | None = None) -> ReceiveResult:
    """Receive one non-SMTP message and spool it.

    ``sender`` is the -f value (None: the caller's own address; "" or
    "<>": the null sender).  ``recipients`` are the command-line
    arguments.  Raises ReceiveError (text and exit status as Exim) when
    there is nothing to deliver to.
    """
    opt = options or LocalOptions()
    from eximpy.spool.layout import config_get

    def g(name: str, default: Any = None) -> Any:
        return config_get(config, name, default)
    start = time.time() if opt.now is None else opt.now
    primary = g("primary_hostname") or os.uname().nodename
    qualify_domain = g("qualify_domain") or primary
    qualify_recipient = g("qualify_recipient") or qualify_domain

    uid = os.getuid() if opt.uid is None else opt.uid
    gid = os.getgid() if opt.gid is None else opt.gid
    login, gecos = opt.login, opt.gecos
    if login is None:
        try:
            pw = pwd.getpwuid(uid)
            login, gecos = pw.pw_name, gecos if gecos is not None else \
                pw.pw_gecos.split(",")[0]
        except KeyError:
            login = str(uid)
    mid = new_message_id(localhost_number(g("localhost_number")),
                         now=opt.now)

    msg = SpoolMessage(id=mid, originator_login=login, originator_uid=uid,
                       originator_gid=gid, tls_resumption="A")
    msg.received_time = int(start)
    msg.received_time_usec = int((start - int(start)) * 1_000_000)
    msg.ident = login
    msg.received_protocol = (opt.received_protocol if opt.trusted
                             and opt.received_protocol else "local")
    msg.allow_unqualified_recipient = True
    msg.allow_unqualified_sender = True
    msg.deliver_firsttime = True
    msg.local_error_message = opt.local_error

    data = read_message(input_stream, opt.dot_ends)
    # A leading mbox "From " line (uucp_from_pattern) is removed; for a
    # trusted caller without -f its address becomes the sender.
    from_line_sender = None
    first = data.split(b"\n", 1)[0]
    fm = _UUCP_FROM_RE.match(_s(first)) if first.startswith(b"From ") \
        else None
    rest = data[len(first) + 1:] if fm else data
    untrusted_ok = False
    if sender is not None and not opt.trusted:
        # Untrusted callers may only ask for <>, unless untrusted_set_sender
        # allows the address (then -sender_set_untrusted is recorded).
        pats = str(g("untrusted_set_sender") or "")
        cand = extract_address(sender) if sender not in ("", "<>") else ""
        untrusted_ok = cand == "" or _matches_any(
            qualify(cand, qualify_domain), pats)
    if sender is not None and (opt.trusted or untrusted_ok):
        s = extract_address(sender) if sender not in ("", "<>") else ""
        msg.sender = qualify(s, qualify_domain)
        if not opt.trusted and s:
            msg.sender_set_untrusted = True
    elif fm is not None and opt.trusted:
        from_line_sender = fm.group(1)
        msg.sender = qualify(from_line_sender, qualify_domain)
        msg.auth_id = login
    else:
        msg.sender = f"{login}@{qualify_domain}"
        msg.sender_local = True
        msg.auth_id = login
        msg.auth_sender = msg.sender

    limit = size_value(g("message_size_limit"))
    too_big = limit > 0 and len(data) > limit

    raw_headers, body = split_message(rest)
    headers = [Header.make(_s(h)) for h in raw_headers]

    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    msg.max_received_linelength = max((len(ln) for ln in lines), default=0)
    msg.body_linecount = body.count(b"\n")
    msg.body_zerocount = body.count(b"\0")

    cmdline = [qualify(extract_address(r), qualify_recipient)
               for r in recipients]
    if opt.extract_recipients:
        found = [qualify(a, qualify_recipient)
                 for a in _addresses_from_headers(headers)]
        for h in headers:
            if h.name.lower() == "bcc":
                h.type = HTYPE_OLD
        removed = set(cmdline)
        rcpts = []
        for a in found:
            if a not in removed and a not in rcpts:
                rcpts.append(a)
        for a in reversed(cmdline):
            msg.non_recipients.add(a)
    else:
        rcpts = cmdline

    # (received_headers_max is checked when the message is delivered, as
    # Exim does: a local submission is not refused for it.)
    if not rcpts:
        if opt.extract_recipients:
            if opt.log is not None:
                opt.log.main("no recipients found in headers", mid)
            raise ReceiveError(f"{mid} no recipients found in headers", 1,
                               logged=True)
        raise ReceiveError("no recipients", 1)
    msg.recipients = [Recipient(a) for a in rcpts]

    # The non-SMTP ACLs (eximpy.acl.nonsmtp).  Exim runs the start ACL
    # before reading; the envelope it sees is the same.
    acls = NonSmtpAcls(config, opt.log, login)
    if acls.active:
        acls.start(msg.sender, cmdline if not opt.extract_recipients else [])
    fixups = not acls.suppress_local_fixups

    received_for = rcpts[0] if len(rcpts) == 1 else None
    rtext = _received_header(config, msg, primary, received_for, start)
    names = {h.name.lower() for h in headers if h.type != HTYPE_OLD}
    # With Resent- headers the fix-ups are Resent-Message-Id: and
    # Resent-Date:, put at the top (after Received:), and Resent-From:.
    prefix = "Resent-" if any(n.startswith("resent-") for n in names) \
        else ""
    top: list[Header] = []
    added: list[Header] = []
    if fixups and f"{prefix}message-id".lower() not in names:
        dom = g("message_id_header_domain") or primary
        text = g("message_id_header_text")
        local = f"E{mid}" + (f"-{text}" if text else "")
        (top if prefix else added).append(
            Header.make(f"{prefix}Message-Id: <{local}@{dom}>\n"))
    if prefix and fixups and "resent-from" not in names and msg.sender:
        added.append(Header.make(f"Resent-From: {msg.sender}\n"))
    elif fixups and not prefix and "from" not in names and msg.sender:
        if msg.sender_local:
            name = opt.sender_name if opt.sender_name is not None else gecos
            fr = f"{name} <{msg.sender}>" if name else msg.sender
        else:
            fr = msg.sender
        added.append(Header.make(f"From: {fr}\n"))
    if fixups and not opt.trusted and \
            g("local_from_check", True) is not False:
        _untrusted_sender_header(msg, headers, added, login,
                                 qualify_domain, opt, gecos,
                                 bool(g("local_sender_retain")))
    if fixups and f"{prefix}date".lower() not in names:
        h = Header.make(f"{prefix}Date: {tod_full(start)}\n")
        if prefix:
            top.insert(0, h)
        else:
            added.append(h)
    if too_big:
        # Exim stops reading one byte past the limit; the rejectlog gets
        # the envelope and the headers as fixed up so far (no Received:).
        if opt.log is not None:
            block = logfmt.reject_log_block(
                msg.sender, rcpts, [(h.type, h.text) for h in headers + added
                                    if h.type != HTYPE_OLD])
            opt.log.reject(f"rejected from <{msg.sender}> U={login}: "
                           f"message too big: read={limit + 1} max={limit}",
                           mid, block)
        raise ReceiveError(f"message rejected: message too big "
                           f"(max={limit})", 1)
    msg.headers = ([Header(HTYPE_RECEIVED, rtext)] if rtext is not None
                   else []) + top + headers + added

    layout = SpoolLayout.from_config(config)
    layout.ensure_dirs(mid)
    df = data_file.create(layout, mid)
    try:
        df.write(body)
        df.finish()
        msg.body_size = len(body)
        r = acls.mime(mid, msg.sender, rcpts, msg.headers, len(data),
                      body, msg.received_protocol)
        if r is not None and r.rc != OK:
            # Exim 4.96 ends a non-SMTP submission the MIME ACL refused
            # with status 1 and no message.
            df.abandon()
            acls.done(r)
            raise ReceiveError("", 1, logged=True, mid=mid)
        r = acls.check(mid, msg.sender, rcpts, msg.headers, len(data),
                       body, msg.received_protocol)
        acls.done(r)
        if r is not None and r.rc not in (OK, DISCARD):
            df.abandon()
            _nonsmtp_rejected(msg, rcpts, r, opt.log)
        place_added_headers(msg.headers, acls.added_headers)
        msg.acl_vars = {k[4:]: v for k, v in acls.acl_m.items()}
        mark_tainted_acl_vars(msg)
        if acls.frozen_by is not None:
            msg.frozen = True
            msg.frozen_at = int(time.time() if opt.now is None else opt.now)
        done = time.time() if opt.now is None else opt.now
        msg.received_time_complete = (int(done),
                                      int((done - int(done)) * 1_000_000))
        if r is not None and r.rc == DISCARD:
            df.abandon()
        else:
            header_file.write(layout, msg)
    except BaseException:
        df.abandon()
        raise
    df.close()

    size = msg.message_size
    if opt.log is not None:
        sel = opt.log.selector
        mh = msg.header("message-id")
        msgid_val = None
        if mh is not None:
            v = mh.value.strip()
            msgid_val = v[1:-1] if v.startswith("<") and v.endswith(">") \
                else v
        subj = msg.header("subject")
        fields: dict[str, Any] = dict(
            ident=msg.ident, protocol=msg.received_protocol,
            size=size, message_id_header=msgid_val,
            message_id_created="message-id" not in names,
            subject=subj.value if subj else None,
            receive_time=(time.time() - start) if opt.now is None else 0.0,
            body_8bitmime=0)
        line = logfmt.received(sel, msg.sender, recipients=rcpts,
                               bounce_parent=opt.bounce_parent, **fields)
        opt.log.main(line, mid)
        if g("message_logs") is not False:
            # The message log gets the line without "from <>" and "for ...".
            msel = logfmt.LogSelector(sel.on - {"received_sender",
                                                "received_recipients"})
            mline = logfmt.received(msel, msg.sender, **fields)
            if r is None or r.rc != DISCARD:
                msglog.append(layout, mid, "Received from " + mline[3:],
                              now=opt.now, millisec="millisec" in sel)
        if r is not None and r.rc == DISCARD:
            extra = f": {r.log_message}" if r.log_message else ""
            opt.log.main("=> blackhole (non-SMTP ACL discarded recipients)"
                         f"{extra}", mid)
            opt.log.main("Completed", mid)
        elif acls.frozen_by is not None:
            opt.log.main(f"frozen by {acls.frozen_by}", mid)
        elif acls.queued_by is not None and "delay_delivery" in sel:
            opt.log.main(f"no immediate delivery: queued by "
                         f"{acls.queued_by}", mid)
    if r is not None and r.rc == DISCARD:
        # Exim exits 1 when every recipient was discarded.
        raise ReceiveError("", 1, logged=True, mid=mid)
    return ReceiveResult(mid, msg, size, rcpts, queued=acls.queued_by
                         is not None or acls.frozen_by is not None)


def _nonsmtp_rejected(msg: SpoolMessage, rcpts: list[str], r: Any,
                      log: LogWriter | None) -> None:
    """acl_not_smtp rejected the message (any rejection is permanent)."""
    if log is not None:
        block = logfmt.reject_log_block(
            msg.sender, rcpts, [(h.type, h.text) for h in msg.headers
                                if h.type != HTYPE_OLD])
        log.reject(
            f"F=<{msg.sender}> rejected by non-SMTP ACL: "
            f"{r.log_message if r.log_message else 'NULL'}", msg.id, block)
    raise ReceiveError("message rejected by non-SMTP ACL: " +
                       (r.user_message or "local configuration problem"), 1)
