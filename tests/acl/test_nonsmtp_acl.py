"""acl_not_smtp_start, acl_not_smtp_mime and acl_not_smtp (eximpy/acl/nonsmtp.py)
against real Exim.

Each case submits messages with `-odq` (as sendmail does) to real Exim and
to eximpy with the same configuration, and compares the exit status,
stderr, mainlog, rejectlog and the spool files, with ids and times
normalised.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from spool.support import (eximpy, exim, make_scratch, normalize,
                           spool_files)

BASE = """\
keep_environment =
primary_hostname = mx.example.test
qualify_domain = example.test
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
log_selector = +received_recipients
{main}
begin acl
{acls}
begin routers
begin transports
"""

VERDICTS = """\
acl_start:
  warn set acl_m_start = started-$sender_address
       logwrite = start rc=$recipients_count r=$recipients
  deny message = the start ACL's verdict is ignored
acl_ns:
  warn add_header = X-NS: $acl_m_start
       logwrite = ns r=$recipients h=$h_subject: size=$message_size \
                  body=$message_body lines=$body_linecount
  discard senders = *@discard.example
          log_message = discarded it
  deny  senders = *@deny.example
        message = denied $sender_address
        log_message = logged denial
  deny  senders = *@msgonly.example
        message = only a message
  defer senders = *@defer.example
        message = try later
  deny  condition = ${if eq{$h_subject:}{nothing}}
  accept
"""

POSITIONS = """\
acl_ns:
  warn add_header = :at_start:X-Start: 1
  warn add_header = :after_received:X-After-Received: 2
  warn add_header = :at_start_rfc:X-Start-Rfc: 3
  warn add_header = X-End: 4\\nX-End-Second: 5
  warn add_header = not a header line
  accept
"""

CONTROLS = """\
acl_start:
  accept senders = *@fixups.example
         control = suppress_local_fixups
acl_ns:
  accept senders = *@freeze.example
         control = freeze
  accept senders = *@queue.example
         control = queue
  accept
"""

MIME_ACLS = """\
m:
  warn logwrite = MIME $mime_content_type fn=$mime_filename parts=$mime_part_count
  deny condition = ${if eq{$mime_filename}{bad.exe}}
       message = no exe please
  accept
n:
  warn logwrite = NS parts=$mime_part_count
  deny regex = ^forbidden
       message = forbidden word
  accept
"""
MIME_MSG = (b'Subject: t\nMIME-Version: 1.0\n'
            b'Content-Type: multipart/mixed; boundary="XX"\n\n'
            b'--XX\nContent-Type: text/plain\n\nhello\n'
            b'--XX\nContent-Type: application/octet-stream; name="NAME"\n'
            b'Content-Transfer-Encoding: base64\n\naGVsbG8K\n--XX--\n')

MSG = b"Subject: hi\n\nbody line\nsecond\n"
CASES = {
    "verdicts": (
        "acl_not_smtp_start = acl_start\nacl_not_smtp = acl_ns", VERDICTS,
        [(["-f", f"a@{s}.example", "x@y.example", "z@y.example"], MSG)
         for s in ("ok", "deny", "discard", "msgonly", "defer")] +
        [(["-f", "a@ok.example", "x@y.example"],
          b"Subject: nothing\n\nb\n"),
         (["-t", "-f", "a@ok.example"],
          b"To: t1@y.example, t2@y.example\nSubject: hi\n\nb\n")]),
    "positions": (
        "acl_not_smtp = acl_ns", POSITIONS,
        [(["-f", "a@ok.example", "x@y.example"],
          b"Received: from elsewhere\nResent-From: r@x\n"
          b"Subject: positions\n\nb\n")]),
    "controls": (
        "acl_not_smtp_start = acl_start\nacl_not_smtp = acl_ns", CONTROLS,
        [(["-f", f"a@{s}.example", "x@y.example"], MSG)
         for s in ("fixups", "freeze", "queue", "plain")]),
    "mime": (
        "acl_not_smtp_mime = m\nacl_not_smtp = n", MIME_ACLS,
        [(["-f", "a@ok.example", "x@y.example"],
          MIME_MSG.replace(b"NAME", name)) for name in (b"ok.txt",
                                                      b"bad.exe")] +
        [(["-f", "a@ok.example", "x@y.example"],
          b"Subject: x\n\nforbidden text\n")]),
    "forbidden": (
        "acl_not_smtp = acl_ns",
        "acl_ns:\n  deny hosts = 127.0.0.1\n  accept\n",
        [(["-f", "a@ok.example", "x@y.example"], MSG)]),
}


def _run(base: Path, prog, case: str) -> list:
    main, acls, runs = CASES[case]
    make_scratch(base)
    (base / "conf").write_text(BASE.format(d=base, main=main, acls=acls))
    out = []
    for args, data in runs:
        r = prog(base / "conf", ["-odq", "-oep"] + args, data)
        out.append((r.returncode, normalize(r.stderr.decode())))
    logs = {}
    for name in ("mainlog", "rejectlog", "paniclog"):
        p = base / "log" / name
        logs[name] = normalize(p.read_text()) if p.exists() else ""
    files = {normalize(k): normalize(v.decode("utf-8", "replace"))
             for k, v in spool_files(base).items()}
    return [out, logs, files]


@pytest.mark.parametrize("case", sorted(CASES))
def test_nonsmtp_acls_match_exim(case: str, exim_scratch: Path) -> None:
    want = _run(exim_scratch / "exim", exim, case)
    got = _run(exim_scratch / "eximpy", eximpy, case)
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert got[2] == want[2]
