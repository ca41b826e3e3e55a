"""The retry hints database against real Exim: the same queued message is
delivered by `exim -M`, then queue runs (`-q`, `-qf`) follow, on Exim's
spool and on a copy handled by eximpy; the main log lines, the message
logs, what stays queued, and the retry records (exim_dumpdb against
eximpy's exinext --dump) must agree.

Deferrals come from a pipe exiting with a temp_errors code, an appendfile
into a missing directory, an appendfile over its quota and a redirect
router's :defer:.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oracle import EXIM, GOLDEN, keep_golden

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "tests" / "_work" / "retry"
DELIVER_MAIN = HERE / "deliver_main.py"

CONF = """\
primary_hostname = vm.example
qualify_domain = example.org
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
never_users = root
keep_environment =
@SELECTOR@
begin routers
dom:
  driver = redirect
  domains = defer.example
  data = :defer: domain not ready
  allow_defer
pf:
  driver = redirect
  local_parts = pf
  data = |/bin/sh -c "exit 75"
  pipe_transport = tfpipe
d:
  driver = redirect
  local_parts = dd
  data = :defer: not now
  allow_defer
q:
  driver = accept
  local_parts = qq
  transport = quota
nd:
  driver = accept
  local_parts = nodir
  transport = strict
r1:
  driver = accept
  local_parts = tf : ok
  transport = ${if eq{$local_part}{tf}{tfpipe}{mbox}}
sfx:
  driver = accept
  local_parts = tf
  local_part_suffix = -*
  transport = tfpipe
tw:
  driver = accept
  local_parts = tw
  errors_to = list@example.org
  transport = tfpipe
lst:
  driver = accept
  local_parts = list
  transport = tfpipe
td:
  driver = accept
  local_parts = td1 : td2
  transport = tfdom
begin transports
mbox:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
strict:
  driver = appendfile
  file = @ROOT@/nonexistent/$local_part_data
  create_directory = false
  user = nobody
quota:
  driver = appendfile
  file = @ROOT@/mail/$local_part_data
  user = nobody
  quota = 10
tfpipe:
  driver = pipe
  command = /bin/sh -c "exit 75"
  user = nobody
  temp_errors = 75
tfdom:
  driver = pipe
  command = /bin/sh -c "exit 75"
  user = nobody
  temp_errors = 75
  retry_use_local_part = false
