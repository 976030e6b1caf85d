"""OpenADR 3 event payloads -> the core's protocol-neutral events (where the vocabularies meet).

One OpenADR event becomes one core :class:`~gateway.core.schedule.Event` per interval (each
interval has its own payloads, so its own controls). Per program (:class:`ProgramMapping`):

| OpenADR 3 payload type   | core ``ControlSet``            | conversion / default                 |
|--------------------------|--------------------------------|--------------------------------------|
| EXPORT_CAPACITY_LIMIT    | ``export_limit_w``             | units KW (default) or W              |
| IMPORT_CAPACITY_LIMIT    | ``import_limit_w``             | units KW (default) or W              |
| DISPATCH_SETPOINT        | ``target_w`` (+ = export)      | value = consumption (dispatch_sign)  |
| CHARGE_STATE_SETPOINT    | ``soc_target_pct``             | PERCENT; KWH needs ev_capacity_kwh   |
| ALERT_GRID_EMERGENCY     | island preparation (prepare)   | per ``alerts``                       |
| ALERT_POSSIBLE_OUTAGE    | island preparation (prepare)   | per ``alerts``                       |
| ALERT_BLACK_START        | island request connect=False   | per ``alerts``                       |
| SIMPLE                   | the set configured per level   | unconfigured level: ignored          |

Anything else is ignored with a reason (the rest of the event may still apply); an event with
nothing usable is not put in force. Priority: OpenADR 3 ``priority`` is "lower is higher" and
absent means lowest, the same order as the core's primacy, so ``primacy = min(priority, 254)``
and no priority is 255 (the lowest). Intervals: an interval's own ``intervalPeriod`` wins; one
without inherits the event's start and duration and follows the previous interval (intervals are
consecutive in list order). A duration of ``P9999Y`` or ``PT0S`` (the schema's "infinity" for a
limit) is open-ended: ``open_ended_s`` (365 d) in the core, ended by the VTN deleting or
modifying the event. The mRID is ``oadr3:<event id>:<digest>:<interval id>``, so a modified
event (new digest) gets new mRIDs and the old ones can be cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, unique
from typing import Final

from gateway.core import errors
from gateway.core.controls import ControlSet
from gateway.core.schedule import PRIMACY_MAX, RANDOMIZE_BOUND_S
from gateway.core.schedule import Event as CoreEvent
from gateway.core.units import MRID, Timestamp, iso
from gateway.north.openadr3.model import OPEN_ENDED, Event, EventPayloadDescriptor, Interval

ORIGIN: Final = "openadr3"
OPEN_ENDED_S: Final = 365 * 86400.0
# Largest power a residential site could be asked for: above it the VTN has the unit wrong.
MAX_SITE_W: Final = 1_000_000.0
ALERTS: Final = ("ALERT_GRID_EMERGENCY", "ALERT_POSSIBLE_OUTAGE", "ALERT_BLACK_START")


@unique
class AlertAction(Enum):
    PREPARE = "prepare"  # the program's ``prepare`` set (default: charge the EV to 100 %)
    ISLAND = "island"  # ControlSet(connect=False)
    IGNORE = "ignore"


@unique
class DispatchSign(Enum):
    CONSUMPTION = "consumption"  # the schema's reading: value >= 0 is the site's consumption
    EXPORT = "export"  # the value is what the site should deliver (+ = discharge/export)


DEFAULT_ALERTS: Final[Mapping[str, AlertAction]] = {
    "ALERT_GRID_EMERGENCY": AlertAction.PREPARE,
    "ALERT_POSSIBLE_OUTAGE": AlertAction.PREPARE,
    # During a black start the grid is being re-energised section by section: a home that can
    # carry itself stays off it until the VTN ends the alert.
    "ALERT_BLACK_START": AlertAction.ISLAND,
}


@dataclass(frozen=True, slots=True)
class ProgramMapping:
    """How one program's payloads become controls (the ``[[openadr3.program]]`` table)."""

    program_name: str
    limit_units: str = "KW"  # when the event and program have no payloadDescriptor
    dispatch_sign: DispatchSign = DispatchSign.CONSUMPTION
    ev_capacity_kwh: float | None = None
    alerts: Mapping[str, AlertAction] = field(default_factory=lambda: dict(DEFAULT_ALERTS))
    prepare: ControlSet = field(default_factory=lambda: ControlSet(soc_target_pct=100.0))
    simple: Mapping[int, ControlSet] = field(default_factory=dict)
    open_ended_s: float = OPEN_ENDED_S


