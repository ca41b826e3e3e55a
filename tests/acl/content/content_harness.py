"""Run one content-scanning case through real Exim and eximpy (-bh).

A case is a configuration (main options + ACLs) and an SMTP dialogue.  It
is written twice (spools spool_exim/ and spool_py/ under the case's work
directory), run as `exim -C conf -bh IP` (tests/oracle.py keeps the
golden in tests/golden/acl_content/) and through eximpy's -bh in process,
and the normalised SMTP replies and stderr (">>>" ACL trace and "LOG:"
lines) are returned for comparison.

Normalised: paths, message ids, dates; the session's own host-list lines
(">>> host in <option>?"), as tests/acl/test_acl_bh.py does, and the
host lookup's "IP address lookup failed: h_errno=" line; runs of
"unspool_mbox(): unlinking" lines are sorted (Exim unlinks in readdir()
order).
"""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from oracle import ROOT, exim_run

WORK = ROOT / "tests" / "_work" / "acl_content"

_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-"
                 r"[0-9A-Za-z]{2}(?![0-9A-Za-z])")
_DATE = re.compile(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")
_BSD = re.compile(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}")
_PORT = re.compile(r"\]:\d{4,5}\b")
_IP_PORT = re.compile(r"\b(127\.0\.0\.1) \d{4,5}\b")
_SESSION_LIST = re.compile(r"^>>> \S+ in [a-z0-9_]+\? ")
_UNSPOOL = ">>> unspool_mbox(): unlinking"
# eximpy.hostlookup does not print this line of Exim's host_name_lookup()
# (not content scanning; reported to its owner).
_HOSTLOOKUP = ">>> IP address lookup failed: h_errno="


def conf_text(acls: str, extra: str, d: Path, spool: Path) -> str:
    return (f"primary_hostname = mx.example.com\n"
            f"qualify_domain = example.org\n"
            f"spool_directory = {spool}\n"
            f"log_file_path = {spool}/log/%slog\n"
            "exim_user = root\nexim_group = root\nnever_users =\n"
            "keep_environment =\n"
            + ("" if "acl_smtp_rcpt" in extra else "acl_smtp_rcpt = accept\n")
            + extra.replace("DIR", str(d)).replace("SPOOL", str(spool)) +
            "begin acl\n" + acls.replace("DIR", str(d)) +
            "\nbegin routers\n"
            "all:\n  driver = accept\n  transport = t1\n"
            "begin transports\n"
            f"t1:\n  driver = appendfile\n  file = {spool}/mbox\n")


def normalize(text: str, d: Path) -> str:
    # bytes that are not UTF-8 (iso-8859-1 file names) as \xNN, so the
    # golden files are text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8",
                                                          "backslashreplace")
    text = text.replace("\r\n", "\n")
    for who in ("exim", "py"):
        text = text.replace(str(d / f"conf_{who}"), "CONF")
        text = text.replace(str(d / f"spool_{who}"), "SPOOL")
    text = text.replace(str(d), "DIR")
    text = text.replace(str(WORK), "WORK").replace(str(ROOT), "ROOT")
    text = _ID.sub("MSGID", text)
    text = _DATE.sub("DATE", text)
    text = _BSD.sub("BSDDATE", text)
    text = _PORT.sub("]:PORT", text)
    text = _IP_PORT.sub(r"\1 PORT", text)
    out: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        if _SESSION_LIST.match(line) or line.startswith(_HOSTLOOKUP):
            continue
        if line.startswith(_UNSPOOL):
            run.append(line)
            continue
        if run:
            out += sorted(run)
            run = []
        out.append(line)
    out += sorted(run)
    return "\n".join(out)


def dialogue(message: str, sender: str = "a@b.c",
             rcpts: tuple[str, ...] = ("d@example.org",)) -> str:
    lines = ["EHLO client.example", f"MAIL FROM:<{sender}>"]
    lines += [f"RCPT TO:<{r}>" for r in rcpts]
    lines.append("DATA")
    body = message.replace("\r\n", "\n").split("\n")
    if body and body[-1] == "":
        body.pop()
    lines += [("." + ln) if ln.startswith(".") else ln for ln in body]
    lines += [".", "QUIT"]
    return "\r\n".join(lines) + "\r\n"


def run_case(name: str, acls: str, extra: str, dlg: str,
             ip: str = "10.9.8.7", files: dict[str, str] | None = None
             ) -> tuple[tuple[str, str], tuple[str, str], Path]:
    """((exim stdout, stderr), (eximpy stdout, stderr), work dir)."""
    d = WORK / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for fn, content in (files or {}).items():
        (d / fn).parent.mkdir(parents=True, exist_ok=True)
        (d / fn).write_text(content)
        if fn.endswith(".sh"):
            (d / fn).chmod(0o755)
    for who in ("exim", "py"):
        spool = d / f"spool_{who}"
        (spool / "log").mkdir(parents=True)
        (d / f"conf_{who}").write_text(conf_text(acls, extra, d, spool))
    exim = exim_run("acl_content", name,
                    ["-C", str(d / "conf_exim"), "-bh", ip], stdin=dlg,
                    normalize=lambda s: normalize(s, d))
    out, err = run_eximpy(d / "conf_py", ip, dlg)
    return (exim.out, exim.err), (normalize(out, d), normalize(err, d)), d


def run_eximpy(conf: Path, ip: str, dlg: str) -> tuple[str, str]:
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    stdout = io.BytesIO()
    stderr = io.StringIO()
    config = _load(inv)
    run_bh(config, inv, io.BytesIO(dlg.encode()), stdout, stderr)
    return stdout.getvalue().decode("utf-8", "surrogateescape"), \
        stderr.getvalue()


def assert_same(py: tuple[str, str], exim: tuple[str, str]) -> None:
    """eximpy's (stdout, stderr) equals Exim's, compared line by line."""
    import difflib
    for i, what in ((1, "stderr"), (0, "stdout")):
        a, b = exim[i].split("\n"), py[i].split("\n")
        if a != b:
            diff = "\n".join(difflib.unified_diff(a, b, "exim", "eximpy",
                                                   lineterm="", n=2))
            raise AssertionError(f"{what} differs:\n{diff}")
