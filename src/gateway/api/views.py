"""The JSON documents of the read endpoints: plain functions of what the site and the store
hold now (no I/O of their own, so they are tested on fakes and shared by the routes and the
event stream)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gateway.api.site import ApiSite
from gateway.core.controls import Mode
from gateway.core.messages import Observed
from gateway.core.units import iso
from gateway.store.api import AuditRecord, OutboxItem

#: Powers in the status are rounded to this (W): the stream sends a status when it changes,
#: and a meter's last-digit noise is no change a person needs to see.
ROUND_W = 10


def _w(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(round(value / ROUND_W) * ROUND_W)


def flows(observed: Observed | None) -> dict[str, Any]:
    """Power at each part of the home (W): grid import positive, DER and EV discharge positive;
    the house load is what the others add up to (None while a part is unread)."""
    if observed is None:
        return {"grid_w": None, "ev_w": None, "der_w": {}, "house_w": None}
    grid = observed.meter.net_w if observed.meter is not None else None
    ev = observed.charger.power_w if observed.charger is not None else None
    ders = {d.der_id: d.power_w for d in observed.ders}
    parts = [grid, ev, *ders.values()]
    house = None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    return {
        "grid_w": _w(grid),
        "ev_w": _w(ev),
        "der_w": {k: _w(v) for k, v in ders.items()},
        "house_w": _w(house),
    }


def status(site: ApiSite) -> dict[str, Any]:
    """Island state, relay, charger, power flows, and the allowance in force with why."""
    obs = site.observed()
    phase = site.phase()
    relay = obs.relay if obs is not None else None
    charger = obs.charger if obs is not None else None
    meter = obs.meter if obs is not None else None
    alloc = site.allocation()
    resolved = site.resolved()
    export = resolved.decisions.get(Mode.EXPORT_LIMIT_W)
    return {
        "site": site.name,
        "at": iso(site.now()),
        "phase": None if phase is None else phase.value,
        "stage": None if phase is None else phase.stage.value,
        "relay": None if relay is None else relay.position.value,
        "grid": {
            "voltage_v": None if meter is None else meter.grid_voltage_v,
            "frequency_hz": None if meter is None else meter.grid_frequency_hz,
        },
        "charger": None
        if charger is None
        else {
            "mode": charger.mode.value,
            "power_w": _w(charger.power_w),
            "soc_pct": charger.soc_pct,
            "ev_connected": charger.ev_connected,
            "fault": charger.fault,
        },
        "flows": flows(obs),
        "allowance": None
        if alloc is None
        else {
            "discharge_w": _w(alloc.allowance_w),
            "discharge_bound_by": str(alloc.binding),
            "charge_w": _w(alloc.charge_allowance_w),
            "charge_bound_by": str(alloc.charge_binding),
            "static_w": _w(alloc.static_allowance_w),
            "stale": alloc.stale,
            "why": list(alloc.reasons),
        },
        "export_limit": None
        if export is None
        else {"w": export.value, "source": export.label, "why": export.why},
        "backup_reserve_pct": site.config.backup_reserve_soc_pct,
        "links": site.links(),
    }


def schedule(site: ApiSite) -> dict[str, Any]:
    """What is in force per mode and its source, and the utility events the schedule holds."""
    resolved = site.resolved()
    modes = [
        {
            "mode": mode.value,
            "value": d.value,
            "source": d.label,
            "why": d.why,
            "overruled": [str(c) for c in d.overruled],
        }
        for mode, d in resolved.decisions.items()
    ]
    events = [
        {
            "mrid": r.mrid,
            "origin": r.event.origin,
            "program": r.event.program,
            "primacy": r.event.primacy,
            "start": iso(r.effective_start),
            "end": iso(r.effective_end),
            "controls": r.event.controls.to_dict(),
            "lifecycle": r.lifecycle.value,
            "reason": r.reason,
        }
        for r in site.events()
    ]
    return {"at": iso(site.now()), "in_force": modes, "events": events}


def devices(site: ApiSite) -> list[dict[str, Any]]:
    """Each device with its link state, and its last readings (from the last snapshot)."""
    obs = site.observed()
    parts: dict[str, dict[str, Any]] = {}
    if obs is not None:
        if obs.meter is not None:
            parts["meter"] = {
                "net_w": _w(obs.meter.net_w),
                "grid_voltage_v": obs.meter.grid_voltage_v,
                "grid_frequency_hz": obs.meter.grid_frequency_hz,
            }
        if obs.relay is not None:
            relay = {
                "position": obs.relay.position.value,
                "load_voltage_v": obs.relay.load_voltage_v,
            }
            # The collar is the meter too, unless a meter of its own is named.
            parts["meter_relay"] = {**parts.get("meter", {}), **relay}
        if obs.charger is not None:
            parts["charger"] = {
                "mode": obs.charger.mode.value,
                "power_w": _w(obs.charger.power_w),
                "soc_pct": obs.charger.soc_pct,
            }
        for d in obs.ders:
            parts[d.der_id] = {"power_w": _w(d.power_w), "connected": d.connected}
    return [
        {
            "name": d.name,
            "role": d.role,
            "profile": d.profile,
            "url": d.url,
            "link": "down" if d.error else "up",
            "error": d.error,
            "readings": {} if d.error else parts.get(d.part, {}),
        }
        for d in site.devices()
    ]


def audit_page(records: Sequence[AuditRecord], limit: int) -> dict[str, Any]:
    """A page of the audit log; ``next`` is the ``since`` of the page after (None: the last)."""
    rows = [
        {
            "id": r.id,
            "at": iso(r.at),
            "device": r.device,
            "point": r.point,
            "value": r.value,
            "reason": r.reason,
            "outcome": r.outcome,
            "correlation_id": r.correlation_id,
        }
        for r in records
    ]
    more = len(records) >= limit and bool(records)
    return {"entries": rows, "next": records[-1].id if more else None}


def outbox(items: Sequence[OutboxItem]) -> list[dict[str, Any]]:
    """The reports waiting for the utility's acknowledgement, oldest first."""
    return [
        {
            "id": i.id,
            "key": i.key,
            "created_at": iso(i.created_at),
            "attempts": i.attempts,
            "last_error": i.last_error,
            "doc": i.doc,
        }
        for i in items
    ]


def point(site: ApiSite) -> dict[str, Any]:
    """One point of the dashboard's chart: site net power, the export limit and the backfeed
    allowance in force (W; None where there is none), at the engine's time (s)."""
    obs = site.observed()
    alloc = site.allocation()
    export = site.resolved().decisions.get(Mode.EXPORT_LIMIT_W)
    limit = export.value if export is not None and isinstance(export.value, int | float) else None
    return {
        "t": site.now(),
        "grid_w": _w(obs.meter.net_w) if obs is not None and obs.meter is not None else None,
        "export_limit_w": None if limit is None else float(limit),
        "allowance_w": None if alloc is None else _w(alloc.allowance_w),
    }
