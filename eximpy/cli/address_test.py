"""Address testing modes: -bt, -bv, -bvs (Exim's test_address/verify_address).

SUMMARY
    run_bt(config, inv, stdout) -> exit status     -bt: full routing display
    run_bv(config, inv, stdout, sender=False)      -bv / -bvs: verify
    verify_address(addr_text, rctx, out, full_info, is_recipient) -> status

DESCRIPTION
    Addresses come from the command line (an argument may hold several,
    separated by commas, as Exim splits them with parse_find_address_end) or,
    with none given, from standard input with a "> " prompt per line.  Each
    is parsed (a syntax error prints "syntax error: ..." and makes the exit
    status 2), qualified, and routed with eximpy.routing in address-test or
    verify mode.  The output is Exim 4.96's, byte for byte:

        a@b
            <-- parent@x
          router = r, transport = t
          host name [address] MX=n port=p
        a@b -> |/pipe
          transport = t
        x@y is undeliverable: message
        x@y cannot be resolved at this time: message
        mail to x@y is discarded
        x@y verified / x@y failed to verify: message

    Exit status: 2 if any address failed, else 1 if any deferred, else 0.

SEE ALSO
    spec 5 (-bt, -bv, -bvs), 3.9; Exim exim.c test_address(), verify.c
    verify_address().
"""
from __future__ import annotations

import os
import pwd
import sys
from typing import Any, TextIO

from eximpy import routing as R
from eximpy.address import (Address, AddressError, parse_extract_address,
                            parse_find_address_end, parse_find_at,
                            split_address)


def _caller_login() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _default_sender(config: Any, inv: Any) -> str:
    if inv.sender is not None:
        s = inv.sender
        if s in ("<>", ""):
            return ""
        try:
            e = parse_extract_address(s, allow_null=True,
                                      allow_domain_literals=True)
            s = e.address
        except AddressError:
            pass
        if s and parse_find_at(s) < 0:
            qd = _main(config, "qualify_domain") or _main(config, "primary_hostname")
            s = f"{s}@{qd}"
        return s
    qd = _main(config, "qualify_domain") or _main(config, "primary_hostname") or ""
    return f"{_caller_login()}@{qd}"


def _main(config: Any, name: str) -> Any:
    try:
        return config.main.get(name)
    except (KeyError, AttributeError):
        return None


def _print_parents(out: TextIO, addr: Address) -> None:
    p = addr.parent
    while p is not None:
        out.write(f"\n    <-- {p.address}")
        p = p.parent


def _errtext(addr: Address, deferred: bool) -> str:
    s = ""
    if addr.basic_errno > 0:
        s += ": " + os.strerror(addr.basic_errno)
    if addr.message is not None:
        s += ": " + addr.message
    elif deferred and addr.basic_errno <= 0:
        s += ": unknown error"
    return s


def _transport_overrides_hosts(tp: Any) -> bool:
    try:
        return bool(tp.get("hosts_override")) and bool(tp.get("hosts"))
    except (KeyError, AttributeError):
        return False


def _print_hosts(out: TextIO, addr: Address) -> None:
    hl = addr.host_list
    if not hl or addr.transport is None or _transport_overrides_hosts(addr.transport):
        return
    local = bool(getattr(getattr(addr.transport, "info", None), "local", False))
    maxlen = max(len(h.name) for h in hl)
    maxaddlen = max(len(h.address) if h.address is not None else 7 for h in hl)
    for h in hl:
        line = f"  host {h.name} " + " " * (maxlen - len(h.name))
        if h.address is not None:
            line += f"[{h.address}]"
            n = len(h.address)
        elif not local:
            line += "[unknown]"
            n = 7
        else:
            n = -2
        if n < maxaddlen:
            line += " " * (maxaddlen - n)
        if h.mx >= 0:
            line += f" MX={h.mx}"
        if h.port >= 0:
            line += f" port={h.port}"
        if h.status == "unusable":
            line += " ** unusable **"
        out.write(line + "\n")


