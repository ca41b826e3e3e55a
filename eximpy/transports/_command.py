"""Splitting a command into an argument vector (Exim's transport_set_up_command).

SUMMARY
    split_command(text) -> [raw arguments]
    set_up_command(text, expand, what) -> [expanded arguments]

DESCRIPTION
    The command is split at white space first; an argument may be enclosed
    in double quotes (backslash escapes are interpreted inside them) or
    single quotes (taken literally).  Only then is each argument expanded
    on its own, so expanded text can never add arguments: this is how the
    pipe transport and the queryprogram router run commands without a
    shell.

SECURITY
    No shell is involved.  Expanded arguments may be tainted; the command
    name (argv[0]) must not be tainted and must be an absolute path unless
    the caller allows a search path.

SEE ALSO
    spec chapter 29 "The pipe transport", section "How the command is run".
"""
from __future__ import annotations

from typing import Callable


class CommandError(ValueError):
    """A malformed command or a failed argument expansion (Exim's wording)."""


def split_command(text: str) -> list[str]:
    """Split a command line into raw (unexpanded) arguments."""
    args: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return args
        out: list[str] = []
        if text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                c = text[i]
                if c == "\\" and i + 1 < n:
                    i += 1
                    c = {"n": "\n", "t": "\t", "r": "\r"}.get(text[i], text[i])
                out.append(c)
                i += 1
            i += 1
        elif text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                out.append(text[i])
                i += 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                out.append(text[i])
                i += 1
        args.append("".join(out))


def set_up_command(text: str, expand: Callable[[str], str], what: str) -> list[str]:
    """Split, then expand each argument; raise CommandError on failure."""
    raw = split_command(text)
    if not raw:
        raise CommandError(f"no command specified for {what}")
    argv = []
    for k, a in enumerate(raw):
        try:
            v = expand(a)
        except Exception as e:  # ExpansionError / ExpansionForcedFail
            raise CommandError(f'Expansion of "{a}" from command "{text}" '
                               f"in {what} failed: {e}") from e
        from eximpy.expand.taint import is_tainted
        if is_tainted(v):
            raise CommandError(f"Tainted arg {k} for {what} command: '{v}'")
        argv.append(v)
    return argv
