"""Differential tests of the smtp transport: real Exim and eximpy deliver
the same spooled message to the same scripted server on 127.0.0.2; the
main log lines and what the server received must be the same."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _remote import WORK, run_both  # noqa: E402
from smtpserver import ScriptedServer, make_cert  # noqa: E402

CONF = """\
primary_hostname = sender.example
qualify_domain = sender.example
spool_directory = @ROOT@/spool
log_file_path = @ROOT@/log/%slog
@MAIN@

begin routers
  bounces:
    driver = redirect
    domains = sender.example
    data = :blackhole:

  smart:
    driver = manualroute
    route_list = * @HOSTS@
    transport = remote_smtp

begin transports
  remote_smtp:
    driver = smtp
@PORTLINE@
@TRANSPORT@

begin retry
  * * F,1h,10m

begin authenticators
@AUTH@
"""

MESSAGE = """\
From: Sender <sender@sender.example>
To: a@dest.example
Subject: remote test

line one
.a line starting with a dot
..two dots
last line
"""

PLAIN_AUTH = """\
  plain:
    driver = plaintext
    public_name = PLAIN
    client_send = ^user1^secret1
"""

CRAM_AUTH = """\
  cram:
    driver = cram_md5
    public_name = CRAM-MD5
    client_name = user1
    client_secret = secret1
    client_set_id = $auth1
"""

RCPTS = ["a@dest.example", "b@dest.example"]

LOGIN_AUTH = """\
  login:
    driver = plaintext
    public_name = LOGIN
    client_send = : user1 : secret1
"""

COND_AUTH = """\
  plain:
    driver = plaintext
    public_name = PLAIN
    client_condition = ${if eq{$host}{127.0.0.2}{no}{yes}}
    client_send = ^user1^secret1
  login:
    driver = plaintext
    public_name = LOGIN
    client_send = : user1 : secret1
    client_set_id = user1
