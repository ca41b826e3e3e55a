"""The table of expansion variables ($name) and how each gets its value.

DESCRIPTION
    KNOWN is every variable name Exim 4.96 (Debian build) knows, with the
    value it has when nothing has set it ("" for strings, "0"/"-1" for
    integers, "no" for booleans), as shown by ``exim -be``.  Values come, in
    order, from: ExpandContext.variables (filled by the receiver, ACLs,
    routers, transports), the context's own stores ($acl_c*, $acl_m*, $r_*,
    $auth<n>, $regex<n>, $value, $item, $runrc ...), then values computed
    here (time of day, pid, configuration-derived names).

SEE ALSO
    spec chapter "String expansions", section "Expansion variables".
"""
from __future__ import annotations

import os
import time

_INT0 = "0"

# name -> default value (None: computed by _computed()).
KNOWN: dict[str, str | None] = {}

for _n in ("acl_arg1 acl_arg2 acl_arg3 acl_arg4 acl_arg5 acl_arg6 acl_arg7 acl_arg8 acl_arg9 "
           "acl_verify_message address_data address_file address_pipe authenticated_fail_id "
           "authenticated_id authenticated_sender bounce_recipient callout_address csa_status "
           "dkim_algo dkim_canon_body dkim_canon_headers dkim_copiedheaders dkim_cur_signer "
           "dkim_domain dkim_headernames dkim_identity dkim_key_notes dkim_selector dkim_signers "
           "dkim_verify_reason dkim_verify_status dnslist_domain dnslist_matched dnslist_text "
           "dnslist_value domain domain_data event_data event_name headers_added home host "
           "host_address host_data interface_address item ldap_dn local_part local_part_data "
           "local_part_prefix local_part_prefix_v local_part_suffix local_part_suffix_v "
           "local_scan_data lookup_dnssec_authenticated mailstore_basename malware_name "
           "message_body message_body_end message_exim_id message_headers message_headers_raw "
           "message_id mime_anomaly_text mime_boundary mime_charset mime_content_description "
           "mime_content_disposition mime_content_id mime_content_transfer_encoding "
           "mime_content_type mime_decoded_filename mime_filename original_domain "
           "original_local_part parent_domain parent_local_part proxy_external_address "
           "proxy_local_address prvscheck_address prvscheck_keynum prvscheck_result queue_name "
           "queue_size received_for received_ip_address received_protocol recipient_data "
           "recipient_verify_failure recipients regex_match_string reply_address return_path "
           "router_name self_hostname sender_address sender_address_data sender_address_domain "
           "sender_address_local_part sender_data sender_fullhost sender_helo_name "
           "sender_host_address sender_host_authenticated sender_host_name sender_ident "
           "sender_rate sender_rate_limit sender_rate_period sender_rcvhost sender_verify_failure "
           "sending_ip_address smtp_active_hostname smtp_command smtp_command_argument "
           "smtp_command_history smtp_notquit_reason spam_action spam_bar spam_report spam_score "
           "spam_score_int spf_header_comment spf_received spf_result spf_smtp_comment "
           "srs_recipient thisaddress tls_cipher tls_in_cipher tls_in_cipher_std tls_in_ourcert "
           "tls_in_peercert tls_in_peerdn tls_in_sni tls_in_ver tls_out_cipher tls_out_cipher_std "
           "tls_out_ourcert tls_out_peercert tls_out_peerdn tls_out_sni tls_out_ver tls_peerdn "
           "tls_sni transport_name value verify_mode warn_message_delay warn_message_recipient "
           "warn_message_recipients warnmsg_delay warnmsg_recipient warnmsg_recipients").split():
    KNOWN[_n] = ""

for _n in ("acl_narg authentication_failed av_failed body_linecount body_zerocount "
           "dkim_created dkim_key_length dkim_key_nosubdomains dkim_key_testing event_defer_errno "
           "host_lookup_deferred host_lookup_failed host_port inode localhost_number "
           "max_received_linelength message_age message_body_size message_linecount message_size "
           "mime_anomaly_level mime_content_size mime_is_coverletter mime_is_multipart "
           "mime_is_rfc822 proxy_external_port proxy_local_port rcpt_count rcpt_defer_count "
           "rcpt_fail_count received_count received_time recipients_count runrc sender_host_port "
           "smtp_count_at_connection_start tls_bits tls_certificate_verified tls_in_bits "
           "tls_in_certificate_verified tls_in_ocsp tls_in_resumption tls_out_bits "
           "tls_out_certificate_verified tls_out_ocsp tls_out_resumption "
           "tls_out_tlsa_usage").split():
    KNOWN[_n] = _INT0

