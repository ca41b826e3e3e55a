"""Sans-IO transcript tests of the SMTP session, the data reader and replies.

These need no Exim: they check properties the differential dialogues cannot
reach through -bs (a socket's synchronisation checks, timeouts) and that
the session's answers do not depend on how the input is split into reads.
"""
from __future__ import annotations

import re

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from eximpy.config import load_config
from eximpy.smtp.dataread import DataReader
from eximpy.smtp.reply import Reply, message_code, printable
from eximpy.smtp.server import ReceivedMessage, Session
from smtp.conftest import write_conf
from smtp.test_smtp_differential import CASES


class FakeSink:
    """Accepts every message with a fixed id; remembers them."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []

    def store(self, msg: ReceivedMessage) -> tuple[int, str, str | None]:
        self.messages.append(msg)
        return 250, "OK id=TEST", "TEST"


_CONFS: dict[str, object] = {}


def _config(tmp: Path, extra: str) -> object:
    key = extra
    if key not in _CONFS:
        d = tmp / f"c{len(_CONFS)}"
        d.mkdir(parents=True, exist_ok=True)
        _CONFS[key] = load_config(str(write_conf(d, extra)))
    return _CONFS[key]


def run(cfg, data: bytes, splits: list[int] | None = None, **kw):
    sink = FakeSink()
    s = Session(cfg, sink=sink, clock=lambda: 1_700_000_000.0, **kw)
    out = [s.start()]
    if splits is None:
        out.append(s.feed(data))
    else:
        pos = 0
        for n in splits:
            if s.closed:
                break
            out.append(s.feed(data[pos:pos + n]))
            pos += n
        if not s.closed and pos < len(data):
            out.append(s.feed(data[pos:]))
    if not s.closed:
        out.append(s.eof())
    return b"".join(out), sink, s


_SPLIT_CASES = sorted(k for k, v in CASES.items() if not v[2])


@pytest.fixture(scope="module")
def tmpconf(tmp_path_factory):
    return tmp_path_factory.mktemp("smtpconf")


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(_SPLIT_CASES),
       splits=st.lists(st.integers(min_value=1, max_value=7), max_size=400))
def test_split_invariance(tmpconf, case, splits):
    """The replies and the message data do not depend on read sizes."""
    extra, data, _args = CASES[case]
    cfg = _config(tmpconf, extra)
    whole, sink1, _ = run(cfg, data)
    parts, sink2, _ = run(cfg, data, splits)
    # Message ids the session makes itself (PRDR replies) differ per run.
    ids = re.compile(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
    assert ids.sub(b"<ID>", parts) == ids.sub(b"<ID>", whole)
    assert [(m.headers, m.body) for m in sink1.messages] == \
        [(m.headers, m.body) for m in sink2.messages]


def test_early_talker_refused(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=FakeSink(), host_address="192.0.2.1",
                is_socket=True)
    out = s.start(b"EHLO x\r\n")
    assert out == b"554 SMTP synchronization error\r\n"
    assert s.closed


def test_sync_error_without_pipelining(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    out, _sink, s = run(cfg, b"HELO x\r\nMAIL FROM:<a@b>\r\n",
                        host_address="192.0.2.1", is_socket=True)
    assert out.endswith(b"554 SMTP synchronization error\r\n")
    assert s.closed


def test_pipelining_allowed_after_ehlo(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=FakeSink(), host_address="192.0.2.1",
                is_socket=True)
    s.start()
    s.feed(b"EHLO x\r\n")
    out = s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert out == (b"250 OK\r\n250 Accepted\r\n354 Enter message, ending "
                   b'with "." on a line by itself\r\n')
    out = s.feed(b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    assert out == b"250 OK id=TEST\r\n221 test.example closing connection\r\n"


def test_data_must_end_a_pipelined_group(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=FakeSink(), host_address="192.0.2.1",
                is_socket=True)
    s.start()
    s.feed(b"EHLO x\r\n")
    out = s.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x"
                 b"\r\n")
    assert out.endswith(b"554 SMTP synchronization error\r\n")
    assert s.closed


def test_timeouts(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=FakeSink())
    s.start()
    assert s.timeout() == (b"421 test.example: SMTP command timeout - "
                           b"closing connection\r\n")
    s = Session(cfg, sink=FakeSink())
    s.start()
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nS: x\r\n")
    assert s.timeout() == (b"421 test.example SMTP incoming data timeout - "
                           b"closing connection.\r\n")


def test_lost_connection_mid_data_stores_nothing(tmpconf):
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    out, sink, s = run(cfg, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
                       b"DATA\r\nSubject: x\r\n\r\npartial")
    assert out.endswith(b"421 Lost incoming connection\r\n")
    assert sink.messages == []


def test_no_traceback_when_sink_fails(tmpconf):
    class Broken:
        def store(self, msg):
            raise OSError("disk full")
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=Broken())
    s.start()
    out = s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                 b"S: x\r\n\r\nb\r\n.\r\n")
    assert out.endswith(b"451 Temporary local problem - please try later"
                        b"\r\n")


# --- data reader ------------------------------------------------------

_VECTORS = [
    b"Subject: t\r\n\r\nbody\n.\nmore\r\n.\r\n",
    b"Subject: t\n\nbody\n.\nMAIL FROM:<x@y>\n",
    b"Subject: t\r\n\r\nbody\r\n.\nmore\r\n.\r\n",
    b"Subject: t\r\n\r\nbody\r.\r\nmore\r\n.\r\n",
    b"Subject: t\r\n.\nX: y\r\n\r\nbody\r\n.\r\n",
    b"Subject: t\r\n.\rX: y\r\n\r\nbody\r\n.\r\n",
    b"Sub\0ject: t\r\n\r\nb\0dy\r\n.\r\n",
    b"Subject: t\r\n\r\nAAAA\r\n..\r\r\n.\r\n",
]


def _read(data: bytes, step: int | None):
    r = DataReader(size_limit=1000)
    if step is None:
        pos = r.feed(data, 0)
        return r, data[pos:]
    for i in range(0, len(data), step):
        chunk = data[i:i + step]
        pos = r.feed(chunk, 0)
        if r.done:
            return r, data[i + pos:]
    return r, b""


@pytest.mark.parametrize("vec", _VECTORS)
@pytest.mark.parametrize("step", [1, 2, 3, 5])
def test_reader_split_invariance(vec, step):
    tail = b"QUIT\r\n"
    a, rest_a = _read(vec + tail, None)
    b, rest_b = _read(vec + tail, step)
    assert a.done == b.done
    assert a.result == b.result
    assert rest_a == rest_b


def test_reader_size_limit_keeps_line_state():
    """After the size limit the reader stays in step: a "." mid-line is not
    the end (Exim's discarding restarts at a line start)."""
    r = DataReader(size_limit=20)
    data = b"S: x\r\n\r\n" + b"y" * 20 + b".\r\nhidden\r\n.\r\nNEXT"
    pos = r.feed(data, 0)
    assert r.done and r.result.ended == "size"
    assert data[pos:] == b"NEXT"


# --- replies ------------------------------------------------------------

def test_reply_multiline():
    r = Reply.text(550, "first\n  second\nthird\n", "5.7.1")
    assert r.encode() == (b"550-5.7.1 first\r\n550-5.7.1 second\r\n"
                          b"550 5.7.1 third\r\n")


def test_message_code():
    # a wrong first digit keeps the default code; the text loses the code
    assert message_code(550, "451 4.3.0 later") == (550, "", "later", False)
    assert message_code(550, "553 5.1.0 bad") == (553, "5.1.0", "bad", True)
    assert message_code(550, "plain") == (550, "", "plain", True)


def test_printable():
    assert printable(b"a\x1b[1m\r\n\xff") == "a\\x1b[1m\\r\\n\\xff"


def test_starttls_discards_pipelined_cleartext(tmpconf):
    """Commands sent in clear text after STARTTLS are never run inside the
    TLS session (the STARTTLS command injection attack)."""
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")
    s = Session(cfg, sink=FakeSink())
    s.start()
    s.feed(b"EHLO x\r\n")
    out = s.feed(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
    assert out == b"220 TLS go ahead\r\n"
    assert s.tls_requested
    from eximpy.smtp.tls import TlsInfo
    s.tls_started(TlsInfo("TLS1.3:X:256", "TLS1.3", "X", 256))
    out = s.feed(b"EHLO x\r\nRCPT TO:<c@d>\r\n")
    assert b"STARTTLS" not in out
    assert out.endswith(b"503 sender not yet given\r\n")
    assert s.received_protocol == "local-esmtps"


_TOKENS = [b"EHLO x\r\n", b"HELO y\r\n", b"MAIL FROM:<a@b>\r\n",
           b"RCPT TO:<c@d>\r\n", b"DATA\r\n", b"BDAT 5\r\n", b"BDAT 3 LAST\r\n",
           b"BDAT 0 LAST\r\n", b"BDAT 0\r\n", b"RSET\r\n", b"NOOP\r\n",
           b"QUIT\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n", b"VRFY a\r\n",
           b".\r\n", b"\r\n", b"\n", b"\r", b".", b"\0", b"Subject: x\r\n",
           b"MAIL FROM:<a@b> SIZE=99999999999\r\n", b"\xff\xfe", b"x" * 70]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(st.sampled_from(_TOKENS),
                                st.binary(max_size=20)), max_size=60),
       socket_like=st.booleans())