begin retry
@RULES@
"""


def _prepare(root: Path, conf: str) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("spool", "log", "mail"):
        (root / d).mkdir(parents=True)
    (root / "mail").chmod(0o777)
    for d in ("spool", "log"):
        shutil.chown(root / d, "Debian-exim", "Debian-exim")
    path = root / "exim.conf"
    path.write_text(conf.replace("@ROOT@", str(root)))
    return path


def _copy_spool(ex: Path, py: Path) -> None:
    shutil.rmtree(py / "spool")
    shutil.copytree(ex / "spool", py / "spool")
    for d, _, files in os.walk(py / "spool"):
        shutil.chown(d, "Debian-exim", "Debian-exim")
        for f in files:
            shutil.chown(os.path.join(d, f), "Debian-exim", "Debian-exim")


def _eximpy(conf: Path, args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args[0].startswith("-q"):
        subprocess.run([sys.executable, "-m", "eximpy", "-C", str(conf)] + args,
                       capture_output=True, env=env, timeout=120)
    else:
        subprocess.run([sys.executable, str(DELIVER_MAIN), "-C", str(conf)]
                       + args, capture_output=True, env=env, timeout=120)


def _norm(root: Path, text: str) -> str:
    text = text.replace(str(root), "@ROOT@")
    text = re.sub(r"\.lock\.([^.\s]+(?:\.[^.\s]+)*)\.[0-9a-f]{8}\.[0-9a-f]{8}",
                  r".lock.\1.TIME.PID", text)
    return text


def _log(root: Path, mid: str) -> list[str]:
    out = []
    for ln in (root / "log" / "mainlog").read_text().splitlines():
        ln = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln)
        if ln.startswith(mid + " ") and " <= " not in ln:
            out.append(_norm(root, ln))
    return out


def _msglog(root: Path, mid: str) -> list[str]:
    p = root / "spool" / "msglog" / mid
    if not p.exists():
        return []
    return [_norm(root, re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", ln))
            for ln in p.read_text().splitlines()]


def _dump_exim(root: Path) -> list[str]:
    p = subprocess.run(["/usr/sbin/exim_dumpdb", str(root / "spool"), "retry"],
                       capture_output=True, text=True)
    return _dump_norm(root, p.stdout)


def _dump_eximpy(root: Path) -> list[str]:
    p = subprocess.run([sys.executable, str(ROOT / "spool_tools" / "exinext.py"),
                        "--dump", str(root / "spool")],
                       capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return _dump_norm(root, p.stdout)


def _dump_norm(root: Path, text: str) -> list[str]:
    """Keys, errors and texts; the three times reduced to their order
    (first failed <= last try, and next try - last try)."""
    out = []
    lines = text.splitlines()
    for i in range(0, len(lines) - 1, 2):
        head, times = lines[i], lines[i + 1]
        m = re.match(r"(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d)  (\S+ \S+)  (\S+ \S+)"
                     r" ?(\*?)$", times)
        assert m, times
        import datetime as dt
        t = [dt.datetime.strptime(m.group(k), "%d-%b-%Y %H:%M:%S")
             for k in (1, 2, 3)]
        gap = int((t[2] - t[1]).total_seconds())
        # (appendfile's more_errno for a quota error is the time since the
        # mailbox was last read: not comparable between two runs)
        head = re.sub(r"^(  T:\S+ -22) \d+ ", r"\1 N ", head)
        out.append(f"{_norm(root, head)} | gap={gap} expired={m.group(4)}")
    return sorted(out)


def _run_both(name: str, rules: str, steps: list[list[str] | float],
              selector: str = "", rcpts: tuple[str, ...] = ("tf", "dd", "qq",
                                                            "nodir", "ok")):
    if EXIM is None:
        pytest.fail("real Exim is needed for the retry differential tests")
    conf = CONF.replace("@RULES@", rules).replace("@SELECTOR@", selector)
    ex, py = WORK / name / "exim", WORK / name / "eximpy"
    cex, cpy = _prepare(ex, conf), _prepare(py, conf)
    p = subprocess.run([EXIM, "-C", str(cex), "-odq", "-f", "s@example.org"]
                       + list(rcpts), input=b"Subject: retry\n\nbody\n",
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    mid = next(f.name[:-2] for f in (ex / "spool" / "input").iterdir()
               if f.name.endswith("-H"))
    _copy_spool(ex, py)
    for step in steps:
        if isinstance(step, float):
            time.sleep(step)
            continue
        if callable(step):
            step(ex)
            step(py)
            continue
        args = [a.replace("@ID@", mid) for a in step]
        subprocess.run([EXIM, "-C", str(cex)] + args, capture_output=True,
                       timeout=120)
        _eximpy(cpy, args)
    return ex, py, mid


def _compare(name: str, ex: Path, py: Path, mid: str, dump: bool = True) -> None:
    lx, lp = _log(ex, mid), _log(py, mid)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.mainlog",
                "\n".join(lx).replace(mid, "MSGID") + "\n")
    assert lp == lx
    assert _msglog(py, mid) == _msglog(ex, mid)
    for side in (ex, py):
        if (ex / "mail" / "ok").exists():
            assert (side / "mail" / "ok").read_text().count("Subject: retry") == 1
    assert (py / "spool" / "input" / f"{mid}-H").exists() == \
        (ex / "spool" / "input" / f"{mid}-H").exists()
    if not dump:
        return
    dx = _dump_exim(ex)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.dump", "\n".join(dx) + "\n")
    assert _dump_eximpy(py) == dx


def test_queue_run_skips_until_retry_time():
    """-M tries everything and writes T:/R: records; a plain -q skips
    every address (nothing logged by default); -qf tries them again."""
    name = "skip_default"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], ["-q"], ["-qf"], ["-q"]])
    _compare(name, ex, py, mid)


def test_retry_defer_selector_off_hides_skips():
    """retry_defer is a default log selector; with log_selector =
    -retry_defer the skipped addresses ("routing defer (-52): retry time
    not reached", "defer (-53): Retry time not yet reached") are not
    logged, and the message log gets them only on a first attempt."""
    name = "skip_unlogged"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], ["-q"], ["-M", "@ID@"], ["-q"]],
                            selector="log_selector = -retry_defer")
    _compare(name, ex, py, mid)


def test_cutoff_times_out_addresses():
    """Past the rule's cutoff the ultimate address timeout lets a queue run
    try again, and the failures time out: "** ...: retry timeout
    exceeded", a bounce, and the message completes."""
    name = "cutoff"
    ex, py, mid = _run_both(name, "* * F,3s,1h",
                            [["-M", "@ID@"], ["-q"], 4.0, ["-q"]])
    _compare(name, ex, py, mid)
    # the bounce: each address with its reason and ": retry timeout exceeded"
    bx, bp = _bounce(ex, mid), _bounce(py, mid)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.bounce", bx)
    assert bp == bx


def _bounce(root: Path, mid: str) -> str:
    for f in sorted((root / "spool" / "input").glob("*-H")):
        if f.name.startswith(mid) or "\n<>\n" not in f.read_text(errors="replace"):
            continue
        data = (root / "spool" / "input" / (f.name[:-2] + "-D")).read_text(
            errors="replace").split("\n", 1)[1]
        data = data.split("Content-type: message/rfc822")[0]
        return _norm(root, re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", data))
    raise AssertionError(f"no bounce in {root}")


def test_rule_without_parameters_and_specific_errors():
    """A rule with no parameter sets times out at once; an error-specific
    rule (quota) applies only to that error; a domain/address pattern picks
    its addresses."""
    name = "rules"
    rules = ("tf@example.org * \n"
             "* quota F,1h,10m\n"
             "nodir@* * G,1h,5m,2\n"
             "example.org * F,1h,20m")
    ex, py, mid = _run_both(name, rules, [["-M", "@ID@"], ["-qf"]])
    _compare(name, ex, py, mid)


def _exinext_blocks(root: Path, text: str) -> list[str]:
    """exinext's output cut into its records (Exim's comes in DBM order),
    times replaced."""
    text = _norm(root, text)
    text = re.sub(r"\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d", "TIME", text)
    blocks: list[str] = []
    for ln in text.splitlines():
        if ln.startswith("  ") and blocks:
            blocks[-1] += "\n" + ln
        else:
            blocks.append(ln)
    return sorted(blocks)


def test_exinext_matches_exim():
    """bin/exinext prints the same records as Exim's exinext (run with
    -DSPOOLDIR= so that its -bP finds the test spool) for an address, a
    domain, an address without data."""
    name = "exinext"
    ex, py, mid = _run_both(name, "* * F,1h,15m", [["-M", "@ID@"]])
    for subject in ("tf@example.org", "example.org", "nodir@example.org",
                    "nosuch@example.org"):
        px = subprocess.run(["/usr/sbin/exinext", "-C", str(ex / "exim.conf"),
                             f"-DSPOOLDIR={ex / 'spool'}", subject],
                            capture_output=True, text=True, timeout=120)
        pp = subprocess.run([str(ROOT / "bin" / "exinext"), "-C",
                             str(py / "exim.conf"), subject],
                            capture_output=True, text=True, timeout=120)
        bx = _exinext_blocks(ex, px.stdout)
        keep_golden(GOLDEN / "delivery_retry" / f"exinext_{subject}",
                    "\n".join(bx) + "\n")
        assert _exinext_blocks(py, pp.stdout) == bx, subject


def test_pipe_and_domain_keys():
    """A pipe from a redirect router is keyed T:<pipe>:<parent>; a router
    without local part conditions keys its deferrals R:<domain>, which
    holds back every address of that domain in a queue run."""
    name = "keys"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], ["-q"], ["-qf"]],
                            rcpts=("pf", "a@defer.example", "b@defer.example",
                                   "ok"))
    _compare(name, ex, py, mid)