"""

CASES = {
    # name: (transport options, server kwargs, recipients, main options, auth, hosts)
    "basic-pipelining": ("", {}, RCPTS, "", "", "127.0.0.2"),
    "no-pipelining": ("", {"extensions": ("SIZE 1000000",)}, RCPTS, "", "",
                      "127.0.0.2"),
    "no-esmtp": ("", {"ehlo_reply": "500 what?"}, RCPTS, "", "", "127.0.0.2"),
    "avoid-esmtp": ("    hosts_avoid_esmtp = *\n", {}, RCPTS, "", "",
                    "127.0.0.2"),
    "chunking": ("", {"extensions": ("PIPELINING", "CHUNKING", "SIZE 0")},
                 RCPTS, "", "", "127.0.0.2"),
    "chunking-nopipe": ("", {"extensions": ("CHUNKING",)}, RCPTS, "", "",
                        "127.0.0.2"),
    "rcpt-451-550": ("", {"rcpt_replies": {"tmp": "451 4.3.0 try later",
                                            "bad": "550 5.1.1 no such user"}},
                     ["a@dest.example", "tmp@dest.example", "bad@dest.example"],
                     "", "", "127.0.0.2"),
    "rcpt-all-rejected": ("", {"rcpt_replies": {"bad": "550 5.1.1 no such user"}},
                          ["bad@dest.example"], "", "", "127.0.0.2"),
    "mail-451": ("", {"mail_reply": "451 4.3.2 sender deferred"}, RCPTS, "", "",
                 "127.0.0.2"),
    "mail-550": ("", {"mail_reply": "550 5.7.1 sender rejected"}, RCPTS, "", "",
                 "127.0.0.2"),
    "data-452": ("", {"final_reply": "452 4.3.1 insufficient storage"}, RCPTS,
                 "", "", "127.0.0.2"),
    "data-554": ("", {"final_reply": "554 5.6.0 content rejected"}, RCPTS, "",
                 "", "127.0.0.2"),
    "greeting-554": ("", {"greeting": "554 go away"}, RCPTS, "", "",
                     "127.0.0.2"),
    "close-after-rcpt": ("", {"close_after": "RCPT",
                              "extensions": ("SIZE 1000",)},
                         RCPTS, "", "", "127.0.0.2"),
    "close-after-dot": ("", {"close_after": "DOT"}, RCPTS, "", "", "127.0.0.2"),
    "multiline-reply": ("", {"final_reply": "250-first line\r\n250 OK id=X"},
                        RCPTS, "", "", "127.0.0.2"),
    "max-rcpt-2": ("    max_rcpt = 2\n", {}, ["a@dest.example", "b@dest.example",
                                              "c@dest.example"],
                   "remote_max_parallel = 1", "", "127.0.0.2"),
    "helo-data": ("    helo_data = helo.$domain\n", {}, RCPTS, "", "",
                  "127.0.0.2"),
    "headers": ("    headers_add = X-Added: $host [$host_address]\n"
                "    headers_remove = Subject\n    return_path_add\n", {},
                RCPTS, "", "", "127.0.0.2"),
    "auth-plain": ("    hosts_try_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN LOGIN"), "users": {"user1": "secret1"}},
        RCPTS, "", PLAIN_AUTH, "127.0.0.2"),
    "auth-plain-bad": ("    hosts_try_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN"), "users": {"user1": "other"}},
        RCPTS, "", PLAIN_AUTH, "127.0.0.2"),
    "auth-required-bad": ("    hosts_require_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN"), "users": {"user1": "other"}},
        RCPTS, "", PLAIN_AUTH, "127.0.0.2"),
    "auth-required-none": ("    hosts_require_auth = *\n", {}, RCPTS, "",
                           PLAIN_AUTH, "127.0.0.2"),
    "auth-cram": ("    hosts_require_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH CRAM-MD5"), "users": {"user1": "secret1"}},
        RCPTS, "", CRAM_AUTH, "127.0.0.2"),
    "auth-sender": ("    hosts_try_auth = *\n    authenticated_sender = "
                    "auth+sender=x@sender.example\n", {"extensions": (
                        "PIPELINING", "AUTH PLAIN"),
                        "users": {"user1": "secret1"}},
                    RCPTS, "", PLAIN_AUTH, "127.0.0.2"),
    "dsn": ("", {"extensions": ("PIPELINING", "DSN", "SIZE 0")}, RCPTS, "",
            "", "127.0.0.2"),
    "connect-refused": ("", {}, RCPTS, "", "", "127.0.0.3"),
    "two-hosts-first-refused": ("", {}, RCPTS, "", "",
                                "127.0.0.3:127.0.0.2"),
    "require-tls-none": ("    hosts_require_tls = *\n", {}, RCPTS, "", "",
                         "127.0.0.2"),
    "selectors": ("    hosts_try_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN", "SIZE 0"), "users": {"user1": "secret1"}},
        RCPTS, "log_selector = +outgoing_port +delivery_size +pipelining "
        "+sender_on_delivery +return_path_on_delivery +smtp_mailauth "
        "+outgoing_interface +incoming_interface", PLAIN_AUTH, "127.0.0.2"),
    "selectors-defer": ("", {"rcpt_replies": {"tmp": "451 4.3.0 later"}},
                        ["a@dest.example", "tmp@dest.example"],
                        "log_selector = +outgoing_port +delivery_size "
                        "+sender_on_delivery", "", "127.0.0.2:127.0.0.3"),
    "interface": ("    interface = 127.0.0.1\n", {}, RCPTS,
                  "log_selector = +outgoing_interface +incoming_interface",
                  "", "127.0.0.2"),
    "hosts-max-try-1": ("    hosts_max_try = 1\n", {}, RCPTS, "", "",
                        "127.0.0.3:127.0.0.4:127.0.0.2"),
    "rcpt-451-two-hosts": ("", {"rcpt_replies": {"tmp": "451 4.3.0 later"}},
                           ["a@dest.example", "tmp@dest.example"], "", "",
                           "127.0.0.2:127.0.0.2"),
    "mail-451-two-hosts": ("", {"mail_reply": "451 4.3.2 not now"}, RCPTS,
                           "", "", "127.0.0.2:127.0.0.2"),
    "greeting-554-two-hosts": ("", {"greeting": "554 go away"}, RCPTS, "", "",
                               "127.0.0.2:127.0.0.2"),
    "prdr": ("", {"extensions": ("PIPELINING", "PRDR", "SIZE 0"),
                  "prdr_replies": {"tmp": "451 4.2.0 later for tmp",
                                   "bad": "550 5.7.1 content rejected for bad"}},
             ["a@dest.example", "tmp@dest.example", "bad@dest.example",
              "b@dest.example"], "", "", "127.0.0.2"),
    "prdr-one-rcpt": ("", {"extensions": ("PIPELINING", "PRDR")},
                      ["a@dest.example"], "", "", "127.0.0.2"),
    "prdr-not-tried": ("    hosts_try_prdr = :\n",
                       {"extensions": ("PIPELINING", "PRDR")}, RCPTS, "", "",
                       "127.0.0.2"),
    "auth-login": ("    hosts_require_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN LOGIN"), "users": {"user1": "secret1"}},
        RCPTS, "", LOGIN_AUTH, "127.0.0.2"),
    "auth-client-condition": ("    hosts_require_auth = *\n", {"extensions": (
        "PIPELINING", "AUTH PLAIN LOGIN"), "users": {"user1": "secret1"}},
        RCPTS, "", COND_AUTH, "127.0.0.2"),
    "auth-sender-force": ("    authenticated_sender = s@sender.example\n"
                          "    authenticated_sender_force\n", {}, RCPTS, "",
                          "", "127.0.0.2"),
    "helo-sending-ip": ("    helo_data = [$sending_ip_address]\n", {}, RCPTS,
                        "", "", "127.0.0.2"),
    "bad-port": ("    port = nosuchservice\n", {}, RCPTS, "", "",
                 "127.0.0.2"),
    "hosts-expansion-fails": ("    hosts = ${lookup{x}lsearch{/nonexistent/f}}\n"
                              "    hosts_override\n", {}, RCPTS, "", "",
                              "127.0.0.2"),
    "protocol-lmtp": ("    protocol = lmtp\n", {
        "lmtp_replies": {"tmp": "452 4.2.2 over quota",
                         "bad": "550 5.2.1 disabled"},
        "extensions": ("PIPELINING", "SIZE 0")},
        ["a@dest.example", "tmp@dest.example", "bad@dest.example",
         "b@dest.example"], "", "", "127.0.0.2"),
    "timeout-data": ("    command_timeout = 2s\n", {"sleep_after": ("DATA", 4)},
                     RCPTS, "", "", "127.0.0.2"),
}


@pytest.fixture(scope="module")
def server_factory():
    made = []

    def make(**kw):
        s = ScriptedServer(**kw).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def _conf(topts: str, main: str, auth: str, hosts: str) -> str:
    portline = "" if "port =" in topts else "    port = @PORT@"
    return (CONF.replace("@PORTLINE@", portline)
            .replace("@TRANSPORT@", topts).replace("@MAIN@", main)
            .replace("@AUTH@", auth).replace("@HOSTS@", hosts))


@pytest.mark.parametrize("case", sorted(CASES))
def test_case(case, server_factory):
    topts, skw, rcpts, main, auth, hosts = CASES[case]
    args = ["-f", "sender@sender.example"]
    if case == "dsn":
        args = ["-f", "sender@sender.example", "-N"][:2]
    srv = server_factory(**skw)
    res = run_both(case, _conf(topts, main, auth, hosts),
                   [(args + rcpts, MESSAGE)], srv)
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]
    assert [m in res["eximpy_queue"] for m in res["mids"]] == \
        [m in res["exim_queue"] for m in res["mids"]]
    assert retry_records(res["eximpy_root"], "py") == \
        retry_records(res["exim_root"], "ex")


def retry_records(root, which):
    """The retry database's records (key, errno, more_errno, text),
    without their times: exim_dumpdb for Exim's, exinext --dump for
    eximpy's."""
    import subprocess
    from _remote import ROOT
    if which == "ex":
        argv = ["exim_dumpdb", str(root / "spool"), "retry"]
    else:
        argv = [sys.executable, str(ROOT / "spool_tools" / "exinext.py"),
                "--dump", str(root / "spool")]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return sorted(ln for ln in out.splitlines() if ln.startswith("  ")
                  and "No such file" not in ln)


