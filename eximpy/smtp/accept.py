"""After DATA: build the received message, spool it durably, log "<=".

SUMMARY
    SpoolSink(config, log, now=None)        MessageSink that writes the spool
    TestSink(config, log=None)              -bh: an id, no files (Exim's -bh)
    build_spool_message(config, msg, mid, now) -> (SpoolMessage, body)

DESCRIPTION
    The session (eximpy.smtp.server) hands a ReceivedMessage to a sink.
    SpoolSink then does what Exim's receive_msg() does after the data:

      * received_headers_max: more Received: headers than that is a
        suspected loop, "550 Too many "Received" headers - suspected mail
        loop";
      * a Received: header from received_header_text (expanded with
        eximpy.expand; an empty expansion adds none), then the message's
        own headers;
      * for locally submitted SMTP (-bs, no host address) unless
        control = suppress_local_fixups, and in submission mode:
        Message-Id:, From: and Date: when missing; in submission mode
        Sender: lines are replaced by one built from $authenticated_id
        when From: differs, and the return path follows it;
      * then the headers added by ACLs; remove_header marks lines "*";
      * control = freeze: -H "-frozen", "frozen by ACL"; control = queue:
        "no immediate delivery: queued by ACL" (ReceivedMessage.queued_by
        tells the caller not to deliver); queue = name: the named queue's
        spool and " Q=name" in "<=";  fakereject logs "(=";
      * the -D file is written, the -H written to its temporary name, both
        fsynced (one journal commit), the -H renamed into place and the
        directory fsynced (eximpy.spool) -- the guarantee Exim gives,
        with one fewer wait -- and only then the "250 OK id=..." answer
        is given;
      * the message log is created with Exim's "Received from" line
        (message_logs), then the "<=" line goes to the mainlog, while the
        -D is still locked.

SECURITY
    Everything in the message is client data: it is only ever written to
    the -D/-H files and, escaped, to the log.

SEE ALSO
    spec chapter "Message processing" (added headers), "Format of spool
    files"; eximpy.receive (the non-SMTP counterpart).
"""
from __future__ import annotations

import os
import time
from typing import Any

from eximpy.message.ids import new_message_id
from eximpy.smtp.server import VERSION, ReceivedMessage, _tod_full
from eximpy.acl.engine import place_added_headers
from eximpy.expand import ExpandContext, expand_string
from eximpy.spool import data_file, header_file, msglog
from eximpy.spool.layout import SpoolLayout
from eximpy.spool.message import (HTYPE_OLD, HTYPE_RECEIVED, Header,
                                  Recipient, SpoolMessage, header_type_for,
                                  mark_tainted_acl_vars)


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _htype(name: str) -> str:
    """The -H type letter (Resent- forms counted as Exim does)."""
    return header_type_for(name)


def _header(text: str) -> Header:
    if not text.endswith("\n"):
        text += "\n"
    return Header(_htype(text.split(":", 1)[0]), text)


def _rcvhost(msg: ReceivedMessage) -> str:
    """Exim's $sender_rcvhost: "name\n\t([ip] helo=h ident=u)" or
    "[ip] (helo=h ident=u)"."""
    if msg.host_address is None:
        return ""
    extra = []
    if msg.helo_name and (msg.host_name is None or
                          msg.helo_name.lower() != msg.host_name.lower()):
        extra.append(f"helo={msg.helo_name}")
    if msg.ident:
        extra.append(f"ident={msg.ident}")
    if msg.host_name:
        return f"{msg.host_name}\n\t(" + " ".join(
            [f"[{msg.host_address}]"] + extra) + ")"
    s = f"[{msg.host_address}]"
    if extra:
        s += " (" + " ".join(extra) + ")"
    return s


class _StampCache:
    """The last second's log time stamp (several per message)."""

    sec = -1
    text = ""


