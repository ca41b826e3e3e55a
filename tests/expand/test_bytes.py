"""Non-ASCII text in the expansion engine, against real Exim.

eximpy carries bytes in str as UTF-8 with surrogateescape everywhere
(eximpy/expand/bytestr.py); Exim works on bytes.  These cases feed UTF-8
text, invalid UTF-8 (raw bytes and \\x escapes) and operators that cut a
UTF-8 sequence to `exim -be` and eximpy's -be, and look up non-ASCII keys
and values in lsearch, cdb, dbm and sqlite files (Debian's Exim has no
json lookup to compare with).  Property tests check that byte-level
operations on any bytes agree with the same operation on Python bytes.  The last test runs
an SMTP session (-bs) whose RCPT ACL message expands such things, and
compares the reply bytes with Exim's.
"""
from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from tests.expand.conftest import WORK, normalize
from tests.expand.test_differential import compare
from tests.oracle import eximpy_run, exim_run

# "\udcff" is the lone byte 0xff (surrogateescape): raw invalid UTF-8 input.
RAW_FF = "\udcff"

WORDS = ["für", "Grüße", "ü", "\\xc3\\xbc", "\\303\\274", "a\\xffb", "a" + RAW_FF + "b",
         "\\xc3", "日本", "Ü"]

OPS = ["strlen", "length_1", "length_2", "l_3", "substr_1_2", "s_-1", "s_1", "hash_2",
       "h_3_5", "nhash_5", "nhash_3_5", "md5", "sha1", "sha256", "sha3", "base64",
       "str2b64", "escape", "escape8bit", "hexquote", "rxquote", "quote",
       "quote_local_part", "uc", "lc", "rfc2047", "utf8clean", "from_utf8",
       "listcount", "quote_sqlite", "quote_mysql", "quote_ldap", "base32d", "eval",
       "address", "local_part", "domain"]

OP_CASES = [f"${{{op}:{w}}}" for op in OPS for w in WORDS]

# crypt(3) of "ü" (UTF-8) with salt $6$salt, "$" escaped for the expansion
SHA512_CRYPT = ("\\$6\\$salt\\$9lddJrq4YY7GCWn.e0ts7q2xGN7bAOReBMNK4wsvir0QQaKc005yQM."
                "8CV/atXGN/dHQozdw7JcDGRN7Q8WfX1")

