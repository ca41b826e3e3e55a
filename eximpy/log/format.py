"""Log line formats: one builder per line type, and log_selector.

SUMMARY
    LogSelector.parse(text) -> LogSelector   (ConfigError on bad settings)
    LogSelector.has(name) / "name" in selector
    timestamp(now, millisec, timezone) / line_prefix(...)
    printtime(secs) / timediff(secs, millisec)
    received(...)            "<= sender ..." (also "(=" fakereject)
    delivered(...)           "=> / -> / *> / >>" lines
    failed(...)              "** addr ...: reason"
    deferred(...)            "== addr ... defer (errno): reason"
    completed(...), frozen_text(), queue_run_start/end(...), arguments()
    rejected(...)            "H=... rejected RCPT <a>: msg" and friends
    reject_log_block(...)    the Envelope-from/-to + headers block
    parse_line(line) -> LogLine   (for exigrep/eximstats)

DESCRIPTION
    Builders return the text that follows the timestamp, pid and message
    id, exactly as Exim 4.96 writes it; eximpy.log.writer adds the prefix.
    Tags, in Exim's order: on ``<=`` lines H= (with :port under
    incoming_port) I= U= P= L X= CV= DN= SNI= A= K S= M8S= RT= id=/id*=
    T= from <> for ...; on delivery lines F= P= R= T= S= H= I= X= CV= DN=
    A= K L C= QT= DT=.  ``T="..."`` and ``C="..."`` quote like Exim's
    string_printing (``"`` and ``\\`` escaped, non-printing octal).

    log_selector: the 56 names Exim 4.96 accepts (plus the
    ``rejected_headers`` alias and the undocumented protocol_detail), the
    18 default ones, ``+all`` / ``-all``, ``+x`` / ``-x``, with Exim's two
    error messages ("unknown log_selector setting: +x", "malformed
    log_selector setting: + or - expected but found \\"...\\"").

SEE ALSO
    spec chapter "Log files" (53); EXIM-INVENTORY 3.5, 3.6.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from eximpy.errors import ConfigError

SELECTOR_NAMES = (
    "8bitmime", "acl_warn_skipped", "address_rewrite", "all_parents",
    "arguments", "connection_reject", "delay_delivery", "deliver_time",
    "delivery_size", "dkim", "dkim_verbose", "dnslist_defer", "dnssec",
    "etrn", "host_lookup_failed", "ident_timeout", "incoming_interface",
    "incoming_port", "lost_incoming_connection", "millisec", "msg_id",
    "msg_id_created", "outgoing_interface", "outgoing_port", "pid",
    "pipelining", "protocol_detail", "proxy", "queue_run", "queue_time",
    "queue_time_exclusive", "queue_time_overall", "receive_time",
    "received_recipients", "received_sender", "rejected_header",
    "retry_defer", "return_path_on_delivery", "sender_on_delivery",
    "sender_verify_fail", "size_reject", "skip_delivery",
    "smtp_confirmation", "smtp_connection", "smtp_incomplete_transaction",
    "smtp_mailauth", "smtp_no_mail", "smtp_protocol_error",
    "smtp_syntax_error", "subject", "tls_certificate_verified",
    "tls_cipher", "tls_peerdn", "tls_resumption", "tls_sni",
    "unknown_in_list",
)
ALIASES = {"rejected_headers": "rejected_header"}
DEFAULT_SELECTORS = frozenset((
    "acl_warn_skipped", "connection_reject", "delay_delivery", "dkim",
    "dnslist_defer", "etrn", "host_lookup_failed",
    "lost_incoming_connection", "msg_id", "queue_run", "rejected_header",
    "retry_defer", "sender_verify_fail", "size_reject", "skip_delivery",
    "smtp_confirmation", "tls_certificate_verified", "tls_cipher",
))
_NAME_RE = re.compile(r"[A-Za-z0-9_]*")


@dataclass(frozen=True)
class LogSelector:
    """The set of optional log items that are on."""

    on: frozenset[str] = DEFAULT_SELECTORS

    @classmethod
    def parse(cls, text: str | None) -> "LogSelector":
        """Parse a log_selector value as Exim's decode_bits() does."""
        on = set(DEFAULT_SELECTORS)
        s = text or ""
        i = 0
        while True:
            while i < len(s) and s[i].isspace():
                i += 1
            if i >= len(s):
                break
            sign = s[i]
            if sign not in "+-":
                raise ConfigError("malformed log_selector setting: + or - "
                                  f"expected but found \"{s[i:]}\"")
            m = _NAME_RE.match(s, i + 1)
            assert m is not None
            name = m.group(0)
            i = m.end()
            canon = ALIASES.get(name, name)
            if canon == "all":
                if sign == "+":
                    on |= set(SELECTOR_NAMES)
                else:
                    on.clear()
            elif canon in SELECTOR_NAMES:
                if sign == "+":
                    on.add(canon)
                else:
                    on.discard(canon)
            else:
                raise ConfigError(f"unknown log_selector setting: {sign}{name}")
        return cls(frozenset(on))

    @classmethod
    def from_config(cls, config: object) -> "LogSelector":
        from eximpy.spool.layout import config_get
        return cls.parse(config_get(config, "log_selector"))

    def has(self, name: str) -> bool:
        return name in self.on

    def __contains__(self, name: object) -> bool:
        return name in self.on


