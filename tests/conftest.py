"""Shared pytest fixtures for eximpy's tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture
def workdir(request) -> Path:
    """A per-test directory under tests/_work with a stable path.

    A stable path keeps real Exim's answers (which name files) comparable
    with the goldens; oracle normalization replaces the repository root.
    """
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    d = ROOT / "tests" / "_work" / request.module.__name__.split(".")[-1] / name
    if d.exists():
        for p in sorted(d.rglob("*"), reverse=True):
            p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def exim_scratch():
    """A fresh directory under /tmp that real Exim can use after it drops
    to its own user under -C (pytest's own tmp dirs are mode 0700);
    removed afterwards."""
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="eximpy-scratch-", dir="/tmp"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