MISC = [
    # pieces of a cut sequence put back together
    "${substr_0_1:ü}${substr_1_1:ü}",
    "${if eq{${substr_0_1:ü}${substr_1:ü}}{ü}{y}{n}}",
    "${if eq{${length_1:ü}}{\\xc3}{y}{n}}",
    "${strlen:${substr_0_1:ü}${substr_1:ü}}",
    "${if eq{\\xc3\\xbc}{ü}{y}{n}}",
    "${if eq{ü}{\\303\\274}{y}{n}}",
    "${length{1}{ü}}|${substr{1}{1}{ü}}|${hash{2}{Grüße}}|${nhash{4}{ü}}",
    # comparisons are on bytes
    "${if lt{ü}{z}{y}{n}}", "${if gt{ü}{z}{y}{n}}", "${if lt{\\xff}{ü}{y}{n}}",
    "${if lt{日}{\\xff}{y}{n}}", "${if eqi{Ü}{ü}{y}{n}}", "${if eqi{FÜR}{fÜr}{y}{n}}",
    "${if lti{ü}{Z}{y}{n}}",
    # tr, sg, regular expressions on bytes
    "${tr{für}{ü}{u}}", "${tr{abc}{b}{ü}}", "${tr{für}{\\xbc}{X}}",
    "${sg{für}{.}{x}}", "${sg{für}{ü}{ue}}", "${sg{Grüße}{[^a-z]}{_}}",
    "${sg{für}{(.)}{<\\$1>}}", "${sg{a\\xffb}{\\N\\xff\\N}{Y}}",
    "${if match{für}{^f.r\\$}{y}{n}}", "${if match{für}{^f..r\\$}{y}{n}}",
    "${if match{für}{f(.)}{$1|$0}{n}}", "${if match{für}{ü}{y}{n}}",
    "${if match{ü}{^\\N\\xc3\\N}{y}{n}}", "${if match{Ü}{(?i)ü}{y}{n}}",
    "${if match{für}{\\N^f\\w+r\\N}{y}{n}}", "${if match{ü}{^\\N[\\x80-\\xff]{2}$\\N}{y}{n}}",
    "${if match{Grüße}{(ü)(ß)}{$1-$2}{n}}",
    "${rxquote:ü}", "${if match{ü}{${rxquote:ü}}{y}{n}}",
    "${if match{Grüße}{\\N(?|(ü)|(x))\\N}{$1}{n}}", "${sg{Grüße}{\\N\\pL\\N}{.}}",
    "${sg{aüb}{\\N(?<=\\xbc)b\\N}{B}}", "${sg{aüb}{\\N\\xc3\\K\\xbc\\N}{-}}",
    "${if match{für}{\\N^f[^a-z]{2}r\\N}{y}{n}}",
    # lists, extract, sort
    "${if inlist{ü}{a:ü}{y}{n}}", "${if inlisti{Ü}{a:ü}{y}{n}}",
    "${listextract{2}{a:ü:c}}", "${extract{2}{ü}{aüb}}", "${extract{2}{\\xbc}{aüb}}",
    "${extract{k}{k=ü j=x}}", "${extract{ü}{ü=1 x=2}}",
    "${if eq{${extract{k}{k=\"\\xc3\\xbc\"}}}{ü}{y}{n}}",
    "${if inlist{${extract{k}{k=\"\\xc3\\xbc\"}}}{a:ü}{y}{n}}",
    "${readfile{@W@/u_ls}{\\xbc}}",
    "${sort{b:ü:a:\\xff:日}{lt}{$item}}", "${sort{b:ü:A}{lti}{$item}}",
    "${map{ü:ä}{<$item>}}", "${reduce{ü:ä}{}{$value$item}}",
    "${filter{ü:a}{eq{$item}{ü}}}", "${if forany{ü:x}{eq{$item}{ü}}{y}{n}}",
    "${listquote{:}{a:ü}}", "${listquote{ü}{aüb}}",
    "${if match_domain{bücher.test}{bücher.test}{y}{n}}",
    "${if match_domain{Bücher.test}{bücher.test}{y}{n}}",
    "${if match_domain{bücher.test}{^b.cher}{y}{n}}",
    "${if match_domain{bücher.test}{^b..cher}{y}{n}}",
    "${if match_local_part{jürgen}{^j(.)}{$1}{n}}",
    # digests, encodings
    "${hmac{md5}{ü}{für}}", "${hmac{sha1}{Schlüssel}{\\xff}}",
    "${base64d:w7w=}", "${base64d:/w==}", "${rfc2047d:=?utf-8?q?f=C3=BCr?=}",
    "${rfc2047d:=?utf-8?b?ZsO8cg==?=}", "${rfc2047d:=?iso-8859-1?q?f=FCr?=}",
    "${rfc2047:Grüße aus Köln}", "${utf8clean:a\\xc3b\\xff}", "${from_utf8:für}",
    "${utf8clean:\\xed\\xa0\\x80}",
    "${utf8clean:\\xed\\xbf\\xbfz}",
    "${utf8clean:\\xed\\x9f\\xbf}",
    "${utf8clean:\\xee\\x80\\x80}",
    "${utf8clean:\\xe0\\x80\\x80}",
    "${utf8clean:\\xf0\\x80\\x80\\x80}",
    "${utf8clean:\\xf4\\x90\\x80\\x80}",
    "${utf8clean:a\\xed\\xa0b}",
    "${from_utf8:a\\xe2\\x82\\xacb}",
    "${utf8_domain_to_alabel:bücher.example}",
    "${utf8_domain_from_alabel:xn--bcher-kva.example}",
    "${imapfolder{Grüße}}", "${imapfolder{a.ü/b}}",
    "${escape:${substr_0_1:ü}}", "${hexquote:${substr_1:ü}x}",
    "${if inbound_srs{SRS0=abcd=AB=x.test=jü}{}{$srs_recipient}{n}}",
    "${if crypteq{ü}{\\{md5\\}${md5:ü}}{y}{n}}",
    "${if crypteq{a\\xffb}{\\{crypt\\}ab0PXVWbJDCxY}{y}{n}}",
    "${if crypteq{ü}{" + SHA512_CRYPT + "}{y}{n}}",
    "${if crypteq{u}{" + SHA512_CRYPT + "}{y}{n}}", "${addresses:Jürgen <jü@x>, b@c}",
    "${lc:ÄBC}${uc:äbc}", "${listcount:ü:\\xff}",
    "${extract{ü}{x=\"ü\" ü=\"v w\"}{$value}{n}}",
    "${run{/bin/echo für ${length_1:ü}}{$value}}", "${strlen:${run{/bin/echo für}}}",
    "${readfile{@W@/u_ls}}", "${lookup{für.x}partial-lsearch{@W@/u_ls}{$value}{n}}",
    # errors that quote the string
    "${base32:ü}", "${eval:1+ü}", "${base62d:ü}", "${if match{ü}{\\N(\\N}{y}{n}}",
    "${mask:ü}", "${hex2b64:ü}",
]

