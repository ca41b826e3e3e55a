"""Run-time parts of expansion items (${item{arg}...}).

DESCRIPTION
    SIMPLE maps the names of items whose arguments are all expanded first
    (Exim's read_subs() items) to fn(ctx, args) -> str.  run_command(),
    readsocket(), prvscheck() and the SRS helpers serve the items with a
    more complex shape (see evaluate.py).

SECURITY
    ${readfile} refuses tainted file names and ${run} refuses tainted
    command words after splitting (Exim 4.96 semantics); commands are run
    with an argument vector, never a shell, in their own process group, with
    Exim's 60 s output / 30 s exit timeouts.

SEE ALSO
    spec section "Expansion items".
"""
from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import re
import select
import signal
import socket
import subprocess
import time

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.taint import Tainted, is_tainted, like
from eximpy.expand.bytestr import from_l1, norm, to_l1
from eximpy.expand.operators import (to_bytes, from_bytes, compute_hash, compute_nhash,
                                     extract_substr, BASE32)
from eximpy.expand import evaluate as E


def _b(s: str) -> bytes:
    return to_bytes(s)


def _log(ctx, msg: str) -> None:
    fn = getattr(ctx, "log_panic", None)
    if fn is not None:
        fn(msg)


# ---------------------------------------------------------------- simple items

def item_hashlike(name):
    def f(ctx, a):
        if name == "length":
            sub = [None, a[0], a[1]]
        elif len(a) == 2:
            sub = [a[0], None, a[1]]
        else:
            sub = list(a)
        val = [0, -1]
        for i in range(2):
            if sub[i] is None:
                continue
            m = re.fullmatch(r"[ \t\n\r\f\v]*([+-]?\d+)", sub[i])
            v = int(m.group(1)) if m else None
            if v is not None:
                v = max(min(v, 2 ** 31 - 1), -2 ** 31)
            if v is None or (i != 0 and v < 0):
                raise ExpansionError(f'"{sub[i]}" is not a{" positive" if i else ""} number '
                                     f'(in "{name}" expansion)')
            val[i] = v
        if name == "hash":
            return compute_hash(sub[2], val[0], val[1])
        if name == "nhash":
            return compute_nhash(sub[2], val[0], val[1])
        return extract_substr(sub[2], val[0], val[1])
    return f


def item_hmac(ctx, a):
    algo, key, text = a
    if algo == "md5":
        h = hashlib.md5
    elif algo == "sha1":
        h = hashlib.sha1
    else:
        raise ExpansionError(f'hmac algorithm "{algo}" is not recognised')
    return _hmac.new(_b(key), _b(text), h).hexdigest()


def item_tr(ctx, a):
    """${tr}: byte by byte, each byte of the subject found in the second
    argument (its last occurrence) becomes the byte at that place in the
    third (or its last byte)."""
    subject, frm, to = a
    if not to:
        return subject
    if not (subject.isascii() and frm.isascii() and to.isascii()):
        bs, bf, bt = to_bytes(subject), to_bytes(frm), to_bytes(to)
        o2m = len(bt) - 1
        res = bytearray()
        for c in bs:
            k = bf.rfind(c)
            res.append(bt[k if k < o2m else o2m] if k >= 0 else c)
        return like(from_bytes(bytes(res)), subject)
    out = []
    o2m = len(to) - 1
    for c in subject:
        k = frm.rfind(c)
        if k >= 0:
            out.append(to[k if k < o2m else o2m])
        else:
            out.append(c)
    return like("".join(out), subject)


def item_listquote(ctx, a):
    sep, s = a
    if not s:
        return " "
    sc = sep[:1]
    if not sc:
        return s
    if not sc.isascii():        # the separator is the first byte
        b, c = to_bytes(s), to_bytes(sep)[:1]
        return like(from_bytes(b.replace(c, c + c)), s)
    return like(s.replace(sc, sc + sc), s)


