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

Pacing (``step_s``: the devices' ``setpoint_interval_s``, from their profiles' ``[pacing]``):

* A ramp or soft start in progress moves in steps on a grid of ``step_s`` from its start: at
  most one move per grid interval, each as far as the rate allows for the time elapsed, so the
  rate holds on average and the device is written once per step, not once per engine call.
  (Unpaced, each write's confirmation moved the line a few milliseconds on and caused the
  next write, a lower limit never being held back: ~660 writes a second, issue 16.)
* Pacing never makes a limit late. A *rising* ramp (a limit relaxing, a soft start) is read at
  the last grid point: behind its line, the restrictive side. A *falling* ramp is read at the
  next grid point: ahead of its line, so the limit in force is never above the unpaced one.
  Whichever way, the paced value is at or under the unpaced line: what waits is only ever a
  move toward a less restrictive value.
* The final value is the target, exactly: a falling ramp reaches it at the last step before
  the ramp time is over, a rising one (and a soft start) at the first step at or after it, so
  the end is a step like the others, not one more write.
* Nothing else is paced: a limit that changes without a ramp (no ``rampTms``, no
  ``setGradW``), a limit removed, the panel's backfeed caps, the allocator's response to the
  meter, relay and charger commands (stop, grid-forming), ``opModEnergize`` and
  ``opModConnect``: none of them passes through here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final

from gateway.core.backfeed import Limits
from gateway.core.units import Timestamp

#: A device whose profile says nothing is written a ramped setpoint at most once a second.
DEFAULT_STEP_S: Final = 1.0
RAMPED: Final = ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w")
_UNSET: Final = object()


def step_of(intervals: Mapping[str, float], der_ids: Iterable[str]) -> float:
    """The step of a site's ramps: the slowest of its DERs' ``setpoint_interval_s`` (a ramped
    site limit is shared out to all of them at once), DEFAULT_STEP_S for a DER not listed."""
    return max((intervals.get(d, DEFAULT_STEP_S) for d in der_ids), default=DEFAULT_STEP_S)


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


def stepped(elapsed_s: float, step_s: float, *, ahead: bool) -> float:
    """Where a paced line is read, ``elapsed_s`` after its start: at the last step of the grid
    ``0, step_s, 2 step_s ...`` (behind it), or at the next one (``ahead``); 0 = unpaced."""
    if step_s <= 0:
        return elapsed_s
    k = math.floor(elapsed_s / step_s + 1e-9)  # a call on a grid point counts as on it
    return (k + 1 if ahead else k) * step_s


@dataclass(frozen=True, slots=True)
class _Ramp:
    start: float
    target: float
    t0: Timestamp
    duration_s: float

    def at(self, now: Timestamp, step_s: float = 0.0) -> float | None:
        """The value at ``now``, moved once per ``step_s`` (module docstring, Pacing); None
        once the ramp is over."""
        elapsed = now - self.t0
        if elapsed < 0:
            return None
        # Falling: read where the line will be at the next step (never above it), over at the
        # ramp's end; rising: read at the last step, over at the first step past the end.
        falling = self.target < self.start
        t = stepped(elapsed, step_s, ahead=falling)
        if (elapsed if falling else t) >= self.duration_s:
            return None
        return self.start + (self.target - self.start) * min(1.0, t / self.duration_s)


