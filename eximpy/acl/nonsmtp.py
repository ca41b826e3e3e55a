"""The non-SMTP ACLs: acl_not_smtp_start and acl_not_smtp for local messages.

SUMMARY
    NonSmtpAcls(config, log, login)          one per locally submitted message
    acls.start(sender, recipients)           acl_not_smtp_start
    acls.mime(mid, sender, recipients, headers, size, body, protocol)
                                             acl_not_smtp_mime, per part
    acls.check(mid, sender, recipients, headers, size, body, protocol)
        -> AclResult                         acl_not_smtp (None when unset)
    acls.done(result)                        remove the content-scan files
    acls.suppress_local_fixups / frozen_by / queued_by / added_headers

DESCRIPTION
    What Exim's receive_msg() does for a message that did not come over
    SMTP (-bm, -t, sendmail): acl_not_smtp_start runs before the message
    is read and its verdict is ignored; it can set ACL variables and
    controls (suppress_local_fixups).  acl_not_smtp runs once the data
    file is written and before the header file is: a deny (or defer: any
    rejection is permanent here) removes the message, logs
    "F=<sender> rejected by non-SMTP ACL: <log message or NULL>" to the
    main and reject logs and tells the caller; discard keeps nothing and
    logs the message as delivered to the blackhole.  Header lines added by
    either ACL are added after both have run, at the position their
    :at_start: / :after_received: / :at_start_rfc: / :at_end: prefix asks.
    control = freeze and control = queue act as in the SMTP DATA ACL.
    acl_not_smtp_mime runs first, once per MIME part; a rejection there
    ends the submission with status 1 and, as in Exim 4.96, says nothing.
    Both ACLs can use the content-scanning conditions (eximpy.acl.content).

SEE ALSO
    spec 44.3 "The non-SMTP ACLs", 44.24 "Adding header lines in ACLs";
    Exim receive.c.
"""
from __future__ import annotations

from typing import Any

from eximpy.acl.runner import OK, AclEnv, AclResult
from eximpy.expand.taint import Tainted
from eximpy.spool.message import HTYPE_OLD, Header

class NonSmtpAcls:
    """The non-SMTP ACL runs of one message (they share $acl_m_*)."""

    def __init__(self, config: Any, log: Any, login: str) -> None:
        from eximpy.spool.layout import config_get
        self.config = config
        self.log = log
        self.login = login
        self.start_acl = config_get(config, "acl_not_smtp_start")
        self.acl = config_get(config, "acl_not_smtp")
        self.mime_acl = config_get(config, "acl_not_smtp_mime")
        self._msg: tuple[dict[str, Any], list[tuple[str, str, str]]] | \
            None = None
        self.acl_m: dict[str, str] = {}
        self.added_headers: list[str] = []
        self.suppress_local_fixups = False
        self.frozen_by: str | None = None
        self.queued_by: str | None = None
        self._engine: Any = None

    @property
    def active(self) -> bool:
        return bool(self.start_acl or self.acl or self.mime_acl)

    def _run(self, where: str, acl: str, variables: dict[str, Any],
             mid: str | None,
             headers: list[tuple[str, str, str]] | None) -> AclResult:
        if self._engine is None:
            from eximpy.acl.engine import make_runner
            self._engine = make_runner(self.config, log=self.log)
        log = self.log

        def logwrite(text: str) -> None:
            if log is not None:
                log.main(text, mid)
        env = AclEnv(variables=variables, acl_c={}, acl_m=self.acl_m,
                     log=logwrite, headers=headers)
        r = self._engine.check(where, acl, env)
        for h in r.added_headers:
            if h not in self.added_headers:
                self.added_headers.append(h)
        for c in r.controls:
            name = c.split("/", 1)[0]
            if name == "suppress_local_fixups" and where == "notsmtp_start":
                self.suppress_local_fixups = True
            elif name == "freeze" and where == "notsmtp":
                self.frozen_by = "ACL"
            elif name in ("queue", "queue_only") and where == "notsmtp":
                self.queued_by = "ACL"
        return r

    def _variables(self, sender: str, recipients: list[str]
                   ) -> dict[str, Any]:
        lp, at, dom = sender.rpartition("@")
        return {
            "sender_address": Tainted(sender),
            "sender_address_local_part": Tainted(lp if at else sender),
            "sender_address_domain": Tainted(dom if at else ""),
            "recipients": ", ".join(recipients),
            "recipients_count": str(len(recipients)),
            "received_protocol": "local",
            "sender_ident": self.login,
        }

    def start(self, sender: str, recipients: list[str]) -> None:
        """acl_not_smtp_start; its verdict is ignored (spec 44.3)."""
        if self.start_acl:
            self._run("notsmtp_start", self.start_acl,
                      self._variables(sender, recipients), None, None)

    def _message_variables(self, mid: str, sender: str,
                           recipients: list[str], headers: list[Header],
                           size: int, body: bytes, protocol: str
                           ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """The variables of the message ACLs (built once per message, with
        the content scan that decode/regex/malware/spam use), and the
        headers for $h_."""
        if self._msg is not None:
            return self._msg
        from eximpy.acl.content import attach_content_scan
        from eximpy.spool.layout import config_get
        v = self._variables(sender, recipients)
        visible = int(config_get(self.config, "message_body_visible", 500)
                      or 0)
        text = body.decode("utf-8", "surrogateescape")
        v.update({
            "message_id": mid, "message_exim_id": mid,
            "message_size": str(size), "received_protocol": protocol,
            "body_linecount": str(body.count(b"\n")),
            "body_zerocount": str(body.count(b"\0")),
            "message_body": Tainted(text[:visible].replace("\n", " ")),
            "message_body_end": Tainted(
                text[-visible:].replace("\n", " ") if visible else ""),
        })
        live = [h for h in headers if h.type != HTYPE_OLD]
        attach_content_scan(v, str(config_get(self.config, "spool_directory",
                                              "") or ""),
                            mid, [h.text for h in live], body, sender,
                            recipients)
        hl = [(h.name, h.text.split(":", 1)[1] if ":" in h.text else "",
               h.type) for h in live]
        self._msg = (v, hl)
        return self._msg

    def mime(self, mid: str, sender: str, recipients: list[str],
             headers: list[Header], size: int, body: bytes,
             protocol: str) -> AclResult | None:
        """acl_not_smtp_mime, once per MIME part (Exim's run_mime_acl());
        None when it is unset or the message is not MIME."""
        if not self.mime_acl:
            return None
        from eximpy.acl.content import run_mime_acl
        v, hl = self._message_variables(mid, sender, recipients, headers,
                                        size, body, protocol)
        return run_mime_acl(
            lambda pv: self._run("mime", self.mime_acl, pv, mid, hl), v,
            [h.text for h in headers if h.type != HTYPE_OLD], body)

    def check(self, mid: str, sender: str, recipients: list[str],
              headers: list[Header], size: int, body: bytes,
              protocol: str) -> AclResult | None:
        """acl_not_smtp, once the data is on the spool."""
        if not self.acl:
            return None
        v, hl = self._message_variables(mid, sender, recipients, headers,
                                        size, body, protocol)
        return self._run("notsmtp", self.acl, dict(v), mid, hl)

    def done(self, result: Any) -> None:
        """The message ACLs are over: remove the scan directory (unless an
        ACL said control = no_mbox_unspool)."""
        if self._msg is not None:
            from eximpy.acl.content import unspool_after
            unspool_after(self._msg[0], result, None)


__all__ = ["NonSmtpAcls", "OK"]
