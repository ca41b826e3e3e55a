"""Certificate fields for ${certextract} and hashes of $tls_*_*cert.

DESCRIPTION
    A certificate variable ($tls_in_peercert ...) is given to the expander
    as ctx.variables["<name>_object"]: a cryptography x509.Certificate or
    its DER bytes.  extract(cert, field) serves ${certextract}: version,
    serial_number, subject, issuer, notbefore, notafter, sig_algorithm,
    signature, subj_altname, ocsp_uri, crl_uri (a numeric field is an OID).
    fingerprint(cert, algo) and der_b64(cert) serve ${md5:$cert},
    ${sha1:..}, ${sha256:..} and ${base64:..}.

    Formats follow Exim's OpenSSL build as documented; they are not checked
    against a real Exim here (the Debian build uses GnuTLS, and -be has no
    certificate to show).

SEE ALSO
    spec section "Expansion items" (certextract).
"""
from __future__ import annotations

import base64
import hashlib


def _load(cert):
    from cryptography import x509
    if isinstance(cert, (bytes, bytearray)):
        return x509.load_der_x509_certificate(bytes(cert))
    return cert


def _der(cert) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding
    c = _load(cert)
    return c.public_bytes(Encoding.DER)


def fingerprint(cert, algo: str) -> str:
    return hashlib.new(algo, _der(cert)).hexdigest().upper()


def der_b64(cert) -> str:
    return base64.b64encode(_der(cert)).decode()


def _time(t) -> str:
    return t.strftime("%b %d %H:%M:%S %Y GMT")


def extract(cert, field: str) -> str | None:
    from cryptography import x509
    c = _load(cert)
    name, _, mod = field.partition(",")
    if name[:1].isdigit():
        try:
            ext = c.extensions.get_extension_for_oid(x509.ObjectIdentifier(name))
        except (x509.ExtensionNotFound, ValueError):
            return None
        return ext.value.public_bytes().hex() if hasattr(ext.value, "public_bytes") else str(
            ext.value)
    if name == "version":
        return str(c.version.value + 1)
    if name == "serial_number":
        return f"{c.serial_number:x}"
    if name == "subject":
        return c.subject.rfc4514_string()
    if name == "issuer":
        return c.issuer.rfc4514_string()
    if name == "notbefore":
        return _time(c.not_valid_before_utc)
    if name == "notafter":
        return _time(c.not_valid_after_utc)
    if name == "sig_algorithm":
        return c.signature_algorithm_oid._name
    if name == "signature":
        return base64.b64encode(c.signature).decode()
    if name == "subj_altname":
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None
        out = []
        for g in san:
            if isinstance(g, x509.DNSName):
                out.append("DNS=" + g.value)
            elif isinstance(g, x509.RFC822Name):
                out.append("MAIL=" + g.value)
            elif isinstance(g, x509.UniformResourceIdentifier):
                out.append("URI=" + g.value)
            elif isinstance(g, x509.IPAddress):
                out.append("IP=" + str(g.value))
        sep = mod[:1] if mod.startswith(">") is False and mod else "\n"
        if mod.startswith(">"):
            sep = mod[1:2]
        return sep.join(out)
    if name == "ocsp_uri" or name == "crl_uri":
        try:
            if name == "ocsp_uri":
                aia = c.extensions.get_extension_for_class(
                    x509.AuthorityInformationAccess).value
                uris = [d.access_location.value for d in aia
                        if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
            else:
                cdp = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
                uris = [n.value for dp in cdp for n in (dp.full_name or [])]
        except x509.ExtensionNotFound:
            return None
        return "\n".join(uris)
    from eximpy.errors import ExpansionError
    raise ExpansionError(f'bad field selector "{field}" for certextract')
