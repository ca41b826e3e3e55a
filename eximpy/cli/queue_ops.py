"""Queue modes of the command line: -bp*, -M* and local submission.

SUMMARY
    run(config, inv, out) -> int
        Dispatch on inv.mode ("bp" "bpa" "bpc" "bpr" "bpra" "bpru" "bpu"
        "Mvh" "Mvb" "Mvl" "Mvc" "Mrm" "Mf" "Mt" "Mg" "Mar" "Mmd" "Mmad"
        "Mes" "Mset"); ids (and, for -Mar/-Mmd/-Mes, addresses) come from
        inv.args (-Mset: inv.mode_arg).
    run_local_submission(config, inv, stdin: BinaryIO) -> int
        Default mode: read a message from stdin for inv.args (or -t) with
        inv.sender (-f), inv.sender_name (-F), inv.dot_ends (-i/-oi),
        inv.extract_recipients (-t), inv.delivery_mode (-odq ...).
    run_queue_listing(config, mode, ids, out, now=None) -> int
        -bp -bpa -bpc -bpr -bpra -bpru -bpu output.
    run_message_action(config, mode, args, out, user=None) -> int
        -Mvh -Mvb -Mvl -Mvc -Mrm -Mf -Mt -Mg -Mar -Mmd -Mmad -Mes.
    message_variables(config, id) -> dict[str, str]
        What -Mset makes available to -be ($message_exim_id,
        $sender_address, $recipients, $message_body ...).
    message_for_expansion(config, id) -> (variables, [(type, text)], body)
        The same plus the headers and body, for ``-be -Mset ID``.
    list_line(...), format_size(n), format_age(secs)
        The -bp pieces, shared with spool_tools (mailq, exipick).

    Each returns the exit status; messages go to ``out`` (stdout), as
    Exim prints them (Exim prints these on stdout, errors included).

DESCRIPTION
    Output is byte-compatible with Exim 4.96: the -bp layout (age, size
    in string_format_size form, id, <sender>, "*** frozen ***", recipients
    with D / +D marks, a blank line), the error lines for corrupt spool
    files ("*** spool format error: size=N ***"), and the texts and exit
    codes of each -M action.  Actions that change a message lock its -D
    file first, rewrite -H durably and log "<what> by <user>" lines.

    After a submission, -odi delivers at once and -odb (the default)
    in a detached child, through eximpy.deliver.deliver.deliver_message;
    -odq / -odqs / queue_only leave the message queued.  -Mg logs
    "cancelled by", spools Exim's bounce to the sender from the exim user
    (the same multipart/report Exim sends) and completes the message.

SEE ALSO
    spec 5 ("The Exim command line": -bp, -M...), 57 (spool format).
"""
from __future__ import annotations

import errno
import os
import pwd
import sys
import time
from typing import Any, BinaryIO, Iterable, TextIO

from eximpy.log import format as logfmt
from eximpy.log.writer import LogWriter
from eximpy.message.ids import is_message_id
from eximpy.spool import data_file, header_file, lock, msglog
from eximpy.spool.header_file import SpoolFormatError
from eximpy.spool.layout import SpoolLayout, open_regular
from eximpy.spool.message import HTYPE_OLD, Recipient, SpoolMessage

LIST_MODES = ("bp", "bpa", "bpc", "bpr", "bpra", "bpru", "bpu")
ACTION_MODES = ("Mvh", "Mvb", "Mvl", "Mvc", "Mrm", "Mf", "Mt", "Mg", "Mar",
                "Mmd", "Mmad", "Mes")


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# --- -bp pieces ----------------------------------------------------------

def format_size(size: int) -> str:
    """Exim's string_format_size (5 columns: ``  322``, ``5.2K``, `` 20K``)."""
    if size == 0:
        return "     "
    if size < 1024:
        return f"{size:5d}"
    if size < 10 * 1024:
        return f"{size / 1024.0:4.1f}K"
    if size < 1024 * 1024:
        return f"{(size + 512) // 1024:4d}K"
    if size < 10 * 1024 * 1024:
        return f"{size / (1024.0 * 1024.0):4.1f}M"
    return f"{(size + 512 * 1024) // (1024 * 1024):4d}M"


