"""The device-level physics of the simulated home (``gateway.sim.physics``), with no I/O."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.island import ChargerMode, RelayPosition
from gateway.sim.physics import (
    Charger,
    GridStep,
    HomePhysics,
    Load,
    Pv,
    Relay,
    RelayFault,
    RelayState,
)

MIDNIGHT = 1_800_000_000.0 - 1_800_000_000.0 % 86_400  # 00:00 UTC
NOON = MIDNIGHT + 12 * 3600


def home(t: float = NOON, **kw: object) -> HomePhysics:
    kw.setdefault("load", Load(constant_w=1_500.0))
    return HomePhysics(now=t, **kw)  # type: ignore[arg-type]


def open_relay(h: HomePhysics) -> None:
    h.command_relay(RelayPosition.OPEN)
    h.advance(h.now + h.relay.latency_s)
    assert h.relay.confirmed_open


# --- relay ----------------------------------------------------------------------------------


def test_relay_is_moving_for_its_latency_then_confirms_the_new_position() -> None:
    h = home(relay=Relay(latency_s=0.5))
    h.command_relay(RelayPosition.OPEN)
    assert h.relay.state is RelayState.MOVING
    h.advance(h.now + 0.3)
    assert h.relay.state is RelayState.MOVING
    assert h.relay.position is RelayPosition.CLOSED  # the aux contact has not changed yet
    assert h.meter().load_voltage_v == 240.0  # contacts still closed
    h.advance(h.now + 0.2)
    assert h.relay.state is RelayState.OPEN
    assert h.meter().load_voltage_v == 0.0  # nothing forms: the home is dark
    assert h.relay_category() == "open"


def test_relay_that_fails_to_open_stays_closed_and_raises_the_fault() -> None:
    h = home(relay=Relay(fail_to_open=True))
    h.command_relay(RelayPosition.OPEN)
    h.advance(h.now + 1)
    assert h.relay.position is RelayPosition.CLOSED
    assert RelayFault.FAIL_TO_OPEN in h.relay.faults
    assert h.relay_category() == "fault"
    assert not h.form()  # and the charger refuses to form onto it
    assert h.violations


@pytest.mark.parametrize("start", [RelayPosition.OPEN, RelayPosition.CLOSED])
def test_relay_watchdog_expiry_holds_the_position(start: RelayPosition) -> None:
    h = home(relay=Relay(position=start))
    h.relay.watchdog.arm(10, h.now)
    h.advance(h.now + 5)
    h.relay.heartbeat(h.now)
    h.advance(h.now + 9.9)
    assert not h.relay.faults
    h.advance(h.now + 0.2)
    assert h.relay.faults == {RelayFault.WATCHDOG_EXPIRED}
    h.advance(h.now + 3600)
    assert h.relay.position is start
    assert h.relay.state.value == start.value
    h.relay.heartbeat(h.now)  # the gateway is back
    assert not h.relay.faults


def test_relay_watchdog_expiry_keeps_a_formed_island_up() -> None:
    h = home(t=MIDNIGHT)
    h.grid.fail()
    open_relay(h)
    assert h.form()
    h.relay.watchdog.arm(5, h.now)
    h.advance(h.now + 60)
    assert RelayFault.WATCHDOG_EXPIRED in h.relay.faults
    assert h.charger.mode is ChargerMode.GRID_FORMING
    assert h.meter().load_voltage_v == 240.0
    assert h.violations == []


# --- charger ----------------------------------------------------------------------------------


def test_charger_ramps_toward_its_setpoint() -> None:
    h = home(charger=Charger(ramp_w_per_s=1_000.0))
    assert h.command_charger(ChargerMode.GRID_FOLLOWING, 5_000.0)
    assert h.charger.power_w == 0.0
    h.advance(h.now + 2)
    assert h.charger.power_w == pytest.approx(2_000.0)
    h.advance(h.now + 10)
    assert h.charger.power_w == pytest.approx(5_000.0)
    assert h.charger_category() == "discharging"
    h.command_charger(ChargerMode.GRID_FOLLOWING, -3_000.0)
    h.advance(h.now + 4)
    assert h.charger.power_w == pytest.approx(1_000.0)
    h.advance(h.now + 10)
    assert h.charger_category() == "charging"
    h.command_charger(ChargerMode.STOPPED)  # stopping is not ramped: it is the safe direction
    assert h.charger.power_w == 0.0


def test_charger_limits_and_ratings_bound_the_setpoint() -> None:
    h = home(charger=Charger(max_discharge_w=7_400.0, discharge_limit_w=3_000.0))
    h.command_charger(ChargerMode.GRID_FOLLOWING, 9_000.0)
    assert h.charger.power_w == 3_000.0
    h.charger.discharge_limit_w = math.inf
    h.settle()
    assert h.charger.power_w == 7_400.0


def test_soc_drop_matches_the_integrated_discharge_energy() -> None:
    cap = 20_000.0
    h = home(charger=Charger(capacity_wh=cap, soc_pct=90.0, ramp_w_per_s=250.0))
    h.command_charger(ChargerMode.GRID_FOLLOWING, 6_000.0)
    energy_ws, t, p = 0.0, h.now, h.charger.power_w
    for dt in [0.7, 1.3, 2.9, 5.0, 11.0, 0.1, 30.0] * 20:  # irregular steps, ramp included
        h.advance(t + dt)
        energy_ws += (p + h.charger.power_w) / 2 * dt
        t, p = h.now, h.charger.power_w
    drop_wh = (90.0 - h.charger.soc_pct) / 100 * cap
    assert drop_wh == pytest.approx(energy_ws / 3600, rel=2e-3)
    assert drop_wh > 1_000


def test_discharge_stops_at_the_soc_floor_but_charging_still_works() -> None:
    h = home(charger=Charger(capacity_wh=10_000.0, soc_pct=21.0, soc_floor_pct=20.0))
    h.command_charger(ChargerMode.GRID_FOLLOWING, 9_600.0)
    h.advance(h.now + 600)
    assert h.charger.soc_pct == pytest.approx(20.0)
    assert h.charger.power_w == 0.0
    assert h.charger_category() == "stopped"
    h.command_charger(ChargerMode.GRID_FOLLOWING, -2_000.0)
    h.advance(h.now + 60)
    assert h.charger.soc_pct > 20.0


def test_forming_with_the_relay_closed_trips_and_records_a_violation() -> None:
    h = home()
    assert not h.command_charger(ChargerMode.GRID_FORMING)
    assert h.charger.mode is ChargerMode.STOPPED
    assert h.charger.tripped is not None
    assert h.charger_category() == "fault"
    assert len(h.violations) == 1
    assert "relay closed" in h.violations[0]


def test_forming_while_the_relay_is_still_moving_is_a_violation_too() -> None:
    h = home()
    h.command_relay(RelayPosition.OPEN)
    assert not h.form()
    assert "moving" in h.violations[0]


def test_closing_the_relay_onto_a_forming_charger_trips_it() -> None:
    h = home(t=MIDNIGHT)
    h.grid.fail()
    open_relay(h)
    assert h.form()
    h.advance(h.now + 10)
    assert h.violations == []
    h.command_relay(RelayPosition.CLOSED)
    h.advance(h.now + 1)
    assert h.charger.mode is ChargerMode.STOPPED
    assert h.charger.tripped is not None
    assert any("relay closed onto a forming charger" in v for v in h.violations)


def test_charger_watchdog_stops_it_when_not_refreshed() -> None:
    h = home()
    h.command_charger(ChargerMode.GRID_FOLLOWING, 3_000.0)
    h.charger.watchdog.arm(60, h.now)
    h.advance(h.now + 30)
    h.charger.heartbeat(h.now)
    soc = h.charger.soc_pct
    h.advance(h.now + 59)
    assert h.charger.mode is ChargerMode.GRID_FOLLOWING
    h.advance(h.now + 600)
    assert h.charger.watchdog_expired
    assert h.charger.mode is ChargerMode.STOPPED
    assert h.charger.power_w == 0.0
    # It discharged until the deadline and not a second longer.
    used_wh = (soc - h.charger.soc_pct) / 100 * h.charger.capacity_wh
    assert used_wh == pytest.approx(3_000.0 * 60 / 3600)


def test_grid_following_ceases_to_energize_without_a_grid() -> None:
    h = home()
    h.command_charger(ChargerMode.GRID_FOLLOWING, 3_000.0)
    h.advance(h.now + 1)
    h.grid.fail()
    h.advance(h.now + 1)
    assert h.charger.power_w == 0.0
    assert h.pv.power_w == 0.0
    assert h.meter().load_voltage_v == 0.0
    assert h.violations == []
    h.grid.restore()
    h.advance(h.now + 1)
    assert h.charger.power_w == 3_000.0


def test_defeated_anti_islanding_is_a_backfeed_violation() -> None:
    h = home(charger=Charger(anti_islanding=False))
    h.command_charger(ChargerMode.GRID_FOLLOWING, 3_000.0)
    h.grid.fail()
    h.advance(h.now + 5)
    assert len(h.violations) == 1  # recorded once per episode, not every step
    assert "backfeed onto a dead grid" in h.violations[0]


# --- PV, load, meter, grid ----------------------------------------------------------------


def test_pv_follows_the_daily_curve_and_its_limits() -> None:
    pv = Pv(peak_w=6_000.0, limit_w=6_000.0)
    assert pv.available(MIDNIGHT) == 0.0
    assert pv.available(NOON) == pytest.approx(6_000.0)
    assert pv.available(MIDNIGHT + 9 * 3600) == pytest.approx(6_000.0 * math.sin(math.pi / 4))
    h = home(pv=pv)
    assert h.pv.power_w == 0.0
    h.settle()
    assert h.pv.power_w == pytest.approx(6_000.0)
    pv.set_limit_pct(25)
    h.settle()
    assert h.pv.power_w == pytest.approx(1_500.0)


def test_household_load_peaks_in_the_evening() -> None:
    load = Load()
    by_hour = {h: load.demand(MIDNIGHT + h * 3600) for h in range(24)}
    assert max(by_hour, key=by_hour.__getitem__) == 19
    assert by_hour[3] < 600
    assert Load(constant_w=800).demand(MIDNIGHT + 19 * 3600) == 800


def test_meter_net_is_load_minus_sources() -> None:
    h = home(load=Load(constant_w=2_000.0), pv=Pv(peak_w=7_000.0, limit_w=1_500.0))
    h.command_charger(ChargerMode.GRID_FOLLOWING, 1_000.0)
    m = h.meter()
    assert m.net_w == pytest.approx(2_000 - 1_500 - 1_000)
    assert m.current_l1_a == m.current_l2_a == pytest.approx(500 / 240)
    assert (m.grid_voltage_v, m.load_voltage_v, m.load_frequency_hz) == (240.0, 240.0, 60.0)


def test_an_island_is_fed_by_the_charger_and_the_meter_sees_nothing() -> None:
    h = home(t=MIDNIGHT + 20 * 3600)
    h.grid.fail()
    open_relay(h)
    assert h.form()
    m = h.meter()
    assert h.charger.power_w == pytest.approx(1_500.0)
    assert (m.net_w, m.grid_voltage_v, m.load_voltage_v, m.load_frequency_hz) == (
        0.0,
        0.0,
        240.0,
        60.0,
    )


def test_grid_script_applies_each_step_at_its_time() -> None:
    h = home()
    t0 = h.now
    h.grid.play([GridStep(t0 + 10, 0.0, 0.0), GridStep(t0 + 20, 250.0, 60.2)])
    h.advance(t0 + 9.5)
    assert h.grid.up
    h.advance(t0 + 15)
    assert not h.grid.up
    h.advance(t0 + 100)
    assert (h.grid.voltage_v, h.grid.frequency_hz) == (250.0, 60.2)


# --- property: the order of the islanding steps -------------------------------------------

OPS = st.lists(
    st.one_of(
        st.sampled_from(["open", "close", "form", "stop", "fail", "restore"]),
        st.tuples(st.just("start"), st.floats(-9_600, 9_600)),
        st.tuples(st.just("wait"), st.floats(0.0, 2.0)),
    ),
    max_size=40,
)


def _apply(h: HomePhysics, op: object) -> None:
    match op:
        case "open":
            h.command_relay(RelayPosition.OPEN)
        case "close":
            h.command_relay(RelayPosition.CLOSED)
        case "form":
            h.form()
        case "stop":
            h.command_charger(ChargerMode.STOPPED)
        case "fail":
            h.grid.fail()
        case "restore":
            h.grid.restore()
        case ("start", float(w)):
            h.command_charger(ChargerMode.GRID_FOLLOWING, w)
        case ("wait", float(dt)):
            h.advance(h.now + dt)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_any_sequence_in_the_safe_order_records_no_violation(ops: list[object]) -> None:
    h = home()
    for op in ops:
        # The gateway's rules: form only on a read-back of OPEN; stop forming before closing.
        if op == "form" and not h.relay.confirmed_open:
            continue
        if op == "close" and h.charger.mode is ChargerMode.GRID_FORMING:
            _apply(h, "stop")
        _apply(h, op)
    h.advance(h.now + 5)
    assert h.violations == []


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_forming_before_the_relay_is_confirmed_open_always_records_a_violation(
    ops: list[object],
) -> None:
    h = home()
    for op in [*ops, "form"]:
        if op == "close" and h.charger.mode is ChargerMode.GRID_FORMING:
            _apply(h, "stop")  # isolate the forming rule from the closing rule
        before, unsafe = len(h.violations), not h.relay.confirmed_open
        _apply(h, op)
        if op == "form":
            assert (len(h.violations) > before) == unsafe
            assert (h.charger.mode is ChargerMode.GRID_FORMING) == (not unsafe)


# --- what the Modbus binding drives ---------------------------------------------------------


def test_start_forms_when_backup_mode_is_armed_and_the_relay_is_open() -> None:
    h = home(t=MIDNIGHT)
    assert h.set_backup(on=True)
    assert h.charger.mode is ChargerMode.STOPPED  # arming alone does nothing
    assert not h.start_charger()  # the relay is closed: it trips
    assert h.charger_category() == "fault"
    assert len(h.violations) == 1
    assert h.stop_charger()  # a stop acknowledges the trip
    assert h.charger_category() == "stopped"
    open_relay(h)
    assert h.start_charger()
    assert h.charger.mode is ChargerMode.GRID_FORMING
    assert h.set_backup(on=False)  # leaving backup mode ends the island
    assert h.charger.mode is ChargerMode.STOPPED
    assert len(h.violations) == 1


def test_a_charger_that_refuses_a_stop_in_backup_mode_stops_once_backup_is_off() -> None:
    h = home(t=MIDNIGHT, charger=Charger(refuses_stop_in_backup=True))
    open_relay(h)
    assert h.set_backup(on=True)
    assert h.start_charger()
    assert not h.stop_charger()  # refused: still forming
    assert h.charger.mode is ChargerMode.GRID_FORMING
    assert h.set_backup(on=False)
    assert h.stop_charger()
    assert h.charger_category() == "stopped"


def test_a_charger_that_must_be_stopped_first_refuses_to_leave_backup_while_forming() -> None:
    h = home(t=MIDNIGHT, charger=Charger(refuses_backup_off_running=True))
    open_relay(h)
    assert h.set_backup(on=True)
    assert h.start_charger()
    assert not h.set_backup(on=False)  # refused: still forming, still armed
    assert (h.charger.mode, h.charger.backup_armed) == (ChargerMode.GRID_FORMING, True)
    assert h.stop_charger()
    assert h.set_backup(on=False)
    assert not h.charger.backup_armed


def test_a_running_charger_switches_to_forming_when_backup_is_armed() -> None:
    h = home(t=MIDNIGHT)
    open_relay(h)
    h.command_charger(ChargerMode.GRID_FOLLOWING, 2_000.0)
    assert h.set_backup(on=True)
    assert h.charger.mode is ChargerMode.GRID_FORMING
    assert h.violations == []


def test_a_sync_checking_relay_refuses_to_close_onto_a_live_island() -> None:
    h = home(t=MIDNIGHT, relay=Relay(refuses_live_close=True))
    open_relay(h)
    assert h.form()
    assert not h.command_relay(RelayPosition.CLOSED)
    h.advance(h.now + 1)
    assert h.relay.confirmed_open
    assert h.violations == []


def test_der_watchdog_reverts_to_the_fallback_limit_until_the_next_heartbeat() -> None:
    h = home(pv=Pv(peak_w=7_000.0, limit_w=7_000.0, fallback_limit_w=1_000.0))
    h.pv.watchdog.arm(60, h.now)
    h.advance(h.now + 30)
    assert h.pv.power_w == pytest.approx(7_000.0, rel=1e-3)
    h.advance(h.now + 31)
    assert h.pv.reverted
    assert h.pv.power_w == pytest.approx(1_000.0)
    h.pv.heartbeat(h.now)
    h.settle()
    assert h.pv.power_w == pytest.approx(7_000.0, rel=1e-3)


def test_remote_disabled_charger_ignores_commands() -> None:
    h = home(charger=Charger(remote_enabled=False))
    assert not h.command_charger(ChargerMode.GRID_FOLLOWING, 3_000.0)
    assert not h.start_charger()
    assert h.charger.mode is ChargerMode.STOPPED
