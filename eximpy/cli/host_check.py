"""-bh IP: an SMTP test session with Exim's ACL debug trace on stderr.

SUMMARY
    run_bh(config, inv, stdin, stdout, stderr=sys.stderr) -> int
    checkaccess(argv, stdout) -> int         exim_checkaccess IP addr [opts]
    BhLog(stream)            log writer that prints "LOG: text" lines

DESCRIPTION
    A replacement for eximpy.cli.smtp_modes.run_bh that gives the session
    the full ACL engine (eximpy.acl.engine) with a trace callback: every
    ACL decision is written to stderr as ">>> " lines, exactly as
    `exim -bh` writes its acl debug output, and every log line the session
    or an ACL writes appears as "LOG: ..." on the same stream (Exim writes
    no log files in -bh mode).  The banner and the SMTP replies go to
    stdout.  Nothing is spooled.

    The session's own host-list checks (hosts_connection_nolog,
    host_reject_connection, helo_accept_junk_hosts, the *_advertise_hosts
    at EHLO, smtp_accept_max_nonmail_hosts, ignore_fromline_hosts, ...)
    are traced through session_list(), at the points and in the order
    Exim consults them, with "no (option unset)" for unset options.

    The main-program dispatcher can point -bh (and -bhc: callouts are
    treated the same until eximpy has an SMTP client) at run_bh here.

SEE ALSO
    spec 5 (-bh, -bhc); eximpy.cli.smtp_modes; eximpy.acl.engine.
"""
from __future__ import annotations

import functools
import sys
from typing import Any