LOOKUPS = [
    "${lookup{x}lsearch{@W@/u_ls}}", "${lookup{schlüssel}lsearch{@W@/u_ls}}",
    "${lookup{SCHLüSSEL}lsearch{@W@/u_ls}}", "${lookup{kü}lsearch{@W@/u_ls}{y:$value}{n}}",
    "${lookup{raw" + RAW_FF + "}lsearch{@W@/u_ls}}",
    "${lookup{${substr_0_1:ü}${substr_1:ü}z}lsearch{@W@/u_ls}{$value}{n}}",
    "${strlen:${lookup{x}lsearch{@W@/u_ls}}}", "${md5:${lookup{x}lsearch{@W@/u_ls}}}",
    "${lookup{ü}cdb{@W@/u.cdb}}", "${lookup{k\\xff}cdb{@W@/u.cdb}}",
    "${length_3:${lookup{ü}cdb{@W@/u.cdb}}}",
    "${lookup{ü}dbm{@D@/u1}{$value}{n}}", "${lookup{k\\xff}dbmnz{@D@/u2}{$value}{n}}",
    "${lookup sqlite{@W@/u.db select v from u where k='ü'}}",
    "${lookup sqlite{@W@/u.db select b from u where k='ü'}}",
    "${lookup sqlite{@W@/u.db select k,v from u}}",
    "${strlen:${lookup sqlite{@W@/u.db select v from u where k='ü'}}}",
    "${lookup{a.ü.test}wildlsearch{@W@/u_wls}{$value}{n}}",
    "${lookup{büro}nwildlsearch{@W@/u_wls}{$value}{n}}",
    # list files with non-ASCII items (eximpy.match / acl.lists)
    "${if match_domain{bücher.test}{@W@/u_dl}{y}{n}}",
    "${if match_domain{b\\xc3\\xbccher.test}{@W@/u_dl}{y}{n}}",
    "${if match_local_part{schlüssel}{@W@/u_dl}{y}{n}}",
]

WILD = "*.ü.test: wild ü\n^b.ro: regex one byte\n^b..ro: regex two bytes\n"

