"""ACL log lines that depend on log_selector defaults, against real
`exim -bs`: a warn statement whose condition defers is logged with
Exim's default selector (acl_warn_skipped), and not with
-acl_warn_skipped."""
from __future__ import annotations

from pathlib import Path

import pytest

from smtp.test_smtp_differential import MF, Q, _dialogue, d

ACL = """
acl_smtp_rcpt = r
{sel}
begin acl
r:
  warn acl = sub
       message = never
  accept
sub:
  defer message = sub defers
"""
CASES = {"warn_skipped_default": "",
         "warn_skipped_off": "log_selector = -acl_warn_skipped"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_warn_skipped_logging(case: str, smtpdir: Path) -> None:
    _dialogue(case, ACL.format(sel=CASES[case]),
              d(b"EHLO x\r\n", MF, b"RCPT TO:<b@d>\r\n", Q), [], smtpdir)
