"""Certificate fields for ${certextract} and hashes of $tls_*_*cert.

DESCRIPTION
    A certificate variable ($tls_in_peercert ...) is given to the expander
    as ctx.variables["<name>_object"]: a cryptography x509.Certificate or
    its DER bytes.  extract(cert, field, ...) serves ${certextract};
    fingerprint(cert, algo) and der_b64(cert) serve ${md5:$cert},
    ${sha1:..}, ${sha256:..} and ${base64:..}; dn(name) gives a
    Distinguished Name as Exim shows it ($tls_in_peerdn, certextract's
    subject and issuer).

    The formats are those of Debian's Exim 4.96, which is built with GnuTLS
    (tests/expand/test_certextract.py compares them with real Exim over a
    TLS session):

      version        the X.509 version number ("3")
      serial_number  lowercase hex, no leading zeros
      subject issuer the DN in certificate order, RFC 4514 escapes
                     ("C=DE,O=Example\\, Inc.,CN=x"); a modifier naming an
                     RDN type ("CN", "O" ...) gives those values as a list,
                     ">c" sets its separator (default newline)
      notbefore notafter  "%b %e %T %Y %Z" in the local time zone (GMT
                     when timezone is utc); modifier "int": epoch seconds
      sig_algorithm  GnuTLS's name ("RSA-SHA256", "ECDSA-SHA384" ...)
      signature      lowercase hex bytes separated by spaces
      subj_altname   DNS, URI and MAIL names as a tagged list ("DNS=a\\nMAIL=b");
                     modifiers "dns", "uri", "mail" select one type (no
                     tags), ">c" sets the separator
      ocsp_uri crl_uri  lists, with ">c" for the separator
      <dotted OID>   the extension's DER value as spaced hex bytes; an
                     absent one is an expansion error

    A field is known by the start of its text ("versionX" is version), caseful;
    an unknown one is 'bad field selector "x" for certextract'.

SEE ALSO
    spec section "Expansion items" (certextract).
"""
from __future__ import annotations

import base64
import hashlib
import time

from eximpy.errors import ExpansionError


def _load(cert):
    from cryptography import x509
    if isinstance(cert, (bytes, bytearray)):
        return x509.load_der_x509_certificate(bytes(cert))
    return cert


def _der(cert) -> bytes:
    if isinstance(cert, (bytes, bytearray)):
        return bytes(cert)
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


def fingerprint(cert, algo: str) -> str:
    return hashlib.new(algo, _der(cert)).hexdigest().upper()


def der_b64(cert) -> str:
    return base64.b64encode(_der(cert)).decode()


# ------------------------------------------------------------ DER walking