@pytest.fixture(scope="module")
def bytes_work(work):
    # lsearch: raw bytes (UTF-8 and invalid) as Exim reads files
    (WORK / "u_ls").write_bytes(
        "x: Grüße\nschlüssel: wert ü\n\"k\\xc3\\xbc\": escaped key\n".encode()
        + b"raw\xff: raw \xfe value\n" + "üz: joined\n".encode())
    (WORK / "u_wls").write_bytes(WILD.encode())
    (WORK / "u_dl").write_bytes("bücher.test\nschlüssel\n".encode())
    from eximpy.lookups.cdb import write_cdb
    write_cdb(str(WORK / "u.cdb"), [("ü".encode(), "cdb wert ü".encode()),
                                    (b"k\xff", b"cdb raw \xfe")])
    src = WORK / "u_dbin"
    src.write_bytes("ü: dbm umlaut\n".encode() + b"k\xff: dbm raw \xfe\n")
    exb = shutil.which("exim_dbmbuild")
    if exb:
        for opt, name in ((["-nolc"], "u1"), (["-nozero", "-nolc"], "u2")):
            subprocess.run([exb] + opt + [str(src), str(WORK / "exim" / name)],
                           capture_output=True)
    import contextlib
    import io
    from spool_tools import exim_dbmbuild
    for opt, name in ((["-nolc"], "u1"), (["-nozero", "-nolc"], "u2")):
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            exim_dbmbuild.main(opt + [str(src), str(WORK / "py" / name)])
    db = WORK / "u.db"
    if db.exists():
        db.unlink()
    con = sqlite3.connect(db)
    con.execute("create table u (k text, v text, b blob)")
    con.execute("insert into u values (?, ?, ?)", ("ü", "Grüße", b"raw \xff\xfe"))
    con.execute("insert into u values (?, ?, ?)", ("x", "a b", b"y"))
    con.commit()
    con.close()
    return WORK


def test_operators_on_bytes(bytes_work):
    compare("bytes_ops", OP_CASES)


def test_misc_on_bytes(bytes_work):
    compare("bytes_misc", MISC)


def test_lookups_on_bytes(bytes_work):
    compare("bytes_lookups", LOOKUPS, dbm=True)


MESSAGE_CASES = [
    "$h_subject:", "${strlen:$h_subject:}", "${length_3:$h_subject:}", "$rh_from:",
    "$h_from:", "$bh_from:", "$h_x-raw:", "${hexquote:$h_x-raw:}", "$message_size",
    "$message_body_size", "${strlen:$message_body}", "${strlen:$message_body_end}",
    "${hexquote:${substr_-3:$message_body}}", "${hexquote:${substr_0_3:$message_body_end}}",
    "$body_linecount", "${if match{$h_subject:}{^Gr..\\N\\xc3\\N}{y}{n}}",
    "${if eq{$h_subject:}{Grüße}{y}{n}}",
]


def test_message_on_bytes(bytes_work):
    """-bem with raw UTF-8 and invalid bytes in headers and body; the body
    variables hold message_body_visible (500) bytes, cut mid-character."""
    msg = WORK / "u_msg"
    msg.write_bytes("Subject: Grüße\nFrom: =?iso-8859-1?q?J=FCrgen?= <j@example.test>\n"
                    .encode() + b"X-Raw: a\xffb\xc3\n\n" + ("a" + "ü" * 300 + "\n").encode()
                    + ("ß" * 280 + "z\n").encode())
    compare("bytes_message", MESSAGE_CASES, message=str(msg))


def test_be_arguments_are_bytes(bytes_work):
    """-be with the strings as arguments (not stdin): read and written as
    the same bytes."""
    conf = str(WORK / "conf")
    args = ["${strlen:für}", "${length_2:für}x", "a" + RAW_FF + "b${escape:" + RAW_FF + "}",
            "${md5:Grüße}"]
    want = exim_run("expand", "bytes_args", ["-C", conf, "-be"] + args, normalize=normalize)
    got = eximpy_run(["-C", conf, "-be"] + args)
    assert (got.rc, normalize(got.out)) == (want.rc, want.out)


ACL_CONF = """\
primary_hostname = test.example
spool_directory = @W@/spool
log_file_path = @W@/log/%slog
exim_user = root
exim_group = root
never_users =
acl_smtp_rcpt = r
begin acl
r:
  warn logwrite = W L=${lookup{x}lsearch{@W@/u_ls}} S=${substr_1_1:ü}${substr_0_1:ü} \
                  R=${lookup{raw\\xff}lsearch{@W@/u_ls}} T=${tr{für}{ü}{u}} \
                  G=${sg{für}{.}{x}} N=${strlen:Grüße} H=${hexquote:${length_1:ü}}
  deny message = L=${lookup{x}lsearch{@W@/u_ls}} C=für E=${escape:für} \\
                 M=${md5:für} N=${length_2:für}
begin routers
begin transports
"""

