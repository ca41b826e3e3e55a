"""SMTP replies: Reply(code, esc, lines) and Exim's multi-line formatting.

SUMMARY
    Reply(code, esc, lines)            one SMTP response (possibly multi-line)
    Reply.text(code, text, esc="")     split text at newlines as Exim does
    Reply.encode() -> bytes            "250-first\\r\\n250 last\\r\\n"
    message_code(default, text, check_valid=True) -> (code, esc, rest, ok)
                                       Exim's smtp_message_code(): a user
                                       message may start with its own code
    printable(data) -> str             escape client bytes for echoing

DESCRIPTION
    Exim sends a reply text containing newlines as several lines with the
    same code, "-" after the code on all but the last; leading white space
    of each continuation line is dropped, and a final newline does not
    make an empty last line (smtp_respond()).  A message configured with
    ``message =`` may start with its own code ("550 5.7.1 go away"); the
    first digit must match the default code or the default is kept
    (smtp_message_code(), check_valid).

SECURITY
    Replies that echo what the client sent (addresses, command arguments)
    pass the client's bytes through printable(): control characters and
    8-bit bytes are escaped, so no bare CR, LF, ESC or BEL ever reaches the
    wire or the logs from a client (DESIGN.md section 7; Exim echoes them).

SEE ALSO
    spec chapter "SMTP processing"; RFC 5321 section 4.2.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Exim's regex_smtp_code: "^\d\d\d\s(?:\d\.\d\d?\d?\.\d\d?\d?\s)?"
_CODE_RE = re.compile(r"^(\d\d\d)\s(?:(\d\.\d\d?\d?\.\d\d?\d?)\s)?")


def printable(data: str | bytes) -> str:
    """Client text made safe for a reply or a log line.

    Printable ASCII stays; backslash, controls and 8-bit characters become
    escapes (``\\n``, ``\\r``, ``\\t``, ``\\x1b`` ...).
    """
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    out = []
    for ch in data:
        o = ord(ch)
        if 32 <= o < 127:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0xDC80 <= o <= 0xDCFF:          # surrogateescape'd byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 256:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch.encode("utf-8", "surrogateescape")
                       .decode("latin-1").encode("unicode_escape")
                       .decode("ascii"))
    return "".join(out)


@dataclass
class Reply:
    """An SMTP reply: three-digit code, optional enhanced status code,
    one or more lines of text."""

    code: int
    esc: str = ""
    lines: list[str] = field(default_factory=lambda: [""])

    @classmethod
    def text(cls, code: int, text: str, esc: str = "") -> "Reply":
        """Split ``text`` at newlines the way Exim's smtp_respond() does."""
        lines: list[str] = []
        msg = text
        while True:
            nl = msg.find("\n")
            if nl < 0:
                lines.append(msg)
                break
            lines.append(msg[:nl])
            if nl + 1 >= len(msg):
                break
            msg = msg[nl + 1:].lstrip()
            if not msg:
                # Exim skips white space after a newline; a message ending
                # "\n  " still gives a final empty line.
                lines.append("")
                break
        return cls(code, esc, lines)

    def encode(self, no_multiline: bool = False) -> bytes:
        """The bytes on the wire; with ``no_multiline`` only the first line
        (Exim's control = no_multiline_responses)."""
        lines = self.lines[:1] if no_multiline else self.lines
        esc = (self.esc + " ") if self.esc else ""
        out = []
        last = len(lines) - 1
        for i, line in enumerate(lines):
            sep = " " if i == last else "-"
            out.append(f"{self.code:03d}{sep}{esc}{line}\r\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        return self.encode().decode("utf-8", "surrogateescape")

    @property
    def first_line(self) -> str:
        esc = (self.esc + " ") if self.esc else ""
        return f"{self.code:03d} {esc}{self.lines[0]}"


def message_code(default: int, text: str, check_valid: bool = True
                 ) -> tuple[int, str, str, bool]:
    """Exim's smtp_message_code().

    Returns (code, esc, remaining text, valid).  When ``text`` starts with
    "ddd " (optionally "ddd d.d.d "), that code is used, unless
    ``check_valid`` and its first digit differs from ``default``'s, in which
    case ``valid`` is False, the default stays and the code is still cut off
    the text (Exim then writes a panic-log line).
    """
    m = _CODE_RE.match(text)
    if not m:
        return default, "", text, True
    rest = text[m.end():]
    if check_valid and m.group(1)[0] != str(default)[0]:
        return default, "", rest, False
    return int(m.group(1)), m.group(2) or "", rest, True
