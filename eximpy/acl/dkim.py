"""DKIM verification on receipt, the DKIM ACL, and its conditions and variables.

SUMMARY
    verify_message(headers, body, opts, dns_txt, log) -> Verification
    wanted(session, res) -> bool          is there any DKIM work for it?
    run_on_receipt(session, res, mid, headers, extra) -> AclResult | None
    acl_dkim_signers(call, arg, msgs) / acl_dkim_status(call, arg, msgs)
    authres(sigs, status, reason) -> str  the dkim part of ${authresults}

DESCRIPTION
    Exim 4.96 verifies the DKIM signatures of every message received over
    SMTP unless an ACL set ``control = dkim_disable_verify`` (spec 58.3).
    This module does what Exim's pdkim and dkim.c do, with the PyPI
    library dkimpy for the canonicalisation and the RSA key parsing and
    check, and `cryptography` for Ed25519 (RFC 8463).  The work is done
    only for a message with a DKIM-Signature: header or when
    acl_smtp_dkim is set (wanted()); other messages cost nothing:

    * every DKIM-Signature: header whose a= names a known key type and
      hash is a signature; they are ordered by dkim_verify_hashes, then
      by dkim_verify_keytypes (types not listed are dropped);
    * the body hash is compared first (fail: bodyhash_mismatch); then the
      tags are checked (invalid), the key is fetched from DNS (TXT at
      <s>._domainkey.<d>; invalid: pubkey_unavailable / pubkey_dns_syntax
      / pubkey_der_syntax, each logged "DKIM: d= s= [failed key import]"),
      the key's h= list, the signature over the headers in h= (fail:
      signature_incorrect) and dkim_verify_min_keysizes (pubkey_too_short);
    * $dkim_signers lists every signature's domain and identity.

    run_on_receipt() is called by the SMTP session after the data is read
    and before the MIME and DATA ACLs.  When acl_smtp_dkim is set and
    dkim_verify_signers expands to a non-empty list, the ACL runs once per
    distinct item and, for an item, once per signature whose domain (or
    identity, for an item with "@") matches, or once with status "none";
    the $dkim_* variables describe that signature, and an ACL ``set`` of
    $dkim_verify_status / $dkim_verify_reason overrides the result
    ("policy").  Each run is followed by the dkim_verbose log line; the
    statuses become the colon list $dkim_verify_status for the DATA ACL.
    Without the ACL every signature is just logged.  The first passing
    domain (Exim's precedence rules, kept) goes on the "<=" line as DKIM=.
    dkim_verify_minimal stops verifying at the first pass (4.96: the
    signatures after it stay "none", and the ACL still runs for them).

SECURITY
    Everything in a signature and a key record is remote data: values are
    Tainted and nothing from them is used as a file name or command.

SEE ALSO
    spec chapter "Support for DKIM (DomainKeys Identified Mail)" 58.3,
    section 44.7 "The SMTP DKIM ACL"; RFC 6376, RFC 8463, RFC 8301.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Callable

from eximpy.acl.runner import FAIL, OK, AclResult

NONE, INVALID, FAILED, PASS = "none", "invalid", "fail", "pass"
# ext statuses (Exim's $dkim_verify_reason values)
R_UNAVAIL = "pubkey_unavailable"
R_DNSREC = "pubkey_dns_syntax"
R_IMPORT = "pubkey_der_syntax"
R_KEYSIZE = "pubkey_too_short"
R_BODY = "bodyhash_mismatch"
R_MESSAGE = "signature_incorrect"
R_SIGERR = "sig_error"            # tags missing or invalid (reason "")
R_VERSION = "version"             # unsupported DKIM version (reason "")
R_ALGO = "algo_mismatch"          # key h= excludes the hash (reason "")

KEYTYPES = ("rsa", "ed25519")
HASHES = ("sha1", "sha256", "sha512")
GNUTLS_VERIFY_FAILED = "Public key signature verification has failed."


@dataclass
class Signature:
    raw: bytes                       # the header line (CRLF folded)
    tags: dict[str, str]
    domain: str | None = None
    selector: str | None = None
    identity: str | None = None
    keytype: str = ""
    hashtype: str = ""
    canon_headers: str = "simple"
    canon_body: str = "simple"
    created: int = 0
    expires: int = 0
    bodylength: int = -1
    headernames: str | None = None
    copiedheaders: str | None = None
    version: int = 0
    bodyhash: bytes | None = None
    sighash: bytes | None = None
    status: str = NONE
    ext: str | None = None
    pubkey: dict[str, Any] | None = None
    keybits: int = 0
    # The ACL overrode the result (Exim's PDKIM_VERIFY_POLICY bit): the
    # signature then reads as status "none", reason "" (Exim's switch has
    # no case for it), and is logged with the current status and reason.
    policy: bool = False

    @property
    def algo(self) -> str:
        return f"{self.keytype}-{self.hashtype}"


@dataclass
class Verification:
    sigs: list[Signature] = field(default_factory=list)
    errstr: str | None = None


def _qp_decode(s: str) -> str:
    """pdkim_decode_qp(): =XX sequences decoded, bad ones kept."""
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "=" and i + 2 < len(s) + 0 and all(
                x in "0123456789abcdefABCDEF" for x in s[i + 1:i + 3]) \
                and len(s[i + 1:i + 3]) == 2:
            out.append(chr(int(s[i + 1:i + 3], 16)))
            i += 3
            continue
        if c == "=":
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _b64(s: str) -> bytes | None:
    try:
        return base64.b64decode(s, validate=True) if s else b""
    except (binascii.Error, ValueError):
        return None


def parse_signature(raw: bytes) -> Signature | None:
    """pdkim_parse_sig_header(): None when a= is not a known key type and
    hash (Exim cannot verify it and ignores the header)."""
    text = raw.decode("utf-8", "surrogateescape")
    text = text.split(":", 1)[1] if ":" in text else ""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        if "=" not in part:
            continue
        tag, val = part.split("=", 1)
        tag = "".join(c for c in tag if "a" <= c <= "z")
        val = "".join(c for c in val if c not in " \t\r\n")
        if not tag or not val or not (len(tag) == 1 or tag[0] == "b"):
            continue
        tags[tag] = val
    sig = Signature(raw=raw, tags=tags)
    a = tags.get("a", "")
    kt, _, ht = a.partition("-")
    if kt not in KEYTYPES or ht.split("-")[0] not in HASHES:
        return None
    sig.keytype, sig.hashtype = kt, ht.split("-")[0]
    c = tags.get("c")
    if c is not None:
        combos = {"simple/simple": ("simple", "simple"),
                  "simple/relaxed": ("simple", "relaxed"),
                  "relaxed/simple": ("relaxed", "simple"),
                  "relaxed/relaxed": ("relaxed", "relaxed"),
                  "simple": ("simple", "simple"),
                  "relaxed": ("relaxed", "simple")}
        sig.canon_headers, sig.canon_body = combos.get(
            c, (sig.canon_headers, sig.canon_body))
    if "v" in tags:
        sig.version = 1 if tags["v"] == "1" else -1
    if "b" in tags:
        sig.sighash = _b64(tags["b"])
    if "bh" in tags:
        sig.bodyhash = _b64(tags["bh"])
    sig.selector = tags.get("s")
    sig.domain = tags.get("d")
    if "i" in tags:
        sig.identity = _qp_decode(tags["i"])
    for k, attr in (("t", "created"), ("x", "expires")):
        if k in tags:
            digits = "".join(_leading_digits(tags[k]))
            setattr(sig, attr, int(digits) if digits else 0)
    if "l" in tags:
        digits = _leading_digits(tags["l"])
        sig.bodylength = int(digits) if digits else 0
    sig.headernames = tags.get("h")
    if "z" in tags:
        sig.copiedheaders = _qp_decode(tags["z"])
    return sig


def _leading_digits(s: str) -> str:
    out = []
    for ch in s:
        if not ch.isdigit():
            break
        out.append(ch)
    return "".join(out)


def parse_pubkey(record: str) -> dict[str, Any] | None:
    """pdkim_parse_pubkey_record(): tags keyed by their first letter."""
    pub: dict[str, Any] = {}
    for ele in record.split(";"):
        ele = ele.strip()
        if "=" not in ele:
            continue
        tag, val = ele.split("=", 1)
        t = tag[:1]
        if t == "v":
            pub["version"] = val
        elif t == "h":
            pub["hashes"] = val
        elif t == "k":
            pub["keytype"] = val
        elif t == "g":
            pub["granularity"] = val
        elif t == "n":
            pub["notes"] = _qp_decode(val)
        elif t == "p":
            pub["key"] = _b64(val.replace(" ", ""))
        elif t == "s":
            pub["srvtype"] = val
        elif t == "t":
            if "y" in val:
                pub["testing"] = True
            if "s" in val:
                pub["nosub"] = True
    if "version" in pub and pub["version"] != "DKIM1":
        return None
    pub.setdefault("granularity", "*")
    pub.setdefault("keytype", "rsa")
    pub.setdefault("srvtype", "*")
    if pub.get("key") is None:
        return None
    return pub


def _split_headers(headers: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The received header lines as dkimpy's (name, value) pairs, CRLF."""
    out = []
    for h in headers:
        line = h.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if b":" not in line:
            continue
        name, value = line.split(b":", 1)
        out.append((name, value))
    return out


