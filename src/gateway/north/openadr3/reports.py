"""Telemetry reports for an event's ``reportDescriptors`` (pure: built from one snapshot).

Resources are the site's devices: ``site`` (the meter at the connection point, and the relay),
``ev`` (the V2H charger) and one per other DER (``pv``). What each reported payload type carries:

| payloadType             | resource          | value                                             |
|-------------------------|-------------------|---------------------------------------------------|
| ``DEMAND``, ``READING`` | site, ev, each DER| power, + = consumption (the site's import; a DER  |
|                         |                   | generating or an EV discharging is negative)      |
| ``STORAGE_CHARGE_LEVEL``| ev                | state of charge, PERCENT                          |
| ``OPERATING_STATE``     | site              | ``GRID_CONNECTED``, ``ISLANDED`` or ``UNKNOWN``   |

Power is in the descriptor's ``units`` (W, KW, MW; KW when absent). Types not in the table are
skipped, and named once in the log by the caller. A report is one interval (its ``id`` is the
report period's index since the event started) with ``readingType`` ``DIRECT_READ``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.core.island import RelayPosition
from gateway.core.messages import Observed
from gateway.north.openadr3.model import (
    Event,
    Interval,
    IntervalPeriod,
    Report,
    ReportPayloadDescriptor,
    ReportResource,
    Value,
    ValuesMap,
)

POWER_TYPES: Final = frozenset({"DEMAND", "READING"})
SUPPORTED: Final = POWER_TYPES | {"STORAGE_CHARGE_LEVEL", "OPERATING_STATE"}
_W_PER: Final = {"W": 1.0, "KW": 1000.0, "MW": 1e6}


@dataclass(frozen=True, slots=True)
class Built:
    report: Report | None
    skipped: tuple[str, ...] = ()


def _relay(obs: Observed) -> str:
    if obs.relay is None:
        return "UNKNOWN"
    return "GRID_CONNECTED" if obs.relay.position is RelayPosition.CLOSED else "ISLANDED"


def _power(units: str | None) -> tuple[str, float]:
    u = (units or "KW").upper()
    return (u, _W_PER[u]) if u in _W_PER else ("KW", 1000.0)


def build(
    ev: Event,
    obs: Observed | None,
    *,
    client_name: str,
    index: int,
    start: float,
    period_s: float,
) -> Built:
    """The report for period ``index`` of ``ev``, from snapshot ``obs``."""
    wanted = [d for d in ev.report_descriptors if d.payload_type in SUPPORTED]
    skipped = tuple(
        sorted({d.payload_type for d in ev.report_descriptors} - {d.payload_type for d in wanted})
    )
    if not wanted or obs is None:
        return Built(None, skipped)
    per_resource: dict[str, list[ValuesMap]] = {}
    descriptors: list[ReportPayloadDescriptor] = []

    def put(resource: str, kind: str, value: Value | None) -> None:
        if value is not None:
            per_resource.setdefault(resource, []).append(ValuesMap(kind, (value,)))

    for d in wanted:
        kind = d.payload_type
        if kind in POWER_TYPES:
            units, per = _power(d.units)
            descriptors.append(ReportPayloadDescriptor(kind, "DIRECT_READ", units))
            if obs.meter is not None:
                put("site", kind, round(obs.meter.net_w / per, 6))
            if obs.charger is not None:
                put("ev", kind, round(-obs.charger.power_w / per, 6))
            for der in obs.ders:
                put(der.der_id, kind, round(-der.power_w / per, 6))
        elif kind == "STORAGE_CHARGE_LEVEL":
            descriptors.append(ReportPayloadDescriptor(kind, "DIRECT_READ", "PERCENT"))
            if obs.charger is not None:
                put("ev", kind, obs.charger.soc_pct)
        else:  # OPERATING_STATE
            descriptors.append(ReportPayloadDescriptor(kind, "DIRECT_READ", None))
            put("site", kind, _relay(obs))
    period = IntervalPeriod(start=start, duration_s=period_s)
    resources = tuple(
        ReportResource(name, (Interval(index, period, tuple(payloads)),))
        for name, payloads in per_resource.items()
    )
    report = Report(
        program_id=ev.program_id,
        event_id=ev.id,
        client_name=client_name,
        resources=resources,
        report_name=f"{client_name}:{ev.id}:{index}",
        payload_descriptors=tuple(descriptors),  # createdDateTime: the VTN's to set
    )
    return Built(report, skipped)


def due(last: int | None, start: float, end: float, now: float, period_s: float) -> int | None:
    """The report period to send now, if any: the current one, once, while the event runs.

    ``last`` is the last index sent (persisted), so a restart never sends a period twice, and a
    gateway that was down for several periods sends the current one only (the past ones would
    need readings it did not take).
    """
    if now < start or now >= end + period_s or period_s <= 0:
        return None
    index = int((min(now, end) - start) // period_s)
    if last is not None and index <= last:
        return None
    return index


def next_due_at(last: int | None, start: float, end: float, period_s: float) -> float | None:
    """When the period after ``last`` becomes due (:func:`due`): its start, or None when the
    event has no period left (the last one starts no later than ``end``)."""
    if period_s <= 0:
        return None
    at = start + (0 if last is None else last + 1) * period_s
    return at if at <= end else None
