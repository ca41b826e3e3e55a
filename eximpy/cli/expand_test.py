"""-be and -bem: Exim's expansion test mode.

DESCRIPTION
    run(config, args, stdin, stdout, message_file=None) -> exit status.

    With arguments, each is expanded and printed on a line of its own.
    Without, lines are read from stdin: "> " is printed before each read, a
    line ending in a backslash continues on the next (whose leading white
    space is dropped), trailing white space is removed, and at end of input
    a newline is printed.  Every line first has the configuration's macros
    substituted; a line starting with an upper-case letter defines a macro
    ("Defined macro 'X'") instead of being expanded.  A failed expansion
    prints "Failed: <message>" (forced failures too).

    -bem FILE reads a message (headers, blank line, body) from FILE first,
    so that message variables ($h_*, $message_body, $message_size ...) are
    set, as for a locally submitted message; header values are tainted.

    Strings are bytes carried as UTF-8 with surrogateescape (the
    convention of all eximpy, see eximpy/expand/bytestr.py): arguments,
    input lines and the -bem message are read that way and the output is
    written back as the same bytes.

SEE ALSO
    spec section "Command line options" (-be, -bem).
"""
from __future__ import annotations

import io
import os
import pwd
import re
import sys
import time
from typing import Any, TextIO

from eximpy.errors import ConfigError, ExpansionError, ExpansionForcedFail
from eximpy.expand import ExpandContext, expand_string
from eximpy.expand.bytestr import from_bytes, norm, to_bytes
from eximpy.expand.taint import Tainted


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _byte_stream(f: Any):
    b = getattr(f, "buffer", None)
    return b if b is not None else f


def _write(out: Any, text: str) -> None:
    data = to_bytes(text) if not _is_text(out) else None
    if data is not None:
        out.write(data)
    else:
        b = getattr(out, "buffer", None)
        if b is not None:
            out.flush()
            b.write(to_bytes(text))
            b.flush()
        else:
            out.write(text)
    out.flush()


def _is_text(f: Any) -> bool:
    return isinstance(f, io.TextIOBase) or hasattr(f, "encoding")


class _LineReader:
    """Exim's get_stdinput() without readline: fgets() in 1023-byte chunks."""

    def __init__(self, stdin: Any) -> None:
        self.f = _byte_stream(stdin)

    def _fgets(self) -> str | None:
        f = self.f
        if isinstance(f, io.TextIOBase) or (hasattr(f, "encoding") and not hasattr(f, "buffer")):
            line = f.readline(1023)
            if not line:
                return None
            return line if isinstance(line, str) else from_bytes(line)
        line = f.readline(1023)
        if not line:
            return None
        return from_bytes(line) if isinstance(line, bytes) else line

    def get(self, out: Any) -> str | None:
        _write(out, "> ")
        parts: list[str] = []
        had = False
        i = 0
        while True:
            p = self._fgets()
            if p is None:
                break
            had = True
            p = p.rstrip(" \t\n\r\f\v")
            if i > 0:
                p = p.lstrip(" \t\n\r\f\v")
            parts.append(p)
            i += 1
            if not p or not p.endswith("\\"):
                break
            parts[-1] = p[:-1]
        if had:
            return norm("".join(parts))     # a sequence cut by a chunk end
        _write(out, "\n")
        return None


def _caller() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _config_lines(config: Any) -> int:
    fn = getattr(config, "filename", None)
    try:
        with open(fn, "rb") as f:
            return f.read().count(b"\n")
    except (OSError, TypeError):
        return 0


def split_host_port(text: str) -> tuple[str, str | None]:
    """-oMa/-oMi values: "a.b.c.d.port", "[v6]:port", "v6.port" or a bare
    address (Exim's host_address_extract_port())."""
    if text.startswith("["):
        k = text.find("]")
        if k > 0:
            rest = text[k + 1:]
            return text[1:k], (rest[1:] if rest[:1] in (":", ".") and rest[1:] else None)
    from eximpy.expand.operators import ip_type
    if ip_type(text, allow_mask=False)[0]:
        return text, None
    addr, dot, port = text.rpartition(".")
    if dot and port.isdigit() and ip_type(addr, allow_mask=False)[0]:
        return addr, port
    return text, None


