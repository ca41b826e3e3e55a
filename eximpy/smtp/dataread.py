"""Reading a message's data after DATA or BDAT, with Exim 4.96's line rules.

SUMMARY
    DataReader(size_limit, header_maxsize, header_line_maxsize, chunking)
    r.feed(buf, pos) -> pos       consume bytes; r.done when the message ended
    r.end_chunk(last)             BDAT: the announced chunk has been fed
    r.result -> DataResult        headers, body, counters, how it ended

DESCRIPTION
    The reader is sans-IO: the SMTP session feeds it whatever bytes it has
    and gets back how many it consumed; bytes after the terminating dot
    line stay with the session (pipelined commands).

    Headers (Exim's receive_msg() header loop):
      * the first line's ending decides the mode: CRLF, or bare-LF client;
      * in CRLF mode a bare LF becomes LF SP (the line continues), and a
        bare LF right after a leading "." is a space (so "." LF is not the
        end);
      * a bare CR becomes LF SP in either mode;
      * a leading dot is dropped; "." CRLF (or "." LF for a bare-LF
        client) ends the message;
      * a line that is not "name:" ends the headers and starts the body;
        binary zeros in a header become "?"; trailing white-space-only
        continuation lines are removed.
    Body (read_message_data_smtp() with the CVE-2023-51766 fix Debian
    ships in 4.96):
      * CR LF and bare LF end lines for a bare-LF client; in CRLF mode a
        bare LF is a space, so only CR LF . CR LF ends DATA;
      * a bare CR ends the line (it is never stored); "." after a bare CR
        is data;
      * a leading dot is removed;
      * $body_linecount, $max_received_linelength, $body_zerocount and the
        message size are counted as Exim counts them.
    BDAT (read_message_bdat_smtp()): no dot handling; CR LF, bare CR and
    bare LF all end lines; a missing final newline is added.

    Errors (size limit, ridiculously long header section, header line too
    long, non-CRLF first line under CHUNKING) do not stop the reader: it
    keeps consuming, in the same state, until the message's real end, so
    the session stays in step with the client.  (Exim restarts its
    line-ending state machine when it starts swallowing after the size
    limit, so a "." line hidden in the middle of a line can end the
    message early; eximpy does not -- DESIGN.md section 7.)

SECURITY
    Everything here is client data.  The rules above are what stops SMTP
    smuggling: a message can only end where Exim 4.96 ends it.

SEE ALSO
    spec chapter "SMTP processing" (line endings), options
    message_size_limit, header_maxsize, header_line_maxsize.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generator

# How the message ended (or why it failed).
END_NOTENDED = "notended"
END_DOT = "dot"                     # complete
END_SIZE = "size"                   # message_size_limit exceeded
END_HEADER_SIZE = "header_size"     # header_maxsize exceeded
END_HEADER_LINE = "header_line"     # header_line_maxsize exceeded
END_NOT_CRLF = "not_crlf"           # CHUNKING and first line not CRLF

_LF, _CR, _DOT, _SP, _TAB, _NUL, _COLON = 10, 13, 46, 32, 9, 0, 58

# Body states (Exim's ch_state).
_S_LF, _S_MID, _S_CR, _S_DOT, _S_DOTCR = 0, 1, 2, 3, 4

_SPACE = frozenset(b" \t\n\v\f\r")
# Bytes the header loop must see one at a time.
_HEADER_SPECIAL = re.compile(rb"[\r\n\0]")
# A header block of plain one-line headers and the blank line.
_HEADER_BLOCK = re.compile(
    rb"(?:(?!\.)[!-9;-~]+[ \t\v\f]*:[^\r\n\0]*\r\n(?![ \t]))*\r\n")


@dataclass
class DataResult:
    """What was read: headers (each ending in "\\n"), body, counters."""

    ended: str = END_NOTENDED
    headers: list[bytes] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    message_size: int = 0
    body_linecount: int = 0
    body_zerocount: int = 0
    max_received_linelength: int = 0
    header_linecount: int = 0          # physical lines read as headers
    first_line_crlf: bool | None = None
    # The over-long header line (for the log), when ended is header_line.
    long_header: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.ended == END_DOT


class _NeedMore(Exception):
    pass


class DataReader:
    """Incremental reader for one message's data.  See module docstring."""

    def __init__(self, size_limit: int = 0, header_maxsize: int = 1048576,
                 header_line_maxsize: int = 0, chunking: bool = False) -> None:
        self.size_limit = size_limit if size_limit > 0 else (1 << 62)
        self.header_maxsize = header_maxsize
        self.header_line_maxsize = header_line_maxsize
        self.chunking = chunking
        self.dot_ends = not chunking
        self.result = DataResult()
        self.done = False
        self.error: str | None = None     # first failure (END_*), or None
        self._writing = True              # False after a failure: discard
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._end = 0
        self._back: list[int] = []
        self._in_headers = True
        self._hgen: Generator[None, None, None] | None = self._headers()
        # body state
        self._state = _S_LF
        self._linelength = 0
        self._fix_nl = False
        self._chunk_ended = False         # BDAT: the LAST chunk is all in
        self._lookahead = False           # waiting to see a continuation
        self.size_at_failure = 0          # message_size when it failed

    # ------------------------------------------------------------------
    def feed(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
        """Consume bytes from ``buf[pos:]``; return the new position."""
        if self.done:
            return pos
        if isinstance(buf, memoryview):
            buf = bytes(buf)
        self._buf, self._pos, self._end = buf, pos, len(buf)
        if self._in_headers:
            assert self._hgen is not None
            try:
                next(self._hgen)
            except StopIteration:
                self._in_headers = False
                self._hgen = None
            if self._in_headers or self.done:
                return self._pos
        self._body()
        return self._pos

    def end_chunk(self, last: bool) -> None:
        """BDAT: the current chunk has been fed completely.

        For the LAST chunk this ends the message (Exim's EOD), adding a
        missing final newline as Exim does."""
        if not last or self.done:
            return
        self._chunk_ended = True
        self._buf, self._pos, self._end = b"", 0, 0
        if self._in_headers:
            assert self._hgen is not None
            try:
                next(self._hgen)
            except StopIteration:
                self._in_headers = False
                self._hgen = None
            if self.done:
                return
        self._body_eod()

    # ------------------------------------------------------------------
    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
            self.size_at_failure = self.result.message_size
        self._writing = False

    def lost_suffix(self) -> str:
        """Exim's text for a connection lost now: " (header)" inside the
        headers, " (after header)" just after a header line, "" later."""
        if self._in_headers:
            return " (after header)" if self._lookahead else " (header)"
        return ""

    def _finish(self, ended: str) -> None:
        self.done = True
        self.result.ended = self.error or ended

    def _getc(self) -> Generator[None, None, int]:
        while True:
            if self._back:
                return self._back.pop()
            if self._pos < self._end:
                c = self._buf[self._pos]
                self._pos += 1
                return c
            if self._chunk_ended:
                return -2                     # EOD
            yield

    # --- headers -------------------------------------------------------
    def _headers(self) -> Generator[None, None, None]:
        """Exim's header loop; yields when it needs more input."""
        r = self.result
        text = bytearray()
        had_zero = 0
        prevlines = 0
        eod_seen = False                  # BDAT: the LAST chunk has ended
        special = _HEADER_SPECIAL.search
        if self._pos < self._end and not self._back and \
                r.first_line_crlf is not False:
            # Fastest path: the whole header block is already here, every
            # line a plain one-line "name: value" ending in CRLF (no NUL,
            # bare CR or LF, continuation or leading dot), then the blank
            # line, all within the size limits: stored and counted as the
            # byte loop below would.
            m = _HEADER_BLOCK.match(self._buf, self._pos)
            if m is not None:
                lines = self._buf[self._pos:m.end()].split(b"\r\n")[:-2]
                size = r.message_size + m.end() - self._pos - len(lines) - 1
                longest = max(map(len, lines), default=0)
                if size < self.header_maxsize and \
                        size - 1 <= self.size_limit and \
                        (self.header_line_maxsize <= 0 or
                         longest + 1 <= self.header_line_maxsize):
                    r.first_line_crlf = True
                    for line in lines:
                        r.headers.append(bytes(line) + b"\n")
                    if longest > r.max_received_linelength:
                        r.max_received_linelength = longest
                    r.header_linecount += len(lines) + 1
                    r.message_size = size
                    self._pos = m.end()
                    return
        while True:
            if not self._back and self._pos < self._end and \
                    (text or self._buf[self._pos] != _DOT):
                # Fast path: a run of ordinary bytes (no CR, LF or NUL) is
                # appended at once, with the same size accounting as the
                # byte loop below when it stays under header_maxsize.
                m = special(self._buf, self._pos)
                j = m.start() if m is not None else self._end
                n = j - self._pos
                if n and r.message_size + n < self.header_maxsize:
                    text += self._buf[self._pos:j]
                    r.message_size += n
                    self._pos = j
                    if j == self._end:
                        continue
            ch = yield from self._getc()
            eol = False
            if ch == -2:
                # End of the LAST chunk inside the headers: as Exim, it
                # ends a partial line like a newline would; at the start of
                # the message it counts as the empty line that ends the
                # headers; right after a header line it just ends them.
                self._back.append(-2)
                if eod_seen:
                    return
                eod_seen = True
                if not text:
                    r.message_size += 1
                    r.header_linecount += 1
                    return
                eol = True
            if ch == _NUL:
                had_zero += 1
            if eol:
                pass
            elif ch == _LF:
                if r.first_line_crlf is None:
                    r.first_line_crlf = False
                elif r.first_line_crlf:
                    self._back.append(_SP)
                eol = True
            else:
                if not text and ch == _DOT and self.dot_ends:
                    ch = yield from self._getc()
                    if ch == _CR:
                        ch = yield from self._getc()
                        if ch != _LF:
                            self._back.append(ch)
                            ch = _CR
                        else:
                            self._finish(END_DOT)
                            return
                    if ch == _LF:
                        if r.first_line_crlf is not True:
                            self._finish(END_DOT)
                            return
                        # CRLF client: after a leading dot a bare LF is a
                        # space in the line (CVE-2023-51766 fix), so
                        # "." LF is neither an end nor a line break.
                        ch = _SP
                if not eol and ch == _CR:
                    ch = yield from self._getc()
                    if ch == _LF:
                        if r.first_line_crlf is None:
                            r.first_line_crlf = True
                        eol = True
                    else:
                        self._back.append(ch)
                        text.append(_LF)
                        r.message_size += 1
                        ch = _SP
                if not eol:
                    text.append(ch)
                    r.message_size += 1
                    if r.message_size >= self.header_maxsize:
                        self._fail(END_HEADER_SIZE)
                        self._in_headers = False
                        return
                    continue
            # End of a physical line.
            r.header_linecount += 1
            n = len(text) - prevlines
            if n > r.max_received_linelength:
                r.max_received_linelength = n
            prevlines = len(text) + 1
            text.append(_LF)
            r.message_size += 1
            if len(text) == 1:
                return                        # blank line: headers end
            self._lookahead = True
            if eod_seen:
                nextch = -2
            else:
                nextch = yield from self._getc()
                if nextch == -2:
                    eod_seen = True
            self._lookahead = False
            if nextch in (_SP, _TAB):
                text.append(nextch)
                r.message_size += 1
                if r.message_size >= self.header_maxsize:
                    self._fail(END_HEADER_SIZE)
                    return
                continue
            self._back.append(nextch)
            if r.message_size > self.size_limit:
                self._add_body_line(text, None)
                return
            if not self._is_header(text):
                # Exim carries the line's zero count into $body_zerocount
                # only when the line fails the "name:" test, not when it
                # starts with white space.
                self._add_body_line(text, None if text[0] in _SPACE
                                    else had_zero)
                return
            if had_zero:
                text = bytearray(text.replace(b"\0", b"?"))
            self._strip_trailing_blank(text)
            r.headers.append(bytes(text))
            if self.header_line_maxsize > 0 and \
                    len(text) > self.header_line_maxsize:
                r.long_header = bytes(text)
                self._fail(END_HEADER_LINE)
            if self.chunking and r.first_line_crlf is False:
                # (a first line ended by the chunk's end is not "bare LF")
                self._fail(END_NOT_CRLF)
            text = bytearray()
            had_zero = 0
            prevlines = 0

    def _strip_trailing_blank(self, text: bytearray) -> None:
        """Drop white-space-only continuation lines at a header's end."""
        r = self.result
        while True:
            p = len(text) - 2
            while p >= 0 and text[p] in (_SP, _TAB):
                p -= 1
            if p < 0 or text[p] != _LF:
                return
            newlen = p + 1
            r.message_size -= len(text) - newlen
            del text[newlen:]

    @staticmethod
    def _is_header(text: bytearray) -> bool:
        if text[0] in _SPACE:
            return False
        i = 0
        n = len(text)
        while i < n and 33 <= text[i] <= 126 and text[i] != _COLON:
            i += 1
        while i < n and text[i] in _SPACE:
            i += 1
        return i < n and text[i] == _COLON

    def _add_body_line(self, text: bytearray, had_zero: int | None) -> None:
        """The line that ended the headers is the body's first line."""
        r = self.result
        if had_zero is not None:
            r.body_zerocount = had_zero
        if self._writing:
            r.body += text
        r.body_linecount += 1

    # --- body ----------------------------------------------------------
    def _body(self) -> None:
        if self.chunking:
            self._body_bdat()
            return
        r = self.result
        body = r.body
        writing = self._writing
        limit = self.size_limit
        crlf = r.first_line_crlf is True
        state = self._state
        linelength = self._linelength
        size = r.message_size
        buf = self._buf
        end = self._end
        pos = self._pos
        back = self._back
        maxlen = r.max_received_linelength
        bulk = True
        while True:
            if back:
                ch = back.pop()
            elif pos < end:
                if state == _S_LF and bulk and buf[pos] != _DOT:
                    # Fastest path: a run of whole ordinary "text CRLF"
                    # lines up to the next line that starts with a dot
                    # (or the last complete line): no bare CR or LF, no
                    # NUL, within the size limit.  Stored and counted as
                    # the line-at-a-time path below would.
                    d = buf.find(b"\r\n.", pos)
                    stop = d + 2 if d >= 0 else buf.rfind(b"\r\n", pos) + 2
                    if stop > pos + 2:
                        region = buf[pos:stop]
                        nl = region.count(b"\r\n")
                        out = region.replace(b"\r\n", b"\n")
                        if region.count(b"\r") == nl and \
                                out.count(b"\n") == nl and \
                                b"\0" not in region and \
                                (not writing or size + len(out) <= limit):
                            if writing:
                                body += out
                            size += len(out)
                            r.body_linecount += nl
                            longest = max(map(len, out.split(b"\n")))
                            if longest > maxlen:
                                maxlen = longest
                            linelength = 0
                            pos = stop
                            continue
                    bulk = False
                if state == _S_LF:
                    # Fast path: a whole ordinary "text CRLF" line (no
                    # leading dot, no CR, LF or NUL inside) is stored as
                    # "text LF" with the same counting as the slow path.
                    j = buf.find(b"\r\n", pos)
                    if j >= 0:
                        n = j - pos
                        if buf[pos] != _DOT and (not writing or
                                                 size + n + 1 <= limit):
                            line = buf[pos:j]
                            if b"\r" not in line and b"\n" not in line and \
                                    b"\0" not in line:
                                if writing:
                                    body += line
                                    body.append(_LF)
                                size += n + 1
                                r.body_linecount += 1
                                if n > maxlen:
                                    maxlen = n
                                linelength = 0
                                pos = j + 2
                                continue
                if state == _S_MID:
                    # Fast path: a run of ordinary characters mid-line.
                    j = pos
                    while j < end:
                        c = buf[j]
                        if c == _LF or c == _CR or c == _NUL:
                            break
                        j += 1
                    if j > pos:
                        n = j - pos
                        if writing:
                            room = limit - size
                            if n > room:
                                # write up to and including the byte that
                                # passes the limit, as Exim does
                                body += buf[pos:pos + room + 1]
                                size += room + 1
                                linelength += room + 1
                                pos += room + 1
                                writing = False
                                r.message_size = size
                                self._fail(END_SIZE)
                                continue
                            body += buf[pos:j]
                        size += n
                        linelength += n
                        pos = j
                        continue
                ch = buf[pos]
                pos += 1
            else:
                break
            if ch == _NUL:
                r.body_zerocount += 1
            if crlf and ch == _LF and state in (_S_LF, _S_MID, _S_DOT):
                ch = _SP
            if state == _S_LF:
                if ch == _DOT:
                    state = _S_DOT
                    continue
                state = _S_MID
            if state == _S_MID:
                if ch == _LF:
                    state = _S_LF
                    r.body_linecount += 1
                    if linelength > maxlen:
                        maxlen = linelength
                    linelength = -1
                elif ch == _CR:
                    state = _S_CR
                    continue
            elif state == _S_CR:
                r.body_linecount += 1
                if linelength > maxlen:
                    maxlen = linelength
                linelength = -1
                if ch == _LF:
                    state = _S_LF
                else:
                    size += 1
                    if writing:
                        body.append(_LF)
                    if ch == _CR:
                        continue
                    state = _S_MID
            elif state == _S_DOT:
                if ch == _LF:
                    self._pos = pos
                    self._save(state, linelength, size, maxlen)
                    self._finish(END_DOT)
                    return
                if ch == _CR:
                    state = _S_DOTCR
                    continue
                state = _S_MID
            elif state == _S_DOTCR:
                if ch == _LF:
                    self._pos = pos
                    self._save(state, linelength, size, maxlen)
                    self._finish(END_DOT)
                    return
                size += 1
                r.body_linecount += 1
                if writing:
                    body.append(_LF)
                if ch == _CR:
                    state = _S_CR
                    continue
                state = _S_MID
            size += 1
            linelength += 1
            if writing:
                body.append(ch)
                if size > limit:
                    writing = False
                    r.message_size = size
                    self._fail(END_SIZE)
        self._pos = pos
        self._save(state, linelength, size, maxlen)

    def _save(self, state: int, linelength: int, size: int,
              maxlen: int) -> None:
        self._state = state
        self._linelength = linelength
        self.result.message_size = size
        self.result.max_received_linelength = maxlen

    # --- BDAT body -----------------------------------------------------
    def _body_bdat(self) -> None:
        """read_message_bdat_smtp(): CR LF, CR and LF end lines."""
        r = self.result
        while True:
            if self._back:
                ch = self._back.pop()
                if ch == -2:
                    self._body_eod()
                    return
            elif self._pos < self._end:
                ch = self._buf[self._pos]
                self._pos += 1
            else:
                return
            self._bdat_char(ch)

    def _bdat_char(self, ch: int) -> None:
        r = self.result
        if ch == _NUL:
            r.body_zerocount += 1
        state = self._state
        if state == _S_LF or state == _S_DOT or state == _S_DOTCR:
            state = _S_MID
        if state == _S_MID:
            if ch == _LF:
                state = _S_LF
                r.body_linecount += 1
                if self._linelength > r.max_received_linelength:
                    r.max_received_linelength = self._linelength
                self._linelength = -1
            elif ch == _CR:
                self._state = _S_CR
                if self._fix_nl:
                    self._back.append(_LF)
                return
        elif state == _S_CR:
            r.body_linecount += 1
            if self._linelength > r.max_received_linelength:
                r.max_received_linelength = self._linelength
            self._linelength = -1
            if ch == _LF:
                state = _S_LF
            else:
                r.message_size += 1
                if self._writing:
                    r.body.append(_LF)
                if ch == _CR:
                    self._state = _S_CR
                    return
                state = _S_MID
        self._state = state
        r.message_size += 1
        self._linelength += 1
        if self._writing:
            r.body.append(ch)
            if r.message_size > self.size_limit:
                self._fail(END_SIZE)

    def _body_eod(self) -> None:
        """End of the LAST chunk: make sure the body ends in a newline."""
        r = self.result
        if r.body.endswith(b"\n") or (not r.body and not self._writing) \
                or (self._state == _S_LF and not self._writing):
            self._finish(END_DOT)
            return
        if not r.body and self._state == _S_LF:
            self._finish(END_DOT)
            return
        if self._state == _S_CR:
            self._bdat_char(_LF)
        else:
            self._fix_nl = True
            self._bdat_char(_CR)
            while self._back:
                self._bdat_char(self._back.pop())
        self._finish(END_DOT)