def _tlv(b: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the element at b[i]."""
    tag = b[i]
    n = b[i + 1]
    j = i + 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(b[j:j + k], "big")
        j += k
    return tag, j, j + n


def _children(b: bytes, start: int, end: int):
    i = start
    while i < end:
        tag, s, e = _tlv(b, i)
        yield tag, s, e
        i = e


def _oid_text(b: bytes) -> str:
    out = []
    v = 0
    for k, byte in enumerate(b):
        v = (v << 7) | (byte & 0x7f)
        if not byte & 0x80:
            if not out:
                first = min(v // 40, 2)
                out += [first, v - 40 * first]
            else:
                out.append(v)
            v = 0
    return ".".join(str(x) for x in out)


def raw_extensions(cert) -> list[tuple[str, bytes]]:
    """(dotted OID, DER value bytes) of every extension, in order."""
    b = _der(cert)
    _t, s, _e = _tlv(b, 0)                  # Certificate
    _t, ts, te = _tlv(b, s)                 # tbsCertificate
    out = []
    for tag, cs, ce in _children(b, ts, te):
        if tag != 0xa3:                     # [3] extensions
            continue
        _t, ss, se = _tlv(b, cs)            # SEQUENCE OF Extension
        for _t2, es, ee in _children(b, ss, se):
            parts = list(_children(b, es, ee))
            oid = _oid_text(b[parts[0][1]:parts[0][2]])
            val = parts[-1]
            out.append((oid, b[val[1]:val[2]]))
    return out


# ------------------------------------------------------------ names

_ATTR_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "EMAIL",
    "2.5.4.12": "title", "2.5.4.4": "surName", "2.5.4.42": "givenName",
    "2.5.4.43": "initials", "2.5.4.44": "generationQualifier", "2.5.4.5": "serialNumber",
    "2.5.4.17": "postalCode", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "2.5.4.15": "businessCategory",
}


def _bytes_str(v: str) -> str:
    """A Unicode value as eximpy strings hold bytes (GnuTLS gives UTF-8,
    and eximpy strings are UTF-8 with surrogateescape): unchanged."""
    return v


def _escape(v: str) -> str:
    out = []
    for k, ch in enumerate(v):
        if ch in ',+"\\<>;' or (k == 0 and ch in "# ") or (k == len(v) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def dn(name) -> str:
    """A cryptography x509.Name as Exim (GnuTLS) prints it."""
    rdns = []
    for rdn in name.rdns:
        parts = []
        for a in rdn:
            oid = a.oid.dotted_string
            label = _ATTR_NAMES.get(oid)
            if label is None:
                parts.append(f"{oid}=#{a.public_bytes().hex()}" if hasattr(a, "public_bytes")
                             else f"{oid}={_escape(str(a.value))}")
            else:
                v = a.value if isinstance(a.value, str) else a.value.decode("utf-8", "surrogateescape")
                parts.append(f"{label}={_escape(_bytes_str(v))}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def subject_dn(cert) -> str:
    """$tls_in_peerdn / $tls_out_peerdn for a certificate."""
    return dn(_load(cert).subject)


def _listele(items: list[str], sep: str) -> str:
    """Exim's string_append_listele(): separators in an element doubled."""
    return sep.join(x.replace(sep, sep + sep) for x in items)


def _field_from_dn(text: str, mods: list[str]) -> str | None:
    outsep = "\n"
    match = None
    for m in mods:
        if not m.startswith(">"):
            match = m
        elif len(m) > 1:
            outsep = m[1]
    # "\," inside a value stays a comma of that value
    elems = []
    cur = []
    i = 0
    while i < len(text):
        if text.startswith("\\,", i):
            cur.append(",")
            i += 2
            continue
        if text[i] == ",":
            elems.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    elems.append("".join(cur))
    out = []
    for e in elems:
        if match is None:
            out.append(e)
        elif e.startswith(match) and e[len(match):len(match) + 1] == "=":
            out.append(e[len(match) + 1:])
    return _listele(out, outsep) if out else None


# ------------------------------------------------------------ fields

_SIG_NAMES = {
    "1.2.840.113549.1.1.4": "RSA-MD5", "1.2.840.113549.1.1.5": "RSA-SHA1",
    "1.2.840.113549.1.1.14": "RSA-SHA224", "1.2.840.113549.1.1.11": "RSA-SHA256",
    "1.2.840.113549.1.1.12": "RSA-SHA384", "1.2.840.113549.1.1.13": "RSA-SHA512",
    "1.2.840.10045.4.1": "ECDSA-SHA1", "1.2.840.10045.4.3.1": "ECDSA-SHA224",
    "1.2.840.10045.4.3.2": "ECDSA-SHA256", "1.2.840.10045.4.3.3": "ECDSA-SHA384",
    "1.2.840.10045.4.3.4": "ECDSA-SHA512", "1.3.101.112": "EdDSA-Ed25519",
    "1.3.101.113": "EdDSA-Ed448", "1.2.840.10040.4.3": "DSA-SHA1",
    "2.16.840.1.101.3.4.3.2": "DSA-SHA256", "1.2.840.113549.1.1.10": "RSA-PSS",
}


_FIELD_NAMES = ("version", "serial_number", "subject", "issuer", "notbefore", "notafter",
                "sig_algorithm", "signature", "subj_altname", "ocsp_uri", "crl_uri")


def _time(ts: float, mod: str | None, utc: bool) -> str:
    if mod == "int":
        return str(int(ts) & 0xffffffff)
    if utc:
        return time.strftime("%b %e %T %Y GMT", time.gmtime(ts))
    return time.strftime("%b %e %T %Y %Z", time.localtime(ts))


def _sig_name(c) -> str | None:
    oid = c.signature_algorithm_oid.dotted_string
    name = _SIG_NAMES.get(oid)
    if name == "RSA-PSS":
        h = getattr(c.signature_hash_algorithm, "name", "sha256").upper()
        return f"RSA-PSS-{h.replace('SHA', 'SHA')}"
    return name


def extract(cert, field: str, utc: bool = False) -> str | None:
    """${certextract{field}{cert}}: the value, or None (not found).
    ``utc``: the timezone option says UTC."""
    from cryptography import x509
    c = _load(cert)
    if field[:1].isdigit():
        # the whole field is the OID (a modifier makes it one that is absent)
        found = [v for oid, v in raw_extensions(c) if oid == field]
        if not found:
            raise ExpansionError("tls_cert_ext_by_oid: ge0 fail: The requested data were "
                                 "not available.\n")
        return " ".join(f"{x:02x}" for x in found[0])
    # A field is known by its name's prefix ("versionX" is version); a
    # modifier follows the name after a comma.
    for lname in _FIELD_NAMES:
        if field.startswith(lname):
            break
    else:
        raise ExpansionError(f'bad field selector "{field}" for certextract')
    comma = field[len(lname):len(lname) + 1] == ","
    modtext = field[len(lname) + 1:] if comma else ""
    mods = modtext.split(",") if comma else []
    mod = modtext if comma else None
    if lname == "version":
        return str(c.version.value + 1)
    if lname == "serial_number":
        return f"{c.serial_number:x}"
    if lname in ("subject", "issuer"):
        text = dn(c.subject if lname == "subject" else c.issuer)
        if not comma:
            return text
        return _field_from_dn(text, mods)
    if lname == "notbefore":
        return _time(c.not_valid_before_utc.timestamp(), mod, utc)
    if lname == "notafter":
        return _time(c.not_valid_after_utc.timestamp(), mod, utc)
    if lname == "sig_algorithm":
        return _sig_name(c)
    if lname == "signature":
        return " ".join(f"{x:02x}" for x in c.signature)
    if lname == "subj_altname":
        sep = "\n"
        want = None
        rest = modtext if comma else ""
        while rest:                       # read character by character, as Exim
            if rest[0] == ">" and len(rest) > 1:
                sep = rest[1]
                rest = rest[2:]
            elif rest.startswith(("dns", "uri", "mail")):
                want = "mail" if rest[0] == "m" else rest[:3]
                rest = rest[len(want):]
            else:
                break
            if not rest.startswith(","):
                break
            rest = rest[1:]
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None
        out = []
        for g in san:
            if isinstance(g, x509.DNSName):
                tag, kind = "DNS", "dns"
            elif isinstance(g, x509.RFC822Name):
                tag, kind = "MAIL", "mail"
            elif isinstance(g, x509.UniformResourceIdentifier):
                tag, kind = "URI", "uri"
            else:
                continue          # other name types are not shown
            if "\0" in g.value or (want is not None and want != kind):
                continue
            v = _bytes_str(g.value)
            out.append(v if want else f"{tag}={v}")
        return _listele(out, sep) if out else None
    if lname in ("ocsp_uri", "crl_uri"):
        sep = mod[1] if mod and mod.startswith(">") and len(mod) > 1 else "\n"
        try:
            if lname == "ocsp_uri":
                aia = c.extensions.get_extension_for_class(
                    x509.AuthorityInformationAccess).value
                uris = [d.access_location.value for d in aia
                        if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
            else:
                cdp = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
                uris = [n.value for dp in cdp for n in (dp.full_name or [])
                        if isinstance(n, x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            return None
        return _listele(uris, sep) if uris else None
    raise ExpansionError(f'bad field selector "{field}" for certextract')
