"""The seed's source-based smarthost example (/work/shared/seed, "Source
based Routing": manualroute with route_data from an lsearch on the sender,
an smtp transport with port = submission and hosts_require_auth = *, a
plaintext client authenticator sending ^USER^PASS from $address_data).

Two forms:
  * verbatim (macros, router, transport, authenticator exactly as the
    talk prints them, only spool/log paths added): its ADDRESS_DATA looks
    up a relative file name and its router names the misspelt macro
    SMARHOST, so real Exim defers at routing; eximpy must do the same.
  * repaired (the lookup keyed on $sender_address in an absolute file,
    SMARTHOST spelt as defined), delivering through real Exim acting as
    the smarthost -- started per connection as `exim -bs` on a loopback
    socket (tests/remote/inetd.py) with a plaintext server authenticator
    -- for three senders (exact entry, *@domain entry, * default).
    Real Exim as the sending MTA (-M) and eximpy deliver the same spooled
    messages; their log lines and what the smarthost logged and queued
    (sender, recipients, authenticated id, data) must be the same."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _remote import EXIM, WORK, prepare, run_both  # noqa: E402
from inetd import InetdExim  # noqa: E402

SEED_TAIL = """
ADDRESS_DATA = ${lookup{foo@example.org}\\
                lsearch*@{smarthosts}\\
                ${sg{$value}{\\\\s+}{\\t}}}}
SMARTHOST    = ${extract{1}{\\t}{$address_data}}
USER         = ${extract{2}{\\t}{$address_data}}
PASS        = ${extract{3}{\\t}{$address_data}}

begin routers

  smarthosts:
    driver = manualroute
    address_data = ADDRESS_DATA
    route_data = SMARHOST
    transport = smtpa
    no_more

begin transports

  smtpa:
    driver = smtp
    port = submission
    hosts_require_auth = *

begin authenticators

  plain:
    driver = plaintext
    public_name = PLAIN
    client_send = ^USER^PASS
"""

VERBATIM = """\
primary_hostname = sender.example
qualify_domain = sender.example
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
""" + SEED_TAIL

REPAIRED = VERBATIM.replace(
    "${lookup{foo@example.org}", "${lookup{$sender_address}").replace(
    "lsearch*@{smarthosts}\\\n                ${sg{$value}{\\\\s+}{\\t}}}}",
    "lsearch*@{@ROOT@/smarthosts}\\\n                {${sg{$value}{\\\\s+}{\\t}}}}").replace(
    "route_data = SMARHOST", "route_data = SMARTHOST").replace(
    "begin transports", "begin retry\n  * * F,1h,10m\n\nbegin transports")

SMARTHOSTS = """\
# sender address      |submission-server[:port]|user-name              |password
# or *@domain, or *  |          default 587  |                        |
#-----+-----+-----+-----+
hans@example.com     127.0.0.2::@PORT@      hans@example.com      xxx
*@example.com        127.0.0.2::@PORT@      heiko@schlittermann.de Gheim
*                    127.0.0.2::@PORT@      km433221              zecrit
"""

SERVER = """\
primary_hostname = smarthost.example
spool_directory = @SRV@/spool
log_file_path = @SRV@/log/%slog
queue_only = true
auth_advertise_hosts = *
acl_smtp_rcpt = check_rcpt
log_selector = +received_recipients

begin acl
check_rcpt:
  accept authenticated = *
  deny message = authentication required

begin authenticators
  plain_server:
    driver = plaintext
    public_name = PLAIN
    server_condition = ${if or{\\
        {and{{eq{$auth2}{hans@example.com}}{eq{$auth3}{xxx}}}}\\
        {and{{eq{$auth2}{heiko@schlittermann.de}}{eq{$auth3}{Gheim}}}}\\
        {and{{eq{$auth2}{km433221}}{eq{$auth3}{zecrit}}}}}}
    server_set_id = $auth2