def format_age(secs: int) -> str:
    """The -bp age column: ``%2dm``, ``%2dh`` (over 90 min) or ``%2dd``
    (over 72 h)."""
    i = int(secs) // 60
    if i > 90:
        i = (i + 30) // 60
        if i > 72:
            return f"{(i + 12) // 24:2d}d"
        return f"{i:2d}h"
    return f"{i:2d}m"


class _Loaded:
    """Result of reading one message for listing."""

    def __init__(self, mid: str, msg: SpoolMessage | None,
                 error: str | None, envelope_error: bool,
                 size: int) -> None:
        self.id, self.msg, self.error = mid, msg, error
        self.envelope_error, self.size = envelope_error, size


def load_for_listing(layout: SpoolLayout, mid: str, directory: str | None
                     = None) -> _Loaded:
    """Read -H (and stat -D) the way Exim's queue listing does; never
    raises for bad files."""
    hpath = os.path.join(directory, mid + "-H") if directory else \
        layout.find(mid, "-H")
    if hpath is None:
        return _Loaded(mid, None, "    *** spool read error: "
                       f"{os.strerror(errno.ENOENT)} ***", True, 0)
    try:
        fd = open_regular(hpath)
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as e:
        return _Loaded(mid, None, f"    *** spool read error: "
                       f"{os.strerror(e.errno or 0)} ***", True, 0)
    msg: SpoolMessage | None
    error = None
    env_err = False
    try:
        msg = header_file.parse(data, mid + "-H")
        hsize = msg.header_size
    except SpoolFormatError as e:
        error = f"    *** spool format error: size={len(data)} ***"
        env_err = e.envelope
        msg = e.partial
        hsize = e.header_bytes
    size = 0
    if msg is not None:
        dpath = os.path.join(os.path.dirname(hpath), mid + "-D")
        try:
            st = os.stat(dpath)
            size = hsize + st.st_size - lock.data_start_offset(mid) + 1
            msg.body_size = st.st_size - lock.data_start_offset(mid)
        except OSError:
            size = 0
    return _Loaded(mid, msg, error, env_err, size)


def list_entry(item: _Loaded, mode: str, now: float) -> str:
    """The -bp text for one message (ending with its blank line)."""
    out: list[str] = []
    msg = item.msg
    if item.envelope_error or msg is None:
        out.append(f"      {item.id}\n")
    else:
        line = (f"{format_age(int(now) - msg.received_time)} "
                f"{format_size(item.size)} {item.id} <{msg.sender}>")
        if msg.frozen:
            line += " *** frozen ***"
        out.append(line + "\n")
    if item.error:
        out.append(item.error + "\n")
    if msg is not None and not item.envelope_error:
        listed = set()
        for r in msg.recipients:
            listed.add(r.address)
            done = r.address in msg.non_recipients
            if mode in ("bpu", "bpru") and done:
                continue
            out.append(f"        {'D' if done else ' '} {r.address}\n")
        if mode in ("bpa", "bpra"):
            for a in msg.non_recipients.inorder():
                if a not in listed:
                    out.append(f"       +D {a}\n")
    out.append("\n")
    return "".join(out)


def _ids_in_order(layout: SpoolLayout, mode: str
                  ) -> list[tuple[str, str]]:
    if mode.startswith("bpr"):
        # Unsorted: directory order, as Exim's readdir gives it.
        out: list[tuple[str, str]] = []
        root = layout.input_root
        try:
            names = os.listdir(root)
        except OSError:
            return []
        subs = []
        for n in names:
            if n.endswith("-H") and is_message_id(n[:-2]):
                out.append((n[:-2], root))
            elif len(n) == 1 and os.path.isdir(os.path.join(root, n)):
                subs.append(n)
        for s in subs:
            d = os.path.join(root, s)
            for n in os.listdir(d):
                if n.endswith("-H") and is_message_id(n[:-2]):
                    out.append((n[:-2], d))
        # Exim's unsorted order is random (it adds each entry at the top or
        # bottom of its list at random); directory order is as good.
        return out
    return layout.list_files()


