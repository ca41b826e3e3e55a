"""What a bounce says about a remote failure: Exim's bounce (kept on its
queue by a :defer: router for the sender's domain) against
eximpy.deliver.remote.bounce_address_text() and dsn_remote_fields() for
the addresses eximpy's delivery of the same spool failed (captured in
process where eximpy.deliver.bounce.send_bounce is called).  These are the
helpers the bounce code is to use; eximpy's own bounce text is the bounce
code's business."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _remote import (WORK, copy_spool, deliver_exim, ids_in,  # noqa: E402
                     prepare, receive)
from smtpserver import ScriptedServer  # noqa: E402
from test_smtp_transport import CONF, MESSAGE  # noqa: E402

DEFER_BOUNCES = """\
  bounces:
    driver = redirect
    domains = sender.example
    allow_defer
    data = :defer: kept for the test
"""

CASES = {
    "bounce-rcpt-550": ({"rcpt_replies": {"bad": "550 5.1.1 no such user here",
                                          "bad2": "553 5.1.2 bad mailbox"}},
                        ["a@dest.example", "bad@dest.example",
                         "bad2@dest.example"]),
    "bounce-data-554": ({"final_reply": "554 5.6.0 message content rejected "
                                        "by a rather long policy text"},
                        ["a@dest.example", "b@dest.example"]),
    "bounce-greeting-554": ({"greeting": "554 5.7.1 no service for you"},
                            ["a@dest.example"]),
    "bounce-mail-550": ({"mail_reply": "550 5.7.1 sender refused: policy"},
                        ["a@dest.example"]),
}


def _exim_bounce(root: Path, mids: list[str]) -> str:
    for f in sorted((root / "spool" / "input").glob("*-D")):
        if f.name[:-2] not in mids:
            return f.read_text()
    raise AssertionError("Exim queued no bounce")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bounce_text(case, monkeypatch):
    skw, rcpts = CASES[case]
    srv = ScriptedServer(**skw).start()
    conf_text = (CONF.replace("@PORTLINE@", "    port = @PORT@")
                 .replace("@TRANSPORT@", "").replace("@MAIN@", "")
                 .replace("@AUTH@", "").replace("@HOSTS@", "127.0.0.2")
                 .replace("@PORT@", str(srv.port)))
    conf_text = re.sub(r"  bounces:\n(    .*\n)+", DEFER_BOUNCES, conf_text)
    work = WORK / case
    ex, py = work / "exim", work / "eximpy"
    cex, cpy = prepare(ex, conf_text, {}), prepare(py, conf_text, {})
    receive(cex, ["-f", "sender@sender.example"] + rcpts, MESSAGE)
    copy_spool(ex, py)
    mids = ids_in(ex)
    try:
        deliver_exim(cex, mids[0])
        captured: list = []
        import eximpy.deliver.bounce as B
        monkeypatch.setattr(B, "send_bounce",
                            lambda config, msg, body, failed, **kw:
                            captured.extend(failed))
        from eximpy.config import load_config
        from eximpy.deliver.deliver import deliver_message
        deliver_message(load_config(str(cpy), {}), mids[0], forced=True)
    finally:
        srv.stop()
    bounce = _exim_bounce(ex, mids)
    assert captured
    from eximpy.deliver.remote import bounce_address_text, dsn_remote_fields
    for a in captured:
        block = "\n".join([f"  {a.address}"] + bounce_address_text(a))
        assert block + "\n" in bounce, (block, bounce)
        fields = "\n".join([f"Final-Recipient: rfc822;{a.address}",
                            "Status: 5.0.0"] + dsn_remote_fields(a))
        assert fields + "\n" in bounce, (fields, bounce)


def _norm_bounce(text: str) -> str:
    text = re.sub(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}", "ID", text)
    text = re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}",
                  "DATE", text)
    return re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_whole_bounce_matches_exim(case):
    """eximpy's own bounce for the remote failures (queued, as Exim's is,
    because the sender's domain defers) against Exim's, whole."""
    skw, rcpts = CASES[case]
    srv = ScriptedServer(**skw).start()
    conf_text = (CONF.replace("@PORTLINE@", "    port = @PORT@")
                 .replace("@TRANSPORT@", "").replace("@MAIN@", "")
                 .replace("@AUTH@", "").replace("@HOSTS@", "127.0.0.2")
                 .replace("@PORT@", str(srv.port)))
    conf_text = re.sub(r"  bounces:\n(    .*\n)+", DEFER_BOUNCES, conf_text)
    work = WORK / ("whole-" + case)
    ex, py = work / "exim", work / "eximpy"
    cex, cpy = prepare(ex, conf_text, {}), prepare(py, conf_text, {})
    receive(cex, ["-f", "sender@sender.example"] + rcpts, MESSAGE)
    copy_spool(ex, py)
    mids = ids_in(ex)
    try:
        deliver_exim(cex, mids[0])
        from eximpy.config import load_config
        from eximpy.deliver.deliver import deliver_message
        deliver_message(load_config(str(cpy), {}), mids[0], forced=True)
    finally:
        srv.stop()
    want = _norm_bounce(_exim_bounce(ex, mids))
    got = _norm_bounce(_exim_bounce(py, mids))
    assert got == want
