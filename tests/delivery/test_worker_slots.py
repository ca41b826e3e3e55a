"""Delivery slots (eximpy.deliver.slots): `-qf` and the daemon's delivery
role deliver message after message from long-lived children, so that one
warm worker per mailbox owner serves many messages; a slot that dies
loses nothing and is replaced.  As root.
"""
from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oracle import ROOT
from test_worker import _alive, _receive, _site, _status, _wait_gone


def test_qf_runs_every_message_through_one_slot_and_one_worker(workdir) -> None:
    assert os.geteuid() == 0
    site = _site(workdir)
    ids = _receive(site / "conf", ["g1", "g1", "g2", "g1"])
    proc = subprocess.Popen([sys.executable, "-m", "eximpy", "-C",
                             str(site / "conf"), "-qf"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    main = (site / "log" / "mainlog").read_text()
    assert main.count("Completed") == 4, main
    st = {m: _status(site / "out" / f"status.{g}.{m}")
          for m, g in zip(ids, ["g1", "g1", "g2", "g1"])}
    g1 = {st[m]["Pid"] for m in (ids[0], ids[1], ids[3])}
    assert len(g1) == 1                       # one worker for g1's three
    assert st[ids[2]]["Pid"] not in g1        # another for g2
    slot = {st[m]["PPid"] for m in ids}
    assert len(slot) == 1                     # one slot for the whole run
    assert int(slot.pop()) != proc.pid        # a child of the runner
    for m in ids:                             # gone when -qf has returned
        assert not _alive(int(st[m]["Pid"]))


_IDS = [f"1xWAAA-0000{k:02d}-00" for k in range(8)]


def _unit(tmp: Path, limit: int, crash: set[str]) -> dict[str, str]:
    """Deliver _IDS through DeliverySlots with a recording deliver(): the
    pid that delivered each id (absent: not finished)."""
    from eximpy.deliver import slots as S

    def deliver(mid: str, kind: str = "") -> None:
        if mid in crash:
            os._exit(7)
        (tmp / mid).write_text(str(os.getpid()))
        time.sleep(0.05)
    sl = S.DeliverySlots(deliver, limit)
    finished: list[str] = []
    pending = list(_IDS)
    most = 0
    while pending or sl.busy():
        while pending and sl.room():
            sl.start(pending.pop(0))
        most = max(most, len(sl.slots))
        finished += sl.wait(5)
    sl.close()
    assert most <= limit
    assert sl.slots == {}
    assert sorted(finished) == sorted(set(_IDS) - crash)
    return {m: (tmp / m).read_text() for m in finished}


def test_slots_reuse_and_bound(workdir) -> None:
    done = _unit(workdir, 2, set())
    assert len(set(done.values())) <= 2       # two slots did everything


def test_a_slot_that_dies_loses_only_its_message(workdir) -> None:
    done = _unit(workdir, 1, {_IDS[2], _IDS[5]})
    # one slot at a time: a new one after each crash
    pids = [done[m] for m in _IDS if m in done]
    assert len(set(pids)) == 3
    # ids 0 1 | 2 crashes | 3 4 | 5 crashes | 6 7
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]


def test_idle_slots_are_retired(workdir) -> None:
    from eximpy.deliver import slots as S
    old = S.SLOT_IDLE
    S.SLOT_IDLE = 0.2
    try:
        sl = S.DeliverySlots(lambda m, k="": None, 2)
        sl.start(_IDS[0])
        while sl.busy():
            sl.wait(5)
        [pid] = list(sl.slots)
        time.sleep(0.4)
        sl.collect()
        assert sl.slots == {}
        assert _wait_gone(pid)
    finally:
        S.SLOT_IDLE = old


@pytest.fixture
def daemon():
    import pwd
    from proc.test_local_owner import Daemon
    assert os.geteuid() == 0, "these tests start the daemon as root"
    pwd.getpwnam("eximpy")
    d = Daemon()
    yield d
    d.stop()


def test_daemon_delivery_role_reuses_the_users_worker(daemon) -> None:
    """Two messages for the same user, one after the other: the same
    worker (a child of a slot, a child of the delivery role) runs both."""
    status = daemon.home / "status.child"
    pids = []
    for k in range(2):
        # (a HELO name that is not one of ours: no reverse lookup)
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30,
                          local_hostname="client.example") as c:
            c.sendmail("sender@test.example",
                       [f"{daemon.user}-ids@test.example"],
                       f"Subject: ids {k}\r\n\r\nbody\r\n".encode())
        for _ in range(200):
            if daemon.log().count("Completed") == k + 1:
                break
            time.sleep(0.1)
        assert daemon.log().count("Completed") == k + 1, daemon.log()
        st = _status(status)
        pids.append((int(st["Pid"]), int(st["PPid"])))
    assert pids[0] == pids[1]
    slot = _status(Path(f"/proc/{pids[0][1]}/status"))
    assert int(slot["PPid"]) == daemon.roles()["delivery"]
    assert [int(x) for x in st["Uid"].split()] == [daemon.pw.pw_uid] * 4