@dataclass(frozen=True, slots=True)
class Mapped:
    """An event's core events (maybe none) and why anything in it was not used."""

    events: tuple[CoreEvent, ...]
    reasons: tuple[str, ...] = ()


_W_PER: Final = {"W": 1.0, "KW": 1000.0, "MW": 1e6}


def mrid(event_id: str, digest: str, interval_id: int) -> MRID:
    return MRID(f"{ORIGIN}:{event_id}:{digest}:{interval_id}")


def primacy(priority: int | None) -> int:
    if priority is None:
        return PRIMACY_MAX
    return max(0, min(priority, PRIMACY_MAX - 1))


def _number(values: tuple[object, ...], what: str) -> float:
    if not values:
        raise _Skip(f"{what} has no value")
    v = values[0]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Skip(f"{what} must be a number, got {v!r:.40}")
    return float(v)


class _Skip(errors.GatewayError):
    pass


def _units(kind: str, descriptors: Mapping[str, EventPayloadDescriptor], default: str) -> str:
    d = descriptors.get(kind)
    return (d.units if d is not None and d.units else default).upper()


def _watts(value: float, units: str, what: str) -> float:
    per = _W_PER.get(units)
    if per is None:
        raise _Skip(f"{what}: units {units!r} is not a power unit (W, KW, MW)")
    w = value * per
    if abs(w) > MAX_SITE_W:
        raise _Skip(f"{what} of {value:g} {units} is absurd for a home; check the units")
    return w


def payload_controls(
    kind: str,
    values: tuple[object, ...],
    descriptors: Mapping[str, EventPayloadDescriptor],
    cfg: ProgramMapping,
) -> ControlSet:
    """One payload -> controls. Raises _Skip(reason) for a payload that cannot be used."""
    if kind in ("EXPORT_CAPACITY_LIMIT", "IMPORT_CAPACITY_LIMIT"):
        w = _watts(_number(values, kind), _units(kind, descriptors, cfg.limit_units), kind)
        if w < 0:
            raise _Skip(f"{kind} must not be negative, got {w:g} W")
        if kind == "EXPORT_CAPACITY_LIMIT":
            return ControlSet(export_limit_w=w)
        return ControlSet(import_limit_w=w)
    if kind == "DISPATCH_SETPOINT":
        w = _watts(_number(values, kind), _units(kind, descriptors, cfg.limit_units), kind)
        return ControlSet(target_w=-w if cfg.dispatch_sign is DispatchSign.CONSUMPTION else w)
    if kind == "CHARGE_STATE_SETPOINT":
        v = _number(values, kind)
        units = _units(kind, descriptors, "PERCENT")
        if units == "KWH":
            if cfg.ev_capacity_kwh is None:
                raise _Skip(f"{kind} in KWH needs ev_capacity_kwh in the program's config")
            v = 100.0 * v / cfg.ev_capacity_kwh
        elif units != "PERCENT":
            raise _Skip(f"{kind}: units {units!r} is neither PERCENT nor KWH")
        if not 0 <= v <= 100:
            raise _Skip(f"{kind} must be 0-100 %, got {v:g}")
        return ControlSet(soc_target_pct=v)
    if kind in ALERTS:
        action = cfg.alerts.get(kind, AlertAction.IGNORE)
        if action is AlertAction.ISLAND:
            return ControlSet(connect=False)
        if action is AlertAction.PREPARE:
            return cfg.prepare
        raise _Skip(f"{kind} is configured to be ignored")
    if kind == "SIMPLE":
        v = _number(values, kind)
        if v != int(v) or int(v) not in cfg.simple:
            raise _Skip(f"SIMPLE level {v:g} has no configured control set")
        return cfg.simple[int(v)]
    raise _Skip(f"payload type {kind!r:.60} is not one this gateway maps")


