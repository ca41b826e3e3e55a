"""Exim configuration file reader: physical lines to logical lines.

SUMMARY
    ConfigReader turns the bytes of an Exim 4.96 run time configuration file
    into logical lines, exactly as Exim's get_config_line() does, and tells
    the section parsers (eximpy.config.parser) where each `begin` starts.

DESCRIPTION
    The order of work on each physical line follows Exim:

    1. macro substitution (macros in definition order; a macro's value is not
       rescanned for itself but is for later macros; built-in `_` macros are
       only considered when the first candidate is `_X`), skipping the name
       part of a `NAME =` definition at the start of a logical line;
    2. comment lines (`#` as the first non-blank, after substitution);
    3. conditionals .ifdef/.ifndef/.elifdef/.elifndef/.else/.endif, whose
       test is "did any macro substitution happen on this line";
    4. .include / .include_if_exists (relative names resolve against the
       including file's directory; .include_if_exists needs an absolute one);
    5. joining of continuation lines: trailing white space is removed, a
       trailing backslash joins the next physical line, whose leading white
       space is removed; comment lines may sit inside a continuation, an
       empty line ends it.

    A logical line `begin NAME` ends the current section.  The reader keeps
    the macro table, because section parsers define macros between drivers
    and ACLs and the definitions take effect for the very next line.

SECURITY
    The configuration is trusted input, but it is read as bytes and decoded
    with surrogateescape so that no byte is lost or misread.

SEE ALSO
    spec chapter 6 "The Exim runtime configuration file", 6.2-6.10.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

from eximpy.errors import ConfigError, SourcePos

# Exim's limit on the nesting of conditionals (CSTATE_STACK_SIZE).
_CSTATE_STACK_SIZE = 50
# Exim's macro name buffer is 64 bytes.
_MACRO_NAME_MAX = 63

# State transitions for conditionals (Exim readconf.c next_cstate): state 0
# reads lines, 1 skips until .else/.elif, 2 skips until .endif.  Columns are
# the four actions: if-true, if-false, elif-true/else, elif-false.
_NEXT_CSTATE = ((0, 1, 2, 2), (2, 2, 0, 1), (2, 2, 2, 2))
# name -> (action when a macro was found, action when not, stack push/pop)
_CONDITIONALS = {
    "ifdef": (0, 1, 1),
    "ifndef": (1, 0, 1),
    "elifdef": (2, 3, 0),
    "elifndef": (3, 2, 0),
    "else": (2, 2, 0),
    "endif": (0, 0, -1),
}


def _isupper(c: str) -> bool:
    return "A" <= c <= "Z"


def _isname(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _isspace(c: str) -> bool:
    return c in " \t\n\r\f\v"


@dataclass
class Macro:
    """One configuration macro (NAME = value)."""

    name: str
    value: str
    command_line: bool = False
    builtin: bool = False


@dataclass
class LogicalLine:
    """A complete logical configuration line and where it ended."""

    text: str
    pos: SourcePos


@dataclass
class _OpenFile:
    filename: str
    directory: str
    lines: list[str]
    index: int = 0           # next physical line to read (0-based)


@dataclass
class MacroTable:
    """Macros in definition order; built-ins first, then the user's."""

    builtins: list[Macro] = field(default_factory=list)
    user: list[Macro] = field(default_factory=list)

    def all(self) -> list[Macro]:
        return self.builtins + self.user

    def find(self, name: str) -> Macro | None:
        for m in self.all():
            if m.name == name:
                return m
        return None

    def define_command_line(self, name: str, value: str) -> None:
        """-DNAME=value: defines NAME; later file definitions are ignored."""
        for m in self.user:
            if m.name == name:
                m.value = value
                return
        self.user.append(Macro(name, value, command_line=True))

    def read_assignment(self, text: str, pos: SourcePos | None = None) -> None:
        """Handle a logical line `NAME = value` or `NAME == value`.

        Raises ConfigError worded as Exim's macro_read_assignment(); only the
        syntax errors carry ``pos`` (Exim reports the others without a line).
        """
        i = 0
        while i < len(text) and _isname(text[i]):
            i += 1
        name = text[:i]
        if len(name) > _MACRO_NAME_MAX:
            raise ConfigError(
                f"macro name too long (maximum is {_MACRO_NAME_MAX} characters)",
                pos)
        while i < len(text) and _isspace(text[i]):
            i += 1
        if i >= len(text) or text[i] != "=":
            raise ConfigError("malformed macro definition", pos)
        i += 1
        redef = False
        if i < len(text) and text[i] == "=":
            redef = True
            i += 1
        while i < len(text) and _isspace(text[i]):
            i += 1
        value = text[i:]
        found: Macro | None = None
        for m in self.all():
            if m.name == name:
                if not m.command_line and not redef:
                    raise ConfigError(
                        f'macro "{name}" is already defined (use "==" if you '
                        'want to redefine it)', None)
                found = m
                break
            if len(m.name) < len(name) and m.name in name:
                raise ConfigError(
                    f'"{name}" cannot be defined as a macro because previously '
                    f'defined macro "{m.name}" is a substring', None)
        if found is not None and found.command_line:
            return
        if redef:
            if found is None:
                raise ConfigError(
                    f'can\'t redefine an undefined macro "{name}"', None)
            found.value = value
        else:
            self.user.append(Macro(name, value))

    def substitute(self, line: str, start: int, at_logical_start: bool
                   ) -> tuple[str, bool]:
        """Substitute macros in ``line`` from ``start`` (Exim macros_expand).

        Returns the new line and whether any substitution happened.
        """
        n = len(line)
        s = start
        if at_logical_start and s < n and _isupper(line[s]):
            j = s
            while j < n and _isname(line[j]):
                j += 1
            while j < n and _isspace(line[j]):
                j += 1
            if j < n and line[j] == "=":
                s = j

        def candidate(k: int, text: str) -> int:
            while k < len(text) and not (
                    _isupper(text[k])
                    or (text[k] == "_" and k + 1 < len(text)
                        and _isupper(text[k + 1]))):
                k += 1
            return k

        s = candidate(s, line)
        found = False
        if s >= len(line):
            return line, False
        macros = self.all() if line[s] == "_" else self.user
        for m in macros:
            s = candidate(s, line)
            if s >= len(line):
                break
            t = s
            while True:
                p = line.find(m.name, t)
                if p < 0:
                    break
                line = line[:p] + m.value + line[p + len(m.name):]
                t = candidate(p + len(m.value), line)
                found = True
        return line, found


