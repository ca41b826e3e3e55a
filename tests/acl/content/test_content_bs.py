"""Content scanning in a real SMTP session (-bs -odq), Exim vs eximpy.

What -bh cannot show: the lines written to mainlog and paniclog, the
headers an ACL added from $spam_* (and the spam values Exim keeps in the
-H file), and that the scan directory is gone afterwards (or kept with
control = no_mbox_unspool).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from content_harness import WORK, conf_text, dialogue  # noqa: E402
from content_scanners import SPAM_TEXT, VIRUS_TEXT  # noqa: E402
from oracle import EXIM, EXIMPY, ROOT, keep_golden, GOLDEN  # noqa: E402

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? (\[\d+\] )?",
                    re.M)
_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-"
                 r"[0-9A-Za-z]{2}(?![0-9A-Za-z])")


def _run(argv: list[str], dlg: str) -> str:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin",
           "TZ": "UTC"}
    p = subprocess.run(argv, input=dlg.encode(), capture_output=True,
                       env=env, timeout=120)
    return p.stdout.decode("utf-8", "replace")


def _norm(text: str, spool: Path) -> str:
    text = text.replace(str(spool), "SPOOL")
    text = text.replace(str(spool.parent), "DIR")
    text = _STAMP.sub("", text)
    text = _ID.sub("MSGID", text)
    text = re.sub(r"\]:\d{4,5}\b", "]:PORT", text)
    return text


def _observe(spool: Path) -> dict[str, str]:
    """What a session left behind: logs, spam headers, -spam lines, the
    scan directory."""
    out: dict[str, str] = {}
    for name in ("mainlog", "paniclog"):
        p = spool / "log" / name
        out[name] = _norm(p.read_text(errors="replace"), spool) \
            if p.exists() else ""
    hdr = ""
    for h in sorted((spool / "input").rglob("*-H")):
        lines = h.read_text(errors="replace").split("\n")
        # The header lines an ACL added (with their continuations) and
        # Exim's -spam_bar/-spam_score/-spam_score_int lines.
        keep = False
        for ln in lines:
            if ln.startswith("-spam"):
                hdr += ln + "\n"
            elif ln[:1].isdigit():
                keep = "X-Spam" in ln or "X-Virus" in ln
            elif not ln.startswith(" "):
                keep = False
            if keep:
                hdr += ln + "\n"
    out["headers"] = _norm(hdr, spool)
    scan = spool / "scan"
    out["scan"] = " ".join(sorted(
        re.sub(r"\w{6}-\w{6}-\w{2}", "MSGID", p.name)
        for p in scan.rglob("*"))) if scan.exists() else ""
    return out


def _case(name: str, acls: str, extra: str, msg: str) -> None:
    d = WORK / f"bs_{name}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    got: dict[str, dict[str, str]] = {}
    for who in ("exim", "py"):
        spool = d / f"spool_{who}"
        (spool / "log").mkdir(parents=True)
        conf = d / f"conf_{who}"
        conf.write_text(conf_text(acls, extra, d, spool))
        argv = ([EXIM] if who == "exim" else list(EXIMPY)) + \
            ["-C", str(conf), "-bs", "-odq"]
        reply = _run(argv, dialogue(msg))
        obs = _observe(spool)
        reply = reply.replace("\r\n", "\n")
        obs["reply"] = re.sub(r"\w{3}, \d\d? \w{3} \d{4} [\d:]{8} [+-]\d{4}",
                              "DATE", _ID.sub("MSGID", reply))
        got[who] = obs
    text = "".join(f"=== {k}\n{v}\n" for k, v in sorted(got["exim"].items()))
    keep_golden(GOLDEN / "acl_content" / f"bs_{name}", text)
    for k in sorted(got["exim"]):
        assert got["py"][k].split("\n") == got["exim"][k].split("\n"), k


SPAM_HEADERS = ("data:\n"
                "  warn spam = nobody:true\n"
                "       add_header = X-Spam-Score: $spam_score ($spam_bar)\n"
                "       add_header = X-Spam-Report: $spam_report\n"
                "  deny malware = */defer_ok\n"
                "       message = virus $malware_name\n"
                "  warn logwrite = scanned [$malware_name]\n"
                "  accept\n")


@pytest.mark.parametrize("msg", ["spam", "virus"])
def test_bs_spam_headers_and_malware(clamd, spamd, msg: str) -> None:
    text = {"spam": f"Subject: s\n\nsome {SPAM_TEXT} here\n",
            "virus": f"Subject: v\n\nsome {VIRUS_TEXT} here\n"}[msg]
    _case(f"spam_headers_{msg}", SPAM_HEADERS,
          f"av_scanner = clamd:{clamd.socket}\n"
          f"spamd_address = 127.0.0.1 {spamd.port}\n"
          "acl_smtp_data = data\n", text)


def test_bs_scanner_down_paniclog() -> None:
    _case("scanner_down", "data:\n  deny malware = *\n  accept\n",
          "av_scanner = clamd:DIR/none.sock\nacl_smtp_data = data\n",
          "Subject: x\n\nhello\n")


def test_bs_no_mbox_unspool() -> None:
    acls = ("mime:\n  accept control = no_mbox_unspool\n"
            "          decode = default\n"
            "data:\n  accept regex = hello\n")
    msg = ("Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
           "--b\nContent-Type: text/plain\n\nhello\n--b--\n")
    _case("no_mbox_unspool", acls, "acl_smtp_mime = mime\n"
          "acl_smtp_data = data\n", msg)
