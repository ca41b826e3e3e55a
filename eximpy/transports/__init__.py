"""Transport drivers: importing this package registers the built-in drivers.

SUMMARY
    Each built-in driver module is imported by name here, so that TRANSPORTS
    (eximpy.drivers.registry) knows it.  Nothing is imported because a
    configuration file names it.

SEE ALSO
    eximpy.drivers.registry.
"""
from __future__ import annotations

from eximpy.drivers.registry import TRANSPORTS
from eximpy.transports import appendfile  # noqa: F401
from eximpy.transports import autoreply  # noqa: F401
from eximpy.transports import lmtp  # noqa: F401
from eximpy.transports import pipe  # noqa: F401
from eximpy.transports import smtp  # noqa: F401

__all__ = ["TRANSPORTS"]
