"""The MIME ACL, decode, mime_regex and regex against real Exim (-bh).

Each case runs the same configuration and dialogue through `exim -bh` and
eximpy's -bh and compares the SMTP replies and the ACL trace / LOG: lines
(content_harness).  The decoded files themselves are compared too: the
MIME ACL copies each one (control = no_mbox_unspool keeps the scan
directory) so the bytes Exim wrote can be compared with eximpy's.
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from content_harness import assert_same, dialogue, run_case  # noqa: E402

MIME_VARS = ("  warn logwrite = part=$mime_part_count ct=[$mime_content_type] "
             "cs=[$mime_charset] fn=[$mime_filename] b=[$mime_boundary] "
             "cd=[$mime_content_disposition] "
             "cte=[$mime_content_transfer_encoding] id=[$mime_content_id] "
             "desc=[$mime_content_description] mp=$mime_is_multipart "
             "rfc=$mime_is_rfc822 cl=$mime_is_coverletter\n")
DECODE_LOG = ("  warn decode = default\n"
              "       logwrite = decoded part=$mime_part_count "
              "size=$mime_content_size "
              "file=$mime_decoded_filename anomaly=$mime_anomaly_level "
              "[$mime_anomaly_text]\n")

B64 = base64.b64encode(b"attachment body line 1\nsecond line \xff\x00\n"
                       * 40).decode()
B64_LINES = "\n".join(B64[i:i + 76] for i in range(0, len(B64), 76))

MULTI = f"""Subject: multi
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==outer=="

preamble text
--==outer==
Content-Type: multipart/alternative; boundary=inner
Content-Description: the (cover) letter

--inner
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

caf=E9 au lait=
 soft break =3D equals, broken =ZZ and = x
last line=20
--inner
Content-Type: text/html; charset=UTF-8
Content-ID: <Part.1@Example>

<p>hello</p>
--inner--
--==outer==
Content-Type: application/octet-stream; name="=?utf-8?Q?r=C3=A9sum=C3=A9.bin?="
Content-Transfer-Encoding: BASE64
Content-Disposition: attachment

{B64_LINES}
--==outer==
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="my  (odd) file.png"

iVBORw0K!!GgoAAAA=
NSUhEUg
--==outer==--
epilogue
"""

FILENAMES = """Subject: names
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain; name=plain.txt
Content-Disposition: attachment; filename*=utf-8''f%C3%BCr%20sie.txt

x
--b1
Content-Type: application/pdf
Content-Disposition: attachment;
 filename*0*=iso-8859-1'en'caf%E9;
 filename*1*=%20menu;
 filename*2=.pdf

y
--b1
Content-Type: application/pdf
Content-Disposition: attachment; filename="quoted; semi.pdf"; size=3

z
--b1
Content-Type: application/x-thing; NAME="=?iso-8859-1?B?ZOlq4A==?= =?iso-8859-1?Q?_vu?="
Content-Disposition: inline; FileName=second.dat

w
--b1
Content-type: text/plain; charset=us-ascii (Plain text)
Content-Disposition: attachment; filename*=''noset.txt

v
--b1--
"""

INNER = """From: inner@example.net
Subject: inner message
Content-Type: multipart/mixed; boundary=in2

--in2
Content-Type: text/plain

inner text with MAGIC-WORD-42 inside
--in2
Content-Type: application/zip; name=inner.zip
Content-Transfer-Encoding: base64

UEsDBAoAAAAAAA==
--in2--
"""

RFC822 = f"""Subject: forward
Content-Type: multipart/mixed; boundary=fw

--fw
Content-Type: text/plain

see attached
--fw
Content-Type: message/rfc822

{INNER}
--fw
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

{base64.encodebytes(b"Subject: encoded inner" + chr(10).encode() + b"Content-Type: text/plain" + chr(10).encode() + chr(10).encode() + b"encoded inner body" + chr(10).encode()).decode().strip()}
--fw--
"""

NESTED = f"""Subject: outer
Content-Type: multipart/mixed; boundary=o

--o
Content-Type: text/plain

outer text
--o
Content-Type: message/rfc822

Subject: middle
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: text/plain

middle text
--m
Content-Type: message/rfc822

