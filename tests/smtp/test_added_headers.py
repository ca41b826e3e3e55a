"""Where ACL add_header lines go in an SMTP message (:at_start:,
:after_received:, :at_start_rfc:, :at_end:), compared with real
`exim -C conf -bs` (eximpy/acl/nonsmtp.py place_added_headers)."""
from __future__ import annotations

from pathlib import Path

import pytest

from smtp.test_smtp_differential import DATA, MF, Q, RT, _dialogue, d

E = b"EHLO x\r\n"
ACLS = """
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
begin acl
acl_rcpt:
  warn add_header = :at_start:X-Rcpt-Start: r1
  warn add_header = :after_received:X-Rcpt-After: r2
  accept
acl_data:
  warn add_header = :at_start_rfc:X-Data-Rfc: d1
  warn add_header = :after_received:X-Data-After-1: d2
  warn add_header = :after_received:X-Data-After-2: d3
  warn add_header = X-Data-End: d4
  warn remove_header = X-Gone
  accept
"""
CASES = {
    "added_headers_positions": (
        ACLS, d(E, MF, RT, DATA,
                b"Received: from a\r\nReceived: from b\r\nX-Gone: 1\r\n"
                b"Subject: s\r\n\r\nbody\r\n.\r\n", Q)),
    "added_headers_resent": (
        ACLS, d(E, MF, RT, DATA,
                b"Resent-From: r@x\r\nReceived: from a\r\n"
                b"Subject: s\r\n\r\nbody\r\n.\r\n", Q)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_added_header_positions_match_exim(case: str, smtpdir: Path) -> None:
    extra, data = CASES[case]
    _dialogue(case, extra, data, [], smtpdir)
