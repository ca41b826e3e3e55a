"""Differential `-bh` sessions: eximpy's ACL engine against real Exim 4.96.

Each case of acl_cases.CASES is written as a configuration and run as
`exim -C conf -bh IP` for every IP of acl_cases.IPS, and the same dialogue
through eximpy's -bh (eximpy.cli.host_check.run_bh, in process).  Compared:
the SMTP replies (stdout) and the ">>>" ACL trace plus "LOG:" lines
(stderr), normalised for dates, message ids and paths.

Everything on stderr is compared, including the session's own host-list
checks (">>> host in <option>? ..."), the routing trace inside verify
blocks and after a VRFY, and the "<=" lines.
"""
from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

from oracle import ROOT, exim_run

sys.path.insert(0, str(Path(__file__).parent))
from acl_cases import CASES, IPS, SESSION_GAPS  # noqa: E402

WORK = ROOT / "tests" / "_work" / "acl_bh"

HOOKS = {"r": "rcpt", "m": "mail", "c": "connect", "h": "helo",
         "p": "predata", "d": "data", "v": "vrfy", "q": "quit"}

FILES = {
    "domains": "example.org: org data\n*.com: wild\nexample.com\n",
    "domainfile": "# domains\nfoo.bar\n!example.com\nexample.org\n",
    "users": "info: yes\npostmaster:\n",
    "addrs": "info@example.org: i\nx@foo.bar: x\n",
    "nets": "10.1.2.0/24: ten\n",
    "ipl": "192.0.2.0/24: test-net\n127.0.0.1: lo\n",
    "exigrey.pm": "sub unseen { my ($key, $ttl) = @_;\n"
                  "  return $key =~ m{/(info|office)@} ? 'yes' : 'no'; }\n1;\n",
    "aclfile": "# an ACL in a file\naccept domains = example.org\n"
               "deny message = from file\n",
}


def _conf_text(acl: str, extra: str, d: Path, spool: Path) -> str:
    hooks = ""
    for line in acl.split("\n"):
        m = re.match(r"^\s*([a-z0-9]+):\s*$", line)
        if m and m.group(1) in HOOKS:
            hooks += f"acl_smtp_{HOOKS[m.group(1)]} = {m.group(1)}\n"
    body = acl.replace("DIR", str(d))
    extra = extra.replace("DIR", str(d))
    return (f"primary_hostname = mx.example.com\n"
            f"qualify_domain = example.org\n"
            f"spool_directory = {spool}\n"
            f"log_file_path = {spool}/log/%slog\n"
            "exim_user = root\nexim_group = root\nnever_users =\n"
            "keep_environment =\n"
            "domainlist local_domains = example.org : example.com\n"
            "hostlist relay_from_hosts = 127.0.0.1 : 10.0.0.0/8\n"
            "addresslist good_senders = a@b.c : *@example.org\n"
            f"{hooks}{extra}"
            "begin acl\n" + body +
            "\nbegin routers\n"
            "local:\n  driver = accept\n  domains = +local_domains\n"
            "  local_parts = postmaster : info : office : mixed\n"
            "  transport = t1\n"
            "senders:\n  driver = accept\n  domains = b.c : y.x\n"
            "  transport = t1\n"
            "begin transports\n"
            f"t1:\n  driver = appendfile\n  file = {spool}/mbox\n")


_ID = re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b")
_DATE = re.compile(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _norm(text: str, d: Path) -> str:
    text = text.replace("\r\n", "\n")
    text = text.replace(str(d / "conf_exim"), "CONF")
    text = text.replace(str(d / "conf_py"), "CONF")
    text = text.replace(str(d / "spool_exim"), "SPOOL")
    text = text.replace(str(d / "spool_py"), "SPOOL")
    text = text.replace(str(d), "DIR")
    text = _ID.sub("MSGID", text)
    return _DATE.sub("DATE", text)


def _params():
    for name, acl, extra, dlg in CASES:
        for ip in IPS:
            yield pytest.param(name, acl, extra, dlg, ip,
                               id=f"{name}-{ip}")


@pytest.mark.parametrize("name,acl,extra,dlg,ip", list(_params()))
def test_bh(name: str, acl: str, extra: str, dlg: str, ip: str) -> None:
    d = WORK / f"{name}-{ip}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for fn, content in FILES.items():
        (d / fn).write_text(content)
    for who in ("exim", "py"):
        spool = d / f"spool_{who}"
        (spool / "log").mkdir(parents=True)
        (d / f"conf_{who}").write_text(_conf_text(acl, extra, d, spool))
    exim = exim_run("acl", f"{name}-{ip}",
                    ["-C", str(d / "conf_exim"), "-bh", ip], stdin=dlg,
                    normalize=lambda s: _norm(s, d))
    out, err = _run_eximpy(d / "conf_py", ip, dlg)
    if name in SESSION_GAPS:
        # Only the ACL engine's own trace (see acl_cases.SESSION_GAPS).
        assert _trace(_norm(err, d)) == _trace(exim.err)
    else:
        got = (_norm(out, d), _norm(err, d))
        assert got == (exim.out, exim.err), _diff(got, exim)


def _diff(got: tuple[str, str], want) -> str:
    import difflib
    return "\n".join(difflib.unified_diff(
        (want.out + want.err).split("\n"), (got[0] + got[1]).split("\n"),
        "exim", "eximpy", lineterm="", n=1))


def _trace(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if ln.startswith(">>>")]


def _run_eximpy(conf: Path, ip: str, dlg: str) -> tuple[str, str]:
    from eximpy.cli.host_check import run_bh
    from eximpy.cli.modes import _load
    from eximpy.cli.options import parse_args
    from eximpy.errors import ConfigError
    inv = parse_args(["exim", "-C", str(conf), "-bh", ip])
    stdout = io.BytesIO()
    stderr = io.StringIO()
    try:
        config = _load(inv)
    except ConfigError as e:
        return "", f"config error: {e}\n"
    run_bh(config, inv, io.BytesIO(dlg.encode()), stdout, stderr)
    return stdout.getvalue().decode("utf-8", "surrogateescape"), \
        stderr.getvalue()