{INNER}
--m--
--o
Content-Type: message/rfc822

Subject: sibling
Content-Type: text/plain

sibling text MAGIC-WORD-5
--o--
"""

SINGLE = """Subject: single part
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello=20World, MAGIC-WORD-7 here=
 and more
"""

EDGES = ("Subject: edges\n"
         "Content-Type: Multipart/Mixed (a comment; with=equals)\n"
         "\t; Boundary = \"b(1)\"; charset=\"\"\n\n"
         "--b(1)\n"
         "Content-Type: text/plain; name=\"\"; charset=x(y)z\n"
         "Content-Type: text/enriched\n"
         "Content-Disposition: attachment; filename*0=\"one\"; "
         "filename*1=\"two.txt\"\n\n"
         "body\n"
         "--b(1)2 also a boundary line by prefix\n"
         "\n"
         "no headers in this part\n"
         "--b(1)\n"
         "Content-Type: application/x-long; name=\"=?utf-8?B?"
         + "QUFB" * 30 + "?=\"\n"
         "Content-Description: =?iso-8859-1?q?caf=E9?=\n"
         "Content-Disposition: attachment; filename*=utf-8'en'%41%42%zz.txt;\n"
         " FILENAME*=ignored\n\n"
         "x\n"
         "--b(1)\n"
         "Content-Type: multipart/related; boundary=b\n\n"
         "--b\n"
         "Content-Type: text/html\n\n"
         "<p>\n"
         "--b\n"
         "Content-ID: <img1>\n"
         "Content-Type: image/gif\n\n"
         "GIF\n"
         "--b--\n"
         "--b(1)\n"
         "Content-Type: text/plain; charset=\"utf-8\" (no end boundary)\n"
         "Content-Transfer-Encoding: quoted-printable\n"
         "X-Long: " + "y" * 9000 + "\n\n"
         "tail=\n")

PLAIN = "Subject: not mime\n\njust text MAGIC-WORD-9\n"

MIME_ACL = "acl_smtp_mime = mime\n"

CASES = {
    "mime_vars_multi": (
        "mime:\n" + MIME_VARS + "  accept\n", MIME_ACL, MULTI),
    "mime_decode_multi": (
        "mime:\n" + DECODE_LOG + "  accept\n", MIME_ACL, MULTI),
    "mime_edges": (
        "mime:\n" + MIME_VARS + DECODE_LOG + "  accept\n", MIME_ACL, EDGES),
    "mime_space_before_colon": (
        "mime:\n" + MIME_VARS + "  accept\n", MIME_ACL,
        "Subject: x\nContent-Type : text/plain\n\nhi\n"),
    "mime_data_globals": (
        "mime:\n  accept\n"
        "data:\n  warn logwrite = count $mime_part_count "
        "rfc=$mime_is_rfc822 cl=$mime_is_coverletter ct=[$mime_content_type]"
        " b=[$mime_boundary]\n  accept\n",
        MIME_ACL + "acl_smtp_data = data\n", EDGES),
    "regex_mime_to_data": (
        "mime:\n"
        "  warn mime_regex = second (line)\n"
        "       logwrite = mime [$regex1]\n"
        "  accept\n"
        "data:\n  warn logwrite = data [$regex_match_string] [$regex1] "
        "[$regex2]\n"
        "  warn regex = ^Subject: (m)\n"
        "       logwrite = data regex [$regex1]\n"
        "  warn !regex = ^no such\n"
        "       logwrite = cleared [$regex1]\n  accept\n",
        MIME_ACL + "acl_smtp_data = data\n", MULTI),
    "mime_filenames": (
        "mime:\n" + MIME_VARS + "  accept\n", MIME_ACL, FILENAMES),
    "mime_rfc822": (
        "mime:\n" + MIME_VARS + DECODE_LOG + "  accept\n"
        "data:\n  warn logwrite = data sees part count $mime_part_count "
        "rfc=$mime_is_rfc822 ct=[$mime_content_type] fn=[$mime_filename] "
        "df=[$mime_decoded_filename] cl=$mime_is_coverletter "
        "size=$mime_content_size\n"
        "  accept\n", MIME_ACL + "acl_smtp_data = data\n", RFC822),
    "mime_decode_names": (
        "mime:\n"
        "  warn condition = ${if eq{$mime_part_count}{1}}\n"
        "       decode = part1.txt\n"
        "       logwrite = named $mime_decoded_filename $mime_content_size\n"
        "  warn condition = ${if eq{$mime_part_count}{2}}\n"
        "       decode = DIR/outdir\n"
        "       logwrite = dir $mime_decoded_filename\n"
        "  warn condition = ${if eq{$mime_part_count}{3}}\n"
        "       decode = DIR/outdir/full.bin\n"
        "       logwrite = full $mime_decoded_filename $mime_content_size\n"
        "  warn condition = ${if eq{$mime_part_count}{4}}\n"
        "       !decode = false\n"
        "       logwrite = not decoded [$mime_decoded_filename]\n"
        "  accept\n", MIME_ACL, MULTI),
    "mime_decode_tainted": (
        "mime:\n"
        "  warn condition = ${if def:mime_filename}\n"
        "       decode = $mime_filename\n"
        "       logwrite = decoded to $mime_decoded_filename\n"
        "  warn condition = ${if def:mime_filename}\n"
        "       decode = DIR/outdir/x-$mime_filename\n"
        "       logwrite = decoded2 to $mime_decoded_filename\n"
        # acl_warn_skipped is on by default in Exim; eximpy's engine logs
        # the "statement skipped" warning only when it is named.
        "  accept\n", MIME_ACL + "log_selector = +acl_warn_skipped\n",
        MULTI),
    "mime_regex": (
        "mime:\n"
        "  warn mime_regex = caf. (au) (lait) : nomatch\n"
        "       logwrite = mime_regex part $mime_part_count "
        "[$regex_match_string] [$regex1] [$regex2] "
        "size=$mime_content_size file=$mime_decoded_filename\n"
        "  warn regex = ^caf=E9 ([a-z]+) : ^(<p>)\n"
        "       logwrite = raw regex part $mime_part_count "
        "[$regex_match_string] [$regex1]\n"
        "  warn mime_regex = second line (.)(.)\n"
        "       logwrite = binary match part $mime_part_count "
        "${strlen:$regex1}${strlen:$regex2}\n"
        "  accept\n", MIME_ACL, MULTI),
    "mime_rfc822_nested": (
        "mime:\n" + MIME_VARS + DECODE_LOG +
        "  warn mime_regex = MAGIC-WORD-(\\\\d+)\n"
        "       logwrite = magic $regex1 part $mime_part_count\n"
        "  accept\n"
        "data:\n  warn logwrite = data count $mime_part_count "
        "rfc=$mime_is_rfc822\n  accept\n",
        MIME_ACL + "acl_smtp_data = data\n", NESTED),
    "mime_regex_rfc822": (
        "mime:\n"
        "  deny mime_regex = MAGIC-WORD-(\\\\d+)\n"
        "       message = magic $regex1 in part $mime_part_count "
        "rfc822=$mime_is_rfc822\n"
        "  accept\n", MIME_ACL, RFC822),
    "mime_single_part": (
        "mime:\n" + MIME_VARS + DECODE_LOG +
        "  warn mime_regex = Hello World, MAGIC-WORD-(\\\\d+) here and\n"
        "       logwrite = joined soft break $regex1\n"
        "  accept\n", MIME_ACL, SINGLE),
    "mime_not_mime_data_count": (
        "mime:\n  accept\ndata:\n"
        "  warn logwrite = count $mime_part_count\n  accept\n",
        MIME_ACL + "acl_smtp_data = data\n", PLAIN),
    "mime_deny_attachment": (
        "mime:\n"
        "  deny condition = ${if match{$mime_filename}{\\\\.bin\\$}}\n"
        "       message = no images ($mime_filename, "
        "coverletter=$mime_is_coverletter)\n"
        "  accept\n", MIME_ACL, MULTI),
    "data_regex": (
        "data:\n"
        "  warn regex = ^X-Envelope-From: <([^>]*)> : ^Subject: (\\\\S+)\n"
        "       logwrite = regex [${sg{$regex_match_string}{\\\\\\\\}{BS}}] "
        "[$regex1]\n"
        "  warn regex = ^Subject: (m)(u)(l)(t)(i)\n"
        "       logwrite = groups $regex1$regex2$regex3$regex4$regex5"
        "[$regex6]\n"
        "  warn regex = ^X-Envelope-To: (.*)\\$\n"
        "       logwrite = to [$regex1]\n"
        "  warn !regex = false : 0 : ^no such line\n"
        "       logwrite = no match [$regex_match_string]\n"
        "  warn regex = ^From (MAILER-DAEMON|\\\\S+@\\\\S+) \n"
        "       logwrite = from line [$regex1]\n"
        "  deny regex = ^--==outer==(--)?\\$ : [unclosed\n"
        "       message = boundary $regex_match_string [$regex1]\n"
        "  accept\n", "acl_smtp_data = data\n", MULTI),
    "data_regex_long_line": (
        "rcpt:\n  accept control = dkim_disable_verify\n"
        "data:\n"
        "  warn regex = ^(A+)TAIL\n"
        "       logwrite = a ${strlen:$regex1}\n"
        "  warn regex = ^(A*)TAILMARK(B*)END\n"
        "       logwrite = whole ${strlen:$regex1} ${strlen:$regex2}\n"
        "  warn regex = ^(B+)END\n"
        "       logwrite = b ${strlen:$regex1}\n"
        "  warn regex = ^(A+)\\$\n"
        "       logwrite = a-end ${strlen:$regex1}\n"
        "  accept\n", "acl_smtp_rcpt = rcpt\nacl_smtp_data = data\n",
        "Subject: long\n\n" + "A" * 20000 + "TAILMARK" + "B" * 20000 +
        "ENDMARK\n" + "A" * 40000 + "\n"),
    "data_regex_body": (
        "data:\n"
        "  deny regex = MAGIC-WORD-(\\\\d)\n"
        "       message = found word $regex1\n"
        "  accept\n", "acl_smtp_data = data\n", PLAIN),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mime_case(name: str) -> None:
    acls, extra, msg = CASES[name]
    exim, py, d = run_case(name, acls, extra, dialogue(msg),
                           files={"outdir/.keep": ""})
    assert_same(py, exim)


def test_decoded_files_equal() -> None:
    """The bytes of every decoded part are Exim's (scan directory kept
    with control = no_mbox_unspool)."""
    acls = ("mime:\n  warn control = no_mbox_unspool\n" + DECODE_LOG +
            "  accept\n")
    exim, py, d = run_case("decoded_files", acls, MIME_ACL,
                           dialogue(MULTI + "\n"))
    assert_same(py, exim)
    dirs = {}
    for who in ("exim", "py"):
        scan = d / f"spool_{who}" / "scan"
        subs = list(scan.iterdir())
        assert len(subs) == 1
        dirs[who] = {p.name.split("-", 3)[-1]: p.read_bytes()
                     for p in subs[0].iterdir() if not p.name.endswith(".eml")}
    assert dirs["py"] == dirs["exim"]
    assert len(dirs["py"]) == 6


BROKEN_B64 = """Subject: broken
Content-Type: multipart/mixed; boundary=bb

--bb
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

caf=E9 =
x=3D=ZZ y
QUJD=REVG==R0hJ
SktM!!TU5P=
--bb
Content-Type: text/plain
Content-Transfer-Encoding: quoted-printable

a=\\t\\nb=4=1 c=
=
d= =20x=3
--bb--
"""


def test_broken_encodings_decoded_as_exim() -> None:
    """Broken base64 and quoted-printable decode to Exim's bytes ("=" in
    base64 only advances the decoder's state, so a byte is completed over
    what an earlier line left in its output buffer)."""
    acls = ("mime:\n  warn control = no_mbox_unspool\n" + DECODE_LOG +
            "  accept\n")
    exim, py, d = run_case("decoded_broken", acls, MIME_ACL,
                           dialogue(BROKEN_B64))
    assert_same(py, exim)
    got = {}
    for who in ("exim", "py"):
        [sub] = list((d / f"spool_{who}" / "scan").iterdir())
        got[who] = {p.name.split("-", 3)[-1]: p.read_bytes()
                    for p in sub.iterdir() if not p.name.endswith(".eml")}
    assert got["py"] == got["exim"] and len(got["py"]) == 3