# --- times -----------------------------------------------------------

def timestamp(now: float | None = None, millisec: bool = False,
              timezone: bool = False) -> str:
    """``YYYY-MM-DD HH:MM:SS[.mmm][ +ZZZZ]`` in local time."""
    t = time.time() if now is None else now
    lt = time.localtime(t)
    s = time.strftime("%Y-%m-%d %H:%M:%S", lt)
    if millisec:
        s += f".{int((t - int(t)) * 1000):03d}"
    if timezone:
        off = lt.tm_gmtoff // 60
        sign = "+" if off >= 0 else "-"
        off = abs(off)
        s += f" {sign}{off // 60:02d}{off % 60:02d}"
    return s


def printtime(secs: int) -> str:
    """Exim's readconf_printtime: ``1w2d3h4m5s`` with zero parts left out,
    ``0s`` for zero, a leading ``-`` for negative values."""
    out = "-" if secs < 0 else ""
    secs = abs(int(secs))
    if secs == 0:
        return out + "0s"
    for unit, n in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60),
                    ("s", 1)):
        q, secs = divmod(secs, n)
        if q:
            out += f"{q}{unit}"
    return out


def timediff(secs: float, millisec: bool = False) -> str:
    """QT= / DT= / RT= values: ``0.014s`` under +millisec below 5 s,
    otherwise printtime of whole seconds."""
    if secs < 0:
        secs = 0.0
    whole = int(secs)
    if whole >= 5 or not millisec:
        return printtime(whole)
    return f"{whole}.{int((secs - whole) * 1000):03d}s"


# --- quoting ---------------------------------------------------------

def printing(s: str, allow_tab: bool = False) -> str:
    """Exim's string_printing(): every byte outside printable ASCII is
    escaped (``\\n``, ``\\r``, ``\\t`` or ``\\ooo``, so UTF-8 shows as
    octal, as in Exim's logs); a backslash stays as it is; a tab is kept
    as it is when ``allow_tab``."""
    out = bytearray()
    for c in s.encode("utf-8", "surrogateescape"):
        if 32 <= c < 127 or (c == 9 and allow_tab):
            out.append(c)
        elif c == 10:
            out += b"\\n"
        elif c == 13:
            out += b"\\r"
        elif c == 9:
            out += b"\\t"
        elif c in _NAMED_ESCAPES:
            out += _NAMED_ESCAPES[c]
        else:
            out += b"\\%03o" % c
    return out.decode("ascii")


_NAMED_ESCAPES = {8: b"\\b", 11: b"\\v", 12: b"\\f"}


def quoted(s: str, allow_tab: bool = False) -> str:
    """``"text"`` as in T="...", C="..." and DN="...": Exim puts a
    backslash before each ``"`` and ``\\``, then escapes non-printing
    bytes (string_printing)."""
    return '"' + printing(s.replace("\\", "\\\\").replace('"', '\\"'),
                          allow_tab) + '"'


def host_text(name: str | None, helo: str | None, address: str | None,
              port: int | None = None, ident: str | None = None) -> str:
    """Exim's sender_fullhost/host_and_ident for H=: ``name (helo) [ip]``
    with ``:port`` appended when port is given (incoming_port)."""
    parts = []
    if name:
        parts.append(name)
        if helo and helo.lower() != name.lower():
            parts.append(f"({helo})")
    elif helo:
        parts.append(f"({helo})")
    if address:
        a = f"[{address}]"
        if port:
            a += f":{port}"
        parts.append(a)
    return " ".join(parts)


# --- message lines ---------------------------------------------------

