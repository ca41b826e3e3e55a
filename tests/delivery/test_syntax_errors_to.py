"""skip_syntax_errors + syntax_errors_to/_text: the skipped errors are
logged and mailed as Exim does (its References: line included)."""
from __future__ import annotations

from pathlib import Path

from _pair import ROOT, log_lines, run_pair, spool_reports

WORK = ROOT / "tests" / "_work" / "syntax_errors_to"
CONF = (Path(__file__).resolve().parent / "confs" / "syntax_errors.conf").read_text()


def test_syntax_errors_message():
    ex, py, ids = run_pair(WORK, CONF, [(["-f", "s@remote.example", "user"],
                                         "Subject: se\n\nbody\n")],
                           {"fwd": "good@example.org, bad address here, also bad <\n"})
    assert log_lines(py, ids) == log_lines(ex, ids)
    rx, rp = spool_reports(ex, ids), spool_reports(py, ids)
    assert len(rx) == 1
    assert rp == rx
