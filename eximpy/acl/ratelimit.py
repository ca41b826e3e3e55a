"""The `ratelimit` and `seen` ACL conditions, on LMDB hints databases.

SUMMARY
    acl_ratelimit(call, arg, msgs) -> OK | FAIL | DEFER | ERROR
    acl_seen(call, arg, msgs)      -> OK | FAIL | DEFER | ERROR

DESCRIPTION
    ratelimit = m / p / options / key  measures the client's rate as Exim
    does: an exponentially weighted moving average with period p, compared
    with the limit m ("clients sending at the limit are over it").  Options:
    per_conn per_mail per_rcpt per_byte per_cmd per_addr, leaky (default),
    strict, readonly, noupdate, count=n, unique=x; the key defaults to
    $sender_host_address and the stored key is "p/per_xxx/[unique/]key",
    as Exim's.  Results are remembered for the connection (per_conn), the
    message (per_mail, per_byte, per_rcpt outside RCPT) or the command, so
    a second test of the same key in the same scope sees the same rate.
    $sender_rate, $sender_rate_limit and $sender_rate_period are set.

    The read-compute-write of one test happens inside one LMDB write
    transaction, which LMDB makes exclusive across processes: N concurrent
    sessions see exactly N updates.

    Record format (little-endian): time_stamp int64, time_usec int32, rate
    double; with unique=/per_addr followed by bloom_epoch int64, then the
    Bloom filter bytes (2 per unit of limit, at least 40).

    seen = [-]interval / key=... / readonly / write / refresh=interval
    records the time a key was last seen in the "seen" database (spec
    44.38).  Record: time_stamp int64.

SEE ALSO
    spec 44.38 "Previously seen user and hosts", 44.39-44.44 "Rate
    limiting incoming messages"; Exim acl.c acl_ratelimit(), acl_seen().
"""
from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from eximpy.acl.runner import DEFER, ERROR, FAIL, OK

_BASIC = struct.Struct("<qid")
_EPOCH = struct.Struct("<q")
_WHERE_ORDER = ("rcpt", "mail", "predata", "mime", "dkim", "data", "prdr",
                "notsmtp")


def _spool(call: Any) -> str:
    return call.engine.main("spool_directory", "/var/spool/exim4")


def _err(msgs: Any, text: str) -> str:
    msgs.log = f'error in arguments to "ratelimit" condition: {text}'
    return ERROR


def _in_msg(where: str) -> bool:
    return where in _WHERE_ORDER


