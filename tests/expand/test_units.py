"""Unit tests: taint propagation, certificates, cdb writer/reader,
exim_dbmbuild against the real one, the lookup cache, the public API."""
from __future__ import annotations

import datetime
import shutil
import subprocess

import pytest

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand import (ExpandContext, Tainted, expand_check_condition, expand_string,
                           is_tainted)


def test_taint_propagation():
    ctx = ExpandContext(variables={"local_part": Tainted("Evil"), "domain": "ok"})
    assert is_tainted(expand_string("x$local_part", ctx))
    assert is_tainted(expand_string("${uc:$local_part}", ctx))
    assert is_tainted(expand_string("${sg{$local_part}{E}{e}}", ctx))
    assert is_tainted(expand_string("${extract{1}{:}{$local_part:b}}", ctx))
    assert not is_tainted(expand_string("${md5:$local_part}", ctx))
    assert not is_tainted(expand_string("${strlen:$local_part}", ctx))
    assert not is_tainted(expand_string("$domain ${uc:$domain}", ctx))
    with pytest.raises(ExpansionError, match="attempt to expand tainted string"):
        expand_string(Tainted("$domain"), ctx)
    assert expand_string(Tainted("plain"), ctx) == "plain"


def test_lookup_results_untainted(tmp_path):
    f = tmp_path / "l"
    f.write_text("evil: /etc/hostname\n")
    ctx = ExpandContext(variables={"local_part": Tainted("evil")})
    r = expand_string(f"${{lookup{{$local_part}}lsearch{{{f}}}}}", ctx)
    assert r == "/etc/hostname" and not is_tainted(r)
    r = expand_string(f"${{lookup{{$local_part}}lsearch,ret=key{{{f}}}}}", ctx)
    assert r == "evil" and not is_tainted(r)


def test_check_condition():
    ctx = ExpandContext(variables={"domain": "x"})
    assert expand_check_condition("${if eq{$domain}{x}}", ctx)
    for false in ("", "0", "no", "FALSE", "${if eq{$domain}{y}}"):
        assert not expand_check_condition(false, ctx)
    errors = []
    assert not expand_check_condition("${nosuch", ctx, errors.append)
    assert errors and "not a known operator" in errors[0]
    assert not expand_check_condition("${if eq{a}{b}{x}fail}", ctx, errors.append)
    assert len(errors) == 1


def test_forced_fail_and_error_types():
    ctx = ExpandContext()
    with pytest.raises(ExpansionForcedFail):
        expand_string("${if eq{a}{b}{x}fail}", ctx)
    with pytest.raises(ExpansionError):
        expand_string("${uc:", ctx)


def test_headers_and_acl_vars():
    ctx = ExpandContext(headers=[("Subject", Tainted(" Hi there\n")),
                                 ("To", Tainted(" a@b\n")), ("To", Tainted(" c@d\n"))],
                        acl_m={"acl_m_x": "mx"}, acl_c={"acl_c0": "c0"})
    assert expand_string("$h_subject:|$rh_subject:|$h_to:", ctx) == \
        "Hi there| Hi there\n|a@b,\nc@d"
    assert expand_string("$acl_m_x $acl_c0 [$acl_m_unset]", ctx) == "mx c0 []"


def test_cert_fields():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.example.test")])
    c = (x509.CertificateBuilder().subject_name(n).issuer_name(n)
         .public_key(k.public_key()).serial_number(0x1234)
         .not_valid_before(datetime.datetime(2025, 1, 1))
         .not_valid_after(datetime.datetime(2027, 1, 1))
         .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.test")]), False)
         .sign(k, hashes.SHA256()))
    ctx = ExpandContext(variables={"tls_in_peercert_object": c})
    assert expand_string("${certextract{subject}{$tls_in_peercert}}", ctx) == \
        "CN=mx.example.test"
    assert expand_string("${certextract{serial_number}{$tls_in_peercert}}", ctx) == "1234"
    assert expand_string("${certextract{subj_altname}{$tls_in_peercert}}", ctx) == \
        "DNS=a.test"
    assert len(expand_string("${sha256:$tls_in_peercert}", ctx)) == 64


