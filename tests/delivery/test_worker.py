"""Warm local-delivery workers (eximpy.deliver.worker), as root.

Messages are received with eximpy's receive_local and delivered in a
forked child of the test (the process that owns the workers), which
reports its worker pool; the tests check that one worker serves many
deliveries for one (uid, gid, groups), that it holds exactly that user's
ids and no inherited descriptor, that a worker killed in the middle of a
delivery defers the address with Exim's log lines (compared with real
Exim, whose delivery subprocess is killed the same way), that the parent
rejects malformed reports, that the pool is bounded (LRU), that an idle
worker that left is replaced without a deferral, and that workers end
with their parent.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from oracle import EXIM

GROUPS = {"g1": 1, "g2": 2, "g3": 3}       # daemon, bin, sys

CONF = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
begin routers
crash:
  driver = accept
  local_parts = crash
  transport = crash_pipe
md:
  driver = accept
  local_parts = md
  transport = maildir
lk:
  driver = accept
  local_parts = lk
  transport = lk_pipe
st:
  driver = accept
  local_parts = g1 : g2 : g3
  transport = st_$local_part_data
begin transports
crash_pipe:
  driver = pipe
  command = /bin/sh -c 'kill -9 \\$PPID'
lk_pipe:
  driver = pipe
  user = nobody
  command = /bin/sh -c 'echo ${lookup{k}lsearch{@DIR@/out/map}} > @DIR@/out/lk.\\$MESSAGE_ID'
maildir:
  driver = appendfile
  directory = @DIR@/out/Maildir
  maildir_format
  user = nobody
@ST@
begin retry
* * F,1h,10m
"""

ST = """\
st_{g}:
  driver = pipe
  user = nobody
  group = {gid}
  command = /bin/sh -c 'cat /proc/\\$PPID/status > @DIR@/out/status.{g}.\\$MESSAGE_ID'
"""

MSG = b"From: someone@test.example\nSubject: worker test\n\nbody\n"


def _site(d: Path) -> Path:
    """A fresh site directory (spool, log, out/ and conf)."""
    if d.exists():
        shutil.rmtree(d)
    for sub in ("spool", "log", "out"):
        (d / sub).mkdir(parents=True)
    for sub in ("spool", "log"):
        shutil.chown(d / sub, "Debian-exim", "Debian-exim")
    (d / "out").chmod(0o1777)
    for p in [d] + list(d.parents):
        if p == Path("/"):
            break
        assert p.stat().st_mode & 0o005 == 0o005, f"{p} must be traversable"
    conf = d / "conf"
    st = "".join(ST.format(g=g, gid=gid) for g, gid in GROUPS.items())
    conf.write_text(CONF.replace("@ST@", st).replace("@DIR@", str(d)))
    return d


def _receive(conf: Path, rcpts: list[str]) -> list[str]:
    from eximpy.config import load_config
    from eximpy.receive import LocalOptions, receive_local
    config = load_config(str(conf))
    return [receive_local(config, None, [r + "@test.example"],
                          io.BytesIO(MSG), LocalOptions()).id for r in rcpts]