"""

MESSAGE = """\
From: {sender}
To: nobody@nowhere
Subject: via the smarthost for {sender}

Hello from {sender}.
"""

SENDERS = ["hans@example.com", "fred@example.com", "fred@foobar.com"]


def _server_conf(srv: Path) -> Path:
    import shutil
    if srv.exists():
        shutil.rmtree(srv)
    for d in ("spool", "log"):
        (srv / d).mkdir(parents=True)
        shutil.chown(srv / d, "Debian-exim", "Debian-exim")
    conf = srv / "server.conf"
    conf.write_text(SERVER.replace("@SRV@", str(srv)))
    return conf


def _server_view(srv: Path) -> list[str]:
    """What the smarthost got: its <= lines (without ids, times and
    ports) and the bodies it queued."""
    out = []
    log = srv / "log" / "mainlog"
    for ln in (log.read_text().splitlines() if log.exists() else []):
        if " <= " in ln:
            ln = re.sub(r"^\S+ \S+ \S+ ", "", ln)
            ln = re.sub(r"\[127\.0\.0\.1\]:\d+", "[127.0.0.1]", ln)
            ln = re.sub(r" id=E\S+", " id=<msgid>", ln)
            ln = re.sub(r" X=\S+", " X=<cipher>", ln)
            out.append(ln)
    for d in sorted((srv / "spool" / "input").glob("*-D")):
        out.append(d.read_text().split("\n", 1)[1])
    return sorted(out)


def test_verbatim_seed_defers_like_exim():
    srv = type("NoServer", (), {"sessions": [], "port": 0})()
    res = run_both("seed-verbatim", VERBATIM,
                   [(["-f", "hans@example.com", "nobody@nowhere"],
                     MESSAGE.format(sender="hans@example.com"))], srv,
                   files={"smarthosts": SMARTHOSTS.replace("@PORT@", "2525")})
    assert res["exim_log"], "Exim logged nothing"
    # KNOWN DIFFERENCE outside the remote code: eximpy.log.format.printing()
    # doubles backslashes, Exim 4.96's string_printing() does not (the
    # routing-defer line quotes the configuration's "\\s+").  Reported to
    # the owner of eximpy/log/format.py; compared here with backslash runs
    # collapsed so that the rest of the line is still checked.
    def squash(lines):
        return [re.sub(r"\\+", r"\\", ln) for ln in lines]
    assert squash(res["eximpy_log"]) == squash(res["exim_log"])
    # (the bounce for the timed-out address is not compared: its delivery
    # is the bounce code's business)
    assert [m in res["eximpy_queue"] for m in res["mids"]] == \
        [m in res["exim_queue"] for m in res["mids"]]


def test_repaired_seed_delivers_through_exim_smarthost():
    work = WORK / "seed-repaired"
    srv_ex, srv_py = work / "srv-exim", work / "srv-eximpy"
    conf_ex, conf_py = _server_conf(srv_ex), _server_conf(srv_py)
    server = InetdExim(EXIM, conf_ex).start()
    try:
        msgs = [(["-f", s, "nobody@nowhere", "other@example.org"],
                 MESSAGE.format(sender=s)) for s in SENDERS]

        def between():
            server.wait()
            server.conf = conf_py
        smarthosts = SMARTHOSTS.replace("@PORT@", str(server.port))
        res = run_both("seed-repaired", REPAIRED, msgs, server,
                       files={"smarthosts": smarthosts}, between=between)
        server.wait()
    finally:
        server.stop()
    assert len(res["exim_log"]) == 9, res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_queue"] == res["exim_queue"] == []
    view_ex, view_py = _server_view(srv_ex), _server_view(srv_py)
    assert len(view_ex) == 6
    assert view_py == view_ex
    # each sender went out with its own credentials
    for user in ("hans@example.com", "heiko@schlittermann.de", "km433221"):
        assert any(f"A=plain_server:{user} " in v for v in view_ex)