DIALOGUE = b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nQUIT\r\n"


def _reply_550(out: str) -> str:
    return "".join(line + "\n" for line in out.split("\n") if line.startswith("550"))


def test_smtp_session_reply_bytes(bytes_work):
    """An RCPT ACL whose message holds a non-ASCII lsearch value and byte
    operators, through a -bs session: the 550 line is byte for byte
    Exim's, and so is the logwrite line in the main log."""
    conf = WORK / "conf_bytes_acl"
    conf.write_text(ACL_CONF.replace("@W@", str(WORK)))
    log = WORK / "log" / "mainlog"
    log.unlink(missing_ok=True)
    want = exim_run("expand", "bytes_smtp", ["-C", str(conf), "-bs"], stdin=DIALOGUE,
                    normalize=lambda s: normalize(_reply_550(s)))
    want_log = log.read_bytes() if log.exists() else None
    log.unlink(missing_ok=True)
    got = eximpy_run(["-C", str(conf), "-bs"], stdin=DIALOGUE)
    assert normalize(_reply_550(got.out)) == want.out
    assert "550 L=Gr<xc3><xbc><xc3><x9f>e C=f<xc3><xbc>r" in want.out
    if want_log is not None:
        def wline(b: bytes) -> list[bytes]:
            return [x.split(b" ", 2)[2] for x in b.split(b"\n") if b" W " in x]
        got_log = log.read_bytes()
        assert wline(got_log) == wline(want_log) and wline(want_log)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=12), st.integers(-14, 14), st.integers(0, 14))
def test_substr_is_bytes(data, start, length):
    """${substr} of any bytes is the bytes' slice (Exim's extract_substr
    rules for negative starts included), and cut pieces joined again are
    the whole string, equal to it as str."""
    from eximpy.expand.bytestr import from_bytes, norm, to_bytes
    from eximpy.expand.operators import extract_substr
    s = from_bytes(data)
    n = len(data)
    got = extract_substr(s, start, length)
    if start < 0:
        v1 = max(n + start, 0)
        v2 = length if n + start >= 0 else max(length + n + start, 0)
    else:
        v1, v2 = min(start, n), (0 if start > n else length)
    assert to_bytes(got) == data[v1:v1 + min(v2, n - v1)]
    k = min(max(start, 0), n)
    a, b = extract_substr(s, 0, k), extract_substr(s, k, n)
    assert norm(a + b) == s


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=10), st.binary(min_size=1, max_size=3))
def test_regex_matches_bytes(data, needle):
    """A pattern matches where the bytes hold it (PCRE without UTF), and
    $0 is those bytes."""
    import re
    from eximpy.expand.bytestr import from_bytes, to_bytes
    from eximpy.expand.regex import compile_pcre
    pat = "".join(f"\\x{c:02x}" for c in needle)
    m = compile_pcre(pat).search(from_bytes(data))
    want = re.search(re.escape(needle), data)
    assert (m is None) == (want is None)
    if m is not None:
        assert to_bytes(m.group(0)) == needle and m.start() == want.start()


def test_be_stdin_chunks_cut_a_character(bytes_work):
    """-be reads stdin in 1023-byte pieces, as Exim's fgets() does: a piece
    that ends inside a UTF-8 sequence, and a continuation line joined to
    it, give the same bytes as Exim."""
    conf = str(WORK / "conf")
    data = ("x" * 1021 + "ü${strlen:ü}\n" + "y" * 1020 + "ü\\\n  ä${length_1:ä}\n").encode()
    want = exim_run("expand", "bytes_stdin_chunks", ["-C", conf, "-be"], stdin=data,
                    normalize=normalize)
    got = eximpy_run(["-C", conf, "-be"], stdin=data)
    assert (got.rc, normalize(got.out)) == (want.rc, want.out)
