"""Configurations and dialogues for the ACL differential tests.

Each case is (name, acl_text, main_extra, dialogue).  ``acl_text`` is the
body of `begin acl`; its ACL names r, m, c, h, p, d, v, q are hooked to
acl_smtp_rcpt, _mail, _connect, _helo, _predata, _data, _vrfy, _quit when
defined.  Every case is run from several source addresses.
"""
from __future__ import annotations

IPS = ("127.0.0.1", "10.1.2.3", "192.0.2.5")

# Dialogues: lists of SMTP command lines (DATA text included).
RCPTS = ("postmaster@example.org", "info@example.org", "office@example.com",
         "x@foo.bar", "bad!lp@example.org", "Mixed@Example.Org")


def dialogue(sender: str = "a@b.c", rcpts=RCPTS, data: bool = True,
             helo: str = "EHLO client.example") -> str:
    lines = [helo, f"MAIL FROM:<{sender}>"]
    lines += [f"RCPT TO:<{r}>" for r in rcpts]
    if data:
        lines += ["DATA", "Subject: test", "From: a@b.c", "To: info@example.org",
                  "", "body line", "."]
    lines.append("QUIT")
    return "".join(line + "\r\n" for line in lines)


D = dialogue()
D_NULL = dialogue(sender="")
D_TWO = dialogue(rcpts=("info@example.org", "office@example.org",
                        "x@example.com"))
D_TWO_DATA = D_TWO + ""
D_VRFY = ("HELO c\r\nVRFY postmaster@example.org\r\nVRFY x@foo.bar\r\n"
          "QUIT\r\n")
D_RSET = ("EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<info@example.org>\r\n"
          "RSET\r\nMAIL FROM:<z@y.x>\r\nRCPT TO:<office@example.com>\r\n"
          "RCPT TO:<info@example.org>\r\nQUIT\r\n")

CASES: list[tuple[str, str, str, str]] = []


def case(name: str, acl: str, extra: str = "", dlg: str = D) -> None:
    CASES.append((name, acl, extra, dlg))


# --- verbs ---------------------------------------------------------------
case("accept_all", "r:\n  accept\n")
case("deny_all", "r:\n  deny\n")
case("implicit_deny", "r:\n  warn\n")
case("empty_acl_rcpt", "r:\n  accept domains = nomatch\n")
case("defer_msg", "r:\n  defer message = try later $local_part\n  accept\n")
case("deny_msg_code", "r:\n  deny local_parts = info\n       message = 552 5.2.2 over quota\n  accept\n")
case("deny_msg_multiline",
     "r:\n  deny domains = example.com\n       message = first line\\nsecond line\\nthird\n  accept\n")
case("require_simple", "r:\n  require domains = +local_domains\n          message = relay not permitted\n  accept\n")
case("discard_rcpt", "r:\n  discard local_parts = info\n          log_message = discarded $local_part\n  accept\n")
case("discard_mail", "m:\n  discard senders = a@b.c\n  accept\nr:\n  accept\n")
case("drop_rcpt", "r:\n  drop domains = foo.bar\n       message = go away\n  accept\n")
case("drop_mail", "m:\n  drop hosts = 10.0.0.0/8\n  accept\nr:\n  accept\n")
case("warn_only", "r:\n  warn log_message = seen $local_part@$domain\n  accept\n")
case("warn_header", "r:\n  warn message = X-Checked: $local_part\n  accept\nd:\n  accept\n")
case("warn_nonheader", "r:\n  warn message = just text\n  accept\n")
case("warn_helo_message", "h:\n  warn message = hello\n  accept\nr:\n  accept\n")
case("endpass_accept",
     "r:\n  accept domains = +local_domains\n         endpass\n         local_parts = postmaster : info\n  accept\n")
case("endpass_discard",
     "r:\n  discard domains = example.com\n          endpass\n          local_parts = nobody\n  accept\n")