def _log_stamp(now: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` local time, formatted once per second."""
    sec = int(now)
    if sec != _StampCache.sec:
        _StampCache.text = time.strftime("%Y-%m-%d %H:%M:%S",
                                         time.localtime(sec))
        _StampCache.sec = sec
    return _StampCache.text


class _Options:
    """The main options building a spool message needs, read once per
    configuration (build_spool_message runs for every message)."""

    _cache: dict[int, tuple[Any, "_Options"]] = {}

    def __init__(self, config: Any) -> None:
        main = config.main

        def get(name: str, default: Any = None) -> Any:
            try:
                v = main.get(name)
            except (KeyError, AttributeError):
                return default
            return default if v is None else v
        self.get = get
        self.primary = get("primary_hostname") or os.uname().nodename
        self.received_header_text = get("received_header_text")
        # Return-Path:, Envelope-To: and Delivery-Date: are added at
        # delivery; copies arriving with the message are dropped.
        self.drop = frozenset(
            hname for opt, hname in (
                ("return_path_remove", "return-path"),
                ("envelope_to_remove", "envelope-to"),
                ("delivery_date_remove", "delivery-date"))
            if get(opt, True) is not False)
        self.qualify_domain = get("qualify_domain") or self.primary
        self.qualify_recipient = get("qualify_recipient") or \
            self.qualify_domain
        self.message_id_header_domain = get("message_id_header_domain") \
            or self.primary
        self.message_id_header_text = get("message_id_header_text")

    @classmethod
    def of(cls, config: Any) -> "_Options":
        hit = cls._cache.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        if len(cls._cache) > 16:
            cls._cache.clear()
        opts = cls(config)
        cls._cache[id(config)] = (config, opts)
        return opts


def _received(config: Any, msg: ReceivedMessage, mid: str, primary: str,
              now: float, sender: str | None = None) -> Header:
    template = _Options.of(config).received_header_text
    received_for = msg.received_for if msg.received_for is not None else \
        (msg.recipients[0][0] if len(msg.recipients) == 1 else "")
    variables = {
        "sender_rcvhost": _rcvhost(msg),
        "sender_ident": msg.ident or "",
        "sender_helo_name": msg.helo_name or "",
        "sender_host_address": msg.host_address or "",
        "sender_host_name": msg.host_name or "",
        "primary_hostname": primary,
        "received_protocol": msg.received_protocol,
        "tls_in_ver": msg.tls.ver if msg.tls else "",
        "tls_in_cipher_std": msg.tls.cipher_std if msg.tls else "",
        "tls_in_cipher": msg.tls.cipher if msg.tls else "",
        "version_number": VERSION,
        "sender_address": msg.sender if sender is None else sender,
        "message_exim_id": mid, "message_id": mid,
        "received_for": received_for,
        "tod_full": _tod_full(now),
        "authenticated_id": msg.authenticated_id or "",
    }
    text = None
    if template:
        ctx = ExpandContext(config=config, variables=variables,
                            acl_c=msg.acl_c, acl_m=msg.acl_m)
        text = expand_string(template, ctx)
    else:
        text = ""
    if text == "":
        return Header(HTYPE_OLD, f"Received: ; {variables['tod_full']}\n")
    return Header(HTYPE_RECEIVED, f"{text};\n\t{variables['tod_full']}\n")


def build_spool_message(config: Any, msg: ReceivedMessage, mid: str,
                        now: float) -> SpoolMessage:
    """The SpoolMessage (headers included) for an accepted SMTP message."""
    opts = _Options.of(config)
    primary = opts.primary
    sm = SpoolMessage(id=mid, originator_login=msg.originator_login,
                      originator_uid=msg.originator_uid,
                      originator_gid=msg.originator_gid, tls_resumption="A")
    sm.sender = msg.sender
    t = msg.received_time
    sm.received_time = int(t)
    sm.received_time_usec = int((t - int(t)) * 1_000_000)
    sm.helo_name = msg.helo_name
    if msg.helo_name is not None:
        sm.tainted.add("helo_name")
    if msg.host_tainted:
        for name, val in (("host_address", msg.host_address),
                          ("host_name", msg.host_name),
                          ("interface_address", msg.interface_address)):
            if val is not None:
                sm.tainted.add(name)
    sm.host_address = msg.host_address
    sm.host_port = msg.host_port
    sm.host_name = msg.host_name
    sm.interface_address = msg.interface_address
    sm.interface_port = msg.interface_port
    sm.ident = msg.ident
    sm.received_protocol = msg.received_protocol
    sm.active_hostname = msg.active_hostname
    if msg.tls is not None:
        sm.tls_cipher = msg.tls.cipher
        sm.tls_ver = msg.tls.ver
        sm.tls_certificate_verified = msg.tls.certificate_verified
        sm.tls_peerdn = msg.tls.peerdn
        if msg.tls.peerdn is not None:
            sm.tainted.add("tls_peerdn")
        from eximpy.smtp.tls import pem_for_spool
        if getattr(msg.tls, "peercert", None):
            sm.tls_peercert = pem_for_spool(msg.tls.peercert)
            sm.tainted.add("tls_peercert")
        if getattr(msg.tls, "ourcert", None):
            sm.tls_ourcert = pem_for_spool(msg.tls.ourcert)
        sm.tls_sni = msg.tls.sni
        if msg.tls.sni is not None:
            sm.tainted.add("tls_sni")
    sm.body_linecount = msg.body_linecount
    sm.body_zerocount = msg.body_zerocount
    sm.max_received_linelength = msg.max_received_linelength
    sm.allow_unqualified_recipient = msg.local
    sm.allow_unqualified_sender = msg.local
    sm.deliver_firsttime = True
    sm.smtputf8 = msg.smtputf8
    sm.dsn_envid = msg.dsn_envid
    sm.dsn_ret = msg.dsn_ret
    sm.auth_id = msg.authenticated_id
    if msg.authenticated_id is not None:
        sm.tainted.add("auth_id")
    sm.auth_sender = msg.authenticated_sender
    if msg.authenticated_sender is not None:
        sm.tainted.add("auth_sender")
    sm.host_auth = msg.authenticator
    sm.host_auth_pubname = msg.auth_pubname
    for k, v in (getattr(msg, "spam_values", None) or {}).items():
        setattr(sm, k, v)                 # spam_bar, spam_score, ..._int
    sm.acl_vars = {k[4:]: v for k, v in msg.acl_m.items()}
    sm.acl_vars.update({k[4:]: v for k, v in msg.acl_c.items()})
    mark_tainted_acl_vars(sm)
    sm.recipients = [Recipient(a, orcpt=o, dsn_flags=f)
                     for a, o, f in msg.recipients]
    headers = [_header(_s(h)) for h in msg.headers]
    # Return-Path:, Envelope-To: and Delivery-Date: are added at delivery;
    # copies arriving with the message are dropped (the *_remove options).
    lows = [h.name.lower() for h in headers]
    drop = opts.drop
    for h, low in zip(headers, lows):
        if low in drop:
            h.type = HTYPE_OLD
    # Unqualified addresses in address headers are qualified where the
    # sender may send them (local submissions, *_unqualified_hosts):
    # the old line is kept as "*", the new one follows it.
    qdom = opts.qualify_domain
    qrcpt = opts.qualify_recipient
    if msg.allow_unqualified_sender or msg.allow_unqualified_recipient:
        from eximpy.smtp.address import qualify_header
        out: list[Header] = []
        for h in headers:
            out.append(h)
            if h.type in ("S", "F", "R", "T", "C", "B"):
                new = qualify_header(h.text, h.type in ("S", "F", "R"),
                                     qdom, qrcpt,
                                     msg.allow_unqualified_sender,
                                     msg.allow_unqualified_recipient)
                if new is not None:
                    out.append(Header(h.type, new))
                    h.type = HTYPE_OLD
        headers = out
        lows = [h.name.lower() for h in headers]
    sub = msg.submission
    # Submission mode without sender_retain: the return path becomes the
    # address made from $authenticated_id (spec 48.16), before Received:.
    created = None
    if sub is not None and not sub.get("sender_retain"):
        created = _submission_address(msg, qdom)
        if created and msg.sender:
            sm.sender = created
    received = _received(config, msg, mid, primary, now, sm.sender)
    body_headers = list(headers)
    resent = any(low.startswith("resent-") for low in lows)
    prefix = "Resent-" if resent else ""
    names = {low for h, low in zip(headers, lows) if h.type != HTYPE_OLD}

    def add(text: str, top: bool = False) -> None:
        """Append; with Resent- headers, Resent-Message-Id: and Resent-Date:
        go to the top instead, just after Received: (Exim's
        header_add_at_position with no name); Resent-From: is appended."""
        h = _header(text)
        if resent and top:
            body_headers.insert(0, h)
        else:
            body_headers.append(h)
    fixups = (msg.local and not msg.suppress_local_fixups) or \
        sub is not None
    if fixups:
        if f"{prefix}message-id".lower() not in names:
            dom = opts.message_id_header_domain
            text = opts.message_id_header_text
            local = f"E{mid}" + (f"-{text}" if text else "")
            add(f"{prefix}Message-Id: <{local}@{dom}>\n", top=True)
        if f"{prefix}from".lower() not in names:
            oname = (sub or {}).get("name") or "" \
                if msg.host_address is not None else ""
            frm = msg.sender or (_submission_address(msg, qdom)
                                 if sub is not None else None)
            if frm:
                add(f"{prefix}From: {_phrase(oname)} <{frm}>\n" if oname
                    else f"{prefix}From: {frm}\n")
    if sub is not None and not sub.get("sender_retain"):
        # Submission mode: Sender: lines go; one is made from the
        # authenticated id when From: names someone else (spec 48.16).
        for h in body_headers:
            if h.type != HTYPE_OLD and h.name.lower() == "sender":
                h.type = HTYPE_OLD
        if created:
            frm_h = next((h for h in body_headers if h.type != HTYPE_OLD and
                          h.name.lower() == "from"), None)
            frm_addr = _first_address(frm_h.value) if frm_h else ""
            if frm_addr.lower() != created.lower():
                name = sub.get("name") or ""
                body_headers.append(_header(
                    f"Sender: {_phrase(name)} <{created}>\n" if name else
                    f"Sender: {created}\n"))
    if fixups and f"{prefix}date".lower() not in names:
        add(f"{prefix}Date: {_tod_full(now)}\n", top=True)
    # Headers added by ACLs follow the fix-ups (Exim adds them last);
    # remove_header marks matching lines as "*" (old).
    sm.headers = [received] + body_headers
    place_added_headers(sm.headers, msg.added_headers)
    if msg.removed_headers:
        _remove_headers([h for h in sm.headers if h is not received],
                        msg.removed_headers)
    if msg.frozen_by is not None:
        sm.frozen = True
        sm.frozen_at = int(now)
    return sm


def _submission_address(msg: ReceivedMessage, qdom: str) -> str | None:
    """The address submission mode builds from $authenticated_id."""
    aid = msg.authenticated_id
    if not aid:
        return None
    dom = (msg.submission or {}).get("domain")
    if dom is None:
        return f"{aid}@{qdom}"
    return f"{aid}@{dom}" if dom else aid


def _phrase(name: str) -> str:
    """A display name as an RFC 2822 phrase: quoted when it holds
    specials (Exim's parse_fix_phrase, simplified)."""
    if not any(c in name for c in '()<>@,;:\\".[]'):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first_address(value: str) -> str:
    """The first address in a header value (no comments or phrase)."""
    v = value.strip()
    lt = v.find("<")
    if lt >= 0:
        gt = v.find(">", lt)
        return v[lt + 1:gt if gt > 0 else len(v)].strip()
    v = v.split(",")[0]
    if "(" in v:
        v = v[:v.index("(")]
    return v.strip()


def _remove_headers(headers: list[Header], lists: list[str]) -> None:
    """Mark the headers named in remove_header lists as old ("*");
    a name ending in "*" matches as a prefix (colon or Exim list)."""
    from eximpy.expand.lists import iter_list
    names: list[str] = []
    for text in lists:
        names.extend(n.strip().rstrip(":").lower()
                     for n in iter_list(text) if n.strip())
    for h in headers:
        low = h.name.lower()
        for n in names:
            if low == n or (n.endswith("*") and low.startswith(n[:-1])):
                h.type = HTYPE_OLD
                break


class SpoolSink:
    """Writes accepted messages to the spool and logs them."""

    def __init__(self, config: Any, log: Any = None,
                 now: float | None = None) -> None:
        self.config = config
        self.log = log
        self.now = now
        self.layout = SpoolLayout.from_config(config)
        self._dir_fds: dict[str, int] = {}
        try:
            self.message_logs = config.main.get("message_logs") \
                is not False
        except (KeyError, AttributeError):
            self.message_logs = True
        try:
            self.localhost_number = config.main.get("localhost_number")
        except (KeyError, AttributeError):
            self.localhost_number = None
        try:
            self.received_headers_max = int(
                config.main.get("received_headers_max") or 30)
        except (KeyError, AttributeError, ValueError):
            self.received_headers_max = 30

    def _loop_check(self, msg: ReceivedMessage) -> bool:
        n = sum(1 for h in msg.headers
                if h[:9].lower() == b"received:"
                or (h[:8].lower() == b"received" and
                    h[8:].lstrip(b" \t")[:1] == b":"))
        return n > self.received_headers_max

    def store(self, msg: ReceivedMessage) -> tuple[int, str, str | None]:
        # received_headers_max is checked at delivery time, not here
        # (spec: "When a message is to be delivered, the number of
        # Received: headers is counted").
        if False and self._loop_check(msg):
            if self.log is not None:
                who = f"H=[{msg.host_address}]" if msg.host_address else \
                    (f"U={msg.ident}" if msg.ident else "")
                self.log.reject(f"rejected from <{msg.sender}> {who}: "
                                "Too many \"Received\" headers: suspected "
                                "mail loop")
            return 550, 'Too many "Received" headers - suspected mail loop', \
                None
        now = time.time() if self.now is None else self.now
        mid = msg.message_id or new_message_id(self.localhost_number,
                                                now=self.now)
        sm = build_spool_message(self.config, msg, mid, now)
        layout = self.layout
        if msg.queue_name:
            # `queue =` in an ACL: the message goes to that named queue.
            layout = SpoolLayout.from_config(self.config,
                                             queue=msg.queue_name)
        df = data_file.create(layout, mid, layout.uid, layout.gid,
                              body=msg.body)
        try:
            sm.body_size = len(msg.body)
            done = time.time() if self.now is None else self.now
            sm.received_time_complete = (int(done),
                                         int((done - int(done)) * 1_000_000))
            # The -D is fsynced together with the -H, before the rename.
            header_file.write(layout, sm, uid=layout.uid, gid=layout.gid,
                              sync_first=df.fd,
                              dir_fd=self._input_dir_fd(layout, mid))
        except BaseException:
            df.abandon()
            raise
        ok = self.log is None or self._log_received(msg, sm, now, layout)
        df.close()
        if not ok:
            # No "<=" line, no message: a message accepted without its log
            # line would leave no audit trail.  The client tries again.
            self._unspool(layout, mid)
            return 451, "Temporary local problem - please try later", None
        return 250, f"OK id={mid}", mid

    def _input_dir_fd(self, layout: SpoolLayout, mid: str) -> int | None:
        """An open descriptor of the input directory the message's -H goes
        to, kept for the session (one open() per connection, not per
        message)."""
        d = layout.input_dir(mid)
        fd = self._dir_fds.get(d)
        if fd is None:
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return None
            self._dir_fds[d] = fd
        return fd

    def close(self) -> None:
        """Close the kept directory descriptors."""
        for fd in self._dir_fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._dir_fds.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _unspool(self, layout: Any, mid: str) -> None:
        for suffix in ("-H", "-D"):
            path = layout.find(mid, suffix)
            if path is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        try:
            os.unlink(layout.msglog_file(mid))
        except OSError:
            pass

    def _log_controls(self, msg: ReceivedMessage, mid: str) -> None:
        """After "<=": what ACL controls did (Exim's receive_msg())."""
        if msg.frozen_by is not None:
            self.log.main(f"frozen by {msg.frozen_by}", mid)
        sel = getattr(self.log, "selector", None)
        if msg.queued_by is not None and (sel is None or
                                          "delay_delivery" in sel):
            where = f" in {msg.queue_name}" if msg.queue_name else ""
            self.log.main(f"no immediate delivery: queued{where} by "
                          f"{msg.queued_by}", mid)

    def blackhole(self, msg: ReceivedMessage, reason: str,
                  log_msg: str | None = None
                  ) -> tuple[int, str, str | None]:
        """All recipients were discarded: log the message as received and
        delivered to the blackhole, and keep nothing (Exim)."""
        now = time.time() if self.now is None else self.now
        mid = msg.message_id or new_message_id(self.localhost_number,
                                                now=self.now)
        sm = build_spool_message(self.config, msg, mid, now)
        sm.body_size = len(msg.body)
        if self.log is not None:
            self._log_received(msg, sm, now)
            extra = f": {log_msg}" if log_msg else ""
            self.log.main(f"=> blackhole ({reason}){extra}", mid)
            self.log.main("Completed", mid)
        return 250, f"OK id={mid}", mid

    def _log_received(self, msg: ReceivedMessage, sm: SpoolMessage,
                      start: float, layout: SpoolLayout | None = None
                      ) -> bool:
        """The "<=" line (and what ACL controls did); with ``layout``, the
        message log is created first with its "Received from" line, as
        Exim's receive_msg() does (message_logs)."""
        from eximpy.log import format as logfmt
        sel = getattr(self.log, "selector", None)
        if sel is None:
            sel = logfmt.LogSelector.from_config(self.config)
        mh = subj = None
        for h in sm.headers:              # (one pass for both headers)
            if h.type == HTYPE_OLD:
                continue
            t = h.text
            if t[:1] in "mMsS":
                low = h.name.lower()
                if low == "message-id" and mh is None:
                    mh = h
                elif low == "subject" and subj is None:
                    subj = h
        msgid = None
        if mh is not None:
            v = mh.value.strip()
            msgid = v[1:-1] if v.startswith("<") and v.endswith(">") else v
        logged_rcpts = msg.log_recipients if msg.log_recipients is not None \
            else [r[0] for r in msg.recipients]
        line = logfmt.received(
            sel, sm.sender, host_name=msg.host_name,
            helo=msg.helo_name if msg.host_address else None,
            host_address=msg.host_address, host_port=msg.host_port,
            interface_address=msg.interface_address,
            interface_port=msg.interface_port, ident=msg.ident,
            protocol=msg.received_protocol,
            tls_cipher=msg.tls.cipher if msg.tls else None,
            tls_cert_verified=("yes" if msg.tls.certificate_verified
                               else "no") if msg.tls else None,
            tls_peerdn=msg.tls.peerdn if msg.tls else None,
            tls_sni=msg.tls.sni if msg.tls else None,
            authenticator=msg.authenticator, auth_id=msg.authenticated_id,
            auth_sender=msg.authenticated_sender,
            pipelining=msg.pipelining,
            chunking=msg.chunking, prdr=msg.prdr, size=sm.message_size,
            body_8bitmime=msg.body_8bitmime,
            receive_time=time.time() - msg.received_time,
            message_id_header=msgid,
            message_id_created=((msg.local and
                                 not msg.suppress_local_fixups) or
                                msg.submission is not None) and not any(
                h[:11].lower() == b"message-id:" for h in msg.headers),
            subject=subj.value if subj else None,
            recipients=logged_rcpts,
            fakereject=msg.fake_response == "FAIL")
        dkim_dom = getattr(msg, "dkim_domain", None)
        if dkim_dom and "dkim" in sel:
            # Exim: " DKIM=<first passing domain>" after S= (and M8S=).
            import re
            line = re.sub(r"( S=\d+(?: M8S=\d+)?)",
                          lambda m: f"{m.group(1)} DKIM={dkim_dom}",
                          line, count=1)
        if msg.queue_name:
            # Exim puts " Q=<queue>" after S= (and M8S=).
            import re
            line = re.sub(r"( S=\d+(?: M8S=\d+)?)",
                          lambda m: f"{m.group(1)} Q={msg.queue_name}",
                          line, count=1)
        if layout is not None and self.message_logs:
            # The message log gets the line without what log_write adds
            # for +received_sender / +received_recipients.
            mline = line
            if logged_rcpts and "received_recipients" in sel:
                mline = mline[:-len(" for " + " ".join(logged_rcpts))]
            if "received_sender" in sel:
                mline = mline[:-len(f" from <{sm.sender}>")]
            self._msglog(layout, msg, sm.id, "Received from " + mline[3:],
                         "millisec" in sel)
        if not self.log.main(line, sm.id):
            return False
        self._log_controls(msg, sm.id)
        return True

    def _msglog(self, layout: SpoolLayout, msg: ReceivedMessage, mid: str,
                text: str, millisec: bool) -> None:
        """Create the message log with its reception lines (Exim writes
        "frozen by" and "no immediate delivery" lines there too)."""
        now = time.time()
        if millisec:
            from eximpy.log.format import timestamp
            stamp = timestamp(now, True)
        else:
            stamp = _log_stamp(now)
        lines = [f"{stamp} {text}\n"]
        if msg.frozen_by is not None:
            lines.append(f"{stamp} frozen by {msg.frozen_by}\n")
        if msg.queued_by is not None:
            where = f" in {msg.queue_name}" if msg.queue_name else ""
            lines.append(f"{stamp} no immediate delivery: queued{where} by "
                         f"{msg.queued_by}\n")
        try:
            msglog.create(layout, mid, "".join(lines))
        except OSError as e:
            self.log.panic(f"Couldn't open message log "
                           f"{layout.msglog_file(mid)}: {e.strerror}")


class TestSink(SpoolSink):
    """-bh: Exim makes an id and logs the "<=" line (to stderr in -bh),
    but writes no spool files ("that is not a real message id")."""

    def store(self, msg: ReceivedMessage) -> tuple[int, str, str | None]:
        now = time.time() if self.now is None else self.now
        mid = msg.message_id or new_message_id(self.localhost_number,
                                                now=self.now)
        if self.log is not None:
            sm = build_spool_message(self.config, msg, mid, now)
            sm.body_size = len(msg.body)
            self._log_received(msg, sm, now)
        return 250, f"OK id={mid}", mid
