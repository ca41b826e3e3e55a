"""Warm local-delivery workers: one long-lived process per mailbox owner.

SUMMARY
    deliver(priv, ids, addr, tp, log, mid, workdir, tctx)
        -> TransportResult, or None when the request cannot be sent to a
           worker (the caller then forks a one-off child as before)
    shutdown()                      end this process's workers (atexit)
    pool_pids() -> {key: pid}       the live workers (tests)

DESCRIPTION
    A privileged delivery process (root, or the delivery role holding
    CAP_SETUID/CAP_SETGID) must not run a transport itself; it used to fork
    a child per local delivery that became the mailbox owner
    (eximpy.deliver.local).  Here the delivering process forks one *worker*
    per (uid, gid, supplementary groups) the first time it needs it.  The
    worker makes every inherited descriptor other than its socket point to
    /dev/null (so it holds no spool file, no log file and no other
    worker's socket), sets RLIMIT_CORE to 0, becomes that user for good
    (eximpy.privilege.run_as: real, effective and saved ids, the groups,
    every capability gone), asks for SIGTERM when its parent dies
    (PR_SET_PDEATHSIG, set after the id change, which clears it), and then
    serves delivery requests from the parent over a Unix socketpair until
    the parent closes it, the parent dies, or it has been idle for
    WORKER_IDLE seconds.  Lookups a transport makes (as the user) are not
    cached from one request to the next.

    At most WORKER_MAX workers live at a time; the least recently used one
    is ended to make room.  The parent also ends workers idle longer than
    WORKER_IDLE when it next looks for one.  A forked child of the parent
    (a parallel queue runner, a delivery slot) starts with an empty pool
    and closes its inherited copies of the parent's sockets.

PROTOCOL
    Frames are a 4-byte big-endian length and a payload.

    Parent to worker (trusted direction): a pickle of
        {"seq": int, "token": int, "message": None | (msg, body, headers),
         "rctx": {routing-context fields}, "addr": Address, "tp": transport,
         "workdir": str}
    where the configuration, its router and transport instances are sent
    as references (a pickle dispatch_table) to the worker's own copy of the
    configuration, inherited at fork.  "message" is sent only when the
    worker has not seen this delivery's message yet (token).  Whatever
    cannot be pickled this way (a callable, an instance not in the
    configuration) makes deliver() return None.

    Worker to parent (untrusted direction), first byte:
        H                  ready (after the id change)
        F                  the id change failed; the worker exits 1
        R seq(8) report    eximpy.deliver.local.encode_report() JSON
        B                  the worker is leaving and did NOT read any
                           request after its last R (idle, parent gone,
                           SIGTERM); the parent starts a new worker and
                           sends the request again
    The parent reads at most local.REPORT_LIMIT bytes of a frame, checks
    the sequence number and validates the report with decode_report().  A
    worker that dies, says something else, or sends anything malformed is
    killed; the address is deferred exactly as for a one-off child that
    crashed ("failed to read delivery status ..." and the exit status
    lines, freezing on a non-zero exit), and the next request starts a new
    worker.  A transport that raises something other than OSError /
    NotImplementedError makes the worker exit 1 without a report (as the
    one-off child did).

SECURITY
    The worker never holds privilege after run_as() and cannot regain it
    (all three uids changed, no capabilities).  It never unpickles data
    from anywhere but its parent; the parent never unpickles anything from
    a worker.  A worker serves exactly one (uid, gid, groups) key and is
    sent a message only when it has one of that message's addresses to
    deliver (then it sees the message's envelope and body, as the one-off
    child and Exim's delivery subprocess do).  A worker that cannot become
    its user sends F; the parent logs Exim's "unable to set gid=G or
    uid=U" panic line for the address and defers it.
    Descriptors inherited from the parent are replaced by /dev/null before
    the id change, and the socket is close-on-exec, so commands run by the
    pipe transport hold neither.

SEE ALSO
    eximpy.deliver.local (ids, report format, the one-off child);
    eximpy.privilege; DESIGN.md section 2.
"""
from __future__ import annotations

