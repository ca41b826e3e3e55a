"""Authenticator drivers: importing this package registers the built-in drivers.

SUMMARY
    Each built-in driver module is imported by name here, so that AUTHS
    (eximpy.drivers.registry) knows it.  Nothing is imported because a
    configuration file names it.

SEE ALSO
    eximpy.drivers.registry.
"""
from __future__ import annotations

from eximpy.drivers.registry import AUTHS
from eximpy.auths import cram_md5  # noqa: F401
from eximpy.auths import cyrus_sasl  # noqa: F401
from eximpy.auths import dovecot  # noqa: F401
from eximpy.auths import external  # noqa: F401
from eximpy.auths import plaintext  # noqa: F401
from eximpy.auths import spa  # noqa: F401
from eximpy.auths import tls  # noqa: F401

__all__ = ["AUTHS"]