case("accept_message", "r:\n  accept message = 250 fine $local_part\n")
case("deny_then_accept",
     "r:\n  deny local_parts = ^.*[@%!/|] : ^\\\\.\n       message = restricted characters in address\n  accept\n")
case("defer_log_message",
     "r:\n  defer domains = foo.bar\n        log_message = lm $domain\n  accept\n")
case("require_then_deny",
     "r:\n  require hosts = 127.0.0.1 : 10.0.0.0/8\n  deny domains = example.com\n  accept\n")

# --- lists ----------------------------------------------------------------
case("domains_named", "r:\n  accept domains = +local_domains\n  deny\n")
case("domains_named_twice",
     "r:\n  warn domains = +local_domains : +local_domains\n  require domains = +local_domains\n  accept\n")
case("domains_negated", "r:\n  accept domains = !example.com : *\n")
case("domains_regex", "r:\n  accept domains = ^ex.*\\\\.org$\n")
case("domains_wild", "r:\n  accept domains = *.org\n")
case("domains_lsearch", "r:\n  accept domains = lsearch;DIR/domains\n")
case("domains_partial", "r:\n  accept domains = partial-lsearch;DIR/domains\n")
case("domains_file", "r:\n  accept domains = DIR/domainfile\n")
case("domains_at", "r:\n  accept domains = @ : example.org\n")
case("domains_sep", "r:\n  accept domains = <; example.com ; example.org\n")
case("domains_expanded", "r:\n  accept domains = ${if eq{$local_part}{info}{example.org}{none}}\n")
case("domains_data", "r:\n  warn domains = lsearch;DIR/domains\n       logwrite = data is $domain_data\n  accept\n")
case("local_parts_list", "r:\n  accept local_parts = postmaster : info : ^of\n")
case("local_parts_caseful",
     "r:\n  accept local_parts = +caseful : Mixed\n  deny\n")
case("local_parts_lsearch", "r:\n  accept local_parts = lsearch;DIR/users\n")
case("recipients_list", "r:\n  accept recipients = info@example.org : *@example.com : ^post\n")
case("recipients_lsearch", "r:\n  accept recipients = lsearch;DIR/addrs\n")
case("senders_list", "m:\n  deny senders = *@b.c\n  accept\nr:\n  accept\n")
case("senders_null", "m:\n  accept senders = :\n  deny\nr:\n  accept\n", dlg=D_NULL)
case("senders_regex", "r:\n  accept senders = ^a@\n")
case("senders_named", "r:\n  accept senders = +good_senders\n")
case("sender_domains", "r:\n  accept sender_domains = b.c : x.y\n")
case("hosts_cidr", "r:\n  accept hosts = 10.0.0.0/8\n  deny\n")
case("hosts_named", "r:\n  accept hosts = +relay_from_hosts\n  accept domains = +local_domains\n")
case("hosts_named_cached",
     "r:\n  warn hosts = +relay_from_hosts\n  accept hosts = +relay_from_hosts\n  accept domains = +local_domains\n")
case("hosts_negated", "r:\n  accept hosts = !127.0.0.1 : 0.0.0.0/0\n  deny\n")
case("hosts_star", "r:\n  accept hosts = *\n")
case("hosts_empty", "r:\n  accept hosts = :\n  deny\n")
case("hosts_net_lsearch", "r:\n  accept hosts = net24-lsearch;DIR/nets\n  deny\n")
case("hosts_iplsearch", "r:\n  accept hosts = net-iplsearch;DIR/ipl\n  deny\n")

# --- conditions ------------------------------------------------------------
case("condition_true", "r:\n  accept condition = ${if eq{$local_part}{info}}\n  deny\n")
case("condition_values",
     "r:\n  deny condition = ${if eq{$local_part}{info}{yes}{no}}\n  deny condition = 0\n  accept condition = true\n")
