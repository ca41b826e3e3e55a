"""The retry hints database and retry rules, as Exim keeps and applies them.

SUMMARY
    rr = DeliveryRetry(config, msg, forced=..., queue_run=...)
    rr.held(addr, rctx) -> bool         hold_domains: "domain is held"
    rr.routing_skip(addr) -> bool       before routing: "retry time not reached"
    rr.queue_domain(addr, rctx) -> bool queue_domains (not in queue runs)
    rr.after_routing(addr, old_domain, deferred)
                                        add a routing retry item (R: key)
    rr.transport_skip(addr) -> bool     before a local transport:
                                        "Retry time not yet reached"
    rr.after_transport(addr, deferred)  add/delete a T: retry item
    rr.update(succeeded, failed, deferred) -> timed-out addresses
                                        (Exim's retry_update(): writes the
                                        database, times out addresses)
    find_config(config, key, alternate, basic_errno, more_errno, sender)
    retry_test(config, args, out) -> status      -brt
    rr.check_host(...) -> HostStatus    host status for the smtp transport
    read_all(spool) / tidy(spool, ...)  for exinext and exim_tidydb

DESCRIPTION
    Keys (spec "Retry configuration", Exim deliver.c/retry.c):
      R:<domain> and R:<local_part>@<domain>   routing deferrals (the router's
                          retry_use_local_part chooses which); a sender form
                          R:<lp>@<domain>:<sender> is read and deleted too;
      T:<local_part>@<domain> or T:<domain>    local transport deferrals (the
                          transport's retry_use_local_part, true for local
                          transports);
      T:<pipe/file/reply>:<parent unique>      pipe, file and autoreply
                          deliveries;
      T:<host>:<ip>[:<port>][:<msgid>]         remote hosts (check_host()).
    Each record holds time_stamp, first_failed, last_try, next_try, the
    expired flag, basic_errno, more_errno and a text (strerror() of a
    positive errno, else the error message; at most 150 characters).

    Records older than retry_data_expire are ignored.  In a queue run that
    is not forced (-q, not -qf/-M), an address whose record says the next
    try time has not come is deferred without trying: "retry time not
    reached" (routing, errno -52) or "Retry time not yet reached" (local
    transport, errno -53); those lines appear in the main log only with
    log_selector retry_defer (on by default), in the message log only on a
    first delivery attempt.  The ultimate address timeout lets a delivery
    go ahead anyway when the message is older than the last rule's cutoff
    (for address records; a domain record waits for its retry time).
    Outside queue runs (-M, -Mc, immediate delivery) retry times are not
    consulted for routing or local deliveries, as in Exim.

    The caller says what kind of delivery this is: ``forced`` (-M, -qf)
    and ``queue_run`` (-q, -qf, the daemon's queue runner).

    After the deliveries update() computes each destination's next try from
    the first matching rule (F fixed, G geometric, H randomised geometric,
    capped by retry_interval_max), using the message age when it is longer
    than the failing interval for non-host errors; deletes records after a
    success; and moves a deferred address whose retry items all timed out
    (or found no rule at all: "no rule" means timed out, and nothing is
    written) to the failed list with "** addr <parent>: retry timeout
    exceeded".

    The database is an LMDB environment <spool>/db/retry (eximpy.hintsdb),
    not Exim's Berkeley DB file; one that cannot be opened counts as empty.
    exinext (spool_tools/exinext.py) prints it as Exim's exinext and
    exim_dumpdb do, and tidies it as exim_tidydb does.  retry_test() is the
    answer of -brt.

SEE ALSO
    spec chapter 32 "Retry configuration", 3.8 hints databases; Exim
    retry.c, deliver.c (do_local_deliveries, the routing loop).
"""
from __future__ import annotations

import errno as E
import os
import random
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