class ConfigReader:
    """Yields logical lines of one configuration file and its includes.

    Use :meth:`section_lines` repeatedly: it yields the logical lines of the
    current section and stops at a `begin NAME` line (then
    :attr:`next_section` holds NAME) or at end of file (then it is "").
    ``saved_lines`` keeps every logical line with position markers, for
    `-bP config`.
    """

    def __init__(self, filename: str, macros: MacroTable) -> None:
        self.macros = macros
        self.next_section = ""
        self.saved_lines: list[str] = []
        self._stack: list[_OpenFile] = []
        self._cstate = 0
        self._cstack: list[int] = []
        self._file = self._open(filename, None)
        self.saved_lines.append(f'# 1 "{filename}"')

    # -- files ------------------------------------------------------------

    def _open(self, filename: str, pos: SourcePos | None) -> _OpenFile:
        try:
            with open(filename, "rb") as f:
                data = f.read()
        except OSError:
            if pos is None:
                raise
            raise ConfigError(
                f"failed to open included configuration file {filename}", pos)
        text = data.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        directory = filename[:filename.rfind("/")] if "/" in filename else "."
        return _OpenFile(filename, directory, lines)

    @property
    def pos(self) -> SourcePos:
        """The position of the last physical line read."""
        return SourcePos(self._file.filename, self._file.index)

    def _next_physical(self) -> str | None:
        while self._file.index >= len(self._file.lines):
            if not self._stack:
                return None
            self._file = self._stack.pop()
            self.saved_lines.append(
                f'# {self._file.index} "{self._file.filename}"')
        line = self._file.lines[self._file.index]
        self._file.index += 1
        return line

    # -- logical lines ----------------------------------------------------

    def next_logical(self) -> LogicalLine | None:
        """The next logical line of the current section, or None.

        None means end of section: :attr:`next_section` names the next one,
        or is "" at end of file.
        """
        buf = ""
        while True:
            phys = self._next_physical()
            if phys is None:
                if self._cstack:
                    raise ConfigError(
                        "Unexpected end of configuration file: .endif missing",
                        self.pos)
                if buf:
                    break
                self.next_section = ""
                return None
            if self._file.index == 1 and not self._stack and \
                    phys.startswith("\ufeff"):
                raise ConfigError(
                    "found unexpected BOM (Byte Order Mark)", self.pos)
            ss = 0
            while ss < len(phys) and _isspace(phys[ss]):
                ss += 1
            phys, found = self.macros.substitute(phys, ss, buf == "")
            ss = 0
            while ss < len(phys) and _isspace(phys[ss]):
                ss += 1
            rest = phys[ss:]
            if rest.startswith("#"):
                continue
            if rest.startswith(".") and self._conditional(rest, found):
                continue
            if self._cstate != 0:
                continue
            if self._include(rest):
                continue
            buf += rest
            buf = buf.rstrip(" \t\n\r\f\v")
            if buf:
                if not buf.endswith("\\"):
                    break
                buf = buf[:-1]
        self.saved_lines.append(buf)
        if buf[:6].lower() == "begin ":
            self.next_section = buf[6:].lstrip(" \t")[:22]
            return None
        return LogicalLine(buf, self.pos)

    def _conditional(self, rest: str, macro_found: bool) -> bool:
        for name, (act_found, act_not, pushpop) in _CONDITIONALS.items():
            if not rest.startswith(name, 1):
                continue
            after = rest[1 + len(name):2 + len(name)]
            if after not in ("", " ", "\t"):
                return False
            action = act_found if macro_found else act_not
            if pushpop > 0:
                if len(self._cstack) >= _CSTATE_STACK_SIZE - 1:
                    raise ConfigError(f".{name} nested too deeply", self.pos)
                self._cstack.append(self._cstate)
                self._cstate = _NEXT_CSTATE[self._cstate][action]
            else:
                if not self._cstack:
                    raise ConfigError(
                        f".{name} without matching .ifdef", self.pos)
                if pushpop < 0:
                    self._cstate = self._cstack.pop()
                else:
                    self._cstate = _NEXT_CSTATE[self._cstate][action]
            return True
        return False

    def _include(self, rest: str) -> bool:
        if rest.startswith(".include_if_exists") and len(rest) > 18 and \
                _isspace(rest[18]):
            if_exists = True
            arg = rest[19:]
        elif rest.startswith(".include") and len(rest) > 8 and \
                _isspace(rest[8]):
            if_exists = False
            arg = rest[9:]
        else:
            return False
        arg = arg.strip(" \t\r\n\f\v")
        if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
            arg = arg[1:-1]
        if not arg.startswith("/"):
            if if_exists:
                raise ConfigError(
                    f'.include specifies a non-absolute path "{arg}"', self.pos)
            arg = self._file.directory + "/" + arg
        if if_exists and not os.path.exists(arg):
            return True
        new = self._open(arg, self.pos)
        self._stack.append(self._file)
        self._file = new
        self.saved_lines.append(f'# 1 "{arg}"')
        return True

    def section_lines(self) -> Iterator[LogicalLine]:
        """Logical lines up to the next `begin` or end of file."""
        while True:
            line = self.next_logical()
            if line is None:
                return
            yield line
