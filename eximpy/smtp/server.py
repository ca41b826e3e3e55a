"""The inbound SMTP session: a sans-IO state machine that behaves as Exim 4.96.

SUMMARY
    Session(config, acl, *, sink, host_address=None, ...)  one connection
    s.start(early=b"") -> bytes banner (after the connect ACL); ``early``
                                is input that came before it (early talker)
    s.feed(data) -> bytes       bytes from the client -> bytes to send
    s.eof() -> bytes            the client closed its side
    s.timeout() -> bytes        smtp_receive_timeout passed
    s.tls_requested             after "220 TLS go ahead": the driver does the
                                handshake, then s.tls_started(TlsInfo) or
                                s.tls_failed(reason)
    s.closed                    the session is over (close the connection)
    s.writer                    optional callable(bytes) set by the driver:
                                `delay` in an ACL sends pending replies first
    SessionOptions              the main options the session uses, read once
    MessageSink (protocol)      .store(ReceivedMessage) -> (code, text, id)
                                [.blackhole(msg, reason) for discarded ones]

DESCRIPTION
    Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP
    STARTTLS AUTH ETRN, with Exim's replies and error texts, its counting of
    syntax/protocol errors (smtp_max_synprot_errors), unknown commands
    (smtp_max_unknown_commands) and non-mail commands
    (smtp_accept_max_nonmail), the synchronisation check for early talkers
    (smtp_enforce_sync; only on a real socket, as in Exim), the ESMTP
    keywords per the *_advertise_hosts options, SIZE checked at MAIL and
    during DATA, and the hook points for ACLs (eximpy.acl.runner: connect
    helo mail mailauth rcpt predata mime data quit notquit vrfy expn etrn
    starttls auth).  AUTH runs the exchanges of eximpy.smtp.auth; VRFY
    routes in verify mode (eximpy.routing.verify, traced in -bh) when its
    ACL accepts; the MIME ACL runs per part (eximpy.smtp.mime).

    What an AclResult carries is acted on (_apply_controls): controls
    no_pipelining, enforce_sync/no_enforce_sync, allow_auth_unadvertised,
    no_multiline_responses for the connection; freeze, queue/queue_only,
    fakereject/fakedefer, submission, suppress_local_fixups, and the
    modifiers queue, remove_header, add_header (identical lines once),
    log_reject_target for the message (passed on in ReceivedMessage).
    In -bh the last message id stays in front of log lines until the next
    DATA, as Exim's message_id global does there.
    The message data is read by eximpy.smtp.dataread with Exim 4.96's
    line-ending rules.  Log lines follow Exim's texts and log_selector.

    The session never touches a socket or a file itself: bytes go in and
    out through feed()/start()/eof(); the accepted message goes to the
    MessageSink (eximpy.smtp.accept.SpoolSink writes the spool, fsyncs and
    logs "<="), whose answer becomes the "250 OK id=..." reply.

    Deliberately stricter than Exim (DESIGN.md section 7): a command line of
    16 KiB or more is answered once and discarded to its end; BDAT sizes
    must be plain decimal numbers that fit; a refused BDAT's chunk is
    discarded, never read as commands; an oversized chunk is consumed
    whole; each message's spool flags are its own; client bytes echoed in
    replies are escaped; after the size limit the data reader keeps its
    line state (no early "." end); QUIT or EOF in the middle of a BDAT
    transaction abandons the message (Exim 4.96 spools it); "BDAT 0" that
    is not LAST is answered (Exim 4.96 crashes); under SMTPUTF8, invalid
    or overlong UTF-8 in addresses is refused.

    DKIM signatures are verified and acl_smtp_dkim runs after the data
    is read, before the MIME and DATA ACLs (eximpy.acl.dkim); in -bh the
    session's own host-list checks are traced (eximpy.cli.host_check).

    PRDR (prdr_enable): after DATA, acl_smtp_data_prdr runs per recipient
    with a 353 and a reply per recipient, then a summary reply.
    Not yet: host_lookup (reverse DNS for
    $sender_host_name), helo_verify_hosts, smtp_ratelimit_*,
    smtp_etrn_serialize; in the MIME ACL decode=, mime_regex and
    message/rfc822 parts.  ETRN starts smtp_etrn_command or "-R domain"
    in a detached process.

SECURITY
    All input is client data.  Replies that echo it go through
    eximpy.smtp.reply.printable().

SEE ALSO
    spec chapter "SMTP processing", "Incoming SMTP messages"; Exim
    smtp_in.c; RFC 5321, 1870 (SIZE), 2920 (PIPELINING), 3030 (CHUNKING).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from eximpy.acl.runner import (DEFER, DISCARD, ERROR, FAIL, FAIL_DROP, OK,
                               WHERE_CODES, WHERE_NAMES, AclEnv, AclResult,
                               MinimalAclRunner, match_host_simple)
from eximpy.acl.content import (CONTENT_KEY, content_scan_for,
                                note_acl_result, spam_spool_values,
                                unspool_after)
from eximpy.smtp.address import AddressError, ParseOptions, extract_address
from eximpy.smtp.dataread import (END_HEADER_LINE, END_HEADER_SIZE,
                                  END_NOT_CRLF, END_SIZE, DataReader)
from eximpy.expand.taint import Tainted
from eximpy.smtp.reply import Reply, message_code, printable

VERSION = "4.96"
SMTP_CMD_BUFFER_SIZE = 16384
HBUFF_SIZE = 20

# Command codes, in Exim's order: those before _NON_SYNC_PIPELINING must be
# synchronised always, those before _NON_SYNC_NON_PIPELINING when
# PIPELINING was not advertised.
(HELO, EHLO, DATA, VRFY, EXPN, NOOP, ETRN, STARTTLS, TLS_AUTH,
 _NON_SYNC_PIPELINING, MAIL, RCPT, RSET, _NON_SYNC_NON_PIPELINING, BDAT,
 AUTH, QUIT, HELP, EOF_CMD, OTHER, BADARG, BADCHAR, BADSYN,
 TOO_MANY_NONMAIL) = range(24)

# name, command, has_arg, index of the is_mail_cmd flag
_CMDS = (
    (b"rset", RSET, False), (b"helo", HELO, True), (b"ehlo", EHLO, True),
    (b"auth", AUTH, True), (b"starttls", STARTTLS, False),
    (b"mail from:", MAIL, True), (b"rcpt to:", RCPT, True),
    (b"data", DATA, False), (b"bdat", BDAT, True), (b"quit", QUIT, False),
    (b"noop", NOOP, True), (b"etrn", ETRN, True), (b"vrfy", VRFY, True),
    (b"expn", EXPN, True), (b"help", HELP, True),
)
# Exim's numeric ACL results, which its PRDR code combines bitwise.
_EXIM_RC = {OK: 0, DEFER: 1, FAIL: 2, ERROR: 3, DISCARD: 7, FAIL_DROP: 15}

# The _CMDS entry a command line's first word can only be (a dict lookup
# instead of trying every entry; no match still tries them all).
_CMD_BY_WORD = {entry[0].split(b" ")[0]: entry for entry in _CMDS}
_HAD_NAMES = {AUTH: "AUTH", DATA: "DATA", BDAT: "BDAT", EHLO: "EHLO",
              ETRN: "ETRN", EXPN: "EXPN", HELO: "HELO", HELP: "HELP",
              MAIL: "MAIL", NOOP: "NOOP", QUIT: "QUIT", RCPT: "RCPT",
              RSET: "RSET", STARTTLS: "STARTTLS", VRFY: "VRFY"}
_SPACE = b" \t\n\v\f\r"

PROTOCOLS_LOCAL = ("local-smtp", "local-smtps", "local-esmtp",
                   "local-esmtps", "local-esmtpa", "local-esmtpsa")
PROTOCOLS = ("smtp", "smtps", "esmtp", "esmtps", "esmtpa", "esmtpsa")

# chunking_state
CHUNKING_NOT_OFFERED, CHUNKING_OFFERED, CHUNKING_ACTIVE, CHUNKING_LAST = \
    range(4)


class _TodCache:
    """The last second _tod_full() formatted (a cache: several per
    message, same second)."""

    sec = -1
    text = ""


def _tod_full(t: float) -> str:
    sec = int(t)
    if sec == _TodCache.sec:
        return _TodCache.text
    text = _tod_full_uncached(sec)
    _TodCache.sec, _TodCache.text = sec, text
    return text


def _tod_full_uncached(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff // 60
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", lt) + \
        f"{sign}{off // 60:02d}{off % 60:02d}"


@dataclass
class ReceivedMessage:
    """What the session hands to the MessageSink after a complete DATA."""

    sender: str
    recipients: list[tuple[str, str | None, int]]   # (address, orcpt, dsn)
    headers: list[bytes]
    body: bytes
    message_size: int
    body_linecount: int
    body_zerocount: int
    max_received_linelength: int
    helo_name: str | None
    host_address: str | None
    host_port: int
    host_name: str | None
    interface_address: str | None
    interface_port: int
    ident: str | None
    received_protocol: str
    received_time: float
    local: bool
    chunking: bool
    body_8bitmime: int
    dsn_ret: int
    dsn_envid: str | None
    smtputf8: bool
    acl_m: dict[str, str]
    acl_c: dict[str, str]
    added_headers: list[str]
    originator_login: str
    originator_uid: int
    originator_gid: int
    pipelining: str | None
    host_tainted: bool = False
    tls: Any = None
    authenticated_id: str | None = None
    authenticator: str | None = None
    auth_pubname: str | None = None
    authenticated_sender: str | None = None
    allow_unqualified_sender: bool = False
    allow_unqualified_recipient: bool = False
    active_hostname: str | None = None
    message_id: str | None = None         # given before the DATA ACL
    # Set by ACL controls and modifiers (see Session._apply_controls):
    frozen_by: str | None = None          # "ACL": spool frozen, log it
    freeze_no_tell: bool = False
    queued_by: str | None = None          # "ACL": queue only, no delivery
    queue_smtp: bool = False              # control = queue/first_pass_route
    queue_name: str = ""
    fake_response: str | None = None      # FAIL or DEFER (fakereject/defer)
    submission: dict | None = None        # domain / name / sender_retain
    suppress_local_fixups: bool = False
    removed_headers: list = field(default_factory=list)
    prdr: bool = False                    # PRDR was used (" PRDR" in <=)
    # When PRDR removed recipients: $received_for and the "<=" line's
    # recipients as they were when the data ended (None: the same).
    received_for: str | None = None
    log_recipients: list[str] | None = None
    dkim_domain: str | None = None        # DKIM= on the "<=" line
    spam_values: dict = field(default_factory=dict)  # -spam_* (-H file)


class MessageSink(Protocol):
    def store(self, msg: ReceivedMessage) -> tuple[int, str, str | None]:
        """Spool ``msg``; return (code, reply text, message id).

        A sink returns e.g. (250, "OK id=...", id) after the files are on
        disk, or (550, "Too many ...", None) for a rejection it made
        (received_headers_max), or (451, ..., None) for a local problem."""
        ...


class SessionOptions:
    """Main-section options the session needs, read once per process."""

    def __init__(self, config: Any) -> None:
        m = config.main

        def get(name: str, default: Any = None) -> Any:
            try:
                v = m.get(name)
            except (KeyError, AttributeError):
                return default
            return default if v is None else v
        self.get = get
        self.primary_hostname = get("primary_hostname") or os.uname().nodename
        self.smtp_banner = get("smtp_banner",
                               "$smtp_active_hostname ESMTP Exim "
                               "$version_number $tod_full")
        self.smtp_max_synprot_errors = int(get("smtp_max_synprot_errors", 3))
        self.smtp_max_unknown_commands = int(
            get("smtp_max_unknown_commands", 3))
        self.smtp_accept_max_nonmail = int(get("smtp_accept_max_nonmail", 10))
        self.smtp_accept_max_nonmail_hosts = get(
            "smtp_accept_max_nonmail_hosts", "*")
        self.header_maxsize = int(get("header_maxsize", 1048576))
        self.header_line_maxsize = int(get("header_line_maxsize", 0))
        self.received_headers_max = int(get("received_headers_max", 30))
        self.hosts_require_helo = get("hosts_require_helo", "*")
        self.chunking_advertise_hosts = get("chunking_advertise_hosts", "*")
        self.pipelining_advertise_hosts = get("pipelining_advertise_hosts",
                                              "*")
        self.pipelining_connect_advertise_hosts = get(
            "pipelining_connect_advertise_hosts", "*")
        self.dsn_advertise_hosts = get("dsn_advertise_hosts", "")
        self.smtputf8_advertise_hosts = get("smtputf8_advertise_hosts", "*")
        self.tls_advertise_hosts = get("tls_advertise_hosts", "*")
        self.auth_advertise_hosts = get("auth_advertise_hosts", "*")
        self.accept_8bitmime = bool(get("accept_8bitmime", True))
        self.smtp_enforce_sync = bool(get("smtp_enforce_sync", True))
        self.helo_allow_chars = get("helo_allow_chars", "")
        self.helo_accept_junk_hosts = get("helo_accept_junk_hosts", "")
        self.recipients_max = int(get("recipients_max", 50000) or 0)
        self.recipients_max_reject = bool(get("recipients_max_reject", False))
        self.smtp_accept_max_per_connection = get(
            "smtp_accept_max_per_connection", "1000")
        self.parse = ParseOptions(
            allow_domain_literals=bool(get("allow_domain_literals", False)),
            strip_excess_angle_brackets=bool(
                get("strip_excess_angle_brackets", False)),
            strip_trailing_dot=bool(get("strip_trailing_dot", False)))
        self.sender_unqualified_hosts = get("sender_unqualified_hosts", "")
        self.recipient_unqualified_hosts = get("recipient_unqualified_hosts",
                                               "")
        self.qualify_domain = get("qualify_domain") or self.primary_hostname
        self.qualify_recipient = get("qualify_recipient") or \
            self.qualify_domain
        self.message_size_limit = get("message_size_limit", "50M")
        self.smtp_active_hostname = get("smtp_active_hostname")
        self.prdr_enable = bool(get("prdr_enable", False))
        self.acl = {w: get("acl_smtp_" + w) for w in (
            "connect", "helo", "mail", "rcpt", "predata", "data", "quit",
            "notquit", "vrfy", "expn", "etrn", "starttls", "auth", "mime",
            "mailauth", "data_prdr")}
        self.tls_certificate = get("tls_certificate")
        from eximpy.smtp.auth import server_authenticators, tls_authenticator
        self.auths = server_authenticators(config)
        self.tls_auth = tls_authenticator(config)


def _bad_utf8(address: str) -> bool:
    """True when the address held bytes that are not valid shortest-form
    UTF-8 (they were decoded to surrogate escapes)."""
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in address)


def _size_value(text: Any) -> int:
    """message_size_limit-style integer with K/M/G suffix."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    mult = 1
    if s and s[-1] in "kKmMgG":
        mult = {"k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}[s[-1].lower()]
        s = s[:-1]
    return int(s, 0) * mult if s else 0


class Session:
    """One inbound SMTP session.  See module docstring."""

    def __init__(self, config: Any, acl: Any = None, *,
                 sink: MessageSink | None = None,
                 host_address: str | None = None, host_port: int = 0,
                 host_name: str | None = None,
                 interface_address: str | None = None,
                 interface_port: int = 0, ident: str | None = None,
                 host_checking: bool = False, is_socket: bool = False,
                 trusted: bool = True, login: str = "root", uid: int = 0,
                 gid: int = 0, log: Any = None,
                 options: SessionOptions | None = None,
                 clock: Callable[[], float] = time.time,
                 expander: Callable[[str, dict[str, Any]], str] | None = None,
                 host_tainted: bool = False,
                 keep_message_id: bool = False,
                 ) -> None:
        self.config = config
        # Exim's message_id global: in -bh it stays set from a message's
        # acceptance until the next DATA, and log lines written meanwhile
        # carry it (not in -bs or the daemon, where it is cleared after
        # the message).
        self.keep_message_id = keep_message_id or host_checking
        self._log_mid: str | None = None
        self.opt = options or SessionOptions(config)
        self.acl = acl if acl is not None else MinimalAclRunner(config)
        self.sink = sink
        self.host_address = host_address
        self.host_port = host_port
        self.host_name = host_name
        self.host_lookup_failed = self.host_lookup_deferred = False
        self._host_looked_up = host_name is not None
        self.interface_address = interface_address
        self.interface_port = interface_port
        self.ident = ident
        self.host_checking = host_checking
        self.is_socket = is_socket
        self.trusted = trusted
        self.login, self.uid, self.gid = login, uid, gid
        self.log = log
        if host_checking and log is not None and \
                getattr(sink, "log", False) is None:
            # -bh: the test sink logs "<=" (and what controls did) through
            # the session's log, as Exim writes them in a test session.
            sink.log = log
        self.clock = clock
        self._expander = expander
        self.local = host_address is None
        self._connection_start = clock()
        # Host data from the command line (-oMa ...) is tainted; data from
        # the socket is not.
        self.host_tainted = host_tainted
        self._host_cache: dict[str, str] = {}
        self.active_hostname = self.opt.primary_hostname
        self.closed = False
        self.quit_seen = False
        self._in = bytearray()
        self._out: list[bytes] = []
        # The driver's output function (eximpy.smtp.connection): lets a
        # `delay` in an ACL send the pending replies first.
        self.writer: Callable[[bytes], Any] | None = None
        # Connection state (Exim's fl.* and friends).
        self.helo_seen = False
        self.esmtp = False
        self.helo_name: str | None = None
        self.helo_required = False            # helo_verify_hosts matched
        self.helo_verify_required = False
        self.helo_accept_junk = False
        self.auth_advertised = False
        self.tls_advertised = False
        self.dsn_advertised = False
        self.smtputf8_advertised = False
        self.pipelining_advertised = False
        self.pipelining_used = False
        self.chunking_offered = False
        # Set by ACL controls for the whole connection (Exim's
        # pipelining_enable, smtp_enforce_sync, allow_auth_unadvertised).
        self.pipelining_enable = True
        self.last_message_id: str | None = None
        self.enforce_sync = self.opt.smtp_enforce_sync
        self.allow_auth_unadvertised = False
        self.authenticated: str | None = None
        # TLS: the driver sets tls_unavailable when it cannot offer a
        # handshake; after "220 TLS go ahead" tls_requested stays True
        # until it calls tls_started() or tls_failed().
        self.tls: Any = None                  # eximpy.smtp.tls.TlsInfo
        self.tls_requested = False
        self.tls_unavailable = False
        self.authenticated_id: str | None = None
        self.auth_pubname: str | None = None
        self.authenticated_sender: str | None = None
        self._advertised: set[str] = set()
        self._auth_gen: Any = None
        self._auth_mech: Any = None
        self.synprot_error_count = 0
        self.unknown_command_count = 0
        self.nonmail_command_count = 0
        self.count_nonmail: bool | None = None
        self.mailcmd_count = 0
        self.sync_cmd_limit = _NON_SYNC_NON_PIPELINING
        # Exim's cmd_list[].is_mail_cmd: non-mail commands count towards
        # smtp_accept_max_nonmail; one RSET/HELO/EHLO/STARTTLS per message
        # and the first AUTH are free.
        self.is_mail_cmd = {RSET: False, HELO: False, EHLO: False,
                            AUTH: True, STARTTLS: False, MAIL: True,
                            RCPT: True, DATA: True, BDAT: True, QUIT: True,
                            NOOP: False, ETRN: False, VRFY: False,
                            EXPN: False, HELP: False}
        self.had: list[str | None] = [None] * HBUFF_SIZE
        self.had_index = 0
        self.acl_c: dict[str, str] = {}
        self.received_protocol = (PROTOCOLS_LOCAL if self.local
                                  else PROTOCOLS)[0]
        # For a remote host, start() checks the *_unqualified_hosts.
        self.allow_unqualified_sender = self.local
        self.allow_unqualified_recipient = self.local
        self.pipe_connect_acceptable = False
        self.size_limit = 0
        # Per-message state.
        self._mode = "command"            # command data bdat discard_line
        self._reader: DataReader | None = None
        self._chunk_left = 0
        self._chunk_last = False
        self._chunk_size = 0
        self._chunk_discard = False
        self._bdat_reader: DataReader | None = None
        self._rcpt_response: str | None = None
        self._rcpt_response_same = True
        self._rcpt_in_progress = False
        self._bdat_until_rset = False
        self._data_start = 0.0
        self._reset_message()
        self._message_start()

    # ------------------------------------------------------------------
    # public interface
    def start(self, early: bytes = b"") -> bytes:
        """Run the connect ACL and produce the banner.

        smtp_active_hostname is expanded here (it may depend on the
        interface); it names this host in the banner, EHLO and 221.

        ``early`` is input that arrived before the banner was sent; on a
        real socket with smtp_enforce_sync that is an early talker and the
        connection is refused, as Exim does.
        """
        if early:
            self._in += early
        if self.opt.smtp_active_hostname:
            try:
                name = self._expand(str(self.opt.smtp_active_hostname))
                if name:
                    self.active_hostname = str(name)
            except Exception as exc:
                self._log_panic("failed to expand \"smtp_active_hostname\": "
                                f"{exc}")
        if not self.is_socket and not self.host_checking and \
                self._logging("smtp_connection", False):
            # -bs/inetd; for sockets the listener logs the connection.
            self._log_main(self._connection_info())
        try:
            self.size_limit = _size_value(self._expand(
                str(self.opt.message_size_limit)))
        except Exception as exc:
            self._log_panic(f"unable to expand message_size_limit: {exc}")
            self._printf("421 Temporary local problem - please try later")
            self.closed = True
            return self._flush()
        if not self.local:
            self._host_in(self.opt.get("hosts_connection_nolog"),
                          "hosts_connection_nolog")
        if not self.local and self.host_name is None and \
                self._host_in(self.opt.get("host_lookup"),
                              "host_lookup") == OK:
            self._host_name_lookup()
        if not self.local:
            if self._host_in(self.opt.get("host_reject_connection"),
                             "host_reject_connection") == OK:
                self._log_reject(f"refused connection from "
                                 f"{self._host_and_ident()} "
                                 "(host_reject_connection)")
                self._printf("554 SMTP service not available")
                self.closed = True
                return self._flush()
            # The order of Exim's smtp_start_session() (it matters for the
            # -bh trace); hosts_require_helo is consulted at MAIL.
            self.allow_unqualified_sender = self._host_in(
                self.opt.sender_unqualified_hosts,
                "sender_unqualified_hosts") == OK
            self.allow_unqualified_recipient = self._host_in(
                self.opt.recipient_unqualified_hosts,
                "recipient_unqualified_hosts") == OK
            self.helo_verify_required = self._host_in(
                self.opt.get("helo_verify_hosts"), "helo_verify_hosts") == OK
            if not self.helo_verify_required:
                self._host_in(self.opt.get("helo_try_verify_hosts"),
                              "helo_try_verify_hosts")
            self.helo_accept_junk = self._host_in(
                self.opt.helo_accept_junk_hosts,
                "helo_accept_junk_hosts") == OK
            self._host_in(self.opt.get("hosts_proxy"), "hosts_proxy")
        user_msg = None
        if self.opt.acl["connect"]:
            r = self._acl("connect", self.opt.acl["connect"])
            if r.rc != OK:
                self._handle_acl_fail("connect", r)
                self.closed = True
                return self._flush()
            user_msg = r.user_message
        # Exim decides here whether PIPECONNECT may be advertised.
        self.pipe_connect_acceptable = self.host_address is not None and \
            self._host_in(self.opt.pipelining_connect_advertise_hosts,
                          "pipelining_connect_advertise_hosts") == OK
        code, esc = 220, ""
        if user_msg is None:
            try:
                text = self._expand(self.opt.smtp_banner)
            except Exception as exc:
                self._log_panic(f'Expansion of "{self.opt.smtp_banner}" '
                                f"(smtp_banner) failed: {exc}")
                self.closed = True
                return self._flush()
        else:
            code, esc, text, _ok = message_code(220, user_msg)
        text = text.rstrip()
        if not self._check_sync():
            pending = bytes(self._in[:128])
            self._log_reject(
                "SMTP protocol synchronization error (input sent without "
                f"waiting for greeting): rejected connection from "
                f"{self._host_and_ident(True)} input=\"{printable(pending)}\"")
            self._printf("554 SMTP synchronization error")
            self.closed = True
            return self._flush()
        lines = text.split("\n")
        out = []
        for i, ln in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{code}{sep}{esc + ' ' if esc else ''}{ln}\r\n")
        self._out.append("".join(out).encode("utf-8", "surrogateescape"))
        return self._flush()

    def feed(self, data: bytes) -> bytes:
        """Process client bytes; return what to send back."""
        if not self.closed:
            self._in += data
            try:
                self._run()
            except Exception as exc:            # a bug must cost only this
                self._crashed(exc)              # connection, never a traceback
        return self._flush()

    def _crashed(self, exc: BaseException) -> None:
        import traceback
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self._log_panic(f"SMTP session error: {type(exc).__name__}: {exc} "
                        f"at {os.path.basename(where.filename)}:"
                        f"{where.lineno} (connection from "
                        f"{self._host_and_ident() or self.login})")
        self._printf(f"421 {self.active_hostname}: Internal error - closing "
                     "connection")
        self.closed = True

    def timeout(self) -> bytes:
        """smtp_receive_timeout passed while waiting for the client."""
        if self.closed:
            return self._flush()
        if self._mode in ("data", "bdat") and self._reader is not None:
            self._log_main("SMTP data timeout (message abandoned) on "
                           "connection from "
                           f"{self._host_and_ident() or 'local process'} "
                           f"F=<{self.sender or ''}>")
            self._reader = None
            self._bdat_reader = None
            self._notquit_exit("data-timeout", 421,
                               f"{self.active_hostname} SMTP incoming data "
                               "timeout - closing connection.")
        else:
            self._log_main("SMTP command timeout on connection from "
                           f"{self._host_and_ident() or self.login}")
            self._notquit_exit("command-timeout", 421,
                               f"{self.active_hostname}: SMTP command "
                               "timeout - closing connection")
        self.closed = True
        return self._flush()

    def _host_name_lookup(self) -> None:
        """host_lookup matched: find the client's forward-confirmed name
        (eximpy.hostlookup); when no PTR name exists at all, Exim logs
        "no host name found for IP address" (log_selector
        host_lookup_failed)."""
        from eximpy.hostlookup import DEFER as HDEFER, FAIL as HFAIL
        from eximpy.hostlookup import host_name_lookup
        self._host_looked_up = True
        trace = getattr(self.acl, "trace", None) if self.host_checking \
            else None
        r = host_name_lookup(self.host_address,
                             self.opt.get("host_lookup_order"), None, trace)
        self.host_lookup_failed = r.rc == HFAIL
        self.host_lookup_deferred = r.rc == HDEFER
        if r.name:
            self.host_name = r.name
        elif r.msg.startswith(" (failed to find host name") and \
                self._logging("host_lookup_failed", True):
            self._log_main("no host name found for IP address "
                           f"{self.host_address}")

    def _lazy_host_name(self) -> str:
        """$sender_host_name when host_lookup did not match: Exim looks
        the name up the first time it is needed."""
        if not self._host_looked_up and self.host_address:
            self._host_name_lookup()
        return self.host_name or ""

    def _host_lookup_failed_var(self) -> str:
        return "1" if self.host_lookup_failed else "0"

    def tls_started(self, info: Any) -> bytes:
        """The TLS handshake after STARTTLS succeeded: forget the EHLO
        state (RFC 3207) and carry on."""
        self.tls = info
        if info.ourcert is None and self.opt.tls_certificate:
            from eximpy.smtp.tls import certificate_der
            try:
                info.ourcert = certificate_der(
                    self._expand(str(self.opt.tls_certificate)))
            except Exception:
                info.ourcert = None
        self.tls_requested = False
        self.helo_seen = self.esmtp = False
        self.auth_advertised = self.pipelining_advertised = False
        self.is_mail_cmd[EHLO] = True
        self.is_mail_cmd[AUTH] = True
        self.helo_name = None
        self.authenticated = self.authenticated_id = None
        self.sync_cmd_limit = _NON_SYNC_NON_PIPELINING
        prot = PROTOCOLS_LOCAL if self.local else PROTOCOLS
        self.received_protocol = prot[1]
        if info.peerdn is not None and info.certificate_verified and \
                self.opt.tls_auth is not None:
            self._tls_auth(self.opt.tls_auth)
        self._run()
        return self._flush()

    def _tls_auth(self, mech: Any) -> None:
        """The tls authenticator, once per handshake with a verified client
        certificate, before the next command is read (Exim's smtp_in.c):
        acl_smtp_auth first; success authenticates the connection (and
        AUTH is then not advertised), failure is silent."""
        if self.opt.acl["auth"]:
            r = self._acl("auth", self.opt.acl["auth"])
            if r.rc != OK:
                self._handle_acl_fail("auth", r)
                return
        from eximpy.smtp.auth import OK as AOK
        gen = mech.exchange("", self._auth_expand)
        try:
            next(gen)
            rc = "DEFER"                  # a tls exchange never prompts
        except StopIteration as stop:
            rc = stop.value
        set_id_text = mech.opt("server_set_id")
        set_id = None
        if rc == AOK and set_id_text is not None:
            try:
                set_id = printable(self._auth_expand(set_id_text,
                                                     mech.last_items))
            except Exception:
                rc = "DEFER"
        if rc == AOK:
            self.authenticated = mech.name
            self.authenticated_id = set_id
            self.auth_pubname = mech.public_name

    def tls_failed(self, reason: str) -> bytes:
        """The handshake failed: Exim logs it and the connection ends."""
        self._log_main(f"TLS error on connection from "
                       f"{self._host_and_ident() or self.login} ({reason})")
        self.tls_requested = False
        self.closed = True
        return self._flush()

    def eof(self) -> bytes:
        """The client closed the connection (or stdin ended)."""
        if not self.closed:
            try:
                self._run()
                if not self.closed:
                    self._lost_connection()
            except Exception as exc:
                self._crashed(exc)
        return self._flush()

    # ------------------------------------------------------------------
    # output helpers
    def _write_pending(self) -> None:
        """Send what is buffered now (Exim's fflush before a delay)."""
        if self.writer is not None and self._out:
            self.writer(self._flush())

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _printf(self, line: str) -> None:
        """One complete reply line (Exim's smtp_printf)."""
        if self._rcpt_in_progress:
            if self._rcpt_response is None:
                self._rcpt_response = line
            elif self._rcpt_response_same and self._rcpt_response != line:
                self._rcpt_response_same = False
            self._rcpt_in_progress = False
        self._out.append(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def _respond(self, code: int, esc: str, final: bool, msg: str) -> None:
        """Exim's smtp_respond(): a possibly multi-line message."""
        if not final and self._no_multiline:
            return
        if self._rcpt_in_progress:
            if self._rcpt_response is None:
                self._rcpt_response = msg
            elif self._rcpt_response_same and self._rcpt_response != msg:
                self._rcpt_response_same = False
            self._rcpt_in_progress = False
        r = Reply.text(code, msg, esc)
        data = r.encode(self._no_multiline)
        if not final:
            # every line continues: turn the last line's "ddd " into "ddd-"
            lines = data.split(b"\r\n")
            lines[-2] = lines[-2][:3] + b"-" + lines[-2][4:]
            data = b"\r\n".join(lines)
        self._out.append(data)

    def _user_msg(self, default: int, user_msg: str) -> None:
        code, esc, text, _ok = message_code(default, user_msg)
        self._respond(code, esc, True, text)

    def _logging(self, name: str, default: bool) -> bool:
        """Whether log_selector item ``name`` is on."""
        if self.log is None:
            return False
        sel = getattr(self.log, "selector", None)
        try:
            return name in sel if sel is not None else default
        except TypeError:
            return default

    def _log_selected_reject(self, name: str, text: str) -> None:
        """log_write(L_<name>, LOG_MAIN|LOG_REJECT): the mainlog line only
        when the selector is on; the rejectlog line always (Exim)."""
        if self.log is None:
            return
        if self._logging(name, False):
            self.log.reject(text)
        elif getattr(self.log, "write_rejectlog", False) and \
                hasattr(self.log, "_emit"):
            self.log._emit(("reject",), text, None, "")

    def _log_main(self, text: str) -> None:
        if self.log is not None:
            if self._log_mid is not None:
                self.log.main(text, self._log_mid)
            else:
                self.log.main(text)

    def _log_reject(self, text: str) -> None:
        if self.log is not None:
            self._reject_to(text, None, None)

    def _reject_to(self, text: str, mid: str | None,
                   block: str | None) -> None:
        """A rejection log line, to the logs log_reject_target chose
        (default main and reject; none when it expanded empty)."""
        targets = self.log_reject_target
        if mid is None:
            mid = self._log_mid
        if targets is None:
            if block is None:
                self.log.reject(text) if mid is None else \
                    self.log.reject(text, mid)
            else:
                self.log.reject(text, mid, block)
            return
        emit = getattr(self.log, "_emit", None)
        kinds = tuple(k for k in ("main", "reject", "panic") if k in targets)
        if emit is not None:
            if kinds:
                emit(kinds, text, mid, block or "")
        elif "main" in kinds or "reject" in kinds:
            self.log.main(text, mid)

    def _log_panic(self, text: str) -> None:
        if self.log is not None:
            self.log.panic(text)

    def _host_and_ident(self, useflag: bool = False) -> str:
        """Exim's host_and_ident()."""
        if self.local or self.host_address is None:
            return f"U={self.ident}" if useflag and self.ident else \
                (self.ident or "")
        from eximpy.log.format import host_text
        h = host_text(self.host_name, self.helo_name, self.host_address)
        if useflag:
            h = "H=" + h
        if self.ident:
            h += f" U={self.ident}"
        return h

    def _had(self, cmd: int) -> None:
        self.had[self.had_index] = _HAD_NAMES[cmd]
        self.had_index = (self.had_index + 1) % HBUFF_SIZE

    def _connhad(self) -> str:
        sep = " C=..." if self.had[HBUFF_SIZE - 1] is not None else " C="
        out = []
        order = list(range(self.had_index, HBUFF_SIZE)) + \
            list(range(0, self.had_index))
        for i in order:
            if self.had[i] is not None:
                out.append(sep + self.had[i])   # type: ignore[operator]
                sep = ","
        return "".join(out)

    # ------------------------------------------------------------------
    # expansion and host lists
    def _variables(self) -> dict[str, Any]:
        v: dict[str, Any] = {
            "primary_hostname": self.opt.primary_hostname,
            "smtp_active_hostname": self.active_hostname,
            "version_number": VERSION,
            "tod_full": _tod_full(self.clock()),
            "sender_host_address": self.host_address or "",
            "sender_host_port": str(self.host_port) if self.host_port else "",
            "sender_host_name": self.host_name or (
                "" if self._host_looked_up or not self.host_address
                else self._lazy_host_name),
            "sender_helo_name": Tainted(self.helo_name or ""),
            "sender_ident": self.ident or "",
            "received_protocol": self.received_protocol,
            "sender_address": Tainted(self.sender or ""),
            "smtp_command": Tainted(self._cmd_line),
            "smtp_command_argument": Tainted(self._cmd_arg),
            "recipients_count": str(len(self.recipients)),
            "interface_address": self.interface_address or "",
            "interface_port": str(self.interface_port or ""),
            # Client data, so tainted (an inline ACL using it is refused).
            "authenticated_id": Tainted(self.authenticated_id)
            if self.authenticated_id else "",
            "authenticated_sender": Tainted(self.authenticated_sender)
            if self.authenticated_sender else "",
            "auth pubname": self.auth_pubname or "",   # for ${authresults}
            "sender_host_authenticated": self.authenticated or "",
            "message_size": str(self.message_size),
            "rcpt_count": str(self.rcpt_count),
            "prdr_requested": "yes" if self.prdr_requested else "no",
            "host_lookup_failed": self._host_lookup_failed_var,
            "host_lookup_deferred": "1" if self.host_lookup_deferred
            else "0",
        }
        if self._log_mid is not None:
            v["message_id"] = v["message_exim_id"] = self._log_mid
        if self.tls is not None:
            v.update({
                "tls_in_cipher": self.tls.cipher, "tls_cipher": self.tls.cipher,
                "tls_in_ver": self.tls.ver,
                "tls_in_cipher_std": self.tls.cipher_std,
                "tls_in_bits": str(self.tls.bits),
                "tls_in_peerdn": Tainted(self.tls.peerdn or ""),
                "tls_in_sni": Tainted(self.tls.sni or ""),
                "tls_in_certificate_verified":
                    "1" if self.tls.certificate_verified else "0",
                # The certificates themselves, for ${certextract} and the
                # hashes (eximpy.expand.certs).
                "tls_in_peercert_object": self.tls.peercert,
                "tls_in_ourcert_object": self.tls.ourcert,
            })
        return v

    def _expand(self, text: str, extra: dict[str, Any] | None = None) -> str:
        if "$" not in text and "\\" not in text:
            return text
        variables = self._variables()
        if extra:
            variables.update(extra)
        if self._expander is not None:
            return self._expander(text, variables)
        from eximpy.expand import ExpandContext, expand_string
        ctx = ExpandContext(config=self.config, variables=variables,
                            acl_c=self.acl_c, acl_m=self.acl_m)
        return expand_string(text, ctx)

    def _host_in(self, listtext: Any, name: str | None = None) -> str:
        """verify_check_host() for a host list option: OK, FAIL or DEFER.
        In -bh, a check naming its option is traced as Exim traces it
        (eximpy.cli.host_check.session_list)."""
        if name is not None and self.host_checking:
            traced = getattr(self.acl, "session_list", None)
            if traced is not None:
                return traced(self, name, listtext)
        if listtext is None:
            return FAIL
        text = str(listtext)
        if text == "":
            return FAIL
        cache = self._host_cache.get(text)
        if cache is not None:
            return cache
        try:
            from eximpy import match as _match
        except ImportError:                     # pragma: no cover
            _match = None                       # type: ignore[assignment]
        if _match is not None:
            match_host = _match.match_host
            from eximpy.expand import ExpandContext
            ctx = ExpandContext(config=self.config,
                                variables=self._variables())
            try:
                rc, _value = match_host(self.host_address or "",
                                        self.host_name or "", text, ctx)
            except Exception:
                rc = DEFER
        else:
            rc = match_host_simple(text, self.host_address)
            rc = DEFER if rc == ERROR else rc
        if rc not in (OK, FAIL):
            rc = DEFER
        self._host_cache[text] = rc
        return rc

    # ------------------------------------------------------------------
    # ACLs
    def _acl(self, where: str, acl: str | None,
             recipient: str | None = None,
             headers: list[tuple[str, str, str]] | None = None,
             extra: dict[str, Any] | None = None) -> AclResult:
        variables = self._variables()
        if extra:
            variables.update(extra)
        if recipient is not None:
            lp, _, dom = recipient.rpartition("@")
            if not _:
                lp, dom = recipient, ""
            variables.update({"local_part": Tainted(lp),
                              "domain": Tainted(dom), "address_data": ""})
        if self.sender is not None:
            lp, at, dom = self.sender.rpartition("@")
            variables.update({"sender_address_local_part":
                              Tainted(lp if at else self.sender),
                              "sender_address_domain":
                              Tainted(dom if at else "")})
        env = AclEnv(variables=variables, acl_c=self.acl_c, acl_m=self.acl_m,
                     host_address=self.host_address, log=self._log_main,
                     headers=headers, flush=self._write_pending)
        if acl is None and where not in ("rcpt", "vrfy", "expn", "etrn"):
            return AclResult(OK)
        r = self.acl.check(where, acl, env)
        for h in r.added_headers:
            # Exim's setup_header(): an identical line is added only once.
            if h not in self.acl_added_headers:
                self.acl_added_headers.append(h)
        self._apply_controls(r)
        if r.rc == ERROR:
            # Exim: an ACL error is a temporary rejection, logged with its
            # reason (nothing after the colon when it has none).
            r.__dict__["was_error"] = True
            r.rc = DEFER
            r.user_message = None
            r.temp_details = False
        return r

    def _apply_controls(self, r: AclResult) -> None:
        """Act on what an ACL set (Exim: the globals acl.c's controls and
        modifiers set, read by smtp_in.c and receive.c)."""
        d = r.__dict__
        lrt = d.get("log_reject_target")
        if lrt is not None:
            self.log_reject_target = list(lrt)
        qn = d.get("queue_name")
        if qn is not None:
            self.queue_name = qn
        for name in d.get("removed_headers") or ():
            self.acl_removed_headers.append(name)
        args = d.get("control_args") or {}
        for name in r.controls:
            opts = args.get(name) or {}
            if name == "no_multiline_responses":
                self._no_multiline = True
            elif name == "no_pipelining":
                self.pipelining_enable = False
            elif name == "enforce_sync":
                self.enforce_sync = True
            elif name == "no_enforce_sync":
                self.enforce_sync = False
            elif name == "allow_auth_unadvertised":
                self.allow_auth_unadvertised = True
            elif name == "freeze":
                self.ctl_freeze = dict(opts)
            elif name in ("queue", "queue_only"):
                self.ctl_queue = True
                # Exim's queue_smtp: /first_pass_route sets it, /only
                # clears it (acl.c); a daemon then still starts a
                # delivery that stops short of SMTP deliveries.
                if opts.get("first_pass_route"):
                    self.ctl_queue_smtp = True
                elif opts.get("only"):
                    self.ctl_queue_smtp = False
            elif name in ("fakereject", "fakedefer"):
                self.fake_response = (FAIL if name == "fakereject" else DEFER,
                                      opts.get("text", ""))
            elif name == "submission":
                self.submission = dict(opts)
            elif name == "suppress_local_fixups":
                self.suppress_local_fixups = True
            elif name == "dkim_disable_verify":
                self.dkim_disable_verify = True

    def _handle_acl_fail(self, where: str, r: AclResult,
                         mid: str | None = None,
                         block: str | None = None) -> int:
        """Exim's smtp_handle_acl_fail(); returns 2 for drop, else 0."""
        drop = r.rc == FAIL_DROP
        rc = FAIL if drop else r.rc
        default = WHERE_CODES[where] if rc == FAIL else 451
        user_msg = r.user_message
        code, esc = default, ""
        if user_msg is not None:
            code, esc, user_msg, _ok = message_code(
                default, user_msg, check_valid=(where != "vrfy"))
        if where == "predata":
            what = "DATA"
        elif where == "data":
            what = "after DATA"
        elif where == "mime":
            what = "during MIME ACL checks"
        else:
            place = self._cmd_arg if self._cmd_line else 'in "connect" ACL'
            if where == "connect":
                place = 'in "connect" ACL'
            what = f"{WHERE_NAMES[where]} {printable(place)[:100]}"
        svf = getattr(r, "sender_verify_failed", None)
        if svf is not None:
            # A sender verification failure is reported once, before the
            # rejection (Exim's smtp_handle_acl_fail()).
            try:
                from eximpy.acl.verify import sender_verify_report
                vlog, vreply = sender_verify_report(
                    svf, self._host_and_ident(True), rc,
                    self._logging("sender_verify_fail", True))
            except Exception:
                vlog = vreply = None
            if vlog:
                self._log_reject(vlog)
            if vreply:
                saved = self._rcpt_in_progress
                self._rcpt_in_progress = False
                self._respond(code, esc, False, vreply)
                self._rcpt_in_progress = saved
        if rc == FAIL:
            self._respond(code, esc, True,
                          user_msg if user_msg is not None
                          else "Administrative prohibition")
        elif r.user_message is not None and rc == DEFER and \
                getattr(r, "temp_details", False):
            self._respond(code, esc, True, user_msg or "")
        else:
            self._respond(code, esc, True,
                          "Temporary local problem - please try later")
        sender_info = ""
        if where in ("rcpt", "data", "mime"):
            sender_info = f"F=<{self.sender or ''}> "
        log_msg = r.log_message
        log_msg = f": {log_msg.split(chr(10))[0]}" if log_msg else ""
        hi = self._host_and_ident(True)
        # The message itself keeps its spaces (Exim's log line does).
        head = " ".join(p for p in (hi, sender_info.rstrip()) if p)
        text = (f"{head} " if head else "") + \
            f"{'' if rc == FAIL else 'temporarily '}rejected {what}{log_msg}"
        if mid is not None or block is not None:
            self._log_reject_block(text, mid, block or "")
        else:
            self._log_reject(text)
        if not drop:
            return 0
        if self._logging("smtp_connection", False):
            self._log_main(f"{self._connection_info()} closed by DROP in "
                           "ACL")
        self._notquit_exit("acl-drop", None, None)
        return 2

    def _incomplete(self, what: str) -> None:
        """Exim's incomplete_transaction_log() (+smtp_incomplete_transaction)."""
        if self.sender is None or not self._logging(
                "smtp_incomplete_transaction", False):
            return
        text = f"{self._host_and_ident(True)} incomplete transaction ({what})"
        text += f" from <{self.sender}>"
        if self.recipients:
            text += " for " + " ".join(r[0] for r in self.recipients)
        self._log_main(text)

    def _no_mail_log(self) -> None:
        """Exim's smtp_log_no_mail() at the end of a session."""
        if self.mailcmd_count > 0 or not self._logging("smtp_no_mail", False):
            return
        from eximpy.log.format import timediff
        extra = ""
        if self.authenticated:
            extra += f" A={self.authenticated}"
            if self.authenticated_id:
                extra += f":{self.authenticated_id}"
        if self.tls is not None and self._logging("tls_cipher", True):
            extra += f" X={self.tls.cipher}"
        self._log_main(f"no MAIL in SMTP connection from "
                       f"{self._host_and_ident() or self.login} D="
                       f"{timediff(self.clock() - self._connection_start)}"
                       f"{extra}{self._connhad()}")

    def _connection_info(self) -> str:
        if self.local or not self.is_socket:
            return f"SMTP connection from {self.ident or self.login}"
        return f"SMTP connection from {self._host_and_ident()}"

    def _notquit_exit(self, reason: str | None, code: int | None,
                      text: str | None) -> None:
        user_msg = None
        if self.opt.acl["notquit"] and reason:
            r = self._acl("notquit", self.opt.acl["notquit"],
                          extra={"smtp_notquit_reason": reason})
            user_msg = r.user_message
        if code is not None and text is not None:
            if user_msg:
                self._respond(code, "", True, user_msg)
            else:
                self._printf(f"{code} {text}")

    # ------------------------------------------------------------------
    # message state
    def _reset_message(self) -> None:
        """Exim's smtp_reset()."""
        self.sender: str | None = None
        self.recipients: list[tuple[str, str | None, int]] = []
        self.rcpt_count = 0
        self.message_size = -1
        self.acl_m: dict[str, str] = {}
        self.acl_added_headers: list[str] = []
        self._rcpt_response = None
        self._rcpt_response_same = True
        self._rcpt_in_progress = False
        self.body_8bitmime = 0
        self.dsn_ret = 0
        self.dsn_envid: str | None = None
        self.smtputf8 = False
        self.recipients_discarded = False
        self._no_multiline = False
        self.authenticated_sender = None
        self.prdr_requested = False       # MAIL ... PRDR (prdr_enable)
        self._data_recipients: list[tuple[str, str | None, int]] | None = \
            None
        # Per-message effects of ACL controls and modifiers (Exim's
        # deliver_freeze, queue_only_policy, fake_response, submission_mode,
        # suppress_local_fixups, queue_name, acl_removed_headers).
        self.ctl_freeze: dict[str, Any] | None = None
        self.ctl_queue = False
        self.ctl_queue_smtp = False
        self.queue_name = ""
        self.fake_response: tuple[str, str] | None = None
        self.submission: dict[str, Any] | None = None
        self.suppress_local_fixups = False
        self.acl_removed_headers: list[str] = []
        self.log_reject_target: list[str] | None = None
        self.dkim_disable_verify = False
        self.dkim_state: Any = None           # eximpy.acl.dkim.DkimState

    def _message_start(self) -> None:
        """The start of Exim's smtp_setup_msg() for each new message."""
        self._reset_message()
        self.chunking_state = CHUNKING_OFFERED if self.chunking_offered \
            else CHUNKING_NOT_OFFERED
        self.is_mail_cmd[RSET] = True
        self.is_mail_cmd[HELO] = True
        self.is_mail_cmd[EHLO] = True
        self.is_mail_cmd[STARTTLS] = True
        self._toomany = False
        self._discarded = False
        self._last_was_rej_mail = False
        self._last_was_rcpt = False
        self._cmd_line = ""
        self._cmd_arg = ""

    # ------------------------------------------------------------------
    # the main loop
    def _run(self) -> None:
        while not self.closed and not self.tls_requested:
            if self._mode == "data":
                assert self._reader is not None
                pos = self._reader.feed(self._in, 0)
                del self._in[:pos]
                if not self._reader.done:
                    return
                self._mode = "command"
                self._end_message()
                continue
            if self._mode == "bdat":
                if not self._bdat_data():
                    return
                continue
            if self._mode == "auth":
                nl = self._in.find(b"\n")
                if nl < 0:
                    return
                line = bytes(self._in[:nl])
                del self._in[:nl + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._mode = "command"
                self._auth_step(line.decode("utf-8", "surrogateescape"))
                continue
            if self._mode == "discard_line":
                nl = self._in.find(b"\n")
                if nl < 0:
                    self._in.clear()
                    return
                del self._in[:nl + 1]
                self._mode = "command"
                continue
            nl = self._in.find(b"\n")
            if nl < 0:
                if len(self._in) >= SMTP_CMD_BUFFER_SIZE:
                    # Stricter than Exim: answer once, discard to line end.
                    self._in.clear()
                    self._mode = "discard_line"
                    self._command(OTHER, b"", b"")
                return
            raw = bytes(self._in[:nl])
            del self._in[:nl + 1]
            if len(raw) >= SMTP_CMD_BUFFER_SIZE:
                self._command(OTHER, b"", b"")
                continue
            cmd, line, arg = self._parse_command(raw)
            self._command(cmd, line, arg)

    def _pending_input(self) -> bool:
        return bool(self._in)

    def _pipeline_response(self) -> None:
        """Exim's pipeline_response(): note that the client pipelined."""
        if self.enforce_sync and self.host_address is not None and \
                self.is_socket and self.pipelining_advertised and \
                self._pending_input():
            self.pipelining_used = True

    def _check_sync(self) -> bool:
        """True when all is well (no early input), as Exim's check_sync()."""
        if not self.enforce_sync or self.host_address is None or \
                not self.is_socket:
            return True
        return not self._pending_input()

    def _parse_command(self, raw: bytes) -> tuple[int, bytes, bytes]:
        """Exim's smtp_read_command() after the line has been read."""
        hadnull = b"\0" in raw
        if hadnull:
            raw = raw.replace(b"\0", b"?")
        n = len(raw)
        while n > 0 and raw[n - 1] in _SPACE:
            n -= 1
        line = raw[:n]
        self._cmd_line = line.decode("utf-8", "surrogateescape")
        self._cmd_arg = ""
        if hadnull:
            return BADCHAR, line, b""
        low = line.lower()
        sp = low.find(b" ")
        hit = _CMD_BY_WORD.get(low if sp < 0 else low[:sp])
        for name, cmd, has_arg in ((hit,) if hit is not None else _CMDS):
            ln = len(name)
            if low.startswith(name) and (name.endswith(b":") or len(line) == ln
                                         or line[ln:ln + 1] == b" "):
                if self._pending_input() and cmd < self.sync_cmd_limit and \
                        not self._check_sync():
                    return BADSYN, line, b""
                arg = line[ln:].lstrip(_SPACE)
                self._cmd_arg = arg.decode("utf-8", "surrogateescape")
                if not self.is_mail_cmd.get(cmd, True):
                    if self.count_nonmail is None:
                        self.count_nonmail = self._host_in(
                            self.opt.smtp_accept_max_nonmail_hosts,
                            "smtp_accept_max_nonmail_hosts") != FAIL
                    if self.count_nonmail:
                        self.nonmail_command_count += 1
                        if self.nonmail_command_count > \
                                self.opt.smtp_accept_max_nonmail:
                            return TOO_MANY_NONMAIL, line, arg
                if not has_arg and arg:
                    return BADARG, line, arg
                return cmd, line, arg
        if self._pending_input() and not self._check_sync():
            return BADSYN, line, b""
        return OTHER, line, b""

    # ------------------------------------------------------------------
    def _synprot_error(self, kind: str, code: int, data: str | None,
                       errmess: str) -> int:
        """Exim's synprot_error(): -1, or 1 when the limit is passed."""
        yield_ = -1
        sel = "smtp_syntax_error" if kind == "syntax" else \
            "smtp_protocol_error"
        if self._logging(sel, False):
            hi = self._host_and_ident(True)
            self._log_main(f"SMTP {kind} error in "
                           f"\"{printable(self._cmd_line)}\" "
                           f"{hi + ' ' if hi else ''}{errmess}")
        self.synprot_error_count += 1
        if self.synprot_error_count > self.opt.smtp_max_synprot_errors:
            yield_ = 1
            self._log_reject(
                f"SMTP call from {self._host_and_ident()} dropped: too many "
                f"syntax or protocol errors (last command was "
                f"\"{printable(self._cmd_line)}\", {self._connhad()})")
        if code > 0:
            d = f"{data}: " if data is not None else ""
            self._printf(f"{code}{'-' if yield_ == 1 else ' '}{d}{errmess}")
            if yield_ == 1:
                self._printf(f"{code} Too many syntax or protocol errors")
        return yield_

    def _done(self, done: int) -> None:
        """Act on Exim's 'done' value: 1 lost/drop, 2 QUIT/drop."""
        if done > 0:
            self.closed = True

    def _command(self, cmd: int, line: bytes, arg: bytes) -> None:
        done = 0
        was_rej_mail = False
        was_rcpt = False
        data = arg.decode("utf-8", "surrogateescape")
        if self._bdat_reader is not None:
            self._bdat_command(cmd, data)
            return
        if cmd == AUTH:
            self._had(AUTH)
            self.is_mail_cmd[AUTH] = False
            if not self.auth_advertised and not self.allow_auth_unadvertised:
                done = self._synprot_error(
                    "protocol", 503, None,
                    "AUTH command used when not advertised")
            elif self.authenticated:
                done = self._synprot_error("protocol", 503, None,
                                           "already authenticated")
            elif self.sender is not None:
                done = self._synprot_error(
                    "protocol", 503, None,
                    "not permitted in mail transaction")
            else:
                done = self._auth(data)
        elif cmd in (HELO, EHLO):
            done = self._helo(cmd, data)
        elif cmd == MAIL:
            done, was_rej_mail = self._mail(data)
        elif cmd == RCPT:
            done, was_rcpt, was_rej_mail = self._rcpt(data)
        elif cmd == BDAT:
            done = self._bdat(data)
        elif cmd == DATA:
            self._had(DATA)
            done = self._data_cmd(bdat=False)
        elif cmd == VRFY:
            done = self._vrfy(data)
        elif cmd == EXPN:
            self._had(EXPN)
            r = self._acl("expn", self.opt.acl["expn"])
            if r.rc != OK:
                done = self._handle_acl_fail("expn", r)
            else:
                self._expn(data)
        elif cmd == STARTTLS:
            self._had(STARTTLS)
            if not self.tls_advertised:
                done = self._synprot_error(
                    "protocol", 503, None,
                    "STARTTLS command used when not advertised")
            else:
                verdict = OK
                if self.opt.acl["starttls"]:
                    res = self._acl("starttls", self.opt.acl["starttls"])
                    if res.rc != OK:
                        done = self._handle_acl_fail("starttls", res)
                        verdict = res.rc
                if verdict == OK:
                    self._reset_message()
                    self._toomany = False
                    self.is_mail_cmd[STARTTLS] = False
                    # Anything pipelined after STARTTLS is thrown away, never
                    # run inside the TLS session (the STARTTLS injection
                    # attack; Exim wipes its buffer the same way).
                    self._in.clear()
                    if self.tls_unavailable or self.tls is not None:
                        self._printf("454 TLS currently unavailable")
                    else:
                        self._printf("220 TLS go ahead")
                        self.tls_requested = True
        elif cmd == QUIT:
            self._quit()
            done = 2
        elif cmd == RSET:
            self._rset()
        elif cmd == NOOP:
            self._had(NOOP)
            self._printf("250 OK")
        elif cmd == HELP:
            self._had(HELP)
            buf = " AUTH"
            if self.tls is None and self._host_in(
                    self.opt.tls_advertise_hosts,
                    "tls_advertise_hosts") != FAIL:
                buf += " STARTTLS"
            buf += " HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP"
            if self.opt.acl["etrn"]:
                buf += " ETRN"
            if self.opt.acl["expn"]:
                buf += " EXPN"
            if self.opt.acl["vrfy"]:
                buf += " VRFY"
            self._printf("214-Commands supported:")
            self._printf("214" + buf)
        elif cmd == ETRN:
            done = self._etrn(data)
        elif cmd == BADARG:
            done = self._synprot_error("syntax", 501, None,
                                       "unexpected argument data")
        elif cmd == BADCHAR:
            done = self._synprot_error("syntax", 0, None,
                                       "NUL character(s) present (shown as "
                                       "'?')")
            self._printf("501 NUL characters are not allowed in SMTP "
                         "commands")
        elif cmd == BADSYN:
            self._sync_failure()
            done = 1
        elif cmd == TOO_MANY_NONMAIL:
            word = self._cmd_line.split(None, 1)[0] if self._cmd_line else ""
            self._log_reject(f"SMTP call from {self._host_and_ident()} "
                             f"dropped: too many nonmail commands (last was "
                             f"\"{printable(word)}\")")
            self._notquit_exit("bad-commands", 554,
                               "Too many nonmail commands")
            done = 1
        else:                                           # OTHER
            if self.unknown_command_count >= \
                    self.opt.smtp_max_unknown_commands:
                self.unknown_command_count += 1
                self._notquit_exit("bad-commands", 500,
                                   "Too many unrecognized commands")
                done = 2
                self._log_reject(
                    f"SMTP call from {self._host_and_ident()} dropped: too "
                    f"many unrecognized commands (last was "
                    f"\"{printable(self._cmd_line)}\")")
            else:
                self.unknown_command_count += 1
                done = self._synprot_error("syntax", 500, None,
                                           "unrecognized command")
        if done == 3:
            return
        self._last_was_rej_mail = was_rej_mail
        self._last_was_rcpt = was_rcpt
        self._done(done)

    # --- AUTH ---------------------------------------------------------
    def _auth_expand(self, text: str, items: list[str]) -> str:
        from eximpy.expand import ExpandContext, expand_string
        ctx = ExpandContext(config=self.config, variables=self._variables(),
                            acl_c=self.acl_c, acl_m=self.acl_m,
                            auth_vars=items[:4])
        ctx.nstrings = [""] + list(items)
        return expand_string(text, ctx)

    def _auth(self, data: str) -> int:
        if self.opt.acl["auth"]:
            r = self._acl("auth", self.opt.acl["auth"])
            if r.rc != OK:
                return self._handle_acl_fail("auth", r)
        parts = data.split(None, 1)
        name = parts[0] if parts else ""
        for c in name:
            if not (c.isascii() and (c.isalnum() or c in "-_")):
                return self._synprot_error(
                    "syntax", 501, None,
                    "invalid character in authentication mechanism name")
        initial = parts[1].strip() if len(parts) > 1 else ""
        mech = None
        for m in self.opt.auths:
            if m.public_name.lower() == name.lower() and \
                    (m.name in self._advertised or
                     self.allow_auth_unadvertised):
                mech = m
                break
        if mech is None:
            return self._synprot_error(
                "protocol", 504, None,
                f"{printable(name)} authentication mechanism not supported")
        self._auth_mech = mech
        self._auth_gen = mech.exchange(initial, self._auth_expand)
        self._auth_next(None)
        return 0

    def _auth_next(self, line: str | None) -> None:
        import base64
        try:
            prompt = next(self._auth_gen) if line is None else \
                self._auth_gen.send(line)
        except StopIteration as stop:
            self._auth_finish(stop.value)
            return
        self._printf("334 " + base64.b64encode(prompt).decode("ascii"))
        self._mode = "auth"

    def _auth_step(self, line: str) -> None:
        self._auth_next(line)

    def _auth_finish(self, rc: str) -> None:
        from eximpy.smtp.auth import OK as AOK, DEFER as ADEFER, result_reply
        mech = self._auth_mech
        self._auth_gen = None
        items = getattr(mech, "last_items", [])
        set_id = None
        set_id_text = mech.opt("server_set_id")
        if set_id_text is not None:
            try:
                set_id = printable(self._auth_expand(set_id_text, items))
            except Exception:
                set_id = None
                if rc == AOK:
                    rc = ADEFER
        reply, logtext = result_reply(rc, set_id)
        if rc == AOK:
            self.authenticated = mech.name
            self.authenticated_id = set_id
            self.auth_pubname = mech.public_name
            prot = PROTOCOLS_LOCAL if self.local else PROTOCOLS
            self.received_protocol = prot[4 + (1 if self.tls else 0)]
        self._printf(reply)
        if rc != AOK:
            self._log_reject(f"{mech.name} authenticator failed for "
                             f"{self._host_and_ident() or self.login}: "
                             f"{logtext}")

    # --- individual commands ------------------------------------------
    def _check_helo(self, s: str) -> bool:
        self.helo_name = None
        ok = self.helo_accept_junk
        if not ok:
            if s.startswith("["):
                if s.endswith("]"):
                    inner = s[1:-1]
                    import ipaddress
                    try:
                        if inner.lower().startswith("ipv6:"):
                            ok = ipaddress.ip_address(inner[5:]).version == 6
                        elif inner.lower().startswith("ipv4:"):
                            ok = ipaddress.ip_address(inner[5:]).version == 4
                        else:
                            ipaddress.ip_address(inner)
                            ok = True
                    except ValueError:
                        ok = False
            elif s:
                allow = self.opt.helo_allow_chars or ""
                ok = all((c.isascii() and c.isalnum()) or c in ".-" or
                         c in allow for c in s)
        if ok:
            self.helo_name = s
        return ok

    def _helo_lookup_domain(self, helo: str) -> str:
        """Is the HELO name in helo_lookup_domains (traced in -bh)?"""
        text = self.opt.get("helo_lookup_domains")
        traced = getattr(self.acl, "session_list", None)
        if self.host_checking and traced is not None:
            return traced(self, "helo_lookup_domains", text, subject=helo)
        if not text:
            return FAIL
        try:
            from eximpy import match as _match
            from eximpy.expand import ExpandContext
            ctx = ExpandContext(config=self.config,
                                variables=self._variables())
            rc, _v = _match.match_domain(helo, str(text), ctx)
        except Exception:
            return DEFER
        return rc

    def _helo(self, cmd: int, data: str) -> int:
        self._had(cmd)
        hello = "HELO" if cmd == HELO else "EHLO"
        self.esmtp = cmd == EHLO
        self.is_mail_cmd[HELO] = False
        self.is_mail_cmd[EHLO] = False
        if not self._check_helo(data):
            self._printf(f"501 Syntactically invalid {hello} argument(s)")
            self._log_reject(
                f"rejected {hello} from {self._host_and_ident()}: "
                "syntactically invalid argument(s): " +
                (printable(data) if data else "(no argument given)"))
            self.synprot_error_count += 1
            if self.synprot_error_count > self.opt.smtp_max_synprot_errors:
                self._log_reject(
                    f"SMTP call from {self._host_and_ident()} dropped: too "
                    f"many syntax or protocol errors (last command was "
                    f"\"{printable(self._cmd_line)}\", {self._connhad()})")
                return 1
            return 0
        if not self.local and self.host_name is None:
            # Exim forces a reverse lookup for a HELO name in
            # helo_lookup_domains.
            helo = self.helo_name or (data.split() or [""])[0]
            if self._helo_lookup_domain(helo) == OK:
                self._host_name_lookup()
        user_msg = None
        if self.opt.acl["helo"]:
            r = self._acl("helo", self.opt.acl["helo"])
            if r.rc != OK:
                done = self._handle_acl_fail("helo", r)
                self.helo_name = None
                return done
            if not self._check_sync():
                self._sync_failure()
                return 1
            user_msg = r.user_message
        self.auth_advertised = False
        self.pipelining_advertised = False
        self.tls_advertised = False
        self.dsn_advertised = False
        self.smtputf8_advertised = False
        if user_msg is None:
            first = f"{self.active_hostname} Hello "
            if self.ident:
                first += f"{self.ident} at "
            first += self.host_name or self.helo_name or ""
            if self.host_address:
                first += f" [{self.host_address}]"
            code, esc = "250", ""
        else:
            c, esc, first, _ok = message_code(250, user_msg)
            code = str(c)
            first = first.split("\n")[0].split("\r")[0]
            if esc:
                first = f"{esc} {first}"
        lines = [first]
        if self.esmtp:
            if self.size_limit > 0:
                lines.append(f"SIZE {self.size_limit}")
            else:
                lines.append("SIZE")
            if self.opt.accept_8bitmime:
                lines.append("8BITMIME")
            if self._host_in(self.opt.dsn_advertise_hosts,
                             "dsn_advertise_hosts") != FAIL and \
                    self.opt.dsn_advertise_hosts:
                lines.append("DSN")
                self.dsn_advertised = True
            if self.opt.acl["etrn"]:
                lines.append("ETRN")
            if self.opt.acl["vrfy"]:
                lines.append("VRFY")
            if self.opt.acl["expn"]:
                lines.append("EXPN")
            if self.pipelining_enable and self._host_in(
                    self.opt.pipelining_advertise_hosts,
                    "pipelining_advertise_hosts") == OK:
                lines.append("PIPELINING")
                self.sync_cmd_limit = _NON_SYNC_PIPELINING
                self.pipelining_advertised = True
                if self.pipe_connect_acceptable:
                    lines.append("PIPECONNECT")
            self._advertised = set()
            if self.opt.auths and not self.authenticated and self._host_in(
                    self.opt.auth_advertise_hosts,
                    "auth_advertise_hosts") == OK:
                names = []
                for m in self.opt.auths:
                    cond = m.opt("server_advertise_condition")
                    if cond is not None:
                        from eximpy.expand import expand_check_condition
                        from eximpy.expand import ExpandContext
                        ctx = ExpandContext(config=self.config,
                                            variables=self._variables(),
                                            acl_c=self.acl_c,
                                            acl_m=self.acl_m)
                        if not expand_check_condition(cond, ctx):
                            continue
                    names.append(m.public_name)
                    self._advertised.add(m.name)
                if names:
                    lines.append("AUTH " + " ".join(names))
                    self.auth_advertised = True
            if self._host_in(self.opt.chunking_advertise_hosts,
                             "chunking_advertise_hosts") != FAIL and \
                    self.opt.chunking_advertise_hosts:
                lines.append("CHUNKING")
                self.chunking_offered = True
                self.chunking_state = CHUNKING_OFFERED
            if self.tls is None and self._host_in(
                    self.opt.tls_advertise_hosts,
                    "tls_advertise_hosts") != FAIL:
                lines.append("STARTTLS")
                self.tls_advertised = True
            if self.opt.prdr_enable:
                lines.append("PRDR")
            if self.opt.accept_8bitmime and self._host_in(
                    self.opt.smtputf8_advertise_hosts,
                    "smtputf8_advertise_hosts") != FAIL:
                lines.append("SMTPUTF8")
                self.smtputf8_advertised = True
            lines.append("HELP")
        out = []
        for i, ln in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{code}{sep}{ln}\r\n")
        self._out.append("".join(out).encode("utf-8", "surrogateescape"))
        self.helo_seen = True
        prot = PROTOCOLS_LOCAL if self.local else PROTOCOLS
        self.received_protocol = prot[
            ((2 + (2 if self.authenticated else 0)) if self.esmtp else 0)
            + (1 if self.tls is not None else 0)]
        self._reset_message()
        self._toomany = False
        return 0

    @staticmethod
    def _extract_option(data: str) -> tuple[str, str, str] | None:
        """Exim's extract_option(): (rest, name, value) from the end."""
        s = data.rstrip(" \t\n\v\f\r")
        if not s:
            return None
        v = len(s) - 1
        while v > 0 and s[v] != "=" and s[v] not in " \t\n\v\f\r":
            if s[v] == '"':
                v -= 1
                while v > 1 and s[v] != '"':
                    v -= 1
            v -= 1
        if v < 0:
            return None
        if s[v] == "=":
            n = v
            while n > 0 and s[n - 1].isascii() and s[n - 1].isalpha():
                n -= 1
            if n == 0 or s[n - 1] not in " \t\n\v\f\r":
                return None
            return s[:n - 1], s[n:v], s[v + 1:]
        if v == 0:
            return None
        return s[:v], s[v + 1:], ""

    def _mail(self, data: str) -> tuple[int, bool]:
        self._had(MAIL)
        self.mailcmd_count += 1
        if not self.helo_seen and (self.helo_verify_required or
                                   self._host_in(self.opt.hosts_require_helo,
                                                 "hosts_require_helo") == OK):
            self._printf("503 HELO or EHLO required")
            self._log_reject(f"rejected MAIL from {self._host_and_ident()}: "
                             "no HELO/EHLO given")
            return 0, True
        if self.sender is not None:
            return self._synprot_error("protocol", 503, None,
                                       "sender already given"), True
        if not data:
            return self._synprot_error("protocol", 501, None,
                                       "MAIL must have an address operand"), \
                True
        try:
            maxconn = int(self._expand(str(
                self.opt.smtp_accept_max_per_connection)) or 0)
        except Exception:
            maxconn = 0
        if maxconn > 0 and self.mailcmd_count > maxconn:
            self._printf("421 too many messages in this connection")
            self._log_reject(f"rejected MAIL command "
                             f"{self._host_and_ident(True)}: too many "
                             "messages in one connection")
            return 0, True
        self._reset_message()
        self._toomany = False
        if self.esmtp:
            while True:
                opt = self._extract_option(data)
                if opt is None:
                    break
                rest, name, value = opt
                uname = name.upper()
                known = {"SIZE": True, "BODY": True, "AUTH": True,
                         "PRDR": False, "RET": True, "ENVID": True,
                         "SMTPUTF8": False}
                if uname not in known:
                    break                       # not an option: the address
                if known[uname] and value == "":
                    data = rest                 # Exim leaves it chopped off
                    break
                if uname == "SIZE":
                    if value.isdigit():
                        size = int(value)
                        self.message_size = min(size, 2 ** 31 - 1)
                    else:
                        data = rest
                        break
                elif uname == "BODY":
                    if not self.opt.accept_8bitmime:
                        data = rest
                        break
                    if value.upper() == "8BITMIME":
                        self.body_8bitmime = 8
                    elif value.upper() == "7BIT":
                        self.body_8bitmime = 7
                    else:
                        self.body_8bitmime = 0
                        return self._synprot_error(
                            "syntax", 501, None, "invalid data for BODY"), \
                            True
                elif uname == "RET":
                    if self.dsn_advertised:
                        if self.dsn_ret:
                            return self._synprot_error(
                                "syntax", 501, None,
                                "RET can be specified once only"), True
                        self.dsn_ret = {"HDRS": 2, "FULL": 1}.get(
                            value.upper(), 0)
                        if not self.dsn_ret:
                            return self._synprot_error(
                                "syntax", 501, None,
                                "Value for RET is invalid"), True
                elif uname == "PRDR":
                    # Ignored unless prdr_enable (as Exim).
                    if self.opt.prdr_enable:
                        self.prdr_requested = True
                elif uname == "ENVID":
                    if self.dsn_advertised:
                        if self.dsn_envid is not None:
                            return self._synprot_error(
                                "syntax", 501, None,
                                "ENVID can be specified once only"), True
                        self.dsn_envid = value
                elif uname == "AUTH":
                    if value != "<>":
                        from eximpy.smtp.auth import xtext_decode
                        dec = xtext_decode(value)
                        if dec is None:
                            return self._synprot_error(
                                "syntax", 501, None,
                                "invalid data for AUTH"), True
                        if self.opt.acl["mailauth"]:
                            r = self._acl("mailauth", self.opt.acl["mailauth"])
                            ok = r.rc == OK
                        else:
                            ok = self.authenticated is not None
                        if ok:
                            self.authenticated_sender = dec
                        else:
                            self._log_main(
                                f"ignoring AUTH={value} from "
                                f"{self._host_and_ident(True)} "
                                "(client not authenticated)")
                elif uname == "SMTPUTF8":
                    if not self.smtputf8_advertised:
                        return self._synprot_error(
                            "syntax", 501, None,
                            "SMTPUTF8 used when not advertised"), True
                    self.smtputf8 = True
                    if not self.received_protocol.startswith("utf8"):
                        self.received_protocol = "utf8" + \
                            self.received_protocol
                data = rest
        try:
            sender, domain = extract_address(data, True, self.opt.parse)
        except AddressError as exc:
            return self._synprot_error("syntax", 501, printable(data),
                                       str(exc)), True
        if self.smtputf8 and _bad_utf8(sender):
            # Stricter than Exim (DESIGN.md section 7): under SMTPUTF8 an
            # address must be valid, shortest-form UTF-8 (no "\xc0\xaf", a
            # disguised "/", slipping past restricted-character checks).
            self._printf(f"553 {printable(data)}: invalid UTF-8 in address")
            self.sender = None
            return 0, True
        if self.size_limit > 0 and self.message_size > self.size_limit:
            self._printf("552 Message size exceeds maximum permitted")
            self._log_reject(
                f"rejected MAIL FROM:<{sender}> {self._host_and_ident(True)}"
                f": message too big: size"
                f"{'>' if self.message_size == 2 ** 31 - 1 else ''}="
                f"{self.message_size} max={self.size_limit}")
            return 0, True
        if not domain and sender:
            if self.allow_unqualified_sender:
                sender = f"{sender}@{self.opt.qualify_domain}"
            else:
                self._printf(f"501 {printable(data)}: sender address must "
                             "contain a domain")
                self._log_selected_reject(
                    "smtp_syntax_error", f"unqualified sender rejected: "
                    f"<{sender}> {self._host_and_ident(True)}")
                return 0, True
        if self.local and not self.trusted:
            # An untrusted local caller's MAIL is ignored (spec -bs).
            sender = f"{self.login}@{self.opt.qualify_domain}"
        self.sender = sender
        user_msg = None
        if self.opt.acl["mail"]:
            r = self._acl("mail", self.opt.acl["mail"])
            rc = r.rc
            user_msg = r.user_message
            if rc == OK and not self.pipelining_advertised and \
                    not self._check_sync():
                self._sync_failure()
                return 1, True
        else:
            rc = OK
            r = AclResult(OK)
        if rc in (OK, DISCARD):
            self._pipeline_response()
            prdr = ", PRDR Requested" if self.prdr_requested else ""
            if user_msg is None:
                self._printf("250 OK" + prdr)
            else:
                self._user_msg(250, user_msg + prdr)
            self.recipients_discarded = rc == DISCARD
            return 0, False
        done = self._handle_acl_fail("mail", r)
        self.sender = None
        return done, True

    def _rcpt(self, data: str) -> tuple[int, bool, bool]:
        self._had(RCPT)
        self.rcpt_count += 1
        self._rcpt_in_progress = True
        was_rcpt = True
        if self.sender is None:
            if self.pipelining_advertised and self._last_was_rej_mail:
                self._printf("503 sender not yet given")
                return 0, True, True
            done = self._synprot_error("protocol", 503, None,
                                       "sender not yet given")
            return done, False, False
        if not data:
            return self._synprot_error(
                "syntax", 501, None, "RCPT must have an address operand"), \
                was_rcpt, False
        orcpt: str | None = None
        dsn_flags = 0
        if self.esmtp:
            while True:
                opt = self._extract_option(data)
                if opt is None:
                    break
                rest, name, value = opt
                uname = name.upper()
                if self.dsn_advertised and uname == "ORCPT":
                    if orcpt is not None:
                        return self._synprot_error(
                            "syntax", 501, None,
                            "ORCPT can be specified once only"), was_rcpt, \
                            False
                    orcpt = value
                elif self.dsn_advertised and uname == "NOTIFY":
                    if dsn_flags:
                        return self._synprot_error(
                            "syntax", 501, None,
                            "NOTIFY can be specified once only"), was_rcpt, \
                            False
                    if value.upper() == "NEVER":
                        dsn_flags |= 0x02
                    else:
                        for part in value.split(","):
                            bit = {"SUCCESS": 0x04, "FAILURE": 0x08,
                                   "DELAY": 0x10}.get(part.upper())
                            if bit is None:
                                return self._synprot_error(
                                    "syntax", 501, None,
                                    "Invalid value for NOTIFY parameter"), \
                                    was_rcpt, False
                            dsn_flags |= bit
                else:
                    # Exim puts back the terminators in this order, which
                    # turns an option without "=" into "name=" text.
                    if value == "" and not data.rstrip().endswith("="):
                        data = rest + "=" + name
                    break
                data = rest
        try:
            recipient, domain = extract_address(data, False, self.opt.parse)
        except AddressError as exc:
            return self._synprot_error("syntax", 501, printable(data),
                                       str(exc)), was_rcpt, False
        if self.smtputf8 and _bad_utf8(recipient):
            self._printf(f"553 {printable(data)}: invalid UTF-8 in address")
            return 0, was_rcpt, False
        if not domain:
            if self.allow_unqualified_recipient or \
                    recipient.lower() == "postmaster":
                recipient = f"{recipient}@{self.opt.qualify_recipient}"
            else:
                self._printf(f"501 {printable(data)}: recipient address must "
                             "contain a domain")
                self._log_selected_reject(
                    "smtp_syntax_error", f"unqualified recipient rejected: "
                    f"<{recipient}> {self._host_and_ident(True)}")
                return 0, was_rcpt, False
        if self.opt.recipients_max > 0 and \
                self.rcpt_count > self.opt.recipients_max:
            if self.opt.recipients_max_reject:
                self._printf("552 too many recipients")
                if not self._toomany:
                    self._log_reject(
                        f"too many recipients: message rejected: "
                        f"sender=<{self.sender}> {self._host_and_ident(True)}")
            else:
                self._printf("452 too many recipients")
                if not self._toomany:
                    self._log_reject(
                        f"too many recipients: excess temporarily rejected: "
                        f"sender=<{self.sender}> {self._host_and_ident(True)}")
            self._toomany = True
            return 0, was_rcpt, False
        if self.recipients_discarded:
            r = AclResult(DISCARD)
        else:
            r = self._acl("rcpt", self.opt.acl["rcpt"], recipient)
            if r.rc == OK and not self.pipelining_advertised and \
                    not self._check_sync():
                self._sync_failure()
                return 1, was_rcpt, False
        if r.rc == OK:
            self._pipeline_response()
            if r.user_message is not None:
                self._user_msg(250, r.user_message)
            else:
                self._printf("250 Accepted")
            self.recipients.append((recipient, orcpt, dsn_flags))
            return 0, was_rcpt, False
        if r.rc == DISCARD:
            if r.user_message is not None:
                self._user_msg(250, r.user_message)
            else:
                self._printf("250 Accepted")
            self._discarded = True
            self._log_reject(
                f"{self._host_and_ident(True)} F=<{self.sender}> RCPT "
                f"{printable(self._cmd_arg)}: discarded by "
                f"{'MAIL' if self.recipients_discarded else 'RCPT'} ACL"
                + (f": {r.log_message}" if r.log_message else ""))
            return 0, was_rcpt, False
        return self._handle_acl_fail("rcpt", r), was_rcpt, False

    def _data_cmd(self, bdat: bool) -> int:
        """The common part of DATA and BDAT (Exim's DATA_BDAT label)."""
        if not self._discarded and not self.recipients:
            if self._rcpt_response_same and self._rcpt_response is not None:
                self._respond(503, "", False,
                              "All RCPT commands were rejected with this "
                              "error:")
                self._respond(503, "", False, self._rcpt_response)
            what = "BDAT" if bdat else "DATA"
            done = 0
            if self.pipelining_advertised and self._last_was_rcpt:
                self._printf(f"503 Valid RCPT command must precede {what}")
            else:
                done = self._synprot_error(
                    "protocol", 503, None,
                    f"valid RCPT command must precede {what}")
            if bdat:
                self._start_bdat_discard()
            return done
        if self._toomany and self.opt.recipients_max_reject:
            self.sender = None
            self._printf("554 Too many recipients")
            if bdat:
                self._start_bdat_discard()
            return 0
        if not bdat:
            user_msg = None
            if self.opt.acl["predata"]:
                r = self._acl("predata", self.opt.acl["predata"])
                if r.rc == OK and not self._check_sync():
                    self._sync_failure()
                    return 1
                if r.rc != OK:
                    return self._handle_acl_fail("predata", r)
                user_msg = r.user_message
            if user_msg is not None:
                self._user_msg(354, user_msg)
            else:
                self._printf('354 Enter message, ending with "." on a line '
                             "by itself")
        self._log_mid = None
        if self.host_address is not None:
            self._host_in(self.opt.get("ignore_fromline_hosts"),
                          "ignore_fromline_hosts")
        self._reader = DataReader(self.size_limit, self.opt.header_maxsize,
                                  self.opt.header_line_maxsize, chunking=bdat)
        self._data_start = self.clock()
        if not bdat:
            self._mode = "data"
        return 3

    # --- BDAT -------------------------------------------------------
    @staticmethod
    def _bdat_args(data: str) -> tuple[int, bool] | None:
        """Size and LAST flag; None unless a plain decimal that fits
        (stricter than Exim's sscanf %u: DESIGN.md section 7)."""
        parts = data.split()
        if not parts or len(parts) > 2:
            return None
        if not parts[0].isascii() or not parts[0].isdigit():
            return None
        size = int(parts[0])
        if size > 0xFFFFFFFF:
            return None
        if len(parts) == 2 and parts[1].upper() != "LAST":
            return size, False
        return size, len(parts) == 2

    def _bdat(self, data: str) -> int:
        self._had(BDAT)
        args = self._bdat_args(data)
        if self.chunking_state != CHUNKING_OFFERED:
            done = self._synprot_error(
                "protocol", 503, None,
                "BDAT command used when CHUNKING not advertised")
            if args is not None and done <= 0:   # stricter: drop the chunk
                self._discard_chunk(args[0])
            return done
        if args is None:
            return self._synprot_error("protocol", 501, None,
                                       "missing size for BDAT command")
        size, last = args
        self.chunking_state = CHUNKING_LAST if last else CHUNKING_ACTIVE
        done = self._data_cmd(bdat=True)
        if done != 3:
            return done
        self._bdat_reader = self._reader
        return self._bdat_chunk(size, last)

    def _bdat_chunk(self, size: int, last: bool) -> int:
        """Start reading one chunk of an active BDAT transaction."""
        self._chunk_size = self._chunk_left = size
        self._chunk_last = last
        self.chunking_state = CHUNKING_LAST if last else CHUNKING_ACTIVE
        if size == 0:
            if last:
                self._finish_bdat()
                return 3
            self._bdat_until_rset = True
            return self._synprot_error("protocol", 504, None,
                                       "zero size for BDAT command")
        self._mode = "bdat"
        return 3

    def _discard_chunk(self, size: int) -> None:
        if size > 0:
            self._chunk_left = size
            self._chunk_discard = True
            self._mode = "bdat"

    def _start_bdat_discard(self) -> None:
        args = self._bdat_args(self._cmd_arg)
        if args is not None:
            self._discard_chunk(args[0])
        self.chunking_state = CHUNKING_OFFERED

    def _abandon_bdat(self) -> None:
        self._bdat_reader = None
        self._reader = None
        self._bdat_until_rset = False
        self._mode = "command"
        self.chunking_state = CHUNKING_NOT_OFFERED
        self._message_start()

    def _bdat_command(self, cmd: int, data: str) -> None:
        """A command between the chunks of a BDAT transaction (Exim's
        bdat_getc(): only BDAT, NOOP, QUIT and RSET are allowed)."""
        if cmd == QUIT:
            self._quit()
            self._abandon_bdat()
            self.closed = True
            return
        if cmd == RSET:
            self._rset()
            self._abandon_bdat()
            return
        if self._bdat_until_rset:
            if self._synprot_error("protocol", 503, None,
                                   "only RSET accepted now") > 0:
                self.closed = True
            return
        if cmd == NOOP:
            self._had(NOOP)
            self._printf("250 OK")
            return
        if cmd == BDAT:
            args = self._bdat_args(data)
            if args is None:
                self._synprot_error("protocol", 501, None,
                                    "missing size for BDAT command")
                self._abandon_bdat()
                return
            if self._bdat_chunk(*args) > 0 and self._bdat_until_rset is False:
                pass
            return
        self._bdat_until_rset = True
        if self._synprot_error("protocol", 503, None,
                               "only BDAT permissible after non-LAST BDAT") \
                > 0:
            self.closed = True

    def _bdat_data(self) -> bool:
        """Feed buffered bytes of the current chunk; False: need more."""
        n = min(self._chunk_left, len(self._in))
        if n:
            if not self._chunk_discard and self._reader is not None:
                self._reader.feed(bytes(self._in[:n]), 0)
            del self._in[:n]
            self._chunk_left -= n
            reader = self._reader
            if reader is not None and not self._chunk_discard and \
                    reader.error == END_NOT_CRLF:
                # Exim answers at once and drops the rest of the chunk.
                sender = self.sender or ""
                hi = self._host_and_ident(True)
                _mid, block = self._reject_block(reader.result,
                                                 with_id=False, raw=True)
                self._log_reject_block(
                    f"rejected from <{sender}>" + (f" {hi}" if hi else "") +
                    ": Non-CRLF-terminated header, under CHUNKING: message "
                    "abandoned", None, block)
                self._printf("552 Message header not CRLF terminated")
                left = self._chunk_left
                self._abandon_bdat()
                self._discard_chunk(left)
                if not left:
                    self._mode = "command"
                return True
        if self._chunk_left > 0:
            return False
        self._mode = "command"
        if self._chunk_discard or self._reader is None:
            self._chunk_discard = False
            return True
        if self._chunk_last:
            self._finish_bdat()
            return True
        # Not the last chunk: acknowledge, wait for the next BDAT.
        if not self.pipelining_advertised and not self._check_sync():
            self._sync_failure()
            self._abandon_bdat()
            self.closed = True
            return True
        self._printf(f"250 {self._chunk_size} byte chunk received")
        self.chunking_state = CHUNKING_OFFERED
        return True

    def _finish_bdat(self) -> None:
        assert self._reader is not None
        self._reader.end_chunk(True)
        self._bdat_reader = None
        self._mode = "command"
        self._end_message(chunking=True)

    # --- message end ----------------------------------------------------
    def _end_message(self, chunking: bool = False) -> None:
        """The message has been read: check, hand to the sink, reply."""
        reader = self._reader
        assert reader is not None
        self._reader = None
        res = reader.result
        ended = res.ended
        sender = self.sender or ""
        hi = self._host_and_ident(True)
        who = f"rejected from <{sender}>" + (f" {hi}" if hi else "")
        if ended == END_SIZE:
            mid, block = self._reject_block(res)
            self._log_reject_block(f"{who}: message too big: read="
                                   f"{res.message_size} "
                                   f"max={self.size_limit}", mid, block)
            self._printf("552 Message size exceeds maximum permitted")
        elif ended == END_HEADER_SIZE:
            self._log_main("ridiculously long message header received from "
                           f"{self._host_and_ident() or self.login} (more "
                           f"than {self.opt.header_maxsize} characters): "
                           "message abandoned")
            self._printf("552 Message header is ridiculously long")
        elif ended == END_HEADER_LINE:
            self._log_main("overlong message header line received from "
                           f"{self._host_and_ident() or self.login} (more "
                           f"than {self.opt.header_line_maxsize} characters"
                           "): message abandoned")
            self._printf("552 A message header line is too long")
        elif ended == END_NOT_CRLF:
            self._log_reject(f"{who}: Non-CRLF-terminated header, under "
                             "CHUNKING: message abandoned")
            self._printf("552 Message header not CRLF terminated")
        else:
            self._accept_message(res, chunking)
        self.chunking_state = CHUNKING_NOT_OFFERED
        self._message_start()

    def _reject_block(self, res: Any, with_id: bool = True,
                      raw: bool = False, received: bool = False,
                      mid: str | None = None) -> tuple[str | None, str]:
        """The message id Exim had given the message by now, and the
        rejectlog block (envelope and the headers, with the fix-ups the
        message would have had, without Received:)."""
        from eximpy.log.format import reject_log_block
        if with_id and mid is None:
            from eximpy.message.ids import new_message_id
            try:
                lhn = self.config.main.get("localhost_number")
            except (KeyError, AttributeError):
                lhn = None
            mid = new_message_id(lhn)
        headers: list[tuple[str, str]] = []
        try:
            from eximpy.smtp.accept import _header, build_spool_message
            if raw:
                headers = [(h.type, h.text) for h in
                           (_header(x.decode("utf-8", "surrogateescape"))
                            for x in res.headers)]
            else:
                sm = build_spool_message(self.config, self._received_message(
                    res, False), mid or "", self.clock())
                hs = sm.headers if received else sm.headers[1:]
                headers = [(h.type, h.text) for h in hs]
        except Exception:                      # never lose the log line
            headers = []
        block = reject_log_block(self.sender or "",
                                 [r[0] for r in self.recipients], headers)
        return mid, block

    def _log_reject_block(self, text: str, mid: str | None,
                          block: str) -> None:
        if self.log is not None:
            self._reject_to(text, mid, block)

    def _accept_message(self, res: Any, chunking: bool) -> None:
        user_msg = None
        discard_by = None
        discard_log = None
        mid = None
        mbox = False
        from eximpy.acl import dkim
        dkim_work = dkim.wanted(self, res)
        # PRDR: per-recipient DATA replies when the client asked for them,
        # for more than one recipient, with acl_smtp_data_prdr set.
        prdr = self.prdr_requested and len(self.recipients) > 1 and \
            bool(self.opt.acl["data_prdr"])
        prdr_reply: str | None = None
        # Exim makes the Received: header and keeps the recipient list for
        # the "<=" line before any ACL here runs (PRDR may remove some).
        self._data_recipients = list(self.recipients)
        if self.opt.acl["data"] or self.opt.acl["mime"] or dkim_work or \
                prdr:
            # The MIME and DATA ACLs see the message as it will be spooled:
            # its id, size, and all headers (Received: and fix-ups
            # included).
            from eximpy.message.ids import new_message_id
            try:
                lhn = self.config.main.get("localhost_number")
            except (KeyError, AttributeError):
                lhn = None
            mid = new_message_id(lhn)
            headers: list[tuple[str, str, str]] = []
            size = res.message_size
            hlines: list[str] = []
            try:
                from eximpy.smtp.accept import build_spool_message
                sm = build_spool_message(self.config, self._received_message(
                    res, chunking), mid, self.clock())
                headers = [(h.name, h.value, h.type) for h in sm.headers
                           if h.type != "*"]
                hlines = [h.text for h in sm.headers if h.type != "*"]
            except Exception:
                pass
            body = bytes(res.body[:500]).decode("utf-8", "surrogateescape")
            extra = {"message_exim_id": mid, "message_id": mid,
                     "message_size": str(size),
                     "message_linecount": str(res.header_linecount +
                                              res.body_linecount),
                     "body_linecount": str(res.body_linecount),
                     "body_zerocount": str(res.body_zerocount),
                     "message_body": Tainted(body.replace("\n", " ")),
                     "recipients": ", ".join(r[0] for r in self.recipients)}
            # the .eml copy and scan state (eximpy.acl.content)
            content_scan_for(self, mid, hlines, res, extra)
            if dkim_work:
                # DKIM verification and acl_smtp_dkim (eximpy.acl.dkim).
                r = dkim.run_on_receipt(self, res, mid, headers, extra)
                if r is not None and r.rc == DISCARD:
                    discard_by = "DKIM"
                    discard_log = r.log_message
                elif r is not None:
                    _m, block = self._reject_block(res, received=True,
                                                   mid=mid)
                    if self._handle_acl_fail("dkim", r, mid, block):
                        self.closed = True
                    return
            if self.opt.acl["mime"] and discard_by is None:
                r = self._mime_acl(res, headers, hlines, extra)
                mbox = r is not None
                if mbox and (r.rc != OK or not self.opt.acl["data"]):
                    self._unspool_mbox(mid, extra, r)
                    mbox = False
                if r is not None and r.rc not in (OK, DISCARD):
                    _m, block = self._reject_block(res, received=True,
                                                   mid=mid)
                    if self._handle_acl_fail("mime", r, mid, block):
                        self.closed = True
                    return
                if r is not None and r.rc == DISCARD:
                    discard_by = "MIME"
        if prdr and discard_by is None and len(self.recipients) > 1:
            prdr_reply = self._prdr(mid, headers, extra)
            if not self.recipients:
                # Every recipient refused: no message (its reply says so).
                self._printf(prdr_reply)
                return
            extra["recipients"] = ", ".join(r[0] for r in self.recipients)
        else:
            self.prdr_requested = False
        if self.opt.acl["data"] and discard_by is None:
            r = self._acl("data", self.opt.acl["data"], headers=headers,
                          extra=extra)
            self._unspool_mbox(mid, extra, r)
            if r.rc not in (OK, DISCARD):
                _m, block = self._reject_block(res, received=True, mid=mid)
                done = self._handle_acl_fail("data", r, mid, block)
                if done:
                    self.closed = True
                return
            user_msg = r.user_message
            if r.rc == DISCARD:
                discard_by = "DATA"
                discard_log = r.log_message
        if discard_by is None and not self.recipients:
            discard_by = "MAIL" if self.recipients_discarded else "RCPT"
        msg = self._received_message(res, chunking)
        msg.message_id = mid
        msg.spam_values = spam_spool_values(self, mid)
        if discard_by is not None:
            # Every recipient was discarded: the message is accepted and
            # thrown away ("=> blackhole"), nothing stays on the spool.
            blackhole = getattr(self.sink, "blackhole", None)
            if blackhole is None:
                self._printf("250 OK")
                return
            code, text, mid = blackhole(msg, f"{discard_by} ACL discarded "
                                        "recipients", discard_log)
            if prdr_reply is not None:
                self._printf(prdr_reply)
                return
            if chunking:
                total = res.message_size + res.header_linecount + \
                    res.body_linecount
                self._printf(f"250- {self._chunk_size} byte chunk, total "
                             f"{total}")
            self._printf(f"{code} {text}")
            if self.host_checking and code == 250:
                self._out.append(b"\n**** SMTP testing: that is not a real "
                                 b"message id!\n\n")
            return
        if self.sink is None:
            self._printf("451 Temporary local problem - please try later")
            return
        self._store(msg, res, chunking, user_msg, prdr_reply)

    def _prdr(self, mid: str | None, headers: list[tuple[str, str, str]],
              extra: dict[str, Any]) -> str:
        """acl_smtp_data_prdr once per recipient, in RCPT order, as Exim's
        receive_msg(): "353 PRDR content analysis beginning", a reply and
        a log line per recipient, the refused ones (anything but accept)
        leave the message; returns the final reply for the whole message."""
        self._printf("353 PRDR content analysis beginning")
        all_pass, all_fail = _EXIM_RC[OK], _EXIM_RC[FAIL]
        for rcpt in list(self.recipients):
            addr = rcpt[0]
            r = self._acl("prdr", self.opt.acl["data_prdr"], addr,
                          headers=headers, extra=extra)
            rc = ERROR if r.__dict__.get("was_error") else r.rc
            n = _EXIM_RC.get(rc, _EXIM_RC[FAIL])
            all_pass |= n
            all_fail &= n
            if rc in (OK, DISCARD):
                code, word = 250, "acceptance"
            elif rc == DEFER:
                code, word = 450, "temporary refusal"
            else:
                code, word = 550, "refusal"
            text = f"PRDR R=<{addr}> {word}"
            self._user_msg(code, r.user_message if r.user_message is not None
                           else text)
            if self.log is not None:
                if r.log_message:
                    self.log.main(f"PRDR {addr} {r.log_message}", mid)
                elif r.user_message:
                    self.log.main(f"PRDR {addr} {r.user_message}", mid)
                else:
                    self.log.main(text, mid)
            if rc != OK:
                self.recipients.remove(rcpt)
        if all_fail == _EXIM_RC[FAIL]:
            return f"550 id={mid} message rejected for all recipients"
        if all_pass == _EXIM_RC[OK]:
            return f"250 id={mid} message accepted"
        return f"250 id={mid} message accepted for some recipients"

    def _unspool_mbox(self, mid: str | None, extra: dict[str, Any],
                      r: Any) -> None:
        """Exim's unspool_mbox() (eximpy.acl.content): the scan directory
        goes once the MIME/DATA ACLs are done with it."""
        trace = getattr(self.acl, "trace", None)
        unspool_after(extra, r, trace if self.host_checking else None)

    def _mime_acl(self, res: Any, headers: list[tuple[str, str, str]],
                  hlines: list[str], extra: dict[str, Any]
                  ) -> AclResult | None:
        """acl_smtp_mime once per MIME part (eximpy.smtp.mime), for a
        message with a Content-Type: header; the first result other than
        OK, or the last one (None when the ACL never ran)."""
        from eximpy.smtp.mime import is_mime, mime_parts
        if not is_mime(headers):
            return None
        body = bytes(res.body).decode("utf-8", "surrogateescape")
        r = None
        for part in mime_parts(hlines, body, extra.get(CONTENT_KEY)):
            v = dict(extra)
            v.update({k: Tainted(val) if k in (
                "mime_filename", "mime_content_type", "mime_charset",
                "mime_boundary", "mime_content_disposition",
                "mime_content_id", "mime_content_description",
                "mime_content_transfer_encoding") else val
                for k, val in part.items()})
            r = self._acl("mime", self.opt.acl["mime"], headers=headers,
                          extra=v)
            note_acl_result(extra, r)
            if r.rc != OK:
                break
        return r

    def _received_message(self, res: Any, chunking: bool) -> ReceivedMessage:
        return ReceivedMessage(
            sender=self.sender or "",
            recipients=list(self.recipients),
            headers=res.headers, body=bytes(res.body),
            message_size=res.message_size,
            body_linecount=res.body_linecount,
            body_zerocount=res.body_zerocount,
            max_received_linelength=res.max_received_linelength,
            helo_name=self.helo_name, host_address=self.host_address,
            host_port=self.host_port, host_name=self.host_name,
            interface_address=self.interface_address,
            interface_port=self.interface_port, ident=self.ident,
            received_protocol=self.received_protocol,
            received_time=self._data_start, local=self.local,
            chunking=chunking, body_8bitmime=self.body_8bitmime,
            dsn_ret=self.dsn_ret, dsn_envid=self.dsn_envid,
            smtputf8=self.smtputf8, acl_m=dict(self.acl_m),
            acl_c=dict(self.acl_c),
            added_headers=list(self.acl_added_headers),
            originator_login=self.login, originator_uid=self.uid,
            originator_gid=self.gid,
            pipelining=(("" if self.pipelining_used else "-")
                        if self.pipelining_advertised else None),
            host_tainted=self.host_tainted, tls=self.tls,
            authenticated_id=self.authenticated_id,
            authenticator=self.authenticated,
            auth_pubname=self.auth_pubname,
            authenticated_sender=self.authenticated_sender,
            allow_unqualified_sender=self.allow_unqualified_sender,
            allow_unqualified_recipient=self.allow_unqualified_recipient,
            active_hostname=(self.active_hostname if self.active_hostname !=
                             self.opt.primary_hostname else None),
            frozen_by="ACL" if self.ctl_freeze is not None else None,
            freeze_no_tell=bool((self.ctl_freeze or {}).get("no_tell")),
            queued_by="ACL" if self.ctl_queue else None,
            queue_smtp=self.ctl_queue and self.ctl_queue_smtp,
            queue_name=self.queue_name,
            fake_response=self.fake_response[0] if self.fake_response
            else None,
            submission=self.submission,
            suppress_local_fixups=self.suppress_local_fixups,
            prdr=self.prdr_requested,
            received_for=None if self._data_recipients is None else
            (self._data_recipients[0][0] if len(self._data_recipients) == 1
             else ""),
            log_recipients=None if self._data_recipients is None else
            [r[0] for r in self._data_recipients],
            removed_headers=list(self.acl_removed_headers),
            dkim_domain=self.dkim_state.overall if self.dkim_state
            else None)

    def _store(self, msg: ReceivedMessage, res: Any, chunking: bool,
               user_msg: str | None, prdr_reply: str | None = None) -> None:
        assert self.sink is not None
        try:
            code, text, mid = self.sink.store(msg)
        except Exception as exc:               # never a traceback on the wire
            self._log_panic(f"failed to spool message: {exc}")
            self._printf("451 Temporary local problem - please try later")
            return
        if code == 250 and prdr_reply is not None:
            # The PRDR summary replaces "250 OK id=..." (a fakereject or
            # fakedefer still wins over a positive one).
            self.last_message_id = mid
            if self.fake_response is not None and prdr_reply[0] == "2":
                fcode = 450 if self.fake_response[0] == DEFER else 550
                self._respond(fcode, "", True, self.fake_response[1])
            else:
                self._printf(prdr_reply)
            return
        if code == 250 and chunking:
            total = res.message_size + res.header_linecount + \
                res.body_linecount
            self._printf(f"250- {self._chunk_size} byte chunk, total {total}")
        if code == 250:
            self.last_message_id = mid
            if self.keep_message_id:
                self._log_mid = mid
            if self.ctl_freeze is not None and mid and \
                    not self.ctl_freeze.get("no_tell"):
                # freeze_tell (eximpy.acl.freeze_tell)
                from eximpy.acl.freeze_tell import tell_frozen_message
                tell_frozen_message(self, msg, mid)
        if code == 250 and self.fake_response is not None:
            fcode = 450 if self.fake_response[0] == DEFER else 550
            self._respond(fcode, "", True, self.fake_response[1])
        elif code == 250 and user_msg is not None and mid is not None:
            self._user_msg(250, user_msg)
        else:
            self._printf(f"{code} {text}")
        if self.host_checking and code == 250:
            self._out.append(b"\n**** SMTP testing: that is not a real "
                             b"message id!\n\n")

    # --- misc commands ----------------------------------------------
    def _vrfy(self, data: str) -> int:
        self._had(VRFY)
        try:
            address, domain = extract_address(data, False, self.opt.parse)
        except AddressError as exc:
            self._printf(f"501 {exc}")
            return 0
        if not domain:
            if self.allow_unqualified_recipient or \
                    address.lower() == "postmaster":
                address = f"{address}@{self.opt.qualify_recipient}"
            else:
                self._printf(f"501 {printable(data)}: recipient address must "
                             "contain a domain")
                return 0
        r = self._acl("vrfy", self.opt.acl["vrfy"], address)
        if r.rc != OK:
            return self._handle_acl_fail("vrfy", r)
        trace = getattr(self.acl, "trace", None)
        if not self.host_checking:
            trace = None
        if trace is not None:
            # Exim's verify_address() debug output and the routing trace
            # (no "end verify" line after a VRFY).
            trace(">" * 35)
        try:
            from eximpy.routing import verify
            res = verify(self.config, address, is_recipient=True,
                         sender_address=self.sender or "",
                         variables=self._variables(), trace=trace)
            status, umsg = res.status, res.user_message
        except Exception as exc:               # routing trouble: temporary
            self._log_panic(f"VRFY of {address}: {exc}")
            status, umsg = DEFER, None
        if status == OK:
            self._printf(f"250 <{address}> is deliverable")
        elif status == DEFER:
            self._printf(f"451 <{address}> {umsg}" if umsg else
                         f"451 Cannot resolve <{address}> at this time")
        else:
            self._printf(f"550 <{address}> {umsg}" if umsg else
                         f"550 <{address}> is not deliverable")
            self._log_main(f"VRFY failed for {printable(self._cmd_arg)} "
                           f"{self._host_and_ident(True)}".rstrip())
        return 0

    def _expn(self, data: str) -> None:
        """EXPN: route the argument once in expn mode and list what it
        expands to (Exim's verify_address with vopt_expn)."""
        address = data if "@" in data else \
            f"{data}@{self.opt.qualify_recipient}"
        try:
            from eximpy import routing as R
            from eximpy.address import Address, split_address
            rctx = R.RoutingContext(self.config, R.V_EXPN,
                                    sender_address=self.sender or "",
                                    variables=self._variables())
            rctx.duplicates = set()           # type: ignore[attr-defined]
            rctx.last_address = None          # type: ignore[attr-defined]
            addr = Address(address)
            split_address(addr)
            rc = R.route_address(addr, rctx)
        except Exception as exc:
            self._log_panic(f"EXPN of {address}: {exc}")
            self._printf(f"451 Cannot resolve <{address}> at this time")
            return
        if rc == R.FAIL:
            self._printf(f"553 {address} is undeliverable")
        elif rc in (R.DEFER, R.ERROR):
            self._printf(f"451 Cannot resolve <{address}> at this time")
        else:
            kids = [a.address for a in rctx.addr_new]
            if not kids:
                self._printf(f"250 <{address}>")
            else:
                for i, k in enumerate(kids):
                    sep = " " if i == len(kids) - 1 else "-"
                    self._printf(f"250{sep}<{k}>")

    def _etrn(self, data: str) -> int:
        self._had(ETRN)
        if self.sender is not None:
            return self._synprot_error(
                "protocol", 503, None,
                "ETRN is not permitted inside a transaction")
        if self._logging("etrn", True):
            self._log_main(f"ETRN {self._cmd_arg} received from "
                           f"{self._host_and_ident() or self.login}")
        r = self._acl("etrn", self.opt.acl["etrn"])
        if r.rc != OK:
            return self._handle_acl_fail("etrn", r)
        command = self.opt.get("smtp_etrn_command")
        if not command and not data.startswith("#"):
            return self._synprot_error("syntax", 501, None,
                                       "argument must begin with #")
        trace = getattr(self.acl, "trace", None)
        if self.host_checking:
            if trace is not None:
                trace(f"ETRN command is: {command or 'exim -R'}")
                trace("ETRN command execution skipped")
        elif not self._etrn_run(command, data):
            return 0
        if r.user_message is not None:
            self._user_msg(250, r.user_message)
        else:
            self._printf("250 OK")
        return 0

    def _etrn_run(self, command: str | None, data: str) -> bool:
        """Start smtp_etrn_command (each argument expanded with $domain
        set to the ETRN argument) or "exim -R domain" in a detached
        process; False after answering 458 when that fails."""
        import shlex
        import subprocess
        import sys
        try:
            if command:
                argv = [self._expand(a, {"domain": Tainted(data)})
                        for a in shlex.split(command)]
            else:
                argv = [sys.executable, "-m", "eximpy"]
                cf = getattr(self.config, "filename", None)
                if cf:
                    argv += ["-C", str(cf)]
                argv += ["-R", data[1:]]
        except Exception as exc:
            self._log_panic(f"failed to set up ETRN command: {exc}")
            self._printf("458 Internal failure")
            return False
        try:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
        except OSError as exc:
            self._log_panic(f"fork of process for ETRN failed: {exc}")
            self._printf("458 Unable to fork process")
            return False
        return True

    def _quit(self) -> None:
        self._had(QUIT)
        self.quit_seen = True
        self._incomplete("QUIT")
        user_msg = None
        if self.opt.acl["quit"]:
            r = self._acl("quit", self.opt.acl["quit"])
            user_msg = r.user_message
            if r.__dict__.get("was_error") and self.log is not None:
                # Exim's message_id is still that of the last message.
                self.log.panic("ACL for QUIT returned ERROR: "
                               f"{r.log_message or ''}", self._log_mid)
        if user_msg:
            self._respond(221, "", True, user_msg)
        else:
            self._printf(f"221 {self.active_hostname} closing connection")
        if self._logging("smtp_connection", False):
            self._log_main(f"{self._connection_info()} closed by QUIT")
        self._no_mail_log()
        # Exim waits up to 200 ms for the client to close first; eximpy
        # answers at once (DESIGN.md section 6).

    def _rset(self) -> None:
        self._had(RSET)
        self._incomplete("RSET")
        self._printf("250 Reset OK")
        self.is_mail_cmd[RSET] = False
        self._reset_message()
        self._toomany = False

    def _sync_failure(self) -> None:
        pending = bytes(self._in[:150])
        self._log_reject(
            "SMTP protocol synchronization error (next input sent too soon: "
            f"pipelining was{'' if self.pipelining_advertised else ' not'} "
            f"advertised): rejected \"{printable(self._cmd_line)}\" "
            f"{self._host_and_ident(True)} next input=\""
            f"{printable(pending)}\"")
        self._notquit_exit("synchronization-error", 554,
                           "SMTP synchronization error")

    def _lost_connection(self) -> None:
        """EOF while waiting for a command (or in the middle of data)."""
        if (self._mode in ("data", "bdat") and self._reader is not None) \
                or self._bdat_reader is not None:
            reader = self._reader or self._bdat_reader
            suffix = reader.lost_suffix() if reader is not None else ""
            self._log_main(f"{self._connection_info()} lost while reading "
                           f"message data{suffix}")
            self._bdat_reader = None
            self._notquit_exit("connection-lost", 421,
                               "Lost incoming connection")
            self._reader = None
        else:
            from eximpy.log.format import timediff
            self._incomplete("connection lost")
            self._notquit_exit("connection-lost", 421,
                               f"{self.active_hostname} lost input "
                               "connection")
            dt = timediff(self.clock() - self._connection_start)
            if self.sender is not None or self.recipients:
                self._log_main(
                    f"unexpected {'EOF' if self.local else 'disconnection'} "
                    f"while reading SMTP command from "
                    f"{self._host_and_ident() or self.login} D={dt}")
            elif self._logging("smtp_connection", False):
                self._log_main(f"{self._connection_info()} lost D={dt}")
        self._no_mail_log()
        self.closed = True