case("condition_invalid", "r:\n  accept condition = maybe\n")
case("condition_expand_fail",
     "r:\n  accept condition = ${lookup{x}lsearch{/nonexistent/file}}\n")
case("condition_forced_fail", "r:\n  accept condition = ${if eq{1}{1}{fail}fail}\n  deny\n")
case("authenticated_none", "r:\n  accept authenticated = *\n  deny\n")
case("encrypted_none", "r:\n  accept encrypted = *\n  deny\n")
case("set_vars",
     "m:\n  warn set acl_c0 = conn\n       set acl_m_x = msg\n  accept\nr:\n  accept condition = ${if eq{$acl_c0$acl_m_x}{connmsg}}\n")
case("set_rset", "m:\n  warn set acl_m_s = $sender_address\n  accept\nr:\n  accept condition = ${if eq{$acl_m_s}{a@b.c}}\n", dlg=D_RSET)
case("acl_nested",
     "r:\n  accept acl = sub\n  deny\nsub:\n  accept domains = example.org\n  deny\n")
case("acl_nested_negated",
     "r:\n  deny !acl = sub\n  accept\nsub:\n  accept local_parts = info\n")
case("acl_nested_discard", "r:\n  deny acl = sub\n  accept\nsub:\n  discard\n")
case("acl_nested_discard_ok", "r:\n  accept acl = sub\nsub:\n  discard domains = example.com\n  accept\n")
case("acl_nested_drop", "r:\n  accept acl = sub\nsub:\n  drop domains = foo.bar\n  accept\n")
case("acl_args",
     "r:\n  accept acl = sub $local_part \"two words\"\nsub:\n  accept condition = ${if and{{eq{$acl_narg}{2}}{eq{$acl_arg1}{info}}}}\n")
case("acl_deep", "r:\n  accept acl = a1\na1:\n  accept acl = a2\na2:\n  accept acl = a3\na3:\n  accept domains = example.org\n")
case("acl_loop", "r:\n  accept acl = r\n")
case("acl_unknown_inline", "r:\n  accept acl = nosuchacl\n")
case("inline_rcpt", "", extra="acl_smtp_rcpt = accept domains = example.org\n")
case("inline_bad", "", extra="acl_smtp_rcpt = bogus verb\n")
case("file_acl", "", extra="acl_smtp_rcpt = DIR/aclfile\n")
case("file_acl_missing", "", extra="acl_smtp_rcpt = DIR/nosuchfile\n")
case("expanded_acl_name", "r1:\n  accept\nr2:\n  deny message = r2 says no\n",
     extra="acl_smtp_rcpt = ${if eq{$sender_host_address}{127.0.0.1}{r1}{r2}}\n")
case("unset_rcpt_acl", "m:\n  accept\n", extra="acl_smtp_rcpt =\n")

# --- modifiers ----------------------------------------------------------------
case("logwrite_targets",
     "r:\n  warn logwrite = :main,reject: both $local_part\n  warn logwrite = :panic: p $local_part\n  warn logwrite = plain\n  accept\n")
case("logwrite_bad_target", "r:\n  warn logwrite = :bogus: text\n  accept\n")
case("log_reject_target", "r:\n  deny domains = foo.bar\n       log_reject_target = main\n  accept\n")
case("add_header_rcpt", "r:\n  accept add_header = X-Rcpt: $local_part\nd:\n  accept\n")
case("add_header_helo", "h:\n  accept add_header = X-Bad: y\nr:\n  accept\n")
case("remove_header", "r:\n  accept remove_header = Subject\nd:\n  accept\n")
case("delay_mod", "r:\n  accept delay = 1s\n")
case("delay_bad", "r:\n  accept delay = soon\n")
case("continue_mod", "r:\n  accept continue = ${if eq{1}{1}{x}}\n")
case("control_ok",
     "r:\n  accept control = no_multiline_responses\n         control = freeze\n         control = queue_only\n         control = suppress_local_fixups\n         control = no_pipelining\n         control = enforce_sync\n         control = no_delay_flush\n         control = no_callout_flush\n")
