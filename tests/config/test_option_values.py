"""Every option type's parsing, printing and error texts, against real Exim.

Each case is one main-section line.  Real Exim reads it (`exim -C f -bP
item`); eximpy's OptionStore reads the same line directly (no reader
involved), and must print the same -bP line or raise ConfigError with the
same message.  Exim's answers are kept in tests/golden/config/values-*.
"""
from __future__ import annotations

import pytest

from eximpy.config.main_options import new_main_store
from eximpy.errors import ConfigError, SourcePos
from config_support import BASE, config_error, normalize, write_conf
from oracle import exim_run

CASES: list[tuple[str, str, str]] = [
    # strings: verbatim, quoted with escapes, quoting errors
    ("str_plain", "bi_command = a\\nb\\\\c\ttab", "bi_command"),
    ("str_quoted", 'bi_command = "[\\007][\\010][\\t][\\n][\\x1b][\\033][\\177]'
     '[\\200][\\377][\\x7e][\\0777][\\x41x][\\"][\\a][\\e][\\q]"', "bi_command"),
    ("str_quote_missing", 'bi_command = "abc', "bi_command"),
    ("str_quote_only", 'bi_command = "', "bi_command"),
    ("str_quote_extra", 'bi_command = "abc" x', "bi_command"),
    ("str_quote_comment", 'bi_command = "abc" #c', "bi_command"),
    ("str_empty_quoted", 'bi_command = ""', "bi_command"),
    ("str_escaped_endquote", 'bi_command = "a\\"', "bi_command"),
    ("str_nul", 'bi_command = "a\\0b"', "bi_command"),
    ("str_xg", 'bi_command = "a\\xgb"', "bi_command"),
    ("str_utf8", 'bi_command = "\u00e9t\u00e9"', "bi_command"),
    ("str_utf8_plain", "bi_command = \u00e9t\u00e9", "bi_command"),
    ("str_spaces", "bi_command =    a  b", "bi_command"),
    ("str_nospace", "bi_command=x", "bi_command"),
    ("str_empty", "bi_command =", "bi_command"),
    ("str_default", "bi_command = x", "acl_smtp_data_prdr"),
    # integers (opt_int)
    ("int_hex", "check_log_inodes = 0x10", "check_log_inodes"),
    ("int_octal", "check_log_inodes = 010", "check_log_inodes"),
    ("int_k", "check_log_inodes = 2k", "check_log_inodes"),
    ("int_M", "check_log_inodes = 3M", "check_log_inodes"),
    ("int_G", "check_log_inodes = 1G", "check_log_inodes"),
    ("int_2G", "check_log_inodes = 2G", "check_log_inodes"),
    ("int_T0", "check_log_inodes = 0T", "check_log_inodes"),
    ("int_T1", "check_log_inodes = 1t", "check_log_inodes"),
    ("int_max", "check_log_inodes = 2147483647", "check_log_inodes"),
    ("int_overflow", "check_log_inodes = 2147483648", "check_log_inodes"),
    ("int_min", "check_log_inodes = -2147483648", "check_log_inodes"),
    ("int_underflow", "check_log_inodes = -2147483649", "check_log_inodes"),
    ("int_huge", "check_log_inodes = 99999999999999999999", "check_log_inodes"),
    ("int_empty", "check_log_inodes =", "check_log_inodes"),
    ("int_junk", "check_log_inodes = 12x", "check_log_inodes"),
    ("int_junk_comment", "check_log_inodes = 12 # no", "check_log_inodes"),
    ("int_08", "check_log_inodes = 08", "check_log_inodes"),
    ("int_0x", "check_log_inodes = 0x", "check_log_inodes"),
    ("int_0xg", "check_log_inodes = 0xg", "check_log_inodes"),
    ("int_plus", "check_log_inodes = +12", "check_log_inodes"),
    ("int_kk", "check_log_inodes = 12kk", "check_log_inodes"),
    ("int_space_suffix", "check_log_inodes = 5 K", "check_log_inodes"),
    ("int_word", "check_log_inodes = many", "check_log_inodes"),
    # integers printed with K/M (opt_mkint)
    ("mkint_1G", "bounce_return_size_limit = 1G", "bounce_return_size_limit"),
    ("mkint_neg", "bounce_return_size_limit = -1024", "bounce_return_size_limit"),
    ("mkint_1025", "bounce_return_size_limit = 1025", "bounce_return_size_limit"),
    ("mkint_1M", "bounce_return_size_limit = 1048576", "bounce_return_size_limit"),
    ("mkint_0", "bounce_return_size_limit = 0", "bounce_return_size_limit"),
    ("mkint_hex", "bounce_return_size_limit = 0x400", "bounce_return_size_limit"),
    ("mkint_alias", "return_size_limit = 5M", "bounce_return_size_limit"),
    # kilobyte counts (opt_Kint, 64-bit in 4.96)
    ("kint_1", "check_spool_space = 1", "check_spool_space"),
    ("kint_1024", "check_spool_space = 1024", "check_spool_space"),
    ("kint_hex", "check_spool_space = 0x10", "check_spool_space"),
    ("kint_3T", "check_spool_space = 3T", "check_spool_space"),
    ("kint_neg", "check_spool_space = -5", "check_spool_space"),
    ("kint_1G", "check_spool_space = 1048576", "check_spool_space"),
    ("kint_frac", "check_spool_space = 1.5", "check_spool_space"),
    ("kint_overflow", "check_spool_space = 9007199254740992M", "check_spool_space"),
    ("kint_huge", "check_spool_space = 99999999999999999999", "check_spool_space"),
    ("kint_big", "check_spool_space = 4611686018427387904", "check_spool_space"),
    ("kint_0", "check_spool_space = 0", "check_spool_space"),
    ("kint_2m", "check_spool_space = 2m", "check_spool_space"),
    # fixed point
    ("fixed_4dec", "deliver_queue_load_max = 1.2345", "deliver_queue_load_max"),
    ("fixed_105", "deliver_queue_load_max = 1.05", "deliver_queue_load_max"),
    ("fixed_int", "deliver_queue_load_max = 3", "deliver_queue_load_max"),
    ("fixed_neg", "deliver_queue_load_max = -1", "deliver_queue_load_max"),
    ("fixed_wrap", "deliver_queue_load_max = 3000000", "deliver_queue_load_max"),
    ("fixed_dot", "deliver_queue_load_max = 2.", "deliver_queue_load_max"),
    ("fixed_leading_dot", "deliver_queue_load_max = .5", "deliver_queue_load_max"),
    ("fixed_junk", "deliver_queue_load_max = 2.5x", "deliver_queue_load_max"),
    ("fixed_zero", "deliver_queue_load_max = 0", "deliver_queue_load_max"),
    ("fixed_2050", "deliver_queue_load_max = 2.050", "deliver_queue_load_max"),
    ("fixed_unset", "bi_command = x", "queue_only_load"),
    # times
    ("time_1h", "auto_thaw = 1h", "auto_thaw"),
    ("time_all", "auto_thaw = 1w2d3h4m5s", "auto_thaw"),
    ("time_90m", "auto_thaw = 90m", "auto_thaw"),
    ("time_repeat", "auto_thaw = 1h1h", "auto_thaw"),
    ("time_0s", "auto_thaw = 0s", "auto_thaw"),
    ("time_nounit", "auto_thaw = 5", "auto_thaw"),
    ("time_badunit", "auto_thaw = 1x", "auto_thaw"),
    ("time_space", "auto_thaw = 1h 2m", "auto_thaw"),
    ("time_empty", "auto_thaw =", "auto_thaw"),
    ("time_frac", "auto_thaw = 1.5s", "auto_thaw"),
    ("time_big", "auto_thaw = 5000w", "auto_thaw"),
    # time lists
    ("tl_ten", "delay_warning = 1s:2s:3s:4s:5s:6s:7s:8s:9s:10s", "delay_warning"),
    ("tl_eleven", "delay_warning = 1s:2s:3s:4s:5s:6s:7s:8s:9s:10s:11s",
     "delay_warning"),
    ("tl_zero_first", "delay_warning = 0s:2s", "delay_warning"),
    ("tl_order", "delay_warning = 3s : 2s", "delay_warning"),
    ("tl_equal", "delay_warning = 3s : 3s", "delay_warning"),
    ("tl_spaces", "delay_warning = 3s : 4s ", "delay_warning"),
    ("tl_empty", "delay_warning =", "delay_warning"),
    ("tl_bad", "delay_warning = 1h:x", "delay_warning"),
    ("tl_trailing", "delay_warning = 1h:", "delay_warning"),
    # time or expansion (smtp_receive_timeout)
    ("tx_expand", "smtp_receive_timeout = ${if true{1m}}", "smtp_receive_timeout"),
    ("tx_time", "smtp_receive_timeout = 30s", "smtp_receive_timeout"),
    ("tx_bad", "smtp_receive_timeout = 1x", "smtp_receive_timeout"),
    # booleans
    ("bool_bare", "queue_only", "queue_only"),
    ("bool_true", "queue_only = TRUE", "queue_only"),
    ("bool_no", "queue_only = no", "queue_only"),
    ("bool_yes_spaces", "queue_only   =   yes  ", "queue_only"),
    ("bool_maybe", "queue_only = maybe", "queue_only"),
    ("bool_two_words", "queue_only = yes no", "queue_only"),
    ("bool_comment", "queue_only = yes #x", "queue_only"),
    ("bool_no_value", "no_queue_only = yes", "queue_only"),
    ("bool_no_eq", "queue_only 1", "queue_only"),
    ("bool_not", "not_queue_only", "queue_only"),
    ("bool_no_prefix", "no_tcp_nodelay", "tcp_nodelay"),
    ("bool_empty_value", "queue_only =", "queue_only"),
    ("bool_number", "queue_only = 1", "queue_only"),
    ("bool_hide", "hide queue_only", "queue_only"),
    # users, groups and their lists
    ("uid_name", "exim_user = mail", "exim_user"),
    ("uid_number", "exim_user = 8", "exim_user"),
    ("uid_unknown", "exim_user = nosuchuserxyz", "exim_user"),
    ("uid_sets_group", "system_filter_user = mail", "system_filter_group"),
    ("uid_numeric_group", "system_filter_user = 8", "system_filter_group"),
    ("uid_unset", "bi_command = x", "system_filter_user"),
    ("gid_name", "exim_group = mail", "exim_group"),
    ("gid_number", "exim_group = 12", "exim_group"),
    ("gid_unknown", "exim_group = nosuchgroupxyz", "exim_group"),
    ("uidlist", "never_users = root:mail:65534", "never_users"),
    ("uidlist_spaces", "never_users = root : daemon", "never_users"),
    ("uidlist_unknown", "never_users = root:nosuchuserxyz", "never_users"),
    ("uidlist_empty", "never_users =", "never_users"),
    ("uidlist_sep", "never_users = <; root ; mail", "never_users"),
    ("uidlist_double_colon", "never_users = root::mail", "never_users"),
    ("uidlist_trailing", "never_users = root:", "never_users"),
    ("gidlist", "admin_groups = adm:12", "admin_groups"),
    ("gidlist_unknown", "admin_groups = nosuchgroupxyz", "admin_groups"),
    # line-level errors
    ("unknown", "foo = 1", "bi_command"),
    ("unknown_no", "no_foo", "bi_command"),
    ("unknown_hide", "hide foo = 1", "bi_command"),
    ("hide_hide", "hide hide queue_only", "bi_command"),
    ("unknown_long", "a" * 70 + " = 1", "bi_command"),
    ("negated_nonbool", "no_auto_thaw = 1h", "auto_thaw"),
    ("missing_eq", "auto_thaw 5", "auto_thaw"),
    ("data_missing", "auto_thaw", "auto_thaw"),
    ("hide_string", "hide bi_command = secret", "bi_command"),
    ("hide_time", "hide auto_thaw = 1h", "auto_thaw"),
    ("alias_port", "daemon_smtp_port = 2525", "daemon_smtp_ports"),
    ("alias_hidden", "daemon_smtp_port = 2525", "daemon_smtp_port"),
    ("unknown_item", "bi_command = x", "nosuchoption"),
]

