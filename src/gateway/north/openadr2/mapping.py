"""OpenADR 2.0b event signals -> the core's controls and an opt decision (pure).

The input is one event as openleadr's VEN hands it to ``on_event`` (a dict: ``event_descriptor``,
``active_period``, ``event_signals[signal_name, signal_type, intervals[dtstart, duration, uid,
signal_payload], measurement]``, ``targets``, ``response_required``). The output is a
:class:`Decision`: opt in with one core :class:`Event` per interval, or opt out with a reason a
person can act on and nothing to put in force.

Default mapping (per program = market context, see :mod:`.config` and docs/openadr2.md):

=====================  ==========================  ============================================
signalName             signalType                  core controls
=====================  ==========================  ============================================
``LOAD_CONTROL``       ``x-loadControlCapacity``   0 -> ``connect=False`` (island request);
                                                   1 -> ``connect=True`` (reconnect permission)
``LOAD_DISPATCH``      ``setpoint``                powerReal (W x scale; plain W without an
                                                   itemBase): export side -> ``export_limit_w``,
                                                   import side -> ``import_limit_w``; negative =
                                                   export unless ``export_negative = false``;
                                                   0 -> ``export_limit_w = 0``
``SIMPLE``             ``level``                   0-3 -> the program's configured ControlSets
``CHARGE_STATE``       ``setpoint``                percent -> ``soc_target_pct``
anything else                                      opt out, eventResponse 460 (not supported)
=====================  ==========================  ============================================

Priority -> primacy (lower wins in the core): 2.0b priority 1 is the highest and 0 means "no
priority" (the lowest), so 1..254 map as is and 0 (and anything above 254) to 255.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from gateway.core import errors
from gateway.core.controls import ControlSet
from gateway.core.schedule import Event
from gateway.core.units import MRID
from gateway.north.openadr2.config import ProgramMapping

ORIGIN: Final = "openadr2"
OPT_IN: Final = "optIn"
OPT_OUT: Final = "optOut"
OK: Final = 200
SIGNAL_NOT_SUPPORTED: Final = 460
MAX_DURATION_S: Final = 366 * 86400.0
# oadr_ei_20b.xsd SignalNameEnumeratedType (``simple`` is the deprecated spelling).
SIGNAL_NAMES: Final = frozenset(
    {
        "SIMPLE",
        "simple",
        "ELECTRICITY_PRICE",
        "ENERGY_PRICE",
        "DEMAND_CHARGE",
        "BID_PRICE",
        "BID_LOAD",
        "BID_ENERGY",
        "CHARGE_STATE",
        "LOAD_DISPATCH",
        "LOAD_CONTROL",
    }
)
# SI scale codes (openleadr enums.SI_SCALE_CODE) as multipliers.
_SCALE: Final = {
    None: 1.0,
    "none": 1.0,
    "": 1.0,
    "p": 1e-12,
    "n": 1e-9,
    "micro": 1e-6,
    "m": 1e-3,
    "c": 1e-2,
    "d": 1e-1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
}

Assess = Callable[[ControlSet], list[str]]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the VEN answers for one event (optIn/optOut, eventResponse code) and what it feeds
    the core. ``notes`` are log lines worth keeping even when opted in."""

    opt: str
    events: tuple[Event, ...] = ()
    reason: str = ""
    code: int = OK
    notes: tuple[str, ...] = ()

    @property
    def opted_in(self) -> bool:
        return self.opt == OPT_IN

    @staticmethod
    def out(reason: str, code: int = OK) -> Decision:
        return Decision(OPT_OUT, (), reason, code)


class _RefusedError(errors.GatewayError):
    def __init__(self, reason: str, code: int = OK) -> None:
        super().__init__(reason)
        self.code = code


def mrid(event_id: str, modification_number: int, signal: int, uid: int) -> MRID:
    """The core mRID of one interval: a modified event (new modificationNumber) gets new ones,
    as the core's schedule refuses an mRID reused with different content."""
    return MRID(f"oadr2:{event_id}:m{modification_number}:s{signal}:i{uid}")


