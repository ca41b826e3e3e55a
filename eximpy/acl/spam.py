"""The spam ACL condition: SpamAssassin's spamd and Rspamd (Exim spam.c).

SUMMARY
    acl_spam(call, arg, msgs) -> rc

DESCRIPTION
    spam = <user>[:true] [/defer_ok]

    The argument is a "/"-separated list whose first item is itself a
    ":"-list: the user name ("0"/"false": no scan, FAIL) and optionally
    "true" (always succeed, for the variables).  "defer_ok" turns DEFER
    into FAIL.  The .eml copy of the message (eximpy.acl.content) is sent
    to a server of spamd_address (default "127.0.0.1 783"; expanded when
    it starts with "$"):  a ":"-list of space-separated server specs, "ip
    port [options]" or "/path [options]", options pri= weight= time=
    retry= tmo= variant=rspamd.  The highest priority servers are chosen
    by weighted random choice; one that cannot be connected to is logged
    ("spam acl condition: spamd: <error>") and the next is tried.

    SpamAssassin is asked "REPORT SPAMC/1.2" with "User:" and
    "Content-length:"; the answer's score and threshold give
    $spam_score (%.1f), $spam_score_int (score*10 truncated),
    $spam_bar ('+'/'-' per point, "/" for zero), $spam_action ("reject"
    when score >= threshold, else "no action") and $spam_report (the
    report with CRs dropped and a space after each newline).  Rspamd is
    asked "CHECK RSPAMC/1.3" with the envelope, and its "Action:" line is
    $spam_action.  The condition is true when score >= threshold.

    Results are cached for the message: a second spam condition with the
    same user (and the same expanded spamd_address) does not scan again.

SECURITY
    Only the message copy goes to the server; the server's answer sets
    variables that an ACL may put in headers (the report is tainted).

SEE ALSO
    spec 45.2, 45.3; Exim spam.c.
"""
from __future__ import annotations

# getaddrinfo() encodes host names with the idna codec, which a role
# cannot import any more once it has dropped privileges: load it now.
import encodings.idna  # noqa: F401
import os
import random
import re
import socket
import time
from typing import Any

from eximpy.acl.runner import DEFER, FAIL, OK
from eximpy.expand.taint import Tainted

SPAMD_TIMEOUT = 120
MAX_SPAM_BAR_CHARS = 50
LOGLABEL = "spam acl condition:"

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_SA_NEW = re.compile(r"SPAMD/(\S{1,7})\s+0\s+EX_OK\s*Content-length:\s*\d+"
                     r"\s*" + _NUM + r"/" + _NUM + r"\s*", re.S)
_SA_OLD = re.compile(r"SPAMD/(\S{1,7})\s+0\s+EX_OK\s*Spam:\s*\S+\s*;\s*" +
                     _NUM + r"\s*/\s*" + _NUM + r"\s*", re.S)
_RSPAMD = re.compile(r"RSPAMD/(\S{1,7})\s+0\s+EX_OK\s*Metric:\s*default;\s*"
                     r"(\S{1,7})\s*" + _NUM + r"\s*/\s*" + _NUM + r"\s*/\s*" +
                     _NUM + r"\s*", re.S)


class _Server:
    def __init__(self, hostspec: str) -> None:
        self.hostspec = hostspec
        self.is_rspamd = False
        self.failed = False
        self.weight = 1
        self.timeout = SPAMD_TIMEOUT
        self.retry = 0
        self.priority = 1


def _log(call: Any, text: str, panic: bool = False) -> None:
    call.engine.log_write(f"{LOGLABEL} {text}", main=True, panic=panic)


def _readtime(s: str) -> int:
    from eximpy.config.options import readtime
    try:
        t = readtime(s)
    except Exception:
        return -1
    return -1 if t is None else t


def _param(call: Any, param: str, sd: _Server) -> int:
    """Exim's spamd_param(): 0 OK, 1 skip this server, -1 error."""
    m = re.match(r"pri=(\d+)", param)
    if m:
        sd.priority = int(m.group(1))
        return 0
    m = re.match(r"weight=(\d+)", param)
    if m:
        sd.weight = int(m.group(1))
        return 1 if sd.weight == 0 else 0
    if param.startswith("time="):
        s = param[5:]
        if "-" not in s:
            _log(call, f"warning - invalid spamd time value: '{s}'")
            return -1
        a, b = s.split("-", 1)

        def secs(t: str, default_h: int) -> int | None:
            parts = t.split(".")
            try:
                nums = [int(x) for x in parts if x != ""]
            except ValueError:
                return None
            if not nums:
                return None
            nums += [0] * (3 - len(nums))
            return nums[0] * 3600 + nums[1] * 60 + nums[2]
        start, end = secs(a, 0), secs(b, 24)
        if start is None or end is None:
            _log(call, f"warning - invalid spamd time value: '{s}'")
            return -1
        lt = time.localtime()
        now = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec
        return 1 if (now < start or now >= end) else 0
    if param == "variant=rspamd":
        sd.is_rspamd = True
        return 0
    if param.startswith("tmo="):
        t = _readtime(param[4:])
        if t < 0:
            _log(call, f"warning - invalid spamd timeout value: "
                 f"'{param[4:]}'")
            return -1
        sd.timeout = t
        return 0
    if param.startswith("retry="):
        t = _readtime(param[6:])
        if t < 0:
            _log(call, f"warning - invalid spamd retry value: "
                 f"'{param[6:]}'")
            return -1
        sd.retry = t
        return 0
    _log(call, f"warning - invalid spamd parameter: '{param}'")
    return -1


