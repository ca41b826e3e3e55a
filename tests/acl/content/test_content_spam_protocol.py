"""What the spam condition sends and how it reads odd answers, vs Exim.

A recording fake server (content_scanners.FakeSpamd) stands in for spamd
and for Rspamd (no Debian package of it is available here): real Exim and
eximpy each send it a request, which must be byte-for-byte the same
(after the message id and the "From " line's date), and its canned answer
must give the same variables, replies and log lines.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from content_harness import assert_same, dialogue, run_case  # noqa: E402
from content_scanners import FakeSpamd  # noqa: E402

MSG = "Subject: hi\n\nbody text\n"
VARS = ("data:\n"
        "  warn spam = joe:true/defer_ok\n"
        "       logwrite = s=[$spam_score] i=[$spam_score_int] "
        "b=[$spam_bar] a=[$spam_action]\n"
        "       logwrite = r=[$spam_report]\n"
        "  deny spam = joe\n"
        "       message = spam $spam_score\n"
        "  accept\n")

REPLIES = {
    "sa_old": b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -3.2 / 5.0\r\n\r\n"
              b"line one\r\nline two\r\n\r\n",
    "sa_new": b"SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\n\r\n"
              b"7.25/5.0\r\nreport a\nreport b\n",
    "sa_zero": b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.4 / 5.0\r\n\r\n",
    "sa_huge": b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 99.9 / 5.0\r\n\r\nx",
    "sa_garbage": b"SPAMD/1.1 76 EX_PROTOCOL\r\n\r\n",
    "sa_empty": b"",
    "rspamd": b"RSPAMD/1.3 0 EX_OK\r\nMetric: default; True; 15.50 / 15.00 "
              b"/ 20.00\r\nAction: add header\r\nSymbol: FOO(1.00)\r\n\r\n",
    "rspamd_bad": b"RSPAMD/1.3 0 EX_OK\r\nMetric: nope\r\n\r\n",
}

_ID = re.compile(rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}")
_FROM = re.compile(rb"^From (\S+) .*$", re.M)


_DATE = re.compile(rb"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _req(raw: bytes) -> bytes:
    raw = _DATE.sub(b"DATE", _ID.sub(b"MSGID", raw))
    return _FROM.sub(rb"From \1 DATE", raw)


@pytest.mark.parametrize("reply", sorted(REPLIES))
def test_spam_protocol(reply: str) -> None:
    srv = FakeSpamd(REPLIES[reply])
    try:
        variant = " variant=rspamd" if reply.startswith("rspamd") else ""
        exim, py, _d = run_case(
            f"spamproto_{reply}", VARS,
            f"spamd_address = 127.0.0.1 {srv.port}{variant}\n"
            # the Rspamd request names $sender_host_name: look it up at
            # the start, not in the middle of the DATA ACL
            + ("host_lookup = *\n" if variant else "") +
            "acl_smtp_data = data\n", dialogue(MSG))
    finally:
        srv.stop()
    assert_same(py, exim)
    # the first request of each: Exim's, then eximpy's
    assert len(srv.requests) >= 2
    half = len(srv.requests) // 2
    assert _req(srv.requests[half]) == _req(srv.requests[0])


def test_spamd_timeout() -> None:
    """tmo= on the server: an answer later than that defers."""
    srv = FakeSpamd(REPLIES["sa_old"], delay=3)
    try:
        exim, py, _d = run_case(
            "spamproto_timeout",
            "data:\n  warn spam = joe/defer_ok\n       logwrite = x\n"
            "  accept\n",
            f"spamd_address = 127.0.0.1 {srv.port} tmo=1s\n"
            "acl_smtp_data = data\n", dialogue(MSG))
    finally:
        srv.stop()
    assert_same(py, exim)


def test_spamd_address_expanded_cache() -> None:
    """spamd_address = $acl_m_sa: the cached result is used only while the
    expanded address is the same (Exim's prev_spamd_address_work)."""
    a = FakeSpamd(REPLIES["sa_new"])
    b = FakeSpamd(REPLIES["sa_old"])
    acls = ("data:\n"
            f"  warn set acl_m_sa = 127.0.0.1 {a.port}\n"
            "       spam = joe:true\n"
            "       logwrite = a1 [$spam_score]\n"
            "  warn spam = joe:true\n"
            "       logwrite = a2 [$spam_score]\n"
            f"  warn set acl_m_sa = 127.0.0.1 {b.port}\n"
            "       spam = joe:true\n"
            "       logwrite = b1 [$spam_score]\n"
            f"  warn set acl_m_sa = 127.0.0.1 {a.port}\n"
            "       spam = joe:true\n"
            "       logwrite = a3 [$spam_score]\n"
            "  accept\n")
    try:
        exim, py, _d = run_case("spamproto_expanded", acls,
                                "spamd_address = $acl_m_sa\n"
                                "acl_smtp_data = data\n", dialogue(MSG))
    finally:
        a.stop()
        b.stop()
    assert_same(py, exim)
    assert len(a.requests) % 2 == 0 and len(b.requests) % 2 == 0


def test_spamd_address_expansion_fails() -> None:
    exim, py, _d = run_case(
        "spamproto_expansion_fails",
        "data:\n  deny spam = joe\n  accept\n",
        "spamd_address = ${if eq{a}{b}{x}fail}\nacl_smtp_data = data\n",
        dialogue(MSG))
    assert_same(py, exim)


def test_spam_per_recipient_prdr() -> None:
    """With PRDR the spam condition runs per recipient (a user name each;
    a repeated name uses the cached result)."""
    srv = FakeSpamd(REPLIES["sa_new"])
    acls = ("prdr:\n"
            "  warn spam = $local_part:true\n"
            "       logwrite = prdr $local_part [$spam_score]\n"
            "  deny spam = $local_part\n"
            "       condition = ${if eq{$local_part}{bob}}\n"
            "       message = no spam for bob\n"
            "  accept\n"
            "data:\n  warn logwrite = data [$spam_score]\n  accept\n")
    lines = ["EHLO client.example", "MAIL FROM:<a@b.c> PRDR",
             "RCPT TO:<alice@example.org>", "RCPT TO:<bob@example.org>",
             "RCPT TO:<alice2@example.org>", "DATA"]
    dlg = "\r\n".join(lines) + "\r\n" + MSG.replace("\n", "\r\n") + \
        ".\r\nQUIT\r\n"
    try:
        exim, py, _d = run_case(
            "spamproto_prdr", acls,
            f"spamd_address = 127.0.0.1 {srv.port}\nprdr_enable = true\n"
            "acl_smtp_data_prdr = prdr\nacl_smtp_data = data\n", dlg)
    finally:
        srv.stop()
    assert_same(py, exim)
    assert len(srv.requests) % 2 == 0
