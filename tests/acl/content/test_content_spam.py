"""The spam condition against a real spamd (SpamAssassin), vs exim -bh.

Real Exim and eximpy are pointed at the same spamd (content_scanners: a
body rule scoring 12.5 and a Subject: rule scoring 2.3, threshold 5).
Compared: the SMTP replies, the ACL trace and LOG: lines, which show
$spam_score, $spam_score_int, $spam_bar, $spam_action and $spam_report.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from content_harness import assert_same, dialogue, run_case  # noqa: E402
from content_scanners import MILD_SUBJECT, SPAM_TEXT, free_port  # noqa: E402

SPAMMY = f"Subject: buy now\n\nthis is {SPAM_TEXT} for sure\n"
MILD = f"Subject: {MILD_SUBJECT}\n\njust a mild one\n"
HAM = "Subject: hello\n\nlunch tomorrow?\n"

VARS = ("  warn logwrite = s=[$spam_score] i=[$spam_score_int] "
        "b=[$spam_bar] a=[$spam_action]\n"
        "  warn logwrite = r=[$spam_report]\n")

CASES = {
    "deny": ("data:\n"
             "  deny spam = nobody\n"
             "       message = spam score $spam_score ($spam_bar)\n" + VARS +
             "  accept\n"),
    "true_vars": ("data:\n"
                  "  warn spam = nobody:true\n"
                  "       add_header = X-Spam-Score: $spam_score "
                  "($spam_bar)\n"
                  "       add_header = X-Spam-Report: $spam_report\n" + VARS +
                  "  deny spam = nobody:true\n"
                  "       condition = ${if >{$spam_score_int}{120}}\n"
                  "       message = scored $spam_score points\n"
                  "  accept\n"),
    "cached": ("data:\n"
               "  warn spam = nobody\n"
               "       logwrite = first spam\n"
               "  warn !spam = nobody\n"
               "       logwrite = second not spam [$spam_score]\n"
               "  warn spam = otheruser:true\n"
               "       logwrite = other user [$spam_score]\n"
               "  warn spam = false\n"
               "       logwrite = not reached\n"
               "  warn !spam = 0\n"
               "       logwrite = zero means no scan\n"
               "  accept\n"),
}


@pytest.mark.parametrize("msg", ["spammy", "mild", "ham"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_spam(spamd, case: str, msg: str) -> None:
    text = {"spammy": SPAMMY, "mild": MILD, "ham": HAM}[msg]
    exim, py, _d = run_case(
        f"spam_{case}_{msg}", CASES[case],
        f"spamd_address = 127.0.0.1 {spamd.port}\n"
        "acl_smtp_data = data\n", dialogue(text))
    assert_same(py, exim)


@pytest.mark.parametrize("arg", ["nobody", "nobody/defer_ok",
                                 "nobody:true/defer_ok"])
def test_spamd_down(arg: str) -> None:
    port = free_port()
    tag = arg.replace(":", "_").replace("/", "_")
    acls = ("data:\n"
            f"  deny spam = {arg}\n"
            "       message = spam\n"
            "  warn logwrite = passed [$spam_score]\n"
            "  accept\n")
    exim, py, _d = run_case(f"spamd_down_{tag}", acls,
                            f"spamd_address = 127.0.0.1 {port}\n"
                            "acl_smtp_data = data\n", dialogue(SPAMMY))
    assert_same(py, exim)


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.1 PORT weight=0",
                                  "127.0.0.1 PORT bogus=1",
                                  "127.0.0.1 DOWN : 127.0.0.1 PORT pri=0",
                                  "127.0.0.1 PORT tmo=30s retry=1s",
                                  "127.0.0.1 DOWN retry=1s",
                                  "DIR/none.sock : 127.0.0.1 PORT pri=0",
                                  "127.0.0.1 PORT time=0-24",
                                  "127.0.0.1 PORT time=23.59.59-24 : "
                                  "127.0.0.1 PORT pri=0"])
def test_spamd_address_forms(spamd, addr: str) -> None:
    down = str(free_port())
    a = addr.replace("PORT", str(spamd.port)).replace("DOWN", down)
    tag = "".join(c if c.isalnum() else "_" for c in addr)
    acls = ("data:\n"
            "  warn spam = nobody:true/defer_ok\n"
            "       logwrite = score [$spam_score] [$spam_action]\n"
            "  accept\n")
    exim, py, _d = run_case(f"spamd_addr_{tag}", acls,
                            f"spamd_address = {a}\n"
                            "acl_smtp_data = data\n", dialogue(SPAMMY))
    assert_same(py, exim)


def test_spamd_unix_socket_missing() -> None:
    acls = ("data:\n  warn spam = nobody/defer_ok\n"
            "       logwrite = not reached\n  accept\n")
    exim, py, _d = run_case("spamd_unix_missing", acls,
                            "spamd_address = DIR/no-spamd.sock\n"
                            "acl_smtp_data = data\n", dialogue(HAM))
    assert_same(py, exim)


@pytest.mark.parametrize("msg", ["spammy", "ham"])
def test_spamd_unix_socket(spamd, msg: str) -> None:
    text = {"spammy": SPAMMY, "ham": HAM}[msg]
    exim, py, _d = run_case(
        f"spamd_unix_{msg}", CASES["deny"],
        f"spamd_address = {spamd.socket}\nacl_smtp_data = data\n",
        dialogue(text))
    assert_same(py, exim)
