"""The exception tree shared by every eximpy subsystem.

DESCRIPTION
    Decisions are values (see eximpy.status); exceptions are for a broken
    world: a configuration that cannot be read, an expansion that fails, a
    panic.  Temporary and permanent SMTP-level failures carry their reply.

SEE ALSO
    STYLE.md rule 4 and 5.
"""
from __future__ import annotations

from dataclasses import dataclass


class EximpyError(Exception):
    """Base class of all eximpy errors."""


@dataclass(frozen=True)
class SourcePos:
    """Where a configuration line came from (file name and 1-based line)."""

    filename: str
    lineno: int

    def __str__(self) -> str:
        return f"line {self.lineno} of {self.filename}"


class ConfigError(EximpyError):
    """The configuration cannot be used.

    The message is worded like Exim's LOG_CONFIG_IN panics, e.g.
    ``main option "foo" unknown``; ``pos`` says where.  :meth:`exim_text`
    gives Exim's two-line form, which is what is printed (after a
    timestamp) on stderr and in the paniclog.
    """

    def __init__(self, message: str, pos: SourcePos | None = None, *,
                 for_what: str | None = None, plain: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.for_what = for_what    # "r1 router": Exim's LOG_CONFIG_FOR form
        self.plain = plain          # no "Exim configuration error" prefix

    def exim_text(self) -> str:
        """The text Exim writes to stderr/paniclog for this error."""
        if self.plain:
            return self.message
        if self.pos is not None:
            return f"Exim configuration error in {self.pos}:\n  {self.message}"
        if self.for_what is not None:
            return (f"Exim configuration error for {self.for_what}:\n"
                    f"  {self.message}")
        return f"Exim configuration error:\n  {self.message}"

    def __str__(self) -> str:
        return self.exim_text()


class ExpansionError(EximpyError):
    """A string expansion failed (not forced); carries Exim's error text."""


class ExpansionForcedFail(EximpyError):
    """A string expansion was forced to fail (``fail`` or a failed lookup)."""


class PanicError(EximpyError):
    """Something that Exim would log to the paniclog and die for."""