def item_sg(ctx, a):
    from eximpy.expand.regex import compile_pcre
    from eximpy.expand import expand_string
    subject, pattern, repl = a
    pc = compile_pcre(pattern)
    rx = pc.rx                  # works on the one-char-per-byte view
    orig = subject
    subject = to_l1(subject)
    save_n = ctx.nstrings
    out = []
    pos = 0
    n = len(subject)
    start = 0
    notempty_at = -1
    try:
        while True:
            m = rx.search(subject, start)
            if m and m.start() == m.end() and m.start() == notempty_at:
                # Perl /g: after an empty match try a non-empty one at the same
                # place, else move on one character.
                m2 = None
                for mm in rx.finditer(subject, notempty_at):
                    if mm.start() != notempty_at:
                        break
                    if mm.end() > mm.start():
                        m2 = mm
                        break
                if m2 is None:
                    if notempty_at >= n:
                        break
                    start = notempty_at + 1
                    notempty_at = -1
                    m = rx.search(subject, start)
                else:
                    m = m2
            if not m:
                break
            ns = [from_l1(m.group(0))] + [from_l1(g) if g is not None else ""
                                          for g in m.groups()]
            ctx.nstrings = ns
            out.append(from_l1(subject[pos:m.start()]))
            out.append(expand_string(repl, ctx))
            pos = m.end()
            if m.start() == m.end():
                if m.end() >= n:
                    break
                notempty_at = m.end()
                start = m.end()
            else:
                start = m.end()
                notempty_at = -1
        out.append(from_l1(subject[pos:]))
    finally:
        ctx.nstrings = save_n
    r = norm("".join(out))
    return Tainted(r) if is_tainted(orig) or is_tainted(repl) else r


def item_readfile(ctx, a):
    if ctx.expand_forbid & E.FORBID_READFILE:
        raise ExpansionError("file insertions are not permitted")
    name = a[0]
    eol = a[1] if len(a) > 1 else None
    if is_tainted(name):
        # Exim's open wrapper refuses tainted names as EACCES and logs why.
        _log(ctx, f"Tainted filename '{name}'")
        raise ExpansionError(f"failed to open {name}: Permission denied "
                             f"(euid={os.geteuid()} egid={os.getegid()})")
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ExpansionError(f"failed to open {name}: {e.strerror}")
    text = from_bytes(data)
    if eol is not None:
        text = norm(text.replace("\n", eol))
    return text


def item_acl(ctx, a):
    from eximpy.expand.conditions import call_acl
    rc, msg = call_acl(ctx, a)
    if rc in ("OK", "FAIL"):
        return msg or ""
    if rc == "DEFER":
        raise ExpansionForcedFail(f'{rc} from acl "{a[0]}"')
    raise ExpansionError(f'{rc} from acl "{a[0]}"')


def item_authresults(ctx, a):
    g = "Authentication-Results: " + a[0]
    get = ctx.get_var
    if ctx.variables.get("authentication_local"):
        g += f";\n\tlocal=pass (non-smtp, {a[0]})"
        if get("authenticated_id"):
            g += " u=" + get("authenticated_id")
    # Exim's authres_iprev() reads the sender_host_name global: a lazy
    # $sender_host_name lookup is not started here.
    shn = ctx.variables.get("sender_host_name")
    if callable(shn):
        shn = getattr(getattr(shn, "__self__", None), "host_name", None)
    shn = shn or ""
    sha = get("sender_host_address")
    iprev = None
    if shn:
        iprev = f";\n\tiprev=pass ({shn})"
    elif get("host_lookup_deferred") not in ("", "0"):
        iprev = ";\n\tiprev=temperror"
    elif get("host_lookup_failed") not in ("", "0"):
        iprev = ";\n\tiprev=fail"
    if iprev:
        g += iprev
        if sha:
            g += " smtp.remote-ip=" + sha
    g += authres_smtpauth(ctx)
    g += authres_spf(ctx)
    # The DKIM part (and any later one) comes from whoever verified: a str or
    # a callable in ctx.variables["authresults_extra"] (eximpy.acl.dkim).
    extra = ctx.variables.get("authresults_extra")
    if extra:
        g += extra() if callable(extra) else extra
    return g