class BhLog:
    """Log writer for -bh: every line goes to the debug stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed = False
        self.last_error = None

    def _w(self, text: str) -> bool:
        self.stream.write(f"LOG: {text}\n")
        self.stream.flush()
        return True

    def main(self, text: str, mid: str | None = None) -> bool:
        return self._w(f"{mid} {text}" if mid else text)

    def reject(self, text: str, mid: str | None = None,
               block: Any = None) -> bool:
        return self._w(f"{mid} {text}" if mid else text)

    def panic(self, text: str, mid: str | None = None) -> bool:
        return self._w(f"{mid} {text}" if mid else text)

    def write(self, text: str, main: bool = False, reject: bool = False,
              panic: bool = False) -> bool:
        return self._w(text)


def run_bh(config: Any, inv: Any, stdin: Any = sys.stdin,
           stdout: Any = sys.stdout, stderr: Any = sys.stderr) -> int:
    """-bh IP with the ACL engine and its trace."""
    from eximpy.acl.engine import make_runner
    from eximpy.cli import smtp_modes as S
    from eximpy.smtp.accept import TestSink
    from eximpy.smtp.server import Session

    host = inv.mode_arg or ""
    port = 0
    if host.count(".") == 4 or (":" in host and host.count(".") == 1 and
                                host.rsplit(".", 1)[1].isdigit()):
        host, _, p = host.rpartition(".")
        port = int(p) if p.isdigit() else 0
    err = getattr(stderr, "buffer", None)
    text_err = stderr

    def trace(line: str) -> None:
        for ln in line.split("\n"):
            text_err.write(f">>> {ln}\n")
        text_err.flush()
    log = BhLog(text_err)
    out = S._binary(stdout)
    out.write(f"\n**** SMTP testing session as if from host {host}\n"
              "**** but without any ident (RFC 1413) callback.\n"
              "**** This is not for real!\n\n".encode())
    out.flush()
    login, uid, gid = S._caller()
    runner = make_runner(config, log=log, trace=trace, host_checking=True,
                         callouts_in_bh=getattr(inv, "mode", "") == "bhc")
    # The session's own list checks are traced too (Session._host_in).
    runner.session_list = functools.partial(session_list, runner)
    session = Session(config, acl=runner, sink=TestSink(config),
                      host_address=host, host_port=port, host_checking=True,
                      trusted=True, login=login, uid=uid, gid=gid, log=log)
    del err
    return S._run(session, stdin, stdout, config)


def session_list(engine: Any, session: Any, name: str, listtext: Any,
                 subject: str | None = None) -> str:
    """One of the session's own list checks, traced as Exim traces it in
    -bh (">>> host in helo_accept_junk_hosts? yes (matched "*")"): the
    host lists (and helo_lookup_domains, a domain list, when ``subject``
    is given) that smtp_in.c and receive.c consult.  The named-list cache
    is the connection's, shared with the ACLs, as in Exim.  Returns OK,
    FAIL or DEFER."""
    from eximpy.acl.engine import Call
    from eximpy.acl.runner import DEFER, FAIL, OK, AclEnv, AclResult
    try:
        raw = session.config.main.get(name)
    except (KeyError, AttributeError):
        raw = listtext
    label = "host" if subject is None else subject
    if raw is None:
        if engine.trace is not None:
            engine.trace(f"{label} in {name}? no (option unset)")
        return FAIL
    env = AclEnv(variables=session._variables(), acl_c=session.acl_c,
                 acl_m=session.acl_m, host_address=session.host_address,
                 log=session._log_main)
    engine._lifetimes(env)
    call = Call(engine, "connect", env, AclResult(FAIL))
    text = str(listtext if listtext is not None else raw)
    try:
        if subject is None:
            rc, _ = call.lists.host(session.host_address or "",
                                    session.host_name or "", text,
                                    engine.conn["host_cache"], display=name)
        else:
            rc, _ = call.lists.domain(subject, text, None, display=name)
    except Exception:
        rc = DEFER
    return rc if rc in (OK, FAIL) else DEFER


_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|\d{1,2})"


def checkaccess(argv: list[str], stdout: Any = sys.stdout) -> int:
    """exim_checkaccess IP address [exim options, -f sender]: run
    HELO/MAIL/RCPT/QUIT through -bh and print "Accepted" or "Rejected:"
    with the RCPT reply, as Exim's exim_checkaccess script does."""
    import io
    import ipaddress
    import re
    usage = "Usage: exim_checkaccess <IP address> <email address> [exim options]\n"
    if len(argv) < 2:
        stdout.write(usage)
        return 1
    host, recipient, opts = argv[0], argv[1], list(argv[2:])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        stdout.write(f'** Invalid IP address "{host}"\n' + usage)
        return 1
    sender = ""
    if "-f" in opts:
        i = opts.index("-f")
        if i + 1 < len(opts):
            sender = opts[i + 1].strip('"')
            del opts[i:i + 2]
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    inv = parse_args(["exim", "-bh", host] + opts)
    config = _load(inv)
    dialogue = (f"HELO [{host}]\r\nMAIL FROM:<{sender}>\r\n"
                f"RCPT TO:<{recipient}>\r\nQUIT\r\n")
    out = io.BytesIO()
    run_bh(config, inv, io.BytesIO(dialogue.encode()), out, io.StringIO())
    count, reply = 0, ""
    for line in out.getvalue().decode("utf-8", "surrogateescape").split("\n"):
        line = line.rstrip("\r") + "\n"
        if not re.match(r"^\d\d\d", line):
            continue
        reply += line
        if re.match(r"^\d\d\d-", line):
            continue
        count += 1
        if count != 4:
            reply = ""
            continue
        if re.match(r"^2\d\d", reply):
            stdout.write("Accepted\n")
        else:
            stdout.write("Rejected:\n")
            stdout.write("  " + re.sub(r"\n(.)", r"\n  \1", reply))
        break
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m eximpy.cli.host_check -C conf -bh IP``: the same command
    line as the main program, for tests until -bh is pointed here."""
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.errors import ConfigError
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--checkaccess"]:
        return checkaccess(args[1:])
    inv = parse_args(["exim"] + args)
    try:
        config = _load(inv)
    except ConfigError as e:
        from eximpy.cli.main import _config_error
        return _config_error(e)
    return run_bh(config, inv, sys.stdin, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
