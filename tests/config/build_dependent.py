"""Options whose -bP value differs between Debian's Exim and eximpy by construction.

DESCRIPTION
    The differential tests compare `eximpy -bP` with `exim -bP` line by
    line.  The options below have defaults that Exim takes from its build
    (Debian's Local/Makefile) or that depend on built-in _HAVE_* macros,
    which eximpy defines differently on purpose.  A line is excluded only
    when the configuration under test does not set the option itself
    (BUILD_DEFAULTS), or, for MACRO_DEPENDENT, in the files named there.
    Each entry says why.  Keep this list short: anything else that differs
    is a bug.

SEE ALSO
    eximpy/config/main_options.py (eximpy's computed defaults).
"""
from __future__ import annotations

import re

#: main option -> why its unset value differs
BUILD_DEFAULTS: dict[str, str] = {
    "exim_user": "compiled into Exim (Debian-exim); eximpy uses the 'eximpy' "
                 "user if it exists, else the invoking user",
    "exim_group": "as exim_user",
    "exim_path": "the binary: /usr/sbin/exim4 vs eximpy's bin/eximpy",
    "spool_directory": "compiled in: /var/spool/exim4 vs /var/spool/eximpy",
    "process_log_path": "derived from spool_directory when unset",
    "log_file_path": "Debian compiles in /var/log/exim4/%slog; eximpy leaves "
                     "it unset (= <spool>/log/%slog, Exim's unset meaning)",
    "pid_file_path": "Debian compiles in /run/exim4/exim.pid; eximpy leaves it "
                     "unset (= <spool>/exim-daemon.pid)",
}

#: (config file, option) -> why: the file chooses by built-in macros that
#: describe Exim's build (.ifdef _HAVE_PRDR / _HAVE_GNUTLS ...).
MACRO_DEPENDENT: dict[tuple[str, str], str] = {
    ("example.conf", "acl_smtp_data_prdr"):
        ".ifdef _HAVE_PRDR: eximpy does not claim PRDR support",
    ("example.conf", "prdr_enable"): "as acl_smtp_data_prdr",
    ("example.conf", "tls_require_ciphers"):
        ".ifdef _HAVE_GNUTLS/_HAVE_OPENSSL picks the cipher string",
    ("example.conf", "tls_resumption_hosts"):
        ".ifdef _HAVE_TLS_RESUME: eximpy does not claim TLS resumption",
}


def _opt_of(line: str) -> str:
    name = line.split(" =", 1)[0].strip()
    return name[3:] if name.startswith("no_") else name


def strip_build_dependent(text: str, conf: str, set_options: set[str]) -> str:
    """Drop -bP lines of build-dependent options not set by ``conf``.

    Works on `-bP`, `-bP routers/transports/...` and `-bP config` output
    (for config, a line "name = ..." of such an option is dropped, as are
    the lines of an ACL that only exists under such a macro).
    """
    base = conf.rsplit("/", 1)[-1]
    drop = {n for n in BUILD_DEFAULTS if n not in set_options}
    drop |= {opt for (f, opt) in MACRO_DEPENDENT if f == base}
    out = []
    for line in text.split("\n"):
        if _opt_of(line) in drop:
            continue
        out.append(line)
    return "\n".join(out)


def strip_config_macro_blocks(text: str, conf: str) -> str:
    """-bP config of example.conf: remove the acl_check_prdr ACL (only there
    under .ifdef _HAVE_PRDR) and the cipher lines."""
    if not conf.endswith("example.conf"):
        return text
    text = re.sub(r"\n  acl_check_prdr:\n(    .*\n)*\n", "\n", text)
    text = text.replace("acl_check_prdr:\nwarn set acl_m_did_prdr = y\n"
                        "accept\n", "")
    return text