def _in_child(conf: Path, body: Callable[[Any], Any],
              hold: bool = False) -> tuple[Any, int, Any]:
    """Run body(config) in a forked child that owns the worker pool; its
    JSON-able result, its pid, and (hold=True) a function that lets it
    exit (it waits so that its workers can be inspected)."""
    from eximpy.config import load_config
    from eximpy.deliver.deliver import _warm_imports
    config = load_config(str(conf))
    _warm_imports()
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.close(w2)
            out = body(config)
            os.write(w, json.dumps(out).encode())
            os.close(w)
            if hold:
                os.read(r2, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(r2)
    with os.fdopen(r, "rb") as f:
        data = f.read()

    def release() -> int:
        os.close(w2)
        return os.waitpid(pid, 0)[1]
    if not hold:
        assert os.waitstatus_to_exitcode(release()) == 0
    assert data, "the child reported nothing"
    return json.loads(data), pid, release


def _pool_list() -> list[list]:
    from eximpy.deliver import worker
    return sorted([list(k[:2]) + [list(k[2]) if k[2] else None, p]
                   for k, p in worker.pool_pids().items()])


def _status(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def site(workdir: Path) -> Path:
    assert os.geteuid() == 0, "these tests need root"
    return _site(workdir)


def test_one_worker_serves_many_deliveries_with_exactly_the_users_ids(site) -> None:
    import pwd
    nobody = pwd.getpwnam("nobody")
    ids = _receive(site / "conf", ["g1"] * 3 + ["g2"])

    def body(config: Any) -> Any:
        from eximpy.deliver.deliver import deliver_message
        done = [deliver_message(config, m).completed for m in ids]
        return {"done": done, "pool": _pool_list()}
    out, child, release = _in_child(site / "conf", body, hold=True)
    try:
        assert out["done"] == [True] * 4
        pool = out["pool"]
        assert [p[:3] for p in pool] == [[nobody.pw_uid, 1, None],
                                         [nobody.pw_uid, 2, None]]
        pids = {p[1]: p[3] for p in pool}
        for m, g in zip(ids, ["g1"] * 3 + ["g2"]):
            st = _status(site / "out" / f"status.{g}.{m}")
            gid = GROUPS[g]
            # the process that ran the command: the warm worker of g
            assert int(st["Pid"]) == pids[gid]
            assert int(st["PPid"]) == child
            assert [int(x) for x in st["Uid"].split()] == [nobody.pw_uid] * 4
            assert [int(x) for x in st["Gid"].split()] == [gid] * 4
            assert [int(x) for x in st["Groups"].split()] == [gid]
            for cap in ("CapEff", "CapPrm", "CapInh"):
                assert int(st[cap], 16) == 0, cap
        for pid in pids.values():
            assert _alive(pid)
            # nothing inherited: every descriptor but its socket is /dev/null
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}")
                       for fd in os.listdir(f"/proc/{pid}/fd")]
            others = [t for t in targets if t != "/dev/null"]
            assert len(others) == 1 and others[0].startswith("socket:"), targets
    finally:
        assert os.waitstatus_to_exitcode(release()) == 0
    # workers end with the process that started them
    for pid in pids.values():
        assert _wait_gone(pid), f"worker {pid} outlived its parent"


def test_workers_end_when_the_parent_is_killed(site) -> None:
    ids = _receive(site / "conf", ["g1"])

    def body(config: Any) -> Any:
        from eximpy.deliver.deliver import deliver_message
        deliver_message(config, ids[0])
        return _pool_list()
    pool, child, release = _in_child(site / "conf", body, hold=True)
    [(_u, _g, _gr, wpid)] = pool
    assert _alive(wpid)
    os.kill(child, signal.SIGKILL)
    release()
    assert _wait_gone(wpid)


def _lines(d: Path, kind: str, mid: str | None = None) -> list[str]:
    """Log lines about message mid (default: the first one received),
    without times and with the id replaced by ID."""
    p = d / "log" / f"{kind}log"
    text = p.read_text() if p.exists() else ""
    if mid is None:
        mid = re.findall(r"(\S{6}-\S{6}-\S{2}) <= ",
                         (d / "log" / "mainlog").read_text())[0]
    out = []
    for ln in text.splitlines():
        ln = re.sub(r"^\S+ \S+ ", "", ln)
        if ln.startswith(mid) and " <= " not in ln:
            out.append(ln.replace(mid, "ID"))
    return out