def run_queue_listing(config: Any, mode: str, ids: Iterable[str],
                      out: TextIO, now: float | None = None,
                      layout: SpoolLayout | None = None) -> int:
    """-bp and friends.  ``ids`` restricts the listing (empty: all)."""
    layout = layout or SpoolLayout.from_config(config)
    now = time.time() if now is None else now
    want = list(ids)
    if mode == "bpc":
        # Exim counts the whole queue even when ids are given.
        out.write(f"{len(_ids_in_order(layout, mode))}\n")
        return 0
    if want:
        # Ids on the command line: in the order given, each looked up.
        for mid in want:
            d = None
            if is_message_id(mid):
                found = layout.find(mid, "-H")
                d = os.path.dirname(found) if found else None
            if d is None:
                out.write(f"      {mid}\n    *** spool read error: "
                          f"{os.strerror(errno.ENOENT)} ***\n\n")
                continue
            out.write(list_entry(load_for_listing(layout, mid, d), mode,
                                 now))
        return 0
    for mid, d in _ids_in_order(layout, mode):
        out.write(list_entry(load_for_listing(layout, mid, d), mode, now))
    return 0


# --- -M actions ------------------------------------------------------------

def _read_raw(path: str | None) -> bytes:
    if path is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    return data_file.read_file(path)


def _bad_address(addr: str) -> str | None:
    if "@" not in addr:
        return f"bad address {addr}: domain missing"
    return None


class _Ctx:
    def __init__(self, config: Any, out: TextIO, user: str | None) -> None:
        self.config = config
        self.out = out
        self.layout = SpoolLayout.from_config(config)
        self.user = user or _user()
        self._log: LogWriter | None = None

    @property
    def log(self) -> LogWriter:
        if self._log is None:
            self._log = LogWriter.from_config(self.config)
        return self._log

    def say(self, text: str) -> None:
        self.out.write(text + "\n")


def _view(ctx: _Ctx, mode: str, mid: str) -> int:
    lay = ctx.layout
    if mode == "Mvh":
        try:
            data = _read_raw(lay.find(mid, "-H"))
        except OSError as e:
            ctx.say(f"Failed to open input file for {mid}-H: "
                    f"{os.strerror(e.errno or 0)}")
            return 1
        _write_bytes(ctx.out, data)
        return 0
    if mode == "Mvb":
        try:
            data = _read_raw(lay.find(mid, "-D"))
        except OSError as e:
            ctx.say(f"Failed to open input file for {mid}-D: "
                    f"{os.strerror(e.errno or 0)}")
            return 1
        _write_bytes(ctx.out, data)
        return 0
    if mode == "Mvl":
        p = lay.find_msglog(mid)
        try:
            data = _read_raw(p)
        except OSError as e:
            ctx.say(f"Failed to open msglog file for {mid}: "
                    f"{os.strerror(e.errno or 0)}")
            return 1
        _write_bytes(ctx.out, data)
        return 0
    # -Mvc: the whole message as it would be transmitted (under the lock).
    dpath = lay.find(mid, "-D")
    if dpath is None:
        ctx.say(f"Spool data file for {mid} does not exist")
        ctx.log.main(f"Spool file {mid}-D not found", mid)
        return 1
    fd = lock.open_locked(lay, mid)
    if fd is None:
        _locked(ctx, mid)
        return 1
    try:
        return _view_whole(ctx, mid, fd)
    finally:
        os.close(fd)


def _view_whole(ctx: _Ctx, mid: str, fd: int) -> int:
    lay = ctx.layout
    try:
        msg = header_file.read(lay.find(mid, "-H") or "")
    except SpoolFormatError:
        ctx.say(f"Spool format error for {mid}-H")
        return 1
    except OSError as e:
        ctx.say(f"Spool read error for {mid}-H: {os.strerror(e.errno or 0)}")
        return 1
    body = data_file.read_body(fd, mid)
    hdrs = "".join(h.text for h in msg.headers if h.type != HTYPE_OLD)
    _write_bytes(ctx.out, hdrs.encode("utf-8", "surrogateescape") + b"\n"
                 + body)
    return 0


