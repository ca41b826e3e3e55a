"""Remote delivery: the smtp transport's SMTP client and per-host loop.

SUMMARY
    deliver_remote(delivery, addrs, tctx, jnl, done_ok, failed, deferred)
        run the remote transports for the routed remote addresses of one
        message, log "=>", "->", "**" and "==" lines as Exim does, record
        successes in the -J journal, and put each address on one of the
        three lists.
    SmtpClient                 one SMTP (or LMTP over TCP) connection:
                               response reading, pipelining, STARTTLS
    xtext(s)                   RFC 3461 xtext for AUTH= and ORCPT

DESCRIPTION
    Addresses are grouped as Exim's do_remote_deliveries() does: same
    transport, same host list, same errors address, same header changes,
    at most max_rcpt per group (multi_domain false keeps domains apart);
    with remote_max_parallel = 1 the transport gets them all and sends
    max_rcpt at a time down one connection ("*" after H= for the later
    transactions).
    Each group goes through the transport entry (Exim's
    smtp_transport_entry()): the host list is the router's, or the
    transport's `hosts` (always with hosts_override); each host is tried in
    turn (hosts_max_try, hosts_max_try_hardlimit) after the retry database
    says it is usable (eximpy.deliver.retry.DeliveryRetry.check_host), and a
    delivery attempt (smtp_deliver()) connects (connect_timeout, interface,
    port), reads the greeting, says EHLO (helo_data) or HELO, does STARTTLS
    when offered (hosts_avoid_tls, hosts_require_tls, tls_certificate /
    tls_privatekey, tls_verify_certificates with tls_verify_hosts /
    tls_try_verify_hosts, tls_verify_cert_hostnames, tls_sni,
    tls_require_ciphers, tls_tempfail_tryclear with Exim's second clear
    connection), AUTH (hosts_require_auth, hosts_try_auth, each configured
    client authenticator in order, client_condition, client_set_id),
    MAIL FROM with SIZE=, RET=/ENVID=, SMTPUTF8 and AUTH=
    (authenticated_sender, authenticated_sender_force), RCPT TO with
    NOTIFY=/ORCPT=, pipelined when the server offers PIPELINING
    (hosts_avoid_pipelining), then DATA with dot-stuffing or BDAT ... LAST
    when the server offers CHUNKING (hosts_try_chunking), PRDR for two or
    more recipients when offered (hosts_try_prdr), SMTPUTF8 or A-label
    down-conversion (utf8_downconvert), with command_timeout, data_timeout
    and final_timeout.  The message is the
    generic transport output (eximpy.transports._write.message_bytes:
    headers_add/remove/rewrite, return_path_add ..., transport_filter).

    Results and texts are Exim's: "SMTP error from remote mail server after
    RCPT TO:<a>: 451 ...", "Remote host closed connection in response to
    ...", "SMTP timeout after ...", "a TLS session is required, but ...",
    "authentication required but ...", "H=host [ip] Connection refused"
    host lines, retry items T:host:ip[:port] (RF_HOST) and
    T:host:ip:msgid (message errors) and address keys for 4xx RCPT.
    fallback_hosts (router's, else the transport's) get a second round
    for what is still deferred.  Log selectors honoured on these lines:
    outgoing_port, outgoing_interface+incoming_interface (I=),
    delivery_size (S=), pipelining (L), smtp_confirmation (C=),
    tls_cipher, tls_certificate_verified, tls_peerdn, smtp_mailauth,
    sender_on_delivery, return_path_on_delivery, dnssec (DS),
    queue_time, deliver_time.

    Not built: multiple messages down one connection (Exim's wait-<tp>
    database and continued deliveries), the delay_after_cutoff = false
    second pass over expired hosts, DKIM signing, OCSP, TCP Fast Open,
    PIPE_CONNECT, SOCKS, serialize_hosts, parallel remote deliveries.

    DANE (hosts_try_dane, hosts_require_dane): a host is DNSSEC-secure
    when the router recorded so (Host.dnssec "yes"/"no"), else when its
    address lookup, redone here with the DO bit, has the AD bit, or the
    AA bit with its authority in dns_trust_aa (Exim's dns_is_secure());
    then the TLSA records of _<port>._tcp.<host> (secure too) decide:
    TLS is required, the SNI is the domain, and the certificate must
    match a DANE-EE (usage 3) record (CV=dane); a mismatch is Exim's "DANE
    attempt failed" and a deferral without a clear retry.  DANE-TA
    (usage 2) records need the server's chain, which Python 3.11's ssl
    does not give: they never match.

SECURITY
    A delivery process that may change ids (root, or the delivery role
    with CAP_SETUID) never talks SMTP itself: each transport run happens in
    a forked child that first becomes the Exim user with no capabilities
    (eximpy.privilege.run_as; DESIGN.md section 2, as Exim runs remote
    transports as the Exim user).  The child reports each address's result
    as JSON on a pipe (validated, size-limited; no pickle) together with
    the log lines it would have written, which the parent writes in order;
    it writes the -J journal itself through the inherited descriptor, and
    reads host retry records from a copy the parent took (an LMDB
    environment cannot cross fork()).  A process without that privilege
    (a queue runner or daemon delivery as the Exim user, a plain user)
    runs the transport itself.  Secrets from client_send / client_secret
    are sent only inside AUTH exchanges and never logged.  Certificates
    are verified with the cryptography package's X.509 verifier when
    verification is asked for.

SEE ALSO
    spec chapters 30 "The smtp transport", 33 "SMTP authentication", 43
    "Encrypted SMTP connections"; Exim transports/smtp.c, deliver.c
    (do_remote_deliveries, delivery_log, deferral_log, failure_log).
"""
from __future__ import annotations

import base64
import errno as E
import os
import random
import socket
import ssl
import time
from typing import Any

from eximpy import routing as R
from eximpy.address import Address, Host, PORT_NONE, MX_NONE
from eximpy.errors import ExpansionError, ExpansionForcedFail

# Exim's private error numbers (macros.h)
ERRNO_SMTPCLOSED = -18
ERRNO_SMTPFORMAT = -19
ERRNO_FILTER_FAIL = -24
ERRNO_CHHEADER_FAIL = -25
ERRNO_EXPANDFAIL = -27
ERRNO_UNKNOWNHOST = -32
ERRNO_DNSDEFER = -36
ERRNO_TLSFAILURE = -37
ERRNO_TLSREQUIRED = -38
ERRNO_AUTHFAIL = -42
ERRNO_CONNECTTIMEOUT = -43
ERRNO_RCPT4XX = -44
ERRNO_MAIL4XX = -45
ERRNO_DATA4XX = -46
ERRNO_AUTHPROB = -48
ERRNO_UTF8_FWD = -49
ERRNO_HOST_IS_LOCAL = -50
ERRNO_HRETRY = -54
RTEF_CTOUT = 0x100

# transport_return values of an address during the attempt
PENDING_DEFER = "PENDING_DEFER"
PENDING_OK = "PENDING_OK"
OK = R.OK
DEFER = R.DEFER
FAIL = R.FAIL
ERROR = "ERROR"

# DSN flags (Exim's rf_* bits)
RF_DSNLASTHOP = 0x01
_RF_NAMES = ((0x02, "NEVER"), (0x04, "SUCCESS"), (0x08, "FAILURE"),
             (0x10, "DELAY"))
RF_DSNFLAGS = 0x02 | 0x04 | 0x08 | 0x10


class _SendFailed(Exception):
    pass


def xtext(s: str) -> str:
    """RFC 3461 xtext: '+', '=' and characters outside 33..126 as +xx
    (lower-case hex, as Exim's auth_xtextencode() writes it)."""
    out = []
    for b in s.encode("utf-8", "surrogateescape"):
        if b < 33 or b > 126 or b in (0x2B, 0x3D):
            out.append(f"+{b:02x}")
        else:
            out.append(chr(b))
    return "".join(out)


_ESC = {10: "\\n", 13: "\\r", 8: "\\b", 11: "\\v", 12: "\\f", 9: "\\t"}


def _printing(s: str) -> str:
    """Exim 4.96's string_printing(): non-printing bytes as \\n, \\r, \\t
    ... or \\ooo; printable ASCII (backslash included) as it is."""
    raw = s.encode("utf-8", "surrogateescape")
    if all(32 <= c < 127 for c in raw):
        return s
    out = []
    for c in raw:
        if 32 <= c < 127:
            out.append(chr(c))
        else:
            out.append(_ESC.get(c) or f"\\{c:03o}")
    return "".join(out)


def _opt(inst: Any, name: str) -> Any:
    try:
        return inst.get(name)
    except (KeyError, AttributeError):
        return None


# ----------------------------------------------------------------------
# The connection