class Ramps:
    """The limits the allocator uses, ramped towards the limits in force."""

    def __init__(self) -> None:
        self._targets: dict[str, object] = {}
        self._ramps: dict[str, _Ramp] = {}
        self._last: dict[str, float | None] = {}
        self._in_service: bool | None = None  # None: not known yet (the first call)
        self._soft_from: Timestamp | None = None  # when the soft start in progress began
        self._notes: list[str] = []  # ramps started and ended since the last take_notes()

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
        step_s: float = 0.0,
    ) -> Limits:
        """The limits to use at ``now``. ``in_service`` (None = not tracked), ``soft_w_per_s``
        and ``rated_w`` drive the soft start; a ramp or soft start in progress moves at most
        once per ``step_s`` (0: continuously; module docstring, Pacing)."""
        soft = soft_w_per_s is not None and soft_w_per_s > 0
        if in_service is not None:
            if not in_service or not soft:
                if self._soft_from is not None:
                    why = "out of service" if not in_service else "no soft-start rate in force"
                    self._notes.append(f"soft start ended: {why}")
                self._soft_from = None
            elif self._in_service is False:
                self._soft_from = now
                assert soft_w_per_s is not None
                self._notes.append(
                    f"soft start: the DER output limit rises from 0 W at {soft_w_per_s:.0f} W/s"
                    + _paced(step_s)
                )
            self._in_service = in_service
        values: dict[str, float | None] = {}
        for name in RAMPED:
            target: float | None = getattr(limits, name)
            previous = self._targets.get(name, _UNSET)
            self._targets[name] = target
            if previous is not _UNSET and previous != target:
                self._start(name, target, ramp_s, rate_w_per_s, measured.get(name), now, step_s)
            ramp = self._ramps.get(name)
            value = target if ramp is None else ramp.at(now, step_s)
            if value is None:
                if self._ramps.pop(name, None) is not None:
                    self._notes.append(f"ramp of {name} over: {_w(target)} in force")
                value = target
            if name == "generation_limit_w" and self._soft_from is not None:
                assert soft_w_per_s is not None
                value = self._soft_cap(value, soft_w_per_s, rated_w, now, step_s)
            values[name] = value
            self._last[name] = value
        return replace(limits, **values)

    def ramping(self) -> list[str]:
        return sorted(self._ramps)

    @property
    def soft_starting(self) -> bool:
        return self._soft_from is not None

    def take_notes(self) -> list[str]:
        """One line for each ramp (or soft start) that started or ended since the last call."""
        notes, self._notes = self._notes, []
        return notes

    def _soft_cap(
        self, value: float | None, rate: float, rated_w: float, now: Timestamp, step_s: float
    ) -> float | None:
        assert self._soft_from is not None
        ceiling = rated_w if value is None else value
        # Rising: read at the last step (behind the line, never above it).
        line = rate * stepped(max(0.0, now - self._soft_from), step_s, ahead=False)
        if line >= ceiling:
            self._soft_from = None  # reached: the soft start is over
            self._notes.append(f"soft start over: {_w(value)} in force")
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
        step_s: float,
    ) -> None:
        replaced = self._ramps.pop(name, None)
        ramp = self._ramp(name, target, ramp_s, rate_w_per_s, measured, now)
        if ramp is not None:
            self._ramps[name] = ramp
            how = f"{ramp_s:g} s (rampTms)" if ramp_s is not None and ramp_s > 0 else None
            if how is None:
                how = f"{ramp.duration_s:.1f} s ({rate_w_per_s:.0f} W/s)"
            self._notes.append(
                f"ramp of {name}: {ramp.start:.0f} W -> {ramp.target:.0f} W over {how}"
                + _paced(step_s)
                + ("" if replaced is None else f", instead of the ramp to {replaced.target:.0f} W")
            )
        elif replaced is not None:
            self._notes.append(
                f"ramp of {name} to {replaced.target:.0f} W ended: {_w(target)} applies at once"
            )

    def _ramp(
        self,
        name: str,
        target: float | None,
        ramp_s: float | None,
        rate_w_per_s: float | None,
        measured: float | None,
        now: Timestamp,
    ) -> _Ramp | None:
        by_time = ramp_s is not None and ramp_s > 0
        by_rate = rate_w_per_s is not None and rate_w_per_s > 0
        if target is None or not (by_time or by_rate):
            return None
        start = self._last.get(name)
        if start is None:  # no limit was in force: start from what the site was doing
            start = measured
        elif measured is not None:
            start = min(start, measured) if target < start else max(start, measured)
        if start is None or start == target:
            return None
        if by_time:
            assert ramp_s is not None
            duration = float(ramp_s)
        else:
            assert rate_w_per_s is not None
            duration = abs(target - start) / rate_w_per_s
        return _Ramp(float(start), float(target), now, duration)


def _w(value: float | None) -> str:
    return "no limit" if value is None else f"{value:.0f} W"


def _paced(step_s: float) -> str:
    return f", one step per {step_s:g} s" if step_s > 0 else ""