DSN_SCRIPT = """\
EHLO client.example
MAIL FROM:<sender@sender.example> RET=HDRS ENVID=env+2Did.1
RCPT TO:<a@dest.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Ba@dest.example
RCPT TO:<b@dest.example> NOTIFY=NEVER
RCPT TO:<c@dest.example>
DATA
""" + MESSAGE + """.
QUIT
"""


@pytest.mark.parametrize("exts", [("PIPELINING", "DSN", "SIZE 0"),
                                  ("PIPELINING", "SIZE 0")])
def test_dsn_parameters(exts, server_factory):
    """NOTIFY=, ORCPT=, RET= and ENVID= go out only to a server offering DSN."""
    srv = server_factory(extensions=exts)
    name = "dsn-" + ("on" if "DSN" in exts else "off")
    res = run_both(name, _conf("", "dsn_advertise_hosts = *\nacl_smtp_rcpt = accept",
                                   "", "127.0.0.2"),
                   [(["-bs"], DSN_SCRIPT)], srv)
    assert len(res["mids"]) == 1
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]


def _queue_run(res, conf_name="exim.conf"):
    import subprocess
    from _remote import EXIM, ROOT, log_lines
    import os
    subprocess.run([EXIM, "-C", str(res["exim_root"] / conf_name), "-q"],
                   capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "eximpy", "-C",
                    str(res["eximpy_root"] / conf_name), "-q"],
                   capture_output=True, timeout=120, cwd=str(ROOT),
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("hosts", ["127.0.0.3", "127.0.0.3:127.0.0.4"])
def test_retry_time_not_reached(hosts, server_factory):
    """A host that refused stays unusable for the next (non-forced) queue
    run: "retry time not reached for any host"."""
    srv = server_factory()
    name = "retry-" + hosts.replace(":", "-")
    res = run_both(name, _conf("", "", "", hosts),
                   [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    assert res["eximpy_log"] == res["exim_log"]
    _queue_run(res)
    from _remote import log_lines
    ex = [ln for ln in log_lines(res["exim_root"], res["mids"], srv.port)]
    py = [ln for ln in log_lines(res["eximpy_root"], res["mids"], srv.port)]
    assert len(ex) > len(res["exim_log"])
    assert py == ex
    # and the retry records agree (key, errno, more_errno, text)
    import subprocess
    from _remote import ROOT
    dump_ex = subprocess.run(["exim_dumpdb", str(res["exim_root"] / "spool"),
                              "retry"], capture_output=True, text=True).stdout
    dump_py = subprocess.run([sys.executable, str(ROOT / "spool_tools" /
                                                  "exinext.py"), "--dump",
                              str(res["eximpy_root"] / "spool")],
                             capture_output=True, text=True).stdout

    def keys(text):
        return sorted(ln for ln in text.splitlines() if ln.startswith("  "))
    assert keys(dump_ex)
    assert keys(dump_py) == keys(dump_ex)


def test_fallback_hosts(server_factory):
    """The transport's fallback_hosts get what the router's hosts left
    deferred."""
    srv = server_factory()
    res = run_both("fallback", _conf("    fallback_hosts = 127.0.0.2\n", "", "",
                                     "127.0.0.3"),
                   [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]


@pytest.mark.parametrize("opts", [
    "    hosts = 127.0.0.2\n    hosts_override\n",
    "    hosts = 127.0.0.1\n    hosts_override\n",
    "    hosts = 127.0.0.1\n    hosts_override\n    allow_localhost\n",
])
def test_transport_hosts(opts, server_factory):
    """hosts + hosts_override replace the router's list; the local host
    needs allow_localhost."""
    srv = server_factory(address="127.0.0.1" if "127.0.0.1" in opts
                         else "127.0.0.2")
    name = "hosts-" + ("local" if "127.0.0.1" in opts else "other") + \
        ("-allow" if "allow" in opts else "")
    res = run_both(name, _conf(opts, "", "", "127.0.0.9"),
                   [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]


UTF8_SCRIPT = """\
EHLO client.example
MAIL FROM:<sender@sender.example> SMTPUTF8
RCPT TO:<user@b\u00fccher.example>
RCPT TO:<j\u00f6s\u00e9@dest.example>
RCPT TO:<plain@dest.example>
DATA
""" + MESSAGE + """.
QUIT
"""


@pytest.mark.parametrize("case", ["offered", "not-offered", "require",
                                  "force-down"])
def test_smtputf8(case, server_factory):
    """An SMTPUTF8 message: SMTPUTF8 on MAIL when the server offers it,
    else addresses down-converted to A-labels (utf8_downconvert = -1, the
    default); 0 requires the extension, 1 always down-converts."""
    exts = ("PIPELINING", "SIZE 0", "8BITMIME") + \
        (("SMTPUTF8",) if case in ("offered", "force-down") else ())
    topts = {"require": "    utf8_downconvert = 0\n",
             "force-down": "    utf8_downconvert = 1\n"}.get(case, "")
    srv = server_factory(extensions=exts)
    res = run_both("utf8-" + case,
                   _conf(topts, "acl_smtp_rcpt = accept", "", "127.0.0.2"),
                   [(["-bs"], UTF8_SCRIPT)], srv)
    assert len(res["mids"]) == 1
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
    assert res["eximpy_data"] == res["exim_data"]


PRDR_SERVER = """\
primary_hostname = server.example
spool_directory = @SRV@/spool
log_file_path = @SRV@/log/%slog
queue_only = true
prdr_enable = true
tls_advertise_hosts =
acl_smtp_rcpt = accept
acl_smtp_data_prdr = prdr_acl
log_selector = +received_recipients

begin acl
prdr_acl:
  deny    local_parts = bad
          message = rejected for $local_part
  defer   local_parts = tmp
          message = later for $local_part
  accept
"""


def test_prdr_with_exim_server():
    """PRDR against real Exim (prdr_enable, acl_smtp_data_prdr refusing
    one recipient and deferring another), run per connection as exim -bs."""
    import re
    from _remote import EXIM, WORK
    from inetd import InetdExim
    from test_seed_smarthost import _server_conf, _server_view
    work = WORK / "prdr-exim"
    srv_ex, srv_py = work / "srv-exim", work / "srv-eximpy"
    confs = []
    for d in (srv_ex, srv_py):
        _server_conf(d)
        (d / "server.conf").write_text(PRDR_SERVER.replace("@SRV@", str(d)))
        confs.append(d / "server.conf")
    server = InetdExim(EXIM, confs[0]).start()

    def between():
        server.wait()
        server.conf = confs[1]
    try:
        res = run_both("prdr-exim", _conf("", "", "", "127.0.0.2"),
                       [(["-f", "sender@sender.example", "a@dest.example",
                          "tmp@dest.example", "bad@dest.example",
                          "b@dest.example"], MESSAGE)], server,
                       between=between)
        server.wait()
    finally:
        server.stop()
    assert any(" PRDR " in ln for ln in res["exim_log"]), res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    view_ex, view_py = _server_view(srv_ex), _server_view(srv_py)
    assert view_ex and view_py == view_ex


def test_smtp_client_runs_as_exim_user(server_factory):
    """Delivering as root (-M), eximpy talks SMTP from a process of the
    Exim user (Exim: remote transports run as the Exim user), never as
    root: the owner of the client's socket, as /proc/net/tcp shows it."""
    import pwd
    srv = server_factory()
    res = run_both("runs-as", _conf("", "", "", "127.0.0.2"),
                   [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    assert res["eximpy_log"] == res["exim_log"]
    from eximpy.config import load_config
    cfg = load_config(str(res["eximpy_root"] / "exim.conf"), {})
    want = cfg.main.get("exim_user")
    if not isinstance(want, int):
        want = pwd.getpwnam(str(want)).pw_uid
    assert want != 0
    uids = [s.peer_uid for s in srv.sessions]
    assert uids and all(u == want for u in uids), (uids, want)


def test_line_too_long(server_factory):
    """A message with a line over message_linelength_limit (998) fails:
    "message has lines too long for transport"."""
    srv = server_factory()
    long_msg = MESSAGE + "x" * 1200 + "\n"
    res = run_both("line-too-long", _conf("", "", "", "127.0.0.2"),
                   [(["-f", "sender@sender.example"] + RCPTS, long_msg)], srv)
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]


@pytest.mark.parametrize("self_opt", ["send"])
def test_router_host_is_local(self_opt, server_factory):
    """A router host that is this host: with the router's self = send the
    smtp transport delivers to it.  (The default, freeze, is the router's
    business: eximpy's routers/_rf.py adds "(while routing <a>)" to the
    "remote host address is the local host: DOMAIN" line during a delivery,
    which Exim 4.96 writes only when there is no message id -- reported.)"""
    srv = server_factory(address="127.0.0.1")
    conf = _conf("", "", "", "127.0.0.1")
    if self_opt:
        conf = conf.replace("    transport = remote_smtp\n",
                            f"    transport = remote_smtp\n    self = {self_opt}\n")
    res = run_both("router-local-" + (self_opt or "default"), conf,
                   [(["-f", "sender@sender.example"] + RCPTS, MESSAGE)], srv)
    assert res["exim_log"]
    assert res["eximpy_log"] == res["exim_log"]
    assert res["eximpy_cmds"] == res["exim_cmds"]