def test_worker_killed_during_a_delivery_defers_as_exim(site, workdir) -> None:
    """The pipe command kills its parent: in Exim the delivery subprocess,
    here the warm worker.  Same log lines, the message stays queued, and
    the next delivery gets a new worker."""
    assert EXIM is not None
    ex = _site(workdir / "exim")
    p = subprocess.run([EXIM, "-C", str(ex / "conf"), "-odi",
                        "crash@test.example"], input=MSG, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    ids = _receive(site / "conf", ["crash", "md"])

    def body(config: Any) -> Any:
        from eximpy.deliver.deliver import deliver_message
        a = deliver_message(config, ids[0])
        after_crash = _pool_list()
        b = deliver_message(config, ids[1])
        return [a.completed, a.deferred, after_crash, b.completed,
                _pool_list()]
    (c1, deferred, after_crash, c2, pool), _child, _r = \
        _in_child(site / "conf", body)
    assert (c1, deferred, c2) == (False, ["crash@test.example"], True)
    assert after_crash == []            # the dead worker is gone
    assert len(pool) == 1               # nobody's worker for the Maildir
    assert _lines(site, "main", ids[0]) == _lines(ex, "main")
    assert _lines(site, "panic", ids[0]) == _lines(ex, "panic")
    assert any("terminated by signal 9" in ln for ln in _lines(ex, "panic"))
    assert (site / "spool" / "input" / f"{ids[0]}-H").exists()
    assert len(os.listdir(site / "out" / "Maildir" / "new")) == 1


def _fake_answer(kind: str, seq: int) -> bytes:
    from eximpy.deliver import local, worker
    from eximpy.transports._write import TransportResult
    from types import SimpleNamespace
    good = local.encode_report(TransportResult("OK"),
                               SimpleNamespace(delivered_path=None), None)
    if kind == "seq":
        return b"R" + worker._SEQ.pack(seq + 1) + good
    if kind == "json":
        return b"R" + worker._SEQ.pack(seq) + good[:-1]
    if kind == "keys":
        rep = json.loads(good)
        rep["extra"] = 1
        return b"R" + worker._SEQ.pack(seq) + json.dumps(rep).encode()
    if kind == "pickle":
        import pickle
        return b"R" + worker._SEQ.pack(seq) + pickle.dumps({"v": 1})
    if kind == "huge":
        return b"R" * (local.REPORT_LIMIT + 100)
    if kind == "ok":
        return b"R" + worker._SEQ.pack(seq) + good
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["seq", "json", "keys", "pickle", "huge"])
def test_parent_rejects_a_malformed_report(site, kind) -> None:
    """A worker (here a fake one that became the user like a real one)
    that answers anything but a well-formed report for this request is
    killed and the address deferred; nothing is delivered or lost."""
    ids = _receive(site / "conf", ["g1", "g1"])

    def body(config: Any) -> Any:
        import pickle
        import socket as S

        from eximpy import privilege
        from eximpy.deliver import worker
        from eximpy.deliver.deliver import deliver_message

        def fake_spawn(self: Any, key: tuple) -> Any:
            ps, cs = S.socketpair()
            pid = os.fork()
            if pid == 0:
                try:
                    ps.close()
                    privilege.run_as(key[0], key[1], key[2])
                    worker._send_frame(cs, b"H")
                    frame = worker._recv_frame(cs, 1 << 30)
                    worker._STATE["config"] = config
                    seq = pickle.loads(frame)["seq"]
                    worker._send_frame(cs, _fake_answer(kind, seq))
                    time.sleep(30)
                finally:
                    os._exit(0)
            cs.close()
            assert worker._recv_frame(ps, 16) == b"H"
            w = worker._Worker(key, pid, ps)
            self.workers[key] = w
            return w, 0
        real = worker._Pool.spawn
        worker._Pool.spawn = fake_spawn
        a = deliver_message(config, ids[0])
        worker._Pool.spawn = real
        b = deliver_message(config, ids[1])
        return [a.completed, a.deferred, b.completed]
    (c1, deferred, c2), _child, _r = _in_child(site / "conf", body)
    assert (c1, deferred, c2) == (False, ["g1@test.example"], True)
    panic = _lines(site, "panic", ids[0])
    assert panic == ["ID failed to read delivery status for g1@test.example "
                     "from delivery subprocess",
                     "ID pipe transport process returned non-zero status "
                     "0x0009: terminated by signal 9"]
    assert "ID == g1@test.example R=st T=st_g1 defer (-1)" in \
        _lines(site, "main", ids[0])
    assert not (site / "out" / f"status.g1.{ids[0]}").exists()
    assert (site / "spool" / "input" / f"{ids[0]}-H").exists()