def _pick(servers: list[_Server]) -> int:
    live = [s for s in servers if not s.failed]
    if not live:
        return -1
    if len(servers) == 1:
        return 0
    pri = max(s.priority for s in live)
    cands = [(i, s) for i, s in enumerate(servers)
             if not s.failed and s.priority == pri]
    total = sum(s.weight for _i, s in cands)
    if total == 0:
        return -1
    r = random.randrange(total)
    for i, s in cands:
        r -= s.weight
        if r < 0:
            return i
    return -1


def _connect(hostspec: str) -> tuple[socket.socket | None, str]:
    """Exim's ip_streamsocket(): "/path" or "host port[-port]"."""
    if hostspec.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(hostspec)
        except OSError as e:
            s.close()
            return None, (f"unable to connect to UNIX socket ({hostspec}): "
                          f"{os.strerror(e.errno or 0)}")
        return s, hostspec
    parts = hostspec.split()
    host = parts[0]
    ports = parts[1] if len(parts) > 1 else ""
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", ports)
    if not m:
        return None, f'bad port in "{hostspec}"'
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    err = 0
    for port in range(lo, hi + 1):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return None, f"failed to find IP address for {host}"
        for fam, typ, proto, _c, sa in infos:
            s = socket.socket(fam, typ, proto)
            s.settimeout(5)
            try:
                s.connect(sa)
                return s, f"[{sa[0]}]:{port}"
            except OSError as e:
                err = e.errno or 0
                s.close()
    return None, (f"failed to connect to any address for {host}: "
                  f"{os.strerror(err)}")


def acl_spam(call: Any, arg: str, msgs: Any) -> str:
    from eximpy.acl.content import slash_list
    items = slash_list(arg)
    first = items[0] if items else None
    rc = _spam(call, first)
    if rc == DEFER and any(o.lower() == "defer_ok" for o in items[1:]):
        rc = FAIL
    return rc


