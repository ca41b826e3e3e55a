"""The system filter: run once per delivery attempt, before routing.

SUMMARY
    run_system_filter(delivery, msg, body) -> SystemFilterOutcome | None

DESCRIPTION
    As Exim's deliver_message(): the file named by system_filter (an Exim
    filter; expanded) is interpreted with eximpy.routers._filter's language
    plus the commands only a system filter has -- ``fail``, ``freeze`` and
    ``defer`` (each optionally followed by ``text`` and a string; they end
    the filter), ``headers add <string>`` and ``headers remove <list>``
    (immediate changes to the message's headers) -- with $recipients set,
    first_delivery and manually_thawed true to their meaning, and logfile /
    logwrite writing while the filter runs.

    The outcome says what happens to the original recipients:
      accept   routed as usual;
      ignore   a significant delivery was set up: "original recipients
               ignored (system filter)", or "=> discarded (system filter)"
               when nothing was generated;
      defer    "Delivery deferred by system filter" (main and message log);
      freeze   frozen " by the system filter[: text]" (not after a manual
               thaw);
      fail     "cancelled by system filter[: text]" (text between << and >>
               only, when given so); the recipients bounce with the text,
               or "delivery cancelled".
    Generated addresses get the parent "system-filter@<qualify_domain_
    recipient>"; pipes, files and replies use system_filter_pipe/file/
    directory/reply_transport and run as system_filter_user/group (else
    the current ids).  An error in the filter is logged to the main and
    panic logs ("Error in system filter: ...") and the delivery is not
    attempted.

SECURITY
    The filter file is the administrator's; its generated pipes and files
    run as system_filter_user (or as the delivery process itself).

SEE ALSO
    spec chapter 47 "System-wide message filtering"; filter.txt; Exim
    deliver.c (the system filter part).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from eximpy.routers._filter import FilterError, _Filter, is_exim_filter


class _Stop(Exception):
    def __init__(self, kind: str, text: str | None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.text = text


class _NoRouter:
    """Stands in for the redirect router a user filter runs under."""

    name = "system filter"

    def opt(self, name: str) -> Any:
        return None


@dataclass
class SystemFilterOutcome:
    process: str = "accept"         # accept ignore defer freeze fail
    message: str | None = None      # text for fail (bounce) / freeze
    frozen_info: str = ""
    new: list[Any] = field(default_factory=list)
    deferred: list[Any] = field(default_factory=list)  # no transport found


class _SystemFilter(_Filter):
    """The user filter language plus the system-filter-only commands."""

    def __init__(self, text: str, rctx: Any, msg: Any,
                 manual_thaw: bool, ids: tuple[int | None, int | None] = (None, None)) -> None:
        super().__init__(text, None, rctx, _NoRouter())
        self.msg = msg
        self.manual_thaw = manual_thaw
        self.stop: _Stop | None = None
        self.ids = ids              # system_filter_user/group
        self.logfile: tuple[str, int] | None = None
        self.errors_to: dict[str, str] = {}

    def run(self) -> Any:
        try:
            self.commands(top=True)
        except _Stop as s:
            self.stop = s
        return self.res

    def _text_arg(self) -> str | None:
        t = self.peek()
        if t is not None and not t.quoted and t.text == "text":
            self.p += 1
            return self.expand(self.arg("text"))
        if t is not None and t.quoted:
            self.p += 1
            return self.expand(t.text)
        return None

    def command(self, execute: bool = True) -> None:
        t = self.peek()
        if t is not None and not t.quoted and t.text in ("fail", "freeze", "defer"):
            self.p += 1
            text = self._text_arg()
            if execute:
                raise _Stop(t.text, text)
            return
        if t is not None and not t.quoted and t.text in ("logfile", "logwrite"):
            self.p += 1
            a = self.arg(t.text)
            mode = 0o600
            nt = self.peek()
            if t.text == "logfile" and nt is not None and not nt.quoted and \
                    nt.text.isdigit():
                self.p += 1
                mode = int(nt.text, 8)
            if execute:
                if t.text == "logfile":
                    self.logfile = (self.expand(a), mode)
                else:
                    self._logwrite(self.expand(a))
            return
        if t is not None and not t.quoted and t.text == "headers":
            nt = self.toks[self.p + 1] if self.p + 1 < len(self.toks) else None
            if nt is not None and not nt.quoted and nt.text in ("add", "remove"):
                self.p += 2
                a = self.arg(f"headers {nt.text}")
                if execute:
                    self._headers(nt.text, a)
                return
        super().command(execute)

    def deliver(self, text: str, significant: bool, errors_to: str | None) -> None:
        """deliver [errors_to <address>]: in a system filter any errors
        address may be given (spec 47.7)."""
        before = len(self.res.addresses)
        super().deliver(text, significant, errors_to)
        if errors_to and len(self.res.addresses) > before:
            self.errors_to[self.res.addresses[-1][0]] = self.expand(errors_to)

    def _logwrite(self, text: str) -> None:
        """Logging happens while the filter runs (filter.txt 3.15): the
        line is appended to the logfile, created with its mode (and owned
        by system_filter_user when the filter would run as that user)."""
        if self.logfile is None:
            return
        path, mode = self.logfile
        if not text.endswith("\n"):
            text += "\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        except OSError as e:
            raise self.err(f"failed to open filter log file {path}: "
                           f"{os.strerror(e.errno or 0)}") from None
        try:
            uid, gid = self.ids
            if uid is not None and os.geteuid() == 0:
                st = os.fstat(fd)
                if st.st_uid == 0:
                    os.fchown(fd, uid, gid if gid is not None else -1)
            os.write(fd, text.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)

    def simple(self, execute: bool) -> bool:
        t = self.peek()
        if t is not None and not t.quoted and t.text == "first_delivery":
            self.p += 1
            return bool(self.msg.deliver_firsttime)
        if t is not None and not t.quoted and t.text == "manually_thawed":
            self.p += 1
            return self.manual_thaw
        return super().simple(execute)

    def _headers(self, what: str, arg: str) -> None:
        from eximpy.errors import ExpansionForcedFail
        from eximpy.spool.message import Header
        try:
            text = self.expand(arg)
        except FilterError:
            if what == "add":
                return
            raise
        except ExpansionForcedFail:
            return
        if what == "add":
            text = text.lstrip()
            if not text:
                return
            if not text.endswith("\n"):
                text += "\n"
            # "\n" followed by a non-space starts another header line
            lines: list[str] = []
            for ln in text.splitlines(keepends=True):
                if lines and ln[:1] in (" ", "\t"):
                    lines[-1] += ln
                else:
                    lines.append(ln)
            for ln in lines:
                self.msg.headers.append(Header(" ", ln))
        else:
            names = {n.strip().lower() for n in text.split(":") if n.strip()}
            for h in self.msg.headers:
                if h.type != "*" and h.name.lower() in names:
                    h.type = "*"
        self.rctx.headers = [(h.text.partition(":")[0], h.text.partition(":")[2],
                              h.type) for h in self.msg.headers if h.type != "*"]


def run_system_filter(d: Any, msg: Any, body: bytes) -> SystemFilterOutcome | None:
    """Run the system filter for the delivery ``d`` (an eximpy.deliver
    _Delivery); None when the delivery must not go on (an error)."""
    from eximpy import routing as R
    from eximpy.address import Address, split_address
    from eximpy.deliver.deliver import _header_pairs, message_variables
    config = d.config
    main = config.main
    name = main.get("system_filter")
    rctx = R.RoutingContext(
        config, R.V_NONE, sender_address=msg.sender,
        variables=message_variables(msg, body), headers=_header_pairs(msg),
        log=lambda m, panic=False, main=True: d.log.main(m, d.mid))
    rctx.variables["recipients"] = ", ".join(
        r.address for r in msg.recipients)
    rctx.variables["return_path"] = msg.sender
    error = None
    text = ""
    try:
        path = rctx.expand(name, None)
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        error = f"failed to open filter file {name!r}: {os.strerror(e.errno or 0)}"
    except Exception as e:  # noqa: BLE001 - expansion failure
        error = f"failed to expand {name!r}: {e}"
    if error is None and not is_exim_filter(text):
        # Exim: a system filter must be an Exim filter (a plain list is
        # taken as a forward file, which the system filter cannot be)
        error = "system filter is not an Exim filter"
    res = None
    flt = None
    uid = main.get("system_filter_user")
    gid = main.get("system_filter_group")
    if isinstance(uid, list):
        uid = uid[0] if uid else None
    if isinstance(gid, list):
        gid = gid[0] if gid else None
    if uid is not None and gid is None:
        import pwd
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = None
    if error is None:
        flt = _SystemFilter(text, rctx, msg, d.manual_thaw, (uid, gid))
        try:
            res = flt.run()
        except FilterError as e:
            error = str(e)
    if error is not None or res is None or flt is None:
        from eximpy.log.format import printing
        d.log.panic(f"Error in system filter: {printing(error or '')}", d.mid)
        return None
    out = SystemFilterOutcome()
    stop = flt.stop
    fmsg = stop.text if stop is not None else None
    if fmsg == "":
        fmsg = None
    if stop is not None and stop.kind == "defer":
        out.process = "defer"
        d.main("Delivery deferred by system filter")
    elif stop is not None and stop.kind == "freeze" and not d.manual_thaw:
        out.process = "freeze"
        out.frozen_info = " by the system filter" + (f": {fmsg}" if fmsg else "")
    elif stop is not None and stop.kind == "fail":
        out.process = "fail"
        logmsg = ""
        if fmsg is not None:
            if fmsg.startswith("<<") and ">>" in fmsg:
                end = fmsg.index(">>")
                logmsg = fmsg[2:end]
                fmsg = fmsg[end + 2:] or None
            else:
                logmsg = fmsg
        out.message = fmsg
        d.main("cancelled by system filter" + (f": {logmsg}" if stop.text else ""),
               msglog="")
    elif res.significant:
        out.process = "ignore"
        if res.addresses:
            d.main("original recipients ignored (system filter)", msglog="")
        else:
            d.main("=> discarded (system filter)", msglog="")
    # Generated addresses, under a "system-filter" parent.
    if res.addresses:
        qd = main.get("qualify_recipient") or main.get("qualify_domain") or \
            main.get("primary_hostname") or ""
        parent = Address("system-filter")
        parent.local_part = "system-filter"
        parent.domain = qd.lower()
        replies = iter(res.reply_list)
        for text_, pfr in res.addresses:
            child = parent.make_child(text_)
            if not pfr:
                if text_ in flt.errors_to:
                    child.prop.errors_address = flt.errors_to[text_]
                split_address(child)
                out.new.append(child)
                continue
            child.pfr = True
            child.unique = f"{text_}:{parent.unique}"
            child.local_part = text_
            child.domain = parent.domain
            child.allow_pipe = child.allow_file = child.allow_reply = True
            child.uid = uid if uid is not None else os.geteuid()
            child.gid = gid if gid is not None else os.getegid()
            child.ugid_set = True
            if text_.startswith("|"):
                kind, opt = "pipe", "system_filter_pipe_transport"
                child.expand_pipe = True
            elif text_.startswith(">"):
                kind, opt = "reply", "system_filter_reply_transport"
                child.reply = dict(next(replies, {}))
                child.reply.setdefault("to", text_[1:])
            elif text_.endswith("/"):
                kind, opt = "directory", "system_filter_directory_transport"
            else:
                kind, opt = "file", "system_filter_file_transport"
            tpname = main.get(opt)
            if tpname:
                try:
                    extra = ({"address_pipe": text_} if kind == "pipe"
                             else {"address_file": text_} if kind != "reply"
                             else {})
                    tpname = rctx.expand(tpname, None, **extra)
                except Exception:  # noqa: BLE001 - expansion failure
                    child.message = (f'failed to expand "{tpname}" as a '
                                     "system filter transport name")
                    tpname = None
            else:
                child.message = f"system_filter_{kind}_transport is unset"
            if tpname:
                tp = config.transport(tpname)
                if tp is None:
                    child.message = (f'failed to find "{tpname}" transport '
                                     "for system filter delivery")
                else:
                    child.transport = tp
            if child.transport is None:
                # deferred at once, on the main and panic logs
                child.basic_errno = -1
                text = (f"== {text_} <system-filter> routing defer (-1): "
                        f"{child.message}")
                d.log.panic(text, d.mid)
                d._msglog(text[3:])
                out.deferred.append(child)
                continue
            out.new.append(child)
    return out
