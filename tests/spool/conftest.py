"""Fixtures for the spool/log/queue suite: repository root on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import shutil
import tempfile
from typing import Iterator

import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A scratch directory the Exim user can traverse (real Exim drops to
    Debian-exim under -C, and pytest's own tmp dirs are mode 0700)."""
    d = Path(tempfile.mkdtemp(prefix="eximpy-spool-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
