"""freeze_tell: the "Message frozen on arrival" notice after an ACL froze a message.

SUMMARY
    tell_frozen(config, message_id, sender, frozen_by, login, uid, gid)

DESCRIPTION
    When an ACL's ``control = freeze`` froze a received message and the
    main option freeze_tell is set, Exim 4.96 (receive.c, after the "<="
    and "frozen by" log lines) sends a message with moan_tell_someone():
    a new local message from <> to the freeze_tell addresses (taken from
    its To: header, as the child "exim -t" does), marked as Exim's own
    (-localerror, R=<parent id> on its "<=" line), with the headers
    Auto-Submitted, From (Mail Delivery System), To, References (the
    frozen message's Message-ID, when it has one) and Subject "Message frozen on arrival",
    and the body

        Message <id> was frozen on arrival by ACL.
        The sender is <sender>.

    ``control = freeze/no_tell`` suppresses it for the message (the last
    control = freeze obeyed decides, as acl.c resets freeze_tell each
    time).  Exim sends it in -bh too (its child process is real); so does
    eximpy.  The notice is spooled; its delivery is left to queue runs,
    as for eximpy's other messages from Exim itself.

SEE ALSO
    spec: option freeze_tell; "control = freeze" in chapter 44.
"""
from __future__ import annotations

import io
from typing import Any


def tell_frozen(config: Any, message_id: str, sender: str, frozen_by: str,
                login: str | None, uid: int | None, gid: int | None,
                message_id_header: str | None = None) -> str | None:
    """Spool the freeze_tell notice; returns its id (None when freeze_tell
    is unset or nobody could be told)."""
    from eximpy.log.writer import LogWriter
    from eximpy.receive import LocalOptions, ReceiveError, receive_local
    try:
        who = config.main.get("freeze_tell")
    except (KeyError, AttributeError):
        who = None
    if not who:
        return None
    try:
        primary = config.main.get("primary_hostname")
        qdom = config.main.get("qualify_domain") or primary
    except (KeyError, AttributeError):
        primary = qdom = None
    import os
    qdom = qdom or primary or os.uname().nodename
    # moan_write_references(): the frozen message's Message-ID, if any.
    refs = f"References: {message_id_header}\n" if message_id_header \
        else ""
    text = ("Auto-Submitted: auto-replied\n"
            f"From: Mail Delivery System <Mailer-Daemon@{qdom}>\n"
            f"To: {who}\n" + refs +
            "Subject: Message frozen on arrival\n\n"
            f"Message {message_id} was frozen on arrival by {frozen_by}.\n"
            f"The sender is <{sender}>.\n")
    opts = LocalOptions(extract_recipients=True, dot_ends=False,
                        local_error=True, bounce_parent=message_id,
                        login=login, uid=uid, gid=gid,
                        log=LogWriter.from_config(config))
    try:
        return receive_local(config, "", [],
                             io.BytesIO(text.encode("utf-8",
                                                    "surrogateescape")),
                             opts).id
    except ReceiveError:
        return None


def tell_frozen_message(session: Any, msg: Any, mid: str) -> str | None:
    """The SMTP session's call after a frozen message was accepted
    (Session: control = freeze without /no_tell)."""
    ref = None
    try:
        import time
        from eximpy.smtp.accept import build_spool_message
        sm = build_spool_message(session.config, msg, mid, time.time())
        h = sm.header("message-id")
        if h is not None:
            ref = h.value.strip()
    except Exception:
        ref = None
    return tell_frozen(session.config, mid, msg.sender or "", "ACL",
                       session.login, session.uid, session.gid, ref)
