"""Compose the controls of every source into the one set in force, with the reason for each mode.

Rules (named in docs/architecture.md):

* **Limits** (export, import, generation, load, max generation %): the most restrictive value
  of every source wins. A homeowner may ask for less export than the utility allows, never more;
  a utility limit never lifts the installer's site policy.
* **Booleans where False is the safe side** (connect, energize, island permit, grid-connect
  permit): AND. Any source saying ``False`` wins; ``True`` needs nobody to object.
* **Setpoints** (target W, fixed W %, storage target W, ramp time): the source with the highest
  precedence (:class:`~gateway.core.controls.Source` order) that sets the mode wins: the outage
  response, then the homeowner's override, then the utility's event, then its default, then site
  policy. Utility events already went through the 2030.5 primacy rules in the schedule.
* **Several north links** (:mod:`gateway.core.schedules`): each link's claims carry its
  ``link`` and ``rank`` (2030.5 0, OpenADR 2.0b 1, OpenADR 3 2). A limit or a safe-side
  boolean from any link holds whatever the rank; among setpoints of one source the lower rank
  wins, so a utility event of any link still beats every link's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.core.controls import ControlSet, Mode, Source

Value = bool | float


@dataclass(frozen=True, slots=True)
class Claim:
    """One source's value for one mode, with that source's own explanation."""

    source: Source
    value: Value
    why: str
    link: str | None = None  # the north link it came from (utility sources only)
    rank: int = 0  # that link's setpoint precedence: lower wins (core.schedules.LINKS)

    @property
    def label(self) -> str:
        return self.source.label if self.link is None else f"{self.source.label} ({self.link})"


@dataclass(frozen=True, slots=True)
class Decision:
    mode: Mode
    value: Value
    source: Source
    why: str
    overruled: tuple[Claim, ...] = ()
    link: str | None = None

    @property
    def label(self) -> str:
        return self.source.label if self.link is None else f"{self.source.label} ({self.link})"

    def __str__(self) -> str:
        text = f"{self.mode.value} = {_fmt(self.mode, self.value)} ({self.label}: {self.why})"
        if self.overruled:
            others = "; ".join(f"{c.label} {_fmt(self.mode, c.value)}" for c in self.overruled)
            text += f" [over {others}]"
        return text


@dataclass(frozen=True, slots=True)
class Resolved:
    decisions: Mapping[Mode, Decision]
    controls: ControlSet

    def explain(self, mode: Mode) -> str:
        d = self.decisions.get(mode)
        return str(d) if d else f"{mode.value}: nothing in force"


_UNITS: Final = {
    Mode.RAMP_TIME_S: "s",
    Mode.RAMP_RATE_PCT_S: "%/s",
    Mode.SOFT_START_RATE_PCT_S: "%/s",
    Mode.ENTER_SERVICE_DELAY_S: "s",
    Mode.ENTER_SERVICE_RANDOM_DELAY_S: "s",
    Mode.ENTER_SERVICE_RAMP_S: "s",
}


def _fmt(mode: Mode, value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    unit = _UNITS.get(mode, "%" if mode.value.endswith("_pct") else "W")
    return f"{value:g} {unit}"


def pick(mode: Mode, claims: list[Claim]) -> Claim:
    """The claim that decides ``mode`` (module docstring); ``claims`` must not be empty."""
    if mode.is_limit:
        return min(claims, key=lambda c: (float(c.value), c.source, c.rank))
    if mode.is_boolean:
        falses = [c for c in claims if c.value is False]
        return min(falses or claims, key=lambda c: (c.source, c.rank))
    return min(claims, key=lambda c: (c.source, c.rank))


def resolve(claims: Mapping[Mode, list[Claim]]) -> Resolved:
    decisions: dict[Mode, Decision] = {}
    values: dict[str, Value] = {}
    for mode, mode_claims in claims.items():
        if not mode_claims:
            continue
        win = pick(mode, mode_claims)
        rest = tuple(c for c in mode_claims if c is not win)
        decisions[mode] = Decision(mode, win.value, win.source, win.why, rest, win.link)
        values[mode.value] = win.value
    return Resolved(decisions, ControlSet(**values))  # type: ignore[arg-type]


def claims_of(controls: ControlSet, source: Source, why: str) -> dict[Mode, Claim]:
    return {m: Claim(source, v, why) for m, v in controls.items()}
