"""OpenADR 3 payloads -> core events: the table in mapping.py, the reasons, property tests."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.core.schedule import PRIMACY_MAX
from gateway.north.openadr3.mapping import (
    OPEN_ENDED_S,
    AlertAction,
    DispatchSign,
    ProgramMapping,
    map_event,
    primacy,
)
from gateway.north.openadr3.model import (
    OPEN_ENDED,
    Event,
    EventPayloadDescriptor,
    Interval,
    IntervalPeriod,
    ValuesMap,
)

NOW = 1_800_000_000.0
CFG = ProgramMapping("p")


def _event(
    *payloads: tuple[str, tuple[object, ...]],
    units: dict[str, str] | None = None,
    start: float = NOW + 60,
    duration: float = 600,
    priority: int | None = None,
    intervals: tuple[Interval, ...] | None = None,
) -> Event:
    return Event(
        id="e1",
        program_id="p1",
        intervals=intervals or (Interval(0, None, tuple(ValuesMap(t, v) for t, v in payloads)),),  # type: ignore[arg-type]
        priority=priority,
        payload_descriptors=tuple(EventPayloadDescriptor(t, u) for t, u in (units or {}).items()),
        interval_period=IntervalPeriod(start, duration),
        digest="d1",
    )


def _one(ev: Event, cfg: ProgramMapping = CFG) -> ControlSet:
    mapped = map_event(ev, cfg, NOW)
    assert len(mapped.events) == 1, mapped.reasons
    return mapped.events[0].controls


@pytest.mark.parametrize(
    ("payload", "units", "expected"),
    [
        (("EXPORT_CAPACITY_LIMIT", (1.5,)), None, ControlSet(export_limit_w=1500.0)),
        (("EXPORT_CAPACITY_LIMIT", (800,)), "W", ControlSet(export_limit_w=800.0)),
        (("IMPORT_CAPACITY_LIMIT", (7,)), "KW", ControlSet(import_limit_w=7000.0)),
        (("DISPATCH_SETPOINT", (3.0,)), None, ControlSet(target_w=-3000.0)),
        (("CHARGE_STATE_SETPOINT", (90,)), None, ControlSet(soc_target_pct=90.0)),
        (("CHARGE_STATE_SETPOINT", (90,)), "PERCENT", ControlSet(soc_target_pct=90.0)),
        (("ALERT_GRID_EMERGENCY", ("storm",)), None, ControlSet(soc_target_pct=100.0)),
        (("ALERT_POSSIBLE_OUTAGE", ()), None, ControlSet(soc_target_pct=100.0)),
        (("ALERT_BLACK_START", ("x",)), None, ControlSet(connect=False)),
    ],
)
def test_payload_table(
    payload: tuple[str, tuple[object, ...]], units: str | None, expected: ControlSet
) -> None:
    ev = _event(payload, units={payload[0]: units} if units else None)
    assert _one(ev) == expected


def test_configured_choices() -> None:
    cfg = ProgramMapping(
        "p",
        limit_units="W",
        dispatch_sign=DispatchSign.EXPORT,
        ev_capacity_kwh=50.0,
        alerts={"ALERT_GRID_EMERGENCY": AlertAction.ISLAND},
        prepare=ControlSet(soc_target_pct=95.0),
        simple={1: ControlSet(export_limit_w=0.0), 2: ControlSet(connect=False)},
    )
    assert _one(_event(("EXPORT_CAPACITY_LIMIT", (900,))), cfg) == ControlSet(export_limit_w=900.0)
    assert _one(_event(("DISPATCH_SETPOINT", (2000,))), cfg) == ControlSet(target_w=2000.0)
    kwh = _event(("CHARGE_STATE_SETPOINT", (40,)), units={"CHARGE_STATE_SETPOINT": "KWH"})
    assert _one(kwh, cfg) == ControlSet(soc_target_pct=80.0)
    assert _one(_event(("ALERT_GRID_EMERGENCY", ())), cfg) == ControlSet(connect=False)
    # ``alerts`` given in full: an alert left out of it is ignored, with a reason.
    ignored = map_event(_event(("ALERT_BLACK_START", ())), cfg, NOW)
    assert ignored.events == ()
    assert "ALERT_BLACK_START is configured to be ignored" in ignored.reasons[0]
    assert _one(_event(("SIMPLE", (2,))), cfg) == ControlSet(connect=False)
    assert _one(_event(("SIMPLE", (1,)), ("IMPORT_CAPACITY_LIMIT", (5000,))), cfg) == ControlSet(
        export_limit_w=0.0, import_limit_w=5000.0
    )


@pytest.mark.parametrize(
    ("payloads", "units", "reason"),
    [
        ((("PRICE", (0.3,)),), None, "payload type 'PRICE' is not one this gateway maps"),
        ((("SIMPLE", (1,)),), None, "SIMPLE level 1 has no configured control set"),
        ((("EXPORT_CAPACITY_LIMIT", ("x",)),), None, "must be a number, got 'x'"),
        ((("EXPORT_CAPACITY_LIMIT", (True,)),), None, "must be a number, got True"),
        ((("EXPORT_CAPACITY_LIMIT", ()),), None, "EXPORT_CAPACITY_LIMIT has no value"),
        ((("EXPORT_CAPACITY_LIMIT", (-1,)),), None, "must not be negative"),
        ((("EXPORT_CAPACITY_LIMIT", (2e3,)),), "MW", "absurd for a home"),
        ((("EXPORT_CAPACITY_LIMIT", (2,)),), "KWH", "is not a power unit"),
        ((("CHARGE_STATE_SETPOINT", (40,)),), "KWH", "needs ev_capacity_kwh"),
        ((("CHARGE_STATE_SETPOINT", (140,)),), None, "must be 0-100 %, got 140"),
        (
            (("EXPORT_CAPACITY_LIMIT", (1,)), ("SIMPLE", (0,))),
            None,
            "SIMPLE level 0 has no configured",
        ),
    ],
)
def test_unusable_payloads_give_reasons(
    payloads: tuple[tuple[str, tuple[object, ...]], ...], units: str | None, reason: str
) -> None:
    kind = payloads[0][0]
    mapped = map_event(_event(*payloads, units={kind: units} if units else None), CFG, NOW)
    assert any(reason in r for r in mapped.reasons), mapped.reasons


def test_unknown_payload_beside_a_known_one_still_applies() -> None:
    mapped = map_event(_event(("PRICE", (0.3,)), ("EXPORT_CAPACITY_LIMIT", (2,))), CFG, NOW)
    assert [e.controls for e in mapped.events] == [ControlSet(export_limit_w=2000.0)]
    assert mapped.reasons == ("interval 0: payload type 'PRICE' is not one this gateway maps",)


def test_conflicting_payloads_in_one_interval_are_refused() -> None:
    cfg = ProgramMapping("p", simple={1: ControlSet(export_limit_w=0.0)})
    mapped = map_event(_event(("SIMPLE", (1,)), ("EXPORT_CAPACITY_LIMIT", (2,))), cfg, NOW)
    assert mapped.events[0].controls == ControlSet(export_limit_w=0.0)
    assert "two payloads set export_limit_w" in mapped.reasons[0]


def test_intervals_are_consecutive_and_their_own_period_wins() -> None:
    own = IntervalPeriod(NOW + 5000, 100)
    ev = _event(
        intervals=(
            Interval(0, None, (ValuesMap("EXPORT_CAPACITY_LIMIT", (1,)),)),
            Interval(1, None, (ValuesMap("EXPORT_CAPACITY_LIMIT", (2,)),)),
            Interval(7, own, (ValuesMap("EXPORT_CAPACITY_LIMIT", (3,)),)),
        ),
    )
    events = map_event(ev, CFG, NOW).events
    assert [(e.start, e.duration) for e in events] == [
        (NOW + 60, 600),
        (NOW + 660, 600),
        (NOW + 5000, 100),
    ]
    assert [e.mrid for e in events] == ["openadr3:e1:d1:0", "openadr3:e1:d1:1", "openadr3:e1:d1:7"]
    assert {e.origin for e in events} == {"openadr3"}
    assert {e.response_required for e in events} == {0}


def test_past_intervals_are_skipped_with_a_reason() -> None:
    ev = _event(("EXPORT_CAPACITY_LIMIT", (1,)), start=NOW - 3600, duration=600)
    mapped = map_event(ev, CFG, NOW)
    assert mapped.events == ()
    assert "in the past" in mapped.reasons[0]
    # One that has started but not ended is kept (the core runs it from receipt).
    running = map_event(_event(("EXPORT_CAPACITY_LIMIT", (1,)), start=NOW - 60), CFG, NOW)
    assert len(running.events) == 1


@pytest.mark.parametrize("duration", [0.0, OPEN_ENDED])
def test_open_ended_durations(duration: float) -> None:
    (e,) = map_event(_event(("EXPORT_CAPACITY_LIMIT", (1,)), duration=duration), CFG, NOW).events
    assert e.duration == OPEN_ENDED_S


def test_missing_timing_and_no_intervals() -> None:
    ev = Event("e", "p", (Interval(0, None, (ValuesMap("EXPORT_CAPACITY_LIMIT", (1,)),)),))
    assert "has no start or duration" in map_event(ev, CFG, NOW).reasons[0]
    assert map_event(Event("e", "p", ()), CFG, NOW).reasons == ("the event has no intervals",)


def test_priority_to_primacy() -> None:
    assert primacy(None) == PRIMACY_MAX
    assert primacy(0) == 0
    assert primacy(3) == 3
    assert primacy(10_000) == PRIMACY_MAX - 1
    assert primacy(-5) == 0


finite = st.floats(allow_nan=True, allow_infinity=True, width=64)
values = st.one_of(finite, st.integers(-(10**12), 10**12), st.text(max_size=5), st.booleans())
kinds = st.sampled_from(
    [
        "EXPORT_CAPACITY_LIMIT",
        "IMPORT_CAPACITY_LIMIT",
        "DISPATCH_SETPOINT",
        "CHARGE_STATE_SETPOINT",
        "ALERT_GRID_EMERGENCY",
        "ALERT_BLACK_START",
        "SIMPLE",
        "PRICE",
    ]
)
unit = st.sampled_from([None, "W", "KW", "MW", "PERCENT", "KWH", "volts"])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(kinds, st.lists(values, max_size=2)), max_size=4),
    unit,
    st.floats(-1e5, 1e5),
    st.floats(0, 1e6),
    st.one_of(st.none(), st.integers(-(2**40), 2**40)),
)
def test_property_whatever_arrives_the_core_gets_only_valid_events(
    payloads: list[tuple[str, list[object]]],
    units: str | None,
    offset: float,
    duration: float,
    priority: int | None,
) -> None:
    ev = _event(
        *[(k, tuple(v)) for k, v in payloads],
        units={k: units for k, _ in payloads} if units else None,
        start=NOW + offset,
        duration=duration,
        priority=priority,
    )
    mapped = map_event(ev, CFG, NOW)
    for e in mapped.events:
        assert e.problems(366 * 86400) == []
        assert not e.controls.is_empty()
        assert e.start + e.duration > NOW
        for v in e.controls.to_dict().values():
            assert not isinstance(v, float) or math.isfinite(v)
    # Nothing is dropped silently: no event means a reason.
    if not mapped.events:
        assert mapped.reasons


def test_repeated_interval_ids_are_refused() -> None:
    payload = (ValuesMap("EXPORT_CAPACITY_LIMIT", (1,)),)
    ev = _event(intervals=(Interval(0, None, payload), Interval(0, None, payload)))
    mapped = map_event(ev, CFG, NOW)
    assert mapped.events == ()
    assert "interval ids repeat" in mapped.reasons[0]


def test_units_from_the_program_unless_the_event_says() -> None:
    program = (EventPayloadDescriptor("EXPORT_CAPACITY_LIMIT", "W"),)
    plain = _event(("EXPORT_CAPACITY_LIMIT", (700,)))
    assert map_event(plain, CFG, NOW, program).events[0].controls.export_limit_w == 700.0
    own = _event(("EXPORT_CAPACITY_LIMIT", (0.7,)), units={"EXPORT_CAPACITY_LIMIT": "KW"})
    assert map_event(own, CFG, NOW, program).events[0].controls.export_limit_w == 700.0