def acl_ratelimit(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.config.options import readtime
    from eximpy.acl.engine import WHERE_NAMES
    where = call.where
    items = [x.strip() for x in arg.split("/")]
    if not items or items == [""]:
        return _err(msgs, '"" is not a positive number')
    ls = items[0]
    mult = 1.0
    body = ls
    if body[-1:].lower() in ("k", "m", "g"):
        mult = {"k": 1024.0, "m": 1048576.0, "g": 1073741824.0}[body[-1].lower()]
        body = body[:-1]
    try:
        limit = float(body) * mult
        if limit < 0 or not body:
            raise ValueError
    except ValueError:
        return _err(msgs, f'"{ls}" is not a positive number')
    if len(items) < 2:
        return _err(msgs, '"" is not a time value')
    period_s = items[1]
    try:
        period = float(readtime(period_s))
    except Exception:
        period = -1.0
    if period <= 0:
        return _err(msgs, f'"{period_s}" is not a time value')
    count = 1.0
    leaky = strict = noupdate = readonly = badacl = False
    mode = "?"
    unique: str | None = None
    key: str | None = None

    def rset(m: str) -> None:
        nonlocal mode
        mode = m if mode == "?" else "!"
    for ss in items[2:]:
        low = ss.lower()
        if low == "leaky":
            leaky = True
        elif low == "strict":
            strict = True
        elif low == "noupdate":
            noupdate = True
        elif low == "readonly":
            readonly = True
        elif low == "per_cmd":
            rset("per_cmd")
        elif low == "per_conn":
            rset("per_conn")
            if where in ("notsmtp", "notsmtp_start"):
                badacl = True
        elif low == "per_mail":
            rset("per_mail")
            if not _in_msg(where):
                badacl = True
        elif low == "per_rcpt":
            if where == "rcpt":
                rset("per_rcpt")
            elif where in ("predata", "mime", "dkim", "data", "prdr",
                           "notsmtp"):
                rset("per_allrcpts")
                try:
                    count = float(call.var("recipients_count") or 0)
                except ValueError:
                    count = 0.0
            else:
                rset("per_rcpt")
                badacl = True
        elif low == "per_byte":
            rset("per_mail")
            if not _in_msg(where):
                badacl = True
            else:
                try:
                    ms = float(call.var("message_size") or -1)
                except ValueError:
                    ms = -1.0
                count = 0.0 if ms < 0 else ms
        elif low == "per_addr":
            rset("per_rcpt")
            if where != "rcpt":
                badacl = True
                unique = "*"
            else:
                unique = f"{call.var('local_part')}@{call.var('domain')}"
        elif low.startswith("count="):
            try:
                count = float(ss[6:])
                if count < 0:
                    raise ValueError
            except ValueError:
                return _err(msgs, f'"{ss}" is not a positive number')
        elif low.startswith("unique="):
            unique = ss[7:]
        elif key is None:
            key = ss
        else:
            key = f"{key}/{ss}"
    if mode == "!":
        return _err(msgs, "conflicting per_* options")
    if leaky + strict + readonly > 1:
        return _err(msgs, "conflicting update modes")
    if badacl and (leaky or strict) and not noupdate:
        shown = "per_rcpt" if mode == "per_allrcpts" else mode
        return _err(msgs, f'"{shown}" must not have /leaky or /strict option, '
                    f"or cannot be used in {WHERE_NAMES.get(where, where)} ACL")
    if noupdate:
        readonly, leaky, strict = True, False, False
    if badacl:
        readonly = True
    if readonly:
        count = 0.0
    if not strict and not readonly:
        leaky = True
    if mode == "?":
        mode = "per_mail"
    if key is None:
        key = call.var("sender_host_address")
    shown_mode = "per_rcpt" if mode == "per_allrcpts" else mode
    dbkey = f"{period_s}/{shown_mode}/{'unique/' if unique else ''}{key}"
    call.ctx.variables["sender_rate_limit"] = ls
    call.ctx.variables["sender_rate_period"] = period_s
    call.trace(f"ratelimit condition count={count:.0f} {limit:.1f}/{dbkey}")

    eng = call.engine
    if readonly:
        store = eng.msg.setdefault("ratelimit_cmd", {})
        cmd_id = id(call)
        if eng.msg.get("ratelimit_cmd_id") != cmd_id:
            store.clear()
            eng.msg["ratelimit_cmd_id"] = cmd_id
    elif mode == "per_conn":
        store = eng.conn["ratelimit"]
    elif mode in ("per_mail", "per_allrcpts"):
        store = eng.msg["ratelimit"]
    else:
        store = eng.msg.setdefault("ratelimit_cmd", {})
        cmd_id = id(call)
        if eng.msg.get("ratelimit_cmd_id") != cmd_id:
            store.clear()
            eng.msg["ratelimit_cmd_id"] = cmd_id
    if dbkey in store:
        rate = store[dbkey]
        call.ctx.variables["sender_rate"] = f"{rate:.1f}"
        call.trace(f"ratelimit found pre-computed rate {rate:.1f}")
        return FAIL if rate < limit else OK

    try:
        from eximpy import hintsdb
        db = hintsdb.open(_spool(call), "ratelimit")
    except Exception:
        call.ctx.variables.pop("sender_rate", None)
        call.trace("ratelimit database not available")
        msgs.log = "ratelimit database not available"
        return DEFER
    now = eng.clock()
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    bkey = dbkey.encode("utf-8", "surrogateescape")
    with db.write() as txn:
        raw = txn.get(bkey)
        raw = bytes(raw) if raw is not None else None
        dbd: list[float] | None = None
        bloom: bytearray | None = None
        epoch = 0
        if raw is not None and len(raw) >= _BASIC.size:
            call.trace("ratelimit found key in database")
            ts, us, r = _BASIC.unpack_from(raw)
            dbd = [ts, us, r]
            if unique:
                if len(raw) >= _BASIC.size + _EPOCH.size + 40:
                    epoch = _EPOCH.unpack_from(raw, _BASIC.size)[0]
                    bloom = bytearray(raw[_BASIC.size + _EPOCH.size:])
                    if sec > epoch + period:
                        call.trace("ratelimit discarding old Bloom filter")
                        bloom = None
                else:
                    call.trace("ratelimit discarding undersize Bloom filter")
        if unique and bloom is None:
            call.trace("ratelimit creating new Bloom filter")
            bloom = bytearray(max(40, int(limit) * 2))
            epoch = sec
        elif not unique and dbd is None:
            call.trace("ratelimit creating new rate data block")
        if unique and not readonly:
            assert bloom is not None
            md = hashlib.md5(unique.encode("utf-8", "surrogateescape")).digest()
            h = int.from_bytes(md[0:4], "little")
            hinc = int.from_bytes(md[4:8], "little")
            call.trace(f"ratelimit checking uniqueness of {unique}")
            seen = True
            for _n in range(8):
                bit = 1 << (h % 8)
                byte = (h // 8) % len(bloom)
                if not bloom[byte] & bit:
                    bloom[byte] |= bit
                    seen = False
                h = (h + hinc) & 0xFFFFFFFF
            if seen:
                call.trace("ratelimit event found in Bloom filter")
                count = 0.0
            else:
                call.trace("ratelimit event added to Bloom filter")
        if dbd is None:
            call.trace("ratelimit initializing new key's rate data")
            dbd = [sec, usec, count]
        else:
            this_t = sec + usec / 1e6
            prev_t = dbd[0] + dbd[1] / 1e6
            interval = this_t - prev_t
            if interval <= 0:
                interval = 1e-9
            iop = interval / period
            a = math.exp(-iop)
            dbd = [sec, usec, (1 - a) * count / iop + a * dbd[2]]
            if dbd[2] < count:
                dbd[2] = count
        rate = dbd[2]
        rc = FAIL if rate < limit else OK
        if (rc == FAIL and leaky) or strict:
            data = _BASIC.pack(int(dbd[0]), int(dbd[1]), rate)
            if unique:
                assert bloom is not None
                data += _EPOCH.pack(epoch) + bytes(bloom)
            txn.put(bkey, data)
            call.trace("ratelimit db updated")
        else:
            call.trace("ratelimit db not updated: "
                       + ("readonly mode" if readonly
                          else "over the limit, but leaky"))
    store[dbkey] = rate
    call.ctx.variables["sender_rate"] = f"{rate:.1f}"
    call.trace(f"ratelimit computed rate {rate:.1f}")
    return rc


def acl_seen(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.config.options import readtime
    parts = [p.strip() for p in arg.split("/")]
    first = parts[0]
    before = first.startswith("-")
    if before:
        first = first[1:]
    try:
        interval = readtime(first)
        if interval is None or interval < 0:
            raise ValueError
    except Exception:
        msgs.log = f"failed to parse '{first}'"
        return ERROR
    key = call.var("sender_host_address")
    readonly = write = False
    refresh = 10 * 24 * 3600
    for o in parts[1:]:
        if o.startswith("key="):
            key = o[4:]
        elif o == "readonly":
            readonly = True
        elif o == "write":
            write = True
        elif o.startswith("refresh="):
            try:
                refresh = readtime(o[8:])
                if refresh is None or refresh < 0:
                    raise ValueError
            except Exception:
                msgs.log = f"failed to parse '{o[8:]}'"
                return ERROR
        else:
            msgs.log = f"unrecognised option '{o}' in '{arg}'"
            return ERROR
    try:
        from eximpy import hintsdb
        db = hintsdb.open(_spool(call), "seen")
    except Exception:
        msgs.log = "database for 'seen' not available"
        return DEFER
    now = int(call.engine.clock())
    test_time = now - interval
    bkey = key.encode("utf-8", "surrogateescape")
    with db.write() as txn:
        raw = txn.get(bkey)
        stamp = _EPOCH.unpack(bytes(raw)[:8])[0] if raw is not None and \
            len(raw) >= 8 else None
        if stamp is None:
            rc = FAIL
        elif before:
            rc = OK if stamp <= test_time else FAIL
        else:
            rc = OK if stamp >= test_time else FAIL
        if readonly:
            call.trace("seen db not written (readonly)")
        elif write or (stamp is not None and not before):
            txn.put(bkey, _EPOCH.pack(now))
            call.trace("seen db written (update)")
        elif stamp is None:
            txn.put(bkey, _EPOCH.pack(now))
            call.trace("seen db written (create)")
        elif rc == OK and stamp <= now - refresh:
            txn.put(bkey, _EPOCH.pack(test_time))
            call.trace("seen db written (refresh)")
    return rc