def _import_key(sig: Signature, pub: dict[str, Any]) -> tuple[Any, int] | str:
    """(key, bits) or the crypto library's error text."""
    key = pub["key"]
    if sig.keytype == "ed25519":
        if len(key) > 32:
            key = key[-32:]
        if len(key) != 32:
            return "Error in public key import"
        try:
            from cryptography.hazmat.primitives.asymmetric import ed25519
            return ed25519.Ed25519PublicKey.from_public_bytes(key), 256
        except Exception:
            return "Error in public key import"
    try:
        from dkim.crypto import parse_public_key
        pk = parse_public_key(key)
        from dkim import bitsize
        return pk, bitsize(pk["modulus"])
    except Exception:
        return "ASN1 parser: Error in TAG."


def verify_message(headers: list[bytes], body: bytes, *,
                   hashes: list[str], keytypes: list[str],
                   min_keysizes: str, stop_at_pass: bool,
                   dns_txt: Callable[[str], str | None],
                   log: Callable[[str], None]) -> Verification:
    """pdkim_feed_finish() for a received message (headers as read, body
    with LF line ends)."""
    from dkim.canonicalization import Relaxed, Simple
    import hashlib
    res = Verification()
    pairs = _split_headers(headers)
    sigs = []
    for name, value in pairs:
        if name.lower() == b"dkim-signature":
            s = parse_signature(name + b":" + value)
            if s is not None:
                sigs.append(s)
            if len(sigs) >= 20:
                break
    # Sort (and filter) by the preference lists.
    by_hash = [s for h in hashes for s in sigs if s.hashtype == h]
    res.sigs = [s for k in keytypes for s in by_hash if s.keytype == k]
    if not res.sigs:
        return res
    crlf_body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    canon = {"simple": Simple, "relaxed": Relaxed}
    body_hashes: dict[tuple[str, str, int], bytes] = {}
    for s in res.sigs:
        key = (s.hashtype, s.canon_body, s.bodylength)
        if key not in body_hashes:
            cb = canon[s.canon_body].canonicalize_body(crlf_body)
            if s.bodylength >= 0:
                cb = cb[:s.bodylength]
            body_hashes[key] = hashlib.new(s.hashtype, cb).digest()
        if s.bodyhash is None or body_hashes[key] != s.bodyhash:
            s.status, s.ext = FAILED, R_BODY
    verify_pass = False
    mins = _keyed(min_keysizes)
    for s in res.sigs:
        if s.status == FAILED:
            continue
        if not (s.domain and s.selector and s.headernames and
                s.bodyhash is not None and s.sighash is not None and
                s.version):
            s.status, s.ext = INVALID, R_SIGERR
            continue
        if s.version != 1:
            s.status, s.ext = INVALID, R_VERSION
            continue
        txt = dns_txt(f"{s.selector}._domainkey.{s.domain}.")
        pub = None
        if not txt:
            s.status, s.ext = INVALID, R_UNAVAIL
        else:
            pub = parse_pubkey(txt)
            if pub is None or pub["srvtype"] not in ("*", "email"):
                s.status, s.ext = INVALID, R_DNSREC
                pub = None
        imported: Any = None
        if pub is not None:
            imported = _import_key(s, pub)
            if isinstance(imported, str):
                res.errstr = imported
                s.status, s.ext = INVALID, R_IMPORT
                pub = None
        if pub is None:
            log(f"DKIM: d={s.domain} s={s.selector} [failed key import]")
            continue
        s.pubkey = pub
        pk, s.keybits = imported
        if pub.get("hashes") and s.hashtype not in pub["hashes"].split(":"):
            s.status, s.ext = FAILED, R_ALGO
            continue
        # The header hash: the h= headers (bottom-up, each once), then this
        # signature without its b= value and without the final CRLF.
        ch = canon[s.canon_headers]
        include = [n.strip().lower().encode() for n in
                   s.headernames.split(":")]
        used = [False] * len(pairs)
        data = b""
        for name in include:
            for i in range(len(pairs) - 1, -1, -1):
                if not used[i] and pairs[i][0].lower() == name:
                    used[i] = True
                    n, v = ch.canonicalize_headers([pairs[i]])[0]
                    data += n + b":" + v
                    break
        rawsig = _strip_b_value(s.raw).rstrip(b"\r\n")
        sn, sv = rawsig.split(b":", 1)
        n, v = ch.canonicalize_headers([(sn, sv)])[0]
        data += n + b":" + v.rstrip(b"\r\n")
        hh = hashlib.new(s.hashtype, data).digest()
        ok = False
        if s.keytype == "rsa":
            try:
                from dkim.crypto import RSASSA_PKCS1_v1_5_verify

                class _H:
                    name = s.hashtype

                    def digest(self) -> bytes:
                        return hh
                ok = bool(RSASSA_PKCS1_v1_5_verify(_H(), s.sighash, pk))
            except Exception:
                ok = False
        else:
            try:
                pk.verify(s.sighash, hh)
                ok = True
            except Exception:
                ok = False
        if not ok:
            res.errstr = GNUTLS_VERIFY_FAILED
            s.status, s.ext = FAILED, R_MESSAGE
            continue
        need = mins.get(s.keytype)
        if need is not None and need.isdigit() and int(need) > s.keybits:
            s.status, s.ext = FAILED, R_KEYSIZE
        if s.status == NONE:
            s.status = PASS
            verify_pass = True
            if stop_at_pass:
                break
    if verify_pass:
        res.errstr = None
    return res