# Exim 4.96 private error numbers (macros.h) that matter for retries.
ERRNO_SMTPCLOSED = -18
ERRNO_EXIMQUOTA = -22
ERRNO_HELD = -23
ERRNO_UNKNOWNHOST = -32
ERRNO_LISTDEFER = -35
ERRNO_TLSFAILURE = -37
ERRNO_TLSREQUIRED = -38
ERRNO_AUTHFAIL = -42
ERRNO_RCPT4XX = -44
ERRNO_MAIL4XX = -45
ERRNO_DATA4XX = -46
ERRNO_RETRY_BASE = -52
ERRNO_RRETRY = -52          # not time for routing
ERRNO_WARN_BASE = -53
ERRNO_LRETRY = -53          # not time for local delivery
ERRNO_HRETRY = -54          # not time for any remote host
ERRNO_QUEUE_DOMAIN = -56    # domain in queue_domains
RTEF_CTOUT = 0x100          # connect timeout flag in more_errno

RF_DELETE = 1               # retry item flags
RF_HOST = 2
RF_MESSAGE = 4

DB_NAME = "retry"
_HEAD = struct.Struct("<qqqqBii")


@dataclass
class RetryRecord:
    """One record of the retry database (Exim's dbdata_retry)."""

    time_stamp: int
    first_failed: int
    last_try: int
    next_try: int
    expired: bool = False
    basic_errno: int = 0
    more_errno: int = 0
    text: str = ""

    def pack(self) -> bytes:
        return _HEAD.pack(self.time_stamp, self.first_failed, self.last_try,
                          self.next_try, 1 if self.expired else 0,
                          self.basic_errno, self.more_errno) + \
            self.text.encode("utf-8", "surrogateescape")

    @classmethod
    def unpack(cls, data: bytes) -> "RetryRecord | None":
        if len(data) < _HEAD.size:
            return None
        ts, ff, lt, nt, ex, be, me = _HEAD.unpack_from(data)
        return cls(ts, ff, lt, nt, bool(ex), be, me,
                   data[_HEAD.size:].decode("utf-8", "surrogateescape"))


@dataclass
class RetryItem:
    """A pending update of one key (Exim's retry_item)."""

    key: str
    basic_errno: int = 0
    more_errno: int = 0
    message: str | None = None
    flags: int = 0


@dataclass
class HostStatus:
    """What check_host() found for one host (Exim's host->status etc.)."""

    status: str
    host_key: str | None
    message_key: str | None
    last_try: int | None


def add_item(addr: Any, key: str, flags: int = 0) -> None:
    """Exim's retry_add_item(): remember an update for the end of delivery."""
    items = getattr(addr, "retries", None)
    if items is None:
        items = []
        addr.retries = items
    host = getattr(addr, "host_used", None)
    msg = addr.message
    if host is not None and msg is not None:
        msg = f"H={host.name} [{host.address}]: {msg}"
    items.insert(0, RetryItem(key, addr.basic_errno or 0,
                              addr.more_errno or 0, msg, flags))


# ----------------------------------------------------------------------
# The database

def _spool(config: Any) -> str:
    return config.main.get("spool_directory") or "/var/spool/exim4"


def open_db(spool_directory: str, config: Any = None) -> Any:
    """The retry database; created by root (-M as root), it is given to the
    exim user, as Exim's hints files are, so that the delivery role can
    write it later."""
    from eximpy import hintsdb
    path = hintsdb.db_path(spool_directory, DB_NAME)
    fresh = not os.path.isdir(path)
    db = hintsdb.open(spool_directory, DB_NAME)
    if fresh and config is not None and os.geteuid() == 0:
        try:
            from eximpy.deliver.local import _exim_ids
            uid, gid = _exim_ids(config)
            for p in (os.path.dirname(path), path,
                      os.path.join(path, "data.mdb"),
                      os.path.join(path, "lock.mdb")):
                if os.path.exists(p):
                    os.chown(p, uid, gid)
        except (OSError, ValueError, TypeError):
            pass
    return db


def _exists(spool_directory: str) -> bool:
    from eximpy import hintsdb
    return os.path.isdir(hintsdb.db_path(spool_directory, DB_NAME))