TWICE = [
    ("uid_keeps_group", ["exim_group = daemon", "exim_user = mail"], "exim_group"),
    ("uid_then_group", ["system_filter_user = mail", "system_filter_group = 0"],
     "system_filter_group"),
    ("twice_time", ["auto_thaw = 1h", "auto_thaw = 2h"], "auto_thaw"),
    ("twice_bool", ["queue_only", "no_queue_only"], "queue_only"),
    ("twice_alias", ["daemon_smtp_port = 1", "daemon_smtp_ports = 2"],
     "daemon_smtp_ports"),
    ("group_after_user", ["system_filter_user = mail",
                          "system_filter_group = daemon"], "system_filter_group"),
]


def _exim(case: str, lines: list[str], item: str):
    path = write_conf("values-" + case, BASE + "".join(l + "\n" for l in lines))
    return path, exim_run("config", "values-" + case, ["-C", path, "-bP", item],
                          normalize=normalize)


def _ours(path: str, lines: list[str], item: str) -> tuple[int, str, str]:
    store = new_main_store()
    base = BASE.splitlines()
    try:
        for n, line in enumerate(base + lines, 1):
            store.set_from_line(line, SourcePos(path, n))
    except ConfigError as e:
        return 1, "", e.exim_text() + "\n"
    return (0 if store.table.get(item) else 1), store.format(item) + "\n", ""