def primacy(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise _RefusedError(f"priority must be a non-negative integer, got {priority!r}")
    return 255 if priority == 0 or priority > 254 else priority


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _RefusedError(f"{what} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise _RefusedError(f"{what} must be a finite number, got {v!r}")
    return f


def _ts(v: Any, what: str) -> float:
    if not isinstance(v, datetime):
        raise _RefusedError(f"{what} must be a date-time, got {v!r}")
    if v.tzinfo is None:
        raise _RefusedError(f"{what} has no time zone: {v.isoformat()}")
    return v.timestamp()


def _seconds(v: Any, what: str) -> float:
    if not isinstance(v, timedelta):
        raise _RefusedError(f"{what} must be a duration, got {v!r}")
    s = v.total_seconds()
    if s <= 0:
        raise _RefusedError(f"{what} must be positive, got {s:g} s")
    if s > MAX_DURATION_S:
        raise _RefusedError(f"{what} of {s:g} s is longer than a year")
    return s


def _list(v: Any, what: str) -> list[Any]:
    if isinstance(v, dict):
        return [v]
    if not isinstance(v, list) or not v:
        raise _RefusedError(f"{what} must be a non-empty list, got {v!r}")
    return v


def _watts(payload: float, measurement: Any, notes: list[str]) -> float:
    if measurement is None:
        notes.append("LOAD_DISPATCH without an itemBase: payload read as W")
        return payload
    if not isinstance(measurement, Mapping):
        raise _RefusedError(f"LOAD_DISPATCH itemBase is not readable: {measurement!r}")
    name, unit, scale = measurement.get("name"), measurement.get("unit"), measurement.get("scale")
    if name != "powerReal" or unit != "W":
        raise _RefusedError(
            f"LOAD_DISPATCH in {name} ({unit}) is not supported: send powerReal in W/kW"
        )
    if scale not in _SCALE:
        raise _RefusedError(f"LOAD_DISPATCH scale {scale!r} is not an SI scale code")
    return payload * _SCALE[scale]


def _soc(payload: float, measurement: Any) -> float:
    if measurement is not None:
        unit = measurement.get("unit") if isinstance(measurement, Mapping) else None
        if unit not in ("%", "percent"):
            raise _RefusedError(f"CHARGE_STATE in {unit!r} is not supported: send a percentage")
    return payload


def controls_for(
    name: str, kind: str, payload: Any, measurement: Any, mapping: ProgramMapping, notes: list[str]
) -> ControlSet:
    """The controls one interval asks for (an empty set = normal operation, nothing to do)."""
    if name == "LOAD_CONTROL" and kind == "x-loadControlCapacity":
        v = _number(payload, "x-loadControlCapacity")
        if v == 0:
            return ControlSet(connect=False)
        if v == 1:
            return ControlSet(connect=True)
        raise _RefusedError(
            f"x-loadControlCapacity {v:g} is not supported: 0 islands, 1 reconnects"
        )
    if name == "LOAD_DISPATCH" and kind == "setpoint":
        w = _watts(_number(payload, "LOAD_DISPATCH setpoint"), measurement, notes)
        export_side = w < 0 if mapping.export_negative else w > 0
        if w == 0 or export_side:
            return ControlSet(export_limit_w=abs(w))
        return ControlSet(import_limit_w=abs(w))
    if name in ("SIMPLE", "simple") and kind == "level":
        v = _number(payload, "SIMPLE level")
        if v not in (0, 1, 2, 3):
            raise _RefusedError(f"SIMPLE level must be 0, 1, 2 or 3, got {v:g}")
        return mapping.simple.get(int(v), ControlSet())
    if name == "CHARGE_STATE" and kind == "setpoint":
        return ControlSet(soc_target_pct=_soc(_number(payload, "CHARGE_STATE"), measurement))
    raise _RefusedError(
        f"signal {name}/{kind} is not supported by this gateway", SIGNAL_NOT_SUPPORTED
    )


Interval = tuple[int, float, float, Any]


def _intervals(signal: Mapping[str, Any], period_start: float) -> list[Interval]:
    """(uid, start, duration, payload) per interval; dtstart defaults to the running sum."""
    out: list[Interval] = []
    t = period_start
    for i, iv in enumerate(_list(signal.get("intervals"), "intervals")):
        if not isinstance(iv, Mapping):
            raise _RefusedError(f"interval {i} is not readable: {iv!r}")
        uid = iv.get("uid", i)
        if isinstance(uid, bool) or not isinstance(uid, int):
            uid = i
        start = _ts(iv["dtstart"], f"interval {uid} dtstart") if "dtstart" in iv else t
        duration = _seconds(iv.get("duration"), f"interval {uid} duration")
        out.append((uid, start, duration, iv.get("signal_payload")))
        t = start + duration
    return out


def decide(
    event: Mapping[str, Any], mapping: ProgramMapping, *, now: float, assess: Assess
) -> Decision:
    """Opt in (with one core Event per interval still to come) or opt out, with the reason.

    Never raises: anything unreadable is an opt-out whose reason says what was wrong.
    """
    try:
        return _decide(event, mapping, now, assess)
    except _RefusedError as e:
        return Decision.out(str(e), e.code)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        return Decision.out(f"the event is not readable ({type(e).__name__}: {e})")


def _decide(
    event: Mapping[str, Any], mapping: ProgramMapping, now: float, assess: Assess
) -> Decision:
    desc = event["event_descriptor"]
    event_id = str(desc["event_id"])
    mod = desc.get("modification_number", 0)
    if isinstance(mod, bool) or not isinstance(mod, int) or mod < 0:
        raise _RefusedError(f"modificationNumber must be a non-negative integer, got {mod!r}")
    rank = primacy(desc.get("priority", 0))
    created = desc.get("created_date_time")
    creation = _ts(created, "createdDateTime") if created is not None else now
    period = event.get("active_period") or {}
    period_start = _ts(period["dtstart"], "activePeriod dtstart") if "dtstart" in period else now
    program = str(desc.get("market_context") or ORIGIN)

    notes: list[str] = []
    out: list[Event] = []
    last_end = -math.inf
    signals: Sequence[Any] = _list(event.get("event_signals"), "eventSignals")
    for s_index, signal in enumerate(signals):
        if not isinstance(signal, Mapping):
            raise _RefusedError(f"eventSignal {s_index} is not readable: {signal!r}")
        name, kind = signal.get("signal_name"), signal.get("signal_type")
        if name not in SIGNAL_NAMES:
            raise _RefusedError(f"signal {name!r} is not a 2.0b signal name", SIGNAL_NOT_SUPPORTED)
        for uid, start, duration, payload in _intervals(signal, period_start):
            controls = controls_for(
                str(name), str(kind), payload, signal.get("measurement"), mapping, notes
            )
            problems = controls.problems()
            if problems:
                raise _RefusedError(f"interval {uid}: " + "; ".join(problems))
            last_end = max(last_end, start + duration)
            if start + duration <= now or controls.is_empty():
                continue  # over already, or normal operation: nothing to put in force
            reasons = assess(controls)
            if reasons:
                raise _RefusedError(
                    f"the site would not carry out {controls}: " + "; ".join(reasons)
                )
            out.append(
                Event(
                    mrid=mrid(event_id, mod, s_index, uid),
                    program=program,
                    primacy=rank,
                    creation_time=creation,
                    start=start,
                    duration=duration,
                    controls=controls,
                    response_required=0,
                    origin=ORIGIN,
                )
            )
    if last_end <= now:
        raise _RefusedError(f"the event is already over (it ended {now - last_end:.0f} s ago)")
    return Decision(OPT_IN, tuple(out), notes=tuple(notes))