def _write_bytes(out: TextIO, data: bytes) -> None:
    buf = getattr(out, "buffer", None)
    if buf is not None:
        out.flush()
        buf.write(data)
        buf.flush()
    else:
        out.write(data.decode("utf-8", "surrogateescape"))


def _remove(ctx: _Ctx, mid: str) -> int:
    lay = ctx.layout
    rc = 0
    fd = None
    if lay.find(mid, "-D") is None:
        ctx.say(f"Spool data file for {mid} does not exist")
        ctx.say("Continuing, to ensure all files removed")
        ctx.log.main(f"Spool file {mid}-D not found", mid)
        rc = 1
    else:
        fd = lock.open_locked(lay, mid)
        if fd is None:
            _locked(ctx, mid)
            return 1
    try:
        if lay.find(mid, "-H") is None:
            ctx.say(f"Spool read error for {mid}-H: "
                    f"{os.strerror(errno.ENOENT)}")
            ctx.say("Continuing to ensure all files removed")
            rc = 1
        if rc == 0:
            ctx.log.main(logfmt.by_user("removed", ctx.user), mid)
        header_file.remove_files(lay, mid)
        if rc == 0:
            ctx.log.main(logfmt.completed(ctx.log.selector), mid)
    finally:
        if fd is not None:
            os.close(fd)
    if rc == 0:
        ctx.say(f"Message {mid} has been removed")
    else:
        ctx.say(f"Message {mid} has been removed or did not exist")
    return rc


def _locked(ctx: _Ctx, mid: str) -> None:
    """Another process (eximpy or Exim) holds the message's -D lock."""
    ctx.log.main(f"Spool file for {mid} is locked (another process is "
                 "handling this message)", mid)
    ctx.say(f"Message {mid} is locked")


def _modify(ctx: _Ctx, mode: str, mid: str, args: list[str]) -> int:
    lay = ctx.layout
    if lay.find(mid, "-D") is None:
        ctx.say(f"Spool data file for {mid} does not exist")
        ctx.log.main(f"Spool file {mid}-D not found", mid)
        return 1
    fd = lock.open_locked(lay, mid)
    if fd is None:
        if mode == "Mg":        # Exim's -Mg leaves it to the lock holder
            return 0
        _locked(ctx, mid)
        return 1
    try:
        split = lay.find_split(mid)
        try:
            msg = header_file.read(lay.file(mid, "-H", split))
        except SpoolFormatError:
            ctx.say(f"Spool format error for {mid}-H")
            return 1
        except OSError as e:
            ctx.say(f"Spool read error for {mid}-H: "
                    f"{os.strerror(e.errno or 0)}")
            return 1
        return _apply(ctx, mode, msg, args, split)
    finally:
        os.close(fd)