def apply_invocation(ctx: ExpandContext, inv: Any) -> None:
    """The -oMa -oMaa -oMai -oMas -oMi -oMr -oMs -oMt -p settings of the
    command line, as Exim applies them in -be mode."""
    v = ctx.variables
    ha = getattr(inv, "host_address", None)
    if ha:
        addr, port = split_host_port(ha)
        v["sender_host_address"] = addr
        v["sender_host_port"] = port or "0"
    ia = getattr(inv, "interface_address", None)
    if ia:
        addr, port = split_host_port(ia)
        v["interface_address"] = addr
        v["received_ip_address"] = addr
        if port:
            v["interface_port"] = port
            v["received_port"] = port
    rp = getattr(inv, "received_protocol", None)
    if rp and ":" in rp and getattr(inv, "host_name", None) is None:
        # -p<protocol>:<host> arrives unsplit from the option parser
        proto, _, host = rp.partition(":")
        v["received_protocol"] = proto
        v["sender_host_name"] = host
        inv = _Without(inv, ("received_protocol", "host_name"))
    for attr, name in (("auth_name", "sender_host_authenticated"),
                       ("auth_id", "authenticated_id"),
                       ("auth_sender", "authenticated_sender"),
                       ("received_protocol", "received_protocol"),
                       ("host_name", "sender_host_name"),
                       ("ident", "sender_ident")):
        val = getattr(inv, attr, None)
        if val is not None:
            v[name] = val


class _Without:
    """An invocation view with some attributes hidden."""

    def __init__(self, inv: Any, names: tuple[str, ...]) -> None:
        self._inv, self._names = inv, names

    def __getattr__(self, name: str) -> Any:
        if name in self._names:
            return None
        return getattr(self._inv, name)


def make_context(config: Any, stderr: Any = None) -> ExpandContext:
    """The context -be runs in (a local caller, no message)."""
    err = stderr if stderr is not None else sys.stderr
    ctx = ExpandContext(config=config)
    caller = _caller()
    qd = ctx.get_var("qualify_domain") or ""
    ctx.variables.update({
        "sender_address": f"{caller}@{qd}",
        "authenticated_id": caller,
        "authenticated_sender": f"{caller}@{qd}",
        "sender_ident": caller,
        "smtp_active_hostname": ctx.get_var("primary_hostname") or "",
        "originator_uid": str(os.getuid()),
    })
    keep = None
    if config is not None:
        try:
            keep = config.main.get("keep_environment")
        except (KeyError, AttributeError):
            keep = None
    if keep is not None:
        from eximpy.expand.lists import iter_list
        names = list(iter_list(keep))
        env = {}
        for k, v in os.environ.items():
            for pat in names:
                if pat.startswith("^"):
                    import re
                    if re.search(pat, k):
                        env[k] = v
                elif pat == k:
                    env[k] = v
        ctx.environ = env

    ctx.acl_runner = _acl_runner(config, ctx)

    def log_panic(msg: str) -> None:
        _write(err, f"{_stamp()} {msg}\n")
    ctx.log_panic = log_panic
    return ctx


def _acl_runner(config: Any, ctx: ExpandContext):
    """${acl} and the acl condition in -be: run the named ACL with the ACL
    engine (eximpy.acl.runner), sharing the context's ACL variables."""
    if config is None:
        return None
    try:
        from eximpy.acl.runner import AclEnv, MinimalAclRunner
    except ImportError:
        return None
    runner = MinimalAclRunner(config)

    def run_acl(name: str, args: list[str]) -> tuple[str, str | None]:
        acls = getattr(config, "acls", None) or {}
        if name not in acls:
            return "ERROR", None
        env = AclEnv(variables=ctx.variables, acl_c=ctx.acl_c, acl_m=ctx.acl_m)
        r = runner.check("unknown", name, env)
        return r.rc, r.user_message
    return run_acl


_UUCP_FROM = re.compile(
    r"^From\s+(\S+)\s+(?:[a-zA-Z]{3},?\s+)?[a-zA-Z]{3}\s+[a-zA-Z]{3}\s+\d?\d\s+"
    r"\d?\d:\d\d(?::\d\d)?\s+(?:[+-]\d{4}\s+)?(?:\d{4}|\S{3}(?:\s+\d{4})?)")


