"""The OpenADR 3 VEN flows, each a script on the stage and the criteria that judge it.

Times are wall-clock, from the VTN's records and the home's samples. An export or import is
judged at the meter (the simulated collar), a limit with :data:`TOL_W` of slack; every limit
case first checks that the home would break the limit without it (else it proves nothing).
"""

from __future__ import annotations

import itertools
import json
import statistics
from typing import Any
from urllib.parse import parse_qs

from gateway.conformance.cases import Criterion
from gateway.conformance.openadr3.stage import (
    PICKUP_S,
    POLL_S,
    REPORT_S,
    TOKEN_PATHS,
    VEN_NAME,
    NotRunError,
    Stage,
    ready,
)
from gateway.north.openadr3 import codec
from gateway.sim.vtn3.state import Exchange

TOL_W = 100.0
HOLD_S = 2.0  # how long a limit must hold once in force, to count as held
EXPORT_KW = 1.0
OTHER_PROGRAM = "feeder-9"  # a program the VEN is not given: its events are not its business


def _kw(w: float) -> str:
    return f"{w / 1000:.2f} kW"


def _after(at: float | None, since: float) -> str:
    return "never" if at is None else f"after {at - since:.1f} s"


def _export_within(
    stage: Stage, limit_w: float, since: float, until: float, what: str
) -> Criterion:
    worst = max((s.export_w for s in stage.between(since, until)), default=None)
    seen = "no samples" if worst is None else f"at most {_kw(worst)}"
    ok = worst is not None and worst <= limit_w + TOL_W
    return Criterion(what, ok, f"export <= {_kw(limit_w + TOL_W)}", seen)


def _exports_more(
    stage: Stage, than_w: float, since: float, until: float | None, what: str
) -> Criterion:
    best = max((s.export_w for s in stage.between(since, until)), default=None)
    seen = "no samples" if best is None else f"at most {_kw(best)}"
    ok = best is not None and best > than_w
    return Criterion(what, ok, f"export > {_kw(than_w)}", seen)


async def _export_settles(stage: Stage, limit_w: float, timeout: float) -> float | None:
    """When the export came within ``limit_w`` (+ tolerance) to stay for a second: the first
    sample of that second; None if it did not within ``timeout``."""
    since = stage.samples[-1].at if stage.samples else 0.0
    found: list[float] = []

    def settled() -> bool:
        window = [s for s in stage.between(since) if s.at >= stage.samples[-1].at - 1.0]
        if len(window) >= 8 and all(s.export_w <= limit_w + TOL_W for s in window):
            found.append(window[0].at)
            return True
        return False

    await stage.until(settled, timeout)
    return found[0] if found else None


async def _exporting(stage: Stage) -> Criterion:
    """Until the home exports over 2 kW (the sun on the PV, before any limit): a limit that
    holds from the start of the PV proves nothing."""
    at = await stage.until(lambda: stage.samples[-1].export_w > 2000, 10.0)
    return Criterion(
        "exporting over 2 kW before the event (else the case proves nothing)",
        at is not None,
        "export > 2.00 kW within 10 s",
        _kw(stage.samples[-1].export_w),
    )


async def _until_time(stage: Stage, at: float) -> None:
    await stage.until(lambda: stage.samples[-1].at >= at, max(0.0, at - stage.samples[-1].at) + 1)


async def _wait(stage: Stage, seconds: float) -> None:
    await stage.until(lambda: False, seconds)


def _export_event(stage: Stage, kw: float, **extra: Any) -> str:
    return stage.add_event(
        [{"EXPORT_CAPACITY_LIMIT": [kw]}], units={"EXPORT_CAPACITY_LIMIT": "KW"}, **extra
    )


# --- OA3-01: the token ------------------------------------------------------------------------


