"""Shared helpers for the spool suite: scratch spools, real Exim, configs.

A scratch directory holds ``conf`` (a throw-away Exim configuration whose
spool and logs point into the directory), ``spool/`` and ``log/``.  Real
Exim (the oracle) and eximpy are both run against it.  ``config_for``
gives the in-process Config: the real eximpy.config.load_config when it
can read the file, else a small stand-in with the same ``main.get`` API.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.oracle import keep_golden

ROOT = Path(__file__).resolve().parents[2]
EXIM = shutil.which("exim") or "/usr/sbin/exim"
EXIMPY = [sys.executable, "-m", "eximpy"]

CONF = """\
keep_environment =
primary_hostname = mx.example.test
qualify_domain = example.test
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
{extra}
domainlist local_domains = example.test
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
dsn_advertise_hosts = *
auth_advertise_hosts = *
message_logs = true
begin acl
acl_rcpt:
  accept set acl_m_checked = rcpt ok for $local_part
         set acl_c_helo = $sender_helo_name
         set acl_m_nl = first\\nsecond line\\n
acl_data:
  accept
begin routers
local_user:
  driver = accept
  transport = local_file
begin transports
local_file:
  driver = appendfile
  file = /dev/null
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = yes
  server_set_id = $auth2
"""


class _Main:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, name: str) -> Any:
        return self.values.get(name)


class StandInConfig:
    def __init__(self, values: dict[str, Any], filename: str) -> None:
        self.main = _Main(values)
        self.filename = filename


def make_scratch(base: Path, extra: str = "") -> Path:
    """Create base/{conf,spool,log} owned by the Exim user."""
    base.mkdir(parents=True, exist_ok=True)
    for sub in ("spool", "log"):
        (base / sub).mkdir(exist_ok=True)
    (base / "conf").write_text(CONF.format(d=base, extra=extra))
    try:
        uid = pwd.getpwnam("Debian-exim").pw_uid
        gid = grp.getgrnam("Debian-exim").gr_gid
        for p in (base, base / "spool", base / "log"):
            os.chown(p, uid, gid)
    except KeyError:
        pass
    return base / "conf"


def config_for(base: Path, **more: Any) -> Any:
    """The in-process configuration for a scratch directory."""
    conf = base / "conf"
    try:
        from eximpy.config import load_config
        cfg = load_config(str(conf))
        if not more:
            return cfg
    except Exception:
        pass
    values: dict[str, Any] = {
        "primary_hostname": "mx.example.test",
        "qualify_domain": "example.test",
        "spool_directory": str(base / "spool"),
        "log_file_path": str(base / "log" / "%slog"),
        "message_logs": True,
    }
    for line in conf.read_text().splitlines():
        if line.startswith("log_selector"):
            values["log_selector"] = line.split("=", 1)[1].strip()
        if line.startswith("split_spool_directory"):
            values["split_spool_directory"] = True
    values.update(more)
    return StandInConfig(values, str(conf))


def exim(conf: Path, args: list[str], stdin: bytes | str | None = None,
         check: bool = False) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    env = dict(os.environ, TZ="UTC")
    return subprocess.run([EXIM, "-C", str(conf)] + args, input=data,
                          capture_output=True, env=env, check=check,
                          timeout=60)


def eximpy(conf: Path, args: list[str], stdin: bytes | str | None = None
           ) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    env = dict(os.environ, TZ="UTC", PYTHONPATH=str(ROOT))
    return subprocess.run(EXIMPY + ["-C", str(conf)] + args, input=data,
                          capture_output=True, env=env, timeout=60,
                          cwd=str(ROOT))


def smtp_script(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


GOLDEN = ROOT / "tests" / "golden" / "spool"


def golden_check(name: str, live: str) -> str:
    """Keep real Exim's (normalized) answer as tests/golden/spool/<name>:
    write it when missing or with EXIMPY_REGEN_GOLDEN=1, else it must not
    have changed (as tests/oracle.py does for command output)."""
    keep_golden(GOLDEN / name, live)
    return live


def spool_files(base: Path) -> dict[str, bytes]:
    inp = base / "spool" / "input"
    return {p.name: p.read_bytes() for p in sorted(inp.rglob("*"))
            if p.is_file()}


def only_id(base: Path) -> str:
    ids = sorted(n[:-2] for n in spool_files(base) if n.endswith("-H"))
    assert len(ids) == 1, ids
    return ids[0]


def normalize(text: str, ids: dict[str, str] | None = None) -> str:
    """Replace ids, times and pids that differ between runs."""
    import re
    for real, label in (ids or {}).items():
        text = text.replace(real, label)
    seen: dict[str, str] = {}

    def label(m: "re.Match[str]") -> str:
        return m.group(1) + seen.setdefault(m.group(2), f"ID{len(seen) + 1}")
    # ids, also as Message-Id local parts (E<id>)
    text = re.sub(r"(?<![0-9A-Za-z])(E?)([0-9A-Za-z]{6}-[0-9A-Za-z]{6}-"
                  r"[0-9A-Za-z]{2})(?![0-9A-Za-z])", label, text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})?", "TIME", text)
    text = re.sub(r"\b1[0-9]{9}\b", "EPOCH", text)
    text = re.sub(r"\.\d{6}\b", ".USEC", text)
    text = re.sub(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}",
                  "DATE", text)
    text = re.sub(r"\[\d+\]", "[PID]", text)
    text = re.sub(r"RT=\d+\.\d+s", "RT=Xs", text)
    text = re.sub(r"^ *\d+[mhd] ", " AGE ", text, flags=re.M)
    return text
