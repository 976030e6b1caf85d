"""Backfeed coordinator: per-DER discharge and charge caps for one control cycle (grid-connected).

Without coordination NEC 705.12(B)(3)(2) (the "120 % rule") allows ``1.2 x busbar - main``
amps of backfeed: 40 A on a 200 A busbar with a 200 A main, 20 A on 100/100. With a power
control system that measures the utility current (NEC 705.13), the real limits are the busbar
and main-breaker currents, which leave far more room (devices.md §4.5). :func:`allocate` turns
the panel ratings, the meter, the DER outputs and the utility limits into caps, every cycle.

Model and choices (each one errs to the safe side where the data allow two readings):

* **Caps are a box.** A DER may run anywhere in ``[-max_charge_w, +max_discharge_w]`` until the
  next cycle, so every check holds for the worst point of the box: export checks assume every
  DER discharges at its cap and none charges; import checks assume nothing discharges, except
  generation-only DER (``max_charge_w == 0``, i.e. PV), whose present output (bounded by its
  new cap) is credited. Without that credit a tight import limit would forbid charging from
  solar surplus; the price is one cycle over the import limit if a cloud passes, acceptable
  for a contractual limit (the busbar checks take no such credit).
* **Stale or missing data** (no meter reading, a reading older than ``max_meter_age_s`` or from
  the future, a reading with NaN or missing phases, a configured DER whose output is missing,
  too old, from the future, NaN or beyond its rating, duplicate ``der_id``): the site load is
  unknown, so the discharge allowance is the static 120 % allowance, capped by the generation
  limit and by the export limit as if the site load were zero. An import limit cannot be
  verified either, so charge caps are 0 W while one is set.
* **Site load** (everything but the listed DER) is ``net_w + sum(outputs)``. It is clamped at
  0 W for the import checks, where a larger load is stricter; a negative estimate (an
  uncontrolled source, or readings from different instants) is kept for the export check,
  where it is the stricter reading.
* **Currents.** DER are 240 V line-to-line, so ``P`` watts of DER is ``P / V`` amps on every
  leg. Other configurations work by setting ``nominal_voltage_v`` to watts per phase-amp (for
  208 V three-phase, ``sqrt(3) * 208``). With fresh data the measured voltage is used when it is
  lower than nominal (more amps per watt); the static allowance stays ``A x nominal_voltage_v``.
  The non-DER load on the worst leg is bounded by ``DER amps + worst phase current`` (true
  whatever the leg's direction, which the meter's magnitudes do not tell) and by
  ``n_phases * load / V`` (all of the load on one leg), whichever is smaller.
* **Busbar (dynamic 705.12/705.13 check).** The busbar's sources are the grid import and the
  DER: ``sources = D + max(0, load + C - D) = max(D, load + C)``, which must stay within
  ``1.2 x busbar x busbar_margin`` (B'). Hence ``D <= B'`` and, while ``D`` exceeds what the
  main breaker already protects (``B' - main``, never more than the static allowance),
  ``C <= B' - load``. If the loads alone exceed B', the DER would only be keeping the main from
  tripping, so discharge falls to the breaker-protected amount.
* **Main breaker.** Export on a leg is ``D / V - leg load`` and a leg may carry no load, so
  ``D <= main_breaker_a x V``. No load credit is taken: it would matter only beyond 200 A of DER.
  A negative site load reveals a source the coordinator does not control; then the leg load is
  bounded below by ``DER amps - worst phase current`` and the main's headroom shrinks by it.
  The model otherwise assumes every source on the busbar is listed in ``ders``: an uncontrolled
  one belongs in the installer's ``static_allowance_a`` and ``busbar_margin``. Charging is kept
  within what the main carries, ``C <= (main - leg load) x V``, with no credit for discharge:
  tripping the main would black out the home.
* **Utility limits.** export: ``D - load <= export_limit_w``; generation: ``D <=
  generation_limit_w``; load: ``C <= load_limit_w``; import: ``load + C - credit <=
  import_limit_w``, which only shrinks charge caps (a cap cannot force a DER to discharge, and
  is never negative); ``max_generation_pct``: each discharge cap ``<= pct / 100 x rating``.
  Device ratings always cap. A NaN or negative limit counts as 0 W (most restrictive).
* **The allowance in force** (``allowance_w``) is the smallest of those totals and of the sum of
  the DER's own caps, never below 0 W; without a listed PCS (``coordinated=False``) it never
  exceeds the static allowance.
* **Allocation** follows the configured order: the first DER takes what it can up to its own
  caps, then the next, until the allowance is used; the same for charge headroom. A discharge
  the controls order of a DER (``dispatch_w``: a utility's target for the V2H charger) is
  granted first, in order, up to its own cap; the order then hands out what is left. Each
  :class:`DerCap` names what bound each direction: its own cap (rating, max generation %) when
  that was the smaller, else the constraint that set the total. Ties go to the DER's own cap,
  and among totals to the first checked: busbar, main breaker, static allowance, generation
  limit, export limit, device ratings (discharge; stale data start at the static allowance);
  load limit, main breaker, busbar, import limit, device ratings (charge).
* **Invalid configuration** (a panel failing :meth:`PanelRating.problems`): every cap is 0 W.
  A DER failing :meth:`DerRating.problems` gets 0 W caps; the others are allocated as usual.

Islanded operation is the island module's business: there is no backfeed to coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from gateway.core.controls import ControlSet
from gateway.core.units import Amps, Seconds, Timestamp, Volts, Watts

KINDS: Final = frozenset({"charger", "pv", "battery"})
# A DER reporting more than its rating by this much is misconfigured or misread: its output
# cannot anchor a load estimate. The slack absorbs meter error at low power.
OUTPUT_TOLERANCE: Final = 0.10
OUTPUT_SLACK_W: Final = 100.0
_INF: Final = math.inf


@unique
class Bound(StrEnum):
    """The constraint that bound a cap or an allowance, readable as it stands."""

    DEVICE_RATING = "device rating"
    DEVICE_RATINGS = "device ratings"  # the sum of the DER's own caps
    MAX_GENERATION_PCT = "max generation %"
    STATIC_ALLOWANCE = "static 120 % allowance"
    BUSBAR = "busbar rating"
    MAIN_BREAKER = "main breaker"
    EXPORT_LIMIT = "export limit"
    IMPORT_LIMIT = "import limit"
    GENERATION_LIMIT = "generation limit"
    LOAD_LIMIT = "load limit"
    INVALID_RATING = "invalid DER rating"
    INVALID_PANEL = "invalid panel configuration"
    DUPLICATE_ID = "duplicate der_id"
    NOT_CONFIGURED = "DER not configured"


# Module-level aliases: enum attribute lookups are measurable in a 50 us budget.
_RATING: Final = Bound.DEVICE_RATING
_PCT: Final = Bound.MAX_GENERATION_PCT


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < _INF


def _finite_non_negative(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value < _INF


@dataclass(frozen=True, slots=True)
class PanelRating:
    """The main panel as the installer recorded it."""

    busbar_a: Amps
    main_breaker_a: Amps
    nominal_voltage_v: Volts = 240.0  # split-phase 120/240; DER are 240 V line-to-line
    phases: tuple[str, ...] = ("L1", "L2")
    static_allowance_a: Amps | None = None  # installer override of the 120 % rule
    coordinated: bool = True  # False: no listed PCS, caps never exceed the static allowance
    busbar_margin: float = 1.0  # fraction of the busbar rating used in the dynamic check

    @property
    def rule_allowance_a(self) -> Amps:
        """NEC 705.12(B)(3)(2): 120 % of the busbar minus the main breaker, never negative."""
        # x * 6 / 5 rather than x * 1.2: exact for whole-amp ratings (200 A -> 240 A, not 239.99).
        return max(0.0, self.busbar_a * 6.0 / 5.0 - self.main_breaker_a)

    @property
    def static_limit_a(self) -> Amps:
        """The static allowance in force: the installer's override, else the 120 % rule."""
        if self.static_allowance_a is not None:
            return self.static_allowance_a
        return self.rule_allowance_a

    @property
    def static_allowance_w(self) -> Watts:
        return self.static_limit_a * self.nominal_voltage_v

    @property
    def dynamic_busbar_a(self) -> Amps:
        """The busbar current the dynamic (705.13) check allows: B' = 1.2 x busbar x margin."""
        return self.busbar_a * 6.0 / 5.0 * self.busbar_margin

    def problems(self) -> list[str]:
        """Why this panel cannot be coordinated, as sentences an installer can act on."""
        out: list[str] = []
        for name in ("busbar_a", "main_breaker_a", "nominal_voltage_v"):
            value = getattr(self, name)
            if not _finite_positive(value):
                out.append(f"{name} must be a positive number, got {value!r}")
        if not out:
            if self.main_breaker_a > self.busbar_a:
                out.append(
                    f"main_breaker_a ({self.main_breaker_a:g} A) exceeds busbar_a "
                    f"({self.busbar_a:g} A): the main breaker does not protect the busbar"
                )
            if not 100.0 <= self.nominal_voltage_v <= 1000.0:
                out.append(
                    f"nominal_voltage_v must be 100-1000 V, got {self.nominal_voltage_v:g}; "
                    "check the unit"
                )
        if (
            not isinstance(self.phases, tuple)
            or not self.phases
            or not all(isinstance(p, str) and p for p in self.phases)
            or len(set(self.phases)) != len(self.phases)
        ):
            out.append(f"phases must be distinct non-empty names, got {self.phases!r}")
        override = self.static_allowance_a
        if override is not None:
            if not _finite_non_negative(override):
                out.append(f"static_allowance_a must be a number >= 0, got {override!r}")
            elif _finite_positive(self.busbar_a) and override > self.busbar_a * 6.0 / 5.0:
                out.append(
                    f"static_allowance_a ({override:g} A) exceeds 120 % of the busbar "
                    f"({self.busbar_a * 6.0 / 5.0:g} A)"
                )
        margin = self.busbar_margin
        if not (_is_number(margin) and 0.0 < margin <= 1.0):
            out.append(f"busbar_margin must be in (0, 1], got {margin!r}")
        coordinated: object = self.coordinated  # a config string "false" would be truthy
        if not isinstance(coordinated, bool):
            out.append(f"coordinated must be true or false, got {coordinated!r}")
        return out