async def token(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    await stage.until(lambda: len(stage.polls()) >= 3, 3 * POLL_S + 2.0)
    tokens = stage.token_requests()
    grants = [r for r in tokens if r.status == 200]
    form = parse_qs(grants[0].body.decode("utf-8", "replace")) if grants else {}
    refused = [r for r in stage.api() if r.status == 401]
    polls = len(stage.polls())
    return [
        first,
        Criterion(
            "a client-credentials token was granted (RFC 6749 4.4)",
            bool(grants) and form.get("grant_type") == ["client_credentials"],
            "POST token, grant_type=client_credentials, answered 200",
            f"{[r.status for r in tokens]}; form keys {sorted(form)}",
        ),
        Criterion(
            "every API request carried a token the VTN accepted",
            not refused,
            "no 401",
            "none"
            if not refused
            else f"{len(refused)}, first {refused[0].method} {refused[0].path}",
        ),
        Criterion(
            "the token is reused until it expires",
            len(tokens) <= 2 and polls >= 3,
            "at most 2 token requests over 3 or more polls",
            f"{len(tokens)} token requests, {polls} polls",
        ),
    ]


# --- OA3-02: a bad credential -----------------------------------------------------------------


async def bad_secret(stage: Stage) -> list[Criterion]:
    _export_event(stage, 0.0)  # a 0 kW export limit a VEN without a token must not see
    asked = await stage.until(lambda: bool(stage.token_requests()), 30.0)
    if asked is None:
        return [
            Criterion("the VEN asks for a token", ok=False, expected="a token request", seen="none")
        ]
    await _wait(stage, 4.0)
    tokens = stage.token_requests()
    granted = [r for r in tokens if r.status == 200]
    beyond = [r for r in stage.api() if r.path not in TOKEN_PATHS]
    rate = (len(tokens) - 1) / max(1.0, stage.samples[-1].at - asked)
    return [
        Criterion(
            "the VTN refused the credential",
            bool(tokens) and not granted,
            "every token request answered 4xx",
            f"{[r.status for r in tokens]}",
        ),
        Criterion(
            "no API request without a token",
            not beyond,
            "none",
            "none" if not beyond else f"{len(beyond)}, first {beyond[0].method} {beyond[0].path}",
        ),
        Criterion(
            "the VEN does not hammer the token endpoint",
            rate <= 1.0,
            "at most 1 retry a second",
            f"{len(tokens)} requests in {stage.samples[-1].at - asked:.1f} s",
        ),
        _sun(stage, asked),
        _exports_more(
            stage,
            2 * TOL_W + 1000,
            asked + 2.0,
            None,
            "nothing put in force: the home exports freely",
        ),
    ]


def _sun(stage: Stage, since: float) -> Criterion:
    peak = max((s.pv_available_w for s in stage.between(since)), default=0.0)
    return Criterion(
        "the PV could export over 2 kW (else the case proves nothing)",
        peak > 2000,
        "> 2 kW of sun on the PV",
        _kw(peak),
    )


# --- OA3-03: an expired token -----------------------------------------------------------------


async def token_expired(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    before = len(stage.token_requests())
    at = stage.note("the VTN forgets every token (they expire)")
    stage.state.tokens.clear()
    got = await stage.until(
        lambda: any(r.at > at and r.status == 200 for r in stage.polls()), 2 * PICKUP_S
    )
    after = [r for r in stage.state.requests if r.at > at]
    refused = [r for r in after if r.status == 401 and r.path not in TOKEN_PATHS]
    new = [r for r in stage.token_requests()[before:] if r.status == 200]
    return [
        first,
        Criterion(
            "a request refused with 401 is followed by a new token",
            bool(new) and (not refused or new[0].at >= refused[0].at),
            "POST token answered 200 after the expiry",
            f"{len(refused)} refused, {len(new)} new tokens",
        ),
        Criterion(
            "polling resumes with the new token",
            got is not None,
            f"an answered poll within {2 * PICKUP_S:.0f} s",
            stage.t(got),
        ),
    ]


# --- OA3-04: program discovery ----------------------------------------------------------------


async def programs(stage: Stage) -> list[Criterion]:
    stage.state.add_program(OTHER_PROGRAM + "-late")  # listed after ours, too
    others = [pid for pid, p in stage.state.programs.items() if pid != stage.program_id]
    for pid in others:
        _export_event(stage, 0.0, program_id=pid)  # 0 kW export: not the VEN's program
    first = await ready(stage)
    if not first.ok:
        return [first]
    await _wait(stage, PICKUP_S)
    searched = [
        r for r in stage.state.requests if r.method == "GET" and r.path.startswith("/programs")
    ]
    ours = [r for r in stage.polls() if r.query.get("programID") == stage.program_id]
    scoped = [
        r
        for r in stage.state.requests
        if r.path == "/events" and r.query.get("programID") not in (None, stage.program_id)
    ]
    return [
        first,
        Criterion(
            "the VEN looked its program up (GET /programs)",
            bool(searched) and searched[0].at <= (ours[0].at if ours else float("inf")),
            "before polling its events",
            f"{len(searched)} searches",
        ),
        Criterion(
            "it polls its own program's events",
            bool(ours) and not scoped,
            f"GET /events?programID={stage.program_id} only",
            f"{len(ours)} polls of it, {len(scoped)} of other programs",
        ),
        _sun(stage, stage.ready_at or 0.0),
        _exports_more(
            stage,
            1000,
            (stage.ready_at or 0.0) + 1.0,
            None,
            "the other programs' 0 kW export limits are not applied",
        ),
    ]


# --- OA3-05: EXPORT_CAPACITY_LIMIT ------------------------------------------------------------


async def export_limit(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    sun = await _exporting(stage)
    if not sun.ok:
        return [first, sun]
    added = stage.note(f"event: EXPORT_CAPACITY_LIMIT {EXPORT_KW} KW")
    _export_event(stage, EXPORT_KW)
    settled = await _export_settles(stage, EXPORT_KW * 1000, PICKUP_S + 2.0)
    since = settled if settled is not None else added + PICKUP_S
    await _until_time(stage, since + HOLD_S)
    end = stage.samples[-1].at
    return [
        first,
        _sun(stage, stage.ready_at or 0.0),
        sun,
        Criterion(
            "the limit is in force at the meter",
            settled is not None and settled - added <= PICKUP_S,
            f"within {PICKUP_S:.0f} s of the event",
            _after(settled, added),
        ),
        _export_within(
            stage,
            EXPORT_KW * 1000,
            since,
            end,
            f"the {EXPORT_KW} kW limit holds for {HOLD_S:.0f} s",
        ),
    ]


# --- OA3-06: IMPORT_CAPACITY_LIMIT ------------------------------------------------------------

IMPORT_KW = 3.0
GAC_TARGETS = [
    {"type": "POWER_SERVICE_LOCATION", "values": ["871234567890123456"]},
    {"type": "VEN_NAME", "values": [VEN_NAME]},
]


async def import_limit(stage: Stage) -> list[Criterion]:
    # The EV charges towards a 100 % SoC target first: the home imports far over the limit.
    stage.add_event([{"CHARGE_STATE_SETPOINT": [100]}], units={"CHARGE_STATE_SETPOINT": "PERCENT"})
    first = await ready(stage)
    if not first.ok:
        return [first]
    charging = await stage.until(
        lambda: bool(stage.samples) and stage.samples[-1].net_w > 2 * IMPORT_KW * 1000, PICKUP_S + 4
    )
    before = stage.samples[-1].net_w
    added = stage.note(f"event: IMPORT_CAPACITY_LIMIT {IMPORT_KW} KW (GAC 2.0 shape)")
    # As openadr3-client-gac-compliance's GAC 2.0 rules have it: one payloadDescriptor,
    # IMPORT_CAPACITY_LIMIT in KW, one value per interval, no priority, the two targets.
    stage.state.add_event(
        stage.program_id,
        {
            "programID": stage.program_id,
            "eventName": "gac-import-limit",
            "targets": GAC_TARGETS,
            "intervalPeriod": {"start": _rfc3339(added - 1.0), "duration": "PT2M"},
            "payloadDescriptors": [
                {
                    "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
                    "payloadType": "IMPORT_CAPACITY_LIMIT",
                    "units": "KW",
                }
            ],
            "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [IMPORT_KW]}]}
            ],
        },
    )
    limit = IMPORT_KW * 1000

    found: list[float] = []

    def within() -> bool:
        recent = stage.between(added)[-8:]
        if len(recent) == 8 and all(s.net_w <= limit + TOL_W for s in recent):
            found.append(recent[0].at)
            return True
        return False

    await stage.until(within, PICKUP_S + 2.0)
    settled = found[0] if found else None
    since = settled if settled is not None else added + PICKUP_S
    await _until_time(stage, since + HOLD_S)
    end = stage.samples[-1].at
    window = stage.between(since, end)
    worst = max((s.net_w for s in window), default=None)
    still = min((-s.charger_w for s in window), default=0.0)
    return [
        first,
        Criterion(
            "the EV charging drives the import over twice the limit (else this proves nothing)",
            charging is not None,
            f"import > {_kw(2 * limit)}",
            f"{_kw(before)}",
        ),
        Criterion(
            "the limit is in force at the meter",
            settled is not None and settled - added <= PICKUP_S,
            f"within {PICKUP_S:.0f} s of the event",
            _after(settled, added),
        ),
        Criterion(
            f"the {IMPORT_KW} kW limit holds for {HOLD_S:.0f} s",
            worst is not None and worst <= limit + TOL_W,
            f"import <= {_kw(limit + TOL_W)}",
            "no samples" if worst is None else f"at most {_kw(worst)}",
        ),
        Criterion(
            "the EV still charges within the limit (curtailed, not stopped)",
            still > 500,
            "charging > 0.5 kW throughout",
            f"at least {_kw(still)}",
        ),
    ]


def _rfc3339(at: float) -> str:
    return codec.format_time(at)


# --- OA3-07: ALERT_BLACK_START -> island ------------------------------------------------------

ISLAND_S = 3.0


async def black_start(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    added = stage.note("event: ALERT_BLACK_START")
    eid = stage.add_event([{"ALERT_BLACK_START": ["restoring feeder 7"]}])
    islanded = await stage.until(
        lambda: (
            bool(stage.samples)
            and stage.samples[-1].relay == "open"
            and stage.samples[-1].charger == "forming"
        ),
        PICKUP_S + 5.0,
    )
    await _wait(stage, ISLAND_S if islanded else 0.0)
    ended = stage.note("event deleted: the alert is over")
    stage.state.delete_event(eid)
    back = await stage.until(
        lambda: (
            bool(stage.samples)
            and stage.samples[-1].relay == "closed"
            and stage.samples[-1].charger != "forming"
        ),
        PICKUP_S + 3.0 + 8.0,
    )
    forming_closed = [s for s in stage.samples if s.charger == "forming" and s.relay != "open"]
    open_while = [s for s in stage.between((islanded or ended) + 1.0, ended) if s.relay != "open"]
    dark = [s for s in stage.between((islanded or ended) + 1.0, ended) if s.charger != "forming"]
    return [
        first,
        Criterion(
            "the home islands: relay open, then the EV forms",
            islanded is not None,
            f"within {PICKUP_S + 5:.0f} s of the alert",
            _after(islanded, added),
        ),
        Criterion(
            "the charger forms only with the relay open",
            not forming_closed,
            "never",
            "never"
            if not forming_closed
            else f"relay {forming_closed[0].relay} at {stage.t(forming_closed[0].at)}",
        ),
        Criterion(
            "the island holds while the alert lasts",
            islanded is not None and not open_while and not dark,
            "relay open, EV forming",
            f"{len(open_while)} samples off the island",
        ),
        Criterion(
            "the home reconnects once the alert is deleted",
            back is not None,
            f"within {PICKUP_S + 11:.0f} s (a poll and the enter-service delay)",
            _after(back, ended),
        ),
    ]


# --- OA3-08 / OA3-09: modification and deletion -----------------------------------------------

MODIFIED_KW = 2.5


async def _limit_in_force(stage: Stage) -> tuple[list[Criterion], str | None]:
    first = await ready(stage)
    if not first.ok:
        return [first], None
    sun = await _exporting(stage)
    if not sun.ok:
        return [first, sun], None
    added = stage.note(f"event: EXPORT_CAPACITY_LIMIT {EXPORT_KW} KW")
    eid = _export_event(stage, EXPORT_KW, name="limit")
    settled = await _export_settles(stage, EXPORT_KW * 1000, PICKUP_S + 2.0)
    held = Criterion(
        f"the {EXPORT_KW} kW limit is in force first",
        settled is not None,
        f"within {PICKUP_S + 2:.0f} s",
        _after(settled, added),
    )
    return [first, sun, held], eid if held.ok else None


async def modified(stage: Stage) -> list[Criterion]:
    criteria, eid = await _limit_in_force(stage)
    if eid is None:
        return criteria
    at = stage.note(f"event modified (PUT): {MODIFIED_KW} KW")
    stage.state.modify_event(
        eid,
        intervals=[{"EXPORT_CAPACITY_LIMIT": [MODIFIED_KW]}],
        units={"EXPORT_CAPACITY_LIMIT": "KW"},
        start=at - 1.0,
        duration_s=120.0,
        name="limit",
    )
    freed = await stage.until(
        lambda: stage.samples[-1].export_w > EXPORT_KW * 1000 + 500, PICKUP_S + 1.0
    )
    since = freed if freed is not None else at + PICKUP_S
    await _until_time(stage, since + HOLD_S)
    end = stage.samples[-1].at
    return [
        *criteria,
        Criterion(
            f"the old {EXPORT_KW} kW limit no longer holds",
            freed is not None,
            f"export > {_kw(EXPORT_KW * 1000 + 500)} within {PICKUP_S + 1:.0f} s",
            _after(freed, at),
        ),
        _export_within(
            stage, MODIFIED_KW * 1000, since, end, f"the new {MODIFIED_KW} kW limit holds"
        ),
    ]


async def deleted(stage: Stage) -> list[Criterion]:
    criteria, eid = await _limit_in_force(stage)
    if eid is None:
        return criteria
    at = stage.note("event deleted")
    stage.state.delete_event(eid)
    freed = await stage.until(
        lambda: bool(stage.samples) and stage.samples[-1].export_w > EXPORT_KW * 1000 + 500,
        PICKUP_S + 2.0,
    )
    return [
        *criteria,
        Criterion(
            "the limit is released: the export rises past it",
            freed is not None and freed - at <= PICKUP_S + 1.0,
            f"export > {_kw(EXPORT_KW * 1000 + 500)} within {PICKUP_S + 1:.0f} s",
            _after(freed, at),
        ),
    ]


# --- OA3-10: reports --------------------------------------------------------------------------

REPORTED = ("READING", "STORAGE_CHARGE_LEVEL", "OPERATING_STATE")
REPORT_EVENT_S = 4.0


async def reports(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    added = stage.note("event: IMPORT_CAPACITY_LIMIT 20 KW (not binding), reports asked for")
    eid = stage.add_event(
        [{"IMPORT_CAPACITY_LIMIT": [20.0]}],
        units={"IMPORT_CAPACITY_LIMIT": "KW"},
        report=REPORTED,
        duration_s=REPORT_EVENT_S + 1.0,
    )
    ev = stage.state.events[eid]
    await _wait(stage, REPORT_EVENT_S + REPORT_S + 0.5)
    posted = [r for r in stage.state.requests if r.method == "POST" and r.path == "/reports"]
    docs = [_json(r) for r in posted]
    ours = [d for d in docs if isinstance(d, dict) and d.get("eventID") == eid]
    start = ev["intervalPeriod"]["start"]
    t_start = codec.parse_time(start)
    t_end = t_start + REPORT_EVENT_S + 1.0
    types = {p.get("type") for d in ours for p in _payloads(d)}
    shaped = [d for d in ours if _report_problems(d, stage.program_id, t_start, t_end)]
    matched, compared = _readings_match(stage, ours)
    first_at = min((r.at for r in posted), default=None)
    return [
        first,
        Criterion(
            "reports are created for the event (POST /reports, eventID)",
            len(ours) >= 2 and all(r.status == 201 for r in posted),
            f"2 or more, answered 201, the first within {PICKUP_S + REPORT_S:.0f} s",
            f"{len(ours)} of {len(posted)} for the event; "
            f"statuses {sorted({r.status for r in posted})}",
        ),
        Criterion(
            "the first report comes within a report period of the pickup",
            first_at is not None and first_at - added <= PICKUP_S + REPORT_S,
            f"<= {PICKUP_S + REPORT_S:.0f} s",
            _after(first_at, added),
        ),
        Criterion(
            "each report is a valid 3.0.1 report of the event",
            bool(ours) and not shaped,
            "programID, eventID, clientName, resources with intervals (id, payloads) "
            "inside the event",
            "ok"
            if not shaped
            else "; ".join(_report_problems(shaped[0], stage.program_id, t_start, t_end)),
        ),
        Criterion(
            "the payload types are the ones asked for",
            bool(types) and types <= set(REPORTED) and "READING" in types,
            f"within {', '.join(REPORTED)}, READING among them",
            ", ".join(sorted(str(t) for t in types)) or "none",
        ),
        Criterion(
            "a READING matches the meter",
            matched > 0,
            "a value within 0.3 kW of the meter's net import",
            f"{matched} of {compared} readings",
        ),
    ]


def _json(r: Exchange) -> Any:
    try:
        return json.loads(r.body)
    except ValueError:
        return None


def _payloads(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for res in report.get("resources") or []
        for i in (res.get("intervals") or [])
        for p in (i.get("payloads") or [])
        if isinstance(p, dict)
    ]


def _report_problems(d: dict[str, Any], program_id: str, start: float, end: float) -> list[str]:
    out = []
    if d.get("programID") != program_id:
        out.append(f"programID {d.get('programID')!r}")
    if not d.get("clientName"):
        out.append("no clientName")
    resources = d.get("resources")
    if not isinstance(resources, list) or not resources:
        return [*out, "no resources"]
    for res in resources:
        if not res.get("resourceName"):
            out.append("a resource without resourceName")
        for i in res.get("intervals") or []:
            if not isinstance(i.get("id"), int) or not i.get("payloads"):
                out.append(f"interval {i.get('id')!r} without id or payloads")
            period = i.get("intervalPeriod") or res.get("intervalPeriod") or d.get("intervalPeriod")
            if not isinstance(period, dict) or "start" not in period:
                out.append(f"interval {i.get('id')!r} without an intervalPeriod")
                continue
            at = codec.parse_time(period["start"])
            if not start - 1.0 <= at <= end + 1.0:
                out.append(f"interval {i.get('id')!r} starts outside the event")
        if not res.get("intervals"):
            out.append(f"resource {res.get('resourceName')!r} without intervals")
    return out


def _readings_match(stage: Stage, reports: list[dict[str, Any]]) -> tuple[int, int]:
    """How many READING values (KW) are within 0.3 kW of the meter's net import during their
    interval (a second of slack each side), of how many there were."""
    matched = compared = 0
    for d in reports:
        for res in d.get("resources") or []:
            for i in res.get("intervals") or []:
                period = i.get("intervalPeriod") or res.get("intervalPeriod") or {}
                try:
                    start = codec.parse_time(period["start"])
                except (KeyError, TypeError, ValueError):
                    continue
                nets = [s.net_w / 1000 for s in stage.between(start - 1.0, start + REPORT_S + 1.0)]
                for p in i.get("payloads") or []:
                    values = p.get("values") or [None]
                    if p.get("type") != "READING" or not isinstance(values[0], int | float):
                        continue
                    compared += 1
                    matched += any(abs(values[0] - n) <= 0.3 for n in nets)
    return matched, compared


# --- OA3-11: subscriptions and notifications --------------------------------------------------


async def subscription(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    await _wait(stage, 1.0)
    subs = [
        s
        for s in stage.state.subscriptions.values()
        if s.get("programID") == stage.program_id
        and any("EVENT" in o.get("objects", []) for o in s.get("objectOperations", []))
    ]
    if not subs:
        raise NotRunError(
            "the VEN made no event subscription: webhooks are optional in OpenADR 3.0 (a VEN "
            "may poll only), so there is nothing to judge"
        )
    ops = [o for s in subs for o in s["objectOperations"] if "EVENT" in o.get("objects", [])]
    sun = await _exporting(stage)
    if not sun.ok:
        return [first, sun]
    polls_before = len(stage.polls())
    added = stage.note(f"event: EXPORT_CAPACITY_LIMIT {EXPORT_KW} KW")
    _export_event(stage, EXPORT_KW)
    settled = await _export_settles(stage, EXPORT_KW * 1000, PICKUP_S + 2.0)
    delivered = [d for d in stage.state.deliveries if d.at >= added - 0.5]
    next_poll = next((r.at for r in stage.polls()[polls_before:] if r.at > added), None)
    return [
        first,
        sun,
        Criterion(
            "the VEN subscribed to its program's events (POST /subscriptions)",
            all(
                o.get("callbackUrl") and {"POST", "PUT", "DELETE"} <= set(o.get("operations", []))
                for o in ops
            ),
            "EVENT POST, PUT and DELETE to a callbackUrl",
            "; ".join(f"{o.get('operations')} -> {o.get('callbackUrl')}" for o in ops),
        ),
        Criterion(
            "the subscription carries a bearer token for the callback",
            all(len(str(o.get("bearerToken") or "")) >= 16 for o in ops),
            "bearerToken of 16 or more characters",
            ", ".join(str(len(str(o.get("bearerToken") or ""))) for o in ops),
        ),
        Criterion(
            "the notification is taken (2xx)",
            bool(delivered)
            and all(d.status is not None and 200 <= d.status < 300 for d in delivered),
            "every delivery answered 2xx",
            ", ".join(f"{d.operation} {d.status}" for d in delivered) or "no delivery",
        ),
        Criterion(
            "the limit is in force before the next poll (by the notification)",
            settled is not None and (next_poll is None or settled <= next_poll),
            "the export within the limit before the VEN polled again",
            f"in force at {stage.t(settled)}, next poll at {stage.t(next_poll)}",
        ),
    ]


# --- OA3-12: the VTN goes away and comes back -------------------------------------------------

AWAY_S = 3.0
RESUME_S = 10.0  # from the VTN's return to the VEN's next answered poll


async def vtn_away(stage: Stage) -> list[Criterion]:
    criteria, eid = await _limit_in_force(stage)
    if eid is None:
        return criteria
    gone = stage.note("the VTN goes away (its port refuses connections)")
    await stage.vtn_down()
    stage.state.delete_event(eid, notify=False)  # while away, the utility ends the event
    await _wait(stage, AWAY_S)
    back = stage.note("the VTN is back, with its store (the event deleted meanwhile)")
    await stage.vtn_up()
    resumed = await stage.until(lambda: any(r.at > back for r in stage.polls()), RESUME_S)
    freed = await stage.until(
        lambda: bool(stage.samples) and stage.samples[-1].export_w > EXPORT_KW * 1000 + 500,
        PICKUP_S,
    )
    away = stage.between(gone, back)
    islanded = [s for s in away if s.relay != "closed"]
    return [
        *criteria,
        _export_within(
            stage, EXPORT_KW * 1000, gone, back, "the limit holds while the VTN is away"
        ),
        Criterion(
            "the home stays on the grid (a lost VTN is no outage)",
            bool(away) and not islanded,
            "relay closed",
            "closed" if not islanded else f"relay {islanded[0].relay} at {stage.t(islanded[0].at)}",
        ),
        Criterion(
            "the VEN polls again once the VTN is back",
            resumed is not None,
            f"within {RESUME_S:.0f} s",
            _after(resumed, back),
        ),
        Criterion(
            "the event deleted meanwhile ends: the limit is released",
            freed is not None,
            f"export > {_kw(EXPORT_KW * 1000 + 500)} within {PICKUP_S:.0f} s of the next poll",
            _after(freed, back),
        ),
    ]


# --- OA3-13: the poll interval ----------------------------------------------------------------

POLLS = 4


async def poll_interval(stage: Stage) -> list[Criterion]:
    first = await ready(stage)
    if not first.ok:
        return [first]
    await stage.until(lambda: len(stage.polls()) > POLLS, POLLS * POLL_S * 2)
    times = [r.at for r in stage.polls()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    shortest = min(gaps, default=0.0)
    longest = max(gaps, default=float("inf"))
    median = statistics.median(gaps) if gaps else 0.0
    return [
        first,
        Criterion(
            "no two polls closer than the interval (less 20 %)",
            len(gaps) >= POLLS and shortest >= 0.8 * POLL_S,
            f">= {0.8 * POLL_S:.1f} s between polls, {POLLS} gaps",
            f"{len(gaps)} gaps, shortest {shortest:.2f} s, median {median:.2f} s",
        ),
        Criterion(
            "polls keep coming at the interval (at most twice it, plus 1 s)",
            len(gaps) >= POLLS and longest <= 2 * POLL_S + 1.0,
            f"<= {2 * POLL_S + 1.0:.1f} s between polls",
            f"longest {longest:.2f} s",
        ),
    ]