def verify_address(address: str, rctx: R.RoutingContext, out: TextIO,
                   full_info: bool, is_recipient: bool,
                   address_test_mode: bool, unique: str | None = None) -> str:
    """Route ``address`` (already parsed and qualified) and report on ``out``.

    Returns OK, FAIL or DEFER as Exim's verify_address() does.
    """
    allok = True
    yield_ = R.OK
    new = rctx.rewrite(address, is_recipient)
    if new != address:
        out.write(f"Address rewritten as: {new}\n")
        address = new
    vaddr = Address(address)
    if unique is not None:
        vaddr.unique = unique
    rctx.addr_new = [vaddr]
    rctx.addr_local = []
    rctx.addr_remote = []
    rctx.addr_succeed = []
    save_sender = rctx.sender_address
    while rctx.addr_new:
        addr = rctx.addr_new.pop(0)
        if addr.pfr:
            allok = False
            parent = addr.parent.address if addr.parent else ""
            if addr.address.startswith(">"):
                allow = addr.allow_reply
                out.write(f"{parent} -> mail {addr.address[1:]}")
            else:
                allow = addr.allow_pipe if addr.address.startswith("|") \
                    else addr.allow_file
                out.write(f"{parent} -> {addr.address}")
            if addr.basic_errno == R.ERRNO_BADTRANSPORT:
                out.write("\n*** Error in setting up pipe, file, or autoreply:\n"
                          f"{addr.message}\n")
            elif allow:
                name = addr.transport.name if addr.transport is not None else "unset"
                out.write(f"\n  transport = {name}\n")
            else:
                out.write(" *** forbidden ***\n")
            continue
        split_address(addr)
        if not is_recipient:
            rctx.sender_address = ""
        rc = R.route_address(addr, rctx)
        rctx.sender_address = save_sender
        rctx.last_address = addr
        if rc == R.FAIL:
            allok = False
            out.write(f"{addr.address if full_info else address} "
                      f"{'is undeliverable' if address_test_mode else 'failed to verify'}"
                      f"{_errtext(addr, False)}")
            if full_info:
                _print_parents(out, addr)
            out.write("\n")
            if not full_info:
                return R.FAIL
            yield_ = R.FAIL
        elif rc in (R.DEFER, R.ERROR):
            allok = False
            out.write(f"{addr.address if full_info else address} cannot be "
                      f"resolved at this time{_errtext(addr, True)}")
            if full_info:
                _print_parents(out, addr)
            out.write("\n")
            if not full_info:
                return R.DEFER
            if yield_ == R.OK:
                yield_ = R.DEFER
        else:
            if not full_info:
                new = rctx.addr_new
                if not new or len(new) > 1 or new[0].pfr:
                    out.write(f"{address} "
                              f"{'is deliverable' if address_test_mode else 'verified'}\n")
                    return R.OK
    if not full_info:
        return yield_
    if allok and not rctx.addr_local and not rctx.addr_remote:
        out.write(f"mail to {address} is discarded\n")
        return yield_
    seen = rctx.duplicates
    for chain in (rctx.addr_local, rctx.addr_remote):
        for addr in chain:
            out.write(addr.address)
            if not addr.pfr:
                if addr.unique in seen:
                    out.write("   [duplicate, would not be delivered]")
                else:
                    seen.add(addr.unique)
            _print_parents(out, addr)
            out.write("\n  ")
            rname = addr.router.name if addr.router is not None else "unset"
            tname = addr.transport.name if addr.transport is not None else "unset"
            out.write(f"router = {rname}, transport = {tname}\n")
            _print_hosts(out, addr)
    return yield_


def _test_address(text: str, rctx: R.RoutingContext, out: TextIO, mode: str,
                  status: list[int]) -> None:
    try:
        e = parse_extract_address(text, allow_domain_literals=True)
    except AddressError as err:
        out.write(f"syntax error: {err}\n")
        status[0] = 2
        return
    address = e.address
    unique = address
    is_recipient = mode != "bvs"
    if parse_find_at(address) < 0:
        dom = rctx.qualify_recipient() if is_recipient else rctx.qualify_domain()
        address = f"{address}@{dom}"
    full_info = mode == "bt"
    rc = verify_address(address, rctx, out, full_info, is_recipient,
                        address_test_mode=(mode == "bt"), unique=unique)
    if rc == R.FAIL:
        status[0] = 2
    elif rc == R.DEFER and status[0] == 0:
        status[0] = 1


def _run(config: Any, inv: Any, out: TextIO, mode: str,
         stdin: TextIO | None = None) -> int:
    verify = {"bt": R.V_NONE, "bv": R.V_RECIPIENT, "bvs": R.V_SENDER}[mode]
    sender = _default_sender(config, inv)
    def log(msg: str, panic: bool = False, main: bool = True) -> None:
        # -bt shows log lines as Exim's debug output does; -bv as a
        # timestamped line on stderr.
        if mode == "bt":
            which = " ".join(w for w, on in (("MAIN", main), ("PANIC", panic)) if on)
            sys.stderr.write(f"LOG: {which}\n  {msg}\n")
        else:
            import time
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            sys.stderr.write(f"{stamp} {msg}\n")
        sys.stderr.flush()
    rctx = R.RoutingContext(config, verify=verify,
                            address_test_mode=(mode == "bt"),
                            sender_address=sender, log=log)
    rctx.duplicates = set()
    status = [0]
    if inv.args:
        for arg in inv.args:
            s = arg
            while s:
                end = parse_find_address_end(s, 0, False)
                finished = end >= len(s)
                _test_address(s[:end], rctx, out, mode, status)
                out.flush()
                if finished:
                    break
                s = s[end + 1:]
                k = 0
                while k < len(s) and (s[k] == "," or s[k].isspace()):
                    k += 1
                s = s[k:]
    else:
        inp = stdin if stdin is not None else sys.stdin
        while True:
            out.write("> ")
            out.flush()
            line = inp.readline()
            if not line:
                out.write("\n")
                break
            _test_address(line.rstrip("\n").strip(), rctx, out, mode, status)
    out.flush()
    return status[0]


def run_bt(config: Any, inv: Any, stdout: TextIO) -> int:
    """-bt: test address routing; returns the exit status."""
    return _run(config, inv, stdout, "bt")


def run_bv(config: Any, inv: Any, stdout: TextIO, sender: bool = False) -> int:
    """-bv (or -bvs: sender=True, or inv.mode_arg == "sender")."""
    sender = sender or getattr(inv, "mode", "") == "bvs" or \
        getattr(inv, "mode_arg", None) == "sender"
    return _run(config, inv, stdout, "bvs" if sender else "bv")