case("control_caseful", "r:\n  accept control = caseful_local_part\n         local_parts = Mixed : info : postmaster\n  deny\n")
case("control_bad", "r:\n  accept control = nonsense\n")
case("control_forbidden", "m:\n  accept control = caseful_local_part\nr:\n  accept\n")
case("control_fakereject", "r:\n  accept control = fakereject/custom text\nd:\n  accept\n")
case("control_submission", "m:\n  accept control = submission/domain=example.org\nr:\n  accept\n")
case("queue_mod", "r:\n  accept queue = slow\n")
case("queue_bad", "r:\n  accept queue = a/b\n")
case("udpsend_bad", "r:\n  accept udpsend = 127.0.0.1\n")
case("cond_forbidden", "m:\n  accept domains = example.org\nr:\n  accept\n")
case("cond_forbidden_recipients", "m:\n  accept recipients = *\nr:\n  accept\n")
case("verify_recipient",
     "r:\n  deny !verify = recipient\n  accept\n")
case("verify_recipient_message",
     "r:\n  deny message = no such user here\n       !verify = recipient\n  accept\n")
case("verify_sender_ok", "m:\n  deny !verify = sender\n  accept\nr:\n  accept\n")
case("verify_helo_literal", "r:\n  accept verify = helo\n  deny\n",
     dlg=dialogue(helo="EHLO [10.1.2.3]", data=False))
case("verify_bad", "r:\n  accept verify = nonsense\n")
case("verify_recipient_in_mail", "m:\n  accept verify = recipient\nr:\n  accept\n")
case("verify_header_syntax_rcpt", "r:\n  accept verify = header_syntax\n")
case("vrfy_unset", "r:\n  accept\n", dlg=D_VRFY)
case("connect_deny", "c:\n  deny hosts = 192.0.2.0/24\n       message = go away\n  accept\nr:\n  accept\n")
case("connect_drop", "c:\n  drop hosts = 10.0.0.0/8\n  accept\nr:\n  accept\n")
case("helo_deny", "h:\n  deny condition = ${if eq{$sender_helo_name}{client.example}}\n       message = bad helo\n  accept\nr:\n  accept\n")
case("predata_deny", "r:\n  accept\np:\n  deny message = no data today\n")
case("quit_acl", "r:\n  accept\nq:\n  accept message = bye bye\n")
case("quit_bad_verb", "r:\n  accept\nq:\n  deny\n")
case("discard_in_connect", "c:\n  discard\nr:\n  accept\n")
case("ratelimit_basic", "r:\n  deny ratelimit = 2 / 1h / per_rcpt / strict / k-$sender_host_address\n       message = rate $sender_rate limit $sender_rate_limit\n  accept\n")
case("ratelimit_readonly", "r:\n  warn ratelimit = 1 / 1h / readonly / k\n  accept\n")
case("ratelimit_bad", "r:\n  accept ratelimit = x / 1h\n")
case("ratelimit_conflict", "r:\n  accept ratelimit = 1 / 1h / per_conn / per_mail\n")
case("ratelimit_per_mail_in_rcpt", "r:\n  deny ratelimit = 0 / 1h / per_mail / k\n  accept\n")

# --- seed examples, verbatim --------------------------------------------------
SEED_SAME_DOMAIN = """\
    acl_check_rcpt:
        defer    message = multiple recipients with same domain only
                !acl = same_domain
        accept

same_domain:
    accept    condition = ${if !def:acl_m_domain}
                set acl_m_domain = $domain

    accept    domains = $acl_m_domains

deny
"""
case("seed_same_domain_slide", SEED_SAME_DOMAIN,
     extra="acl_smtp_rcpt = acl_check_rcpt\n", dlg=D_TWO)
