"""Where cactus-test-definitions' CSIP-AUS client procedures are, and reading them as data.

The procedures are YAML files in the cactus-test-definitions wheel
(``cactus_test_definitions/client/procedures/*.yaml``). The wheel is never installed (it needs
Python >= 3.12): ``make peers`` downloads the hash-pinned one into ``.peers/``, and the suite
opens it as a zip. ``--definitions PATH`` (or ``$CACTUS_TEST_DEFINITIONS``) names a wheel or a
directory of those YAML files instead.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # (no stubs in the lock: safe_load alone is used)

from gateway.core import errors

ENV: str = "CACTUS_TEST_DEFINITIONS"
INSIDE: str = "cactus_test_definitions/client/procedures/"
WHEEL_GLOB: str = "cactus_test_definitions-*.whl"
#: The repository root (an editable install: src/gateway/conformance/csip_aus/ is four down).
ROOT: Path = Path(__file__).resolve().parents[4]


class DefinitionsError(errors.ConfigError, ValueError):
    """The definitions named cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Procedure:
    """One client test procedure: its ID (the file's name) and its YAML document."""

    name: str
    doc: dict[str, Any]
    source: str  # the wheel or directory it came from, for the report


def locate(explicit: Path | None = None) -> Path | None:
    """The definitions to read: ``explicit``, else ``$CACTUS_TEST_DEFINITIONS``, else the newest
    wheel in ``.peers/`` (of the working directory, then of the repository); None: none."""
    if explicit is not None:
        return explicit
    if env := os.environ.get(ENV):
        return Path(env)
    for folder in (Path.cwd() / ".peers", ROOT / ".peers"):
        wheels = sorted(folder.glob(WHEEL_GLOB))
        if wheels:
            return wheels[-1]
    return None


def read(path: Path) -> list[Procedure]:
    """Every procedure at ``path`` (a wheel or a directory of YAML files), sorted by ID."""
    texts: dict[str, str] = {}
    if path.is_dir():
        for f in path.glob("*.yaml"):
            texts[f.stem] = f.read_text(encoding="utf-8")
    elif path.is_file():
        try:
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.startswith(INSIDE) and name.endswith(".yaml"):
                        texts[name[len(INSIDE) : -len(".yaml")]] = z.read(name).decode("utf-8")
        except zipfile.BadZipFile as e:
            raise DefinitionsError(f"{path}: not a wheel ({e})") from None
    else:
        raise DefinitionsError(f"{path}: no such wheel or directory")
    if not texts:
        raise DefinitionsError(f"{path}: holds no {INSIDE}*.yaml")
    out = []
    for name in sorted(texts):
        try:
            doc = yaml.safe_load(texts[name])
        except yaml.YAMLError as e:
            raise DefinitionsError(f"{path}: {name}.yaml is not YAML ({e})") from None
        if not isinstance(doc, dict):
            raise DefinitionsError(f"{path}: {name}.yaml is not a mapping")
        out.append(Procedure(name, doc, str(path)))
    return out