def test_pool_is_bounded_lru(site) -> None:
    ids = _receive(site / "conf", ["g1", "g2", "g3", "g2"])

    def body(config: Any) -> Any:
        from eximpy.deliver import worker
        from eximpy.deliver.deliver import deliver_message
        worker.WORKER_MAX = 2
        seen = []
        for m in ids:
            assert deliver_message(config, m).completed
            seen.append(_pool_list())
        return seen
    seen, _child, _r = _in_child(site / "conf", body)
    assert [len(s) for s in seen] == [1, 2, 2, 2]
    g1_pid = seen[0][0][3]
    # g3 pushed out g1 (least recently used), g2's worker served twice
    assert [s[1] for s in seen[2]] == [2, 3]
    assert seen[3] == seen[2]
    assert _wait_gone(g1_pid)


def test_idle_worker_leaves_and_is_replaced_without_a_deferral(site) -> None:
    ids = _receive(site / "conf", ["g1", "g1"])

    def body(config: Any) -> Any:
        from eximpy.deliver import worker
        from eximpy.deliver.deliver import deliver_message
        worker.WORKER_IDLE = 0.3
        worker._Pool.sweep = lambda self: None     # the worker's own timer
        a = deliver_message(config, ids[0]).completed
        first = _pool_list()
        time.sleep(1.5)
        b = deliver_message(config, ids[1]).completed
        return [a, b, first, _pool_list()]
    (a, b, first, second), _child, _r = _in_child(site / "conf", body)
    assert (a, b) == (True, True)
    assert first[0][3] != second[0][3]
    assert not (site / "log" / "paniclog").exists()


def test_a_worker_does_not_cache_lookups_between_deliveries(site) -> None:
    """A new Exim delivery process looks up afresh; so does a warm worker."""
    ids = _receive(site / "conf", ["lk", "lk"])
    mapfile = site / "out" / "map"

    def body(config: Any) -> Any:
        from eximpy.deliver.deliver import deliver_message
        mapfile.write_text("k: one\n")
        a = deliver_message(config, ids[0]).completed
        pool = _pool_list()
        mapfile.write_text("k: two\n")
        b = deliver_message(config, ids[1]).completed
        return [a, b, pool == _pool_list()]
    (a, b, same), _child, _r = _in_child(site / "conf", body)
    assert (a, b, same) == (True, True, True)
    assert (site / "out" / f"lk.{ids[0]}").read_text() == "one\n"
    assert (site / "out" / f"lk.{ids[1]}").read_text() == "two\n"


def test_descriptors_are_neutralised_without_dev_null(workdir) -> None:
    """In a chroot jail without /dev/null the worker still replaces every
    inherited descriptor (by the read end of a closed pipe)."""
    import socket as S

    from eximpy.deliver import worker
    keep_a, keep_b = S.socketpair()
    held = os.open(str(workdir), os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            worker.os.devnull = str(workdir / "no-such-null")
            worker._neutralise_fds(keep_a.fileno())
            out = {}
            for fd in map(int, os.listdir("/proc/self/fd")):
                try:
                    out[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except FileNotFoundError:   # listdir's own, now closed
                    pass
            keep_a.sendall(json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    keep_a_fd = keep_a.fileno()
    keep_a.close()
    data = b""
    while True:
        b = keep_b.recv(65536)
        if not b:
            break
        data += b
    keep_b.close()
    os.waitpid(pid, 0)
    os.close(held)
    out = {int(k): v for k, v in json.loads(data).items()}
    assert out.pop(keep_a_fd).startswith("socket:")
    kinds = {v.split(":")[0] for v in out.values()}
    assert kinds == {"pipe"}, out
    assert held in out
