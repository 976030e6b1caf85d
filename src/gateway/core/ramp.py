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

Soft start (2030.5 DefaultDERControl ``setSoftGradW``, "soft-start ramp rate of increase of
active power when (re)entering service after a trip / cease to energize"):

* The site *enters service* when its DER may export again after they could not: the relay is
  closed and grid-connected again after an island, an ``opModConnect=false`` or a fault
  (the engine's phase is back to GRID_CONNECTED), or ``opModEnergize`` returns to true. The
  engine says which by ``in_service`` on every call.
* If a soft-start rate is in force at that moment, the DER output limit
  (``generation_limit_w``, the DERs' total discharge) rises from 0 W at that rate (% of the
  site's DER rating per second) until it reaches the limit in force, or the rating when no
  limit is in force; then the soft start is over. It caps whatever the other ramps give, so a
  limit that changes meanwhile still ramps, and never above the soft start's line.
* Only output soft-starts: export follows from it, and the import/load limits (charging) are
  not an increase of active power.
* Leaving service ends the soft start; the rate is read on every call, so a default withdrawn
  during a soft start ends it. The first call after a start is not an entry (the gateway
  restarting is not the DER tripping), and soft starts are not persisted, like ramps.

Enter-service ramp (2030.5 DefaultDERControl ``setESRampTms``, "enter service ramp time"):

* The same entries, the same line from 0 W on the output limit, at the DER rating divided by
  the ramp time (IEEE 1547-2018 4.10.3: an average rate of change of active power not above
  the nameplate rating divided by the enter-service period): with no limit in force the output
  reaches the rating after ``setESRampTms``, a lower limit in force sooner.
* ``setSoftGradW`` and ``setESRampTms`` both bound how fast output may rise on entering
  service: when both are given, the slower of the two rates applies (:func:`entry_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from gateway.core.backfeed import Limits
from gateway.core.units import Timestamp

RAMPED: Final = ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w")
_UNSET: Final = object()


def entry_rate(soft_w_per_s: float | None, ramp_s: float | None, rated_w: float) -> float | None:
    """The rate (W/s) the output limit rises at on entering service: the soft-start rate
    (``setSoftGradW`` as W/s), the enter-service ramp (``rated_w / setESRampTms``), or the
    slower of the two when both are given; None when neither is (0 counts as not given, and
    so does a rate too fast to be finite: a line at an infinite rate would be NaN at entry)."""
    rates = []
    if soft_w_per_s is not None and soft_w_per_s > 0:
        rates.append(soft_w_per_s)
    if ramp_s is not None and ramp_s > 0 and rated_w > 0:
        rates.append(rated_w / ramp_s)
    rates = [r for r in rates if math.isfinite(r)]
    return min(rates) if rates else None


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
        self._in_service: bool | None = None  # None: not known yet (the first call)
        self._soft_from: Timestamp | None = None  # when the soft start in progress began

    def apply(
        self,
        limits: Limits,
        ramp_s: float | None,
        measured: Mapping[str, float | None],
        now: Timestamp,
        rate_w_per_s: float | None = None,
        *,
        in_service: bool | None = None,
        soft_w_per_s: float | None = None,
        rated_w: float = 0.0,
    ) -> Limits:
        """The limits to use at ``now``. ``in_service`` (None = not tracked), ``soft_w_per_s``
        and ``rated_w`` drive the soft start (module docstring)."""
        soft = soft_w_per_s is not None and soft_w_per_s > 0
        if in_service is not None:
            if not in_service or not soft:
                self._soft_from = None
            elif self._in_service is False:
                self._soft_from = now
            self._in_service = in_service
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
            if name == "generation_limit_w" and self._soft_from is not None:
                assert soft_w_per_s is not None
                value = self._soft_cap(value, soft_w_per_s, rated_w, now)
            values[name] = value
            self._last[name] = value
        return replace(limits, **values)

    def ramping(self) -> list[str]:
        return sorted(self._ramps)

    @property
    def soft_starting(self) -> bool:
        return self._soft_from is not None

    def _soft_cap(
        self, value: float | None, rate: float, rated_w: float, now: Timestamp
    ) -> float | None:
        assert self._soft_from is not None
        ceiling = rated_w if value is None else value
        line = rate * max(0.0, now - self._soft_from)
        if line >= ceiling:
            self._soft_from = None  # reached: the soft start is over
            return value
        return line

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
