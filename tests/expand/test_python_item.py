"""${python} (eximpy's own item) with a python_startup file."""
from __future__ import annotations

import pytest

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand import ExpandContext, expand_string


class _Main:
    def __init__(self, d):
        self.d = d

    def get(self, name):
        return self.d.get(name)


class _Config:
    def __init__(self, path):
        self.main = _Main({"python_startup": path, "primary_hostname": "mx.example.test"})
        self.named_lists = {}


@pytest.fixture
def ctx(tmp_path):
    p = tmp_path / "startup.py"
    p.write_text(
        "def greet(*a):\n    return 'hello ' + ','.join(a)\n"
        "def none():\n    return None\n"
        "def boom():\n    raise ValueError('bad')\n"
        "def cb(x):\n    return expand_string('${uc:' + x + '}:$primary_hostname')\n")
    return ExpandContext(config=_Config(str(p)))


def test_call(ctx):
    assert expand_string("${python{greet}{a}{b}}", ctx) == "hello a,b"
    assert expand_string("${python{greet}}", ctx) == "hello "


def test_none_forces_failure(ctx):
    with pytest.raises(ExpansionForcedFail):
        expand_string("${python{none}}", ctx)


def test_exception_is_error(ctx):
    with pytest.raises(ExpansionError, match="ValueError: bad"):
        expand_string("${python{boom}}", ctx)


def test_callback(ctx):
    assert expand_string("${python{cb}{x}}", ctx) == "X:mx.example.test"


def test_undefined_and_missing_startup(ctx):
    with pytest.raises(ExpansionError, match="not defined"):
        expand_string("${python{nosuch}}", ctx)
    with pytest.raises(ExpansionError, match="python_startup is needed"):
        expand_string("${python{greet}}", ExpandContext())