import atexit
import io
import itertools
import os
import pickle
import select
import signal
import socket
import struct
import time
from typing import Any

WORKER_MAX = 8
WORKER_IDLE = 60.0
_HDR = struct.Struct(">I")
_SEQ = struct.Struct(">Q")
# Routing-context fields that are not sent: rebuilt in the worker or not
# needed by a transport (and often not picklable).
_RCTX_SKIP = frozenset({
    "config", "log", "logwriter", "routers", "addr_local", "addr_remote",
    "addr_new", "addr_succeed", "lookup_cache", "trace", "list_caches",
    "headers"})
_TOKENS = itertools.count(1)
# The pool of this process (a cache of child processes): {"pool": _Pool}
_STATE: dict[str, Any] = {}


class _NotSent(Exception):
    """The request cannot be sent to a worker (pickling failed)."""


# ----------------------------------------------------------------------
# framing
def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HDR.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            b = sock.recv(min(n - len(buf), 1 << 20))
        except InterruptedError:
            continue
        except OSError:
            return None
        if not b:
            return None
        buf += b
    return bytes(buf)


_OVERSIZE = b"\0"      # a frame longer than the reader's limit


def _recv_frame(sock: socket.socket, limit: int) -> bytes | None:
    """One frame; None at EOF or on an error; _OVERSIZE (unread) when it
    is longer than limit."""
    h = _recv_exact(sock, _HDR.size)
    if h is None:
        return None
    (n,) = _HDR.unpack(h)
    if n > limit:
        return _OVERSIZE
    return _recv_exact(sock, n)


# ----------------------------------------------------------------------
# references to the configuration
def _ref_table(config: Any) -> dict[int, tuple]:
    refs: dict[int, tuple] = {id(config): ("C",)}
    main = getattr(config, "main", None)
    if main is not None:
        refs[id(main)] = ("M",)
    for tag, seq in (("R", config.routers), ("T", config.transports),
                     ("A", getattr(config, "authenticators", []))):
        for i, inst in enumerate(seq):
            refs[id(inst)] = (tag, i)
    return refs


def _resolve(config: Any, pid: tuple) -> Any:
    tag = pid[0]
    if tag not in ("C", "M", "R", "T", "A"):
        raise pickle.UnpicklingError(f"bad reference {pid!r}")
    if tag == "C":
        return config
    if tag == "M":
        return config.main
    seq = {"R": config.routers, "T": config.transports,
           "A": getattr(config, "authenticators", [])}[tag]
    return seq[pid[1]]


def _ref(tag: str, index: int) -> Any:
    """Unpickling a configuration reference in a worker."""
    return _resolve(_STATE["config"], (tag, index))


class _Pickler(pickle.Pickler):
    """Sends the configuration and its instances as references.  A
    dispatch_table entry is consulted only for objects of those classes
    (no Python call for every other object)."""

    def __init__(self, f: Any, refs: dict[int, tuple]) -> None:
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        from eximpy.config.model import Config, DriverInstance
        from eximpy.config.options import OptionStore

        def reduce(obj: Any) -> Any:
            ref = refs.get(id(obj))
            if ref is None:
                raise _NotSent(f"not part of the configuration: {obj!r}")
            return _ref, (ref[0], ref[1] if len(ref) > 1 else 0)
        import copyreg
        self.dispatch_table = dict(copyreg.dispatch_table)
        self.dispatch_table.update({Config: reduce, DriverInstance: reduce,
                                    OptionStore: reduce})


def _detached(addr: Any) -> Any:
    """A copy of addr and its ancestors without their children lists (a
    big alias expansion is not sent with every request)."""
    def shallow(a: Any) -> Any:
        b = object.__new__(type(a))
        b.__dict__.update(a.__dict__)
        b.children = []
        return b
    out = shallow(addr)
    cur = out
    while cur.parent is not None:
        cur.parent = shallow(cur.parent)
        cur = cur.parent
    return out