def authres_smtpauth(ctx) -> str:
    """Exim's authres_smtpauth(): the auth part of ${authresults}.  Exim
    names the authenticator by its public name: the SMTP session gives it
    as ctx.variables["auth pubname"], a name no $ can reach (else the
    driver name in $sender_host_authenticated is used);
    $authenticated_sender is the AUTH= value of MAIL, xtext-decoded."""
    get = ctx.get_var
    if not get("sender_host_authenticated"):
        return ""
    pub = ctx.variables.get("auth pubname") or get("sender_host_authenticated")
    aid = get("authenticated_id")
    g = f";\n\tauth=pass ({pub}"
    if pub != "tls":
        g += ") smtp.auth=" + aid
    elif aid:
        g += ") x509.auth=" + aid
    else:
        g += ") reason=x509.auth"
    asnd = get("authenticated_sender")
    if asnd:
        g += " smtp.mailfrom=" + asnd
    return g


def authres_spf(ctx) -> str:
    """Exim's authres_spf(): the spf part of ${authresults}, when an spf or
    spf_guess condition has run for this message ($spf_result set by
    eximpy.acl.spf)."""
    res = ctx.variables.get("spf_result")
    if callable(res):
        res = res()
    if not res:
        return ""
    g = ";\n\tspf=" + res
    guessed = ctx.variables.get("spf_result_guessed")
    if guessed in ("yes", "1", True):
        g += " (best guess record for domain)"
    dom = ctx.get_var("sender_address_domain")
    if dom:
        return g + " smtp.mailfrom=" + dom
    helo = ctx.get_var("sender_helo_name")
    return g + (" smtp.helo=" + helo if helo else " smtp.mailfrom=<>")


_DLOBJS: dict[str, object] = {}     # cache: file -> loaded library (Exim's dlobj tree)

_DL_OK, _DL_DEFER, _DL_FAIL, _DL_ERROR, _DL_FAIL_FORCED = 0, 1, 2, 3, 4


def item_dlfunc(ctx, a):
    """${dlfunc{file}{function}{arg}...}: call
    int function(uschar **yield, int argc, uschar *argv[]) in a shared
    library (Exim's local_scan API return codes)."""
    import ctypes
    if ctx.expand_forbid & E.FORBID_DLFUNC:
        raise ExpansionError("dynamically-loaded functions are not permitted")
    path, fname, args = a[0], a[1], a[2:]
    lib = _DLOBJS.get(path)
    if lib is None:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_LAZY)
        except OSError as e:
            msg = f'dlopen "{path}" failed: {e}'
            _log(ctx, msg)
            raise ExpansionError(msg)
        _DLOBJS[path] = lib
    try:
        fn = getattr(lib, fname)
    except AttributeError as e:
        msg = f'dlsym "{fname}" in "{path}" failed: {e}'
        _log(ctx, msg)
        raise ExpansionError(msg)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                   ctypes.POINTER(ctypes.c_char_p)]
    argv = (ctypes.c_char_p * (len(args) + 1))(*[to_bytes(x) for x in args], None)
    result = ctypes.c_char_p(None)
    status = fn(ctypes.byref(result), len(args), argv)
    text = from_bytes(result.value) if result.value is not None else None
    if status != _DL_OK:
        msg = text if text is not None else "(no message)"
        if status == _DL_FAIL_FORCED:
            raise ExpansionForcedFail(msg)
        if status != _DL_FAIL:
            _log(ctx, f"dlfunc{{{path}}}{{{fname}}} failed ({status}): {msg}")
        raise ExpansionError(msg)
    return text or ""


def item_perl(ctx, a):
    if ctx.expand_forbid & E.FORBID_PERL:
        raise ExpansionError("Perl calls are not permitted")
    from eximpy.expand import perl
    return perl.call(ctx, a[0], a[1:])


def item_python(ctx, a):
    if ctx.expand_forbid & E.FORBID_PERL:
        raise ExpansionError("Python calls are not permitted")
    from eximpy.expand import python
    return python.call(ctx, a[0], a[1:])