def _apply(ctx: _Ctx, mode: str, msg: SpoolMessage, args: list[str],
           split: bool | None) -> int:
    mid = msg.id
    log = ctx.log
    user = ctx.user

    def save() -> None:
        header_file.write(ctx.layout, msg, split)

    if mode == "Mf":
        if msg.frozen:
            ctx.say(f"Message {mid} is already frozen")
            return 1
        msg.frozen, msg.frozen_at = True, int(time.time())
        msg.manual_thaw = False
        save()
        log.main(logfmt.by_user("frozen", user), mid)
        ctx.say(f"Message {mid} is now frozen")
        return 0
    if mode == "Mt":
        if not msg.frozen:
            ctx.say(f"Message {mid} is not frozen")
            return 1
        msg.frozen, msg.frozen_at, msg.manual_thaw = False, 0, True
        save()
        log.main(logfmt.by_user("unfrozen", user), mid)
        ctx.say(f"Message {mid} is no longer frozen")
        return 0
    if mode == "Mmd":
        # As Exim: each address is logged as it is done; an error stops
        # before the -H file is rewritten ("message not updated").
        for a in args:
            bad = _bad_address(a)
            if bad is None and a not in [r.address for r in msg.recipients]:
                bad = f"{a} is not a recipient: message not updated"
            if bad:
                ctx.say(f"Message {mid} - error while marking as delivered:")
                ctx.say(f"  {bad}")
                return 1
            msg.non_recipients.add(a)
            log.main(f"address <{a}> marked delivered by {user}", mid)
        save()
        ctx.say(f"Message {mid} has been modified")
        return 0
    if mode == "Mmad":
        # Exim logs every recipient, including ones already delivered.
        marked = [r.address for r in msg.recipients]
        for a in marked:
            msg.non_recipients.add(a)
        save()
        for a in marked:
            log.main(f"address <{a}> marked delivered by {user}", mid)
        ctx.say(f"Message {mid} has been modified")
        return 0
    if mode == "Mar":
        for a in args:
            bad = _bad_address(a)
            if bad:
                ctx.say(f"Message {mid} - error while adding recipient:")
                ctx.say(f"  {bad}")
                return 1
            msg.recipients.append(Recipient(a))
            log.main(f"recipient <{a}> added by {user}", mid)
        save()
        ctx.say(f"Message {mid} has been modified")
        return 0
    if mode == "Mes":
        new = args[0] if args else ""
        bad = _bad_address(new) if new not in ("", "<>") else None
        if bad:
            ctx.say(f"Message {mid} - error while editing sender:")
            ctx.say(f"  {bad}")
            return 1
        msg.sender = "" if new in ("", "<>") else new
        save()
        log.main(f"sender address changed to <{msg.sender}> by {user}", mid)
        ctx.say(f"Message {mid} has been modified")
        return 0
    if mode == "Mg":
        log.main(logfmt.by_user("cancelled", user), mid)
        try:
            from eximpy.deliver import deliver_message  # type: ignore
        except ImportError:
            deliver_message = None
        if deliver_message is not None:
            return 0 if deliver_message(ctx.config, mid, give_up=True) else 1
        _give_up_bounce(ctx, msg)
        header_file.remove_files(ctx.layout, mid)
        log.main(logfmt.completed(log.selector), mid)
        return 0
    raise ValueError(mode)


# Exim seeds nothing before its first random() call in a fresh process, so
# the first MIME boundary suffix is glibc's first random() value.
_FIRST_RANDOM = 1804289383


def _give_up_bounce(ctx: _Ctx, msg: SpoolMessage) -> str | None:
    """-Mg without a delivery subsystem: send the sender the bounce Exim
    sends ("Mail delivery failed: returning message to sender", a
    multipart/report with the returned message), spooled from the exim
    user as Exim does.  Returns the bounce's id (None for a bounce of a
    bounce, which Exim does not send either)."""
    import io as _io
    from eximpy.receive import LocalOptions, receive_local
    from eximpy.spool.layout import config_get
    if not msg.sender:
        return None
    failed = [r.address for r in msg.undelivered()]
    cfg = ctx.config
    primary = config_get(cfg, "primary_hostname") or os.uname().nodename
    qdom = config_get(cfg, "qualify_domain") or primary
    now = time.time()
    boundary = f"{int(now)}-eximdsn-{_FIRST_RANDOM}"
    xfr = ",\n  ".join(reversed(failed))
    dpath = ctx.layout.find(msg.id, "-D")
    body = data_file.read_file(dpath)[lock.data_start_offset(msg.id):] \
        if dpath else b""
    returned = (f"Return-path: <{msg.sender}>\n" +
                "".join(h.text for h in msg.headers if h.type != HTYPE_OLD)
                + "\n").encode("utf-8", "surrogateescape") + body
    text = (f"X-Failed-Recipients: {xfr}\n"
            "Auto-Submitted: auto-replied\n"
            f"From: Mail Delivery System <Mailer-Daemon@{qdom}>\n"
            f"To: {msg.sender}\n"
            f"References: <E{msg.id}@{primary}>\n"
            "Content-Type: multipart/report; report-type=delivery-status; "
            f"boundary={boundary}\n"
            "MIME-Version: 1.0\n"
            "Subject: Mail delivery failed: returning message to sender\n"
            "\n"
            f"--{boundary}\n"
            "Content-type: text/plain; charset=us-ascii\n\n"
            "This message was created automatically by mail delivery "
            "software.\n\n"
            "A message that you sent could not be delivered to one or more "
            "of its\nrecipients. This is a permanent error. The following "
            "address(es) failed:\n\n" +
            "".join(f"  {a}\n" for a in reversed(failed)) + "\n"
            f"--{boundary}\n"
            "Content-type: message/delivery-status\n\n"
            f"Reporting-MTA: dns; {primary}\n\n" +
            "".join(f"Action: failed\nFinal-Recipient: rfc822;{a}\n"
                    "Status: 5.0.0\n\n" for a in failed) +
            f"--{boundary}\n"
            "Content-type: message/rfc822\n\n").encode(
                "utf-8", "surrogateescape") + returned + \
        f"\n--{boundary}--\n".encode()
    uid, gid = ctx.layout.uid, ctx.layout.gid
    login = None
    if uid is not None:
        try:
            login = pwd.getpwuid(uid).pw_name
        except KeyError:
            login = str(uid)
    res = receive_local(cfg, "", [msg.sender], _io.BytesIO(text),
                        LocalOptions(dot_ends=False, login=login,
                                     uid=uid, gid=gid, gecos="",
                                     log=ctx.log, bounce_parent=msg.id,
                                     local_error=True))
    return res.id


