"""Long ACL messages become multi-line replies as in Exim's acl_check()
(string_split_message, eximpy.acl.engine.split_message), while the log
keeps them whole with their spaces; compared with real `exim -bs`."""
from __future__ import annotations

from pathlib import Path

import pytest

from smtp.test_smtp_differential import MF, Q, _dialogue, d

E = b"EHLO x\r\n"
W40 = "w" * 40
ACL = f"""
acl_smtp_rcpt = r
begin acl
r:
  deny local_parts = a
       message = {W40} {W40} {W40}
  deny local_parts = b
       message = This is a fairly long rejection message that goes on  and \\
                 on beyond seventy-five characters for sure yes
  deny local_parts = c
       message = short\\nsecond line which is also rather long and goes on \\
                 and on and on beyond the limit of chars here
  deny local_parts = d
       message = Rejected: the colon is a preferred place: to break a long \\
                 line like this one here
  deny local_parts = e
       message = {"x" * 90} tail
  defer local_parts = f
        message = {W40} temporarily {W40}
  accept local_parts = g
         message = accepted with a message that is long enough to be split \\
                   into two lines
"""
RCPTS = b"".join(f"RCPT TO:<{c}@d>\r\n".encode() for c in "abcdefg")


@pytest.mark.parametrize("case", ["long_acl_messages"])
def test_long_messages_split_as_exim(case: str, smtpdir: Path) -> None:
    _dialogue(case, ACL, d(E, MF, RCPTS, Q), [], smtpdir)
