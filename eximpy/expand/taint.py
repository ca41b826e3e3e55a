"""Taint tracking for expansion values (Exim 4.94+ "tainted data").

DESCRIPTION
    Data that came from outside (the SMTP peer, a message, a DNS answer) is
    *tainted*.  eximpy marks it by type: ``Tainted`` is a ``str`` subclass, so
    a tainted value can go anywhere a string goes, and every place that must
    refuse tainted data (a file name to open, a command to run, a lookup file
    name, an expansion string itself) asks ``is_tainted(value)``.

    Propagation rules inside the expander (eximpy/expand/evaluate.py):
      * a concatenation is tainted if any part of it is tainted;
      * operators that copy or transform their input (uc, lc, substr, sg,
        extract, ...) keep its taint;
      * operators that compute a digest or a number from their input (md5,
        sha*, hmac, strlen, eval, listcount, nhash, ...) give untainted
        results, as Exim's formatted output is untainted;
      * lookup results are untainted (they come from files or databases the
        administrator controls), as are the values of $domain_data,
        $local_part_data and $value after a list match (the de-tainting paths
        Exim 4.96 allows).

    Callers that fill an ExpandContext put ``Tainted(...)`` values into its
    variables for anything taken from the network or the message.

SECURITY
    A Tainted value must never become a path to open, a command argument
    vector element at split time, or a lookup file name.  The checks that
    raise Exim's errors live next to those uses (readfile, run, lookups).

SEE ALSO
    spec chapter "String expansions", section "Tainted data".
"""
from __future__ import annotations


class Tainted(str):
    """A string whose content came from an untrusted source."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Tainted({str.__repr__(self)})"


def is_tainted(value: object) -> bool:
    """True if ``value`` is a Tainted string."""
    return type(value) is Tainted


def taint(value: str) -> Tainted:
    """Mark ``value`` as tainted."""
    return value if type(value) is Tainted else Tainted(value)


def untaint(value: str) -> str:
    """Return the plain-str copy of ``value`` (only for de-tainting paths
    Exim itself allows)."""
    return str.__str__(value) if type(value) is Tainted else value


def join(parts: list[str]) -> str:
    """Concatenate ``parts``; the result is tainted if any part is."""
    s = "".join(parts)
    for p in parts:
        if type(p) is Tainted:
            return Tainted(s)
    return s


def like(value: str, source: str) -> str:
    """Return ``value`` with the taint of ``source``."""
    if type(source) is Tainted:
        return value if type(value) is Tainted else Tainted(value)
    return value