def test_session_never_crashes(tmpconf, parts, socket_like):
    """Junk in any order gives replies, never an exception; every reply
    line is CRLF-terminated and starts with a 3-digit code."""
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept\nmessage_size_limit = 2K"
                  "\nsmtp_max_unknown_commands = 50\n"
                  "smtp_max_synprot_errors = 50")
    kw = {"host_address": "192.0.2.1", "is_socket": True} if socket_like \
        else {}
    s = Session(cfg, sink=FakeSink(), **kw)
    out = s.start()
    for p in parts:
        if s.closed:
            break
        out += s.feed(p)
        if s.tls_requested:
            out += s.tls_failed("test")
    if not s.closed:
        out += s.eof()
    assert s.closed
    assert out.endswith(b"\r\n")
    for line in out.split(b"\r\n")[:-1]:
        assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), line


def test_internal_error_is_421_not_traceback(tmpconf):
    """A bug inside the session costs the connection, with a 421 and a
    paniclog line, never an exception to the caller."""
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept")

    class Log:
        def __init__(self):
            self.panics = []
            self.selector = set()

        def main(self, text, mid=None):
            pass

        def reject(self, text, mid=None, block=None):
            pass

        def panic(self, text, mid=None):
            self.panics.append(text)
    log = Log()
    s = Session(cfg, sink=FakeSink(), log=log)
    s.start()

    def boom(data):
        raise RuntimeError("injected")
    s._vrfy = boom                                   # type: ignore
    out = s.feed(b"EHLO x\r\nVRFY a@b\r\n")
    assert out.endswith(b"421 test.example: Internal error - closing "
                        b"connection\r\n")
    assert s.closed
    assert "RuntimeError: injected" in log.panics[0]


