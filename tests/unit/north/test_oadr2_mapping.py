"""OpenADR 2.0b signal -> core controls mapping (pure): the default table, refusals, properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet
from gateway.north.openadr2.config import ProgramMapping
from gateway.north.openadr2.mapping import (
    OK,
    OPT_IN,
    OPT_OUT,
    SIGNAL_NOT_SUPPORTED,
    decide,
    primacy,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T = NOW.timestamp()
KW = {"name": "powerReal", "description": "RealPower", "unit": "W", "scale": "k"}


def event(
    name: str = "LOAD_CONTROL",
    kind: str = "x-loadControlCapacity",
    payloads: tuple[Any, ...] = (0.0,),
    *,
    start: datetime = NOW + timedelta(seconds=60),
    duration: timedelta = timedelta(minutes=10),
    measurement: dict[str, Any] | None = None,
    mod: int = 0,
    priority: int = 0,
    event_id: str = "ev-1",
) -> dict[str, Any]:
    intervals = [
        {"dtstart": start + i * duration, "duration": duration, "uid": i, "signal_payload": p}
        for i, p in enumerate(payloads)
    ]
    signal: dict[str, Any] = {"signal_name": name, "signal_type": kind, "intervals": intervals}
    if measurement is not None:
        signal["measurement"] = measurement
    return {
        "event_descriptor": {
            "event_id": event_id,
            "modification_number": mod,
            "priority": priority,
            "market_context": "http://utility.example/dr",
            "created_date_time": NOW,
            "event_status": "far",
        },
        "active_period": {"dtstart": start, "duration": duration * len(payloads)},
        "event_signals": [signal],
        "targets": [{"ven_id": "VEN_1"}],
        "response_required": "always",
    }


def ok(_: ControlSet) -> list[str]:
    return []


def run(ev: dict[str, Any], mapping: ProgramMapping | None = None, assess: Any = ok) -> Any:
    return decide(ev, mapping or ProgramMapping(), now=T, assess=assess)


def test_capacity_0_is_an_island_request_and_1_a_reconnect_permission() -> None:
    d = run(event(payloads=(0.0, 1.0)))
    assert d.opt == OPT_IN
    assert d.code == OK
    assert [e.controls for e in d.events] == [ControlSet(connect=False), ControlSet(connect=True)]
    first, second = d.events
    assert first.start == T + 60
    assert first.duration == 600
    assert second.start == T + 660
    assert first.origin == "openadr2"
    assert first.response_required == 0
    assert first.program == "http://utility.example/dr"
    assert first.mrid != second.mrid
    assert "ev-1" in first.mrid


def test_load_dispatch_kw_negative_is_export_by_default_and_configurable() -> None:
    d = run(event("LOAD_DISPATCH", "setpoint", (-5.0, 2.5), measurement=KW))
    assert [e.controls for e in d.events] == [
        ControlSet(export_limit_w=5000.0),
        ControlSet(import_limit_w=2500.0),
    ]
    flipped = run(
        event("LOAD_DISPATCH", "setpoint", (-5.0, 2.5), measurement=KW),
        ProgramMapping(export_negative=False),
    )
    assert [e.controls for e in flipped.events] == [
        ControlSet(import_limit_w=5000.0),
        ControlSet(export_limit_w=2500.0),
    ]


def test_load_dispatch_without_item_base_is_watts_and_says_so() -> None:
    d = run(event("LOAD_DISPATCH", "setpoint", (-1500.0,)))
    assert d.events[0].controls == ControlSet(export_limit_w=1500.0)
    assert any("read as W" in n for n in d.notes)


def test_load_dispatch_in_energy_units_is_refused() -> None:
    m = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}
    d = run(event("LOAD_DISPATCH", "setpoint", (-5.0,), measurement=m))
    assert d.opt == OPT_OUT
    assert "energyReal" in d.reason
    assert not d.events


def test_simple_levels_map_to_configured_sets_and_level_0_puts_nothing_in_force() -> None:
    d = run(event("SIMPLE", "level", (0, 1, 2, 3)))
    assert d.opt == OPT_IN
    assert [e.controls for e in d.events] == [
        ControlSet(export_limit_w=3000.0),
        ControlSet(export_limit_w=0.0),
        ControlSet(connect=False),
    ]
    custom = ProgramMapping(simple={1: ControlSet(soc_target_pct=80.0)})
    d = run(event("SIMPLE", "level", (1,)), custom)
    assert d.events[0].controls == ControlSet(soc_target_pct=80.0)


def test_charge_state_is_an_soc_target_in_percent() -> None:
    d = run(event("CHARGE_STATE", "setpoint", (90.0,)))
    assert d.events[0].controls == ControlSet(soc_target_pct=90.0)
    kwh = {"name": "energyReal", "description": "RealEnergy", "unit": "Wh", "scale": "k"}
    assert run(event("CHARGE_STATE", "setpoint", (40.0,), measurement=kwh)).opt == OPT_OUT
    assert run(event("CHARGE_STATE", "setpoint", (140.0,))).opt == OPT_OUT


def test_unknown_signals_are_opted_out_with_460() -> None:
    for name, kind in (("x-islandCommand", "level"), ("ELECTRICITY_PRICE", "price")):
        d = run(event(name, kind, (1.0,)))
        assert d.opt == OPT_OUT, (name, d)
        assert d.code == SIGNAL_NOT_SUPPORTED, (name, d)
        assert name in d.reason


def test_absurd_values_are_refused_with_a_reason_and_nothing_in_force() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (event(payloads=(math.nan,)), "finite"),
        (event(payloads=(0.5,)), "0.5"),
        (event("LOAD_DISPATCH", "setpoint", (-1e12,), measurement=KW), "absurd"),
        (event("SIMPLE", "level", (7,)), "SIMPLE level"),
        (event(payloads=("zero",)), "number"),
        (event(duration=timedelta(0)), "positive"),
        (event(duration=timedelta(seconds=-5)), "positive"),
        (event(start=NOW - timedelta(hours=2)), "already over"),
        (event(priority=-1), "priority"),
        ({"event_descriptor": {"event_id": "x"}}, "eventSignals"),
        ({"nothing": 1}, "not readable"),
    ]
    for ev, words in cases:
        d = run(ev)
        assert d.opt == OPT_OUT, ev
        assert d.events == (), ev
        assert words in d.reason, (words, d.reason)


def test_the_sites_own_refusal_opts_out() -> None:
    def no_ev(c: ControlSet) -> list[str]:
        return ["cannot island: no EV connected to carry the home"] if c.connect is False else []

    d = run(event(payloads=(0.0,)), assess=no_ev)
    assert d.opt == OPT_OUT
    assert "no EV connected" in d.reason
    assert d.code == OK
    assert run(event(payloads=(1.0,)), assess=no_ev).opt == OPT_IN


def test_running_event_keeps_only_the_intervals_still_to_come() -> None:
    d = run(event(payloads=(0.0, 0.0, 1.0), start=NOW - timedelta(minutes=15)))
    assert [e.start for e in d.events] == [T - 300, T + 300]


def test_priority_maps_to_primacy_with_0_the_lowest() -> None:
    assert primacy(0) == 255
    assert primacy(1) == 1
    assert primacy(9) == 9
    assert primacy(1000) == 255


def test_a_modified_event_gets_new_mrids() -> None:
    a = run(event(mod=0)).events[0].mrid
    b = run(event(mod=1)).events[0].mrid
    assert a != b


payloads = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**15), 10**15),
    st.none(),
    st.text(max_size=3),
    st.booleans(),
)
signals = st.sampled_from(
    [
        ("LOAD_CONTROL", "x-loadControlCapacity"),
        ("LOAD_DISPATCH", "setpoint"),
        ("SIMPLE", "level"),
        ("CHARGE_STATE", "setpoint"),
        ("LOAD_CONTROL", "x-loadControlSetpoint"),
        ("x-foo", "level"),
        ("BID_LOAD", "setpoint"),
    ]
)
measurements = st.one_of(
    st.none(),
    st.just(KW),
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["powerReal", "energyReal", "customUnit"]),
            "unit": st.sampled_from(["W", "Wh", "%", "x"]),
            "scale": st.sampled_from(["k", "M", "none", "bogus", None]),
        }
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    signal=signals,
    values=st.lists(payloads, min_size=1, max_size=4),
    measurement=measurements,
    offset_s=st.integers(-86400, 86400),
    duration_s=st.integers(-100, 10**8),
    priority=st.integers(-5, 300),
    export_negative=st.booleans(),
)
def test_any_payload_maps_to_valid_controls_or_a_reason(
    signal: tuple[str, str],
    values: list[Any],
    measurement: dict[str, Any] | None,
    offset_s: int,
    duration_s: int,
    priority: int,
    export_negative: bool,
) -> None:
    ev = event(
        *signal,
        tuple(values),
        start=NOW + timedelta(seconds=offset_s),
        duration=timedelta(seconds=duration_s),
        measurement=measurement,
        priority=priority,
    )
    d = decide(ev, ProgramMapping(export_negative=export_negative), now=T, assess=ok)
    if d.opt == OPT_OUT:
        assert d.reason
        assert d.events == ()
        return
    assert d.opt == OPT_IN
    assert d.code == OK
    for e in d.events:
        assert e.problems(366 * 86400.0) == []
        assert not e.controls.is_empty()
        assert e.start + e.duration > T
        assert 0 <= e.primacy <= 255


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    ["event_descriptor", "event_signals", "intervals", "event_id", "signal_name"]
                ),
                inner,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_garbage_never_raises(garbage: Any) -> None:
    ev = garbage if isinstance(garbage, dict) else {"event_descriptor": garbage}
    d = decide(ev, ProgramMapping(), now=T, assess=ok)
    assert d.opt == OPT_OUT
    assert d.reason