for _n in ("interface_port received_port sending_port mime_part_count").split():
    KNOWN[_n] = "-1"

for _n in ("message_smtputf8 prdr_requested proxy_session sender_helo_dnssec "
           "sender_host_dnssec spf_result_guessed tls_out_dane").split():
    KNOWN[_n] = "no"

KNOWN.update({
    "dkim_bodylength": "9999999999999", "dkim_expires": "9999999999999",
    "dkim_key_granularity": "*", "dkim_key_srvtype": "*",
    "bounce_return_size_limit": None, "return_size_limit": None,
    "local_user_gid": "4294967295", "local_user_uid": "4294967295",
    "spf_guess": "v=spf1 a/24 mx/24 ptr ?all",
})

for _n in ("caller_gid caller_uid compile_date compile_number config_dir config_file "
           "exim_gid exim_path exim_uid exim_version initial_cwd load_average log_inodes "
           "log_space originator_gid originator_uid pid primary_hostname qualify_domain "
           "qualify_recipient spool_directory spool_inodes spool_space tod_bsdinbox tod_epoch "
           "tod_epoch_l tod_full tod_log tod_logfile tod_zone tod_zulu version_number").split():
    KNOWN[_n] = None

# Variables known only while a filter runs ($n0..$n9, $sn0..$sn9).
FILTER_VARS = {f"n{i}" for i in range(10)} | {f"sn{i}" for i in range(10)}

AUTH_VARS = 4
REGEX_VARS = 9

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
           "Nov", "Dec")


def is_known(name: str) -> bool:
    """True if ``name`` is a variable Exim knows (static check at parse)."""
    if name in KNOWN or name in FILTER_VARS:
        return True
    if (name.startswith("acl_c") or name.startswith("acl_m")) and not (
            len(name) > 5 and name[5].isalpha()):
        return True
    if name.startswith("r_"):
        return True
    if name.startswith("auth"):
        t = name[4:]
        if t.isdigit() and 0 < int(t) <= AUTH_VARS:
            return True
    if name.startswith("regex"):
        t = name[5:]
        if t.isdigit() and 0 < int(t) <= REGEX_VARS:
            return True
    return False


def unknown_suffix(name: str) -> str:
    """Exim's extra words after "unknown variable name" for acl_ names."""
    if name.startswith("acl_"):
        if len(name) > 4 and name[4] in "cm":
            if len(name) > 5 and name[5].isalpha():
                return (" (6th character of a user-defined ACL variable must be a "
                        "digit or underscore)")
            return " (strict_acl_vars is set)"
        return " (user-defined ACL variables must start acl_c or acl_m)"
    return ""


def tz_offset(t: float) -> int:
    """Local time zone offset in seconds east of UTC at time t."""
    lt = time.localtime(t)
    return lt.tm_gmtoff


def tod(kind: str, t: float | None = None) -> str:
    """Exim's tod_stamp() formats."""
    if t is None:
        t = time.time()
    it = int(t)
    lt = time.localtime(it)
    off = lt.tm_gmtoff
    sign = "-" if off < 0 else "+"
    off = abs(off) // 60
    zone = f"{sign}{off // 60:02d}{off % 60:02d}"
    if kind == "tod_log":
        return time.strftime("%Y-%m-%d %H:%M:%S", lt)
    if kind == "tod_full":
        return (f"{_DAYS[lt.tm_wday]}, {lt.tm_mday:02d} {_MONTHS[lt.tm_mon - 1]} "
                f"{lt.tm_year} {lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {zone}")
    if kind == "tod_bsdinbox":
        return (f"{_DAYS[lt.tm_wday]} {_MONTHS[lt.tm_mon - 1]} {lt.tm_mday:2d} "
                f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {lt.tm_year}")
    if kind == "tod_epoch":
        return str(it)
    if kind == "tod_epoch_l":
        return str(int(t * 1000000))
    if kind == "tod_zone":
        return zone
    if kind == "tod_zulu":
        return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(it))
    if kind == "tod_logfile":
        return time.strftime("%Y%m%d", lt)
    raise KeyError(kind)


def statvfs_values(path: str) -> tuple[str, str]:
    """(space in KiB available, inodes available) of the file system."""
    try:
        st = os.statvfs(path)
    except OSError:
        return "-1", "-1"
    return str(st.f_bavail * st.f_frsize // 1024), str(st.f_favail)