def test_cdb_roundtrip(tmp_path):
    from eximpy.lookups.cdb import CDBFile, write_cdb
    p = tmp_path / "x.cdb"
    pairs = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(500)]
    assert write_cdb(str(p), pairs) == 500
    db = CDBFile(p.read_bytes())
    for k, v in pairs:
        assert db.get(k) == v
    assert db.get(b"nope") is None


def test_exim_dbmbuild_output_matches_real(tmp_path, capsys):
    """Our builder prints what Exim's exim_dbmbuild prints for the same input."""
    from spool_tools import exim_dbmbuild
    src = tmp_path / "in"
    src.write_text("k1: v1\nk2 v2\n  cont\n\"q k\": qv\nk1: dup\n# c\n")
    real = shutil.which("exim_dbmbuild")
    assert real, "exim4 (exim_dbmbuild) is needed"
    r = subprocess.run([real, str(src), str(tmp_path / "real")], capture_output=True,
                       text=True)
    rc = exim_dbmbuild.main([str(src), str(tmp_path / "ours")])
    out = capsys.readouterr()
    assert rc == r.returncode
    assert out.out == r.stdout
    assert out.err == r.stderr
    ctx = ExpandContext()
    assert expand_string(f"${{lookup{{k2}}dbm{{{tmp_path / 'ours'}}}}}", ctx) == "v2 cont"


@pytest.mark.parametrize("args", [
    ["/nonexistent/src", "@T@/out"],
    ["@T@/in", "/nonexistent/dir/out"],
    ["@T@/in"],
    ["-nowarn", "-lastdup", "@T@/in", "@T@/out"],
    ["-nolc", "-nozero", "@T@/in", "@T@/out"],
])
def test_exim_dbmbuild_messages_match_real(tmp_path, capsys, args):
    """The same texts and exit codes as Exim's exim_dbmbuild, errors included."""
    from spool_tools import exim_dbmbuild
    (tmp_path / "in").write_text("k1: v1\nK1: dup\nk2: v2\n")
    real = shutil.which("exim_dbmbuild")
    assert real, "exim4 (exim_dbmbuild) is needed"
    (tmp_path / "r").mkdir()
    (tmp_path / "o").mkdir()
    r = subprocess.run([real] + [a.replace("@T@", str(tmp_path / "r")) if a.endswith("out")
                                 else a.replace("@T@", str(tmp_path)) for a in args],
                       capture_output=True, text=True)
    rc = exim_dbmbuild.main([a.replace("@T@", str(tmp_path / "o")) if a.endswith("out")
                             else a.replace("@T@", str(tmp_path)) for a in args])
    out = capsys.readouterr()
    assert rc == r.returncode
    assert out.out.replace(str(tmp_path / "o"), "X") == r.stdout.replace(str(tmp_path / "r"), "X")
    assert out.err == r.stderr


def test_lookup_cache_is_per_process_and_tidy(tmp_path):
    from eximpy.lookups import cache
    f = tmp_path / "l"
    f.write_text("a: 1\n")
    ctx = ExpandContext()
    assert ctx.lookup_cache is cache.process_cache()
    assert expand_string(f"${{lookup{{a}}lsearch{{{f}}}}}", ctx) == "1"
    f.write_text("a: 2\n")
    assert expand_string(f"${{lookup{{a}}lsearch{{{f}}}}}", ExpandContext()) == "1"
    cache.tidyup()
    assert expand_string(f"${{lookup{{a}}lsearch{{{f}}}}}", ExpandContext()) == "2"


def test_match_api():
    from eximpy import match as M
    ctx = ExpandContext()
    assert M.match_domain("a.example", "*.example : b", ctx) == (M.OK, "*.example")
    assert M.match_domain("c", "!c : *", ctx)[0] == M.FAIL
    assert M.match_host("10.1.2.3", "", "10.0.0.0/8", ctx)[0] == M.OK
    assert M.match_host("", "", ":", ctx)[0] == M.OK
    assert M.match_address("u@a.example", "*@a.example", ctx) == (M.OK, "*@a.example")
    assert M.match_local_part("Bob", "bob", ctx)[0] == M.OK
    assert M.match_local_part("Bob", "bob", ctx, caseless=False)[0] == M.FAIL
