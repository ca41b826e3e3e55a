"""A small authoritative DNS server on loopback for the DANE tests.

dnsmasq (used elsewhere in the tests) neither signs nor puts the
authority records in its answers that Exim's dns_trust_aa needs, so the
DANE tests use this server instead: every answer carries the AA bit, the
AD bit ("this resolver validated it", trusted by glibc only with "options
trust-ad" in resolv.conf, which start() writes) and an NS record for the
zone in the authority section.  Records are given as zone-file lines.

    srv, resolv = start(["dane.test. 60 IN MX 10 mx.dane.test.", ...], work)
    ...
    stop(srv)
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ADDRS = [f"127.0.0.{n}" for n in range(140, 160)]


class _Server:
    def __init__(self, records: list[str], zone: str, secure: bool) -> None:
        self.rrsets: dict[tuple[str, int], dns.rrset.RRset] = {}
        for line in records:
            name, ttl, _cls, rtype, *data = line.split()
            rr = dns.rrset.from_text(name, int(ttl), "IN", rtype, " ".join(data))
            key = (rr.name.to_text().lower(), rr.rdtype)
            if key in self.rrsets:
                self.rrsets[key].union_update(rr)
            else:
                self.rrsets[key] = rr
        self.zone = dns.name.from_text(zone)
        self.secure = secure
        self.sock: socket.socket | None = None
        for a in ADDRS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((a, 53))
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, a
            break
        assert self.sock is not None, "no free loopback address for DNS"
        self._stop = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self) -> None:
        assert self.sock is not None
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001 - ignore garbage
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            if self.secure:
                r.flags |= dns.flags.AD
            qq = q.question[0]
            key = (qq.name.to_text().lower(), qq.rdtype)
            names = {k[0] for k in self.rrsets}
            if key in self.rrsets:
                r.answer.append(self.rrsets[key])
            elif qq.name.to_text().lower() not in names:
                r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(dns.rrset.from_text(
                self.zone, 60, "IN", "NS", f"ns.{self.zone.to_text()}"))
            try:
                self.sock.sendto(r.to_wire(), peer)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop = True
        if self.sock is not None:
            self.sock.close()


def start(records: list[str], work: Path, zone: str,
          secure: bool = True) -> tuple[_Server, Path]:
    work.mkdir(parents=True, exist_ok=True)
    srv = _Server(records, zone, secure)
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {srv.addr}\noptions trust-ad\n")
    return srv, resolv


def stop(srv: _Server) -> None:
    srv.stop()
