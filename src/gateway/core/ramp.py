"""Ramped limits: a new utility limit is reached over ``rampTms``, not as a step (2030.5).

``rampTms`` is the "requested ramp time ... for the device to transition from the current active
power output level to the new level" (XSD). So when the limit in force for a mode changes and the
control that now wins also sets a ramp time, the limit the allocator sees starts at what the site
was *measured* doing on that quantity and moves linearly to the new limit over the ramp time.

Choices:

* Only the four W limits ramp (export, import, generation, load). Booleans (connect, energize)
  and the panel's own backfeed limits never do: those are safety, not requests.
* Without a ramp time, the default ramp *rate* applies where the utility gave one (2030.5
  DefaultDERControl ``setGradW``, % of the DER rating per second): the ramp lasts
  |new - start| / rate. ``rampTms`` wins over it (it is the control's own instruction).
* Without a measurement for the quantity, or without a ramp time or rate, the new limit applies
  at once.
* A limit that changes again during a ramp starts a new ramp from the value in force then.
* Ramps are not persisted: after a restart the limit in force applies at once (the safe side
  for a tightening limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from gateway.core.backfeed import Limits
from gateway.core.units import Timestamp

RAMPED: Final = ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w")
_UNSET: Final = object()


@dataclass(frozen=True, slots=True)
class _Ramp:
    start: float
    target: float
    t0: Timestamp
    duration_s: float

    def at(self, now: Timestamp) -> float | None:
        """The value at ``now``; None once the ramp is over."""
        f = (now - self.t0) / self.duration_s
        if f >= 1 or f < 0:
            return None
        return self.start + (self.target - self.start) * f


class Ramps:
    """The limits the allocator uses, ramped towards the limits in force."""

    def __init__(self) -> None:
        self._targets: dict[str, object] = {}
        self._ramps: dict[str, _Ramp] = {}
        self._last: dict[str, float | None] = {}

    def apply(
        self,
        limits: Limits,
        ramp_s: float | None,
        measured: Mapping[str, float | None],
        now: Timestamp,
        rate_w_per_s: float | None = None,
    ) -> Limits:
        values: dict[str, float | None] = {}
        for name in RAMPED:
            target: float | None = getattr(limits, name)
            previous = self._targets.get(name, _UNSET)
            self._targets[name] = target
            if previous is not _UNSET and previous != target:
                self._start(name, target, ramp_s, rate_w_per_s, measured.get(name), now)
            ramp = self._ramps.get(name)
            value = target if ramp is None else ramp.at(now)
            if value is None:
                self._ramps.pop(name, None)
                value = target
            values[name] = value
            self._last[name] = value
        return replace(limits, **values)

    def ramping(self) -> list[str]:
        return sorted(self._ramps)

    def _start(
        self,
        name: str,
        target: float | None,
        ramp_s: float | None,
        rate_w_per_s: float | None,
        measured: float | None,
        now: Timestamp,
    ) -> None:
        self._ramps.pop(name, None)
        by_time = ramp_s is not None and ramp_s > 0
        by_rate = rate_w_per_s is not None and rate_w_per_s > 0
        if target is None or not (by_time or by_rate):
            return
        start = self._last.get(name)
        if start is None:  # no limit was in force: start from what the site was doing
            start = measured
        elif measured is not None:
            start = min(start, measured) if target < start else max(start, measured)
        if start is None or start == target:
            return
        if by_time:
            assert ramp_s is not None
            duration = float(ramp_s)
        else:
            assert rate_w_per_s is not None
            duration = abs(target - start) / rate_w_per_s
        self._ramps[name] = _Ramp(float(start), float(target), now, duration)