def read_all(spool_directory: str) -> list[tuple[str, RetryRecord]]:
    """Every record, in key order (for exinext / dumps)."""
    if not _exists(spool_directory):
        return []
    out = []
    for k, v in open_db(spool_directory).items():
        rec = RetryRecord.unpack(v)
        if rec is not None:
            out.append((k.decode("utf-8", "surrogateescape"), rec))
    return out


def tidy(spool_directory: str, max_age: int = 30 * 86400,
         now: float | None = None) -> list[tuple[str, str]]:
    """exim_tidydb for the retry database: remove records not updated for
    ``max_age`` seconds (default 30d: "too old"), and message-specific host
    records (T:host:ip:msgid) whose message is no longer on the spool ("no
    message").  Returns (key, reason) for each removed record."""
    if not _exists(spool_directory):
        return []
    now = time.time() if now is None else now
    db = open_db(spool_directory)
    removed = []
    import re
    msgid = re.compile(r":([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})$")
    with db.write() as txn:
        for k, v in list(txn.cursor()):
            key = bytes(k).decode("utf-8", "surrogateescape")
            rec = RetryRecord.unpack(bytes(v))
            reason = "too old" if rec is None or \
                now - rec.time_stamp > max_age else None
            m = msgid.search(key) if key.startswith("T:") else None
            if reason is None and m:
                mid = m.group(1)
                inp = os.path.join(spool_directory, "input")
                if not (os.path.exists(os.path.join(inp, mid + "-D")) or
                        os.path.exists(os.path.join(inp, mid[5], mid + "-D"))):
                    reason = "no message"
            if reason is not None:
                txn.delete(bytes(k))
                removed.append((key, reason))
    return removed


# ----------------------------------------------------------------------
# Rules

_ERROR_CODES = {
    "quota": ERRNO_EXIMQUOTA, "refused": E.ECONNREFUSED,
    "timeout": E.ETIMEDOUT, "auth_failed": ERRNO_AUTHFAIL,
    "rcpt_4xx": ERRNO_RCPT4XX, "mail_4xx": ERRNO_MAIL4XX,
    "data_4xx": ERRNO_DATA4XX, "lost_connection": ERRNO_SMTPCLOSED,
    "tls_required": ERRNO_TLSREQUIRED, "lookup": ERRNO_UNKNOWNHOST,
}


def rule_errno(rule: Any) -> tuple[int, int]:
    """(basic_errno, more_errno) of a parsed rule, as Exim's
    readconf_retry_error() encodes them."""
    basic = _ERROR_CODES.get(rule.basic_error, 0)
    more = rule.more_errno
    if basic == ERRNO_EXIMQUOTA:
        return basic, int(more or 0)
    if basic == E.ECONNREFUSED:
        return basic, ord(str(more)[0].upper()) if more else 0
    if basic == E.ETIMEDOUT:
        m = 0
        text = (more or "").lower()
        if text.startswith("connect"):
            m |= RTEF_CTOUT
            text = text[7:].lstrip("_")
        if text in ("a", "mx"):
            m |= ord(text[0].upper())
        return basic, m
    if basic in (ERRNO_RCPT4XX, ERRNO_MAIL4XX, ERRNO_DATA4XX):
        d = str(more or "xx")
        if d == "xx":
            wanted = 255
        elif d[1] == "x":
            wanted = 100 + int(d[0]) * 10
        else:
            wanted = int(d)
        return basic, wanted << 8
    return basic, 0