def _make_dirs(root: Path) -> None:
    d = root / "nonexistent"
    d.mkdir(exist_ok=True)
    d.chmod(0o777)
    (root / "aliases_fixed").write_text("")


def test_success_deletes_records():
    """After the cause is mended a forced run delivers, and the T: record
    of that address is deleted; the others are updated."""
    name = "recovery"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], _make_dirs, ["-qf"]],
                            rcpts=("nodir", "tf", "ok"))
    _compare(name, ex, py, mid)


def test_tidy_matches_exim_tidydb():
    """exinext --tidy -t 1s removes the records exim_tidydb -t 1s removes,
    with its report lines."""
    name = "tidy"
    ex, py, mid = _run_both(name, "* * F,1h,15m", [["-M", "@ID@"], 2.5],
                            rcpts=("tf", "dd", "ok"))
    px = subprocess.run(["/usr/sbin/exim_tidydb", "-t", "1s",
                         str(ex / "spool"), "retry"],
                        capture_output=True, text=True)
    pp = subprocess.run([str(ROOT / "bin" / "exinext"), "--tidy", "-t", "1s",
                         str(py / "spool")], capture_output=True, text=True)

    def norm(root: Path, text: str) -> list[str]:
        return sorted(_norm(root, text).splitlines())
    assert norm(py, pp.stdout) == norm(ex, px.stdout)
    assert len(norm(ex, px.stdout)) == 4
    assert _dump_eximpy(py) == _dump_exim(ex) == []


