"""Convention checks on every option table: sorted, unique, typed.

Exim finds options by binary chop, so its tables must be sorted and free
of duplicates; eximpy keeps the same rule (STYLE.md rule 3).
"""
from __future__ import annotations

import eximpy.auths  # noqa: F401  (registers the drivers)
import eximpy.routers  # noqa: F401
import eximpy.transports  # noqa: F401
from eximpy.auths.base import AUTH_GENERIC_OPTIONS
from eximpy.config.main_options import IMPLEMENTED, MAIN_OPTIONS
from eximpy.config.options import OptionTable, OptType
from eximpy.drivers.registry import AUTHS, ROUTERS, TRANSPORTS
from eximpy.routers.base import ROUTER_GENERIC_OPTIONS
from eximpy.transports.base import TRANSPORT_GENERIC_OPTIONS


def _tables() -> dict[str, OptionTable]:
    tables = {"main": MAIN_OPTIONS, "routers": ROUTER_GENERIC_OPTIONS,
              "transports": TRANSPORT_GENERIC_OPTIONS,
              "authenticators": AUTH_GENERIC_OPTIONS}
    for reg in (ROUTERS, TRANSPORTS, AUTHS):
        for info in reg:
            tables[f"{reg.kind}:{info.name}"] = info.options
    return tables


def test_every_table_sorted_unique_typed() -> None:
    for where, table in _tables().items():
        names = [s.name for s in table]
        assert names == sorted(names, key=lambda n: n.encode()), where
        assert len(names) == len(set(names)), where
        for spec in table:
            assert isinstance(spec.type, OptType), (where, spec.name)
            if spec.alias:
                assert table.get(spec.alias) is not None, (where, spec.name)
            if spec.type is OptType.TIMELIST:
                assert spec.maxcount > 0, (where, spec.name)


def test_private_tables_do_not_shadow_generic() -> None:
    for reg, generic in ((ROUTERS, ROUTER_GENERIC_OPTIONS),
                         (TRANSPORTS, TRANSPORT_GENERIC_OPTIONS),
                         (AUTHS, AUTH_GENERIC_OPTIONS)):
        for info in reg:
            clash = set(info.options.names()) & set(generic.names())
            assert not clash, (info.name, clash)


def test_implemented_names_exist() -> None:
    for name in IMPLEMENTED:
        assert MAIN_OPTIONS.get(name) is not None, name
        assert MAIN_OPTIONS.get(name).implemented


def test_unsorted_table_is_refused() -> None:
    from eximpy.config.options import OptionSpec
    import pytest
    with pytest.raises(ValueError):
        OptionTable((OptionSpec("b", OptType.BOOL), OptionSpec("a", OptType.BOOL)))
    with pytest.raises(ValueError):
        OptionTable((OptionSpec("a", OptType.BOOL), OptionSpec("a", OptType.INT)))
