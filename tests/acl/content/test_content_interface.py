"""eximpy.acl.content.run_mime_acl() for callers other than the SMTP
session (acl_not_smtp_mime): the same parts and $mime_* values as real
Exim gave for the same message over SMTP (the mime_vars_multi golden)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from content_harness import WORK, conf_text  # noqa: E402
from oracle import GOLDEN, _parse_golden  # noqa: E402
from test_content_mime import MIME_VARS, MULTI  # noqa: E402


def test_run_mime_acl_matches_smtp_walk() -> None:
    from eximpy.acl.content import attach_content_scan, run_mime_acl, \
        unspool_after
    from eximpy.acl.engine import make_runner
    from eximpy.acl.runner import OK, AclEnv
    from eximpy.config import load_config
    d = WORK / "interface"
    spool = d / "spool"
    (spool / "log").mkdir(parents=True, exist_ok=True)
    conf = d / "conf"
    conf.write_text(conf_text("mime:\n" + MIME_VARS + "  accept\n", "", d,
                              spool))
    cfg = load_config(str(conf))
    logged: list[str] = []
    engine = make_runner(cfg)
    head, _, body = MULTI.partition("\n\n")
    hlines = [ln + "\n" for ln in head.split("\n")]
    merged: list[str] = []
    for ln in hlines:                       # unfold into header lines
        if ln[0] in " \t" and merged:
            merged[-1] += ln
        else:
            merged.append(ln)
    v: dict = {"message_id": "1abcde-000000-00"}
    scan = attach_content_scan(v, str(spool), "1abcde-000000-00", merged,
                               body.encode(), "a@b.c", ["d@example.org"])

    def run(vars_: dict):
        env = AclEnv(variables=vars_, log=logged.append)
        return engine.check("mime", "mime", env)
    r = run_mime_acl(run, v, merged, body.encode())
    assert r is not None and r.rc == OK
    assert scan.spooled
    unspool_after(v, r, None)
    assert not (spool / "scan" / "1abcde-000000-00").exists()
    want = [ln.split(" ", 2)[2] for ln in _parse_golden(
        (GOLDEN / "acl_content" / "mime_vars_multi").read_text()).err.split(
        "\n") if ln.startswith("LOG: MSGID part=")]
    got = [ln.split(" ", 1)[1] if ln.startswith("1abcde") else ln
           for ln in logged if "part=" in ln]
    assert got == want and len(want) == 6