def received(sel: LogSelector, sender: str, *, fakereject: bool = False,
             bounce_parent: str | None = None,
             host_name: str | None = None, helo: str | None = None,
             host_address: str | None = None, host_port: int = 0,
             interface_address: str | None = None, interface_port: int = 0,
             ident: str | None = None, protocol: str | None = None,
             pipelining: str | None = None,
             tls_cipher: str | None = None, tls_cert_verified: str | None = None,
             tls_peerdn: str | None = None, tls_sni: str | None = None,
             tls_resumed: bool = False,
             authenticator: str | None = None, auth_id: str | None = None,
             auth_sender: str | None = None, chunking: bool = False,
             prdr: bool = False,
             size: int = 0, body_8bitmime: int | None = None,
             receive_time: float | None = None,
             message_id_header: str | None = None,
             message_id_created: bool = False, subject: str | None = None,
             recipients: Sequence[str] = ()) -> str:
    """The ``<=`` line (after the id).

    ``message_id_header`` is the Message-ID: value without ``<>``;
    ``message_id_created`` says eximpy added the header (logged as id*=
    only with +msg_id_created).  ``tls_cert_verified`` is "yes"/"no"/"dane".
    ``pipelining`` is the L field text after "L" (e.g. ".-") or None.
    """
    g = ["(=" if fakereject else "<=", " ", sender or "<>"]
    if bounce_parent:
        g.append(f" R={bounce_parent}")
    if host_address or host_name or helo:
        g.append(" H=" + host_text(host_name, helo, host_address,
                                   host_port if "incoming_port" in sel
                                   else None))
    if interface_address and "incoming_interface" in sel:
        g.append(f" I=[{interface_address}]:{interface_port}")
    if ident:
        g.append(f" U={ident}")
    if protocol:
        g.append(f" P={protocol}")
    if pipelining is not None and "pipelining" in sel:
        g.append(f" L{pipelining}")
    if tls_cipher and "tls_cipher" in sel:
        g.append(f" X={tls_cipher}")
        if tls_resumed and "tls_resumption" in sel:
            g.append("*")
    if tls_cipher and "tls_certificate_verified" in sel and tls_cert_verified:
        g.append(f" CV={tls_cert_verified}")
    if tls_peerdn and "tls_peerdn" in sel:
        g.append(" DN=" + quoted(tls_peerdn))
    if tls_sni and "tls_sni" in sel:
        g.append(" SNI=" + quoted(tls_sni))
    if authenticator:
        a = f" A={authenticator}"
        if auth_id:
            a += f":{auth_id}"
        if auth_sender and "smtp_mailauth" in sel:
            a += f":{auth_sender}"
        g.append(a)
    if prdr:
        g.append(" PRDR")
    if chunking:
        g.append(" K")
    g.append(f" S={size}")
    if "8bitmime" in sel and body_8bitmime is not None:
        g.append(f" M8S={body_8bitmime}")
    if "receive_time" in sel and receive_time is not None:
        g.append(" RT=" + timediff(receive_time, "millisec" in sel))
    if message_id_header is not None:
        if not message_id_created and "msg_id" in sel:
            g.append(f" id={message_id_header}")
        elif message_id_created and "msg_id_created" in sel:
            g.append(f" id*={message_id_header}")
    if subject is not None and "subject" in sel:
        g.append(" T=" + quoted(subject.strip(), allow_tab=True))
    if "received_sender" in sel:
        g.append(f" from <{sender}>")
    if recipients and "received_recipients" in sel:
        g.append(" for " + " ".join(recipients))
    return "".join(g)


