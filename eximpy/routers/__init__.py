"""Router drivers: importing this package registers the built-in drivers.

SUMMARY
    Each built-in driver module is imported by name here, so that ROUTERS
    (eximpy.drivers.registry) knows it.  Nothing is imported because a
    configuration file names it.

SEE ALSO
    eximpy.drivers.registry.
"""
from __future__ import annotations

from eximpy.drivers.registry import ROUTERS
from eximpy.routers import accept  # noqa: F401
from eximpy.routers import dnslookup  # noqa: F401
from eximpy.routers import ipliteral  # noqa: F401
from eximpy.routers import iplookup  # noqa: F401
from eximpy.routers import manualroute  # noqa: F401
from eximpy.routers import queryprogram  # noqa: F401
from eximpy.routers import redirect  # noqa: F401

__all__ = ["ROUTERS"]