def item_prvs(ctx, a):
    addr = a[0]
    key = a[1]
    keynum = a[2] if len(a) > 2 else None
    k = addr.rfind("@")
    if k <= 0 or len(addr) - k == 1:
        raise ExpansionError("prvs first argument must be a qualified email address")
    if keynum is not None and not (len(keynum) == 1 and keynum.isdigit()):
        raise ExpansionError("prvs third argument must be a single digit")
    day = prvs_daystamp(7)
    h = prvs_hmac(addr, key, keynum, day)
    if h is None:
        raise ExpansionError("prvs hmac-sha1 conversion failed")
    return f"prvs={keynum or '0'}{day}{h}={addr[:k]}@{addr[k + 1:]}"


def prvs_daystamp(offset: int) -> str:
    days = str((int(time.time()) + offset * 86400) // 86400)
    return days[-3:] if len(days) >= 3 else "100"


def prvs_hmac(address: str, key: str, keynum: str | None, day: str) -> str | None:
    if len(_b(key)) > 64:
        return None
    src = _b((keynum or "0")[:1] + day[:3] + address)
    return _hmac.new(_b(key), src, hashlib.sha1).hexdigest()[:6]


_PRVS_RE = re.compile(r"^prvs=([0-9])([0-9]{3})([A-F0-9]{6})=(.+)@(.+)$", re.I)


def prvscheck(ctx, args) -> str:
    ctx.prvscheck = {}
    addr = args[0].ev(ctx)
    m = _PRVS_RE.match(addr)
    if not m:
        for a in args[1:]:
            a.ev(ctx)
        return ""
    save_n = ctx.nstrings
    ctx.nstrings = [m.group(0)] + list(m.groups())
    keynum, day, hsh, lp, dom = m.groups()
    paddr = f"{lp}@{dom}"
    ctx.prvscheck = {"address": paddr, "keynum": keynum}
    if len(args) < 2:
        raise ExpansionError("missing or misplaced { or }")
    key = args[1].ev(ctx)
    p = prvs_hmac(paddr, key, keynum, day)
    if p is None:
        raise ExpansionError("hmac-sha1 conversion failed")
    if p == hsh:
        inow = int(prvs_daystamp(0))
        iexp = int(day)
        if iexp < 7 and inow >= 993:
            inow = 0
        ctx.prvscheck["result"] = "1" if iexp >= inow else None
    else:
        ctx.prvscheck["result"] = None
    third = args[2].ev(ctx) if len(args) > 2 else None
    ctx.prvscheck.pop("address", None) if False else None
    r = third if third else paddr
    ctx.prvscheck["address"] = None
    ctx.prvscheck["keynum"] = None
    ctx.nstrings = ctx.nstrings
    return r


def _hmac_md5_hex(key: str, src: str, n: int) -> str:
    return _hmac.new(_b(key), _b(src), hashlib.md5).hexdigest()[:n]


def item_srs_encode(ctx, a):
    secret, rp, odom = a
    if not rp:
        return ""
    from eximpy.expand.rfc822 import extract_address
    r = extract_address(rp)
    if r is None or r[0] == "":
        raise ExpansionError("missing or malformed local part")
    addr, dstart = r
    ck = _hmac_md5_hex(secret, rp.lower().translate({}), 4)
    ck = _hmac_md5_hex(secret, _lc_ascii(rp), 4)
    i = (int(time.time()) // 86400) & 0x3ff
    ts = BASE32[i >> 5] + BASE32[i & 0x1f]
    dom = addr[dstart:] if dstart > 0 else ""
    lp = addr[:dstart - 1] if dstart > 0 else addr
    quoted = '"' in lp
    if quoted:
        lp = lp.replace('"', "")
    g = f"SRS0={ck}={ts}={dom}={lp}"
    if quoted:
        g = f'"{g}"'
    return f"{g}@{odom}"


def _lc_ascii(s: str) -> str:
    from eximpy.expand.operators import _LC
    return s.translate(_LC)


_SRS_RE = re.compile(r"^SRS0=([^=]+)=([A-Z2-7]{2})=([^=]*)=(.*)$", re.I)


def inbound_srs(ctx, lp: str, secret: str) -> bool:
    m = _SRS_RE.match(lp)
    if not m:
        return False
    quoting = lp.startswith('"') or any(
        not (c.isascii() and c.isalnum()) and c not in ".!#$%&'*+-/=?^_`{|}~" for c in lp)
    q = '"' if quoting else ""
    rcpt = f"{q}{_lc_ascii(m.group(4))}{q}@{_lc_ascii(m.group(3))}"
    ctx.variables["srs_recipient"] = rcpt
    if not secret:
        return True
    d = 0
    for c in m.group(2):
        d = d * 32 + BASE32.index(c.lower())
    now = int(time.time()) // 86400
    if ((now - d) & 0x3ff) > 10:
        return False
    if len(m.group(1)) != 4:
        return False
    return _hmac_md5_hex(secret, rcpt, 4) == m.group(1)


def item_imapfolder(ctx, a):
    name = a[0]
    sep = a[1] if len(a) > 1 else "/"
    specials = a[2] if len(a) > 2 else None
    if len(a) > 1 and len(sep) != 1:
        raise ExpansionError(f'IMAP folder separator must be one character, found "{sep}"')
    try:
        text = to_bytes(name).decode(ctx.headers_charset_name())
    except (UnicodeError, LookupError):
        raise ExpansionError(f"imapfolder: iconv() failed to convert from "
                             f"{ctx.headers_charset_name()}: Invalid argument")
    if sep != "." and "." in text:
        raise ExpansionError("imapfolder: illegal character '.'")
    out = []
    buf = ""

    def flush():
        nonlocal buf
        if buf:
            b = buf.encode("utf-16-be")
            import base64
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf = ""
    for c in text:
        if c == sep or (specials and c in specials):
            flush()
            out.append("." if c == sep and sep != "." else c) if False else None
            if c == sep:
                out.append(".")
            else:
                out.append("&" + __import__("base64").b64encode(
                    c.encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-")
        elif c == "&":
            flush()
            out.append("&-")
        elif 0x20 <= ord(c) < 0x7f:
            flush()
            if c == "." and sep != ".":
                out.append("&AC4-")
            else:
                out.append(c)
        else:
            buf += c
    flush()
    return "".join(out)


SIMPLE = {
    "acl": item_acl, "authresults": item_authresults, "dlfunc": item_dlfunc,
    "hmac": item_hmac, "listquote": item_listquote, "perl": item_perl,
    "python": item_python,
    "prvs": item_prvs, "readfile": item_readfile, "sg": item_sg,
    "srs_encode": item_srs_encode, "tr": item_tr, "imapfolder": item_imapfolder,
    "hash": item_hashlike("hash"), "nhash": item_hashlike("nhash"),
    "substr": item_hashlike("substr"), "length": item_hashlike("length"),
}


# ---------------------------------------------------------------- run

def split_command(cmd: str) -> list[str]:
    """Split a command line into words as Exim's transport_set_up_command
    does: white space separates, "..." and '...' quote (backslash escapes
    inside double quotes)."""
    args = []
    i = 0
    n = len(cmd)
    while True:
        while i < n and cmd[i] in " \t\n\r":
            i += 1
        if i >= n:
            break
        out = []
        if cmd[i] == '"':
            i += 1
            while i < n and cmd[i] != '"':
                if cmd[i] == "\\" and i + 1 < n:
                    from eximpy.expand.parser import interpret_escape
                    c, i = interpret_escape(cmd, i)
                    out.append(c)
                    continue
                out.append(cmd[i])
                i += 1
            i += 1
        elif cmd[i] == "'":
            i += 1
            while i < n and cmd[i] != "'":
                out.append(cmd[i])
                i += 1
            i += 1
        else:
            while i < n and cmd[i] not in " \t\n\r":
                out.append(cmd[i])
                i += 1
        args.append(like("".join(out), cmd))
    return args


def run_command(ctx, cmd: str, late: bool) -> tuple[str, int]:
    """Run ${run}'s command; returns (output, exit status as Exim's runrc)."""
    from eximpy.expand import expand_string
    words = split_command(cmd)
    if not words:
        raise ExpansionError("missing command name in ${run} expansion")
    argv = []
    for k, w in enumerate(words):
        if late:
            w = expand_string(w, ctx)
        argv.append(w)
    if is_tainted(argv[0]):
        # Exim's child_open() refuses to exec a tainted path (EPERM).
        _log(ctx, f"Attempt to exec tainted path: '{argv[0]}'")
        raise ExpansionError("couldn't create child process: Operation not permitted")
    if "/" not in argv[0]:
        return "", 127     # Exim execv()s: no PATH search
    try:
        p = subprocess.Popen([to_bytes(x) for x in argv], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True, umask=0o077,
                             env=dict(ctx.environ))
    except OSError:
        return "", 127
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise ExpansionError("command timed out")
    rc = p.returncode
    if rc < 0:
        raise ExpansionError(f"command killed by signal {-rc}")
    return from_bytes(out), rc


# ---------------------------------------------------------------- readsocket

class SockFail(Exception):
    pass


def readsocket(ctx, vals: list[str]) -> str:
    spec = vals[0]
    req = vals[1]
    opts_text = vals[2] if len(vals) > 2 else None
    eol = vals[3] if len(vals) > 3 else None
    timeout = 5.0
    shutdown = True
    use_tls = False
    if opts_text is not None:
        from eximpy.expand.lists import iter_list
        items = list(iter_list(opts_text))
        if items:
            from eximpy.expand.operators import readtime
            t = items[0]
            v = readtime(t) if not t.isdigit() else int(t)
            if v is not None and v >= 0:
                timeout = float(v)
        for o in items[1:]:
            if o == "shutdown=no":
                shutdown = False
            elif o in ("tls=yes", "tls"):
                use_tls = True
    if is_tainted(spec):
        raise ExpansionError(f"Tainted socket name for readsocket: '{spec}'")
    try:
        if spec.startswith("inet:"):
            rest = spec[5:]
            if rest.startswith("["):
                k = rest.find("]")
                host = rest[1:k]
                port_s = rest[k + 2:] if rest[k + 1:k + 2] == ":" else ""
            else:
                host, _, port_s = rest.rpartition(":")
                if not _:
                    raise SockFail("")
            if not port_s:
                raise SockFail("")
            try:
                port = int(port_s)
            except ValueError:
                try:
                    port = socket.getservbyname(port_s)
                except OSError:
                    raise SockFail("")      # Exim gives no message here
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                raise SockFail(f"no IP address found for host {host}")
            sock = None
            last = None
            for fam, typ, proto, _cn, addr in infos:
                s = socket.socket(fam, typ, proto)
                s.settimeout(timeout)
                try:
                    s.connect(addr)
                    sock = s
                    break
                except OSError as e:
                    last = e
                    s.close()
            if sock is None:
                raise SockFail(f"failed to connect to any address for {host}: "
                               f"{last.strerror if last else 'unknown error'}")
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(spec)
            except OSError as e:
                sock.close()
                raise SockFail(f"failed to connect to socket {spec}: {e.strerror}")
        if use_tls:
            # As Exim's readsocket: TLS without certificate verification.
            import ssl
            tctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            tctx.check_hostname = False
            tctx.verify_mode = ssl.CERT_NONE
            try:
                sock = tctx.wrap_socket(sock, server_hostname=host if spec.startswith(
                    "inet:") and not host.replace(".", "").isdigit() else None)
            except (OSError, ssl.SSLError) as e:
                sock.close()
                raise SockFail(f"TLS start failed: {e}")
            shutdown = False
        with sock:
            if req:
                sock.sendall(to_bytes(req))
            if shutdown:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            chunks = []
            try:
                while True:
                    b = sock.recv(4096)
                    if not b:
                        break
                    chunks.append(b)
            except socket.timeout:
                raise SockFail("socket read timed out")
            except OSError:
                pass                        # TLS close without close_notify
    except SockFail:
        raise
    text = from_bytes(b"".join(chunks))
    if eol:
        text = text.replace("\n", eol)
    return Tainted(text)
