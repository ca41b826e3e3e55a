"""The configuration reader against real Exim: same values, same errors.

Each case is a small configuration file; real Exim and eximpy are both asked
`-C file -bP ...` and must print the same thing and exit the same way.  The
cases cover the file syntax of spec chapter 6: comments, continuation lines,
macros (definition order, substrings, ==, -D), conditionals, .include,
sections, driver instances, named lists, ACL, retry and rewrite syntax, and
every error that syntax can produce.
"""
from __future__ import annotations

import re

import pytest

from oracle import ROOT, eximpy_run, exim_run

HEAD = "log_file_path = @DIR@/log/%slog\nspool_directory = @DIR@/spool\n"

# name -> (configuration text after HEAD, -bP arguments, extra argv)
CASES: dict[str, tuple[str, list[str], list[str]]] = {
    # ---- values through the reader --------------------------------------
    "continuation": ("qualify_domain = abc \\\n     def\\\n   ghi\n",
                     ["qualify_domain"], []),
    "continuation_comment": ("qualify_domain = abc\\\n# a comment\n  def\n",
                             ["qualify_domain"], []),
    "continuation_blank_ends": ("qualify_domain = abc\\\n\nprimary_hostname = x\n",
                                ["qualify_domain", "primary_hostname"], []),
    "comment_not_midline": ("qualify_domain = abc # not a comment\n",
                            ["qualify_domain"], []),
    "leading_space": ("   qualify_domain   =   spaced.example   \n",
                      ["qualify_domain"], []),
    "quoted_string": ('qualify_domain = "a\\tb\\x41\\101\\\\c"\n',
                      ["qualify_domain"], []),
    "macro_simple": ("DOM = example.org\nqualify_domain = mail.DOM\n",
                     ["qualify_domain"], []),
    "macro_order": ("ABCD_XYZ = long\nABCD = short\n"
                    "qualify_domain = ABCD_XYZ.ABCD\n", ["qualify_domain"], []),
    "macro_redefine": ("MAC = one\nMAC == MAC.two\nqualify_domain = MAC\n",
                       ["qualify_domain"], []),
    "macro_in_macro": ("A1 = x\nB1 = A1.y\nqualify_domain = B1\n",
                       ["qualify_domain"], []),
    "macro_later_scans_earlier": ("B2 = b\nA2 = B2-a\nqualify_domain = A2\n",
                                  ["qualify_domain"], []),
    "macro_loop": ("AONE = BONE.x\nBONE = AONE.y\nqualify_domain = AONE\n",
                   ["qualify_domain"], []),
    "macro_self": ("SELFM = SELFM.again\nqualify_domain = SELFM\n",
                   ["qualify_domain"], []),
    "macro_cmdline": ("MAC = file\nqualify_domain = MAC\n", ["qualify_domain"],
                      ["-DMAC=cmdline"]),
    "macro_cmdline_beats_redefine": ("MAC = file\nMAC == again\n"
                                     "qualify_domain = MAC\n",
                                     ["qualify_domain"], ["-DMAC=cmd"]),
    "macro_empty_line": ("EMPTY =\nEMPTY\nqualify_domain = q\n",
                         ["qualify_domain"], []),
    "macro_makes_comment": ("HASH = #\nHASH qualify_domain = no\n"
                            "primary_hostname = p\n",
                            ["qualify_domain", "primary_hostname"], []),
    "macro_named": ("AAA = 1\nBBB = 2\n", ["macro", "BBB"], []),
    "ifdef_true": (".ifdef _OPT_MAIN_QUALIFY_DOMAIN\nqualify_domain = yes\n.else\n"
                   "qualify_domain = no\n.endif\n", ["qualify_domain"], []),
    "ifdef_user": ("FOO = 1\n.ifdef FOO\nqualify_domain = yes\n.endif\n",
                   ["qualify_domain"], []),
    "ifndef": (".ifndef NOPE\nqualify_domain = yes\n.endif\n",
               ["qualify_domain"], []),
    "elifdef": (".ifdef NOPE\nqualify_domain = a\n.elifdef NOPE2\n"
                "qualify_domain = b\n.elifndef NOPE3\nqualify_domain = c\n"
                ".else\nqualify_domain = d\n.endif\n", ["qualify_domain"], []),
    "ifdef_nested": ("X1 = 1\n.ifdef X1\n.ifdef NOPE\nqualify_domain = a\n"
                     ".else\nqualify_domain = b\n.endif\n.endif\n",
                     ["qualify_domain"], []),
    "ifdef_cmdline": (".ifdef MYFLAG\nqualify_domain = flagged\n.endif\n",
                      ["qualify_domain"], ["-DMYFLAG"]),
    "include": (".include @DIR@/inc1.conf\nprimary_hostname = after\n",
                ["qualify_domain", "primary_hostname"], []),
    "include_relative": (".include inc1.conf\n", ["qualify_domain"], []),
    "include_quoted": ('.include "@DIR@/inc1.conf"\n', ["qualify_domain"], []),
    "include_if_exists": (".include_if_exists @DIR@/nonexistent\n"
                          ".include_if_exists @DIR@/inc1.conf\n",
                          ["qualify_domain"], []),
    "named_lists": ("domainlist local_domains = @ : example.com\n"
                    "hostlist relay = 127.0.0.1 : ::::1\n"
                    "addresslist bad = a@b : c@d\n"
                    "localpartlist lp = ^abc : def\n"
                    "domainlist_cache dyn = ${lookup{x}lsearch{/etc/x}}\n",
                    ["+local_domains", "+relay", "+bad", "+lp", "+dyn"], []),
    "named_list_quoted": ('domainlist q = "a\\x41 : b"\n', ["+q"], []),
    "routers_list": ("begin routers\nr1:\n  driver = accept\n  transport = t\n"
                     "MAC = x\nr2:\n driver = redirect\n data = MAC\n",
                     ["router_list"], []),
    "sections_any_order": ("begin transports\nt1:\n driver = pipe\n"
                           "begin routers\nr1:\n driver = accept\n"
                           " transport = t1\n"
                           "begin acl\nacl1:\n accept\nbegin retry\n"
                           "* * F,1h,10m\nbegin rewrite\n"
                           "*@x.example $1@y.example Ff\n",
                           ["router_list", "transport_list"], []),
    "section_singular": ("begin router\nr1:\n driver = accept\n"
                         " transport = t\n",
                         ["router_list"], []),
    "acl_section": ("begin acl\nacl_a:\n  accept hosts = :\n"
                    "         !verify = sender\n  deny message = no\n"
                    "  warn set acl_m_x = 1\n       set acl_c0 = 2\n"
                    "ACLMAC = 1\nacl_b:\n  require domains = x\n"
                    "  accept endpass\n", ["primary_hostname"], []),
    # ---- errors ------------------------------------------------------------
    "err_unknown_main": ("foo_bar = 1\n", ["primary_hostname"], []),
    "err_bom": ("\ufeffqualify_domain = x\n", ["primary_hostname"], []),
    "err_macro_substring": ("ABC = 1\nABCD = 2\n", ["primary_hostname"], []),
    "err_macro_twice": ("ABC = 1\nABC = 2\n", ["primary_hostname"], []),
    "err_macro_undefined_redef": ("ABC == 2\n", ["primary_hostname"], []),
    "err_macro_malformed": ("ABC 2\n", ["primary_hostname"], []),
    "err_ifdef_unterminated": (".ifdef X\nqualify_domain = a\n",
                               ["primary_hostname"], []),
    "err_endif_unmatched": (".endif\n", ["primary_hostname"], []),
    "err_else_unmatched": (".else\n", ["primary_hostname"], []),
    "err_elifdef_unmatched": (".elifdef X\n", ["primary_hostname"], []),
    "err_include_missing": (".include @DIR@/missing.conf\n",
                            ["primary_hostname"], []),
    "err_include_if_exists_relative": (".include_if_exists rel.conf\n",
                                       ["primary_hostname"], []),
    "err_unknown_section": ("begin foo\n", ["primary_hostname"], []),
    "err_repeated_section": ("begin routers\nbegin router\n",
                             ["primary_hostname"], []),
    "err_no_driver": ("begin routers\nr1:\n  domains = x\n",
                      ["primary_hostname"], []),
    "err_unknown_driver": ("begin routers\nr1:\n  driver = nosuch\n",
                           ["primary_hostname"], []),
    "err_private_before_driver": ("begin routers\nr1:\n  check_srv = x\n"
                                  "  driver = dnslookup\n",
                                  ["primary_hostname"], []),
    "err_unknown_private": ("begin transports\nt1:\n  driver = pipe\n"
                            "  no_such_thing = 1\n", ["primary_hostname"], []),
    "err_accept_needs_transport": ("begin routers\nr1:\n driver = accept\n",
                                   ["primary_hostname"], []),
    "err_redirect_no_data": ("begin routers\nr1:\n driver = redirect\n",
                             ["primary_hostname"], []),
    "err_redirect_both": ("begin routers\nr1:\n driver = redirect\n data = a\n"
                          " file = b\n", ["primary_hostname"], []),
    "err_redirect_transport": ("begin routers\nr1:\n driver = redirect\n"
                               " data = a\n transport = t\n",
                               ["primary_hostname"], []),
    "err_manualroute_neither": ("begin routers\nr1:\n driver = manualroute\n"
                                " transport = t\n", ["primary_hostname"], []),
    "err_iplookup_port": ("begin routers\nr1:\n driver = iplookup\n",
                          ["primary_hostname"], []),
    "err_queryprogram_command": ("begin routers\nr1:\n"
                                 " driver = queryprogram\n",
                                 ["primary_hostname"], []),
    "err_self_bogus": ("begin routers\nr1:\n driver = accept\n"
                       " transport = t\n self = bogus\n",
                       ["primary_hostname"], []),
    "err_pass_router_missing": ("begin routers\nr1:\n driver = accept\n"
                                " transport = t\n pass_router = nosuch\n",
                                ["primary_hostname"], []),
    "verify_only_no_transport": ("begin routers\nr1:\n driver = accept\n"
                                 " verify_only\n", ["router_list"], []),
    "err_appendfile_both": ("begin transports\nt:\n driver = appendfile\n"
                            " file = /x\n directory = /y\n",
                            ["primary_hostname"], []),
    "err_appendfile_nolock": ("begin transports\nt:\n driver = appendfile\n"
                              " directory = /x\n use_fcntl_lock = false\n"
                              " use_lockfile = false\n",
                              ["primary_hostname"], []),
    "err_lmtp_neither": ("begin transports\nt:\n driver = lmtp\n",
                         ["primary_hostname"], []),
    "err_two_routers": ("begin routers\nr1:\n driver = accept\nr1:\n"
                        " driver = accept\n", ["primary_hostname"], []),
    "err_router_name_missing": ("begin routers\n  domains = x\n",
                                ["primary_hostname"], []),
    "err_driver_name_extra": ("begin routers\nr1: junk\n driver = accept\n",
                              ["primary_hostname"], []),
    "err_named_list_dup": ("domainlist d = a\ndomainlist d = b\n",
                           ["primary_hostname"], []),
    "err_named_list_noeq": ("hostlist h a\n", ["primary_hostname"], []),
    "err_named_list_junk": ("domainlistx d = a\n", ["primary_hostname"], []),
    "err_named_list_quote": ('domainlist d = "abc\n', ["primary_hostname"],
                             []),
    "err_acl_name": ("begin acl\nfoo bar\n", ["primary_hostname"], []),
    "err_acl_verb": ("begin acl\na1:\n  allow hosts = *\n",
                     ["primary_hostname"], []),
    "err_acl_condition": ("begin acl\na1:\n  accept nosuch = 1\n",
                          ["primary_hostname"], []),
    "err_acl_negated_verb": ("begin acl\na1:\n  !accept\n",
                             ["primary_hostname"], []),
    "err_acl_negated_modifier": ("begin acl\na1:\n  accept !message = x\n",
                                 ["primary_hostname"], []),
    "err_acl_endpass": ("begin acl\na1:\n  deny endpass\n",
                        ["primary_hostname"], []),
    "err_acl_missing_eq": ("begin acl\na1:\n  deny hosts *\n",
                           ["primary_hostname"], []),
    "err_acl_set_name": ("begin acl\na1:\n  warn set foo = 1\n",
                         ["primary_hostname"], []),
    "err_acl_set_digit": ("begin acl\na1:\n  warn set acl_mx = 1\n",
                          ["primary_hostname"], []),
    "err_acl_set_char": ("begin acl\na1:\n  warn set acl_m_a-b = 1\n",
                         ["primary_hostname"], []),
    "err_acl_twice": ("begin acl\na1:\n accept\na1:\n accept\n",
                      ["primary_hostname"], []),
    "err_retry_letter": ("begin retry\n* * X,1h\n", ["primary_hostname"], []),
    "err_retry_error": ("begin retry\n* bogus F,1h,1m\n",
                        ["primary_hostname"], []),
    "err_retry_params": ("begin retry\n* * G,1h,1m,0.5\n",
                         ["primary_hostname"], []),
    "err_retry_semicolon": ("begin retry\n* * F,1h,1m F,2h,1h\n",
                            ["primary_hostname"], []),
    "err_retry_comma": ("begin retry\n* * F 1h\n", ["primary_hostname"], []),
    "err_retry_missing_error": ("begin retry\n*\n", ["primary_hostname"], []),
    "err_retry_refused": ("begin retry\n* refused_X F,1h,1m\n",
                          ["primary_hostname"], []),
    "err_retry_rcpt4": ("begin retry\n* rcpt_4a F,1h,1m\n",
                        ["primary_hostname"], []),
    "err_rewrite_flag": ("begin rewrite\na@b c@d z\n", ["primary_hostname"],
                         []),
    "err_rewrite_noreplacement": ("begin rewrite\na@b\n",
                                  ["primary_hostname"], []),
    "err_rewrite_S": ("begin rewrite\na@b c@d S\n", ["primary_hostname"], []),
    "err_local_scan": ("begin local_scan\n", ["primary_hostname"], []),
}