def test_no_delay_warning_for_retry_skips():
    """A queue run in which every address was skipped for its retry time
    sends no delay warning, even when one is due; the next real attempt
    (-qf) sends it."""
    name = "warning"
    counts: dict[str, list[int]] = {}

    def count(root: Path) -> None:
        n = sum(1 for f in (root / "spool" / "input").glob("*-H")
                if "\n<>\n" in f.read_text(errors="replace"))
        counts.setdefault(root.name, []).append(n)
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], count, 6.0, ["-q"], count,
                             ["-qf"], count],
                            selector="delay_warning = 5s\n"
                                     "errors_reply_to = pm@example.org",
                            rcpts=("tf", "ok"))
    _compare(name, ex, py, mid)
    assert counts["exim"] == [0, 0, 1]
    assert counts["eximpy"] == counts["exim"]
    # the warning itself (with errors_reply_to's Reply-To:)
    wx, wp = _warning(ex, mid), _warning(py, mid)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.warning", wx)
    assert "Reply-To: pm@example.org" in wx
    assert wp == wx


def _warning(root: Path, mid: str) -> str:
    for f in sorted((root / "spool" / "input").glob("*-H")):
        head = f.read_text(errors="replace")
        if f.name.startswith(mid) or "\n<>\n" not in head:
            continue
        hdrs = re.sub(r"^\d{3}[A-Z* ] ", "", head.split("\n\n", 1)[1], flags=re.M)
        hdrs = "\n".join(ln for ln in hdrs.splitlines()
                         if not ln.startswith(("Received:", "\t", "Message-Id:",
                                               "Date:", " ")))
        data = (root / "spool" / "input" / (f.name[:-2] + "-D")).read_text(
            errors="replace").split("\n", 1)[1]
        text = _norm(root, hdrs + "\n\n" + data).replace(mid, "MSGID")
        text = re.sub(r"\d+-eximdsn-\d+", "BOUNDARY", text)
        return re.sub(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}",
                      "DATE", text)
    raise AssertionError(f"no warning in {root}")


def test_suffix_address_key():
    """The T: key of an address routed with a local part suffix is built
    before routing: T:<whole local part>@<domain>."""
    name = "suffix"
    ex, py, mid = _run_both(name, "* * F,1h,15m", [["-M", "@ID@"], ["-q"]],
                            rcpts=("tf-ext", "ok"))
    _compare(name, ex, py, mid)


def test_domain_record_has_no_ultimate_timeout():
    """A domain routing record whose retry time has not come holds the
    address back even when the message is older than the cutoff (the
    ultimate address timeout applies to address records only); -qf then
    tries and times it out."""
    name = "domain_cutoff"
    ex, py, mid = _run_both(name, "* * F,3s,1h",
                            [["-M", "@ID@"], 4.0, ["-q"], ["-qf"]],
                            rcpts=("a@defer.example", "ok"))
    _compare(name, ex, py, mid)


def test_retry_data_expire():
    """Records older than retry_data_expire are ignored: the next queue
    run tries the addresses again (and writes fresh records)."""
    name = "data_expire"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], 3.0, ["-q"]],
                            selector="retry_data_expire = 2s",
                            rcpts=("tf", "dd", "ok"))
    _compare(name, ex, py, mid)


