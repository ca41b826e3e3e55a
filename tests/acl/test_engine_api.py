"""The ACL engine's interface to the SMTP session, tested directly.

These check what the session receives in AclResult (rc, messages,
temp_details, added headers, controls, queue name, log_reject_target), that
taint survives into expansions, the DATA-ACL header checks with Exim's
texts (taken from `exim -bh` runs, see tests/acl/test_acl_bh.py for the
differential sessions), and the LMDB hints record format of ratelimit.
"""
from __future__ import annotations

import eximpy.config  # noqa: F401
from eximpy.acl.engine import AclEngine, _parse_text, make_runner
from eximpy.acl.runner import DEFER, DISCARD, ERROR, FAIL, OK, AclEnv
from eximpy.expand.taint import Tainted


class _Def:
    def __init__(self, text: str) -> None:
        self.statements = _parse_text(text)


class _Main:
    def __init__(self, opts: dict) -> None:
        self.opts = opts

    def get(self, name: str):
        if name in self.opts:
            return self.opts[name]
        raise KeyError(name)


class _Conf:
    def __init__(self, acls: dict[str, str], **opts) -> None:
        self.acls = {k: _Def(v) for k, v in acls.items()}
        self.filename = "/etc/test.conf"
        self.main = _Main(opts)
        self.named_lists = {}


def _env(**v) -> AclEnv:
    base = {"sender_host_address": "192.0.2.1", "sender_address": "a@b.c",
            "local_part": Tainted("Info"), "domain": Tainted("Example.ORG")}
    base.update(v)
    return AclEnv(variables=base)


def test_make_runner_interface():
    eng = make_runner(_Conf({"r": "accept\n"}))
    assert isinstance(eng, AclEngine)
    r = eng.check("rcpt", "r", _env())
    assert r.rc == OK and r.user_message is None


def test_unset_acl_denies():
    r = make_runner(_Conf({})).check("rcpt", None, _env())
    assert r.rc == FAIL


def test_defer_verb_sets_temp_details():
    r = make_runner(_Conf({"r": "defer message = later\n"})).check(
        "rcpt", "r", _env())
    assert (r.rc, r.user_message, r.log_message, r.temp_details) == \
        (DEFER, "later", "later", True)


def test_lowercased_local_part_keeps_taint():
    # $local_part and $domain are lower-cased for the RCPT ACL (Exim) and
    # stay tainted: a tainted file name in a lookup is refused.
    eng = make_runner(_Conf({"r": "accept condition = ${if eq{$local_part@"
                                  "$domain}{info@example.org}}\n"}))
    assert eng.check("rcpt", "r", _env()).rc == OK
    eng2 = make_runner(_Conf({"r": "accept condition = "
                                   "${lookup{x}lsearch{/etc/$local_part}}\n"}))
    r2 = eng2.check("rcpt", "r", _env())
    assert r2.rc == ERROR and "failed to expand" in r2.log_message


def test_headers_controls_queue():
    acl = ("warn message = just text\n"
           "warn add_header = X-A: 1\n"
           "accept control = freeze/no_tell\n"
           "       control = no_multiline_responses\n"
           "       queue = slow\n"
           "       log_reject_target = reject\n")
    r = make_runner(_Conf({"r": acl})).check("rcpt", "r", _env())
    assert r.rc == OK
    assert r.added_headers == ["X-ACL-Warn: just text\n", "X-A: 1\n"]
    assert r.controls == ["freeze", "no_multiline_responses"]
    assert r.control_args["freeze"] == {"no_tell": True}
    assert r.queue_name == "slow"
    assert r.log_reject_target == ["reject"]


def test_discard_not_allowed_in_connect():
    r = make_runner(_Conf({"c": "discard\n"})).check("connect", "c", _env())
    assert r.rc == ERROR


def test_nested_discard_in_accept():
    r = make_runner(_Conf({"r": "accept acl = s\n", "s": "discard\n"})).check(
        "rcpt", "r", _env())
    assert r.rc == DISCARD


def _data_env(headers):
    e = _env()
    e.headers = headers                     # what the session should pass
    return e