case("seed_same_domain_test",
     SEED_SAME_DOMAIN.replace("acl_check_rcpt", "acl_check_recipient")
     .replace("$acl_m_domains", "$acl_m_domain"),
     extra="acl_smtp_rcpt = acl_check_recipient\n", dlg=D_TWO)
SEED_CONF = """\
  acl_check_connect:
    accept

  acl_check_rcpt:

    accept domains      = +local_domains
       local_parts      = postmaster
    require message     = relaying denied
       domains          = +local_domains

    require message     = unknown recipient
       verify           = recipient/callout=use_sender,defer_ok
    accept

  acl_check_data:

    accept hosts        = +relay_from_hosts
    deny  message       = sorry, size matters
       condition        = ${if >${message_size}{20M}
    accept
"""
case("seed_acl_conf", SEED_CONF,
     extra="acl_smtp_connect = acl_check_connect\nacl_smtp_rcpt = acl_check_rcpt\nacl_smtp_data = acl_check_data\n")
SEED_CALLFORWARD = """\
    acl_check_recipient:

        deny    domains = +internal_domains
                !verify = recipient/callout=use_sender,defer_ok

        accept
"""
case("seed_callforward", SEED_CALLFORWARD,
     extra="acl_smtp_rcpt = acl_check_recipient\ndomainlist internal_domains = example.com\n")
SEED_CUTTHROUGH = """\
acl_check_recipient:
  deny  domains = +internal_domains
        control = cutthrough_delivery
        !verify = recipient/callout=use_sender,defer_ok
  accept
"""
case("seed_cutthrough", SEED_CUTTHROUGH,
     extra="acl_smtp_rcpt = acl_check_recipient\ndomainlist internal_domains = example.com\n")
# The seed's greylisting slide: a perl function decides whether the
# triple (sender, recipient) was seen.  Verbatim the slide has a stray
# backquote and the ACL name "cl_check_rcpt" (so acl_smtp_rcpt names no
# ACL); the second case is the evidently intended configuration.
SEED_GREY = """\
  cl_check_rcpt:
    defer condition = `${perl{unseen}{GREYKEY}{1d}}
    accept
"""
GREY_MAIN = ("GREYKEY = $sender_address/$local_part@$domain\n"
             "perl_startup = do 'DIR/exigrey.pm'\n"
             "acl_smtp_rcpt = acl_check_rcpt\n")
case("seed_greylist_verbatim", SEED_GREY, extra=GREY_MAIN)
case("seed_greylist", SEED_GREY.replace("cl_check", "acl_check")
     .replace("`", ""), extra=GREY_MAIN)
case("seed_features",
     "r:\n  warn ratelimit = 10/2h/k-$sender_host_address\n  accept authenticated = *\n  accept encrypted = *\n  accept verify = recipient\n")

# Cases where the difference from Exim lies in the SMTP session
# (eximpy/smtp/server.py, not the ACL engine): for these only the ">>>"
# trace of the ACL engine is compared.  Empty since the session acts on
# controls, logs the blackhole lines, ERRORs without a message and the
# QUIT ACL's ERROR as Exim does.
SESSION_GAPS: dict[str, str] = {}
# The DATA ACL's $message_size and header lines; VRFY routing after an
# accepting ACL (Exim's verify trace, compared up to its ">>>>" line).
case("data_deny", "r:\n  accept\nd:\n  deny condition = ${if >{$message_size}{10}}\n"
     "       message = too big: $message_size\n")
case("data_header", "r:\n  accept\nd:\n  deny condition = ${if def:h_subject:}\n"
     "       message = subject: $h_subject:\n")
case("vrfy_acl", "v:\n  accept local_parts = postmaster\n  deny message = not telling\n",
     dlg=D_VRFY)
case("vrfy_routing", "v:\n  accept\n",
     dlg="HELO c\r\nVRFY x@foo.bar\r\nVRFY Info@example.org\r\n"
     "VRFY bad@example.org\r\nVRFY a@b.c\r\nQUIT\r\n")