INCLUDED = "qualify_domain = from.include\n"

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", re.M)


def normalize(text: str) -> str:
    """Remove what differs between runs and machines from an answer."""
    text = text.replace(str(ROOT), "<ROOT>")
    text = _STAMP.sub("", text)
    lines = [ln for ln in text.split("\n")
             if not ln.startswith("LOG: ")
             and not ln.startswith("exim: could not open panic log")]
    lines = [ln.lstrip() if ln.lstrip().startswith("Exim configuration error")
             else ln for ln in lines]
    return "\n".join(lines)


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader_matches_exim(case: str, workdir) -> None:
    text, bp_args, extra = CASES[case]
    # Exim gives up root after reading a -C file: its paniclog must be
    # writable by the exim user, or it repeats the error on stderr.
    for sub in ("log", "spool"):
        (workdir / sub).mkdir()
        (workdir / sub).chmod(0o777)
    (workdir / "inc1.conf").write_text(INCLUDED)
    conf = workdir / "test.conf"
    conf.write_text((HEAD + text).replace("@DIR@", str(workdir)))
    args = ["-C", str(conf)] + extra + ["-bP"] + bp_args
    exim = exim_run("reader", case, args, normalize=normalize)
    ours = eximpy_run(args)
    assert (ours.rc, normalize(ours.out), normalize(ours.err)) == \
        (exim.rc, exim.out, exim.err)
