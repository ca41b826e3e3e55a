"""-be with -oMa -oMaa -oMai -oMas -oMi -oMr -oMs -oMt -p, compared with Exim
(eximpy's command-line parser feeds expand_test.run(invocation=...))."""
from __future__ import annotations

import io

from tests.oracle import exim_run
from tests.expand.conftest import WORK, normalize

V = ("$sender_host_address|$sender_host_port|$sender_host_authenticated|"
     "$authenticated_id|$authenticated_sender|$interface_address|$interface_port|"
     "$received_protocol|$sender_ident|$host_lookup_failed")

SETS = {
    "oM_all": ["-oMa", "192.0.2.1.1234", "-oMaa", "AAA", "-oMai", "philip", "-oMas",
               "xx@yy.zz", "-oMi", "1.1.1.1.99", "-oMr", "special", "-oMt", "me"],
    "oM_name": ["-oMa", "192.0.2.1.1234", "-oMs", "my.host.name"],
    "oM_v6": ["-oMa", "[2001:db8::1]:25", "-oMi", "[::1]:587"],
    "p_option": ["-pspecial:host.name"],
}


def _eximpy(opts: list[str], args: list[str]) -> str:
    from eximpy.cli.options import parse_args
    from eximpy.cli import expand_test
    from eximpy.config import load_config
    inv = parse_args(["exim", "-C", str(WORK / "conf")] + opts + ["-be"] + args)
    out = io.BytesIO()
    expand_test.run(load_config(str(WORK / "conf")), inv.args, io.BytesIO(b""), out,
                    stderr=io.StringIO(), invocation=inv)
    return normalize(out.getvalue().decode("utf-8", "surrogateescape"))


def test_command_line_settings(work):
    args = [V, "${if eq{black}{white}{$sender_host_name}{No}}",
            "$sender_host_name|$received_protocol"]
    for name, opts in SETS.items():
        want = exim_run("expand", f"cmdline_{name}",
                        ["-C", str(WORK / "conf")] + opts + ["-be"] + args,
                        normalize=normalize)
        if name == "oM_all" or name == "oM_v6":
            # $sender_host_name would make Exim do a DNS lookup: not compared
            want_lines = want.out.split("\n")[:2]
            got_lines = _eximpy(opts, args).split("\n")[:2]
        else:
            want_lines = want.out.split("\n")
            got_lines = _eximpy(opts, args).split("\n")
        assert got_lines == want_lines, name