# The MIME ACL: once per part, $mime_* variables.
D_MIME = dialogue(rcpts=("info@example.org",)).replace(
    "DATA\r\nSubject: test\r\nFrom: a@b.c\r\nTo: info@example.org\r\n\r\n"
    "body line\r\n.\r\n",
    "DATA\r\nSubject: mime\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed;\r\n boundary=\"XX\"\r\n\r\n"
    "preamble\r\n--XX\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n"
    "hello\r\n--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
    "--YY\r\nContent-Type: text/plain\r\n\r\nalt1\r\n--YY\r\n"
    "Content-Type: text/html\r\n\r\n<p>alt2</p>\r\n--YY--\r\n--XX\r\n"
    "Content-Type: application/pdf; name=\"r e.pdf\"\r\n"
    "Content-Disposition: attachment;\r\n\tfilename=\"report.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\nContent-ID: <id1@x>\r\n\r\n"
    "AAAA\r\n--XX--\r\nepilogue\r\n.\r\n")
MIME_LOG = ("  warn logwrite = part $mime_part_count: [$mime_content_type] "
            "[$mime_charset] [$mime_filename] [$mime_boundary] "
            "[$mime_content_disposition] [$mime_content_transfer_encoding] "
            "[$mime_content_id] mp=$mime_is_multipart "
            "cl=$mime_is_coverletter\n")
case("mime_walk", "r:\n  accept\nmi:\n" + MIME_LOG + "  accept\n",
     dlg=D_MIME, extra="acl_smtp_mime = mi\n")
case("mime_deny_pdf", "r:\n  accept\nd:\n  accept\nmi:\n"
     "  deny condition = ${if eq{$mime_filename}{report.pdf}}\n"
     "       message = no $mime_filename here\n  accept\n",
     dlg=D_MIME, extra="acl_smtp_mime = mi\n")
case("mime_then_data", "r:\n  accept\nmi:\n  accept\n"
     "d:\n  deny message = data says no\n", dlg=D_MIME,
     extra="acl_smtp_mime = mi\n")
case("mime_discard", "r:\n  accept\nmi:\n  discard mime_is_multipart = 0\n"
     "  accept\n".replace("mime_is_multipart = 0", "condition = "
                           "${if eq{$mime_content_type}{text/html}}"),
     dlg=D_MIME, extra="acl_smtp_mime = mi\n")
case("quit_after_data_reject", "r:\n  accept\nd:\n  deny\nq:\n"
     "  warn logwrite = quit $message_id\n  accept\n")
case("quit_after_discard", "r:\n  accept\nd:\n  discard\nq:\n"
     "  warn logwrite = quit $message_id\n  accept\n")
case("mime_plain_not_run", "r:\n  accept\n",
     extra="acl_smtp_mime = deny message = never\n")

# What the session does with controls and modifiers.
D_TWO_MSGS = dialogue(rcpts=("info@example.org",)).replace(
    "QUIT\r\n", "") + dialogue(rcpts=("office@example.org",), helo="RSET")
case("control_fakedefer", "r:\n  accept control = fakedefer/not now\nd:\n  accept\n")
case("control_fakereject_default", "m:\n  accept control = fakereject\nr:\n  accept\n")
case("control_freeze_queue_two_msgs",
     "r:\n  accept local_parts = info\n         control = freeze/no_tell\n"
     "  accept control = queue\n", dlg=D_TWO_MSGS)
case("queue_name_mod", "r:\n  accept queue = q1\n         control = queue_only\n")
case("log_reject_target_none",
     "r:\n  deny local_parts = info\n       log_reject_target =\n  deny domains = foo.bar\n"
     "       log_reject_target = main\n  accept\n")