def _merge(a: ControlSet, b: ControlSet, what: str) -> ControlSet:
    values = a.to_dict()
    for name, v in b.to_dict().items():
        if name in values and values[name] != v:
            raise _Skip(f"{what}: two payloads set {name} ({values[name]} and {v})")
        values[name] = v
    return ControlSet(**values)  # type: ignore[arg-type]  # names come from ControlSet itself


def interval_controls(
    item: Interval,
    descriptors: Mapping[str, EventPayloadDescriptor],
    cfg: ProgramMapping,
    reasons: list[str],
) -> ControlSet:
    controls = ControlSet()
    for p in item.payloads:
        try:
            controls = _merge(
                controls,
                payload_controls(p.type, p.values, descriptors, cfg),
                f"interval {item.id}",
            )
        except _Skip as e:
            reasons.append(f"interval {item.id}: {e}")
    return controls


def _timing(ev: Event, cfg: ProgramMapping) -> list[tuple[Interval, float, float, float]] | str:
    """(interval, start, duration, randomizeStart) for each interval, or why there is none."""
    out: list[tuple[Interval, float, float, float]] = []
    base = ev.interval_period
    cursor = base.start if base is not None else None
    for item in ev.intervals:
        own = item.interval_period
        start = own.start if own is not None and own.start is not None else cursor
        duration = own.duration_s if own is not None and own.duration_s is not None else None
        if duration is None and base is not None:
            duration = base.duration_s
        rand = own.randomize_start_s if own is not None else None
        if rand is None and base is not None:
            rand = base.randomize_start_s
        if start is None or duration is None:
            return f"interval {item.id} has no start or duration (neither its own nor the event's)"
        if duration in (0.0, OPEN_ENDED):
            duration = cfg.open_ended_s
        out.append((item, start, duration, rand or 0.0))
        cursor = start + duration
    return out


def map_event(
    ev: Event,
    cfg: ProgramMapping,
    now: Timestamp,
    program_descriptors: tuple[EventPayloadDescriptor, ...] = (),
) -> Mapped:
    """The core events for ``ev`` (one per usable interval) and the reasons for the rest.

    Units come from the event's payloadDescriptors, else the program's, else the config.
    """
    reasons: list[str] = []
    if not ev.intervals:
        return Mapped((), ("the event has no intervals",))
    ids = [i.id for i in ev.intervals]
    if len(set(ids)) != len(ids):
        return Mapped((), (f"interval ids repeat ({ids}): the intervals cannot be told apart",))
    timing = _timing(ev, cfg)
    if isinstance(timing, str):
        return Mapped((), (timing,))
    descriptors = {d.payload_type: d for d in (*program_descriptors, *ev.payload_descriptors)}
    created = ev.modified or ev.created or now
    events: list[CoreEvent] = []
    for item, start, duration, rand in timing:
        if start + duration <= now:
            reasons.append(f"interval {item.id} ended at {iso(start + duration)}, in the past")
            continue
        if rand > RANDOMIZE_BOUND_S:
            reasons.append(f"interval {item.id}: randomizeStart {rand:g} s is over 3600 s")
            continue
        controls = interval_controls(item, descriptors, cfg, reasons)
        if controls.is_empty():
            continue
        problems = controls.problems()
        if problems:
            reasons.append(f"interval {item.id}: " + "; ".join(problems))
            continue
        events.append(
            CoreEvent(
                mrid=mrid(ev.id, ev.digest, item.id),
                program=ev.program_id,
                primacy=primacy(ev.priority),
                creation_time=created,
                start=start,
                duration=duration,
                controls=controls,
                randomize_start=int(rand),
                origin=ORIGIN,
            )
        )
    if not events and not reasons:
        reasons.append("no interval sets any control")
    return Mapped(tuple(events), tuple(reasons))


def control_names() -> frozenset[str]:
    """The ControlSet field names a configured set may use (for config validation)."""
    return frozenset(f.name for f in fields(ControlSet))
