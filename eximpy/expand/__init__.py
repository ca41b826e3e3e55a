"""eximpy.expand: Exim's string-expansion language.

DESCRIPTION
    Public interface (other subsystems depend on exactly this):

        from eximpy.expand import expand_string, expand_check_condition, ExpandContext
        ctx = ExpandContext(config=cfg, variables={"local_part": ...}, headers=[...])
        expand_string(text, ctx) -> str        # ExpansionError / ExpansionForcedFail
        expand_check_condition(text, ctx) -> bool

    Strings are bytes carried in str as UTF-8 with surrogateescape, the
    convention of all eximpy (bytestr.py): the engine works on their bytes
    as Exim does (lengths, offsets, digests, regular expressions).
    Expansion strings are parsed once into a tree (parser.py) that is
    cached by text; evaluation (evaluate.py, operators.py, conditions.py,
    items.py) walks the tree.  Taint tracking: see taint.py.

SEE ALSO
    spec chapter "String expansions".
"""
from __future__ import annotations

from collections.abc import Callable

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.context import ExpandContext
from eximpy.expand.taint import Tainted, is_tainted
from eximpy.expand.parser import _CACHE as _TREES

__all__ = ["expand_string", "expand_check_condition", "ExpandContext", "Tainted",
           "is_tainted", "ExpansionError", "ExpansionForcedFail", "expand_string_integer"]


def expand_string(text: str, ctx: ExpandContext) -> str:
    """Expand ``text``; raises ExpansionError or ExpansionForcedFail."""
    if "$" not in text and "\\" not in text:
        return text          # as Exim: no expansion, so no taint check either
    if type(text) is Tainted:
        msg = f"attempt to expand tainted string '{text}'"
        fn = getattr(ctx, "log_panic", None)
        if fn is not None:
            fn(msg)
        raise ExpansionError(msg)
    node = _TREES.get(text)
    if node is None:
        node = _parse_cached(text)
    ctx.search_find_defer = False
    try:
        return node.ev(ctx)
    except (ExpansionError, ExpansionForcedFail):
        raise
    except RecursionError:
        raise ExpansionError("expansion nested too deeply")
    except Exception as e:  # a bug must not become a traceback on the wire
        raise ExpansionError(f"internal error in expansion: {type(e).__name__}: {e}")


def _parse_cached(text: str):
    from eximpy.expand.parser import parse_cached
    return parse_cached(text)


def expand_check_condition(text: str, ctx: ExpandContext,
                           on_error: Callable[[str], None] | None = None) -> bool:
    """Exim's expand_check_condition(): expand, then false if the result is
    empty, "0", "no" or "false" (caseless).  A failed expansion is false;
    ``on_error`` is told the message unless it was a forced failure or a
    lookup defer (where Exim logs "failed to expand condition ...")."""
    try:
        s = expand_string(text, ctx)
    except ExpansionForcedFail:
        return False
    except ExpansionError as e:
        if on_error is not None and not ctx.search_find_defer:
            on_error(str(e))
        return False
    return bool(s) and s != "0" and s.lower() not in ("no", "false")


def expand_string_integer(text: str, ctx: ExpandContext, isplus: bool = False) -> int:
    """Exim's expand_string_integer(): expand and read an integer with an
    optional K/M/G suffix; raises ExpansionError."""
    from eximpy.expand.evaluate import expanded_string_integer
    return expanded_string_integer(expand_string(text, ctx), isplus)
