"""Shared plumbing for the queue and log tools (config, spool, output).

SUMMARY
    load_config_quiet(path) -> Config | None
    spool_directory(config_file, spool) -> str
    message_vars(layout, id, now) -> dict[str, str | int | bool] | None
    run_main(fn) -> exit status with BrokenPipe handled

DESCRIPTION
    The tools read the spool only through eximpy.spool and print -bp
    entries only through eximpy.cli.queue_ops, so their view of a message
    is the same as ``eximpy -bp``'s.  ``message_vars`` gives exipick's
    variables (Exim's names, plus exipick's own: $recipients_del,
    $shown_message_size, $deliver_freeze ...).

SEE ALSO
    spec chapter 54 "Exim utilities"; exipick(8).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from eximpy.cli.queue_ops import format_size, load_for_listing
from eximpy.spool.layout import SpoolLayout, config_get
from eximpy.spool import data_file
from eximpy.spool.lock import data_start_offset
from eximpy.spool.message import HTYPE_OLD, HTYPE_RECEIVED

DEFAULT_SPOOL = "/var/spool/exim4"


def load_config_quiet(path: str | None) -> Any:
    """The configuration (``-C`` file or the default search path), or None
    if it cannot be read."""
    try:
        from eximpy.config import DEFAULT_SEARCH_PATH, load_config
        return load_config(path or DEFAULT_SEARCH_PATH)
    except Exception:
        return None


def spool_directory(config_file: str | None, spool: str | None) -> str:
    if spool:
        return spool
    cfg = load_config_quiet(config_file)
    if cfg is not None:
        return str(config_get(cfg, "spool_directory", DEFAULT_SPOOL))
    return DEFAULT_SPOOL


def message_vars(layout: SpoolLayout, mid: str, directory: str | None,
                 now: float, want_body: bool = False
                 ) -> dict[str, Any] | None:
    """exipick's variables for one message; None if the -H is unusable."""
    item = load_for_listing(layout, mid, directory)
    msg = item.msg
    if msg is None or item.envelope_error:
        return None
    d = directory or os.path.dirname(layout.find(mid, "-H") or "")
    v: dict[str, Any] = {}
    v["message_exim_id"] = v["message_id"] = mid
    v["header_path"] = os.path.join(d, mid + "-H")
    v["data_path"] = os.path.join(d, mid + "-D")
    v["message_body_missing"] = not os.path.exists(v["data_path"])
    v["sender_address"] = msg.sender
    lp, _, dom = msg.sender.rpartition("@")
    v["sender_address_local_part"] = lp if msg.sender else ""
    v["sender_address_domain"] = dom if msg.sender else ""
    v["originator_login"] = msg.originator_login
    v["originator_uid"] = msg.originator_uid
    v["originator_gid"] = msg.originator_gid
    v["received_time"] = msg.received_time
    v["message_age"] = int(now) - msg.received_time
    v["warning_count"] = msg.warning_count
    v["sender_helo_name"] = msg.helo_name or ""
    v["sender_host_address"] = msg.host_address or ""
    v["sender_host_port"] = msg.host_port if msg.host_address else ""
    v["sender_host_name"] = msg.host_name or ""
    v["sender_host_authenticated"] = msg.host_auth or ""
    v["received_ip_address"] = v["interface_address"] = \
        msg.interface_address or ""
    v["received_port"] = v["interface_port"] = \
        msg.interface_port if msg.interface_address else ""
    v["smtp_active_hostname"] = msg.active_hostname or ""
    v["sender_ident"] = msg.ident or ""
    v["received_protocol"] = msg.received_protocol or ""
    v["authenticated_id"] = msg.auth_id or ""
    v["authenticated_sender"] = msg.auth_sender or ""
    v["body_linecount"] = msg.body_linecount
    v["body_zerocount"] = msg.body_zerocount
    v["max_received_linelength"] = msg.max_received_linelength
    v["allow_unqualified_recipient"] = msg.allow_unqualified_recipient
    v["allow_unqualified_sender"] = msg.allow_unqualified_sender
    v["first_delivery"] = msg.deliver_firsttime
    v["deliver_freeze"] = msg.frozen
    v["deliver_frozen_at"] = msg.frozen_at if msg.frozen else ""
    v["dont_deliver"] = msg.dont_deliver
    v["host_lookup_deferred"] = msg.host_lookup_deferred
    v["host_lookup_failed"] = msg.host_lookup_failed
    v["sender_local"] = msg.sender_local
    v["local_error_message"] = msg.local_error_message
    v["local_scan_data"] = msg.local_scan or ""
    v["manually_thawed"] = msg.manual_thaw
    v["sender_set_untrusted"] = msg.sender_set_untrusted
    v["spam_score"] = msg.spam_score or ""
    v["spam_score_int"] = msg.spam_score_int or ""
    v["tls_certificate_verified"] = msg.tls_certificate_verified
    v["tls_cipher"] = msg.tls_cipher or ""
    v["tls_peerdn"] = msg.tls_peerdn or ""
    v["tls_sni"] = msg.tls_sni or ""
    for name, value in msg.acl_vars.items():
        v["acl_" + name] = value
    rcpts = [r.address for r in msg.recipients]
    done = [a for a in rcpts if a in msg.non_recipients]
    extra = [a for a in msg.non_recipients.inorder() if a not in rcpts]
    undone = [a for a in rcpts if a not in msg.non_recipients]
    v["recipients"] = ", ".join(rcpts)
    v["recipients_count"] = len(rcpts)
    v["recipients_del"] = ", ".join(done + extra)
    v["recipients_del_count"] = len(done)
    v["recipients_undel"] = ", ".join(undone)
    v["recipients_undel_count"] = len(undone)
    v["_each"] = {"recipients": rcpts, "recipients_del": done + extra,
                  "recipients_undel": undone}
    v["message_size"] = item.size
    v["shown_message_size"] = format_size(item.size).strip()
    body_size = msg.body_size if msg.body_size is not None else 0
    v["message_body_size"] = body_size
    v["message_linecount"] = msg.linecount
    v["received_count"] = sum(1 for h in msg.headers
                              if h.type == HTYPE_RECEIVED)
    live = [h for h in msg.headers if h.type != HTYPE_OLD]
    v["message_headers_raw"] = "".join(h.text for h in live).rstrip("\n")
    v["message_headers"] = v["message_headers_raw"]
    hdrs: dict[str, str] = {}
    for h in live:
        key = h.name.lower()
        val = h.value.strip()
        hdrs[key] = hdrs[key] + "\n" + val if key in hdrs else val
    v["_headers"] = hdrs
    rt = hdrs.get("reply-to") or hdrs.get("from", "")
    v["reply_address"] = rt
    if want_body and not v["message_body_missing"]:
        try:
            raw = data_file.read_file(v["data_path"])
            body = raw[data_start_offset(mid):].decode("utf-8",
                                                      "surrogateescape")
            v["message_body"] = body.replace("\n", " ").replace("\0", " ")
        except OSError:
            v["message_body"] = ""
    v["_item"] = item
    v["_dir"] = d
    return v


def run_main(fn: Callable[[list[str]], int], argv: list[str] | None = None
             ) -> int:
    try:
        return fn(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        return 130
