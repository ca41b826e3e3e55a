"""Property tests: the expander only ever fails with ExpansionError or
ExpansionForcedFail, whatever the input (no other exception escapes the
parser or the evaluator, which is called here without expand_string()'s
last-resort guard)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st, HealthCheck

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand import ExpandContext, Tainted
from eximpy.expand import evaluate as E
from eximpy.expand.parser import parse

PIECES = ["$", "{", "}", "\\", ":", ";", "<", ">", "=", "!", "_", "-", " ", "\\N", "a",
          "0", "1", "9", "x", "@", "*", "^", ".", ",", "\"", "if", "eq", "lookup", "uc",
          "lc", "sg", "extract", "def", "and", "or", "match", "lsearch", "partial-",
          "fail", "item", "value", "h_", "acl_c0", "primary_hostname", "length_",
          "substr", "map", "filter", "reduce", "sort", "eval", "listextract", "tr",
          "hash", "nhash", "json", "inlist", "forall", "bool", "crypteq", "mask",
          "base64d", "addresses", "quote_", "sha2_", "local_part", "${", "}{",
          "match_domain", "match_ip", "+", "/", "(", ")", "[", "]", "?", "|", "&"]

text = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


def _ctx() -> ExpandContext:
    ctx = ExpandContext(variables={"domain": Tainted("example.org"),
                                   "local_part": Tainted("user")},
                        headers=[("Subject", Tainted(" hello\n"))])
    ctx.expand_forbid = (E.FORBID_RUN | E.FORBID_READSOCK | E.FORBID_PERL
                         | E.FORBID_DLFUNC | E.FORBID_READFILE)
    return ctx


@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text)
def test_parser_and_evaluator_raise_only_expansion_errors(s):
    node = parse(s)
    try:
        r = node.ev(_ctx())
    except (ExpansionError, ExpansionForcedFail):
        return
    assert isinstance(r, str)


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_unicode(s):
    try:
        r = parse(s).ev(_ctx())
    except (ExpansionError, ExpansionForcedFail):
        return
    assert isinstance(r, str)


RX_PIECES = list("ab()[]{}\\*+?|^$.:-=!<>'PpKkgGxXoQEcRhHvVNCJ0123456789,#") + [
    "(?", "(*", "\\p{", "[:", ":]", "(?<", "(?'", "\\g{", "\\x{", "(?|", "(?(", "(?<=",
    "(?<!", "\\Q", "\\E", "(*SKIP)", "(*UTF)", "{,", "{2,1}", "[[:", "[[:^"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(RX_PIECES), min_size=1, max_size=12).map("".join))
def test_regex_translation_raises_only_expansion_errors(p):
    """Any pattern either compiles (re or regex) and can be searched, or is
    an ExpansionError with PCRE2's wording."""
    import warnings
    from eximpy.expand.regex import compile_pcre
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rx = compile_pcre(p)
        except ExpansionError as e:
            assert str(e).startswith("regular expression error in ")
            return
        rx.search("ab(c)a1b2-=")
