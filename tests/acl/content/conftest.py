"""Session fixtures: a real clamd and a real spamd (content_scanners)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from content_harness import WORK  # noqa: E402
from content_scanners import Clamd, Spamd  # noqa: E402


@pytest.fixture(scope="session")
def clamd():
    c = Clamd(WORK / "_clamd")
    yield c
    c.stop()


@pytest.fixture(scope="session")
def spamd():
    s = Spamd(WORK / "_spamd")
    yield s
    s.stop()