def delivered(sel: LogSelector, address: str, *, flag: str = "=>",
              original: str | None = None, parents: Sequence[str] = (),
              sender: str | None = None, return_path: str | None = None,
              queue: str | None = None, router: str | None = None,
              transport: str | None = None, size: int | None = None,
              host: str | None = None, host_address: str | None = None,
              host_port: int | None = None,
              interface: str | None = None, interface_port: int = 0,
              tls_cipher: str | None = None,
              tls_cert_verified: str | None = None,
              tls_peerdn: str | None = None,
              authenticator: str | None = None, chunking: bool = False,
              pipelining: bool = False, confirmation: str | None = None,
              shadow: str | None = None,
              queue_time: float | None = None,
              deliver_time: float | None = None) -> str:
    """``=>`` (and ``->``, ``*>``, ``>>``) lines.

    ``address`` is what was delivered to (local part, file, pipe or full
    address); ``original`` the top-level address, logged as `` <orig>``
    when it differs.  ``sender`` is logged as F=<> under
    +sender_on_delivery, ``return_path`` as P=<> under
    +return_path_on_delivery.
    """
    ms = "millisec" in sel
    g = [flag, " ", address]
    if parents and "all_parents" in sel:
        g.append(" (" + ") (".join(parents) + ")")
    if original and original != address:
        g.append(f" <{original}>")
    if sender is not None and "sender_on_delivery" in sel:
        g.append(f" F=<{sender}>")
    if return_path is not None and "return_path_on_delivery" in sel:
        g.append(f" P=<{return_path}>")
    if queue:
        g.append(f" Q={queue}")
    if router:
        g.append(f" R={router}")
    if transport:
        g.append(f" T={transport}")
    if size is not None and "delivery_size" in sel:
        g.append(f" S={size}")
    if host is not None or host_address is not None:
        h = f" H={host or host_address}"
        if host_address:
            h += f" [{host_address}]"
            if host_port and "outgoing_port" in sel:
                h += f":{host_port}"
        g.append(h)
        if interface and "outgoing_interface" in sel:
            g.append(f" I=[{interface}]:{interface_port}")
        if tls_cipher and "tls_cipher" in sel:
            g.append(f" X={tls_cipher}")
        if tls_cipher and tls_cert_verified and \
                "tls_certificate_verified" in sel:
            g.append(f" CV={tls_cert_verified}")
        if tls_peerdn and "tls_peerdn" in sel:
            g.append(" DN=" + quoted(tls_peerdn))
        if authenticator:
            g.append(f" A={authenticator}")
        if pipelining and "pipelining" in sel:
            g.append(" L")
        if chunking:
            g.append(" K")
        if confirmation is not None and "smtp_confirmation" in sel:
            g.append(" C=" + quoted(confirmation))
    if shadow:
        g.append(f" ST={shadow}")
    if queue_time is not None and "queue_time" in sel:
        g.append(" QT=" + timediff(queue_time, ms))
    if deliver_time is not None and "deliver_time" in sel:
        g.append(" DT=" + timediff(deliver_time, ms))
    return "".join(g)


def _addr_head(sel: LogSelector, flag: str, address: str,
               original: str | None, sender: str | None,
               return_path: str | None, router: str | None,
               transport: str | None, host: str | None,
               host_address: str | None) -> list[str]:
    g = [flag, " ", address]
    if original and original != address:
        g.append(f" <{original}>")
    if sender is not None and "sender_on_delivery" in sel:
        g.append(f" F=<{sender}>")
    if return_path is not None and "return_path_on_delivery" in sel:
        g.append(f" P=<{return_path}>")
    if router:
        g.append(f" R={router}")
    if transport:
        g.append(f" T={transport}")
    if host is not None or host_address is not None:
        g.append(f" H={host or host_address}")
        if host_address:
            g.append(f" [{host_address}]")
    return g


def failed(sel: LogSelector, address: str, reason: str | None, *,
           original: str | None = None, sender: str | None = None,
           return_path: str | None = None, router: str | None = None,
           transport: str | None = None, host: str | None = None,
           host_address: str | None = None,
           deliver_time: float | None = None) -> str:
    """``** addr [<orig>] [F=] [P=] [R=] [T=] [H=]: reason [DT=]``."""
    g = _addr_head(sel, "**", address, original, sender, return_path,
                   router, transport, host, host_address)
    if reason:
        g.append(": " + printing(reason))
    if deliver_time is not None and "deliver_time" in sel:
        g.append(" DT=" + timediff(deliver_time, "millisec" in sel))
    return "".join(g)


def deferred(sel: LogSelector, address: str, reason: str | None, *,
             errno_value: int | None = None, original: str | None = None,
             sender: str | None = None, router: str | None = None,
             transport: str | None = None, host: str | None = None,
             host_address: str | None = None,
             deliver_time: float | None = None) -> str:
    """``== addr ... defer (errno): reason [DT=]``."""
    g = _addr_head(sel, "==", address, original, sender, None, router,
                   transport, host, host_address)
    if errno_value is not None:
        g.append(f" defer ({errno_value})")
    if reason:
        g.append(": " + printing(reason))
    if deliver_time is not None and "deliver_time" in sel:
        g.append(" DT=" + timediff(deliver_time, "millisec" in sel))
    return "".join(g)


