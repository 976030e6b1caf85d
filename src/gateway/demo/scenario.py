"""The embedded demo's scenario: timed steps on the utility side and at the grid.

A scenario is a TOML or JSON file with a list of steps (docs/demo.md)::

    [[step]]
    at = 4            # seconds after the gateway is up, at --speed 1 (divided by --speed)
    kind = "export_limit"
    watts = 1500
    for = 8           # the control's duration, real seconds (the gateway's timing is real)

Kinds: ``export_limit`` (2030.5 opModExpLimW: ``watts``, ``for``), ``island`` (2030.5
opModConnect=false: ``for``), ``grid_fail``, ``grid_return`` (the simulated grid),
``charge_limit`` (OpenADR 3 IMPORT_CAPACITY_LIMIT: ``watts``, ``for``), ``wait`` (``for``: hold
the demo open), and ``close_relay`` (a person closes the relay by hand: unsafe on purpose, to
see the demo's checks fail). A step waits for its ``at`` and for the step before it to have
shown its effect on the devices, so ``--speed max`` keeps the order.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.core.errors import ConfigError


class ScenarioError(ConfigError, ValueError):
    """A scenario file that cannot be played; the message says where and what."""


#: Each kind, with the keys it needs beyond ``at`` and ``kind``.
KINDS: Final[dict[str, tuple[str, ...]]] = {
    "export_limit": ("watts", "for"),
    "island": ("for",),
    "grid_fail": (),
    "grid_return": (),
    "charge_limit": ("watts", "for"),
    "wait": ("for",),
    "close_relay": (),
}
MAX_FOR_S: Final = 3600.0
MAX_WATTS: Final = 100_000.0


@dataclass(frozen=True, slots=True)
class Step:
    at: float  # seconds after start at --speed 1
    kind: str
    watts: float | None = None
    for_s: float | None = None

    def describe(self) -> str:
        parts = [self.kind.replace("_", " ")]
        if self.watts is not None:
            parts.append(f"{self.watts:g} W")
        if self.for_s is not None:
            parts.append(f"for {self.for_s:g} s")
        return " ".join(parts)


#: The evening of ``gateway demo`` with no --scenario (docs/demo.md walks through it).
DEFAULT: Final = (
    Step(2.0, "export_limit", watts=1500.0, for_s=8.0),
    Step(12.0, "island", for_s=10.0),
    Step(16.0, "grid_fail"),
    Step(24.0, "grid_return"),
    Step(34.0, "charge_limit", watts=2000.0, for_s=8.0),
    Step(44.0, "wait", for_s=2.0),
)


def _number(where: str, raw: dict[str, Any], key: str, high: float) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {key} must be a number, not {value!r}")
    if not 0 <= value <= high:
        raise ScenarioError(f"{where}: {key} = {value:g} is outside 0..{high:g}")
    return float(value)


def parse(doc: object, source: str = "scenario") -> tuple[Step, ...]:
    """The steps of a loaded document (``{"step": [...]}``), in time order."""
    if not isinstance(doc, dict) or not isinstance(doc.get("step"), list) or not doc["step"]:
        raise ScenarioError(f"{source}: needs a non-empty list of steps ([[step]] tables)")
    unknown = sorted(set(doc) - {"step", "description"})
    if unknown:
        raise ScenarioError(f"{source}: unknown key {unknown[0]!r} (only step, description)")
    steps: list[Step] = []
    for i, raw in enumerate(doc["step"], 1):
        where = f"{source}: step {i}"
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where}: must be a table with at and kind")
        kind = raw.get("kind")
        if kind not in KINDS:
            known = ", ".join(KINDS)
            raise ScenarioError(f"{where}: kind {kind!r} is not one of {known}")
        needs = KINDS[kind]
        extra = sorted(set(raw) - {"at", "kind", *needs})
        if extra:
            raise ScenarioError(f"{where}: {kind} takes no {extra[0]!r}")
        at = _number(where, raw, "at", 24 * 3600.0)
        watts = _number(where, raw, "watts", MAX_WATTS) if "watts" in needs else None
        for_s = _number(where, raw, "for", MAX_FOR_S) if "for" in needs else None
        if for_s is not None and for_s < 1:
            raise ScenarioError(f"{where}: for = {for_s:g} s is too short (at least 1 s)")
        steps.append(Step(at, kind, watts, for_s))
    return tuple(sorted(steps, key=lambda s: s.at))


def load(path: Path) -> tuple[Step, ...]:
    """The steps of a TOML (``.toml``) or JSON file; ScenarioError, one line, if it is bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: cannot read it: {e}") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ScenarioError(f"{path}: not valid {kind}: {e}") from None
    return parse(doc, str(path))


def speed_of(text: str) -> float | None:
    """``--speed``: a factor above 0 (at most 100), or ``max`` (None: as fast as it can)."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ScenarioError(f"--speed {text!r}: a number such as 2, or max") from None
    if not 0 < value <= 100:
        raise ScenarioError(f"--speed {text}: must be above 0 and at most 100, or max")
    return value