class SmtpClient:
    """One client connection (plain, then perhaps TLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: Any = sock
        self.inbuf = b""
        self.outbuf: list[bytes] = []
        self.pending = 0                  # commands written, not yet answered
        self.last_command = "initial connection"
        self.tls = False
        self.errno = 0

    # -- writing --------------------------------------------------------
    def write(self, line: str, flush: bool = True, shown: str | None = None) -> int:
        """Buffer (or send) one command line; returns the number of
        commands now sent and awaiting responses (0 while buffered)."""
        data = line.encode("utf-8", "surrogateescape")
        self.outbuf.append(data)
        self.pending += 1
        self.last_command = shown if shown is not None else line.rstrip("\r\n")
        if flush:
            return self.flush()
        return 0

    def write_raw(self, data: bytes) -> None:
        self.outbuf.append(data)

    def flush(self) -> int:
        if self.outbuf:
            data = b"".join(self.outbuf)
            self.outbuf = []
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.errno = e.errno or E.EPIPE
                raise _SendFailed(os.strerror(self.errno)) from e
        n = self.pending
        self.pending = 0
        return n

    # -- reading --------------------------------------------------------
    def _readline(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.inbuf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.inbuf += chunk
        line, _, self.inbuf = self.inbuf.partition(b"\n")
        return line

    def read_response(self, okdigit: str, timeout: float) -> tuple[bool, str]:
        """Exim's smtp_read_response(): (ok, buffer).  ``self.errno`` is
        0 for an SMTP answer (buffer set) or a closed connection (buffer
        empty), ETIMEDOUT, ERRNO_SMTPFORMAT or another errno."""
        self.errno = 0
        lines: list[str] = []
        try:
            while True:
                raw = self._readline(timeout)
                if raw is None:
                    if lines:
                        break
                    return False, ""
                text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
                text = text.rstrip()
                lines.append(text)
                if len(text) < 3 or not text[:3].isdigit() or \
                        (len(text) > 3 and text[3] not in " -"):
                    self.errno = ERRNO_SMTPFORMAT
                    return False, "\n".join(lines)
                if len(text) == 3 or text[3] == " ":
                    break
        except socket.timeout:
            self.errno = E.ETIMEDOUT
            return False, "\n".join(lines)
        except ssl.SSLError:
            self.errno = ERRNO_TLSFAILURE if not lines else E.EIO
            return False, ""
        except OSError as e:
            self.errno = e.errno or E.EIO
            if self.errno == E.ECONNRESET:
                self.errno = 0
            return False, ""
        buf = "\n".join(lines)
        return buf[:1] == okdigit, buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------
# The state of one transport run

class _Attempt:
    """What smtp_deliver() needs across its steps (Exim's smtp_context)."""

    def __init__(self, run: "_TransportRun", addrs: list[Address],
                 host: Host, port: int, interface: str | None) -> None:
        self.run = run
        self.addrs = addrs
        self.host = host
        self.port = port
        self.interface = interface
        self.conn: SmtpClient | None = None
        self.esmtp = True
        self.lmtp = run.lmtp
        self.ehlo = ""                      # the EHLO response
        self.peer: set[str] = set()
        self.pipelining = False
        self.authenticated = False
        self.authenticator: str | None = None
        self.auth_id: str | None = None
        self.auth_sender: str | None = None
        self.tls_info: Any = None
        self.cert_verified = False
        self.send_quit = True
        self.message_defer = False
        self.start = time.time()
        self.helo_data = ""
        self.tls_offered = False
        self.pipelining_active = False
        self.mail_done = False
        self.transport_count = 0
        self.return_path = ""


class _TransportRun:
    """One call of the smtp transport for a group of addresses."""

    def __init__(self, dl: Any, tp: Any, addrs: list[Address], tctx: Any) -> None:
        self.dl = dl
        self.tp = tp
        self.addrs = addrs
        self.tctx = tctx
        self.rctx = tctx.rctx
        self.config = dl.config
        self.lmtp = (_opt(tp, "protocol") or "smtp").lower() == "lmtp"
        self.smtps = (_opt(tp, "protocol") or "smtp").lower() == "smtps"
        self.first = addrs[0]
        self.vars: dict[str, Any] = {}

    # -- helpers ----------------------------------------------------------
    def opt(self, name: str) -> Any:
        return _opt(self.tp, name)

    def expand(self, text: str, **extra: Any) -> str:
        v = dict(self.vars)
        v.update(extra)
        return self.rctx.expand(text, self.first, **v)

    def host_in(self, option: str, host: Host) -> bool:
        """Exim's verify_check_given_host() on an (expanded) host list."""
        text = self.opt(option)
        if not text:
            return False
        from eximpy import match as M
        ctx = self.rctx.expand_context(self.first, **self.vars)
        try:
            rc, _v = M.match_host_list(ctx, host.address or "", host.name,
                                       text, expand=True)
        except Exception:  # noqa: BLE001 - a broken list does not match
            return False
        return rc == M.OK

    def log(self, text: str) -> None:
        self.dl.log.main(text, self.dl.mid)

    def msglog(self, text: str) -> None:
        self.dl._msglog(text)

    def write_logs(self, host: Host, suffix: str | None, basic_errno: int) -> None:
        """Exim's write_logs(): "H=name [ip]: message" in both logs."""
        head = f"H={host.name} [{host.address}]"
        if "outgoing_port" in self.dl.sel:
            head += f":{host.port if host.port != PORT_NONE else 25}"
        if suffix:
            text = f"{head}: {suffix}"
            if basic_errno > 0:
                text += f": {os.strerror(basic_errno)}"
        else:
            text = f"{head} {_errstr(basic_errno)}"
        self.log(text)
        self.msglog(text)

    # -- the entry point (smtp_transport_entry) -----------------------------
    def run(self, hostlist: list[Host], fallback: bool = False) -> None:
        addrs = self.addrs
        for a in addrs:
            a.tp_status = DEFER
            a.basic_errno = 0
            a.more_errno = 0
            a.message = None
            a.host_used = None
        limit = self.opt("message_linelength_limit") or 998
        if getattr(self.dl.msg, "max_received_linelength", 0) > limit:
            _set_errno(addrs, ERRNO_SMTPFORMAT,
                       "message has lines too long for transport", FAIL, None,
                       pending_only=False)
            return
        if not hostlist or (self.opt("hosts_override") and self.opt("hosts")):
            hosts = self.opt("hosts")
            if not hosts:
                _set_errno(addrs, -1, f"{self.tp.name} transport called with "
                           "no hosts set", DEFER, None, pending_only=False)
                return
            try:
                s = self.expand(hosts) if "$" in hosts else hosts
            except (ExpansionError, ExpansionForcedFail) as e:
                _set_errno(addrs, -1, f"failed to expand list of hosts "
                           f"\"{hosts}\" in {self.tp.name} transport: {e}",
                           DEFER, None, pending_only=False)
                return
            from eximpy.routers._rf import build_hostlist
            hostlist = build_hostlist(s, bool(self.opt("hosts_randomize")))
            if not hostlist:
                _set_errno(addrs, -1, f"{self.tp.name} transport has empty "
                           "hosts setting", DEFER, None, pending_only=False)
                return
        elif self.opt("hosts_randomize") and hostlist[0].mx == MX_NONE:
            hostlist = sorted(hostlist, key=lambda h: random.random())
        defport = self._default_port()
        if defport is None:
            return
        hosts_retry = hosts_fail = hosts_defer = hosts_total = 0
        unexpired_tried = total_tried = 0
        max_try = self.opt("hosts_max_try") or 5
        hard = self.opt("hosts_max_try_hardlimit") or 50
        expired = True
        include_ip = self._include_ip()
        hl = list(hostlist)
        self.current_hostlist = hl
        k = 0
        stopped_at: Host | None = None
        while k < len(hl):
            if unexpired_tried >= max_try or total_tried >= hard:
                stopped_at = hl[k]
                break
            host = hl[k]
            k += 1
            if host.address is None:
                if host.status == "unusable":
                    continue
                found = self._lookup_host(host, hl, k - 1)
                if found is None:
                    hosts_fail += 1
                    continue
                if found == "local":
                    for a in addrs:
                        a.basic_errno = ERRNO_HOST_IS_LOCAL
                        a.message = (f"{self.tp.name} transport found host "
                                     f"{host.name} to be local")
                    return
                host = hl[k - 1]
            hosts_total += 1
            self.vars = {"host": host.name, "host_address": host.address,
                         "host_port": str(host.port if host.port != PORT_NONE
                                          else defport)}
            self.rctx.variables.update(self.vars)
            port = host.port if host.port != PORT_NONE else defport
            pistring = "" if port == 25 else f":{port}"
            interface = None
            iface = self.opt("interface")
            if iface:
                try:
                    interface = self._interface(iface, host)
                except (ExpansionError, ExpansionForcedFail) as e:
                    _set_errno(addrs, ERRNO_EXPANDFAIL, f"failed to expand "
                               f"\"interface\" option for {self.tp.name} "
                               f"transport: {e}", DEFER, None,
                               pending_only=False)
                    return
                if interface:
                    pistring = f"{pistring}/{interface}"
            hs = self.dl.retry.check_host(
                self.first.domain, host.name, host.address or "", pistring,
                include_ip, self.dl.mid)
            if isinstance(hs, tuple):
                status, hkey, mkey = hs
            else:
                status, hkey, mkey = hs.status, hs.host_key, hs.message_key
            if status.startswith("unusable"):
                if status == "unusable":
                    expired = False
                    for a in addrs:
                        a.retry_skipped = True
                hosts_retry += 1
                continue
            expired = False
            first = _prepare(addrs, host)
            if first is None:
                break
            unexpired_tried += 1
            if unexpired_tried >= max_try:
                for h in hl[k:]:
                    if h.mx != host.mx:
                        hl.insert(k, hl.pop(hl.index(h)))
                        unexpired_tried -= 1
                        break
            total_tried += 1
            rc, message_defer = self.deliver(addrs, host, port, interface, False)
            if rc == DEFER and first.basic_errno not in (ERRNO_AUTHFAIL,
                                                         ERRNO_TLSFAILURE):
                self.write_logs(host, first.message, first.basic_errno)
            if rc == DEFER and first.basic_errno == ERRNO_TLSFAILURE and \
                    not self.smtps and \
                    self.opt("tls_tempfail_tryclear") is not False and \
                    not self.host_in("hosts_require_tls", host) and \
                    not getattr(self, "_dane", False):
                self.log(f"{first.message}: delivering unencrypted to "
                         f"H={host.name} [{host.address}] (not in "
                         "hosts_require_tls)")
                first = _prepare(addrs, host) or first
                rc, message_defer = self.deliver(addrs, host, port,
                                                 interface, True)
                if rc == DEFER and first.basic_errno != ERRNO_AUTHFAIL:
                    self.write_logs(host, first.message, first.basic_errno)
            from eximpy.deliver.retry import RF_DELETE, RF_HOST, RF_MESSAGE, add_item
            if rc == DEFER or hkey:
                key = hkey or (f"T:{host.name.lower()}:{host.address}{pistring}"
                               if include_ip else f"T:{host.name.lower()}{pistring}")
                add_item(first, key, RF_HOST | (0 if rc == DEFER else RF_DELETE))
                if rc == DEFER:
                    host.status = "unusable"
            if message_defer or mkey:
                key = mkey or ((f"T:{host.name.lower()}:{host.address}{pistring}"
                                if include_ip else f"T:{host.name.lower()}{pistring}")
                               + f":{self.dl.mid}")
                add_item(self.first, key, RF_MESSAGE | RF_HOST |
                         (0 if message_defer else RF_DELETE))
            some_deferred = rc == OK and any(a.tp_status == DEFER for a in addrs)
            if rc == ERROR or (rc == OK and not some_deferred):
                return
            if (rc == DEFER or some_deferred) and k < len(hl):
                rule = self._host_rule(host)
                if rule is None or time.time() - self.dl.msg.received_time > \
                        rule.items[-1].timeout:
                    unexpired_tried -= 1
        for a in addrs:
            if stopped_at is not None and total_tried < hard:
                a.retry_skipped = True
            if a.tp_status == DEFER and a.basic_errno in (0, -1) and \
                    not a.message:
                a.basic_errno = ERRNO_HRETRY
                dom = f" for '{a.domain}'" if a.domain else ""
                if expired:
                    dac = self.opt("delay_after_cutoff")
                    a.message = (f"all hosts{dom} have been failing for a long "
                                 "time " + ("(and retry time not reached)"
                                            if dac is not False else
                                            "and were last tried after this "
                                            "message arrived"))
                    if fallback or not a.fallback_hosts:
                        a.tp_status = FAIL
                elif hosts_retry == hosts_total:
                    a.message = f"retry time not reached for any host{dom}"
                elif hosts_fail == hosts_total:
                    a.message = f"all host address lookups{dom} failed permanently"
                elif hosts_defer == hosts_total:
                    a.message = f"all host address lookups{dom} failed temporarily"
                elif hosts_fail + hosts_defer == hosts_total:
                    a.message = f"all host address lookups{dom} failed"
                else:
                    a.message = ("some host address lookups failed and retry "
                                 "time not reached for other hosts or "
                                 f"connection limit reached{dom}")

    def _host_secure(self, host: Host) -> bool:
        """Whether the host's address came from a DNSSEC-secure lookup
        (Exim's host->dnssec == DS_YES): the router's record when it has
        one, else the address lookup redone with the DO bit -- secure when
        the AD bit is set, or the AA bit for a name in dns_trust_aa."""
        st = getattr(host, "dnssec", "unknown")
        if st in ("yes", "no"):
            return st == "yes"
        from eximpy.routers._rf import is_ip_address
        if not host.name or is_ip_address(host.name) or host.address is None:
            return False
        rtype = "AAAA" if ":" in host.address else "A"
        resp = self._dns_response(host.name, rtype)
        host.dnssec = "yes" if resp is not None and \
            self._secure(resp) else "no"
        return host.dnssec == "yes"

    def _dns_response(self, name: str, rtype: str) -> Any:
        import dns.flags
        import dns.resolver
        try:
            res = dns.resolver.Resolver()
            res.use_edns(0, dns.flags.DO, 1232)
            res.lifetime = 10
            ans = res.resolve(name, rtype, raise_on_no_answer=False)
        except Exception:  # noqa: BLE001 - any DNS failure: not secure
            return None
        return ans.response

    def _secure(self, resp: Any) -> bool:
        """Exim's dns_is_secure(): the AD bit, or the AA bit when the
        authority (the owner of the NS or SOA record in the authority
        section) is in dns_trust_aa."""
        import dns.flags
        import dns.rdatatype
        flags = resp.flags
        if flags & dns.flags.AD:
            return True
        if flags & dns.flags.AA:
            trust = self.config.main.get("dns_trust_aa")
            name = None
            for rr in resp.authority:
                if rr.rdtype in (dns.rdatatype.NS, dns.rdatatype.SOA):
                    name = rr.name.to_text(omit_final_dot=True)
                    break
            if trust and name:
                from eximpy import match as M
                ctx = self.rctx.expand_context(self.first)
                try:
                    rc, _v = M.match_isinlist(ctx, name.lower(), trust,
                                              M.MCL_DOMAIN)
                except Exception:  # noqa: BLE001
                    return False
                return rc == M.OK
        return False

    def _tlsa_lookup(self, host: Host, port: int,
                     required: bool) -> tuple[str, list[tuple[int, int, int, bytes]]]:
        """Exim's tlsa_lookup(): OK with the usable records (usages 2 and
        3), FAIL_FORCED when there are none and DANE is not required,
        DEFER or FAIL."""
        import dns.exception
        import dns.flags
        import dns.resolver
        name = f"_{port}._tcp.{host.name}"
        try:
            res = dns.resolver.Resolver()
            res.use_edns(0, dns.flags.DO, 1232)
            res.lifetime = 10
            ans = res.resolve(name, "TLSA")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ("FAIL" if required else "FAIL_FORCED"), []
        except dns.exception.Timeout:
            return DEFER, []
        except Exception:  # noqa: BLE001 - SERVFAIL and the like
            return (FAIL if required else DEFER), []
        if not self._secure(ans.response):
            self.log(f"DANE error: TLSA lookup for {host.name} not DNSSEC")
            return DEFER, []
        recs = [(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in ans
                if r.usage in (2, 3)]
        if not recs:
            return ("FAIL" if required else "FAIL_FORCED"), []
        return OK, recs

    def _host_rule(self, host: Host) -> Any:
        from eximpy.deliver.retry import find_config
        try:
            return find_config(self.config, host.name, None, 0, 0,
                               self.dl.msg.sender or "")
        except Exception:  # noqa: BLE001 - no rule
            return None

    def _include_ip(self) -> bool:
        v = self.opt("retry_include_ip_address")
        if isinstance(v, str):
            try:
                s = self.expand(v).strip().lower()
            except (ExpansionError, ExpansionForcedFail):
                return True
            return s not in ("false", "no", "")
        return v is not False

    def _default_port(self) -> int | None:
        text = self.opt("port") or ("lmtp" if self.lmtp else
                                    "smtps" if self.smtps else "smtp")
        try:
            s = self.expand(text)
        except (ExpansionError, ExpansionForcedFail) as e:
            _set_errno(self.addrs, ERRNO_EXPANDFAIL, f"failed to expand "
                       f"\"{text}\" (\"port\" option) in {self.tp.name} "
                       f"transport: {e}", DEFER, None, pending_only=False)
            return None
        s = s.strip()
        if s.isdigit():
            return int(s)
        try:
            return socket.getservbyname(s, "tcp")
        except OSError:
            _set_errno(self.addrs, -1, f"TCP port \"{s}\" is not defined for "
                       f"{self.tp.name} transport", DEFER, None,
                       pending_only=False)
            return None

    def _interface(self, text: str, host: Host) -> str | None:
        from eximpy.expand.lists import iter_list
        s = self.expand(text)
        v6 = ":" in (host.address or "")
        for item in iter_list(s):
            item = item.strip()
            if item and (":" in item) == v6:
                return item
        return None

    def _lookup_host(self, host: Host, hl: list[Host], idx: int) -> str | None:
        """Find the address(es) of a transport-supplied host; extra
        addresses are inserted after it.  None on failure, "local" when
        it is this host and allow_localhost is not set."""
        from eximpy.routers import _rf
        name = host.name
        port = host.port
        addrs: list[str] = []
        try:
            if self.opt("gethostbyname") or _rf.is_ip_address(name):
                addrs = [name] if _rf.is_ip_address(name) else \
                    _rf.find_byname(name)
            else:
                st, res = _rf.find_bydns(name, self.rctx)
                if st == "OK":
                    for _n, aa, _mx in res:
                        addrs.extend(aa)
                elif st == "FAILED":
                    addrs = _rf.find_byname(name)
                else:
                    raise OSError("again")
        except OSError:
            addrs = []
        if not addrs:
            from eximpy.deliver.retry import add_item
            add_item(self.first, f"R:{name}")
            host.status = "unusable"
            for a in self.addrs:
                if a.tp_status == DEFER:
                    a.basic_errno = ERRNO_UNKNOWNHOST
                    a.message = f"failed to lookup IP address for {name}"
            return None
        new = [Host(name=name, address=a, port=port, mx=host.mx)
               for a in addrs]
        hl[idx:idx + 1] = new
        if not self.opt("allow_localhost") and \
                any(_rf.host_is_local(self.rctx, a) for a in addrs):
            return "local"
        return "ok"

    # -- one delivery attempt (smtp_deliver) -------------------------------
    def deliver(self, addrs: list[Address], host: Host, port: int,
                interface: str | None, suppress_tls: bool) -> tuple[str, bool]:
        at = _Attempt(self, addrs, host, port, interface)
        try:
            rc = self._setup(at, suppress_tls)
            if rc != OK:
                return rc, False
            rc = self._transaction(at)
            return rc, at.message_defer
        finally:
            self._close(at)

    def _fail(self, at: _Attempt, errno_value: int, message: str | None,
              code: str, pass_message: bool = False) -> str:
        """The FAILED: step of smtp_setup_conn()."""
        more = self._has_next(at.host)
        rc = DEFER if more else (FAIL if code == "5" or
                                 errno_value == ERRNO_UTF8_FWD else DEFER)
        _set_errno(at.addrs, errno_value, message, rc,
                   None if errno_value == E.ECONNREFUSED else at.host,
                   pass_message=pass_message)
        return DEFER

    def _has_next(self, host: Host) -> bool:
        hl = self.current_hostlist
        for k, h in enumerate(hl):
            if h is host:
                return k + 1 < len(hl)
        return False

    def _check_response(self, at: _Attempt, errno_value: int, buf: str) -> tuple[int, str | None, str, bool]:
        """Exim's check_response(): (errno, message, code digit, send quit)."""
        conn = at.conn
        pl = "pipelined " if at.pipelining_active else ""
        cmd = conn.last_command if conn else "initial connection"
        if errno_value == E.ETIMEDOUT:
            m = f"SMTP timeout after {pl}{cmd}"
            if getattr(at, "transport_count", 0) > 0:
                m += f" ({at.transport_count} bytes written)"
            return errno_value, m, "4", False
        if errno_value == ERRNO_SMTPFORMAT:
            s = _printing(buf).lstrip()
            if not s:
                return errno_value, (f"Malformed SMTP reply (an empty line) in "
                                     f"response to {pl}{cmd}"), "4", False
            return errno_value, (f"Malformed SMTP reply in response to "
                                 f"{pl}{cmd}: {s}"), "4", False
        if errno_value == ERRNO_TLSFAILURE:
            return errno_value, "bad first read from TLS conn", "4", True
        if errno_value == ERRNO_UTF8_FWD:
            return errno_value, ("utf8 support required but not offered for "
                                 "forwarding"), "4", True
        if buf:
            return errno_value, (f"SMTP error from remote mail server after "
                                 f"{pl}{cmd}: {_printing(buf)}"), buf[0], True
        if errno_value in (0, E.ECONNRESET):
            return ERRNO_SMTPCLOSED, (f"Remote host closed connection in "
                                      f"response to {pl}{cmd}"), "4", False
        return errno_value, f"{at.host.name} [{at.host.address}]", "4", False

    def _setup(self, at: _Attempt, suppress_tls: bool) -> str:
        """Exim's smtp_setup_conn(): connect, greeting, EHLO, STARTTLS,
        AUTH.  OK, DEFER or FAIL (addresses' errors are set)."""
        host = at.host
        at.pipelining_active = False
        at.dane = False
        self._dane = False
        dane_required = self.host_in("hosts_require_dane", host)
        if self._host_secure(host):
            if dane_required or self.host_in("hosts_try_dane", host):
                rc, tlsa = self._tlsa_lookup(host, at.port, dane_required)
                if rc == OK:
                    at.dane = self._dane = True
                    at.tlsa = tlsa
                elif rc != "FAIL_FORCED":
                    _set_errno(at.addrs, ERRNO_DNSDEFER,
                               f"DANE error: tlsa lookup {rc}", rc, None)
                    return rc
        elif dane_required:
            _set_errno(at.addrs, ERRNO_DNSDEFER,
                       f"DANE error: {host.name} lookup not DNSSEC", FAIL, None)
            return FAIL
        if host.port == PORT_NONE:      # Exim's smtp_port_for_connect()
            host.port = at.port
        ctimeout = self.opt("connect_timeout") or 300
        fam = socket.AF_INET6 if ":" in (host.address or "") else socket.AF_INET
        sock = socket.socket(fam, socket.SOCK_STREAM)
        try:
            if at.interface:
                sock.bind((at.interface, 0))
            if self.opt("keepalive") is not False:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(ctimeout)
            sock.connect((host.address, at.port))
        except socket.timeout:
            sock.close()
            _set_errno(at.addrs, ERRNO_CONNECTTIMEOUT, None, DEFER, None)
            at.send_quit = False
            return DEFER
        except OSError as e:
            sock.close()
            _set_errno(at.addrs, e.errno or E.EIO, None, DEFER, None)
            at.send_quit = False
            return DEFER
        conn = at.conn = SmtpClient(sock)
        try:
            self.vars["sending_ip_address"], self.vars["sending_port"] = \
                [str(x) for x in sock.getsockname()[:2]]
            self.rctx.variables.update(self.vars)
        except OSError:
            pass
        ctimeout = self.opt("command_timeout") or 300
        try:
            helo = self.opt("helo_data")
            helo_data = None
            if helo is not None:
                try:
                    helo_data = self.expand(helo)
                except (ExpansionError, ExpansionForcedFail) as e:
                    helo_err = str(e)
                    helo_data = None
            else:
                helo_err = "helo_data unset"
            if self.smtps:
                ok = self._starttls(at, suppress_tls=False, smtps=True)
                if ok != OK:
                    return ok
            ok, buf = conn.read_response("2", ctimeout)
            if not ok:
                return self._response_failed(at, conn.errno, buf)
            if helo_data is None:
                _set_errno(at.addrs, ERRNO_EXPANDFAIL,
                           f"failed to expand helo_data: {helo_err}", DEFER, None)
                return DEFER
            at.helo_data = helo_data
            at.esmtp = not self.host_in("hosts_avoid_esmtp", host)
            ehlo_sent = False
            if at.esmtp:
                conn.write(f"{'LHLO' if self.lmtp else 'EHLO'} {helo_data}\r\n")
                ehlo_sent = True
                ok, buf = conn.read_response("2", ctimeout)
                if not ok:
                    if conn.errno != 0 or not buf or self.lmtp:
                        return self._response_failed(at, conn.errno, buf)
                    at.esmtp = False
                else:
                    at.ehlo = buf
            if not at.esmtp:
                ehlo_buf = buf if ehlo_sent else ""
                conn.write(f"HELO {helo_data}\r\n")
                ok, buf = conn.read_response("2", ctimeout)
                if not ok:
                    if ehlo_sent and not buf and conn.errno in (0, E.ECONNRESET):
                        _set_fail = (f"Remote host closed connection in response "
                                     f"to {conn.last_command} (EHLO response "
                                     f"was: {ehlo_buf})")
                        at.send_quit = False
                        return self._fail(at, ERRNO_SMTPCLOSED, _set_fail, "4")
                    return self._response_failed(at, conn.errno, buf)
                at.ehlo = ""
            at.peer = _ehlo_options(at.ehlo) if (at.esmtp or self.lmtp) else set()
            at.tls_offered = "STARTTLS" in at.peer
            if at.tls_offered and not suppress_tls and not self.smtps and \
                    not self.host_in("hosts_avoid_tls", host):
                conn.write("STARTTLS\r\n")
                ok, buf2 = conn.read_response("2", ctimeout)
                if not ok:
                    if conn.errno != 0 or not buf2 or (
                            buf2[0] == "4" and
                            self.opt("tls_tempfail_tryclear") is False):
                        return self._response_failed(at, conn.errno, buf2)
                else:
                    rc = self._starttls(at, suppress_tls, smtps=False)
                    if rc != OK:
                        return rc
            if conn.tls and not self.smtps:
                conn.write(f"{'LHLO' if self.lmtp else 'EHLO' if at.esmtp else 'HELO'}"
                           f" {helo_data}\r\n")
                ok, buf = conn.read_response("2", ctimeout)
                if not ok:
                    return self._response_failed(at, conn.errno, buf)
                at.ehlo = buf if at.esmtp or self.lmtp else ""
                at.peer = _ehlo_options(at.ehlo)
            elif not conn.tls and (self.smtps or at.dane or
                                   self.host_in("hosts_require_tls", host)):
                m = ("a TLS session is required, but " +
                     ("an attempt to start TLS failed" if at.tls_offered
                      else "the server did not offer TLS support"))
                return self._fail(at, ERRNO_TLSREQUIRED, m, "4")
            if at.esmtp or self.lmtp:
                if "PIPELINING" in at.peer and \
                        not self.host_in("hosts_avoid_pipelining", host):
                    at.pipelining = True
                if "CHUNKING" in at.peer and \
                        not self.host_in("hosts_try_chunking", host):
                    at.peer.discard("CHUNKING")
                if "PRDR" in at.peer and \
                        not self.host_in("hosts_try_prdr", host):
                    at.peer.discard("PRDR")
                if self.opt("size_addition") is not None and \
                        self.opt("size_addition") < 0:
                    at.peer.discard("SIZE")
                rc = self._auth(at)
                if rc != OK:
                    return rc
            at.pipelining_active = at.pipelining
            msg = self.dl.msg
            at.utf8_param = at.utf8_downcvt = False
            if getattr(msg, "smtputf8", False):
                # the transport's utf8_downconvert overrides the message's
                mode = self.opt("utf8_downconvert")
                try:
                    m = self.expand(mode).strip() if mode is not None else ""
                except (ExpansionError, ExpansionForcedFail) as e:
                    _set_errno(at.addrs, ERRNO_EXPANDFAIL, f"failed to expand "
                               f"utf8_downconvert: {e}", DEFER, None)
                    return DEFER
                mv = getattr(msg, "utf8_downconvert", 0)
                if m.startswith("1"):
                    mv = 1
                elif m.startswith("0"):
                    mv = 0
                elif m.startswith("-1"):
                    mv = -1
                offered = "SMTPUTF8" in at.peer
                if mv == 0 and not offered:
                    return self._response_failed(at, ERRNO_UTF8_FWD, "")
                at.utf8_param = offered and mv != 1
                at.utf8_downcvt = mv == 1 or not offered
            return OK
        except _SendFailed as e:
            at.send_quit = False
            return self._fail(at, conn.errno, f"send() to {host.name} "
                              f"[{host.address}] failed: {e}", "4")

    def _response_failed(self, at: _Attempt, errno_value: int, buf: str) -> str:
        errno_value, message, code, quit_ok = self._check_response(
            at, errno_value, buf)
        at.send_quit = quit_ok
        return self._fail(at, errno_value, message, code,
                          pass_message=bool(buf))

    # -- TLS ---------------------------------------------------------------
    def _tls_context(self, at: _Attempt) -> tuple[ssl.SSLContext, bool, bool]:
        """(context, verify required, verify tried)."""
        host = at.host
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ciphers = self.opt("tls_require_ciphers")
        if ciphers:
            ctx.set_ciphers(self.expand(ciphers))
        cert = self.opt("tls_certificate")
        if cert:
            certf = self.expand(cert)
            keyf = self.opt("tls_privatekey")
            keyf = self.expand(keyf) if keyf else None
            if certf:
                ctx.load_cert_chain(certf, keyf or None)
        required = self.host_in("tls_verify_hosts", host)
        tried = required or self.host_in("tls_try_verify_hosts", host)
        return ctx, required, tried

    def _verify(self, der: bytes | None, host: Host, sni: str | None) -> tuple[bool, str]:
        """Verify the server certificate against tls_verify_certificates
        (and, under tls_verify_cert_hostnames, the host name)."""
        if not der:
            return False, "no certificate"
        from cryptography import x509
        from cryptography.x509 import verification as V
        from cryptography.hazmat.primitives import serialization  # noqa: F401
        text = self.opt("tls_verify_certificates")
        try:
            where = self.expand(text) if text else "system"
        except (ExpansionError, ExpansionForcedFail) as e:
            return False, str(e)
        roots: list[Any] = []
        paths: list[str] = []
        if where == "system":
            paths = [ssl.get_default_verify_paths().cafile or
                     "/etc/ssl/certs/ca-certificates.crt"]
        elif os.path.isdir(where):
            paths = [os.path.join(where, f) for f in sorted(os.listdir(where))]
        else:
            paths = [where]
        for p in paths:
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            try:
                roots.extend(x509.load_pem_x509_certificates(data))
            except ValueError:
                try:
                    roots.append(x509.load_der_x509_certificate(data))
                except ValueError:
                    continue
        leaf = x509.load_der_x509_certificate(der)
        if not roots:
            return False, "no trusted certificates"
        store = V.Store(roots)
        check_name = self.host_in("tls_verify_cert_hostnames", host)
        builder = V.PolicyBuilder().store(store)
        try:
            if check_name:
                import ipaddress
                name = host.name
                try:
                    subject: Any = x509.IPAddress(ipaddress.ip_address(name))
                except ValueError:
                    subject = x509.DNSName(name)
                builder.build_server_verifier(subject).verify(leaf, [])
            else:
                # no name check: verify as a server certificate for a name
                # it carries itself
                subject = _any_subject(leaf)
                if subject is None:
                    return False, "certificate invalid"
                builder.build_server_verifier(subject).verify(leaf, [])
        except Exception as e:  # noqa: BLE001 - any verification failure
            # a self-signed trusted leaf: Store holds it, accept when equal
            if any(r.fingerprint(leaf.signature_hash_algorithm or
                                 _sha256()) == leaf.fingerprint(
                       leaf.signature_hash_algorithm or _sha256())
                   for r in roots) and not check_name:
                return True, ""
            return False, "certificate invalid"
        return True, ""

    def _starttls(self, at: _Attempt, suppress_tls: bool, smtps: bool) -> str:
        conn = at.conn
        assert conn is not None
        host = at.host
        try:
            ctx, required, tried = self._tls_context(at)
            sni_opt = self.opt("tls_sni")
            sni = self.expand(sni_opt) if sni_opt else None
        except (ExpansionError, ExpansionForcedFail, ssl.SSLError, OSError) as e:
            err = getattr(e, "strerror", None) or str(e)
            return self._tls_failed(at, f"TLS session: {err}")
        if at.dane:
            sni = self.first.domain          # DANE: the SNI is the domain
        elif tried:
            # Exim loads the trust anchors before the handshake: a missing
            # file or directory fails the TLS session (with no error text)
            text = self.opt("tls_verify_certificates")
            try:
                where = self.expand(text) if text else "system"
            except (ExpansionError, ExpansionForcedFail):
                where = "system"
            if where and where != "system" and not os.path.exists(where):
                self.log(f"could not stat '{where}' (tls_verify_certificates): "
                         f"{os.strerror(E.ENOENT)}")
                return self._tls_failed(at, "TLS session: NULL")
        try:
            conn.sock.settimeout(self.opt("command_timeout") or 300)
            s = ctx.wrap_socket(conn.sock, server_hostname=sni or None)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or str(e)
            if at.dane:
                self.log(f"DANE attempt failed; TLS connection to {host.name} "
                         f"[{host.address}]: (SSL_connect): {reason}")
            return self._tls_failed(at, f"TLS session: (SSL_connect): {reason}")
        conn.sock = s
        conn.tls = True
        from eximpy.smtp.tls import TlsInfo
        info = TlsInfo.from_ssl(s)
        at.tls_info = info
        verified = False
        if at.dane:
            if not _dane_match(at.tlsa, s.getpeercert(binary_form=True)):
                # (GnuTLS's DANE status text, as Debian's Exim logs it)
                why = ("(certificate verification failed): Verification "
                       "failed. The certificate differs. ")
                self.log(f"DANE attempt failed; TLS connection to {host.name} "
                         f"[{host.address}]: {why}")
                try:
                    s.close()
                except OSError:
                    pass
                return self._tls_failed(at, f"TLS session: {why}")
            for a in at.addrs:
                if a.tp_status == PENDING_DEFER:
                    a.cipher = info.cipher
                    a.peerdn = info.peerdn
                    a.cert_verified = True
                    a.dane_verified = True
            return OK
        if tried:
            verified, why = self._verify(s.getpeercert(binary_form=True), host, sni)
            if required and not verified:
                try:
                    s.close()
                except OSError:
                    pass
                at.send_quit = False
                return self._tls_failed(at, f"TLS session: (certificate "
                                        f"verification failed): {why}")
        at.cert_verified = verified
        for a in at.addrs:
            if a.tp_status == PENDING_DEFER:
                a.cipher = info.cipher
                a.peerdn = info.peerdn
                a.cert_verified = verified
        return OK

    def _tls_failed(self, at: _Attempt, message: str) -> str:
        at.send_quit = False
        return self._fail(at, ERRNO_TLSFAILURE, message, "4")

    # -- AUTH --------------------------------------------------------------
    def _auth(self, at: _Attempt) -> str:
        host = at.host
        require = self.host_in("hosts_require_auth", host)
        fail_reason = "server did not advertise AUTH support"
        names = at.peer_auth if hasattr(at, "peer_auth") else _auth_names(at.ehlo)
        if at.esmtp and names is not None:
            if require or self.host_in("hosts_try_auth", host):
                fail_reason = "no common mechanisms were found"
                for inst in getattr(self.config, "authenticators", []) or []:
                    if at.authenticated:
                        break
                    drv = _auth_driver(inst)
                    if drv is None or not drv.client_configured():
                        continue
                    cond = _opt(inst, "client_condition")
                    if cond:
                        from eximpy.expand import expand_check_condition
                        try:
                            if not expand_check_condition(
                                    cond, self.rctx.expand_context(self.first, **self.vars)):
                                continue
                        except Exception:  # noqa: BLE001 - treat as false
                            continue
                    if drv.public_name.upper() not in names:
                        continue
                    fail_reason = "authentication attempt(s) failed"
                    rc = self._try_authenticator(at, inst, drv)
                    if rc != OK:
                        return rc
        if require and not at.authenticated:
            _set_errno(at.addrs, ERRNO_AUTHFAIL,
                       f"authentication required but {fail_reason}", DEFER, None)
            return DEFER
        return OK

    def _try_authenticator(self, at: _Attempt, inst: Any, drv: Any) -> str:
        conn = at.conn
        host = at.host
        cl = _AuthConn(self, at)
        try:
            rc = drv.client(cl)
        except _SendFailed as e:
            return self._fail(at, conn.errno, f"send() to {host.name} "
                              f"[{host.address}] failed: {e}", "4")
        if rc == "OK":
            at.authenticated = True
            at.authenticator = inst.name
            sid = _opt(inst, "client_set_id")
            if sid:
                try:
                    at.auth_id = self.rctx.expand(sid, self.first, **self.vars,
                                                  **cl.auth_vars())
                except (ExpansionError, ExpansionForcedFail):
                    at.auth_id = None
            return OK
        if rc == "FAIL_SEND":
            return self._fail(at, conn.errno, f"send() to {host.name} "
                              f"[{host.address}] failed: "
                              f"{os.strerror(conn.errno or E.EPIPE)}", "4")
        if rc == "FAIL":
            if conn.errno != 0 or cl.buffer[:1] != "5":
                return self._response_failed(at, conn.errno, cl.buffer)
            self.log(f"{inst.name} authenticator failed H={host.name} "
                     f"[{host.address}] {cl.buffer}")
            return OK
        if rc == "CANCELLED":
            if cl.buffer:
                self.log(f"{inst.name} authenticator cancelled authentication "
                         f"H={host.name} [{host.address}] {cl.buffer}")
            return OK
        # ERROR
        _set_errno(at.addrs, ERRNO_AUTHPROB, cl.buffer, DEFER, None)
        return DEFER

    # -- MAIL / RCPT / DATA --------------------------------------------------
    def _mail_options(self, at: _Attempt, todo: list[Address]) -> str | None:
        msg = self.dl.msg
        p = []
        size = msg.header_size + len(self.tctx.body) + 1
        if size > 0 and "SIZE" in at.peer:
            n = size + msg.linecount + (self.opt("size_addition") or 0)
            p.append(f" SIZE={n}")
        # PRDR when offered and there are at least two recipients
        at.prdr_active = "PRDR" in at.peer and len(todo) >= 2
        if at.prdr_active:
            p.append(" PRDR")
        if getattr(at, "utf8_param", False):
            p.append(" SMTPUTF8")
        lasthop = all(a.dsn_flags & RF_DSNLASTHOP for a in todo)
        if "DSN" in at.peer and not lasthop:
            if msg.dsn_ret == 2:
                p.append(" RET=HDRS")
            elif msg.dsn_ret == 1:
                p.append(" RET=FULL")
            if msg.dsn_envid:
                p.append(f" ENVID={msg.dsn_envid}")
        local_as = getattr(msg, "auth_sender", None)
        aso = self.opt("authenticated_sender")
        if aso:
            try:
                new = self.expand(aso)
            except ExpansionForcedFail:
                new = None
            except ExpansionError as e:
                _set_errno(at.addrs, ERRNO_EXPANDFAIL, f"failed to expand "
                           f"authenticated_sender: {e}", DEFER, None)
                return None
            if new:
                local_as = new
        if (at.authenticated or self.opt("authenticated_sender_force")) and \
                local_as:
            p.append(f" AUTH={xtext(local_as)}")
            at.auth_sender = local_as
        return "".join(p)

    def _rcpt_options(self, at: _Attempt, a: Address) -> str:
        p = []
        if "DSN" in at.peer and not a.dsn_flags & RF_DSNLASTHOP:
            if a.dsn_flags & RF_DSNFLAGS:
                p.append(" NOTIFY=" + ",".join(
                    n for bit, n in _RF_NAMES if a.dsn_flags & bit))
            if a.dsn_orcpt:
                p.append(f" ORCPT={a.dsn_orcpt}")
        return "".join(p)

    def _rcpt_address(self, a: Address, at: "_Attempt | None" = None) -> str:
        if self.opt("rcpt_include_affixes"):
            r = f"{a.prefix or ''}{a.local_part}{a.suffix or ''}@{a.domain}"
        else:
            r = f"{a.local_part}@{a.domain}"
        at = at or getattr(self, "_at", None)
        if at is not None and getattr(at, "utf8_downcvt", False):
            r = to_alabel(r)
        return r

    def _transaction(self, at: _Attempt) -> str:
        """From MAIL FROM to the final response, for up to max_rcpt
        pending addresses at a time on this connection."""
        conn = at.conn
        assert conn is not None
        host = at.host
        ctimeout = self.opt("command_timeout") or 300
        ftimeout = self.opt("final_timeout") or 600
        max_rcpt = self.opt("max_rcpt") or 999999
        seq = 0
        need_rset = False
        while True:
            todo = [a for a in at.addrs if a.tp_status == PENDING_DEFER][:max_rcpt]
            if not todo:
                return OK
            seq += 1
            if seq > 1 and need_rset:
                try:
                    conn.write("RSET\r\n")
                except _SendFailed:
                    return self._send_failed(at, conn.errno)
                ok, buf = conn.read_response("2", ctimeout)
                if not ok:
                    return self._response_failed_t(at, conn.errno, buf)
            need_rset = True
            at.transport_count = 0
            at.pipelining_active = at.pipelining
            opts = self._mail_options(at, todo)
            if opts is None:
                return ERROR
            sender = getattr(self.first, "return_path", None) or \
                self.dl.msg.sender or ""
            self._at = at
            if getattr(at, "utf8_downcvt", False):
                sender = to_alabel(sender)
                self.first.utf8_downcvt = True
            at.return_path = sender
            at.mail_done = False
            try:
                # MAIL
                conn.write(f"MAIL FROM:<{sender}>{opts}\r\n",
                           flush=not at.pipelining)
                mail_cmd = conn.last_command
                pending_mail = True
                if not at.pipelining:
                    ok, buf = conn.read_response("2", ctimeout)
                    if not ok:
                        return self._mail_failed(at, conn.errno, buf, mail_cmd)
                    pending_mail = False
                good = False
                completed = False
                sent_rcpt: list[Address] = []
                for a in todo:
                    conn.write(f"RCPT TO:<{self._rcpt_address(a)}>"
                               f"{self._rcpt_options(at, a)}\r\n",
                               flush=not at.pipelining)
                    sent_rcpt.append(a)
                    if not at.pipelining:
                        r = self._sync(at, pending_mail, [a], mail_cmd)
                        if isinstance(r, str):
                            return r
                        good |= bool(r & 1)
                        completed |= bool(r & 3)
                        sent_rcpt = []
                chunking = "CHUNKING" in at.peer
                data = None
                if chunking or at.pipelining or good:
                    data, derr = self._message_data(at, todo, not chunking)
                    if data is None:
                        conn.flush()
                        return self._data_setup_failed(at, derr)
                if not chunking:
                    if good or at.pipelining:
                        conn.write("DATA\r\n")
                        r = self._sync(at, pending_mail, sent_rcpt, mail_cmd,
                                       pending_data=1 if good else -1)
                        if isinstance(r, str):
                            return r
                        good |= bool(r & 1)
                        data_cmd = "DATA"
                        at.pipelining_active = False
                        if not good:
                            continue
                        # the body, dot-stuffed
                        conn.last_command = "sending data block"
                        try:
                            conn.sock.settimeout(self.opt("data_timeout") or 300)
                            conn.sock.sendall(data)
                            at.transport_count = len(data)
                        except socket.timeout:
                            return self._after_data_error(
                                at, E.ETIMEDOUT, "", "sending data block")
                        except OSError as e:
                            return self._send_failed(at, e.errno or E.EPIPE)
                    else:
                        continue
                else:
                    if not good and not at.pipelining:
                        continue
                    conn.write(f"BDAT {len(data)} LAST\r\n", flush=False)
                    data_cmd = conn.last_command
                    conn.write_raw(data)
                    conn.last_command = "sending data block"
                    try:
                        conn.sock.settimeout(self.opt("data_timeout") or 300)
                        conn.flush()
                        at.transport_count = len(data)
                    except _SendFailed:
                        return self._send_failed(at, conn.errno)
                    if at.pipelining:
                        r = self._sync(at, pending_mail, sent_rcpt, mail_cmd)
                        if isinstance(r, str):
                            return r
                        good |= bool(r & 1)
                    if not good:
                        conn.read_response("2", ctimeout)
                        continue
                conn.last_command = "end of data"
                if self.lmtp:
                    return self._lmtp_results(at, ftimeout, data_cmd)
                if at.prdr_active:
                    ok, buf = conn.read_response("3", ftimeout)
                    if not ok and conn.errno == 0 and buf[:1] == "2":
                        at.prdr_active = False        # a plain final answer
                        ok = True
                    elif not ok:
                        err = conn.errno
                        if err == 0 and buf[:1] == "4":
                            err = ERRNO_DATA4XX
                            self.first.more_errno |= _code2(buf) << 8
                        return self._after_data_error(at, err, buf,
                                                      "end of data")
                    else:
                        rc = self._prdr_results(at, ftimeout, data_cmd, seq,
                                                chunking)
                        if rc is not None:
                            return rc
                        need_rset = False
                        continue
                else:
                    ok, buf = conn.read_response("2", ftimeout)
                if not ok:
                    if conn.errno == 0 and buf[:1] == "4":
                        self.first.more_errno |= _code2(buf) << 8
                        return self._after_data_error(at, ERRNO_DATA4XX, buf,
                                                      "end of data")
                    return self._after_data_error(at, conn.errno, buf,
                                                  "end of data")
                need_rset = False
                now = time.time()
                conf = _printing(buf)
                flag = "="
                for a in at.addrs:
                    if a.tp_status != PENDING_OK:
                        continue
                    a.tp_status = OK
                    a.host_used = host
                    a.delivery_time = now - at.start
                    a.log_flag = flag
                    a.message = conf
                    a.pipelining_used = at.pipelining
                    a.chunking_used = chunking
                    a.authenticator = at.authenticator
                    a.auth_id = at.auth_id
                    a.auth_sndr = at.auth_sender
                    a.sequence = seq
                    a.transport_count = at.transport_count
                    a.sending_ip = self.vars.get("sending_ip_address")
                    a.sending_port = self.vars.get("sending_port")
                    flag = "-"
                    self.dl._jnl_record(a)
            except _SendFailed:
                return self._send_failed(at, conn.errno)

    def _prdr_results(self, at: _Attempt, ftimeout: float, data_cmd: str,
                      seq: int, chunking: bool) -> str | None:
        """After "353": one answer per accepted recipient, then the overall
        answer, appended to each success's confirmation (Exim's PRDR
        handling in smtp_deliver()).  None when the transaction is done."""
        conn = at.conn
        host = at.host
        now = time.time()
        flag = "="
        done: list[Address] = []
        prdr_deferred: list[Address] = []
        for a in at.addrs:
            if a.tp_status != PENDING_OK:
                continue
            ok, buf = conn.read_response("2", ftimeout)
            if not ok:
                if conn.errno != 0 or not buf:
                    return self._after_data_error(at, conn.errno, buf,
                                                  "end of data")
                a.message = f"PRDR error after {data_cmd}: {_printing(buf)}"
                a.pass_message = True
                if buf[0] == "5":
                    a.tp_status = FAIL
                else:
                    # (Exim sets the global errno here, not the address's:
                    # its deferral line says "defer (0)")
                    a.tp_status = DEFER
                    a.basic_errno = 0
                    a.more_errno |= _code2(buf) << 8
                    prdr_deferred.append(a)
                continue
            a.tp_status = OK
            a.host_used = host
            a.delivery_time = now - at.start
            a.log_flag = flag
            a.message = _printing(buf)
            a.pipelining_used = at.pipelining
            a.chunking_used = chunking
            a.prdr_used = True
            a.authenticator = at.authenticator
            a.auth_id = at.auth_id
            a.auth_sndr = at.auth_sender
            a.sequence = seq
            a.transport_count = at.transport_count
            a.sending_ip = self.vars.get("sending_ip_address")
            a.sending_port = self.vars.get("sending_port")
            flag = "-"
            done.append(a)
        ok, buf = conn.read_response("2", ftimeout)
        if not ok:
            err = conn.errno
            if err == 0 and buf[:1] == "4":
                err = ERRNO_DATA4XX
                self.first.more_errno |= _code2(buf) << 8
            for a in done:
                a.tp_status = PENDING_OK
            return self._after_data_error(at, err, buf, "end of data")
        overall = _printing(buf)
        for a in done:
            a.message = f"{a.message}\\n{overall}"
            self.dl._jnl_record(a)
        from eximpy.deliver.retry import RF_HOST, RF_MESSAGE, add_item
        for a in prdr_deferred:
            # (Exim passes the flags -2: every bit but "delete")
            add_item(a, _address_retry_key(a), RF_HOST | RF_MESSAGE)
        return None

    def _lmtp_results(self, at: _Attempt, ftimeout: float, data_cmd: str) -> str:
        conn = at.conn
        flag = "="
        for a in at.addrs:
            if a.tp_status != PENDING_OK:
                continue
            ok, buf = conn.read_response("2", ftimeout)
            if not ok:
                if conn.errno != 0 or not buf:
                    return self._after_data_error(at, conn.errno, buf,
                                                  "end of data")
                a.message = (f"LMTP error after {data_cmd}: "
                             f"{_printing(buf)}")
                a.pass_message = True
                if buf[0] == "5":
                    a.tp_status = FAIL
                else:
                    # (Exim sets the global errno: "defer (0)")
                    a.tp_status = DEFER
                    a.basic_errno = 0
                    a.more_errno |= _code2(buf) << 8
                    from eximpy.deliver.retry import add_item
                    add_item(a, _address_retry_key(a))
                continue
            a.tp_status = OK
            a.host_used = at.host
            a.message = _printing(buf)
            a.delivery_time = time.time() - at.start
            a.sequence = 1
            a.transport_count = at.transport_count
            a.sending_ip = self.vars.get("sending_ip_address")
            a.sending_port = self.vars.get("sending_port")
            a.log_flag = flag
            a.authenticator = at.authenticator
            a.auth_id = at.auth_id
            a.pipelining_used = at.pipelining
            flag = "-"
            self.dl._jnl_record(a)
        return OK

    def _sync(self, at: _Attempt, pending_mail: bool, rcpts: list[Address],
              mail_cmd: str, pending_data: int = 0) -> int | str:
        """Exim's sync_responses(): read the MAIL (if pending), RCPT and
        DATA responses.  Returns the 1/2 bits (2xx seen, 5xx seen), or a
        final transport result string after a MAIL/DATA/I/O error."""
        conn = at.conn
        ctimeout = self.opt("command_timeout") or 300
        conn.flush()
        yield_ = 0
        if pending_mail and not at.mail_done:
            ok, buf = conn.read_response("2", ctimeout)
            if not ok:
                # discard the rest
                return self._mail_failed(at, conn.errno, buf, mail_cmd,
                                         discard=len(rcpts) +
                                         (1 if pending_data else 0))
            at.mail_done = True
        for a in rcpts:
            a.host_used = at.host
            ok, buf = conn.read_response("2", ctimeout)
            if ok:
                yield_ |= 1
                a.tp_status = PENDING_OK
                continue
            if conn.errno == ERRNO_TLSFAILURE:
                return self._response_failed_t(at, conn.errno, buf)
            if conn.errno == E.ETIMEDOUT:
                m = f"SMTP timeout after RCPT TO:<{self._rcpt_address(a)}>"
                _set_errno(at.addrs, E.ETIMEDOUT, m, DEFER, None)
                from eximpy.deliver.retry import add_item
                add_item(a, _address_retry_key(a))
                at.send_quit = False
                return OK
            if conn.errno != 0 or not buf:
                conn.last_command = f"RCPT TO:<{self._rcpt_address(a)}>"
                return self._response_failed_t(at, conn.errno, buf)
            a.message = (f"SMTP error from remote mail server after RCPT "
                         f"TO:<{self._rcpt_address(a)}>: {_printing(buf)}")
            a.pass_message = True
            self.msglog(f"H={at.host.name} [{at.host.address}] {a.message}")
            if buf[0] == "5":
                a.tp_status = FAIL
                yield_ |= 2
            else:
                a.tp_status = DEFER
                a.basic_errno = ERRNO_RCPT4XX
                a.more_errno |= _code2(buf) << 8
                if self._has_next(at.host):
                    if "outgoing_port" in self.dl.sel:
                        self.log(f"H={at.host.name} [{at.host.address}]:"
                                 f"{at.port} {a.message}")
                    else:
                        self.log(f"H={at.host.name} [{at.host.address}]: "
                                 f"{a.message}")
                from eximpy.deliver.retry import add_item
                key = _address_retry_key(a)
                if self.opt("address_retry_include_sender") is not False:
                    key = f"{key}:<{self.dl.msg.sender or ''}>"
                add_item(a, key)
        if pending_data:
            ok, buf = conn.read_response("3", ctimeout)
            if not ok:
                if pending_data > 0 or yield_ & 1:
                    conn.last_command = "DATA"
                    err = conn.errno
                    if err == 0 and buf[:1] == "4":
                        err = ERRNO_DATA4XX
                        self.first.more_errno |= _code2(buf) << 8
                    return self._after_data_error(at, err, buf, "DATA")
        return yield_

    def _response_failed_t(self, at: _Attempt, errno_value: int, buf: str) -> str:
        """RESPONSE_FAILED: in smtp_deliver() (after the set-up)."""
        return self._after_data_error(at, errno_value, buf,
                                      at.conn.last_command if at.conn else "")

    def _mail_failed(self, at: _Attempt, errno_value: int, buf: str,
                     mail_cmd: str, discard: int = 0) -> str:
        conn = at.conn
        if errno_value == 0 and buf:
            if buf[0] == "4":
                errno_value = ERRNO_MAIL4XX
                self.first.more_errno |= _code2(buf) << 8
            for _ in range(discard):
                ok, b = conn.read_response("2", self.opt("command_timeout") or 300)
                if not ok and (conn.errno != 0 or not b):
                    break
        for a in at.addrs:
            if a.tp_status == PENDING_DEFER:
                a.host_used = at.host
        conn.last_command = mail_cmd
        return self._after_data_error(at, errno_value, buf, mail_cmd)

    def _send_failed(self, at: _Attempt, err: int) -> str:
        host = at.host
        at.send_quit = False
        _set_errno(at.addrs, err, f"send() to {host.name} [{host.address}] "
                   f"failed: {os.strerror(err or E.EPIPE)}", DEFER, host)
        return DEFER

    def _data_setup_failed(self, at: _Attempt, message: str | None) -> str:
        _set_errno(at.addrs, ERRNO_CHHEADER_FAIL, message, DEFER, at.host)
        return ERROR

    def _after_data_error(self, at: _Attempt, errno_value: int, buf: str,
                          command: str) -> str:
        """The FAILED: step of smtp_deliver(): message errors (4xx/5xx
        after MAIL, DATA or ".", timeouts after MAIL or "."), else a
        deferral of the whole connection."""
        conn = at.conn
        if conn is not None:
            conn.last_command = command
        save_errno, message, code, quit_ok = self._check_response(
            at, errno_value, buf)
        at.send_quit = at.send_quit and quit_ok
        if save_errno in (0, ERRNO_MAIL4XX, ERRNO_DATA4XX):
            message_error = True
        elif save_errno == E.ETIMEDOUT:
            message_error = command.startswith("MAIL") or command.startswith("end ")
        elif save_errno == ERRNO_SMTPCLOSED:
            message_error = command.startswith("end ")
        else:
            message_error = False
        rc = OK
        if message_error:
            if code == "5":
                set_rc = FAIL
            else:
                set_rc = DEFER
                if save_errno > 0:
                    message = f"{message}: {os.strerror(save_errno)}"
                first = next((a for a in at.addrs
                              if a.tp_status == PENDING_DEFER), None)
                self.write_logs(at.host, message,
                                first.basic_errno if first else 0)
                at.message_defer = True
        else:
            set_rc = DEFER
            rc = DEFER
        _set_errno(at.addrs, save_errno, message, set_rc, at.host,
                   pending_only=True, pass_message=bool(buf))
        return rc

    def _message_data(self, at: _Attempt, todo: list[Address],
                      dot: bool) -> tuple[bytes | None, str | None]:
        from eximpy.transports._write import message_bytes
        data, err = message_bytes(self.tp, todo[0], self.tctx, prefix=None,
                                  suffix=None, check_string=None,
                                  escape_string=None,
                                  return_path=getattr(at, "return_path", "")
                                  or "")
        if data is None:
            return None, err
        if not data.endswith(b"\n"):
            data += b"\n"
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if dot:
            if data.startswith(b"."):
                data = b"." + data
            data = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        return data, None

    def _close(self, at: _Attempt) -> None:
        conn = at.conn
        if conn is None:
            return
        try:
            if at.send_quit:
                try:
                    conn.write("QUIT\r\n")
                    conn.read_response("2", 1)
                except (_SendFailed, OSError):
                    pass
            if conn.tls:
                try:
                    conn.sock.settimeout(1)
                    conn.sock.unwrap()
                except (OSError, ValueError, ssl.SSLError):
                    pass
        finally:
            conn.close()


class _AuthConn:
    """What an authenticator's client() is given (Exim passes the smtp
    context): write(), read(), expand(), the last response in
    ``buffer``, and the $auth<n> values collected."""

    def __init__(self, run: _TransportRun, at: _Attempt) -> None:
        self.run = run
        self.at = at
        self.buffer = ""
        self.items: list[str] = []
        self.timeout = run.opt("command_timeout") or 300
        self.host = at.host

    def write(self, line: str, secret: bool = False) -> None:
        """Send one line (CRLF added); raises on a send failure."""
        assert self.at.conn is not None
        self.at.conn.write(line + "\r\n",
                           shown=line.split(" ")[0] + " ****" if secret else None)

    def read(self, okdigit: str) -> bool:
        assert self.at.conn is not None
        ok, self.buffer = self.at.conn.read_response(okdigit, self.timeout)
        return ok

    @property
    def errno(self) -> int:
        return self.at.conn.errno if self.at.conn else 0

    def expand(self, text: str) -> str:
        return self.run.rctx.expand(text, self.run.first, **self.run.vars,
                                    **self.auth_vars())

    def auth_vars(self) -> dict[str, str]:
        return {f"auth{k + 1}": v for k, v in enumerate(self.items)}


def _auth_driver(inst: Any) -> Any:
    info = getattr(inst, "info", None)
    factory = getattr(info, "factory", None)
    if factory is None:
        try:
            from eximpy.drivers.registry import AUTHS
            factory = AUTHS.get(inst.driver).factory  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001
            return None
    try:
        return factory(inst)
    except Exception:  # noqa: BLE001
        return None


def _dane_match(recs: list[tuple[int, int, int, bytes]], der: bytes | None) -> bool:
    """Whether the server certificate matches a DANE-EE (3 x x) record.
    DANE-TA (2 x x) needs the server's chain, which the ssl module of
    Python 3.11 does not give: such records never match here."""
    if not der:
        return False
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    for usage, selector, mtype, data in recs:
        if usage != 3:
            continue
        blob = der if selector == 0 else spki
        if mtype == 1:
            blob = hashlib.sha256(blob).digest()
        elif mtype == 2:
            blob = hashlib.sha512(blob).digest()
        if blob == data:
            return True
    return False


def to_alabel(address: str) -> str:
    """Exim's string_address_utf8_to_alabel(): a non-ASCII local part as
    "xn--" + punycode, a non-ASCII domain as IDNA A-labels."""
    if address.isascii():
        return address
    lp, at, dom = address.rpartition("@")
    if not at:
        lp, dom = address, ""

    def label(x: str) -> str:
        return x if x.isascii() else "xn--" + x.encode("punycode").decode("ascii")
    out = label(lp) if lp else ""
    if dom:
        out += "@" + ".".join(label(p) for p in dom.split("."))
    return out


def _log_alabel(address: str) -> str:
    """The address as Exim 4.96's delivery_log() writes a down-converted
    one: it converts the domain with the local-part function, so a
    non-ASCII domain becomes one "xn--" label ("user@xn--bcher.example-wob")."""
    lp, at, dom = address.rpartition("@")
    if not at:
        return address

    def label(x: str) -> str:
        return x if x.isascii() else "xn--" + x.encode("punycode").decode("ascii")
    return f"{label(lp)}@{label(dom)}"


def _any_subject(leaf: Any) -> Any:
    """A DNS name or IP address the certificate is valid for (from its
    subjectAltName), for verifying it without a host name check."""
    from cryptography import x509
    try:
        san = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for n in san:
        if isinstance(n, (x509.DNSName, x509.IPAddress)):
            return n
    return None


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes
    return hashes.SHA256()


def _code2(buf: str) -> int:
    try:
        return int(buf[1]) * 10 + int(buf[2])
    except (IndexError, ValueError):
        return 0


def _address_retry_key(a: Address) -> str:
    return getattr(a, "address_retry_key", None) or f"R:{a.local_part}@{a.domain}"


def _errstr(err: int) -> str:
    """Exim's exim_errstr()."""
    if err > 0:
        return os.strerror(err)
    return {ERRNO_SMTPCLOSED: "SMTP connection closed",
            ERRNO_SMTPFORMAT: "SMTP format error"}.get(err, f"error {err}")


def _ehlo_options(buf: str) -> set[str]:
    """The extension keywords of an EHLO response (Exim's regexes look
    for "\\n250[ -]KEYWORD" on continuation lines)."""
    out: set[str] = set()
    for line in buf.split("\n")[1:]:
        if len(line) > 4 and line[:3] == "250" and line[3] in " -":
            kw = line[4:].split()
            if kw:
                out.add(kw[0].upper())
    return out


def _auth_names(buf: str) -> set[str] | None:
    for line in buf.split("\n")[1:]:
        if len(line) > 4 and line[:3] == "250" and line[3] in " -":
            parts = line[4:].split()
            if parts and parts[0].upper() in ("AUTH", "AUTH=") :
                return {p.upper() for p in parts[1:]}
            if parts and parts[0].upper().startswith("AUTH="):
                return {parts[0][5:].upper()} | {p.upper() for p in parts[1:]}
    return None


def _prepare(addrs: list[Address], host: Host) -> Address | None:
    """Exim's prepare_addresses(): DEFER -> PENDING_DEFER, errors cleared."""
    first = None
    for a in addrs:
        if a.tp_status == DEFER:
            if first is None:
                first = a
            a.tp_status = PENDING_DEFER
            a.basic_errno = 0
            # 'M' or 'A': how the host was found (retry rules such as
            # refused_MX / timeout_A look at this)
            a.more_errno = ord("M") if host.mx >= 0 else ord("A")
            a.message = None
            a.cipher = None
            a.peerdn = None
            a.cert_verified = False
            a.dane_verified = False
            a.prdr_used = False
    return first


def _set_errno(addrs: list[Address], errno_value: int, message: str | None,
               rc: str, host: Host | None, pending_only: bool = True,
               pass_message: bool = False) -> None:
    """Exim's set_errno(): every address still in play gets the error;
    ``pass_message``: the text is the server's, so bounces show it
    (af_pass_message)."""
    more = 0
    if errno_value == ERRNO_CONNECTTIMEOUT:
        errno_value = E.ETIMEDOUT
        more = RTEF_CTOUT
    for a in addrs:
        st = getattr(a, "tp_status", DEFER)
        if st not in (PENDING_DEFER, PENDING_OK) and \
                (pending_only or st != DEFER):
            continue
        a.basic_errno = errno_value
        a.more_errno = (a.more_errno or 0) | more
        if message is not None:
            a.message = message
        a.tp_status = rc
        if pass_message:
            a.pass_message = True
        if host is not None:
            a.host_used = host


# ----------------------------------------------------------------------
# Log lines (deliver.c delivery_log, deferral_log, failure_log)

def _hostlog(sel: Any, a: Address) -> str:
    h = a.host_used
    g = f" H={h.name}"
    if "dnssec" in sel and getattr(h, "dnssec", "") == "yes":
        g += " DS"
    g += f" [{h.address}]"
    if "outgoing_port" in sel:
        g += f":{h.port if h.port != PORT_NONE else 25}"
    ip = getattr(a, "sending_ip", None)
    if ip and "incoming_interface" in sel and "outgoing_interface" in sel:
        g += f" I=[{ip}]"
        if "outgoing_port" in sel:
            g += f":{getattr(a, 'sending_port', 0)}"
    return g


def _tlslog(sel: Any, a: Address) -> str:
    g = ""
    cipher = getattr(a, "cipher", None)
    if cipher and "tls_cipher" in sel:
        g += f" X={cipher}"
    if cipher and "tls_certificate_verified" in sel:
        g += " CV=" + (("dane" if getattr(a, "dane_verified", False) else "yes")
                       if getattr(a, "cert_verified", False) else "no")
    dn = getattr(a, "peerdn", None)
    if dn and "tls_peerdn" in sel:
        g += f' DN="{_printing(dn)}"'
    return g


def _c_quote(s: str) -> str:
    out = []
    for ch in s[:1024]:
        if ch in '"\\':
            out.append("\\")
        out.append(ch)
    return '"' + "".join(out) + '"'


def with_confirmation(sel: Any, res: Any, line: str) -> str:
    """A local delivery line with the C= an lmtp transport's result
    carries (Exim logs the LMTP confirmation under smtp_confirmation)."""
    conf = getattr(res, "confirmation", None)
    if conf is None and getattr(res, "status", None) == OK:
        # from a local-delivery child: the lmtp transport's confirmation
        # comes back as user_message (no other transport sets it on OK)
        conf = getattr(res, "user_message", None)
    if conf and "smtp_confirmation" in sel:
        return line + " C=" + _c_quote(conf)
    return line


def delivered_line(dl: Any, a: Address, shown: str, original: str | None) -> str:
    sel = dl.sel
    g = [f"{getattr(a, 'log_flag', '=')}> {shown}"]
    if original:
        g.append(f" <{original}>")
    if "sender_on_delivery" in sel:
        g.append(f" F=<{dl.msg.sender}>")
    if "return_path_on_delivery" in sel:
        g.append(f" P=<{getattr(a, 'return_path', None) or dl.msg.sender}>")
    if a.router is not None:
        g.append(f" R={a.router.name}")
    g.append(f" T={a.transport.name}")
    if "delivery_size" in sel:
        g.append(f" S={getattr(a, 'transport_count', 0) or 0}")
    if getattr(a, "host_used", None) is not None:
        g.append(_hostlog(sel, a))
        if (getattr(a, "sequence", 1) or 1) > 1:
            g.append("*")
    g.append(_tlslog(sel, a))
    if getattr(a, "authenticator", None):
        g.append(f" A={a.authenticator}")
        if getattr(a, "auth_id", None):
            g.append(f":{a.auth_id}")
            if "smtp_mailauth" in sel and getattr(a, "auth_sndr", None):
                g.append(f":{a.auth_sndr}")
    if "pipelining" in sel and getattr(a, "pipelining_used", False):
        g.append(" L")
    if getattr(a, "prdr_used", False):
        g.append(" PRDR")
    if getattr(a, "chunking_used", False):
        g.append(" K")
    if "smtp_confirmation" in sel and a.message:
        g.append(" C=" + _c_quote(a.message))
    if "queue_time" in sel:
        from eximpy.log.format import timediff
        g.append(" QT=" + timediff(time.time() - dl.msg.received_time,
                                    "millisec" in sel))
    if "deliver_time" in sel:
        from eximpy.log.format import timediff
        g.append(" DT=" + timediff(getattr(a, "delivery_time", 0.0) or 0.0,
                                    "millisec" in sel))
    return "".join(g)


def deferred_line(dl: Any, a: Address, shown: str, original: str | None) -> str:
    sel = dl.sel
    g = [shown]
    if original:
        g.append(f" <{original}>")
    if a.router is not None:
        g.append(f" R={a.router.name}")
    g.append(f" T={a.transport.name}")
    g.append(f" defer ({a.basic_errno})")
    if a.basic_errno > 0:
        g.append(f": {os.strerror(a.basic_errno)}")
    h = getattr(a, "host_used", None)
    if h is not None:
        g.append(f" H={h.name} [{h.address}]")
        if "outgoing_port" in sel:
            g.append(f":{h.port if h.port != PORT_NONE else 25}")
    if a.message:
        g.append(f": {_printing(a.message)}")
    return "".join(g)


def failed_line(dl: Any, a: Address, shown: str, original: str | None) -> str:
    sel = dl.sel
    g = [shown]
    if original:
        g.append(f" <{original}>")
    if "sender_on_delivery" in sel:
        g.append(f" F=<{dl.msg.sender}>")
    if a.router is not None:
        g.append(f" R={a.router.name}")
    g.append(f" T={a.transport.name}")
    if getattr(a, "host_used", None) is not None:
        g.append(_hostlog(sel, a))
    g.append(_tlslog(sel, a))
    if a.basic_errno > 0:
        g.append(f": {os.strerror(a.basic_errno)}")
    if a.message:
        g.append(f": {_printing(a.message)}")
    return "".join(g)


# ----------------------------------------------------------------------
# Grouping and the entry point

def _same_hosts(a: list[Host], b: list[Host]) -> bool:
    if len(a) != len(b):
        return False
    return all(x.name == y.name and x.address == y.address and x.port == y.port
               for x, y in zip(a, b))


def _groups(addrs: list[Address], rctx: Any) -> list[list[Address]]:
    """Batch addresses as do_remote_deliveries() does."""
    out: list[list[Address]] = []
    left = list(addrs)
    while left:
        a = left.pop(0)
        tp = a.transport
        max_rcpt = _opt(tp, "max_rcpt") or 0
        # with remote_max_parallel 1 the transport gets every address and
        # sends max_rcpt at a time down one connection (Exim 4.96)
        try:
            rmp = rctx.config.main.get("remote_max_parallel")
        except (KeyError, AttributeError):
            rmp = 2
        if rmp is not None and rmp <= 1:
            max_rcpt = 0
        md = _opt(tp, "multi_domain")
        if isinstance(md, str):
            try:
                md = rctx.expand(md, a).strip().lower() in ("true", "yes")
            except (ExpansionError, ExpansionForcedFail):
                md = True
        multi_domain = md is not False
        group = [a]
        rest = []
        for b in left:
            if (max_rcpt and len(group) >= max_rcpt) or b.transport is not tp \
                    or not _same_hosts(a.host_list, b.host_list) \
                    or (not multi_domain and b.domain != a.domain) \
                    or b.prop.errors_address != a.prop.errors_address \
                    or b.prop.extra_headers != a.prop.extra_headers \
                    or b.prop.remove_headers != a.prop.remove_headers \
                    or getattr(b, "return_path", None) != getattr(a, "return_path", None):
                rest.append(b)
            else:
                group.append(b)
        left = rest
        out.append(group)
    return out


def _run_group(dl: Any, tp: Any, group: list[Address], tctx: Any) -> list[Address]:
    """One transport run for a group (and its fallback hosts); returns
    the addresses in the order Exim logs them."""
    rctx = tctx.rctx
    run = _TransportRun(dl, tp, group, tctx)
    order = group
    saved = dict(rctx.variables)
    rctx.variables["transport_name"] = tp.name
    try:
        hostlist = list(group[0].host_list)
        run.current_hostlist = hostlist
        if not hostlist or (_opt(tp, "hosts_override") and _opt(tp, "hosts")):
            run.current_hostlist = []
        run.run(hostlist)
        # fallback hosts for what is still deferred
        # (Exim's fallback chain is built by prepending)
        fb = [a for a in reversed(group) if a.tp_status == DEFER]
        order = [a for a in group if a not in fb]
        fbl = None
        if fb:
            fbl = fb[0].fallback_hosts
            if not fbl and _opt(tp, "fallback_hosts") and \
                    not fb[0].local_host_removed:
                from eximpy.routers._rf import build_hostlist
                fbl = build_hostlist(_opt(tp, "fallback_hosts"), False)
            if fbl:
                lookup = _lookup_fallback(fbl, rctx)
                run2 = _TransportRun(dl, tp, fb, tctx)
                run2.current_hostlist = lookup
                for a in fb:
                    a.fallback_hosts = lookup
                run2.run(lookup, fallback=True)
                order += fb
    except Exception as e:  # noqa: BLE001 - never lose the addresses
        for a in group:
            if getattr(a, "tp_status", DEFER) not in (OK, FAIL):
                a.tp_status = DEFER
                a.message = f"{tp.name} transport: internal error: {e}"
    finally:
        rctx.variables = saved
    if len(order) != len(group):
        order = group
    return order


# Fields of an address that a remote delivery child reports to its parent.
_REPORTED = ("tp_status", "basic_errno", "more_errno", "message",
             "pass_message", "cipher", "peerdn", "cert_verified",
             "dane_verified", "authenticator", "auth_id", "auth_sndr",
             "pipelining_used", "chunking_used", "prdr_used", "log_flag",
             "sequence", "transport_count", "sending_ip", "sending_port",
             "delivery_time", "utf8_downcvt", "retry_skipped")
_REPORT_LIMIT = 1 << 22


def _retry_snapshot(dl: Any) -> dict[str, Any]:
    """The T: (transport and host) retry records, read in the parent."""
    retry = getattr(dl, "retry", None)
    if retry is None:
        return {}
    try:
        from eximpy.deliver.retry import RetryRecord, _exists, open_db
        if not _exists(retry.spool):
            return {}
        out = {}
        for k, v in open_db(retry.spool).items():
            if k.startswith(b"T:"):
                rec = RetryRecord.unpack(v)
                if rec is not None:
                    out[k.decode("utf-8", "surrogateescape")] = rec
        return out
    except Exception:  # noqa: BLE001 - no data: every host is usable
        return {}


class _CapturedLog:
    """In a remote delivery child: log lines are handed to the parent
    (which writes them in order) instead of being written as the Exim
    user, who may not be able to open the files the parent can."""

    def __init__(self, lines: list[list[str]]) -> None:
        self.lines = lines

    def main(self, text: str, mid: str | None = None) -> bool:
        self.lines.append(["main", text])
        return True

    def panic(self, text: str, mid: str | None = None,
              also_main: bool = True) -> bool:
        self.lines.append(["panic" if also_main else "panic_only", text])
        return True


def _report(group: list[Address], order: list[Address],
            lines: list[list[str]]) -> bytes:
    import json
    out = []
    for a in group:
        d: dict[str, Any] = {k: getattr(a, k, None) for k in _REPORTED}
        h = getattr(a, "host_used", None)
        d["host_used"] = None if h is None else [
            h.name, h.address, h.port, h.mx, getattr(h, "dnssec", "unknown")]
        d["retries"] = [[r.key, r.basic_errno, r.more_errno, r.message,
                         r.flags] for r in getattr(a, "retries", None) or []]
        out.append(d)
    return json.dumps({"addrs": out, "lines": lines,
                       "order": [group.index(a) for a in order]}).encode()


def _apply_report(dl: Any, group: list[Address],
                  data: bytes) -> list[Address] | None:
    import json
    from eximpy.deliver.retry import RetryItem
    try:
        rep = json.loads(data.decode("utf-8"))
        for kind, text in rep["lines"]:
            text = str(text)
            if kind == "main":
                dl.log.main(text, dl.mid)
            elif kind == "msglog":
                dl._msglog(text)
            elif kind in ("panic", "panic_only"):
                dl.log.panic(text, dl.mid, also_main=kind == "panic")
        addrs = rep["addrs"]
        order = [group[i] for i in rep["order"]]
        if len(addrs) != len(group) or len(order) != len(group):
            return None
        for a, d in zip(group, addrs):
            for k in _REPORTED:
                setattr(a, k, d[k])
            if a.tp_status not in (OK, FAIL):
                a.tp_status = DEFER
            h = d["host_used"]
            a.host_used = None if h is None else Host(
                name=str(h[0]), address=str(h[1]), port=int(h[2]),
                mx=int(h[3]), dnssec=str(h[4]))
            a.retries = [RetryItem(str(k), int(b), int(m),
                                   None if t is None else str(t), int(f))
                         for k, b, m, t, f in d["retries"]]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return order


# What a remote delivery child may import after giving up its ids.
_CHILD_MODULES = (
    "ssl", "hashlib", "hmac", "base64", "json", "ipaddress", "random",
    "encodings.punycode", "encodings.idna", "encodings.ascii",
    "encodings.latin_1", "encodings.utf_8",
    "dns.resolver", "dns.flags", "dns.rdatatype", "dns.exception",
    "cryptography.x509", "cryptography.x509.verification",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.hashes",
    "eximpy.smtp.tls", "eximpy.deliver.retry", "eximpy.transports._write",
    "eximpy.expand", "eximpy.expand.lists", "eximpy.match",
    "eximpy.routers._rf", "eximpy.auths", "eximpy.log.format")


def _run_group_maybe_child(dl: Any, tp: Any, group: list[Address],
                           tctx: Any) -> list[Address]:
    """Run the group here, or -- in a process that may change ids (root,
    or the delivery role with CAP_SETUID) -- in a forked child that first
    becomes the Exim user with no capabilities (DESIGN.md section 2:
    remote SMTP runs with no capabilities; Exim runs its remote
    transports as the Exim user).  The child reports the addresses'
    results as JSON on a pipe."""
    priv = getattr(dl, "priv", None)
    if priv is None or not priv.privileged or priv.dropped:
        return _run_group(dl, tp, group, tctx)
    import importlib
    from eximpy.deliver.local import _exim_ids
    for name in _CHILD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional
            pass
    uid, gid = _exim_ids(dl.config)
    if uid == 0 or gid == 0:
        # no unprivileged Exim user to become (run_as refuses root)
        return _run_group(dl, tp, group, tctx)
    snapshot = _retry_snapshot(dl)
    import gc
    gc.freeze()                 # (no copy-on-write of the heap by the GC)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child
        code = 1
        try:
            os.close(r)
            from eximpy import privilege
            privilege.run_as(uid, gid)
            lines: list[list[str]] = []
            dl.log = _CapturedLog(lines)
            # An LMDB environment cannot be used (or opened again) after
            # fork(): the child reads the host retry records the parent
            # took before forking.
            if getattr(dl, "retry", None) is not None:
                dl.retry._read = snapshot.get
            dl._msglog = lambda text: lines.append(["msglog", text])
            order = _run_group(dl, tp, group, tctx)
            data = _report(group, order, lines)
            view = memoryview(data)
            while view:
                n = os.write(w, view)
                view = view[n:]

            code = 0
        except BaseException:  # noqa: BLE001 - a child must not return
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    total = 0
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        total += len(b)
        if total > _REPORT_LIMIT:
            break
        chunks.append(b)
    os.close(r)
    try:
        _pid, status = os.waitpid(pid, 0)
    except ChildProcessError:
        # reaped elsewhere (a SIGCHLD handler): trust a complete report
        status = 0
    order = _apply_report(dl, group, b"".join(chunks)) \
        if status == 0 and total <= _REPORT_LIMIT else None
    if order is None:
        for a in group:
            a.tp_status = DEFER
            a.basic_errno = -1
            a.message = (f"{tp.name} transport process returned non-zero "
                         f"status 0x{status & 0xffff:04x}")
        return group
    return order


def deliver_remote(dl: Any, remote: list[Address], tctx: Any, jnl: Any,
                   done_ok: list[Address], failed: list[Address],
                   deferred: list[Address]) -> None:
    """Run the remote transports for ``remote`` (Exim's
    do_remote_deliveries() and remote_post_process(), one process)."""
    from eximpy.deliver.deliver import _original, _shown, _shown_original
    dl._jnl_record = lambda a: jnl.record(a.unique)
    rctx = tctx.rctx
    for group in _groups(remote, rctx):
        tp = group[0].transport
        if tp is None:
            for a in group:
                a.message = "No transport set by router"
                a.basic_errno = -1
                deferred.append(a)
                dl.addr_main(a, f"== {_shown(a)} defer (-1): {a.message}")
            continue
        # return_path
        rp = _opt(tp, "return_path")
        if rp:
            for a in group:
                try:
                    a.return_path = rctx.expand(rp, a)
                except (ExpansionError, ExpansionForcedFail) as e:
                    a.return_path = None
                    a.message = (f"Failed to expand return path \"{rp}\" in "
                                 f"{tp.name} transport: {e}")
        # Host retry items go on the first address only; the others follow
        # it when it times out (Exim's addr->first, retry_update()).
        for a in group:
            a.batch_first = group[0]
        order = _run_group_maybe_child(dl, tp, group, tctx)
        if len(order) != len(group):
            order = group
        for a in order:
            st = getattr(a, "tp_status", DEFER)
            orig = _original(a)
            if st == OK:
                done_ok.append(a)
                shown = _shown(a)
                if getattr(a, "utf8_downcvt", False):
                    shown = _log_alabel(shown)
                dl.addr_main(a, delivered_line(dl, a, shown, orig or (
                    a.address if shown != a.address else None)),
                    msglog=f"{a.address}" + (f" <{orig}>" if orig else "")
                    + f": {tp.name} transport succeeded")
            elif st == FAIL:
                failed.append(a)
                line = failed_line(dl, a, _shown(a), _shown_original(a))
                dl.addr_main(a, "** " + line)
            else:
                deferred.append(a)
                if a.basic_errno == 0 and not a.message:
                    a.basic_errno = -1
                line = deferred_line(dl, a, _shown(a), _shown_original(a))
                dl.addr_main(a, "== " + line, msglog=line)


# ----------------------------------------------------------------------
# What a bounce says about a remote failure (for eximpy.deliver.bounce)

def bounce_address_text(addr: Address) -> list[str]:
    """The lines after the address in a bounce's text part, as Exim's
    print_address_information()/print_address_error() write them for an
    address that failed at a remote host: "    host NAME [IP]", then the
    message (when it may be shown: pass_message, else user_message) with
    a line break after a ": " past column 45 and at each literal "\\n"."""
    lines: list[str] = []
    h = getattr(addr, "host_used", None)
    if h is not None:
        lines.append(f"    host {h.name} [{h.address}]")
    msg = addr.message if getattr(addr, "pass_message", False) else None
    if not msg:
        msg = getattr(addr, "user_message", None)
    if not msg:
        return lines
    cur = "    "
    count = 0
    i = 0
    while i < len(msg):
        if msg[i] == "\\" and msg[i + 1:i + 2] == "n":
            lines.append(cur)
            cur = "    "
            count = 0
            i += 2
            continue
        c = msg[i]
        cur += c
        count += 1
        i += 1
        if c == ":" and i < len(msg) and msg[i].isspace() and count > 45:
            lines.append(cur)
            cur = "   "
            count = 0
    lines.append(cur)
    return lines


def dsn_remote_fields(addr: Address) -> list[str]:
    """The per-recipient DSN fields Exim adds for a remote failure:
    "Remote-MTA: dns; NAME" and, when the message may be passed on, the
    text after its first ": " as "Diagnostic-Code: smtp; ..." (a literal
    "\\n" becomes a folded line), as print_dsn_diagnostic_code() does."""
    h = getattr(addr, "host_used", None)
    if h is None or not h.name:
        return []
    out = [f"Remote-MTA: dns; {h.name}"]
    msg = addr.message if getattr(addr, "pass_message", False) else None
    if msg and ": " in msg:
        text = msg[msg.index(": ") + 2:].replace("\\n", "\n ")
        out.extend(f"Diagnostic-Code: smtp; {text}".split("\n"))
    return out


def _lookup_fallback(hosts: list[Host], rctx: Any) -> list[Host]:
    from eximpy.routers import _rf
    out: list[Host] = []
    for h in hosts:
        if h.address is not None:
            out.append(h)
            continue
        if _rf.is_ip_address(h.name):
            out.append(Host(name=h.name, address=h.name, port=h.port))
            continue
        out.append(h)            # looked up by the transport
    return out
