"""Protocol-neutral controls: what the north side (or the home) asks the site to do.

A :class:`ControlSet` carries any subset of the modes below. The 2030.5 mapper fills it from a
DERControlBase, the OpenADR mappers from signals, the site policy and the homeowner from config
and the local API. Names here are plain English; ``north/*`` mappers are the only place where
they meet the standards' names (``opModExpLimW`` -> ``export_limit_w``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum, IntEnum, unique
from typing import Any, Final


@unique
class Mode(Enum):
    """One controllable mode. The value is the ControlSet field name."""

    CONNECT = "connect"  # opModConnect: galvanic connection to the grid (False = island/isolate)
    ENERGIZE = "energize"  # opModEnergize: DER may energize (False = cease to energize)
    ISLAND_PERMIT = "island_permit"  # opModIslandPermit (2030.5-2023)
    GRID_CONNECT_PERMIT = "grid_connect_permit"  # opModGridConnectPermit (2030.5-2023)
    EXPORT_LIMIT_W = "export_limit_w"  # csipaus:opModExpLimW, site export at the connection point
    IMPORT_LIMIT_W = "import_limit_w"  # csipaus:opModImpLimW, site import at the connection point
    GENERATION_LIMIT_W = "generation_limit_w"  # csipaus:opModGenLimW, DER discharge/generation
    LOAD_LIMIT_W = "load_limit_w"  # csipaus:opModLoadLimW, DER charge/load
    MAX_GENERATION_PCT = "max_generation_pct"  # opModMaxLimW, percent of rated W (0-100)
    FIXED_W_PCT = "fixed_w_pct"  # opModFixedW, -100..100 percent (negative = charge)
    TARGET_W = "target_w"  # opModTargetW, W (positive = discharge/export)
    STORAGE_TARGET_W = "storage_target_w"  # csipaus:opModStorageTargetW, W
    RAMP_TIME_S = "ramp_time_s"  # rampTms, seconds
    # DefaultDERControl.setGradW: the default rate of change of the W limits when no rampTms is
    # given, percent of the site's DER rating per second (0 = no limit, so never stored as 0).
    RAMP_RATE_PCT_S = "ramp_rate_pct_s"
    # DefaultDERControl.setSoftGradW: the soft-start rate, the rate at which the DER output limit
    # rises from 0 when the site (re-)enters service; same unit and range as setGradW.
    SOFT_START_RATE_PCT_S = "soft_start_rate_pct_s"
    # DefaultDERControl.setESDelay: the enter-service delay, how long the grid must stay in the
    # enter-service window before the site re-enters service, seconds. The site configuration's
    # own delay is a floor: a shorter one is raised to it (core.engine).
    ENTER_SERVICE_DELAY_S = "enter_service_delay_s"
    # DefaultDERControl.setESRandomDelay: an extra delay drawn in [0, this] once per entry,
    # seconds (0 = none).
    ENTER_SERVICE_RANDOM_DELAY_S = "enter_service_random_delay_s"
    # DefaultDERControl.setESRampTms: the enter-service ramp time, seconds: on entering service
    # the DER output limit rises from 0 at the DER rating / this many seconds (0 = no ramp).
    ENTER_SERVICE_RAMP_S = "enter_service_ramp_s"
    # OpenADR CHARGE_STATE / CHARGE_STATE_SETPOINT: charge the EV towards this state of charge,
    # and discharge it no lower (a raised backup reserve). No 2030.5 equivalent.
    SOC_TARGET_PCT = "soc_target_pct"

    @property
    def is_boolean(self) -> bool:
        return self in _BOOLEAN_MODES

    @property
    def is_limit(self) -> bool:
        """Limits compose by 'most restrictive wins' across sources."""
        return self in _LIMIT_MODES


_BOOLEAN_MODES: Final = frozenset(
    {Mode.CONNECT, Mode.ENERGIZE, Mode.ISLAND_PERMIT, Mode.GRID_CONNECT_PERMIT}
)
_LIMIT_MODES: Final = frozenset(
    {
        Mode.EXPORT_LIMIT_W,
        Mode.IMPORT_LIMIT_W,
        Mode.GENERATION_LIMIT_W,
        Mode.LOAD_LIMIT_W,
        Mode.MAX_GENERATION_PCT,
    }
)
_FIELDS: Final = tuple((m, m.value) for m in Mode)  # declaration order
# Largest absolute power we accept as a meaningful setpoint (1 GW). Anything above is a unit
# error upstream, not a residential control.
MAX_ABS_W: Final = 1e9
MAX_RAMP_S: Final = 3600.0 * 24
MAX_RAMP_RATE_PCT_S: Final = 655.35  # setGradW is a UInt16 in hundredths of %/s
_RATE_MODES: Final = frozenset({Mode.RAMP_RATE_PCT_S, Mode.SOFT_START_RATE_PCT_S})
# setESDelay / setESRandomDelay / setESRampTms are UInt32 hundredths of a second (up to ~497
# days); more than a day is a unit error upstream, not an enter-service setting.
MAX_ENTER_SERVICE_S: Final = 86400.0
ENTER_SERVICE_MODES: Final = frozenset(
    {Mode.ENTER_SERVICE_DELAY_S, Mode.ENTER_SERVICE_RANDOM_DELAY_S, Mode.ENTER_SERVICE_RAMP_S}
)


@dataclass(frozen=True, slots=True)
class ControlSet:
    """Any subset of the controllable modes; ``None`` means 'not controlled by this set'."""

    connect: bool | None = None
    energize: bool | None = None
    island_permit: bool | None = None
    grid_connect_permit: bool | None = None
    export_limit_w: float | None = None
    import_limit_w: float | None = None
    generation_limit_w: float | None = None
    load_limit_w: float | None = None
    max_generation_pct: float | None = None
    fixed_w_pct: float | None = None
    target_w: float | None = None
    storage_target_w: float | None = None
    ramp_time_s: float | None = None
    ramp_rate_pct_s: float | None = None
    soft_start_rate_pct_s: float | None = None
    enter_service_delay_s: float | None = None
    enter_service_random_delay_s: float | None = None
    enter_service_ramp_s: float | None = None
    soc_target_pct: float | None = None

    def get(self, mode: Mode) -> bool | float | None:
        value: bool | float | None = getattr(self, mode.value)
        return value

    def modes(self) -> frozenset[Mode]:
        # On the schedule's hot path (called per record per change): no Enum attribute lookups.
        return frozenset(m for m, name in _FIELDS if getattr(self, name) is not None)

    def items(self) -> Iterator[tuple[Mode, bool | float]]:
        for m, name in _FIELDS:
            v = getattr(self, name)
            if v is not None:
                yield m, v

    def only(self, modes: frozenset[Mode] | set[Mode]) -> ControlSet:
        """The same set restricted to ``modes`` (used for per-mode supersession)."""
        return ControlSet(**{m.value: getattr(self, m.value) for m in modes})

    def with_(self, **values: Any) -> ControlSet:
        return replace(self, **values)

    def is_empty(self) -> bool:
        return not self.modes()

    def problems(self) -> list[str]:
        """Why this set is not a valid request, as sentences a person can act on (empty = valid)."""
        out: list[str] = []
        for m, v in self.items():
            if m.is_boolean:
                if not isinstance(v, bool):
                    out.append(f"{m.value} must be true or false, got {v!r}")
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
                out.append(f"{m.value} must be a number, got {v!r}")
                continue
            if m.is_limit and v < 0:
                out.append(f"{m.value} must not be negative, got {v:g}")
            if m is Mode.MAX_GENERATION_PCT and v > 100:
                out.append(f"{m.value} must be 0-100 %, got {v:g}")
            if m is Mode.FIXED_W_PCT and not -100 <= v <= 100:
                out.append(f"{m.value} must be -100..100 %, got {v:g}")
            if m in _RATE_MODES and not 0 < v <= MAX_RAMP_RATE_PCT_S:
                out.append(f"{m.value} must be above 0 and at most {MAX_RAMP_RATE_PCT_S:g} %/s")
            if m is Mode.SOC_TARGET_PCT and not 0 <= v <= 100:
                out.append(f"{m.value} must be 0-100 %, got {v:g}")
            if m is Mode.RAMP_TIME_S and not 0 <= v <= MAX_RAMP_S:
                out.append(f"{m.value} must be 0..{MAX_RAMP_S:g} s, got {v:g}")
            if m in ENTER_SERVICE_MODES and not 0 <= v <= MAX_ENTER_SERVICE_S:
                out.append(
                    f"{m.value} must be 0..{MAX_ENTER_SERVICE_S:g} s (one day), got {v:.10g} s"
                )
            if abs(v) > MAX_ABS_W:
                out.append(f"{m.value} is absurd for a site ({v:g}); check the unit multiplier")
        return out

    def __str__(self) -> str:
        return ", ".join(f"{m.value}={v}" for m, v in self.items()) or "nothing"

    def to_dict(self) -> dict[str, bool | float]:
        return {m.value: v for m, v in self.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlSet:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown control modes: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


@unique
class Source(IntEnum):
    """Who asked for a control. Lower value = higher precedence for setpoint modes.

    Composition rules (see :mod:`gateway.core.resolve`): limits take the most restrictive value
    from every source; booleans where ``False`` is the safe side (connect, energize, permits)
    are ANDed; setpoints (target, fixed %, storage target, ramp) come from the highest-precedence
    source that sets them.
    """

    OUTAGE_RESPONSE = 0  # the gateway's own reaction to a dead grid
    MANUAL_OVERRIDE = 1  # the homeowner, through the local API
    UTILITY_EVENT = 2  # 2030.5 DERControl or OpenADR event in force (primacy already applied)
    UTILITY_DEFAULT = 3  # 2030.5 DefaultDERControl (or an OpenADR program's baseline)
    SITE_POLICY = 4  # installer configuration: panel ratings, backup reserve

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")
