"""Log formats and log_selector against real Exim 4.96."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from support import config_for, exim, make_scratch, normalize, only_id
from eximpy.errors import ConfigError
from eximpy.log import format as lf
from eximpy.log.writer import LogWriter, expand_log_path, \
    parse_log_file_path
from eximpy.receive import LocalOptions, receive_local

SETTINGS = ["+all", "-all", "+all -pid", "+subject   -retry_defer  ",
            "+subject+pid", "+rejected_headers", "+protocol_detail",
            "subject", "+ subject", "+subject,+pid", "+SUBJECT", "++subject",
            "+", "-", "+lost_incoming_connections", "+tls_ver", ""]


@pytest.mark.parametrize("setting", SETTINGS)
def test_selector_parsing_matches_exim(tmp_path: Path, setting: str) -> None:
    conf = tmp_path / "c"
    conf.write_text(f"log_selector = {setting}\n")
    r = exim(conf, ["-bP", "log_selector"])
    err = r.stderr.decode()
    try:
        lf.LogSelector.parse(setting)
        ours = None
    except ConfigError as e:
        ours = e.message
    if r.returncode == 0:
        assert ours is None
    else:
        assert ours is not None and f"  {ours}\n" in err, err


def test_every_documented_selector_is_accepted(tmp_path: Path) -> None:
    conf = tmp_path / "c"
    for name in lf.SELECTOR_NAMES:
        conf.write_text(f"log_selector = +{name}\n")
        assert exim(conf, ["-bP", "log_selector"]).returncode == 0, name
    assert lf.LogSelector.parse("-all").on == frozenset()
    assert len(lf.DEFAULT_SELECTORS) == 18


SUBJECTS = [b"the  \"subject\"", "caf\u00e9 \\ x\tTAB\x01".encode(),
            b"folded\n  line"]


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("sel", ["", "+all", "+all -millisec -pid",
                                 "+subject +received_recipients -msg_id"])
def test_received_line_matches_exim(tmp_path: Path, sel: str,
                                    subject: bytes) -> None:
    extra = f"log_selector = {sel}" if sel else ""
    data = (b"From: a@example.test\nSubject: " + subject + b"\n"
            b"Message-ID: <abc@client>\n\nbody\n")
    args = ["-f", "alice@example.test", "bob@example.test",
            "carol@example.test"]
    e = tmp_path / "e"
    conf = make_scratch(e, extra)
    assert exim(conf, ["-odq"] + args, data).returncode == 0
    want = [ln for ln in (e / "log" / "mainlog").read_text().splitlines()
            if " <= " in ln]
    p = tmp_path / "p"
    make_scratch(p, extra)
    cfg = config_for(p)
    receive_local(cfg, args[1], args[2:], io.BytesIO(data),
                  LocalOptions(log=LogWriter.from_config(cfg)))
    got = [ln for ln in (p / "log" / "mainlog").read_text().splitlines()
           if " <= " in ln]
    assert [normalize(x) for x in got] == [normalize(x) for x in want]
    mlog = (p / "spool" / "msglog" / only_id(p)).read_text()
    emlog = (e / "spool" / "msglog" / only_id(e)).read_text()
    assert normalize(mlog) == normalize(emlog)


def test_delivery_line_builders_reproduce_real_lines() -> None:
    sel = lf.LogSelector.parse(
        "+subject +received_recipients +queue_time +deliver_time "
        "+queue_time_overall +delivery_size +smtp_connection +incoming_port "
        "+sender_on_delivery +pid")
    # Real lines from EXIM-INVENTORY 3.5 (Exim 4.96 on this host).
    assert lf.delivered(sel, "bob", original="bob@example.test",
                        sender="alice@example.test", router="local_user",
                        transport="local_file", size=446, queue_time=0,
                        deliver_time=0) == \
        ("=> bob <bob@example.test> F=<alice@example.test> R=local_user "
         "T=local_file S=446 QT=0s DT=0s")
    assert lf.failed(sel, "nobody@example.test", "no such user",
                     sender="alice@example.test", router="fail_router",
                     deliver_time=0) == \
        ("** nobody@example.test F=<alice@example.test> R=fail_router: "
         "no such user DT=0s")
    assert lf.deferred(sel, "carol@remote.test", "Connection refused",
                       errno_value=111, router="remote",
                       transport="remote_smtp", deliver_time=0) == \
        ("== carol@remote.test R=remote T=remote_smtp defer (111): "
         "Connection refused DT=0s")
    assert lf.completed(sel, 0) == "Completed QT=0s"
    assert lf.received(sel, "", bounce_parent="1xWBAj-0002pL-1F",
                       ident="Debian-exim", protocol="local", size=1613,
                       subject="Mail delivery failed: returning message to "
                       "sender", recipients=["alice@example.test"]) == \
        ('<= <> R=1xWBAj-0002pL-1F U=Debian-exim P=local S=1613 '
         'T="Mail delivery failed: returning message to sender" '
         'for alice@example.test')
    assert lf.received(sel, "sender@client.example.org",
                       host_name="client.example.org",
                       host_address="192.0.2.10", host_port=45678,
                       ident="root", protocol="esmtp", size=286,
                       subject="fine", recipients=["carol@example.test"]) == \
        ("<= sender@client.example.org H=client.example.org [192.0.2.10]:45678"
         ' U=root P=esmtp S=286 T="fine" for carol@example.test')
    dflt = lf.LogSelector()
    assert lf.delivered(dflt, "raabe@example.com", sender="wwwrun@x",
                        router="domain_forward", transport="smtp",
                        host="mail.example.com", host_address="71.81.118.92",
                        tls_cipher="TLS1.0:DHE_RSA_AES_128_CBC_SHA1:128",
                        confirmation="250 OK id=1Wi0if-0008Kc-Et",
                        queue_time=1, deliver_time=1) == \
        ("=> raabe@example.com R=domain_forward T=smtp H=mail.example.com "
         "[71.81.118.92] X=TLS1.0:DHE_RSA_AES_128_CBC_SHA1:128 "
         'C="250 OK id=1Wi0if-0008Kc-Et"')


def test_delivery_lines_under_all_selectors() -> None:
    # Real lines from Exim 4.96 with log_selector = +all (this host).
    sel = lf.LogSelector.parse("+all")
    assert lf.delivered(sel, "bob", original="bob@example.test",
                        sender="alice@example.test",
                        return_path="alice@example.test",
                        router="local_user", transport="local_file", size=0,
                        queue_time=0.0145, deliver_time=0.0021) == \
        ("=> bob <bob@example.test> F=<alice@example.test> "
         "P=<alice@example.test> R=local_user T=local_file S=0 "
         "QT=0.014s DT=0.002s")
    assert lf.completed(sel, 0.0161) == "Completed QT=0.016s"
    assert lf.queue_run_start(8138, "-qf") == \
        "Start queue run: pid=8138 -qf"
    assert lf.received(sel, "s2@client.example.org", helo="client.example.org",
                       host_address="192.0.2.10", host_port=45679,
                       interface_address="192.0.2.1", interface_port=25,
                       ident="root", protocol="esmtpa", pipelining=".-",
                       authenticator="plain", auth_id="user1", chunking=True,
                       size=267, body_8bitmime=8, receive_time=0.0012,
                       subject="chunk",
                       recipients=["carol@example.test"]) == \
        ("<= s2@client.example.org H=(client.example.org) [192.0.2.10]:45679"
         " I=[192.0.2.1]:25 U=root P=esmtpa L.- A=plain:user1 K S=267 M8S=8"
         ' RT=0.001s T="chunk" from <s2@client.example.org> for '
         "carol@example.test")


def test_arguments_line() -> None:
    # Real line from Exim 4.96 with +arguments (this host).
    assert lf.arguments("/work/main", [
        "/usr/sbin/exim", "-C", "/tmp/h5/conf", "-odq", "-F", "Bob Smith",
        "-f", "a@example.test", "bob", "it's", "tab\there"]) == \
        ('cwd=/work/main 11 args: /usr/sbin/exim -C /tmp/h5/conf -odq -F '
         '"Bob Smith" -f a@example.test bob it\'s "tab\there"')


def test_times_and_parsing() -> None:
    assert lf.printtime(0) == "0s"
    assert lf.printtime(3725) == "1h2m5s"
    assert lf.printtime(694861) == "1w1d1h1m1s"
    assert lf.timediff(0.0144, True) == "0.014s"
    assert lf.timediff(7.5, True) == "7s"
    ll = lf.parse_line("2026-11-25 11:28:21 [10888] 1xWBAj-0002pT-1J => bob "
                       "<bob@example.test> F=<alice@example.test> "
                       "R=local_user T=local_file S=446 QT=0s DT=0s")
    assert ll is not None and ll.flag == "=>" and ll.pid == 10888
    assert ll.tags["R"] == "local_user" and ll.tags["S"] == "446"


def test_log_file_path_forms(tmp_path: Path) -> None:
    t = parse_log_file_path("", "/var/spool/x")
    assert t.path == "/var/spool/x/log/%slog" and not t.syslog
    t = parse_log_file_path(f"{tmp_path}/%s-%D:syslog", "/s")
    assert t.syslog and expand_log_path(t.path, "main", 0).endswith(
        "/main-19700101")
    assert expand_log_path("/l/%slog.%M", "reject", 0) == "/l/rejectlog.197001"
    with pytest.raises(ConfigError):
        parse_log_file_path("/a/%s:/b/%s:syslog", "/s")


def test_write_failure_is_reported(tmp_path: Path) -> None:
    from eximpy.log.writer import LogTargets, LogWriteError
    blocked = tmp_path / "file"
    blocked.write_text("")
    w = LogWriter(LogTargets(str(blocked / "%slog"), False),
                  lf.LogSelector())
    assert w.main("hello") is False and w.failed and w.last_error
    w = LogWriter(LogTargets(str(blocked / "%slog"), False),
                  lf.LogSelector(), strict=True)
    with pytest.raises(LogWriteError):
        w.main("hello")
    ok = LogWriter(LogTargets(str(tmp_path / "log" / "%slog"), False),
                   lf.LogSelector.parse("+pid"), pid=42, clock=lambda: 0)
    assert ok.reject("H=[1.2.3.4] rejected RCPT <a@b>: no", "1xWBAj-0002pL-1F",
                     lf.reject_log_block("s@x", ["a@b"], [("F", "From: s\n"),
                                                          (" ", "X: y\n")]))
    assert (tmp_path / "log" / "rejectlog").read_text().endswith(
        "Envelope-from: <s@x>\nEnvelope-to: <a@b>\nF From: s\n  X: y\n")
    assert " [42] 1xWBAj-0002pL-1F H=" in (tmp_path / "log" / "mainlog"
                                             ).read_text()