case("error_no_message_rcpt", "r:\n  accept\nd:\n  deny control = freeze\n")
case("data_discard_logs", "r:\n  accept\nd:\n  discard log_message = spam\n")
case("add_remove_header_data",
     "r:\n  warn add_header = X-R: $local_part\n  accept\n"
     "d:\n  warn remove_header = subject\n  deny condition = ${if def:h_subject:}\n"
     "       message = still $h_subject:\n  deny message = gone $h_x-r:\n")
case("message_id_after_data",
     "r:\n  deny local_parts = office\n       message = no office after $message_id\n  accept\n",
     dlg=D_TWO_MSGS)
case("control_enforce_sync_connect", "c:\n  accept control = no_enforce_sync\nr:\n  accept\n")
case("control_pipelining_helo", "h:\n  accept control = no_pipelining\nr:\n  accept\n")
case("delay_in_bh", "r:\n  accept delay = 2s\n")

# --- more ratelimit and seen ------------------------------------------------
case("ratelimit_per_conn",
     "m:\n  warn ratelimit = 5 / 1h / per_conn / strict / c\n  accept\nr:\n  deny ratelimit = 5 / 1h / per_conn / strict / c\n       message = conn rate $sender_rate\n  accept\n")
case("ratelimit_per_cmd", "r:\n  deny ratelimit = 3 / 1h / per_cmd / strict / k\n  accept\n")
case("ratelimit_per_byte", "m:\n  warn ratelimit = 100 / 1h / per_byte / strict / b\n  accept\nr:\n  accept\n")
case("ratelimit_count", "r:\n  deny ratelimit = 4 / 1h / per_rcpt / count=2 / strict / k\n  accept\n")
case("ratelimit_noupdate", "r:\n  warn ratelimit = 1 / 1h / noupdate / k\n  warn ratelimit = 1 / 1h / per_rcpt / k\n  accept\n")
case("ratelimit_unique", "r:\n  deny ratelimit = 2 / 1h / per_rcpt / unique=$domain / k\n  accept\n")
case("ratelimit_per_addr", "r:\n  deny ratelimit = 3 / 1h / per_addr / k\n  accept\n")
case("ratelimit_leaky_mail", "m:\n  deny ratelimit = 0 / 1h / leaky / per_mail\n  accept\nr:\n  accept\n")
case("ratelimit_size_suffix", "r:\n  deny ratelimit = 1k / 1h / per_rcpt / strict\n  accept\n")
case("ratelimit_badacl", "m:\n  deny ratelimit = 1 / 1h / per_rcpt / strict\n  accept\nr:\n  accept\n")
case("seen_greylist",
     "r:\n  defer seen = -5m / key=${sender_host_address}_$local_part@$domain\n        message = greylisted\n  accept\n")
case("seen_since", "r:\n  warn seen = 1h / key=k1\n  warn seen = 1h / key=k1 / readonly\n  accept\n")
case("seen_bad", "r:\n  accept seen = soon\n")
case("seen_options",
     "r:\n  warn seen = -5m / key=g1\n  warn seen = -0s / key=g1\n  warn seen = -0s / key=g1 / refresh=0s\n  warn seen = 1h / key=g1 / write\n  warn seen = -1h / key=g2 / readonly\n  warn seen = 1h / key=g1 / readonly\n  warn seen = 1h / key=$local_part\n  accept\n")
case("seen_bad_option", "r:\n  accept seen = 1h / key=g1 / bogus\n")

# --- other hook points ----------------------------------------------------------
D_EXPN = "HELO c\r\nEXPN postmaster\r\nEXPN x@foo.bar\r\nETRN #example.org\r\nQUIT\r\n"
D_NOQUIT = "EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<info@example.org>\r\n"
case("expn_acl", "", extra="acl_smtp_expn = accept local_parts = postmaster\n", dlg=D_EXPN)
case("etrn_deny_msg", "", extra="acl_smtp_etrn = deny message = no ETRN for $sender_host_address\n", dlg=D_EXPN)
case("mail_accept_message", "m:\n  accept message = 250 sender $sender_address fine\nr:\n  accept\n")
case("predata_accept_message", "r:\n  accept\np:\n  accept message = 354 go ahead\n")
case("helo_inline_option", "r:\n  accept\n",
     extra="acl_smtp_helo = deny condition = ${if match{$sender_helo_name}{^client}}\n")