# ----------------------------------------------------------------------
# the parent's side
class _Worker:
    def __init__(self, key: tuple, pid: int, sock: socket.socket) -> None:
        self.key = key
        self.pid = pid
        self.sock = sock
        self.token = 0          # message token last sent
        self.used = time.monotonic()


class _Pool:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.owner = os.getpid()
        self.refs = _ref_table(config)
        self.workers: dict[tuple, _Worker] = {}
        self.leaving: list[int] = []        # pids told to leave, not reaped
        self.seq = itertools.count(1)

    # -- lifetime ------------------------------------------------------
    def end(self, w: _Worker, kill: bool = False, wait: bool = True) -> int:
        """Close a worker's socket and reap it; its wait status.  With
        wait=False (an idle worker, which leaves at EOF) it is reaped
        later, so that making room never waits for a process to exit."""
        self.workers.pop(w.key, None)
        if kill:
            try:
                os.kill(w.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            w.sock.close()
        except OSError:
            pass
        if not wait:
            self.leaving.append(w.pid)
            self.reap()
            return 0
        try:
            return os.waitpid(w.pid, 0)[1]
        except ChildProcessError:
            return 0

    def reap(self, block: bool = False) -> None:
        """Reap workers that were told to leave."""
        for pid in list(self.leaving):
            try:
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.leaving.remove(pid)

    def sweep(self) -> None:
        now = time.monotonic()
        for w in list(self.workers.values()):
            if now - w.used > WORKER_IDLE:
                self.end(w, wait=False)
        if self.leaving:
            self.reap()

    def shutdown(self) -> None:
        for w in list(self.workers.values()):
            self.end(w, wait=False)
        self.reap(block=True)

    def spawn(self, key: tuple) -> tuple[_Worker | None, int]:
        """A new worker for key, or (None, wait status) when it could not
        become the user."""
        while len(self.workers) >= WORKER_MAX:
            lru = min(self.workers.values(), key=lambda x: x.used)
            self.end(lru, wait=False)
        from eximpy.deliver.deliver import _warm_imports
        _warm_imports()
        ps, cs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ps.close()
                code = _worker_main(cs, self.config, key, parent)
            except BaseException:  # noqa: BLE001 - a worker never returns
                code = 1
            finally:
                os._exit(code)
        cs.close()
        w = _Worker(key, pid, ps)
        hello = _recv_frame(ps, 64)
        if hello == b"H":
            self.workers[key] = w
            return w, 0
        return None, self.end(w, kill=hello != b"F")


def _pool(config: Any) -> _Pool:
    pool = _STATE.get("pool")
    if pool is not None and (pool.owner != os.getpid() or
                             pool.config is not config):
        if pool.owner == os.getpid():
            pool.shutdown()
        pool = None
    if pool is None:
        pool = _Pool(config)
        _STATE["pool"] = pool
    return pool


def _after_fork_in_child() -> None:
    """A forked child does not share its parent's workers: it closes its
    copies of their sockets (so they still end with the parent)."""
    pool = _STATE.pop("pool", None)
    if pool is not None:
        pool.leaving.clear()            # not this process's children
        for w in pool.workers.values():
            try:
                w.sock.close()
            except OSError:
                pass


os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown() -> None:
    """End this process's workers (they would also end on their own when
    this process exits)."""
    pool = _STATE.get("pool")
    if pool is not None and pool.owner == os.getpid():
        pool.shutdown()
    _STATE.pop("pool", None)


atexit.register(shutdown)


def pool_pids() -> dict[tuple, int]:
    pool = _STATE.get("pool")
    if pool is None or pool.owner != os.getpid():
        return {}
    return {k: w.pid for k, w in pool.workers.items()}


def _request(pool: _Pool, w: _Worker, seq: int, addr: Any, tp: Any,
             workdir: str, tctx: Any) -> bytes:
    token = getattr(tctx, "_worker_token", None)
    if token is None:
        token = next(_TOKENS)
        tctx._worker_token = token
    rctx = tctx.rctx
    req = {"seq": seq, "token": token,
           "message": None if w.token == token else
           (tctx.msg, tctx.body, rctx.headers),
           "rctx": {k: v for k, v in rctx.__dict__.items()
                    if k not in _RCTX_SKIP},
           "addr": _detached(addr), "tp": tp, "workdir": workdir}
    f = io.BytesIO()
    try:
        _Pickler(f, pool.refs).dump(req)
    except _NotSent:
        raise
    except Exception as e:  # noqa: BLE001 - unpicklable state
        raise _NotSent(str(e)) from None
    return f.getvalue()


def deliver(priv: Any, ids: Any, addr: Any, tp: Any, log: Any, mid: str,
            workdir: str, tctx: Any) -> Any:
    """Run tp for addr as ids in the warm worker of that user; see the
    module docstring.  None: not possible, use a one-off child."""
    from eximpy import routing as R
    from eximpy.deliver import local as L
    from eximpy.transports._write import TransportResult
    try:
        groups = L._groups(ids)
    except OSError as e:
        log.panic(str(e), mid)
        return _lost(addr, tp, log, mid, 1 << 8)
    key = (ids.uid, ids.gid, groups)
    pool = _pool(tctx.config)
    pool.sweep()
    for _attempt in range(3):
        w = pool.workers.get(key)
        if w is None:
            w, status = pool.spawn(key)
            if w is None:
                log.panic(f"unable to set gid={ids.gid} or uid={ids.uid} "
                          f"(euid={os.geteuid()}): local delivery to "
                          f"{addr.local_part} <{addr.address}> "
                          f"transport={tp.name}", mid)
                return _lost(addr, tp, log, mid, status)
        w.used = time.monotonic()
        seq = next(pool.seq)
        try:
            payload = _request(pool, w, seq, addr, tp, workdir, tctx)
        except _NotSent:
            return None
        try:
            _send_frame(w.sock, payload)
        except OSError:
            pool.end(w)             # gone before reading it: send again
            continue
        w.token = tctx._worker_token
        frame = _recv_frame(w.sock, L.REPORT_LIMIT + 16)
        if frame == b"B":
            pool.end(w)             # left without reading it: send again
            continue
        rep = None
        if frame is not None and frame[:1] == b"R" and len(frame) >= 9 and \
                _SEQ.unpack(frame[1:9])[0] == seq:
            rep = L.decode_report(frame[9:])
        if rep is None:
            status = pool.end(w, kill=frame is not None)
            return _lost(addr, tp, log, mid, status)
        if rep["delivered_path"] is not None:
            addr.delivered_path = rep["delivered_path"]
        res = TransportResult(rep["status"], rep["message"], rep["errno"],
                              rep["more_errno"], rep["user_message"],
                              rep["special_action"], rep["returned_output"])
        if rep["reply"] is not None and res.status == R.OK:
            from eximpy.transports.autoreply import submit_reply
            res = submit_reply(tctx, rep["reply"], ids.uid, ids.gid) or res
        return res
    return _lost(addr, tp, log, mid, 0)


def _lost(addr: Any, tp: Any, log: Any, mid: str, status: int) -> Any:
    """No report: defer as Exim does for a delivery process that said
    nothing (and freeze on a non-zero exit)."""
    from eximpy import routing as R
    from eximpy.deliver import local as L
    from eximpy.transports._write import TransportResult
    log.panic(f"failed to read delivery status for {addr.address} "
              f"from delivery subprocess", mid)
    return TransportResult(R.DEFER, None, -1,
                           special_action=L._child_status(status, tp, log, mid))


# ----------------------------------------------------------------------
# the worker's side
def _neutralise_fds(keep: int) -> None:
    """Point every descriptor but ``keep`` at /dev/null (numbers stay taken,
    so a stale file object inherited from the parent cannot hit a file
    this worker opens later).  In a chroot jail without /dev/null the
    read end of an empty pipe whose write end is closed serves instead."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        null, w = os.pipe()
        os.close(w)
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        fds = list(range(min(soft if soft > 0 else 1024, 65536)))
    for fd in fds:
        if fd in (keep, null):
            continue
        try:
            os.dup2(null, fd, inheritable=fd < 3)
        except OSError:
            pass
    os.close(null)


def _worker_main(sock: socket.socket, config: Any, key: tuple,
                 parent: int) -> int:
    import resource

    from eximpy import privilege
    uid, gid, groups = key
    _STATE["config"] = config
    _neutralise_fds(sock.fileno())
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        pass
    state = {"busy": False, "stop": False}

    def on_term(_sig: int, _frame: Any) -> None:
        if state["busy"]:
            state["stop"] = True
            return
        try:
            _send_frame(sock, b"B")
        except OSError:
            pass
        os._exit(0)
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    try:
        privilege.run_as(uid, gid, groups)
    except (OSError, privilege.PrivilegeError):
        _send_frame(sock, b"F")
        return 1
    try:
        privilege.set_parent_death_signal(signal.SIGTERM)
    except OSError:
        pass
    if os.getppid() != parent:
        return 0
    _send_frame(sock, b"H")
    return _serve(sock, config, state)


def _serve(sock: socket.socket, config: Any, state: dict[str, bool]) -> int:
    from eximpy import routing as R
    from eximpy.log.writer import LogWriter
    from eximpy.lookups.cache import tidyup
    wlog = LogWriter.from_config(config)
    base = R.RoutingContext(config, log=lambda m, panic=False, main=True:
                            (wlog.panic if panic else wlog.main)(m))
    template = dict(base.__dict__)
    umask = os.umask(0o022)
    os.umask(umask)
    drivers: dict[str, Any] = {}
    current: tuple[int, tuple] | None = None
    while True:
        if state["stop"]:
            _send_frame(sock, b"B")
            return 0
        try:
            ready, _, _ = select.select([sock], [], [], WORKER_IDLE)
        except InterruptedError:
            continue
        state["busy"] = True
        if not ready:
            _send_frame(sock, b"B")
            return 0
        frame = _recv_frame(sock, 1 << 40)
        if frame is None:
            return 0
        req = pickle.loads(frame)
        if req["message"] is not None:
            current = (req["token"], req["message"])
        if current is None or current[0] != req["token"]:
            return 1
        os.umask(umask)
        report = _run_one(config, req, current[1], template, wlog, drivers)
        tidyup()            # nothing cached from one delivery to the next
        _send_frame(sock, b"R" + _SEQ.pack(req["seq"]) + report)
        state["busy"] = False


def _run_one(config: Any, req: dict, message: tuple, template: dict,
             wlog: Any, drivers: dict[str, Any]) -> bytes:
    from eximpy import routing as R
    from eximpy.deliver.local import encode_report
    from eximpy.transports._write import TransportContext, TransportResult
    msg, body, headers = message
    rctx = object.__new__(R.RoutingContext)
    rctx.__dict__.update(template)
    rctx.__dict__.update(req["rctx"])
    rctx.headers = headers
    rctx.lookup_cache = None
    rctx.logwriter = wlog
    for k in ("addr_local", "addr_remote", "addr_new", "addr_succeed"):
        setattr(rctx, k, [])
    tctx = TransportContext(config, msg, body, rctx)
    tctx.log = wlog
    replies: list[bytes] = []
    tctx.submit_reply = replies.append
    addr, tp, workdir = req["addr"], req["tp"], req["workdir"]
    try:
        os.chdir(workdir)
    except OSError as e:
        res = TransportResult(R.DEFER, f"{os.strerror(e.errno or 0)}: "
                              f"failed to chdir to {workdir}", e.errno or 0)
    else:
        driver = drivers.get(tp.name)
        if driver is None:
            driver = drivers[tp.name] = tp.info.factory(tp)
        try:
            res = driver.deliver(addr, tctx)
        except NotImplementedError as e:
            res = TransportResult(R.DEFER, str(e))
        except OSError as e:
            res = TransportResult(R.DEFER, f"{tp.name} transport: "
                                  f"{os.strerror(e.errno or 0)}", e.errno or 0)
    return encode_report(res, addr, replies[0] if replies else None)
