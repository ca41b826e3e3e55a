"""`python -m eximpy` is the same front door as bin/eximpy."""
from eximpy.cli.main import main

raise SystemExit(main())