def load_message(ctx: ExpandContext, path: str, out: Any = None) -> None:
    """Read a message for -bem as Exim reads a locally submitted one: an
    optional "From " line gives the sender, header lines lose a CR before
    LF, a line of a single dot ends the message, and Message-Id:, From: and
    Date: are added when missing; then set the message variables."""
    with open(path, "rb") as f:
        data = f.read()
    text = from_bytes(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "." in lines:
        lines = lines[:lines.index(".")]
    sender = None
    from_line = 0
    if lines:
        m = _UUCP_FROM.match(lines[0])
        if m:
            sender = m.group(1)
            from_line = len(to_bytes(lines[0])) + 1     # still counted in the size
            lines = lines[1:]
            if out is not None:
                _write(out, 'Sender taken from "From " line\n')
    headers: list[tuple[str, str]] = []
    i = 0
    hsize = 0
    while i < len(lines):
        ln = lines[i]
        if ln.endswith("\r"):
            ln = ln[:-1]
        if ln == "":
            i += 1
            hsize += 1
            break
        if ln[0] in " \t" and headers:
            name, raw = headers[-1]
            headers[-1] = (name, raw + ln + "\n")
        elif ":" in ln:
            name, _, raw = ln.partition(":")
            headers.append((name, raw + "\n"))
        else:
            break
        hsize += len(to_bytes(ln)) + 1
        i += 1
    body_lines = lines[i:]
    body = "".join(x + "\n" for x in body_lines)
    headers = [(n, Tainted(r)) for n, r in headers]
    from eximpy.message.ids import new_message_id
    mid = new_message_id()
    pn = ctx.get_var("primary_hostname") or ""
    have = {n.lower() for n, _ in headers}
    if "message-id" not in have:
        headers.append(("Message-Id", f" <E{mid}@{pn}>\n"))
    if sender is not None:
        ctx.variables["sender_address"] = sender
    if "from" not in have:
        if sender is not None:
            headers.append(("From", f" {sender}\n"))
        else:
            try:
                gecos = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0]
            except KeyError:
                gecos = ""
            addr = ctx.get_var("sender_address") or ""
            headers.append(("From", f" {gecos} <{addr}>\n" if gecos else f" {addr}\n"))
    if "date" not in have:
        from eximpy.expand.variables import tod
        headers.append(("Date", " " + tod("tod_full") + "\n"))
    ctx.headers = headers
    vis = 500                   # bytes, as message_body_visible counts
    bb = to_bytes(body)
    b1 = from_bytes(bb[:vis]).replace("\n", " ").replace("\0", " ")
    b2 = from_bytes(bb[-vis:]).replace("\n", " ").replace("\0", " ")
    ctx.variables.update({
        "message_id": mid, "message_exim_id": mid,
        "message_size": str(from_line + hsize + len(bb)),
        "message_linecount": str(i + len(body_lines) + (1 if from_line else 0)),
        "body_linecount": str(len(body_lines)),
        "body_zerocount": str(body.count("\0")),
        "message_body_size": str(len(bb)),
        "message_body": Tainted(b1), "message_body_end": Tainted(b2),
    })


def expand_line(ctx: ExpandContext, config: Any, line: str, out: Any, err: Any) -> None:
    macros = getattr(config, "macros", None) if config is not None else None
    if macros is not None and hasattr(macros, "substitute"):
        try:
            line, _found = macros.substitute(line, 0, True)
        except Exception:
            pass
    if line[:1].isupper() and line[:1].isascii():
        if macros is not None and hasattr(macros, "read_assignment"):
            try:
                macros.read_assignment(line)
                name = line.split("=", 1)[0].strip()
                _write(out, f"Defined macro '{name}'\n")
            except ConfigError as e:
                fn = getattr(config, "filename", "")
                _write(err, f"{_stamp()} Exim configuration error in line "
                            f"{_config_lines(config)} of {fn}:\n  {e.message}\n")
        return
    try:
        r = expand_string(line, ctx)
        nul = r.find("\0")
        if nul >= 0:
            r = r[:nul]
        _write(out, r + "\n")
    except (ExpansionError, ExpansionForcedFail) as e:
        msg = str(e)
        _write(out, f"Failed: {msg}\n")


def load_spooled(ctx: ExpandContext, config: Any, mid: str,
                 err: Any) -> None:
    """-Mset ID: the message variables and headers of a queued message.

    Exim reports a message it cannot load and carries on without it.
    """
    from eximpy.cli.queue_ops import message_for_expansion
    try:
        variables, headers, body = message_for_expansion(config, mid)
    except (OSError, ValueError) as e:
        _write(err, f"Failed to load message {mid}: {e}\n")
        return
    ctx.variables.update(variables)
    parsed = []
    for _letter, text in headers:
        name, _, raw = text.partition(":")
        parsed.append((name, Tainted(raw)))
    ctx.headers = parsed
    vis = 500                   # bytes, as message_body_visible counts
    ctx.variables.setdefault("message_body", from_bytes(
        body[:vis]).replace("\n", " ").replace("\0", " "))
    ctx.variables.setdefault("message_body_end", from_bytes(
        body[-vis:]).replace("\n", " ").replace("\0", " "))


def run(config: Any, args: list[str], stdin: TextIO, stdout: TextIO,
        message_file: str | None = None, stderr: TextIO | None = None,
        invocation: Any = None) -> int:
    """The -be / -bem mode; returns the exit status.  ``invocation`` (the
    parsed command line) supplies -oMa, -oMs, -oMr, -p ... settings."""
    err = stderr if stderr is not None else sys.stderr
    ctx = make_context(config, err)
    if invocation is not None:
        apply_invocation(ctx, invocation)
        if getattr(invocation, "message_set", None):
            load_spooled(ctx, config, invocation.message_set, err)
    if message_file is not None:
        try:
            load_message(ctx, message_file, stdout)
        except OSError as e:
            _write(err, f"exim: failed to open {message_file}: {e.strerror}\n")
            return 1
    if args:
        for a in args:
            if isinstance(a, bytes):
                a = from_bytes(a)
            expand_line(ctx, config, a, stdout, err)
        return 0
    reader = _LineReader(stdin)
    while True:
        line = reader.get(stdout)
        if line is None:
            break
        expand_line(ctx, config, line, stdout, err)
    return 0
