"""Unit tests: journal, lock, layout, tree, writer targets (no Exim needed
except where noted)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eximpy.log import format as lf
from eximpy.log.writer import LogTargets, LogWriter
from eximpy.spool import data_file, journal, lock
from eximpy.spool.layout import BadMessageId, SpoolLayout
from eximpy.spool.message import NonRecipients

MID = "1xWBAj-0002pL-1F"


def test_journal_append_read_and_torn_last_line(tmp_path: Path) -> None:
    lay = SpoolLayout(str(tmp_path))
    lay.ensure_dirs(MID)
    (Path(lay.file(MID, "-H"))).write_text("x")
    j = journal.Journal.open(lay, MID)
    j.record("bob@example.test")
    j.record("carol@remote.test")
    j.close()
    with open(lay.file(MID, "-J"), "ab") as f:
        f.write(b"half-writ")          # crash in the middle of a write
    assert journal.read(lay, MID) == ["bob@example.test", "carol@remote.test"]
    journal.remove(lay, MID)
    assert journal.read(lay, MID) == []


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    lay = SpoolLayout(str(tmp_path))
    df = data_file.create(lay, MID)      # created locked
    df.write(b"body\n")
    df.finish()
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from eximpy.spool import lock\nfrom eximpy.spool.layout import "
            "SpoolLayout\nlay = SpoolLayout(%r)\n"
            "print(lock.is_locked(lay.file(%r, '-D'), %r), "
            "lock.open_locked(lay, %r))"
            % (str(Path(__file__).resolve().parents[2]), str(tmp_path), MID,
               MID, MID))

    def other() -> str:
        return subprocess.run([sys.executable, "-c", code],
                              capture_output=True, text=True).stdout.strip()
    assert other() == "True None"
    df.close()
    assert other().startswith("False ")
    fd = lock.open_locked(lay, MID)
    assert fd is not None
    assert data_file.read_body(fd, MID) == b"body\n"
    os.close(fd)


def test_symlinked_data_file_is_not_followed(tmp_path: Path) -> None:
    lay = SpoolLayout(str(tmp_path))
    lay.ensure_dirs()
    target = tmp_path / "secret"
    target.write_text("x")
    os.symlink(target, lay.file(MID, "-D"))
    with pytest.raises(OSError):
        lock.open_locked(lay, MID)


def test_layout_split_and_bad_ids(tmp_path: Path) -> None:
    lay = SpoolLayout(str(tmp_path), split=True)
    assert lay.file(MID, "-H") == f"{tmp_path}/input/j/{MID}-H"
    assert lay.msglog_file(MID) == f"{tmp_path}/msglog/j/{MID}"
    for bad in ("../../etc/passwd", "1xWBAj-0002pL-1F/..", ""):
        with pytest.raises(BadMessageId):
            lay.file(bad, "-H")
    lay.ensure_dirs(MID)
    Path(lay.file(MID, "-H", split=False)).write_text("x")   # left over
    assert lay.find(MID) == f"{tmp_path}/input/{MID}-H"
    assert lay.list_ids() == [MID]


def test_nonrecipients_avl_matches_exim_shape() -> None:
    t = NonRecipients()
    t.add("carol@remote.test")
    t.add("bob@example.test")
    assert t.lines() == ["YN carol@remote.test", "NN bob@example.test"]
    t = NonRecipients()
    for a in ("a", "b", "c", "d", "e"):
        t.add(a)
    assert t.preorder() == ["b", "a", "d", "c", "e"]
    assert t.inorder() == ["a", "b", "c", "d", "e"]
    assert not t.add("c")


def test_syslog_target(monkeypatch: pytest.MonkeyPatch) -> None:
    import syslog
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *a, **k: None)
    monkeypatch.setattr(syslog, "syslog", lambda p, m: sent.append((p, m)))
    w = LogWriter(LogTargets(None, True), lf.LogSelector(), clock=lambda: 0)
    assert w.main("hello", MID)
    assert w.panic("oops")
    assert sent[0] == (syslog.LOG_INFO, f"1970-01-01 00:00:00 {MID} hello"
                       if os.environ.get("TZ", "UTC") == "UTC" else sent[0][1])
    assert any(p == syslog.LOG_ALERT for p, _ in sent)


def test_file_failure_falls_back_to_syslog(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    import syslog
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *a, **k: None)
    monkeypatch.setattr(syslog, "syslog", lambda p, m: sent.append((p, m)))
    (tmp_path / "f").write_text("")
    w = LogWriter(LogTargets(str(tmp_path / "f" / "%slog"), False),
                  lf.LogSelector())
    assert not w.panic("cannot do it")
    assert w.failed and "cannot write" in (w.last_error or "")
    assert any(p == syslog.LOG_CRIT and "cannot do it" in m for p, m in sent)


def test_fifo_or_symlink_in_spool_does_not_hang_listing(tmp_path: Path) -> None:
    import io
    from eximpy.cli.queue_ops import run_queue_listing
    lay = SpoolLayout(str(tmp_path))
    lay.ensure_dirs()
    os.mkfifo(lay.file(MID, "-H"))
    other = "1xWBAj-0002pL-1G"
    (tmp_path / "elsewhere").write_text("x")
    os.symlink(tmp_path / "elsewhere", lay.file(other, "-H"))
    out = io.StringIO()
    run_queue_listing(None, "bp", [], out, layout=lay)
    assert out.getvalue().count("*** spool read error") == 2


def test_untrusted_caller_sender_rules(tmp_path: Path) -> None:
    """spec 48.16 and -f for untrusted callers (Exim cannot be run as an
    untrusted user with -C here, so this is checked against the spec)."""
    import io
    from support import config_for, make_scratch
    from eximpy.receive import LocalOptions, receive_local
    make_scratch(tmp_path)
    cfg = config_for(tmp_path)
    opts = dict(trusted=False, login="joe", uid=1234, gid=1234, gecos="Joe")
    r = receive_local(cfg, "forged@example.test", ["bob@example.test"],
                      io.BytesIO(b"From: Someone <other@example.test>\n"
                                 b"Sender: fake@x\nSubject: s\n\nb\n"),
                      LocalOptions(**opts))
    m = r.message
    assert m.sender == "joe@example.test" and not m.sender_set_untrusted
    texts = [(h.type, h.text) for h in m.headers]
    assert ("*", "Sender: fake@x\n") in texts
    assert ("S", "Sender: Joe <joe@example.test>\n") in texts
    r = receive_local(cfg, "<>", ["bob@example.test"],
                      io.BytesIO(b"From: joe@example.test\n\nb\n"),
                      LocalOptions(**opts))
    assert r.message.sender == ""
    assert not any(h.type == "S" for h in r.message.headers)