def test_retry_interval_max():
    """retry_interval_max caps the interval a rule asks for."""
    name = "interval_max"
    ex, py, mid = _run_both(name, "* * F,1h,2h",
                            [["-M", "@ID@"]],
                            selector="retry_interval_max = 30m",
                            rcpts=("tf", "ok"))
    _compare(name, ex, py, mid)
    assert "gap=1800" in _dump_exim(ex)[0]


def test_geometric_rule_grows():
    """A G rule: the first interval, then the last gap times the
    multiplier once the retry time has come (2s, 4s, 8s)."""
    name = "geometric"
    ex, py, mid = _run_both(name, "* * G,1h,2s,2",
                            [["-M", "@ID@"], 3.0, ["-q"], 5.0, ["-q"]],
                            rcpts=("tf", "ok"))
    _compare(name, ex, py, mid)
    assert "gap=8" in _dump_exim(ex)[0]


def test_hold_and_queue_domains():
    """hold_domains defers an address unless the delivery is forced
    ("domain is held"); queue_domains defers it only outside queue runs
    and forced deliveries ("domain is in queue_domains", -Mc here)."""
    name = "hold_queue_domains"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-Mc", "@ID@"], ["-q"], ["-M", "@ID@"]],
                            selector="hold_domains = defer.example\n"
                                     "queue_domains = example.org",
                            rcpts=("a@defer.example", "ok", "tf"))
    _compare(name, ex, py, mid)


def test_delay_warning_to_errors_address():
    """A deferred address with an errors address (router errors_to) has
    its delay warning sent there: 'A message sent by <sender>', the
    delay_warning time reached as the delay."""
    name = "warning_errors_to"
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], 6.0, ["-qf"]],
                            selector="delay_warning = 5s:1h",
                            rcpts=("tw", "ok"))
    # (no dump comparison: Exim delivers its warning at once, to a pipe
    # that defers, and records that; eximpy leaves its own messages to
    # queue runs)
    _compare(name, ex, py, mid, dump=False)
    wx, wp = _warning(ex, mid), _warning(py, mid)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.warning", wx)
    assert "To: list@example.org" in wx
    assert wp == wx


def test_pipe_times_out():
    """A pipe from a redirect router past its cutoff: '** <pipe> <parent>:
    retry timeout exceeded' and the bounce's 'pipe to' entry."""
    name = "pipe_cutoff"
    ex, py, mid = _run_both(name, "* * F,3s,1h",
                            [["-M", "@ID@"], 4.0, ["-q"]],
                            rcpts=("pf", "ok"))
    _compare(name, ex, py, mid)
    bx, bp = _bounce(ex, mid), _bounce(py, mid)
    keep_golden(GOLDEN / "delivery_retry" / f"{name}.bounce", bx)
    assert bp == bx


def test_transport_domain_key():
    """retry_use_local_part = false on a local transport keys its
    deferrals T:<domain>: one record holds back every address of the
    domain on that transport in a queue run."""
    name = "transport_domain_key"
    ex, py, mid = _run_both(name, "* * F,1h,15m", [["-M", "@ID@"], ["-q"]],
                            rcpts=("td1", "td2", "ok"))
    _compare(name, ex, py, mid)


@pytest.mark.parametrize("want", ["example.org", "other.example"])
def test_delay_warning_condition_domain(want):
    """delay_warning_condition sees $domain when all deferred addresses
    share it."""
    name = f"warning_condition_{want}"
    counts: dict[str, list[int]] = {}

    def count(root: Path) -> None:
        n = sum(1 for f in (root / "spool" / "input").glob("*-H")
                if "\n<>\n" in f.read_text(errors="replace"))
        counts.setdefault(root.name, []).append(n)
    ex, py, mid = _run_both(name, "* * F,1h,15m",
                            [["-M", "@ID@"], 6.0, ["-qf"], count],
                            selector="delay_warning = 5s:1h\n"
                                     "delay_warning_condition = "
                                     f"${{if eq{{$domain}}{{{want}}}}}",
                            rcpts=("tf", "ok"))
    _compare(name, ex, py, mid)
    assert counts["exim"] == [1 if want == "example.org" else 0]
    assert counts["eximpy"] == counts["exim"]