@dataclass(frozen=True, slots=True)
class DerRating:
    """One controllable DER, as it can act on the busbar (AC side, W)."""

    der_id: str
    kind: str  # "charger" | "pv" | "battery"
    max_discharge_w: Watts  # generation into the home
    max_charge_w: Watts = 0.0  # 0 for PV
    capacity_wh: float | None = None  # usable storage (EV battery); None for PV or unknown
    # Nameplate beyond W, reported only (2030.5 DERCapability rtgMaxVA, rtgMaxVar, rtgMaxVarNeg,
    # rtgMinPF*): None = not configured; see the ``*_rating`` properties for what is reported.
    max_va: float | None = None
    max_var: float | None = None  # var delivered (injected)
    max_var_neg: float | None = None  # var received (absorbed), a magnitude
    min_pf_over_excited: float | None = None  # in (0, 1]
    min_pf_under_excited: float | None = None  # in (0, 1]

    @property
    def va_rating(self) -> float:
        """VA: as configured, else the larger W rating (the gateway never commands var, so the
        DER runs at unity power factor and its apparent power is its active power)."""
        if self.max_va is not None:
            return self.max_va
        return max(self.max_discharge_w, self.max_charge_w)

    @property
    def var_rating(self) -> float:
        """var delivered: as configured, else 0 (unity power factor)."""
        return 0.0 if self.max_var is None else self.max_var

    @property
    def var_neg_rating(self) -> float:
        """var received (a magnitude): as configured, else the var delivered (2030.5's default)."""
        return self.var_rating if self.max_var_neg is None else self.max_var_neg

    @property
    def pf_over_excited_rating(self) -> float:
        """Minimum PF injecting var: as configured, else unity (2030.5's default)."""
        return 1.0 if self.min_pf_over_excited is None else self.min_pf_over_excited

    @property
    def pf_under_excited_rating(self) -> float:
        """Minimum PF absorbing var: as configured, else the over-excited one (2030.5's
        default)."""
        if self.min_pf_under_excited is None:
            return self.pf_over_excited_rating
        return self.min_pf_under_excited

    def nameplate_problems(self) -> list[str]:
        """The reported-only nameplate (``max_va`` ... ``min_pf_*``): kept out of
        :meth:`problems`, which decides whether the control cycle may use the DER."""
        out: list[str] = []
        for name in ("max_va", "max_var", "max_var_neg"):
            value = getattr(self, name)
            if value is not None and not _finite_non_negative(value):
                out.append(f"{self.der_id}: {name} must be a number >= 0, got {value!r}")
        for name in ("min_pf_over_excited", "min_pf_under_excited"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0.0 < value <= 1.0):
                out.append(f"{self.der_id}: {name} must be in (0, 1], got {value!r}")
        if out or not (
            _finite_non_negative(self.max_discharge_w) and _finite_non_negative(self.max_charge_w)
        ):
            return out  # problems() names bad W ratings
        w, va = max(self.max_discharge_w, self.max_charge_w), self.va_rating
        if va < w:  # P <= S: no DER delivers more W than VA
            out.append(f"{self.der_id}: max_va ({va:g}) is below the W rating ({w:g})")
        for name in ("max_var", "max_var_neg"):
            value = getattr(self, name)
            if value is not None and value > va:  # Q <= S
                out.append(f"{self.der_id}: {name} ({value:g}) exceeds the VA rating ({va:g})")
        return out

    def problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.der_id, str) or not self.der_id:
            out.append(f"der_id must be a non-empty string, got {self.der_id!r}")
        if self.kind not in KINDS:
            out.append(f"{self.der_id}: kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        if self.capacity_wh is not None and not self.capacity_wh > 0:
            out.append(f"{self.der_id}: capacity_wh must be positive, got {self.capacity_wh!r}")
        for name in ("max_discharge_w", "max_charge_w"):
            value = getattr(self, name)
            if not _finite_non_negative(value):
                out.append(f"{self.der_id}: {name} must be a number >= 0, got {value!r}")
        if self.kind == "pv" and self.max_charge_w != 0:
            out.append(f"{self.der_id}: a PV inverter cannot charge; max_charge_w must be 0")
        return out


def _der_ok(der: DerRating) -> bool:
    """Fast form of ``not der.problems()`` for the control cycle (kept equal by a test)."""
    d = der.max_discharge_w
    c = der.max_charge_w
    return (
        _finite_non_negative(d)
        and _finite_non_negative(c)
        and der.kind in KINDS
        and (c == 0 or der.kind != "pv")
        and isinstance(der.der_id, str)
        and der.der_id != ""
    )


@dataclass(frozen=True, slots=True)
class MeterReading:
    """The utility meter at the main: one sample."""

    at: Timestamp
    net_w: Watts  # positive = import from the grid, negative = export
    phase_current_a: Mapping[str, Amps]  # magnitude per phase through the main
    voltage_v: Volts | None = None  # line-to-line, same basis as PanelRating.nominal_voltage_v


@dataclass(frozen=True, slots=True)
class DerOutput:
    der_id: str
    at: Timestamp
    power_w: Watts  # positive = discharge/generation into the home, negative = charging


@dataclass(frozen=True, slots=True)
class Limits:
    """The utility and site limits in force (None = not limited), in W at the site."""

    export_limit_w: Watts | None = None
    import_limit_w: Watts | None = None
    generation_limit_w: Watts | None = None
    load_limit_w: Watts | None = None
    max_generation_pct: float | None = None

    @classmethod
    def from_controls(cls, cs: ControlSet) -> Limits:
        """The limit modes of a resolved control set; setpoints and booleans are not limits."""
        return cls(
            export_limit_w=cs.export_limit_w,
            import_limit_w=cs.import_limit_w,
            generation_limit_w=cs.generation_limit_w,
            load_limit_w=cs.load_limit_w,
            max_generation_pct=cs.max_generation_pct,
        )


@dataclass(frozen=True, slots=True)
class DerCap:
    """What one DER may do until the next cycle, and which constraint bound each direction."""

    der_id: str
    max_discharge_w: Watts
    max_charge_w: Watts
    discharge_binding: Bound
    charge_binding: Bound

    @property
    def binding(self) -> str:
        """What bound this DER, readable (one text for both directions, for logs and reasons)."""
        if self.discharge_binding is self.charge_binding:
            return str(self.discharge_binding)
        return f"{self.discharge_binding} (discharge), {self.charge_binding} (charge)"


@dataclass(frozen=True, slots=True)
class Allocation:
    """One cycle's decision: the caps in allocation order, and why."""

    caps: tuple[DerCap, ...]
    allowance_w: Watts  # total DER discharge allowed now: the allowance in force
    static_allowance_w: Watts
    stale: bool  # True: the data were not usable and the static allowance applied
    reasons: tuple[str, ...]
    binding: Bound = Bound.STATIC_ALLOWANCE  # what set allowance_w
    charge_allowance_w: Watts = 0.0  # total DER charge allowed now
    charge_binding: Bound = Bound.DEVICE_RATINGS
    site_load_w: Watts | None = None  # the load estimate used (None when stale)

    def cap(self, der_id: str) -> DerCap:
        """The cap of ``der_id``; a DER this allocation does not know gets 0 W both ways."""
        for c in self.caps:
            if c.der_id == der_id:
                return c
        return DerCap(der_id, 0.0, 0.0, Bound.NOT_CONFIGURED, Bound.NOT_CONFIGURED)


def _limit(value: float | None, name: str, reasons: list[str]) -> float:
    if value is None:
        return _INF
    # NaN fails the comparison; +inf passes and means "no limit".
    if _is_number(value) and value >= 0.0:
        return float(value)
    reasons.append(f"{name} {value!r} is not a valid limit: treating it as 0 W")
    return 0.0


def _data_problem(
    panel: PanelRating,
    ders: Sequence[DerRating],
    meter: MeterReading | None,
    outputs: Mapping[str, DerOutput],
    now: Timestamp,
    max_age: Seconds,
) -> str | None:
    """Why the meter and DER data cannot anchor a dynamic allocation (None = usable)."""
    if meter is None:
        return "no meter data"
    age = now - meter.at
    if not 0.0 <= age <= max_age:  # NaN anywhere fails too
        if age < 0.0:
            return f"meter data {-age:.1f} s in the future (clock skew?)"
        return f"meter data {age:.1f} s old (max {max_age:g} s)"
    if not -_INF < meter.net_w < _INF:
        return f"meter net power is {meter.net_w!r}"
    currents = meter.phase_current_a
    for phase in panel.phases:
        i = currents.get(phase)
        if i is None or not 0.0 <= i < _INF:
            return f"meter current on {phase} is {i!r}"
    v = meter.voltage_v
    if v is not None and not 0.0 < v < _INF:
        return f"meter voltage is {v!r}"
    seen: set[str] = set()
    for der in ders:
        der_id = der.der_id
        if der_id in seen:
            return f"der_id {der_id!r} is configured twice"
        seen.add(der_id)
        out = outputs.get(der_id)
        if out is None or out.der_id != der_id:
            return f"no output reading from {der_id}"
        age = now - out.at
        if not 0.0 <= age <= max_age:
            if age < 0.0:
                return f"output of {der_id} {-age:.1f} s in the future (clock skew?)"
            return f"output of {der_id} {age:.1f} s old (max {max_age:g} s)"
        p = out.power_w
        if not -_INF < p < _INF:
            return f"output of {der_id} is {p!r}"
        if _der_ok(der) and not (
            -der.max_charge_w * (1.0 + OUTPUT_TOLERANCE) - OUTPUT_SLACK_W
            <= p
            <= der.max_discharge_w * (1.0 + OUTPUT_TOLERANCE) + OUTPUT_SLACK_W
        ):
            return f"{der_id} reports {p:.0f} W, beyond its rating"
    return None


def _zero(ders: Sequence[DerRating], bound: Bound, reasons: tuple[str, ...]) -> Allocation:
    caps = tuple(DerCap(d.der_id, 0.0, 0.0, bound, bound) for d in ders)
    return Allocation(
        caps, 0.0, 0.0, stale=True, reasons=reasons, binding=bound, charge_binding=bound
    )


def allocate(
    panel: PanelRating,
    ders: Sequence[DerRating],
    meter: MeterReading | None,
    outputs: Mapping[str, DerOutput],
    limits: Limits,
    now: Timestamp,
    max_meter_age_s: Seconds,
    dispatch_w: Mapping[str, float] | None = None,
    discharge_last: Collection[str] = (),
) -> Allocation:
    """Per-DER caps for this cycle; ``ders`` is the allocation order. Never raises on data.

    ``dispatch_w``: discharge a DER was *told* to run at (a utility's target for the V2H
    charger). Those amounts are granted first, in order, before the order hands out the rest:
    otherwise a PV placed first would hold the whole allowance with its nameplate, and an
    explicit dispatch under an export limit would never run.

    ``discharge_last``: DER that take discharge headroom only after the others (a charger that
    nothing asks to discharge: placed first, it held the export headroom and a PV after it got
    none). Only the discharge order changes: totals, the box and the charge order do not."""
    panel_problems = panel.problems()
    if panel_problems:
        why = "; ".join(panel_problems)
        return _zero(
            ders, Bound.INVALID_PANEL, (f"panel configuration invalid ({why}): all caps 0 W",)
        )
    reasons: list[str] = []
    export_lim = _limit(limits.export_limit_w, "export limit", reasons)
    import_lim = _limit(limits.import_limit_w, "import limit", reasons)
    gen_lim = _limit(limits.generation_limit_w, "generation limit", reasons)
    load_lim = _limit(limits.load_limit_w, "load limit", reasons)
    pct = _limit(limits.max_generation_pct, "max generation %", reasons)

    # Each DER's own caps: its rating, then max_generation_pct.
    n = len(ders)
    own_d = [0.0] * n
    own_c = [0.0] * n
    own_d_bind: list[Bound] = [_RATING] * n
    own_c_bind: list[Bound] = [_RATING] * n
    ids = [d.der_id for d in ders]
    duplicated = len(set(ids)) != n
    for i, der in enumerate(ders):
        if duplicated and ids.count(der.der_id) > 1:
            # Two devices under one id cannot be told apart: neither may act.
            own_d_bind[i] = own_c_bind[i] = Bound.DUPLICATE_ID
            continue
        if not _der_ok(der):
            own_d_bind[i] = own_c_bind[i] = Bound.INVALID_RATING
            reasons.append(f"{'; '.join(der.problems())}: capped at 0 W")
            continue
        d = float(der.max_discharge_w)
        if pct < 100.0:
            p = d * pct / 100.0
            if p < d:
                d = p
                own_d_bind[i] = _PCT
        own_d[i] = d
        own_c[i] = float(der.max_charge_w)

    static_w = panel.static_allowance_w
    own_d_sum = sum(own_d)
    problem = _data_problem(panel, ders, meter, outputs, now, max_meter_age_s)
    site_load: float | None = None
    if problem is not None or meter is None:
        stale = True
        fallback = (
            "the static 120 % allowance"
            if panel.static_allowance_a is None
            else "the installer's static allowance"
        )
        reasons.append(f"{problem}: falling back to {fallback} of {static_w:.0f} W")
        d_total, d_bind = static_w, Bound.STATIC_ALLOWANCE
        if gen_lim < d_total:
            d_total, d_bind = gen_lim, Bound.GENERATION_LIMIT
        if export_lim < d_total:  # the site load cannot be verified: assume none
            d_total, d_bind = export_lim, Bound.EXPORT_LIMIT
        if own_d_sum < d_total:
            d_total, d_bind = own_d_sum, Bound.DEVICE_RATINGS
        c_total, c_bind = load_lim, Bound.LOAD_LIMIT
        if import_lim < _INF:
            c_total, c_bind = 0.0, Bound.IMPORT_LIMIT
            reasons.append("the import limit cannot be verified without fresh data: no charging")
    else:
        stale = False
        dw = 0.0
        for der in ders:
            dw += outputs[der.der_id].power_w
        site_load = load_raw = meter.net_w + dw
        load = load_raw if load_raw > 0.0 else 0.0
        v = panel.nominal_voltage_v
        if meter.voltage_v is not None and meter.voltage_v < v:
            v = meter.voltage_v  # lower voltage = more amps per watt
        i_worst = max(meter.phase_current_a[p] for p in panel.phases)
        der_a = dw / v
        # The worst leg's non-DER load, bounded two ways (see the module docstring).
        leg_load_a = min(der_a + i_worst, len(panel.phases) * load / v)
        leg_load_a = max(leg_load_a, 0.0)
        bus_a = panel.dynamic_busbar_a
        protected_w = min(panel.static_limit_a, max(0.0, bus_a - panel.main_breaker_a)) * v

        d_total, d_bind = bus_a * v, Bound.BUSBAR
        if leg_load_a > bus_a:
            d_total = protected_w
            reasons.append(
                f"loads of up to {leg_load_a:.0f} A on one leg exceed the busbar limit of "
                f"{bus_a:.0f} A: discharge limited to what the main breaker protects"
            )
        main_a = panel.main_breaker_a
        if load_raw < 0.0:
            reasons.append(
                f"site load estimate {load_raw:.0f} W is negative (an uncontrolled source, or "
                "readings from different instants): taken as is for the export checks"
            )
            # A source on one leg may already export through the main: leg load >= DER - I.
            if der_a - i_worst < 0.0:
                main_a += der_a - i_worst
        main_w = main_a * v if main_a > 0.0 else 0.0
        if main_w < d_total:
            d_total, d_bind = main_w, Bound.MAIN_BREAKER
        if not panel.coordinated and static_w < d_total:
            d_total, d_bind = static_w, Bound.STATIC_ALLOWANCE
        if gen_lim < d_total:
            d_total, d_bind = gen_lim, Bound.GENERATION_LIMIT
        if export_lim + load_raw < d_total:  # inf + x stays inf: no limit
            d_total, d_bind = export_lim + load_raw, Bound.EXPORT_LIMIT
        if own_d_sum < d_total:
            d_total, d_bind = own_d_sum, Bound.DEVICE_RATINGS

        c_total, c_bind = load_lim, Bound.LOAD_LIMIT
        # Charging alone must not trip the main (nothing guarantees the DER discharge meanwhile).
        main_charge_w = (panel.main_breaker_a - leg_load_a) * v
        if main_charge_w < c_total:
            c_total, c_bind = main_charge_w, Bound.MAIN_BREAKER
        # Above what the main breaker protects, DER discharge may feed charging through the
        # busbar: sources = load + C must stay within B'. At or below it, charging is free.
        if d_total > protected_w and leg_load_a <= bus_a:
            busbar_charge_w = (bus_a - leg_load_a) * v
            if busbar_charge_w < c_total:
                c_total, c_bind = busbar_charge_w, Bound.BUSBAR
    d_total = max(d_total, 0.0)

    # Discharge: dispatched amounts first, then in order each DER takes what it can of the rest.
    d_caps = [0.0] * n
    d_binds: list[Bound] = [d_bind] * n
    remaining = d_total
    for i in range(n):
        asked = (dispatch_w or {}).get(ids[i], 0.0)
        if asked > 0.0 and math.isfinite(asked):
            grant = min(asked, own_d[i], remaining)
            d_caps[i] = grant
            remaining -= grant
    order = [i for i in range(n) if ids[i] not in discharge_last]
    order += [i for i in range(n) if ids[i] in discharge_last]
    for i in order:
        own = own_d[i]
        more = own - d_caps[i]
        if more <= remaining:
            d_caps[i] = own
            d_binds[i] = own_d_bind[i]
            remaining -= more
        else:
            d_caps[i] += remaining
            remaining = 0.0

    if site_load is not None and import_lim < _INF:
        # Generation-only DER (no charge rating) keep feeding the loads while others charge;
        # credit their present output, bounded by their new cap. Invalid DER have a 0 W cap.
        credit = 0.0
        for i in range(n):
            if own_c[i] == 0.0:
                p = outputs[ids[i]].power_w
                if p > 0.0:
                    credit += p if p < d_caps[i] else d_caps[i]
        headroom = import_lim - (site_load if site_load > 0.0 else 0.0) + credit
        if headroom < c_total:
            c_total, c_bind = headroom, Bound.IMPORT_LIMIT
    c_total = max(c_total, 0.0)
    own_c_sum = sum(own_c)
    if own_c_sum < c_total:
        c_total, c_bind = own_c_sum, Bound.DEVICE_RATINGS

    caps: list[DerCap] = []
    remaining = c_total
    for i in range(n):
        own = own_c[i]
        if own <= remaining:
            c, cb = own, own_c_bind[i]
            remaining -= own
        else:
            c, cb = remaining, c_bind
            remaining = 0.0
        caps.append(DerCap(ids[i], d_caps[i], c, d_binds[i], cb))

    reasons.append(
        f"discharge allowance {d_total:.0f} W ({d_bind}); charge allowance {c_total:.0f} W "
        f"({c_bind})"
    )
    return Allocation(
        tuple(caps),
        d_total,
        static_w,
        stale,
        tuple(reasons),
        d_bind,
        c_total,
        c_bind,
        None if stale else site_load,
    )