def _error_matches(rule: Any, basic_errno: int, more_errno: int) -> bool:
    r_basic, r_more = rule_errno(rule)
    if r_basic == 0:
        return True
    if r_basic == ERRNO_EXIMQUOTA:
        if basic_errno not in (ERRNO_EXIMQUOTA, E.EDQUOT, E.ENOSPC):
            return False
        return not (r_more and r_more > more_errno)
    if r_basic == ERRNO_TLSREQUIRED:
        return basic_errno in (ERRNO_TLSREQUIRED, ERRNO_TLSFAILURE)
    if r_basic in (ERRNO_RCPT4XX, ERRNO_MAIL4XX, ERRNO_DATA4XX):
        if basic_errno != r_basic:
            return False
        wanted = (r_more >> 8) & 255
        if wanted == 255:
            return True
        got = (more_errno >> 8) & 255
        if wanted >= 100:
            return (got // 10) * 10 == wanted - 100
        return got == wanted
    if r_basic == E.ETIMEDOUT:
        if basic_errno != E.ETIMEDOUT:
            return False
        if r_more == RTEF_CTOUT:
            return bool(more_errno & RTEF_CTOUT)
        if r_more:
            cf = more_errno if r_more & RTEF_CTOUT else more_errno & ~RTEF_CTOUT
            return cf == r_more
        return True
    return r_basic == basic_errno and (not r_more or r_more == more_errno)


def find_config(config: Any, key: str, alternate: str | None,
                basic_errno: int, more_errno: int,
                sender: str | None) -> Any:
    """Exim's retry_find_config(): the first rule for ``key`` (without its
    R:/T: prefix), or None."""
    rules = getattr(config, "retry_rules", None) or []
    if not rules:
        return None
    colon = key.find(":")
    if colon >= 0:
        key = key[:colon] if key[:1].isalnum() else key[key.rfind(":") + 1:]
    if "@" not in key:
        key = "*@" + key
    alt = f"*@{alternate}" if alternate else None
    from eximpy import match as M
    from eximpy.expand import ExpandContext
    ctx = ExpandContext(config=config)
    for rule in rules:
        if not _error_matches(rule, basic_errno, more_errno):
            continue
        if rule.senders is not None:
            if sender is None:
                continue
            rc, _v = M.match_address_list(ctx, sender, rule.senders,
                                          expand=True)
            if rc != M.OK:
                continue
        rc, _v = M.match_address_list(ctx, key, rule.pattern, expand=True)
        if rc == M.OK:
            return rule
        if alt is not None:
            rc, _v = M.match_address_list(ctx, alt, rule.pattern, expand=True)
            if rc == M.OK:
                return rule
    return None


def ultimate_address_timeout(config: Any, key: str, domain: str | None,
                             rec: RetryRecord, received_time: float,
                             sender: str | None, now: float) -> bool:
    """Exim's retry_ultimate_address_timeout(): whether the message has
    been queued longer than the last cutoff of the matching rule (or there
    is no rule)."""
    rule = find_config(config, key[2:], domain, rec.basic_errno,
                       rec.more_errno, sender)
    if rule is None or not rule.items:
        return True
    return now - received_time > rule.items[-1].timeout


def retry_test(config: Any, args: list[str], out: Any) -> int:
    """-brt <address or domain> [<domain>] [<error>]: the retry rule that
    applies, printed as Exim prints it (no sender is known, so rules with
    senders= never match)."""
    from eximpy.config.options import printtime
    from eximpy.config.rules import retry_error_name
    if not args:
        out.write("-brt needs a domain or address argument\n")
        return 1
    s1, i = args[0], 1
    if "@" not in s1 and "." not in s1:
        out.write(f'Warning: "{s1}" contains no \'@\' and no \'.\' characters. '
                  "It is being \ntreated as a one-component domain, not as "
                  "a local part.\n\n")
    s2 = None
    if i < len(args) and "." in args[i]:
        s2, i = args[i], i + 1
    basic = more = 0
    if i < len(args):
        try:
            name, extra = retry_error_name(args[i])
        except ValueError as e:
            out.write(f"{e}\n")
            return 1

        class _E:
            basic_error = name
            more_errno = extra
        basic, more = rule_errno(_E)
    rule = find_config(config, s1, s2, basic, more, None)
    if rule is None:
        out.write("No retry information found\n")
        return 0
    r_basic, r_more = rule_errno(rule)
    if r_basic == ERRNO_EXIMQUOTA:
        err = "quota" + (f"_{printtime(r_more)}" if r_more > 0 else "")
    elif r_basic == E.ECONNREFUSED:
        err = "refused" + ({ord("M"): "_MX", ord("A"): "_A"}.get(r_more, ""))
    elif r_basic == E.ETIMEDOUT:
        err = "timeout" + ("_connect" if r_more & RTEF_CTOUT else "") + \
            ({ord("M"): "_MX", ord("A"): "_A"}.get(r_more & 255, ""))
    elif r_basic == ERRNO_AUTHFAIL:
        err = "auth_failed"
    else:
        err = "*"
    text = f"Retry rule: {rule.pattern}  {err}  "
    for it in rule.items:
        text += f"{it.letter},{printtime(it.timeout)},{printtime(it.p1)}"
        if it.letter == "G":
            f, d = it.p2 % 1000, 100
            text += f",{it.p2 // 1000}."
            while True:
                text += str(f // d)
                f %= d
                d //= 10
                if f == 0:
                    break
        text += "; "
    out.write(text + "\n")
    return 0


# ----------------------------------------------------------------------
# Per-delivery state

class DeliveryRetry:
    """Retry handling for one delivery attempt of one message."""

    def __init__(self, config: Any, msg: Any, forced: bool = False,
                 queue_run: bool = False, now: float | None = None) -> None:
        self.config = config
        self.msg = msg
        self.forced = forced
        self.queue_run = queue_run
        self.now = int(time.time() if now is None else now)
        self.spool = _spool(config)
        self.expire = config.main.get("retry_data_expire")
        if self.expire is None:
            self.expire = 604800
        self._db: Any = None

    # -- reading --------------------------------------------------------
    def _read(self, key: str) -> RetryRecord | None:
        """A record, or None; a database that cannot be opened or read is
        treated as absent (Exim: "no retry data available")."""
        if self._db is False:
            return None
        try:
            if self._db is None:
                if not _exists(self.spool):
                    return None
                self._db = open_db(self.spool)
            data = self._db.read(key.encode("utf-8", "surrogateescape"))
        except Exception:  # noqa: BLE001 - lmdb.Error, OSError
            self._db = False
            return None
        return RetryRecord.unpack(data) if data is not None else None

    def _fresh(self, key: str) -> RetryRecord | None:
        rec = self._read(key)
        if rec is not None and self.now - rec.time_stamp > self.expire:
            return None
        return rec

    @property
    def _sender(self) -> str:
        return self.msg.sender or ""

    # -- routing ----------------------------------------------------------
    def routing_skip(self, addr: Any) -> bool:
        """Set the R: keys; True (with the address's message and errno set)
        when routing is to be deferred because its retry time has not come."""
        addr.domain_retry_key = f"R:{addr.domain}"
        addr.address_retry_key = f"R:{addr.local_part}@{addr.domain}"
        drec = self._fresh(addr.domain_retry_key)
        arec = self._fresh(addr.address_retry_key)
        if arec is None:
            arec = self._fresh(f"{addr.address_retry_key}:<{self._sender}>")
        if self.queue_run and not self.forced and (
                (drec is not None and self.now < drec.next_try
                 and not drec.expired)
                or (arec is not None and self.now < arec.next_try)) and (
                drec is not None or arec is None or
                not ultimate_address_timeout(
                    self.config, addr.address_retry_key, addr.domain, arec,
                    self.msg.received_time, self._sender, self.now)):
            addr.message = "retry time not reached"
            addr.basic_errno = ERRNO_RRETRY
            return True
        addr.dr_retry_exists = drec is not None or arec is not None
        return False

    def after_routing(self, addr: Any, old_domain: str, deferred: bool) -> None:
        """Exim's routing-loop retry items: an R: update after a routing
        defer, deletes of the old records after any other result."""
        if deferred:
            r = addr.router
            ulp = False
            if r is not None:
                try:
                    ulp = bool(r.get("retry_use_local_part"))
                except KeyError:
                    ulp = False
            add_item(addr, f"R:{addr.local_part}@{addr.domain}" if ulp
                     else f"R:{addr.domain}")
        elif getattr(addr, "dr_retry_exists", False):
            akey = getattr(addr, "address_retry_key",
                           f"R:{addr.local_part}@{addr.domain}")
            add_item(addr, f"{akey}:<{self._sender}>", RF_DELETE)
            add_item(addr, akey, RF_DELETE)
            add_item(addr, getattr(addr, "domain_retry_key",
                                   f"R:{addr.domain}"), RF_DELETE)
            if addr.domain != old_domain:
                add_item(addr, f"R:{old_domain}", RF_DELETE)

    # -- hold_domains / queue_domains ---------------------------------------
    def _domain_in(self, option: str, addr: Any, rctx: Any) -> str | None:
        """"OK", "DEFER" or None (no match) for ``addr``'s domain in the
        domain list ``option``."""
        text = self.config.main.get(option)
        if not text:
            return None
        from eximpy import match as M
        ctx = rctx.expand_context(addr)
        try:
            rc, _v = M.match_isinlist(ctx, addr.domain, text, M.MCL_DOMAIN,
                                      expand=True)
        except Exception:  # noqa: BLE001 - expansion/lookup failure
            return "DEFER"
        return "OK" if rc == M.OK else "DEFER" if rc == M.DEFER else None

    def held(self, addr: Any, rctx: Any) -> bool:
        """hold_domains (not for forced deliveries): True, with message and
        errno set, when the address is to be deferred ("domain is held")."""
        if self.forced:
            return False
        rc = self._domain_in("hold_domains", addr, rctx)
        if rc is None:
            return False
        if rc == "DEFER":
            addr.message, addr.basic_errno = ("hold_domains lookup deferred",
                                              ERRNO_LISTDEFER)
        else:
            addr.message, addr.basic_errno = "domain is held", ERRNO_HELD
        return True

    def queue_domain(self, addr: Any, rctx: Any) -> bool:
        """queue_domains (not for forced deliveries or queue runs): True,
        with message and errno set, when the address is to be deferred."""
        if self.forced or self.queue_run:
            return False
        rc = self._domain_in("queue_domains", addr, rctx)
        if rc is None:
            return False
        if rc == "DEFER":
            addr.message, addr.basic_errno = ("queue_domains lookup deferred",
                                              ERRNO_LISTDEFER)
        else:
            addr.message = "domain is in queue_domains"
            addr.basic_errno = ERRNO_QUEUE_DOMAIN
        return True

    # -- local transports -------------------------------------------------
    def transport_key(self, addr: Any) -> str:
        """The T: key: the routing keys (made before routing, so with the
        whole local part and the original domain) with R: turned into T:,
        with or without the local part as the transport's
        retry_use_local_part says; T:<pipe/file>:<parent> for pfr."""
        if addr.pfr:
            return f"T:{addr.unique}"
        ulp = True
        tp = addr.transport
        if tp is not None:
            try:
                ulp = bool(tp.get("retry_use_local_part"))
            except KeyError:
                ulp = True
        key = getattr(addr, "address_retry_key" if ulp else
                      "domain_retry_key", None)
        if key is None:
            key = (f"R:{addr.local_part}@{addr.domain}" if ulp
                   else f"R:{addr.domain}")
        return "T" + key[1:]

    def transport_skip(self, addr: Any) -> bool:
        """True (message and errno set) when a local delivery is to be
        deferred because its retry time has not come."""
        key = self.transport_key(addr)
        rec = self._read(key)
        if rec is None:
            return False
        addr.lt_retry_exists = True
        if not (self.queue_run and not self.forced):
            return False
        ok = (self.now - rec.time_stamp > self.expire or
              self.now >= rec.next_try or rec.expired)
        if not ok:
            ok = ultimate_address_timeout(
                self.config, key, addr.domain, rec, self.msg.received_time,
                self._sender, self.now)
        if ok:
            return False
        addr.message = "Retry time not yet reached"
        addr.basic_errno = ERRNO_LRETRY
        return True

    def after_transport(self, addr: Any, deferred: bool) -> None:
        if deferred or getattr(addr, "lt_retry_exists", False):
            add_item(addr, self.transport_key(addr),
                     0 if deferred else RF_DELETE)

    # -- remote hosts -------------------------------------------------------
    def check_host(self, domain: str, host_name: str, host_address: str,
                   port: str = "", include_ip: bool = True,
                   message_id: str | None = None) -> "HostStatus":
        """Exim's retry_check_address() for the smtp transport.

        ``port`` is "" for the standard port, else ":<port>"; include_ip is
        the transport's retry_include_ip_address.  The status is "usable",
        "usable_expired" (past its cutoff but its retry time has come),
        "unusable" or "unusable_expired" (retry time not reached).  The
        transport then, as Exim's smtp transport does: skips unusable
        hosts (HRETRY, "retry time not reached for any host" when all
        are); after a host error calls add_item(addr, host_key, RF_HOST),
        or with RF_HOST|RF_MESSAGE on the message key for message-specific
        errors; after a success adds RF_DELETE items for the keys returned
        here; and with delay_after_cutoff false makes a second pass over
        "unusable_expired" hosts whose last_try is before the message's
        arrival."""
        hkey = (f"T:{host_name.lower()}:{host_address}{port}" if include_ip
                else f"T:{host_name.lower()}{port}")
        mkey = f"{hkey}:{message_id or self.msg.id}"
        hrec = self._fresh(hkey)
        mrec = self._fresh(mkey)
        status = "usable"
        out_h = out_m = None
        last = hrec.last_try if hrec is not None else None
        if hrec is not None:
            out_h = hkey
            if self.now < hrec.next_try and not self.forced:
                if not hrec.expired and ultimate_address_timeout(
                        self.config, hkey, domain, hrec,
                        self.msg.received_time, self._sender, self.now):
                    return HostStatus("usable", None, None, last)
                return HostStatus("unusable_expired" if hrec.expired
                                  else "unusable", out_h, None, last)
            if hrec.expired:
                status = "usable_expired"
        if mrec is not None:
            out_m = mkey
            if self.now < mrec.next_try and not self.forced:
                if not ultimate_address_timeout(
                        self.config, hkey, domain, mrec,
                        self.msg.received_time, self._sender, self.now):
                    return HostStatus("unusable", out_h, out_m, last)
                return HostStatus("usable", out_h, out_m, last)
        return HostStatus(status, out_h, out_m, last)

    # -- the end-of-delivery update -----------------------------------------
    def update(self, succeeded: list[Any], failed: list[Any],
               deferred: list[Any],
               log: Callable[[Any, str], None]) -> list[Any]:
        """Exim's retry_update().  ``deferred`` is walked from its most
        recent end; an address that times out is removed from it, marked
        (``retry_timedout``), its message extended, logged through ``log``
        and returned (the caller adds it to its failed list)."""
        if not any(getattr(a, "retries", None) for chain in
                   (succeeded, failed, deferred) for b in chain
                   for a in _lineage(b)):
            return []
        try:
            db = open_db(self.spool, self.config)
        except Exception:  # noqa: BLE001 - lmdb.Error, OSError
            # Exim: "retry database not available for updating" -- nothing
            # is written and nothing times out
            return []
        timed_out_addrs: list[Any] = []
        # records carry the time of this update; the message's age is the
        # one computed when the delivery began (Exim's message_age)
        now = int(time.time())
        message_age = self.now - int(self.msg.received_time)
        rimax = self.config.main.get("retry_interval_max")
        if rimax is None:
            rimax = 86400
        no_defer = not deferred
        try:
            with db.write() as txn:
                for which, chain in ((0, succeeded), (1, failed),
                                     (2, list(reversed(deferred)))):
                    for endaddr in chain:
                        timed_out = False
                        for addr in _lineage(endaddr):
                            update_count = timedout_count = 0
                            for rti in getattr(addr, "retries", None) or []:
                                if no_defer and rti.flags & RF_MESSAGE:
                                    rti.flags |= RF_DELETE
                                bkey = rti.key.encode("utf-8", "surrogateescape")
                                if rti.flags & RF_DELETE:
                                    txn.delete(bkey)
                                    continue
                                update_count += 1
                                rule = find_config(
                                    self.config, rti.key[2:],
                                    addr.domain if rti.flags & RF_HOST else None,
                                    rti.basic_errno, rti.more_errno,
                                    self._sender)
                                if rule is None:
                                    if addr is endaddr:
                                        timedout_count += 1
                                    continue
                                if rti.basic_errno > 0:
                                    text = os.strerror(rti.basic_errno)
                                elif rti.message is None:
                                    text = "unknown error"
                                else:
                                    from eximpy.log.format import printing
                                    text = printing(rti.message)
                                text = text[:150]
                                old = txn.get(bkey)
                                rec = RetryRecord.unpack(bytes(old)) if old else None
                                if rec is not None and now - rec.time_stamp > self.expire:
                                    rec = None
                                if rec is None:
                                    rec = RetryRecord(now, now, now, now)
                                failing = now - rec.first_failed
                                if not rti.flags & RF_HOST and message_age > failing:
                                    failing = message_age
                                item = None
                                final = None
                                for it in rule.items:
                                    if failing <= it.timeout:
                                        item = it
                                        break
                                    final = it
                                if item is not None:
                                    rec.expired = False
                                else:
                                    item = final
                                    rec.expired = True
                                    if addr is endaddr:
                                        timedout_count += 1
                                if (self.msg.received_time <= rec.first_failed
                                        and addr is endaddr and not rec.expired
                                        and item is not None):
                                    last = rule.items[-1]
                                    if now - self.msg.received_time > last.timeout:
                                        timedout_count += 1
                                        item = None
                                next_try = now if item is None else \
                                    now + _next_gap(item, rec, now)
                                if next_try - now > rimax:
                                    next_try = now + rimax
                                rec.time_stamp = now
                                rec.last_try = now
                                rec.next_try = next_try
                                rec.basic_errno = rti.basic_errno
                                rec.more_errno = rti.more_errno
                                rec.text = text
                                txn.put(bkey, rec.pack())
                            if update_count > 0 and update_count == timedout_count:
                                if not getattr(endaddr, "retry_skipped", False):
                                    timed_out = True
                        if which == 2 and timed_out and \
                                getattr(endaddr, "retries", None):
                            # the other addresses of its remote batch go
                            # with it, the later ones first (Exim)
                            batch = [a for a in reversed(deferred)
                                     if a is not endaddr and
                                     getattr(a, "batch_first", None)
                                     is endaddr] + [endaddr]
                            for a in batch:
                                a.retry_timedout = True
                                a.message = (
                                    f"{a.message}: retry timeout exceeded"
                                    if a.message else "retry timeout exceeded")
                                um = getattr(a, "user_message", None)
                                a.user_message = (
                                    f"{um}: retry timeout exceeded" if um
                                    else "retry timeout exceeded")
                                deferred.remove(a)
                                p = a.parent
                                log(a, f"** {a.address}"
                                    + (f" <{p.address}>" if p is not None
                                       else "")
                                    + ": retry timeout exceeded")
                            # Exim moves the batch onto the failed chain as a
                            # block in front: callers read that chain
                            # reversed, so the block goes in reversed here.
                            timed_out_addrs.extend(reversed(batch))
        except Exception:  # noqa: BLE001 - lmdb.Error: a hint, not data
            pass
        return timed_out_addrs


def _lineage(addr: Any) -> list[Any]:
    out = []
    a = addr
    while a is not None:
        out.append(a)
        a = a.parent
    return out


def _next_gap(item: Any, rec: RetryRecord, now: int) -> int:
    """The gap to the next try from one F/G/H rule item."""
    if item.letter == "F":
        return item.p1
    predicted = rec.next_try - rec.last_try
    actual = now - rec.last_try
    lastgap = min(predicted, actual)
    next_gap = lastgap * item.p2 // 1000
    if item.letter == "G":
        return item.p1 if lastgap < item.p1 else next_gap
    gap = item.p1
    if next_gap > item.p1:
        gap += random.randrange(next_gap - item.p1) // 2 + (next_gap - item.p1) // 2
    return gap