case("connect_message", "c:\n  accept message = 220 welcome $sender_host_address\nr:\n  accept\n")
# $smtp_notquit_reason in the NOTQUIT ACL, the last message id in front
# of log lines written after DATA ($message_id), the ETRN trace lines.
case("notquit_acl", "r:\n  accept\n", extra="acl_smtp_notquit = warn logwrite = "
     "notquit $smtp_notquit_reason\n", dlg=D_NOQUIT)
case("quit_logwrite", "r:\n  accept\nq:\n  warn logwrite = quit from "
     "$sender_host_address\n  accept\n")
case("etrn_acl", "", extra="acl_smtp_etrn = accept hosts = 10.0.0.0/8\n", dlg=D_EXPN)
case("acl_expansion_items",
     "r:\n  warn set acl_m_x = ${acl{sub}{a}}\n  warn set acl_m_y = ${if eq{${acl{sub}}}{x}{1}{0}}\n"
     "  warn set acl_m_z = ${if acl{{sub}{q}}{yes}{no}}\n  warn set acl_m_v = ${if eq{1}{1}{a}} ${acl{sub}}\n"
     "  warn acl = sub2\n  accept\nsub:\n  accept message = x\nsub2:\n  warn set acl_m_w = ${acl{sub}}\n  accept\n")
case("udpsend_ok", "r:\n  warn udpsend = 127.0.0.1 : 5997 : hello $local_part\n  accept\n")
case("udpsend_bad_port", "r:\n  accept udpsend = 127.0.0.1 : 59x : x\n")
case("udpsend_no_payload", "r:\n  accept udpsend = 127.0.0.1 : 5997\n")
case("control_no_pipelining", "c:\n  accept control = no_pipelining\nr:\n  accept\n")
case("control_enforce_sync_helo", "h:\n  accept control = no_enforce_sync\nr:\n  accept\n")
# The session's own list checks in the trace (">>> host in <option>?"):
# set options with named lists (whose results the ACLs then see cached),
# negated items, MAIL before HELO (hosts_require_helo), non-mail
# commands (smtp_accept_max_nonmail_hosts), HELP (tls_advertise_hosts),
# helo_lookup_domains with an IP literal HELO.
D_SESSION_LISTS = ("MAIL FROM:<a@b.c>\r\nEHLO [IPv6:2001:DB8::1]\r\n"
                   "NOOP\r\nHELP\r\nVRFY postmaster@example.org\r\n"
                   "MAIL FROM:<a@b.c>\r\nRCPT TO:<info@example.org>\r\n"
                   "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
case("session_lists",
     "c:\n  accept hosts = +relay_from_hosts : 192.0.2.0/24\n"
     "r:\n  accept hosts = +relay_from_hosts\n  accept\n",
     extra="helo_accept_junk_hosts = 10.0.0.0/8 : +relay_from_hosts\n"
           "sender_unqualified_hosts = *\n"
           "recipient_unqualified_hosts = !192.0.2.0/24 : *\n"
           "host_reject_connection = !127.0.0.1 : 10.9.9.9\n"
           "smtp_accept_max_nonmail_hosts = +relay_from_hosts\n"
           "helo_lookup_domains = @ : @[] : foo.bar\n"
           "dsn_advertise_hosts = 10.0.0.0/8\n"
           "chunking_advertise_hosts =\n"
           "pipelining_advertise_hosts = !127.0.0.1 : *\n"
           "ignore_fromline_hosts = 192.0.2.5\n",
     dlg=D_SESSION_LISTS)