def _strip_b_value(raw: bytes) -> bytes:
    """The signature header with the b= tag's value removed (pdkim's
    rawsig_no_b_val: everything kept but the value of b=)."""
    out = bytearray()
    i = 0
    hdr_end = raw.find(b":")
    out += raw[:hdr_end + 1]
    i = hdr_end + 1
    n = len(raw)
    while i < n:
        # at a tag start?
        j = i
        while j < n and raw[j:j + 1] in (b" ", b"\t", b"\r", b"\n"):
            j += 1
        out += raw[i:j]
        i = j
        k = raw.find(b";", i)
        k = n if k < 0 else k
        part = raw[i:k]
        eq = part.find(b"=")
        tag = part[:eq].strip(b" \t\r\n") if eq >= 0 else b""
        if tag == b"b":
            out += part[:eq + 1]
        else:
            out += part
        if k < n:
            out += b";"
        i = k + 1
    return bytes(out)


def _keyed(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in spec.split():
        k, _, v = item.partition("=")
        out[k] = v
    return out


# ---------------------------------------------------------------------------
# the session side

def _opt(session: Any, name: str, default: Any) -> Any:
    v = session.opt.get(name, None)
    return default if v is None else v


def wanted(session: Any, res: Any) -> bool:
    """True when receipt must do DKIM work: verification not disabled,
    recipients left, and a DKIM-Signature: header or a DKIM ACL."""
    if getattr(session, "dkim_disable_verify", False) or \
            not session.recipients:
        return False
    if session.opt.get("acl_smtp_dkim", None):
        return True
    return any(h[:15].lower() == b"dkim-signature:" for h in res.headers)


def _dns_txt(name: str) -> str | None:
    """dkim_exim_query_dns_txt(): the first TXT record that looks like a
    DKIM key (or has no v=), its strings joined."""
    from eximpy.lookups import dnsdb
    status, ans = dnsdb.query(None, name, "TXT")
    if status != "OK" or ans is None:
        return None
    for rd in ans:
        strings = getattr(rd, "strings", None)
        if strings is None:
            continue
        text = b"".join(strings).decode("latin-1")
        if len(text) >= 4096:
            return None
        if not text.startswith("v=") or text[:6].lower() == "v=dkim":
            return text
    return None


@dataclass
class DkimState:
    """What the DKIM step leaves for the DATA ACL and the "<=" line."""

    sigs: list[Signature] = field(default_factory=list)
    signers: str | None = None
    cur_signer: str | None = None
    cur_sig: Signature | None = None
    domain: str | None = None
    selector: str | None = None
    key_length: int = 0
    status: str | None = None
    reason: str | None = None
    overall: str | None = None

    def variables(self) -> dict[str, Any]:
        from eximpy.expand.taint import Tainted
        s = self.cur_sig

        def t(v: str | None) -> str:
            return Tainted(v) if v else ""
        v: dict[str, Any] = {
            "dkim_cur_signer": t(self.cur_signer),
            "dkim_signers": t(self.signers),
            "dkim_domain": t(self.domain),
            "dkim_selector": t(self.selector),
            "dkim_key_length": str(self.key_length),
            "dkim_verify_status": self.status or "",
            "dkim_verify_reason": self.reason or "",
        }
        pk = (s.pubkey if s else None) or {}
        v.update({
            "dkim_algo": s.algo if s else "",
            "dkim_bodylength": str(s.bodylength) if s and s.bodylength >= 0
            else "9999999999999",
            "dkim_canon_body": s.canon_body if s else "",
            "dkim_canon_headers": s.canon_headers if s else "",
            "dkim_copiedheaders": t(s.copiedheaders) if s else "",
            "dkim_created": str(s.created) if s and s.created > 0 else "0",
            "dkim_expires": str(s.expires) if s and s.expires > 0
            else "9999999999999",
            "dkim_headernames": t(s.headernames) if s else "",
            "dkim_identity": t(s.identity) if s else "",
            "dkim_key_granularity": t(pk.get("granularity")) or "*",
            "dkim_key_srvtype": t(pk.get("srvtype")) or "*",
            "dkim_key_notes": t(pk.get("notes")),
            "dkim_key_testing": "1" if pk.get("testing") else "0",
            "dkim_key_nosubdomains": "1" if pk.get("nosub") else "0",
        })
        return v


def _sig_status(s: Signature | None) -> tuple[str, str]:
    """dkim_exim_expand_query() for the status and reason."""
    if s is None or s.policy:
        return NONE, ""
    reason = {R_UNAVAIL: R_UNAVAIL, R_DNSREC: R_DNSREC, R_IMPORT: R_IMPORT,
              R_KEYSIZE: R_KEYSIZE, R_BODY: R_BODY,
              R_MESSAGE: R_MESSAGE}.get(s.ext or "", "")
    return s.status, reason


def _log_sig(state: DkimState, s: Signature | None, acl_status: str | None,
             overridden: bool, verbose: bool,
             log: Callable[[str], None]) -> None:
    """dkim_exim_verify_log_sig()."""
    if s is None:
        return
    # Exim's test: (!overall && status) ? status == "pass" : sig passed
    if (state.overall is None and acl_status is not None):
        if acl_status == PASS:
            state.overall = s.domain
    elif s.status == PASS and not s.policy:
        state.overall = s.domain
    if acl_status is not None and overridden:
        s.policy = True
    if not verbose:
        return
    g = f"DKIM: d={s.domain or '<UNSET>'} s={s.selector or '<UNSET>'}"
    g += (f" c={s.canon_headers}/{s.canon_body} a={s.algo} "
          f"b={len(s.sighash or b'') * 8}")
    if s.identity:
        g += f" i={s.identity}"
    if s.created > 0:
        g += f" t={s.created}"
    if s.expires > 0:
        g += f" x={s.expires}"
    if s.bodylength > -1:
        g += f" l={s.bodylength}"
    if s.policy:
        g += f" [{state.status} - {state.reason}]"
    elif s.status == NONE:
        g += " [not verified]"
    elif s.status == INVALID:
        g += " [invalid - " + {
            R_UNAVAIL: "public key record (currently?) unavailable]",
            R_DNSREC: "syntax error in public key record]",
            R_IMPORT: "syntax error in public key record]",
            R_SIGERR: "signature tag missing or invalid]",
            R_VERSION: "unsupported DKIM version]",
        }.get(s.ext or "", "unspecified problem]")
    elif s.status == FAILED:
        g += " [verification failed - " + {
            R_BODY: "body hash mismatch (body probably modified in "
                    "transit)]",
            R_MESSAGE: "signature did not verify (headers probably "
                       "modified in transit)]",
            R_KEYSIZE: "signature invalid (key too short)]",
        }.get(s.ext or "", "unspecified reason]")
    else:
        g += " [verification succeeded]"
    log(g)


def _listele(items: list[str]) -> str:
    """string_append_listele() with ':': a ':' inside an item is doubled."""
    return ":".join(i.replace(":", "::") for i in items)


def run_on_receipt(session: Any, res: Any, mid: str | None,
                   headers: Any, extra: dict[str, Any]) -> AclResult | None:
    """Verify, run acl_smtp_dkim per signer, log; ``extra`` (the variables
    the MIME and DATA ACLs get) is updated with the $dkim_* results.
    Returns the first ACL result that is not OK, else None."""
    from eximpy.log.format import LogSelector
    def log(text: str) -> None:
        if session.log is not None:
            session.log.main(text, mid) if mid else session.log.main(text)
    sel = getattr(session.log, "selector", None)
    if sel is None:
        sel = LogSelector.from_config(session.config)
    verbose = "dkim_verbose" in sel
    acl = session.opt.get("acl_smtp_dkim", None)
    signers_opt = session.opt.get("dkim_verify_signers", None)
    if signers_opt is None:
        signers_opt = "$dkim_signers"
    minimal = bool(_opt(session, "dkim_verify_minimal", False))
    hashes = [h for h in str(_opt(session, "dkim_verify_hashes",
                                  "sha256:sha512")).split(":") if h]
    keytypes = [k for k in str(_opt(session, "dkim_verify_keytypes",
                                    "ed25519:rsa")).split(":") if k]
    mins = str(_opt(session, "dkim_verify_min_keysizes",
                    "rsa=1024 ed25519=250"))
    run_acl = bool(acl) and bool(signers_opt)
    v = verify_message(res.headers, bytes(res.body), hashes=hashes,
                       keytypes=keytypes, min_keysizes=mins,
                       stop_at_pass=minimal,
                       dns_txt=_dns_txt, log=log)
    if v.errstr and not any(s.status == PASS for s in v.sigs):
        log(f"DKIM: validation error: {v.errstr}")
    state = DkimState(sigs=v.sigs)
    items = []
    for s in v.sigs:
        if s.domain:
            items.append(s.domain)
        if s.identity:
            items.append(s.identity)
    state.signers = _listele(items) if items else None
    session.__dict__["dkim_state"] = state
    result: AclResult | None = None
    if run_acl:
        variables = dict(extra)
        variables.update(state.variables())
        try:
            expanded = session._expand(str(signers_opt), variables)
        except Exception as exc:
            session._log_panic("expansion of dkim_verify_signers option "
                               f"failed: {exc}")
            expanded = ""
        from eximpy.expand.lists import iter_list
        seen: list[str] = []
        results: list[str] = []
        for item in iter_list(expanded):
            if not item or item in seen:
                continue
            seen.append(item)
            r = _acl_run(session, acl, item, state, extra, results, minimal,
                         verbose, log)
            if r is not None and r.rc != OK:
                result = r
                break
        state.status = _listele(results) if results else None
    else:
        for s in v.sigs:
            _log_sig(state, s, None, False, verbose, log)
    extra.update(state.variables())
    extra["authresults_extra"] = lambda: authres(state)
    return result


def _acl_run(session: Any, acl: str, item: str, state: DkimState,
             extra: dict[str, Any], results: list[str], minimal: bool,
             verbose: bool, log: Callable[[str], None]) -> AclResult | None:
    """dkim_exim_acl_run(): the ACL for each matching signature."""
    state.status, state.reason, state.cur_signer = NONE, "", item
    ran: AclResult | None = None
    for s in state.sigs:
        cmp = s.identity if "@" in item else s.domain
        if cmp is None or cmp.lower() != item.lower():
            continue
        state.cur_sig = s
        state.domain, state.selector = s.domain, s.selector
        state.key_length = s.keybits
        state.status, state.reason = _sig_status(s)
        ran = _acl_call(session, acl, state, extra, results, verbose, log)
        if ran.rc != OK:
            return ran
    if ran is not None:
        return ran
    state.cur_sig = None
    return _acl_call(session, acl, state, extra, results, verbose, log)


def _acl_call(session: Any, acl: str, state: DkimState,
              extra: dict[str, Any], results: list[str], verbose: bool,
              log: Callable[[str], None]) -> AclResult:
    variables = dict(extra)
    variables.update(state.variables())
    r = session._acl("dkim", acl, headers=None, extra=variables)
    set_vars = r.__dict__.get("set_vars") or {}
    overridden = False
    if "dkim_verify_status" in set_vars:
        state.status = str(set_vars["dkim_verify_status"])
        overridden = True
    if "dkim_verify_reason" in set_vars:
        state.reason = str(set_vars["dkim_verify_reason"])
        overridden = True
    _log_sig(state, state.cur_sig, state.status, overridden, verbose, log)
    results.append(state.status or "")
    return r


def authres(state: DkimState) -> str:
    """authres_dkim(): the dkim part of ${authresults}."""
    g = ""
    for s in state.sigs:
        g += ";\n\tdkim="
        if s.policy:
            g += f"policy ({state.status} - {state.reason})"
        elif s.status == NONE:
            g += "none"
        elif s.status == INVALID:
            g += {
                R_UNAVAIL: "tmperror (pubkey unavailable)\n\t\t",
                R_DNSREC: "neutral (public key record import problem)\n\t\t",
                R_IMPORT: "neutral (public key record import problem)\n\t\t",
                R_SIGERR: "neutral (signature tag missing or invalid)\n\t\t",
                R_VERSION: "neutral (unsupported DKIM version)\n\t\t",
            }.get(s.ext or "", "permerror (unspecified problem)\n\t\t")
        elif s.status == FAILED:
            if s.ext == R_BODY:
                g += ("fail (body hash mismatch; body probably modified in "
                      "transit)\n\t\t")
            elif s.ext == R_MESSAGE:
                g += ("fail (signature did not verify; headers probably "
                      "modified in transit)\n\t\t")
            elif s.ext == R_KEYSIZE:
                g += f"fail (public key too short: {s.keybits} bits)\n\t\t"
            else:
                g += "fail (unspecified reason)\n\t\t"
        elif s.status == PASS:
            g += "pass"
        else:
            g += "permerror"
        if s.domain:
            g += f" header.d={s.domain}"
        if s.identity:
            g += f" header.i={s.identity}"
        if s.selector:
            g += f" header.s={s.selector}"
        g += f" header.a={s.algo}"
    return g


# ---------------------------------------------------------------------------
# ACL conditions

def acl_dkim_signers(call: Any, arg: str, msgs: Any) -> str:
    cur = call.var("dkim_cur_signer")
    if not cur:
        return FAIL
    rc, _ = call.lists.string(cur, arg)
    return rc


def acl_dkim_status(call: Any, arg: str, msgs: Any) -> str:
    rc, _ = call.lists.string(call.var("dkim_verify_status"), arg)
    return rc


__all__ = ["verify_message", "wanted", "run_on_receipt", "acl_dkim_signers",
           "acl_dkim_status", "authres"]