def test_header_syntax_exim_text():
    eng = make_runner(_Conf({"d": "deny !verify = header_syntax\naccept\n"}))
    r = eng.check("data", "d", _data_env([
        ("Subject", " hello world\n"),
        ("To", " u@x.y, <bad address\n"),
        ("From", " someone@nowhere.invalid\n")]))
    assert r.rc == FAIL
    assert r.log_message == ('"@" or "." expected after "bad": failing '
                             'address in "To:" header is: <bad address')
    ok = eng.check("data", "d", _data_env([("To", " u@x.y, v@x.y\n")]))
    assert (ok.rc, ok.log_message) == (OK, None)


def test_header_syntax_forbidden_in_rcpt():
    r = make_runner(_Conf({"r": "accept verify = header_syntax\n"})).check(
        "rcpt", "r", _env())
    assert (r.rc, r.log_message) == \
        (ERROR, "cannot verify header_syntax in ACL for RCPT")


def test_ratelimit_record_format(tmp_path):
    import struct
    from eximpy import hintsdb
    eng = make_runner(_Conf({"r": "accept ratelimit = 5 / 1h / strict / k\n"},
                            spool_directory=str(tmp_path)),
                      clock=lambda: 1000.5)
    eng.check("rcpt", "r", _env())
    items = hintsdb.open(str(tmp_path), "ratelimit").items()
    assert [k for k, _ in items] == [b"1h/per_mail/k"]
    ts, us, rate = struct.unpack("<qid", items[0][1][:20])
    assert (ts, us, rate) == (1000, 500000, 1.0)


def test_sender_verify_report_texts():
    from eximpy.acl.verify import SenderVerifyFailure, sender_verify_report
    svf = SenderVerifyFailure("a@bad.org", "Unrouteable address",
                              "Unrouteable address", False)
    # Exim: "sender verify fail for <a@bad.org>: Unrouteable address" and
    # 550-Verification failed for <a@bad.org> / 550-Unrouteable address
    assert sender_verify_report(svf, "H=(x) [1.2.3.4]", FAIL) == (
        "H=(x) [1.2.3.4] sender verify fail for <a@bad.org>: "
        "Unrouteable address",
        "Verification failed for <a@bad.org>\nUnrouteable address")
    d = SenderVerifyFailure("t@ex.org", "Could not complete", None, True)
    assert sender_verify_report(d, "H=[1.2.3.4]", DEFER) == (
        "H=[1.2.3.4] sender verify defer for <t@ex.org>: Could not complete",
        None)


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def main(self, text, mid=None):
        self.lines.append(("main", text))

    def reject(self, text, mid=None, block=None):
        self.lines.append(("reject", text))

    def panic(self, text, mid=None):
        self.lines.append(("panic", text))


def test_logwrite_targets():
    log = _Log()
    acl = ("warn logwrite = :reject: r $local_part\n"
           "warn logwrite = :panic: p\n"
           "warn logwrite = plain\n"
           "accept\n")
    make_runner(_Conf({"r": acl}), log=log).check("rcpt", "r", _env())
    assert log.lines == [("reject", "r info"), ("panic", "p"),
                         ("main", "plain")]


def test_udpsend_delivers_payload():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        port = s.getsockname()[1]
        acl = f"accept udpsend = 127.0.0.1 : {port} : hello $local_part\n"
        r = make_runner(_Conf({"r": acl})).check("rcpt", "r", _env())
        assert r.rc == OK
        # Exim sends the rest of the list as it is, leading space included
        # (checked with exim -bh).
        assert s.recv(100) == b" hello info"


def test_tainted_lookup_file_in_list_refused():
    # Exim 4.96: "Tainted filename for search: '/etc/info'" (and it dies);
    # eximpy logs the same panic line and defers.
    log = _Log()
    r = make_runner(_Conf({"r": "accept local_parts = lsearch;/etc/$local_part\n"}),
                    log=log).check("rcpt", "r", _env())
    assert r.rc == DEFER
    assert ("panic", "Tainted filename for search: '/etc/info'") in log.lines