def _spam(call: Any, spec: str | None) -> str:
    from eximpy.acl.content import get_content
    from eximpy.config.options import nextinlist
    if spec is None:
        return FAIL
    user, i, _sep = nextinlist(spec, 0, None)
    if user is None:
        return FAIL
    if user == "0" or user.lower() == "false":
        return FAIL
    rest = spec[i:]
    override = rest.lower() == "true"
    try:
        address = call.engine.config.main.get("spamd_address")
    except (KeyError, AttributeError):
        address = None
    if address is None:
        address = "127.0.0.1 783"
    work = address
    if address.startswith("$"):
        try:
            work = call.expand(address)
        except Exception as e:
            _log(call, "spamd_address starts with $, but expansion failed: "
                 f"{e}", panic=True)
            return DEFER
    content = get_content(call)
    if content is None:
        _log(call, "error while creating mbox spool file", panic=True)
        return DEFER
    if content.spam_ok and content.spam_address is not None and \
            content.spam_address != work:
        content.spam_ok = False
    if content.spam_ok and content.spam_user == user:
        _set_vars(call, content)
        return OK if override else content.spam_rc
    try:
        eml = content.mbox_path()
        with open(eml, "rb") as fh:
            data = fh.read()
    except OSError:
        _log(call, "error while creating mbox spool file", panic=True)
        return DEFER
    start = time.monotonic()
    servers: list[_Server] = []
    j = 0
    while True:
        entry, j, _s = nextinlist(work, j, None)
        if entry is None:
            break
        sd = None
        args = 0
        for word in entry.split():
            if args == 0:
                sd = _Server(word)
                if word.startswith("/"):
                    args += 1
            elif args == 1 and sd is not None:
                sd.hostspec = f"{sd.hostspec} {word}"
            elif sd is not None:
                _param(call, word, sd)
            args += 1
        if args < 2 or sd is None:
            _log(call, f"warning - invalid spamd address: '{entry}'")
            continue
        servers.append(sd)
        if len(servers) > 31:
            break
    if not servers:
        _log(call, "no useable spamd server addresses in spamd_address "
             "configuration option.", panic=True)
        return DEFER
    cur = _pick(servers)
    sd = servers[cur] if cur >= 0 else servers[0]
    while True:
        while True:
            sock, where = _connect(sd.hostspec)
            if sock is not None or sd.retry <= 0:
                break
            time.sleep(sd.retry)
            sd.retry = 0
        if sock is not None:
            break
        _log(call, f"spamd: {where}")
        sd.failed = True
        cur = _pick(servers)
        if cur < 0:
            _log(call, "all spamd servers failed", panic=True)
            return DEFER
        sd = servers[cur]
    call.ctx.variables["callout_address"] = where
    try:
        with sock:
            sock.settimeout(max(0.1, sd.timeout - (time.monotonic() -
                                                    start)))
            if sd.is_rspamd:
                req = (f"CHECK RSPAMC/1.3\r\nContent-length: {len(data)}\r\n"
                       f"Queue-Id: {content.message_id}\r\n"
                       f"From: <{content.sender or ''}>\r\n"
                       f"Recipient-Number: {len(content.recipients)}\r\n")
                for r in content.recipients:
                    req += f"Rcpt: <{r}>\r\n"
                for name, head in (("sender_helo_name", "Helo"),
                                   ("sender_host_name", "Hostname"),
                                   ("sender_host_address", "IP"),
                                   ("authenticated_id", "User")):
                    val = call.var(name)
                    if val:
                        req += f"{head}: {val}\r\n"
                req += "\r\n"
            else:
                req = (f"REPORT SPAMC/1.2\r\nUser: {user}\r\n"
                       f"Content-length: {len(data)}\r\n\r\n")
            try:
                sock.sendall(req.encode("utf-8", "surrogateescape") + data)
            except OSError as e:
                _log(call, f"{os.strerror(e.errno or 0)} on spamd {where} "
                     "socket", panic=True)
                return DEFER
            if not sd.is_rspamd:
                sock.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []
            total = 0
            while total < 32599:
                try:
                    b = sock.recv(32599 - total)
                except OSError as e:
                    why = os.strerror(e.errno if e.errno else 110)
                    _log(call, f"error reading from spamd {where}, socket: "
                         f"{why}", panic=True)
                    return DEFER
                if not b:
                    break
                chunks.append(b)
                total += len(b)
    except OSError as e:
        _log(call, f"{os.strerror(e.errno or 0)} on spamd {where} socket",
             panic=True)
        return DEFER
    buf = b"".join(chunks).split(b"\0", 1)[0].decode("utf-8",
                                                     "surrogateescape")
    if sd.is_rspamd:
        m = _RSPAMD.match(buf)
        if m is None:
            _log(call, f"cannot parse spamd {where}, output: "
                 f"{_rspamd_fields(buf)}", panic=True)
            return DEFER
        score, threshold = float(m.group(3)), float(m.group(4))
        rest = buf[m.end():]
        action = ""
        if rest.startswith("Action: "):
            action = re.match(r"[^\r]*", rest[8:]).group(0)[:31]
        report_at = m.end()
    else:
        m = _SA_NEW.match(buf) or _SA_OLD.match(buf)
        if m is None:
            _log(call, f"cannot parse spamd {where} output", panic=True)
            return DEFER
        score, threshold = float(m.group(2)), float(m.group(3))
        action = "reject" if score >= threshold else "no action"
        report_at = m.end()
    report = buf[report_at:].replace("\r", "").replace("\n", "\n ")
    report = report.rstrip("".join(chr(c) for c in range(33)))
    ch = "+" if score > 0 else "-"
    n = abs(int(score))
    bar = ch * min(n, MAX_SPAM_BAR_CHARS + 1) if n else "/"
    content.spam_vars = {
        "spam_score": f"{score:.1f}",
        "spam_score_int": str(int((score + 0.001) * 10)),
        "spam_bar": bar, "spam_action": action,
        "spam_report": Tainted(report)}
    content.spam_rc = OK if score >= threshold else FAIL
    content.spam_address = work if work is not address else None
    content.spam_user = user
    content.spam_ok = True
    _set_vars(call, content)
    return OK if override else content.spam_rc


def _rspamd_fields(buf: str) -> int:
    """How many of the five fields Exim's sscanf() of an Rspamd answer
    converted before it stopped (its "output: <n>" log)."""
    steps = (r"RSPAMD/(\S{1,7})", r"\s+0\s+EX_OK\s*Metric:\s*default;\s*"
             r"(\S{1,7})", r"\s*" + _NUM, r"\s*/\s*" + _NUM,
             r"\s*/\s*" + _NUM)
    pat = ""
    n = 0
    for st in steps:
        pat += st
        if re.match(pat, buf, re.S) is None:
            break
        n += 1
    return n


def _set_vars(call: Any, content: Any) -> None:
    call.ctx.variables.update(content.spam_vars)
