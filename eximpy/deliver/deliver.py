"""Delivering one spooled message: deliver_message().

SUMMARY
    deliver_message(config, message_id, forced=False) -> DeliveryOutcome

DESCRIPTION
    The steps of Exim's deliver_message() for local delivery:

      1. lock the message (fcntl on -D, eximpy.spool.lock) -- a message
         another process holds is left alone;
      2. read -H, replay the -J journal of an interrupted attempt into the
         non-recipients tree, read the body;
      3. route every undelivered recipient (eximpy.routing), feeding
         redirect children back through the routers and collecting
         pipe/file/autoreply "addresses";
      4. drop duplicates (same unique address and transport);
      5. run local transports (appendfile, pipe, autoreply) one address at a
         time; each success is written to -J (fsynced) *before* -H changes,
         so that a crash never causes a second delivery;
      6. log "=>", "**", "==" lines with eximpy.log.format's builders and,
         when nothing is left, "Completed" and remove the spool files;
         otherwise rewrite -H (atomically) and remove -J.

    Then failures are bounced (eximpy.deliver.bounce: one RFC 3464 report
    per errors address, bounce_message_file templates, pipe output), a
    failed bounce is frozen, success DSNs are sent for NOTIFY=SUCCESS, and
    delay warnings follow delay_warning / warn_message_file.  Retry hints
    (eximpy.deliver.retry): in a queue run that is not forced
    (``queue_run=True``), addresses whose retry time has not come are
    deferred untried; after the deliveries the retry database is updated
    and addresses past their cutoff, or with no retry rule, time out
    ("retry timeout exceeded").  Frozen messages follow
    timeout_frozen_after, ignore_bounce_errors_after, auto_thaw and a
    forced thaw (``force_thaw``: -M, -qff); the system filter
    (eximpy.deliver.system_filter) runs before routing.

    Addresses routed to remote transports (smtp) are delivered by
    eximpy.deliver.remote.deliver_remote(), which logs and sorts them onto
    the same lists.  Local transports run as the delivery uid/gid found as
    Exim's findugid() finds them (never_users, fixed_never_users, the Exim
    user by default): a process that may change ids (root, or the delivery
    role with CAP_SETUID/CAP_SETGID) runs every local transport in a warm
    worker process that became that user for good, one per uid, gid and
    groups, serving many deliveries (eximpy.deliver.local,
    eximpy.deliver.worker); a plain user runs everything as itself.
    deliver_many() delivers
    a list of messages from one warm process, optionally in forked
    parallel children.

SECURITY
    File names and commands reach transports only through their checks for
    tainted values (eximpy.transports).  The -D lock is held for the whole
    delivery.

SEE ALSO
    spec 3.13 "Delivery in detail", chapter 53 "Log files"; Exim deliver.c.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from eximpy import routing as R
from eximpy.address import Address, split_address


@dataclass
class DeliveryOutcome:
    """What one delivery attempt did."""

    message_id: str
    locked: bool = False
    completed: bool = False
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def _header_pairs(msg: Any) -> list[tuple[str, str, str]]:
    out = []
    for h in msg.headers:
        if h.type == "*":
            continue
        name, _, rest = h.text.partition(":")
        out.append((name, rest, h.type))
    return out


def message_variables(msg: Any, body: bytes) -> dict[str, Any]:
    """Expansion variables of a spooled message ($message_id, ...)."""
    from eximpy.expand.taint import Tainted
    v: dict[str, Any] = {
        "message_id": msg.id,
        "message_exim_id": msg.id,
        "sender_address": Tainted(msg.sender),
        "return_path": Tainted(msg.sender),
        "received_protocol": msg.received_protocol or "",
        "sender_host_address": msg.host_address or "",
        "sender_host_name": msg.host_name or "",
        "sender_helo_name": Tainted(msg.helo_name or ""),
        "authenticated_id": getattr(msg, "authenticated_id", None) or "",
        "message_size": str(msg.header_size + len(body) + 1),
        "message_body_size": str(len(body)),
        "received_time": str(msg.received_time),
        "originator_uid": str(msg.originator_uid),
        "originator_gid": str(msg.originator_gid),
        "recipients_count": str(len(msg.recipients)),
    }
    return v


def _one_time(addr: Address) -> bool:
    """Whether the redirect router that generated addr has one_time set."""
    p = addr.parent
    r = p.router if p is not None else None
    if r is None:
        return False
    try:
        return bool(r.get("one_time"))
    except KeyError:
        return False


def _top(addr: Address) -> Address:
    while addr.parent is not None:
        addr = addr.parent
    return addr


def _original(addr: Address) -> str | None:
    top = _top(addr)
    if top is addr:
        return getattr(addr, "one_time_parent", None)
    return getattr(top, "one_time_parent", None) or top.address


def _shown(addr: Address) -> str:
    """The address as failure/deferral lines show it: without the prefix
    and suffix a router removed (Exim's string_log_address)."""
    if not addr.pfr and (addr.prefix or addr.suffix):
        return f"{addr.local_part}@{addr.domain}"
    return addr.address


def _shown_original(addr: Address) -> str | None:
    orig = _original(addr)
    if orig is None and _shown(addr) != addr.address:
        return addr.address
    return orig


def _log_address(addr: Address) -> str:
    """The address as a delivery line shows it: local part for a local
    transport, the pipe/file text, or the whole address."""
    if addr.pfr:
        return getattr(addr, "delivered_path", None) or addr.address
    if addr.transport is not None and getattr(addr.transport.info, "local", True):
        if addr.transport.get("rcpt_include_affixes"):
            # (Exim's af_include_affixes)
            return (addr.prefix or "") + addr.local_part + (addr.suffix or "")
        return addr.local_part
    return _shown(addr)


class _Delivery:
    def __init__(self, config: Any, mid: str, forced: bool,
                 queue_run: bool = False, force_thaw: bool | None = None,
                 queue_smtp: bool = False,
                 first_pass_route: bool = False) -> None:
        from eximpy.log.writer import LogWriter
        from eximpy.spool.layout import SpoolLayout
        self.config = config
        self.mid = mid
        self.forced = forced
        self.queue_run = queue_run      # retry times apply (eximpy.deliver.retry)
        # -odqs, control = queue/first_pass_route: local deliveries now,
        # remote ones wait for a queue run
        self.queue_smtp = queue_smtp
        self.first_pass_route = first_pass_route
        # -M and -qff thaw a frozen message; -qf does not
        self.force_thaw = (forced and not queue_run) if force_thaw is None \
            else force_thaw
        self.manual_thaw = False
        self.layout = SpoolLayout.from_config(config)
        self.log = LogWriter.from_config(config)
        self.sel = self.log.selector
        self.outcome = DeliveryOutcome(mid)
        from eximpy.deliver.local import Privilege
        self.priv = Privilege.detect(config)

    def main(self, text: str, msglog: str | None = None) -> None:
        """A mainlog line; the message log gets ``msglog`` (default: the
        same text without a leading "=> ", "** " or "== " flag, as Exim
        writes it there)."""
        self.log.main(text, self.mid)
        if msglog is None:
            msglog = text[3:] if text[:3] in ("** ", "== ") else text
        if msglog:
            self._msglog(msglog)

    def _queue_smtp(self, remote: list[Address],
                    deferred: list[Address]) -> list[Address]:
        """The remote addresses to deliver now.  With queue_smtp (-odqs,
        first_pass_route), and for queue_smtp_domains on a delivery that is
        not a queue run, they stay queued: Exim logs "defer (0): SMTP
        delivery explicitly queued" and keeps no retry data for them."""
        domains = self.config.main.get("queue_smtp_domains")
        if not self.queue_smtp and not self.first_pass_route and (
                not domains or self.queue_run or self.forced):
            return remote
        from eximpy import match as M
        from eximpy.expand import ExpandContext
        from eximpy.log import format as F
        now: list[Address] = []
        # Exim decides per transport batch (addresses for the same
        # transport and hosts go together), by the first one's domain.
        decided: dict[tuple, bool] = {}
        for addr in remote:
            held = self.queue_smtp or self.first_pass_route
            first_pass = not self.queue_smtp
            if not held:
                key = (addr.transport.name if addr.transport else "",
                       tuple(getattr(h, "name", str(h)) for h in
                             (getattr(addr, "host_list", None) or ())))
                if key not in decided:
                    try:
                        rc, _v = M.match_domain(
                            addr.domain, str(domains),
                            ExpandContext(config=self.config))
                    except Exception:
                        rc = "FAIL"
                    decided[key] = rc == "OK"
                held = decided[key]
            if not held:
                now.append(addr)
                continue
            # -odqs, and (first-pass routing) control = queue/
            # first_pass_route or queue_smtp_domains, as Exim words them
            addr.message = ("first-pass only routing due to -odqs, "
                            "queue_smtp_domains or control=queue"
                            if first_pass else
                            "SMTP delivery explicitly queued")
            addr.basic_errno = -1 if first_pass else 0
            deferred.append(addr)
            self.addr_main(addr, F.deferred(
                self.sel, _shown(addr), addr.message,
                errno_value=addr.basic_errno,
                original=_shown_original(addr),
                router=addr.router.name if addr.router is not None else None,
                transport=addr.transport.name if addr.transport is not None
                else None))
        return now

    def addr_main(self, addr: Address, text: str, msglog: str | None = None) -> None:
        """A log line about one address, unless its router or transport has
        disable_logging set."""
        for inst in (addr.router, addr.transport):
            if inst is not None:
                try:
                    if inst.get("disable_logging"):
                        return
                except KeyError:
                    pass
        self.main(text, msglog)

    def _msglog(self, text: str) -> None:
        path = self.layout.find_msglog(self.mid)
        if path is None:
            return
        from eximpy.log.format import timestamp
        try:
            with open(path, "a") as f:
                f.write(f"{timestamp(None)} {text}\n")
        except OSError:
            pass

    # ------------------------------------------------------------------
    def run(self) -> DeliveryOutcome:
        from eximpy.spool import header_file, journal
        from eximpy.spool.data_file import read_body
        from eximpy.spool.lock import open_locked
        fd = open_locked(self.layout, self.mid)
        if fd is None:
            self.outcome.locked = True
            return self.outcome
        try:
            hpath = self.layout.find(self.mid, "-H")
            if hpath is None:
                return self.outcome
            msg = header_file.read(hpath)
            for a in journal.read(self.layout, self.mid):
                msg.non_recipients.add(a)
            body = read_body(fd, self.mid)
            self.msg = msg
            self._deliver(msg, body)
        finally:
            os.close(fd)
        return self.outcome

    def _deliver(self, msg: Any, body: bytes) -> None:
        from eximpy.log import format as F
        from eximpy.spool import header_file, journal
        from eximpy.transports._write import TransportContext
        fail_timeout = False
        if msg.frozen:
            fail_timeout = self._frozen(msg)
            if msg.frozen:
                return
        from eximpy.deliver.retry import DeliveryRetry
        self.retry = DeliveryRetry(self.config, msg, self.forced, self.queue_run)
        rctx = R.RoutingContext(
            self.config, R.V_NONE, sender_address=msg.sender,
            variables=message_variables(msg, body),
            headers=_header_pairs(msg),
            log=lambda m, panic=False, main=True: self.log.main(m, self.mid))
        rctx.logwriter = self.log
        tctx = TransportContext(self.config, msg, body, rctx)
        tctx.log = self.log
        tops: list[Address] = []
        for rc in msg.recipients:
            if rc.address in msg.non_recipients:
                continue
            a = Address(rc.address)
            if rc.errors_to:
                a.prop.errors_address = rc.errors_to
            a.dsn_flags = rc.dsn_flags
            a.dsn_orcpt = rc.orcpt
            if rc.pno >= 0 and rc.pno < len(msg.recipients):
                # a one_time child: logged with its parent as the original
                a.one_time_parent = msg.recipients[rc.pno].address
            tops.append(a)
        rctx.addr_new = list(tops)
        failed: list[Address] = []
        deferred: list[Address] = []
        if fail_timeout:
            # Every recipient fails (bounced, or discarded for a bounce),
            # without routing and without "**" lines (Exim's
            # RECIP_FAIL_TIMEOUT).
            rctx.addr_new = []
            for a in tops:
                a.message = "delivery cancelled; message timed out"
                a.pass_message = False
            if msg.sender:
                failed.extend(tops)
        elif sum(1 for h in msg.headers if h.type == "P") > \
                (self.config.main.get("received_headers_max") or 30):
            # Too many Received: headers: every recipient fails as a
            # routing failure (Exim's RECIP_FAIL_LOOP; no system filter).
            rctx.addr_new = []
            for a in tops:
                a.message = 'Too many "Received" headers - suspected mail loop'
                a.pass_message = False
                failed.append(a)
                self.addr_main(a, F.failed(self.sel, a.address, a.message))
        elif self.config.main.get("system_filter"):
            # The system filter runs before routing (eximpy.deliver.
            # system_filter); it may ignore, defer, freeze or fail the
            # original recipients and generate addresses of its own.
            from eximpy.deliver.system_filter import run_system_filter
            sf = run_system_filter(self, msg, body)
            if sf is None:
                return
            rctx.headers = _header_pairs(msg)
            if sf.process != "accept":
                rctx.addr_new = []
            if sf.process in ("defer", "freeze"):
                deferred.extend(tops)
                if sf.process == "freeze":
                    self.frozen_info = sf.frozen_info
            elif sf.process == "fail":
                for a in tops:
                    a.message = sf.message or "delivery cancelled"
                if msg.sender:
                    failed.extend(tops)
            rctx.addr_new = sf.new + rctx.addr_new
            deferred.extend(sf.deferred)
        discarded: list[Address] = []
        # Exim routes in passes: each pass takes the new addresses (pipes
        # and files straight onto the local chain), then routes the others
        # in reverse order; both chains are built by prepending and the
        # deliveries run from the head.
        while rctx.addr_new:
            addr_route: list[Address] = []
            for addr in rctx.addr_new:
                if addr.pfr:
                    rctx.addr_local.insert(0, addr)
                    continue
                split_address(addr)
                if self.retry.held(addr, rctx):          # hold_domains
                    deferred.append(addr)
                    self.addr_main(addr, F.deferred(
                        self.sel, _shown(addr), addr.message,
                        errno_value=addr.basic_errno,
                        original=_shown_original(addr)))
                    continue
                if addr.parent is not None and addr.address in msg.non_recipients:
                    continue
                # routing retry times are checked in this scan, before any
                # routing (Exim's order)
                if self.retry.routing_skip(addr):
                    deferred.append(addr)
                    self._retry_skip_log(addr)
                    continue
                addr_route.insert(0, addr)
            rctx.addr_new = []
            if self.config.main.get("queue_domains") and not self.forced \
                    and not self.queue_run:
                # Exim's separate queue_domains pass (which reverses the
                # order of the addresses left for routing)
                keep: list[Address] = []
                for addr in addr_route:
                    if self.retry.queue_domain(addr, rctx):
                        deferred.append(addr)
                        self._retry_skip_log(addr)
                    else:
                        keep.insert(0, addr)
                addr_route = keep
            for addr in addr_route:
                old_domain = addr.domain
                rc = R.route_address(addr, rctx)
                if rc == R.DEFER:
                    addr.basic_errno = addr.basic_errno or -1
                self.retry.after_routing(addr, old_domain, rc == R.DEFER)
                if rc == R.FAIL:
                    failed.append(addr)
                    self.addr_main(addr, F.failed(self.sel, _shown(addr), addr.message,
                                       original=_shown_original(addr),
                                       router=addr.router.name if addr.router else None))
                elif rc in (R.DEFER, R.ERROR):
                    deferred.append(addr)
                    # (Exim's address_defaults have basic_errno -1)
                    addr.basic_errno = addr.basic_errno or -1
                    self.addr_main(addr, F.deferred(self.sel, _shown(addr), addr.message,
                                         errno_value=addr.basic_errno,
                                         original=_shown_original(addr),
                                         router=addr.router.name if addr.router else None))
                elif rc == R.DISCARD:
                    discarded.append(addr)
                    self.addr_main(addr, F.delivered(self.sel, ":blackhole:",
                                          original=addr.address,
                                          router=addr.router.name if addr.router else None))
        local = list(rctx.addr_local)
        remote = list(rctx.addr_remote)
        seen: set[tuple[str, str]] = set()
        jnl = journal.Journal.open(self.layout, self.mid)
        done_ok: list[Address] = []
        # batch_max > 1: addresses delivered together by one transport run
        from eximpy.transports.base import plan_batches
        batches = plan_batches(local, tctx, self.log, self.mid)
        batch_res: dict[int, Any] = {}
        try:
            for addr in local:
                tname = addr.transport.name if addr.transport is not None else ""
                key = (addr.unique, tname)
                if not addr.pfr and key in seen:
                    done_ok.append(addr)
                    continue
                seen.add(key)
                if self.retry.transport_skip(addr):
                    deferred.append(addr)
                    self._retry_skip_log(addr)
                    continue
                batch = batches.get(id(addr))
                member = batch is not None and id(batch[0]) in batch_res
                if member:
                    res = batch_res[id(batch[0])]   # delivered with its batch
                else:
                    if batch is not None:
                        addr.batch = batch[batch.index(addr):]
                    # max_parallel (Exim's tpt_parallel_check)
                    from eximpy.transports.base import parallel_end, parallel_start
                    pres, pkey = parallel_start(
                        self.config, addr.transport, addr,
                        lambda t, a=addr: tctx.rctx.expand(t, a), self.log,
                        self.mid) if addr.transport is not None else (None, None)
                    try:
                        res = pres or self._run_transport(addr, tctx)
                    finally:
                        parallel_end(self.config, pkey)
                    if batch is not None:
                        batch_res[id(batch[0])] = res
                from eximpy.transports._write import split_output
                res.returned_output, tlines = split_output(res.returned_output)
                panic = False
                for tline in tlines:      # pipe log_output etc.
                    from eximpy.transports._write import PANIC_MARK, SWITCH_MARK
                    if tline == PANIC_MARK:     # Exim's PANIC: main + panic log
                        panic = True
                        continue
                    if tline.startswith(SWITCH_MARK):   # file_format
                        other = self.config.transport(tline[len(SWITCH_MARK):])
                        if other is not None:
                            addr.transport, tname = other, other.name
                        continue
                    self.log.main(tline, self.mid)
                addr.basic_errno = res.errno or 0
                # (more_errno matters for quota errors only: the pipe's exit
                # code is not kept in Exim's retry records)
                addr.more_errno = (getattr(res, "more_errno", 0) or 0) \
                    if res.errno in (-22, 28, 122) else 0
                if res.status != R.OK:
                    addr.message = res.message
                    if res.user_message:
                        addr.user_message = res.user_message
                    elif addr.transport is not None and \
                            addr.transport.driver == "pipe" and res.more_errno:
                        # (Exim's pipe transport, for a non-zero exit)
                        addr.user_message = "local delivery failed"
                    if not addr.user_message and addr.transport is not None \
                            and getattr(addr.transport.info, "local", False):
                        # A local transport's own text is not af_pass_message:
                        # a bounce shows only a user_message (Exim's
                        # print_address_error).
                        addr.pass_message = False
                self.retry.after_transport(addr, res.status not in (R.OK, R.FAIL))
                rname = addr.router.name if addr.router is not None else None
                if res.status == R.OK:
                    # -J first: a crash after this must not deliver again.
                    jnl.record(addr.unique)
                    done_ok.append(addr)
                    if res.special_action == 3:     # SPECIAL_WARN (quota)
                        from eximpy.transports.appendfile import send_quota_warning
                        send_quota_warning(addr.transport, addr, tctx)
                    shadow = self._shadow(addr, tctx)
                    orig = _original(addr)
                    from eximpy.transports.base import raise_event
                    raise_event(addr.transport, addr, "msg:delivery", tctx,
                                self.log, self.mid)
                    from eximpy.deliver.remote import with_confirmation
                    self.addr_main(addr, with_confirmation(self.sel, res, F.delivered(
                                          self.sel, _log_address(addr),
                                          flag="->" if member else "=>",
                                          original=orig or
                                          (addr.address if not addr.pfr and
                                           _log_address(addr) != addr.address else None),
                                          router=rname, transport=tname,
                                          shadow=shadow)),
                              msglog=f"{addr.address}"
                              + (f" <{orig}>" if orig else "")
                              + f": {tname} transport succeeded")
                elif res.status == R.FAIL:
                    failed.append(addr)
                    addr.message = res.message
                    addr.returned_output = res.returned_output
                    from eximpy.transports.base import raise_event
                    raise_event(addr.transport, addr, "msg:fail:delivery", tctx,
                                self.log, self.mid)
                    self.addr_main(addr, F.failed(self.sel, _shown(addr), res.message,
                                       original=_shown_original(addr), router=rname,
                                       transport=tname))
                else:
                    deferred.append(addr)
                    addr.message = res.message
                    if res.special_action:
                        addr.special_action = res.special_action
                    dtext = F.deferred(self.sel, _shown(addr), res.message,
                                       errno_value=res.errno,
                                       original=_shown_original(addr),
                                       router=rname, transport=tname)
                    self.addr_main(addr, dtext)
                    if panic:
                        self.log.panic(dtext, self.mid, also_main=False)
            remote = self._queue_smtp(remote, deferred)
            if remote:
                # smtp/lmtp over TCP: eximpy.deliver.remote logs and sorts
                from eximpy.deliver.remote import deliver_remote
                deliver_remote(self, remote, tctx, jnl, done_ok, failed,
                               deferred)
        finally:
            jnl.close()
        # The retry database is updated, and deferred addresses past their
        # cutoff (or with no retry rule) time out (eximpy.deliver.retry).
        failed.extend(self.retry.update(
            done_ok, failed, deferred,
            lambda a, text: self.addr_main(a, text, msglog="")))
        # (Exim 4.96 still reports NOTIFY=NEVER recipients in a bounce that
        # is sent for other failures.)
        to_bounce = [a for a in failed if not a.prop.ignore_error]
        freeze_reason = None
        if to_bounce and not msg.sender:
            # A failed bounce (sender <>): Exim freezes it rather than
            # bouncing the bounce, unless ignore_bounce_errors_after has
            # passed, when the failure is just discarded.
            # Retry timeouts of a bounce are dropped at once.
            limit = self.config.main.get("ignore_bounce_errors_after")
            age = time.time() - msg.received_time
            for a in list(to_bounce):
                if (limit is not None and age >= limit) or \
                        getattr(a, "retry_timedout", False):
                    self.main(f"{a.address}"
                              + (f" <{a.parent.address}>" if a.parent else "")
                              + ": error ignored", msglog="")
                    to_bounce.remove(a)
            if to_bounce:
                freeze_reason = "delivery error message"
                for a in to_bounce:
                    failed.remove(a)
                    deferred.append(a)
        if any(getattr(a, "special_action", 0) == 1 for a in deferred) and \
                freeze_reason is None:
            freeze_reason = ""
        if to_bounce and msg.sender:
            # One bounce per errors address (errors_to of a router, else
            # the envelope sender), as Exim sends them.
            from eximpy.deliver.bounce import send_bounce
            groups: dict[str, list[Address]] = {}
            for a in to_bounce:
                groups.setdefault(a.prop.errors_address or msg.sender, []).append(a)
            for to, addrs in groups.items():
                items = self._template("bounce_message_file", rctx, {
                    "bounce_recipient": to,
                    "bounce_return_size_limit": str(
                        self.config.main.get("bounce_return_size_limit") or 102400)})
                try:
                    # Exim's failed chain is built by prepending.
                    send_bounce(self.config, msg, body, list(reversed(addrs)),
                                log=self.log, to=to, items=items)
                except Exception as e:  # noqa: BLE001 - reception failures
                    self.log.main(f"Process failed ({e}) when writing error "
                                  f"message to {to}", self.mid)
        # Success DSNs for recipients that asked (NOTIFY=SUCCESS) and whose
        # deliveries are all done.
        pending = {id(_top(a)) for a in deferred} | {id(_top(a)) for a in failed}
        notify = []
        for t in tops:
            if t.dsn_flags & 0x04 and id(t) not in pending and \
                    any(_top(a) is t for a in done_ok):
                notify.append(t)
        if notify and msg.sender:
            from eximpy.deliver.bounce import send_success_dsn
            try:
                send_success_dsn(self.config, msg, notify, log=self.log)
            except Exception as e:  # noqa: BLE001 - reception failures
                self.log.main(f"Process failed ({e}) when writing a DSN to "
                              f"{msg.sender}", self.mid)
        self.outcome.delivered = [a.address for a in done_ok]
        self.outcome.failed = [a.address for a in failed]
        self.outcome.deferred = [a.address for a in deferred]
        # Which top-level recipients are finished: none of their
        # descendants deferred.
        for a in done_ok:
            msg.non_recipients.add(a.unique)
        # one_time: a deferred address generated by a one_time redirect
        # becomes a recipient of its own (with its parent's number) and the
        # parent is marked done, so redirection is not repeated.
        from eximpy.spool.message import Recipient
        for a in list(deferred):
            top = _top(a)
            if a.parent is None or a.pfr or not _one_time(a):
                continue
            try:
                pno = next(k for k, rc in enumerate(msg.recipients)
                           if rc.address == top.address)
            except StopIteration:
                continue
            if not any(rc.address == a.address for rc in msg.recipients):
                msg.recipients.append(Recipient(a.address, pno=pno))
            msg.non_recipients.add(top.address)
            a.one_time_split = True
        pending_tops = {id(_top(a)) for a in deferred
                        if not getattr(a, "one_time_split", False)}
        pending_tops |= {id(a) for a in deferred
                         if getattr(a, "one_time_split", False)}
        for t in tops:
            if t.child_count and id(t) not in pending_tops:
                self._msglog(f"{t.address}: children all complete")
        for a in failed:
            # A failed address is finished (its bounce has been sent).
            msg.non_recipients.add(a.unique)
        for t in tops:
            if id(t) not in pending_tops:
                msg.non_recipients.add(t.address)
        from eximpy.deliver.retry import ERRNO_WARN_BASE
        if pending_tops and deferred and msg.sender and not msg.frozen and \
                any(a.basic_errno > ERRNO_WARN_BASE for a in deferred):
            # (no warning when every deferral was a retry-time skip)
            # Exim's deferred chain is built by prepending.
            self._maybe_warn(msg, rctx, list(reversed(deferred)))
        if getattr(self, "frozen_info", None) is not None:
            freeze_reason = freeze_reason or ""
        if freeze_reason is not None and pending_tops:
            from eximpy.log.format import frozen_text
            msg.frozen = True
            msg.frozen_at = int(time.time())
            info = getattr(self, "frozen_info", None)
            text = "Frozen" + info if info is not None \
                else frozen_text(freeze_reason or None)
            if self.config.main.get("freeze_tell"):
                from eximpy.deliver.bounce import send_freeze_tell
                try:
                    send_freeze_tell(self.config, msg, text[6:],
                                     list(reversed(deferred)), log=self.log)
                except Exception as e:  # noqa: BLE001 - reception failures
                    self.log.main(f"freeze_tell failed: {e}", self.mid)
            self.main(text, msglog="*** " + text)
        if not pending_tops:
            header_file.remove_files(self.layout, self.mid)
            self.main(F.completed(self.sel, time.time() - msg.received_time))
            self.outcome.completed = True
        else:
            split = self.layout.find_split(self.mid)
            msg.deliver_firsttime = False
            header_file.write(self.layout, msg, split)
            journal.remove(self.layout, self.mid)

    def _maybe_warn(self, msg: Any, rctx: Any, deferred: list[Address]) -> None:
        """Send a delay warning when delay_warning says one is due and
        delay_warning_condition allows it; count it in -H."""
        from eximpy.deliver.bounce import (send_warning, warning_recipients,
                                           warning_schedule)
        age = time.time() - msg.received_time
        count, show = warning_schedule(self.config, age)
        if msg.warning_count >= count:
            return
        # $domain is set when all the deferred addresses share a domain
        # (a pipe's or file's is its parent's), as Exim sets deliver_domain
        doms = {(a.parent.domain if a.pfr and a.parent is not None
                 else a.domain) for a in deferred}
        dom = doms.pop() if len(doms) == 1 else None
        extra = {"domain": dom} if dom else {}
        cond = self.config.main.get("delay_warning_condition")
        if cond:
            from eximpy.expand import expand_check_condition
            if not expand_check_condition(cond, rctx.expand_context(None, **extra)):
                return
        from eximpy.deliver.bounce import warn_delay_text
        to = warning_recipients(msg, deferred)
        items = self._template("warn_message_file", rctx, {
            "warn_message_delay": warn_delay_text(age, show),
            "warn_message_recipients": to, **extra})
        try:
            send_warning(self.config, msg, deferred, age, log=self.log,
                         items=items, to=to, show_time=show)
        except Exception as e:  # noqa: BLE001 - reception failures
            self.log.main(f"Process failed ({e}) when writing a delay "
                          f"warning to {to}", self.mid)
            return
        msg.warning_count = count       # (Exim: the count due, not +1)

    def _template(self, option: str, rctx: Any, extra: dict[str, str]) -> list[str] | None:
        """The expanded items of bounce_message_file / warn_message_file,
        or None for Exim's built-in text."""
        path = self.config.main.get(option)
        if not path:
            return None
        from eximpy.deliver.bounce import read_template
        items = read_template(path)
        if items is None:
            self.log.main(f"Failed to open {path} for {option}: using default",
                          self.mid)
            return None
        out = []
        for item in items:
            try:
                out.append(rctx.expand(item, None, **extra) if item else item)
            except Exception:  # noqa: BLE001 - expansion errors: default text
                out.append("")
        return out

    def _frozen(self, msg: Any) -> bool:
        """Exim's handling of a frozen message at the start of delivery:
        timeout_frozen_after (returns True: fail every recipient), the
        ignore_bounce_errors_after timer for bounces, auto_thaw, and a
        forced thaw (-M, -qff); otherwise the message stays frozen and
        nothing is done ("Message is frozen" with +skip_delivery)."""
        main = self.config.main
        now = time.time()
        age = now - msg.received_time
        tfa = main.get("timeout_frozen_after") or 0
        ibea = main.get("ignore_bounce_errors_after")
        if ibea is None:
            ibea = 6048000
        timed_out = False
        if tfa > 0 and age >= tfa:
            self.main("cancelled by timeout_frozen_after", msglog="")
            timed_out = True
        elif not msg.sender and age >= ibea:
            self.main("Unfrozen by errmsg timer", msglog="")
        else:
            auto_thaw = main.get("auto_thaw") or 0
            if (not msg.sender or auto_thaw <= 0
                    or now <= msg.frozen_at + auto_thaw) and \
                    not self.force_thaw:
                if "skip_delivery" in self.sel:
                    self.log.main("Message is frozen", self.mid)
                return False
            if self.forced:
                self.manual_thaw = True
                self.main("Unfrozen by forced delivery", msglog="")
            else:
                self.main("Unfrozen by auto-thaw", msglog="")
        msg.frozen = False
        msg.frozen_at = 0
        return timed_out

    def _retry_skip_log(self, addr: Address) -> None:
        """The "retry time not reached" deferral line: in the main log only
        with log_selector +retry_defer, in the message log only on a first
        delivery attempt (Exim's post_process_one)."""
        from eximpy.log import format as F
        if addr.router is None:
            text = F.deferred(self.sel, _shown(addr), None,
                              original=_shown_original(addr))
            text += f" routing defer ({addr.basic_errno}): {addr.message}"
        else:
            text = F.deferred(self.sel, _shown(addr), addr.message,
                              errno_value=addr.basic_errno,
                              original=_shown_original(addr),
                              router=addr.router.name,
                              transport=addr.transport.name
                              if addr.transport is not None else None)
        from eximpy.deliver.retry import ERRNO_RETRY_BASE
        if addr.basic_errno > ERRNO_RETRY_BASE:      # not a retry-type defer
            self.addr_main(addr, text)
        elif "retry_defer" in self.sel:
            self.addr_main(addr, text, msglog=text[3:]
                           if self.msg.deliver_firsttime else "")
        elif self.msg.deliver_firsttime:
            self._msglog(text[3:])

    def _has_retry_rule(self, addr: Address) -> bool:
        """Whether some retry rule's pattern matches the address."""
        rules = getattr(self.config, "retry_rules", None) or []
        if not rules:
            return False
        from eximpy import match as M
        from eximpy.expand import ExpandContext
        ctx = ExpandContext(config=self.config)
        target = addr.address if not addr.pfr else (
            _top(addr).address)
        for rule in rules:
            pat = rule.pattern
            if pat == "*":
                return True
            subject = target if "@" in pat or pat.startswith("^") else \
                target.rpartition("@")[2]
            if "@" in pat or pat.startswith("^"):
                rc, _v = M.match_address_list(ctx, subject, pat)
            else:
                rc, _v = M.match_isinlist(ctx, subject, pat, M.MCL_DOMAIN)
            if rc == M.OK:
                return True
        return False

    def _shadow(self, addr: Address, tctx: Any) -> str | None:
        """Run the transport's shadow_transport after a success; its name
        for the ST= field, or None."""
        name = addr.transport.get("shadow_transport")
        if not name:
            return None
        cond = addr.transport.get("shadow_condition")
        if cond:
            from eximpy.expand import expand_check_condition
            if not expand_check_condition(cond, tctx.rctx.expand_context(addr)):
                return None
        sh = self.config.transport(name)
        if sh is None:
            return None
        main_tp = addr.transport
        addr.transport = sh
        try:
            res = self._run_transport(addr, tctx)
        finally:
            addr.transport = main_tp
        return name if res.status == R.OK else None

    def _run_transport(self, addr: Address, tctx: Any) -> Any:
        from eximpy.transports._write import TransportResult
        tp = addr.transport
        if tp is None:
            if addr.pfr:
                return TransportResult(R.DEFER, addr.message or
                                       "no transport for pipe, file or autoreply")
            return TransportResult(R.DEFER, "No transport set by router")
        if addr.pfr:
            if addr.address.startswith("|") and not addr.allow_pipe:
                return TransportResult(R.FAIL, "delivery to pipe forbidden")
            if addr.address.startswith("/") and not addr.allow_file:
                return TransportResult(R.FAIL, "delivery to file forbidden")
        factory = getattr(tp.info, "factory", None)
        driver = factory(tp) if factory is not None else None
        if driver is None or not hasattr(driver, "deliver"):
            return TransportResult(R.DEFER, f"{tp.name} transport is not implemented")
        rctx = tctx.rctx
        # Transport home_directory / current_directory override the router's.
        for opt, attr in (("home_directory", "home_dir"),
                          ("current_directory", "current_dir")):
            text = tp.get(opt)
            if text:
                try:
                    setattr(addr, attr, rctx.expand(text, addr))
                except Exception as e:  # noqa: BLE001 - expansion errors
                    return TransportResult(R.DEFER, f"failed to expand "
                                           f"{opt} for {tp.name} transport: {e}")
        # The delivery process works in the current (or home) directory;
        # Exim defers when it cannot change to it (checked here for a run
        # in this process, by the child -- as the user -- otherwise).
        wd = addr.current_dir or addr.home_dir
        limit = tp.get("message_size_limit")
        if limit:
            try:
                from eximpy.expand import expand_string_integer
                n = expand_string_integer(limit, rctx.expand_context(addr))
            except Exception as e:  # noqa: BLE001 - expansion errors
                return TransportResult(R.DEFER, f"failed to expand "
                                       f"message_size_limit for {tp.name} "
                                       f"transport: {e}")
            size = tctx.msg.header_size + len(tctx.body) + 1
            if n and size > n:
                return TransportResult(R.FAIL, f"message is too big "
                                       f"(transport limit = {n})")
        rp = tp.get("return_path")
        if rp:
            try:
                addr.return_path = rctx.expand(rp, addr)
            except Exception as e:  # noqa: BLE001 - expansion errors
                return TransportResult(R.DEFER, f"Failed to expand return "
                                       f"path \"{rp}\" in {tp.name} "
                                       f"transport: {e}")
        ids = None
        if getattr(tp.info, "local", True):
            from eximpy.deliver.local import UgidError
            from eximpy.transports.base import transport_ugid
            try:
                ids = transport_ugid(self.config, addr, tp,
                                     lambda text: rctx.expand(text, addr),
                                     tctx.msg)   # (pipe_as_creator)
            except UgidError as e:
                if e.panic:
                    self.log.panic(e.message, self.mid)
                return TransportResult(R.DEFER, e.message, e.errno)
        saved = dict(rctx.variables)
        rctx.variables["transport_name"] = tp.name
        if addr.pfr and addr.address.startswith("|"):
            rctx.variables["address_pipe"] = addr.address
        elif addr.pfr:
            rctx.variables["address_file"] = addr.address
        if addr.home_dir:
            rctx.home = addr.home_dir
        try:
            target = addr
            if addr.pfr and addr.parent is not None:
                # $local_part etc. of a pipe/file delivery are the parent's.
                target = addr
                target.local_part = addr.parent.local_part
                target.domain = addr.parent.domain
            if ids is not None and self.priv.needs_child(ids):
                from eximpy.deliver.local import run_local
                return run_local(self.priv, ids, target, tp,
                                 lambda: driver.deliver(target, tctx),
                                 self.log, self.mid, wd or "/", tctx)
            if wd and not os.path.isdir(wd):
                import errno as E
                return TransportResult(R.DEFER, f"{os.strerror(E.ENOENT)}: "
                                       f"failed to chdir to {wd}", E.ENOENT)
            return driver.deliver(target, tctx)
        except NotImplementedError as e:
            return TransportResult(R.DEFER, str(e))
        except OSError as e:
            # A broken world (I/O error...) defers this address only.
            return TransportResult(R.DEFER, f"{tp.name} transport: "
                                   f"{os.strerror(e.errno or 0)}", e.errno or 0)
        finally:
            rctx.variables = saved
            rctx.home = None


_WARM_MODULES = (
    "base64", "binascii", "calendar", "codecs", "copy", "csv", "ctypes",
    "datetime", "email.charset", "email.header", "email.message",
    "email.parser", "email.utils", "encodings.ascii", "encodings.idna",
    "encodings.latin_1", "encodings.punycode", "encodings.utf_8", "errno",
    "fcntl", "grp", "hashlib", "hmac", "ipaddress", "json", "lmdb", "locale",
    "pickle", "pwd", "quopri", "random", "secrets", "select", "shlex",
    "signal", "socket", "sqlite3", "stat", "string", "struct", "subprocess",
    "syslog", "textwrap", "unicodedata", "uuid", "zlib", "dns.resolver",
    "eximpy.expand", "eximpy.expand.conditions", "eximpy.expand.evaluate",
    "eximpy.expand.items", "eximpy.expand.operators", "eximpy.expand.parser",
    "eximpy.expand.regex", "eximpy.expand.rfc822", "eximpy.expand.variables",
    "eximpy.lookups", "eximpy.lookups.cache", "eximpy.match",
    "eximpy.receive", "eximpy.rewrite", "eximpy.privilege",
    "eximpy.transports._command", "eximpy.transports._write",
    "eximpy.deliver.bounce", "eximpy.spool.msglog", "eximpy.deliver.local",
    "eximpy.transports.autoreply", "resource",
)


def _warm_imports() -> None:
    """Import, before forking, what a delivery child may import lazily: after
    it has become the mailbox owner it may no longer be able to read the
    interpreter's library directories (DESIGN: children are forked from an
    already warm parent)."""
    import importlib
    import sys
    if "eximpy.deliver._warmed" in sys.modules:
        return
    for name in _WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional modules
            pass
    sys.modules["eximpy.deliver._warmed"] = sys.modules[__name__]


def deliver_message(config: Any, message_id: str, forced: bool = False,
                    queue_run: bool = False,
                    force_thaw: bool | None = None,
                    queue_smtp: bool = False,
                    first_pass_route: bool = False) -> DeliveryOutcome:
    """Deliver (or try to deliver) one spooled message; see module docstring.
    ``queue_smtp`` (-odqs) and ``first_pass_route`` (control =
    queue/first_pass_route): do the local deliveries only."""
    return _Delivery(config, message_id, forced, queue_run, force_thaw,
                     queue_smtp, first_pass_route).run()


def deliver_many(config: Any, ids: list[str], parallel: int = 1,
                 forced: bool = False) -> int:
    """Deliver many messages from this (already warm) process: with
    ``parallel`` > 1, forked children (no exec) take every n-th id.
    Returns the number of messages whose delivery completed."""
    if parallel <= 1 or len(ids) < 2:
        return sum(deliver_message(config, m, forced).completed for m in ids)
    import gc
    gc.freeze()
    pids = []
    for k in range(parallel):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for m in ids[k::parallel]:
                    deliver_message(config, m, forced)
            except BaseException:  # noqa: BLE001 - a child must not return
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    from eximpy.spool.layout import SpoolLayout
    layout = SpoolLayout.from_config(config)
    return sum(1 for m in ids if layout.find(m, "-H") is None)
