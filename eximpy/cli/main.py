"""The `eximpy` front door: Exim's command line, dispatched to modes.

SUMMARY
    main(argv) parses the command line (eximpy.cli.options), loads the
    configuration where the mode needs one, and runs the mode.  Exit status
    and messages follow Exim: 1 for a configuration error or a refused
    command line, the mode's own status otherwise.  A mode that eximpy does
    not provide yet exits 2 with one clear line, never a traceback.

SEE ALSO
    spec chapter 5; eximpy.cli.modes for the modes themselves.
"""
from __future__ import annotations

import os
import sys
import time

from eximpy.cli.options import Invocation, UsageError, parse_args
from eximpy.errors import ConfigError


def _config_error(e: ConfigError) -> int:
    """Report a configuration error as Exim does (stderr), exit status 1."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} {e.exim_text()}\n")
    sys.stderr.flush()
    return 1


def load(inv: Invocation):
    """The configuration named by -C (or the built-in search path).

    As Exim does once it has read its configuration, the process then
    changes to "/" (relative names in the configuration are not looked up
    where the caller happened to be); $initial_cwd keeps the old directory.
    """
    from eximpy.config import DEFAULT_SEARCH_PATH, load_config
    try:
        initial_cwd = os.getcwd()
    except OSError:
        initial_cwd = "/"
    config = load_config(inv.config_file or DEFAULT_SEARCH_PATH, inv.macros)
    config.initial_cwd = initial_cwd
    os.chdir("/")
    return config


def main(argv: list[str] | None = None) -> int:
    """Run eximpy with ``argv`` (default sys.argv); returns the exit status."""
    argv = list(sys.argv if argv is None else argv)
    try:
        inv = parse_args(argv)
    except UsageError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    from eximpy.cli import modes
    try:
        return modes.run(inv)
    except ConfigError as e:
        return _config_error(e)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `eximpy -bP | head`).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
