"""bench_expand: how fast is string expansion, first parse vs cached tree.

DESCRIPTION
    Expands Exim's default received_header_text and an ACL-like condition
    100,000 times each (override with -n) in an SMTP-like context, and
    reports expansions per second.  It also measures the cost of a first
    expansion (parse + evaluate, tree cache cleared every time) against a
    repeat (cached tree), and fails (exit 1) unless the repeat is at least
    10 times cheaper for both strings.  The two are timed in five
    alternating rounds, in CPU time of this process (the machine's cores
    are shared, and its load moves).  The repeat's evaluation is itself
    cheap: literal parts of conditions (numbers, regular expressions) are
    prepared once per tree, plain variables are read without a call, and
    the match_* conditions go straight to eximpy.match (see
    eximpy/expand/evaluate.py, "Specialised two-argument conditions").

    Run: .venv/bin/python tools/bench_expand.py [-n COUNT]

SEE ALSO
    eximpy/expand/parser.py (the tree cache).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eximpy.expand import ExpandContext, expand_string, expand_check_condition  # noqa: E402
from eximpy.expand import parser as P  # noqa: E402
from eximpy.expand.taint import Tainted  # noqa: E402

RECEIVED = (
    "Received: ${if def:sender_rcvhost {from $sender_rcvhost\\n\\t}"
    "{${if def:sender_ident {from ${quote_local_part:$sender_ident} }}"
    "${if def:sender_helo_name {(helo=$sender_helo_name)\\n\\t}}}}"
    "by $primary_hostname ${if def:received_protocol {with $received_protocol }}"
    "${if def:tls_in_ver        { ($tls_in_ver)}}"
    "${if def:tls_in_cipher_std { tls $tls_in_cipher_std\\n\\t}}"
    "(Exim $version_number)\\n\\t${if def:sender_address "
    "{(envelope-from <$sender_address>)\\n\\t}}id $message_exim_id"
    "${if def:received_for {\\n\\tfor $received_for}}")

ACL_CONDITION = (
    "${if and{{match_domain{$domain}{+local_domains}}"
    "{!match_ip{$sender_host_address}{+relay_from_hosts}}"
    "{or{{eq{$sender_address}{}}{match{$local_part}{\\N^[a-z0-9._-]+$\\N}}}}"
    "{>{$message_size}{1K}}}{yes}{no}}")


ROUNDS = 5


class _Main:
    def __init__(self, d):
        self.d = d

    def get(self, name):
        return self.d.get(name)


class _NL:
    def __init__(self, value):
        self.value = value


class _Config:
    filename = "/etc/eximpy/bench.conf"
    main = _Main({"primary_hostname": "mx.example.test", "qualify_domain": "example.test"})
    named_lists = {"domain": {"local_domains": _NL("example.test : example.org : @")},
                   "host": {"relay_from_hosts": _NL("127.0.0.1 : 10.0.0.0/8 : ::1")},
                   "address": {}, "localpart": {}}


def context() -> ExpandContext:
    return ExpandContext(config=_Config(), variables={
        "sender_rcvhost": Tainted("client.example.net ([192.0.2.7] port=53211 helo=client)"),
        "sender_helo_name": Tainted("client"),
        "received_protocol": "esmtps", "tls_in_ver": "TLS1.3",
        "tls_in_cipher_std": "TLS_AES_256_GCM_SHA384",
        "sender_address": Tainted("alice@example.net"),
        "message_exim_id": "1tXyZa-000Abc-2D", "received_for": Tainted("bob@example.test"),
        "domain": Tainted("example.test"), "local_part": Tainted("bob"),
        "sender_host_address": Tainted("192.0.2.7"), "message_size": "4711",
    })


def rate(n: int, fn) -> float:
    """Calls of fn per second of this process's CPU time (the machine's
    cores are shared: wall-clock time would count other processes' work)."""
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return n / max(time.process_time() - t0, 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    a = ap.parse_args(argv)
    ctx = context()
    out = expand_string(RECEIVED, ctx)
    assert out.startswith("Received: from client.example.net"), out
    assert expand_string(ACL_CONDITION, ctx) == "yes"
    ok = True
    for name, text in (("received_header_text", RECEIVED), ("acl condition", ACL_CONDITION)):
        m = max(a.n // 20, 200)

        def first():
            P._CACHE.clear()
            expand_string(text, ctx)

        def cached():
            expand_string(text, ctx)
        # The cached and the first expansions are timed in alternating
        # rounds, so that a change of the machine's load during the run
        # (shared cores) weighs on both alike; the rates are totals.
        t_cached = t_first = 0.0
        for _ in range(ROUNDS):
            t_cached += a.n / ROUNDS / rate(a.n // ROUNDS, cached)
            t_first += m / ROUNDS / rate(m // ROUNDS, first)
        r = a.n / t_cached
        r_first = m / t_first
        P._CACHE.clear()
        r_parse = rate(m, lambda: P.parse(text))
        speedup = r / r_first
        print(f"{name}: {r:,.0f} expansions/CPU-s cached; first expansion (parse+evaluate) "
              f"{r_first:,.0f}/s; parse only {r_parse:,.0f}/s; repeat is "
              f"{speedup:.1f}x cheaper than first")
        if speedup < 10:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