def run_message_action(config: Any, mode: str, args: list[str],
                       out: TextIO, user: str | None = None) -> int:
    """-Mvh/-Mvb/-Mvl/-Mvc/-Mrm/-Mf/-Mt/-Mg (args = ids) and
    -Mar/-Mmd/-Mes (args = id, then addresses) and -Mmad (ids)."""
    ctx = _Ctx(config, out, user)
    if not args:
        return 1
    if mode in ("Mar", "Mmd", "Mes"):
        ids, rest = [args[0]], args[1:]
    else:
        ids, rest = list(args), []
    for mid in ids:
        if not is_message_id(mid):
            sys.stderr.write(f"exim: malformed message id {mid} after "
                             f"-{mode} option\n")
            return 1
    rc = 0
    for mid in ids:
        if mode in ("Mvh", "Mvb", "Mvl", "Mvc"):
            r = _view(ctx, mode, mid)
        elif mode == "Mrm":
            r = _remove(ctx, mid)
        else:
            r = _modify(ctx, mode, mid, rest)
        if mode == "Mmad":          # Exim ends each -Mmad report so
            ctx.say("")
        rc = rc or r
    return rc


def message_variables(config: Any, mid: str) -> dict[str, str]:
    """Expansion variables for -Mset (``$message_exim_id`` etc.).

    Raises SpoolFormatError / OSError if the message cannot be read.
    """
    lay = SpoolLayout.from_config(config)
    path = lay.find(mid, "-H")
    if path is None:
        raise FileNotFoundError(errno.ENOENT, "spool file not found", mid)
    msg = header_file.read(path)
    dpath = lay.find(mid, "-D")
    body = b""
    if dpath:
        body = data_file.read_file(dpath)[lock.data_start_offset(mid):]
        msg.body_size = len(body)
    b = body.decode("utf-8", "surrogateescape")
    v = {
        "message_exim_id": msg.id, "message_id": msg.id,
        "sender_address": msg.sender,
        "recipients": ", ".join(r.address for r in msg.recipients),
        "recipients_count": str(len(msg.recipients)),
        "message_size": str(msg.message_size),
        "message_body_size": str(len(body)),
        "message_linecount": str(msg.linecount),
        "body_linecount": str(msg.body_linecount),
        "body_zerocount": str(msg.body_zerocount),
        "message_body": b[:500].replace("\n", " "),
        "message_body_end": b[-500:].replace("\n", " "),
        "received_protocol": msg.received_protocol or "",
        "sender_host_address": msg.host_address or "",
        "sender_host_name": msg.host_name or "",
        "sender_helo_name": msg.helo_name or "",
        "sender_ident": msg.ident or "",
        "authenticated_id": msg.auth_id or "",
        "authenticated_sender": msg.auth_sender or "",
        "received_time": str(msg.received_time),
        "message_age": str(int(time.time()) - msg.received_time),
        "originator_uid": str(msg.originator_uid),
        "originator_gid": str(msg.originator_gid),
        "tls_in_cipher": msg.tls_cipher or "",
        "tls_in_peerdn": msg.tls_peerdn or "",
        "tls_in_sni": msg.tls_sni or "",
        "dsn_envid": msg.dsn_envid or "",
    }
    for name, value in msg.acl_vars.items():
        v["acl_" + name] = value
    return v


