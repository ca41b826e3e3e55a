"""${python{function}{arg}...}: eximpy's own embedded-language item.

DESCRIPTION
    The main option python_startup names a Python file (an absolute path);
    it is loaded once per process into its own namespace the first time a
    ${python} item is expanded.  ${python{f}{a1}...{a9}} calls f(a1, ...)
    with string arguments:

      a str result          is the expansion's value
      None                  forces failure ('Python function "f" returned
                            None to force failure'), as undef does for ${perl}
      an exception          is an expansion error carrying its text

    The namespace has expand_string(text) for calling back into the
    expander with the caller's context.  This item does not exist in Exim.

SECURITY
    python_startup comes from the configuration, which is trusted; the code
    runs in the eximpy process with its privileges.

SEE ALSO
    eximpy/expand/perl.py (the ${perl} equivalent).
"""
from __future__ import annotations

import os

from eximpy.errors import ExpansionError, ExpansionForcedFail

_NAMESPACES: dict[tuple[int, str], dict] = {}   # cache: (pid, file) -> namespace


def _namespace(ctx) -> dict:
    path = ctx.main_option("python_startup") or getattr(ctx, "python_startup", None)
    if not path:
        raise ExpansionError("A setting of python_startup is needed when using the Python "
                             "interpreter")
    key = (os.getpid(), path)
    ns = _NAMESPACES.get(key)
    if ns is None:
        ns = {"__name__": "eximpy_python_startup", "__file__": path}
        try:
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
            exec(code, ns)
        except Exception as e:
            raise ExpansionError(f"error in python_startup code: {type(e).__name__}: {e}")
        _NAMESPACES[key] = ns
    return ns


def call(ctx, name: str, args: list[str]) -> str:
    ns = _namespace(ctx)
    fn = ns.get(name)
    if not callable(fn):
        raise ExpansionError(f'Python function "{name}" is not defined')
    from eximpy.expand import expand_string
    ns["expand_string"] = lambda text: expand_string(text, ctx)
    try:
        r = fn(*args)
    except (ExpansionError, ExpansionForcedFail):
        raise
    except Exception as e:
        raise ExpansionError(f'Python function "{name}" failed: {type(e).__name__}: {e}')
    if r is None:
        raise ExpansionForcedFail(f'Python function "{name}" returned None to force failure')
    return str(r)
