"""eximpy: a mail transfer agent that reads Exim 4.96's configuration, command
line, spool and log formats.

SEE ALSO: ../shared/DESIGN.md (the compatibility contract).
"""
__version__ = "0.1.0"

# The Exim release whose behaviour eximpy follows; printed by -bV and used as
# $version_number / $exim_version.
EXIM_COMPAT_VERSION = "4.96"