def retry_not_reached(address: str) -> str:
    return f"== {address} routing defer (-51): retry time not reached"


def completed(sel: LogSelector, queue_time: float | None = None) -> str:
    g = "Completed"
    if queue_time is not None and "queue_time_overall" in sel:
        g += " QT=" + timediff(queue_time, "millisec" in sel)
    return g


def frozen_text(reason: str | None = None) -> str:
    return "Frozen" + (f" ({reason})" if reason else "")


def arguments(cwd: str, argv: Sequence[str]) -> str:
    """The +arguments line: ``cwd=DIR N args: a b "c d"`` (an argument
    with white space is quoted, a tab in it kept, as Exim does)."""
    parts = []
    for a in argv:
        if any(c in a for c in " \t\n"):
            parts.append(quoted(a, allow_tab=True))
        else:
            parts.append(printing(a))
    return f"cwd={cwd} {len(argv)} args: " + " ".join(parts)


def queue_run_start(pid: int, args: str = "") -> str:
    return f"Start queue run: pid={pid}" + (f" {args}" if args else "")


def queue_run_end(pid: int, args: str = "") -> str:
    return f"End queue run: pid={pid}" + (f" {args}" if args else "")


def by_user(what: str, user: str) -> str:
    """``frozen by root``, ``removed by root``, ``cancelled by root``,
    ``unfrozen by root``."""
    return f"{what} by {user}"


def rejected(host: str, what: str, message: str, *,
             ident: str | None = None, sender: str | None = None,
             auth: str | None = None) -> str:
    """``H=... [U=...] [A=...] [F=<s>] rejected <what>: message``; ``what``
    is e.g. ``RCPT <a@b>``, ``after DATA``, ``MAIL <s>``."""
    g = [f"H={host}"]
    if ident:
        g.append(f" U={ident}")
    if auth:
        g.append(f" A={auth}")
    if sender is not None:
        g.append(f" F=<{sender}>")
    g.append(f" rejected {what}")
    if message:
        g.append(": " + printing(message))
    return "".join(g)


def reject_log_block(sender: str, recipients: Iterable[str],
                     headers: Iterable[tuple[str, str]]) -> str:
    """The lines after a rejectlog entry: Envelope-from, Envelope-to, then
    each header prefixed by its -H type letter (two spaces for ordinary
    headers).  ``headers`` is (type letter, text with newlines)."""
    out = [f"Envelope-from: <{sender}>\n"]
    for i, r in enumerate(recipients):
        # Exim's log.c: one Envelope-to:, further recipients indented.
        out.append(f"Envelope-to: <{r}>\n" if i == 0 else f"    <{r}>\n")
    for t, text in headers:
        if t == "*":
            continue
        if not text.endswith("\n"):
            text += "\n"
        out.append(f"{t} {text}")
    return "".join(out)


# --- parsing (exigrep, eximstats) ------------------------------------

_LINE_RE = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d) (?P<time>\d\d:\d\d:\d\d(?:\.\d{3})?)"
    r"(?: (?P<tz>[-+]\d{4}))?(?: \[(?P<pid>\d+)\])?"
    r"(?: (?P<id>[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{2}|"
    r"[0-9A-Za-z]{11}-[0-9A-Za-z]{4})))?"
    r"(?: (?P<rest>.*))?$")
FLAGS = ("<=", "(=", "=>", "->", ">>", "*>", "**", "==")
_TAG_RE = re.compile(r' ([A-Za-z0-9]+\*?)=("(?:[^"\\]|\\.)*"|\S+)')


@dataclass
class LogLine:
    """One parsed mainlog line."""

    date: str
    time: str
    tz: str | None
    pid: int | None
    id: str | None
    rest: str
    flag: str | None = None
    address: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.rest


def parse_line(line: str) -> LogLine | None:
    """Split a mainlog line into its parts (None if it is not one)."""
    m = _LINE_RE.match(line.rstrip("\n"))
    if not m:
        return None
    rest = m.group("rest") or ""
    ll = LogLine(m.group("date"), m.group("time"), m.group("tz"),
                 int(m.group("pid")) if m.group("pid") else None,
                 m.group("id"), rest)
    if ll.id and rest[:2] in FLAGS and rest[2:3] == " ":
        ll.flag = rest[:2]
        body = rest[3:]
        ll.address = body.split(" ", 1)[0]
        for tm in _TAG_RE.finditer(" " + body):
            ll.tags.setdefault(tm.group(1), tm.group(2))
    return ll