def _compare(case: str, lines: list[str], item: str) -> None:
    path, exim = _exim(case, lines, item)
    rc, out, err = _ours(path, lines, item)
    if not config_error(exim.err):
        assert (rc, out) == (exim.rc, exim.out), err
    else:
        assert rc == 1, f"eximpy accepted what Exim refused: {exim.err}"
        assert err == config_error(exim.err) + "\n"


@pytest.mark.parametrize("case,line,item", CASES, ids=[c[0] for c in CASES])
def test_value_like_exim(case: str, line: str, item: str) -> None:
    _compare(case, [line], item)


@pytest.mark.parametrize("case,lines,item", TWICE, ids=[c[0] for c in TWICE])
def test_two_lines_like_exim(case: str, lines: list[str], item: str) -> None:
    _compare(case, lines, item)


def test_every_type_is_covered() -> None:
    """The cases above (and test_driver_values) cover every OptType."""
    from eximpy.config.main_options import MAIN_OPTIONS
    from eximpy.config.options import OptType
    seen = set()
    for _case, line, _item in CASES:
        name = line.replace("hide ", "").split("=")[0].strip()
        for prefix in ("no_", "not_"):
            name = name[len(prefix):] if name.startswith(prefix) else name
        spec = MAIN_OPTIONS.get(name)
        if spec is not None:
            seen.add(spec.type)
    driver_only = {OptType.OCTINT, OptType.EXPAND_BOOL, OptType.EXPAND_UID,
                   OptType.EXPAND_GID, OptType.BOOL_VERIFY, OptType.REWRITE,
                   OptType.BOOL_SET}
    assert set(OptType) - seen <= driver_only