def message_for_expansion(config: Any, mid: str
                          ) -> tuple[dict[str, str], list[tuple[str, str]],
                                     bytes]:
    """What ``-be -Mset ID`` needs: (variables as message_variables(),
    headers as (type letter, full text) in spool order without deleted
    ``*`` ones, body bytes).  Raises OSError / SpoolFormatError."""
    variables = message_variables(config, mid)
    lay = SpoolLayout.from_config(config)
    msg = header_file.read(lay.find(mid, "-H") or "")
    dpath = lay.find(mid, "-D")
    body = data_file.read_file(dpath)[lock.data_start_offset(mid):] \
        if dpath else b""
    headers = [(h.type, h.text) for h in msg.headers if h.type != HTYPE_OLD]
    return variables, headers, body


def run(config: Any, inv: Any, out: TextIO) -> int:
    """Entry point used by eximpy.cli.modes for every queue mode."""
    mode = inv.mode
    if mode in LIST_MODES:
        return run_queue_listing(config, mode, inv.args, out)
    if mode == "Mset":
        mid = inv.mode_arg or (inv.args[0] if inv.args else "")
        try:
            message_variables(config, mid)
        except (OSError, SpoolFormatError, ValueError) as e:
            out.write(f"Failed to load message {mid}: {e}\n")
            return 1
        return 0
    if mode in ACTION_MODES:
        return run_message_action(config, mode, list(inv.args), out)
    sys.stderr.write(f"eximpy: queue mode -{mode} is not implemented\n")
    return 2


USAGE = ("Exim is a Mail Transfer Agent. It is normally called by Mail User "
         "Agents,\nnot directly from a shell command line. Options and/or "
         "arguments control\nwhat it does when called. For a list of "
         "options, see the Exim documentation.\n")


def run_local_submission(config: Any, inv: Any, stdin: BinaryIO) -> int:
    """The default mode: receive a message from ``stdin`` and spool it."""
    from eximpy.receive import LocalOptions, ReceiveError, receive_local
    from eximpy.trust import is_trusted
    if not inv.args and not inv.extract_recipients:
        sys.stderr.write(USAGE)
        return 1
    log = LogWriter.from_config(config)
    opts = LocalOptions(extract_recipients=inv.extract_recipients,
                        dot_ends=inv.dot_ends, sender_name=inv.sender_name,
                        received_protocol=inv.received_protocol,
                        trusted=is_trusted(config), log=log)
    try:
        res = receive_local(config, inv.sender, list(inv.args), stdin, opts)
    except ReceiveError as e:
        if e.panic:
            log.panic(e.message, e.mid)
            sys.stderr.write(log.line(e.message, e.mid))
        elif not e.logged:
            sys.stderr.write(f"exim: {e.message}\n")
        return e.exit_status
    mode = inv.delivery_mode
    from eximpy.spool.layout import config_get
    if mode == "q" or config_get(config, "queue_only") or res.queued:
        return 0
    # -odqs: a delivery process as for -odb, but SMTP deliveries wait.
    _deliver_after_submission(config, res.id, log,
                              background=mode not in ("i", "f"),
                              queue_smtp=mode == "qs")
    return 0


def _deliver_after_submission(config: Any, mid: str, log: LogWriter,
                              background: bool,
                              queue_smtp: bool = False) -> None:
    """-odi: deliver now; -odb (the default): deliver in a detached child,
    as Exim does.  A message whose delivery cannot start stays queued."""
    try:
        from eximpy.deliver.deliver import deliver_message
    except ImportError:
        return
    if background:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return
        code = 0
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            deliver_message(config, mid, queue_smtp=queue_smtp)
        except BaseException as e:   # the child must never return
            code = 1
            try:
                log.panic(f"delivery of {mid} after submission failed: "
                          f"{e!r}")
            except BaseException:
                pass
        finally:
            os._exit(code)
    try:
        deliver_message(config, mid, queue_smtp=queue_smtp)
    except Exception as e:
        log.panic(f"delivery of {mid} after submission failed: {e!r}")