def test_bs_delivers_without_queue_only(tmp_path):
    """-bs -odi without queue_only: the accepted message is delivered at
    once (here by appendfile into a file, as "nobody": root is one of
    Exim's fixed_never_users)."""
    import io
    import os
    import shutil
    import tempfile
    from eximpy.cli.options import parse_args
    from eximpy.cli.smtp_modes import run_bs
    d = tmp_path
    (d / "spool").mkdir()
    (d / "log").mkdir()
    conf = d / "conf"
    mb = Path(tempfile.mkdtemp(prefix="eximpy-bs-"))
    os.chmod(mb, 0o1777)
    conf.write_text(f"""\
primary_hostname = test.example
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = root
exim_group = root
never_users =
keep_environment =
acl_smtp_rcpt = accept
begin routers
local:
  driver = accept
  domains = d.example
  transport = t
begin transports
t:
  driver = appendfile
  file = {mb}/mbox
  user = nobody
""")
    cfg = load_config(str(conf))
    inv = parse_args(["exim", "-C", str(conf), "-bs", "-odi"])
    out = io.BytesIO()
    run_bs(cfg, inv, io.BytesIO(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"
                                b"RCPT TO:<c@d.example>\r\nDATA\r\n"
                                b"Subject: deliver me\r\n\r\nhello\r\n.\r\n"
                                b"QUIT\r\n"), out)
    assert b"250 OK id=" in out.getvalue()
    mbox = (mb / "mbox").read_text()
    shutil.rmtree(mb, ignore_errors=True)
    assert "Subject: deliver me" in mbox and "hello" in mbox
    log = (d / "log" / "mainlog").read_text()
    assert " => c <c@d.example> R=local T=t" in log and " Completed" in log


def test_oversized_bdat_chunk_consumed_whole(tmpconf):
    """DESIGN.md 7: an oversized BDAT chunk whose end is not yet buffered
    is consumed whole; a transaction hidden inside it is never run (Exim
    discards only what it has buffered and runs the rest as commands)."""
    cfg = _config(tmpconf, "acl_smtp_rcpt = accept\nmessage_size_limit = 100")
    hidden = (b"\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@d>\r\nDATA\r\n"
              b"Subject: smuggled\r\n\r\nhidden\r\n.\r\n")
    chunk = b"S: x\r\n\r\n" + b"y" * 200 + hidden
    chunk += b"z" * (600 - len(chunk))
    sink = FakeSink()
    s = Session(cfg, sink=sink)
    s.start()
    s.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    out = s.feed(b"BDAT %d LAST\r\n" % len(chunk) + chunk[:50])
    assert out == b""
    for i in range(50, len(chunk), 37):               # arrives in pieces
        out += s.feed(chunk[i:i + 37])
    out += s.feed(b"QUIT\r\n")
    assert out == (b"552 Message size exceeds maximum permitted\r\n"
                   b"221 test.example closing connection\r\n")
    assert sink.messages == []
