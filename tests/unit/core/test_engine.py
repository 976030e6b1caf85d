"""Example tests of the engine: the islanding and reconnection sequences, step by step."""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace

import pytest

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet, Mode
from gateway.core.engine import STEP_RETRY_S, Engine
from gateway.core.island import ChargerMode, EnterService, Phase, RelayPosition
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    ChargerTelemetry,
    DefaultsReceived,
    DerLimit,
    DerRated,
    Direction,
    EventReceived,
    Forget,
    Input,
    ManualOverride,
    MeterTelemetry,
    NorthReport,
    Note,
    Observed,
    Persist,
    RelayCommand,
    RelayTelemetry,
    Severity,
    Table,
    Tick,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.schedule import Event
from gateway.core.site import ConfigError, SiteConfig
from gateway.core.units import MRID
from gateway.sim.home import HomeModel

T0 = 1_800_000_000.0 + 16 * 3600  # an afternoon, so the PV curve is producing

CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


class Rig:
    """The engine wired to the simulated home, every command executed at once."""

    def __init__(self, config: SiteConfig = CONFIG) -> None:
        self.config = config
        rng = random.Random(1)
        self.draw = lambda b: rng.randint(min(0, b), max(0, b))
        self.events: dict[str, dict[str, object]] = {}
        self.state: dict[str, dict[str, object]] = {}
        self.engine = Engine(config, draw=self.draw)
        self.home = HomeModel(now=T0)
        self.log: list[Action] = []
        self.execute = True

    def feed(self, first: Input) -> list[Action]:
        queue: deque[Input] = deque([first])
        produced: list[Action] = []
        while queue:
            actions = self.engine.handle(queue.popleft())
            produced += actions
            for a in actions:
                if isinstance(a, Persist) and a.table is Table.EVENT:
                    self.events[a.key] = dict(a.doc)
                elif isinstance(a, Persist) and a.table is Table.STATE:
                    self.state[a.key] = dict(a.doc)
                elif isinstance(a, RelayCommand | ChargerCommand | DerLimit) and self.execute:
                    queue.append(self.home.execute(a))
        self.log += produced
        return produced

    def run(self, seconds: float, step: float = 1.0) -> None:
        end = self.home.now + seconds
        while self.home.now < end:
            self.home.advance(self.home.now + step)
            self.feed(self.home.observe())

    def restart(self) -> None:
        self.engine = Engine(
            self.config, draw=self.draw, events=list(self.events.values()), state=self.state
        )

    def commands(self) -> list[RelayCommand | ChargerCommand | DerLimit]:
        return [a for a in self.log if isinstance(a, RelayCommand | ChargerCommand | DerLimit)]


def _index(cmds: list[RelayCommand | ChargerCommand | DerLimit], pred: object) -> int:
    for i, c in enumerate(cmds):
        if pred(c):  # type: ignore[operator]
            return i
    raise AssertionError("command not found")


def test_islanding_order_stop_export_then_open_relay_then_confirm_then_form() -> None:
    rig = Rig()
    rig.run(5)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    rig.log.clear()
    rig.home.grid.fail()
    rig.run(5)
    assert rig.engine.phase is Phase.ISLANDED
    cmds = rig.commands()
    stop = _index(cmds, lambda c: isinstance(c, ChargerCommand) and c.mode is ChargerMode.STOPPED)
    pv_zero = _index(cmds, lambda c: isinstance(c, DerLimit) and c.max_discharge_w == 0)
    open_ = _index(cmds, lambda c: isinstance(c, RelayCommand))
    form = _index(
        cmds, lambda c: isinstance(c, ChargerCommand) and c.mode is ChargerMode.GRID_FORMING
    )
    assert stop < open_
    assert pv_zero < open_ < form
    assert cmds[open_].position is RelayPosition.OPEN  # type: ignore[union-attr]
    assert rig.home.violations == []
    assert rig.home.charger.power_w == pytest.approx(rig.home.load_w)  # the EV carries the home


def test_forming_waits_for_relay_read_back_and_faults_on_timeout() -> None:
    rig = Rig()
    rig.run(3)
    rig.execute = False  # now drive the confirmations by hand
    now = rig.home.now
    acts = rig.feed(ManualOverride(now, ControlSet(connect=False)))
    stop = next(a for a in acts if isinstance(a, ChargerCommand))
    pv = next(a for a in acts if isinstance(a, DerLimit))
    rig.feed(WriteConfirmed(now, stop.id))
    acts = rig.feed(WriteConfirmed(now, pv.id))
    assert rig.engine.phase is Phase.OPENING_RELAY
    relay_cmd = next(a for a in acts if isinstance(a, RelayCommand))
    # No read-back confirmation yet, and the relay's own state register still says closed.
    acts = rig.feed(Observed(now + 0.2, relay=RelayTelemetry(now + 0.2, RelayPosition.CLOSED)))
    assert relay_cmd.position is RelayPosition.OPEN
    forming = [
        a for a in acts if isinstance(a, ChargerCommand) and a.mode is ChargerMode.GRID_FORMING
    ]
    assert forming == []
    assert rig.engine.phase is Phase.OPENING_RELAY
    acts = rig.feed(Tick(now + CONFIG.step_timeout_s + 1))
    assert rig.engine.phase is Phase.FAULT
    assert any(isinstance(a, Alarm) and a.severity is Severity.CRITICAL for a in acts)
    assert not any(
        isinstance(a, ChargerCommand) and a.mode is not ChargerMode.STOPPED for a in rig.log[-20:]
    )


def _islanded_rig() -> Rig:
    rig = Rig()
    rig.run(3)
    rig.home.grid.fail()
    rig.run(5)
    assert rig.engine.phase is Phase.ISLANDED
    return rig


def test_enter_service_window_must_hold_continuously_for_the_delay() -> None:
    rig = _islanded_rig()
    rig.home.grid.restore()
    rig.run(200)
    assert rig.engine.phase is Phase.RECONNECT_WAIT
    rig.home.grid.restore(voltage_v=265.0)  # 1.10 pu: outside the 1.05 pu window, not an outage
    rig.run(2)
    assert rig.engine.phase is Phase.ISLANDED
    rig.home.grid.restore()
    rig.run(290)
    assert rig.engine.phase is Phase.RECONNECT_WAIT  # the 300 s started again
    rig.run(15)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    assert rig.home.relay.position is RelayPosition.CLOSED
    assert rig.home.violations == []


def test_relay_closes_only_after_fresh_zero_power_telemetry() -> None:
    rig = _islanded_rig()
    rig.home.grid.restore()
    rig.run(299)
    # From here the confirmations and telemetry come by hand.
    rig.execute = False
    now = rig.home.now + 2
    acts = rig.feed(Observed(now, meter=rig.home.observe().meter))
    stop = next(a for a in acts if isinstance(a, ChargerCommand))
    assert stop.mode is ChargerMode.STOPPED
    assert rig.engine.phase is Phase.STOPPING_FORMING
    acts = rig.feed(WriteConfirmed(now, stop.id))
    # Telemetry from *before* the confirmation showing 0 W does not count.
    old = ChargerTelemetry(now - 0.5, ChargerMode.STOPPED, 0.0, 70.0)
    acts += rig.feed(Observed(now + 0.1, charger=old))
    # Fresh telemetry that still shows power does not count either.
    busy = ChargerTelemetry(now + 0.2, ChargerMode.STOPPED, 3000.0, 70.0)
    acts += rig.feed(Observed(now + 0.2, charger=busy))
    assert not any(isinstance(a, RelayCommand) for a in acts)
    fresh = ChargerTelemetry(now + 0.3, ChargerMode.STOPPED, 0.0, 70.0)
    relay = RelayTelemetry(now + 0.3, RelayPosition.OPEN)
    acts = rig.feed(Observed(now + 0.3, relay=relay, charger=fresh))
    close = [a for a in acts if isinstance(a, RelayCommand)]
    assert len(close) == 1
    assert close[0].position is RelayPosition.CLOSED


def test_interlock_stops_the_charger_when_the_relay_reads_closed_while_forming() -> None:
    rig = _islanded_rig()
    now = rig.home.now + 0.5
    acts = rig.feed(Observed(now, relay=RelayTelemetry(now, RelayPosition.CLOSED)))
    stops = [a for a in acts if isinstance(a, ChargerCommand) and a.mode is ChargerMode.STOPPED]
    assert stops
    assert stops[0].reason.startswith("interlock")
    assert rig.engine.phase is Phase.FAULT


def test_reconnection_needs_the_utility_grid_connect_permit() -> None:
    rig = _islanded_rig()
    now = rig.home.now
    event = Event(
        mrid=MRID("AB01"),
        program="P",
        primacy=1,
        creation_time=now,
        start=now,
        duration=1800,
        controls=ControlSet(grid_connect_permit=False),
    )
    rig.feed(EventReceived(now, event))
    rig.home.grid.restore()
    rig.run(600)
    assert rig.engine.phase is Phase.ISLANDED
    assert "grid_connect_permit = false" in rig.engine.explain(Mode.GRID_CONNECT_PERMIT)
    rig.run(1200 + 305)
    assert rig.engine.phase is Phase.GRID_CONNECTED


def test_relay_that_fails_to_open_faults_with_charger_stopped() -> None:
    rig = Rig()
    rig.run(3)
    rig.home.relay.fail_to_open = True
    rig.home.grid.fail()
    rig.run(3)
    assert rig.engine.phase is Phase.FAULT
    assert rig.home.charger.mode is ChargerMode.STOPPED
    assert rig.home.violations == []
    assert any(isinstance(a, Alarm) and "relay" in a.message for a in rig.log)


def test_restart_mid_island_never_forms_before_the_relay_is_read_again() -> None:
    rig = _islanded_rig()
    rig.restart()
    now = rig.home.now + 1
    # First input after the restart carries no relay reading: nothing may form.
    charger = ChargerTelemetry(now, ChargerMode.STOPPED, 0.0, 70.0)
    acts = rig.feed(Observed(now, charger=charger))
    assert rig.engine.phase is Phase.ISLANDED
    assert not any(
        isinstance(a, ChargerCommand) and a.mode is ChargerMode.GRID_FORMING for a in acts
    )
    acts = rig.feed(Observed(now + 0.5, relay=RelayTelemetry(now + 0.5, RelayPosition.OPEN)))
    assert any(isinstance(a, ChargerCommand) and a.mode is ChargerMode.GRID_FORMING for a in acts)


@pytest.mark.parametrize(("load_v", "forms"), [(240.0, False), (3.0, True), (None, True)])
def test_an_open_relay_with_a_live_home_side_is_not_trusted(
    load_v: float | None, forms: bool
) -> None:
    # Found by the stateful test on the Modbus home: an auxiliary contact that reads OPEN while
    # the relay is closed. The home side's voltage is the second witness: live with nothing
    # forming means "not open" (a profile without a load-side voltage gives None: no witness).
    rig = _islanded_rig()
    rig.restart()
    now = rig.home.now + 1
    rig.feed(Observed(now, charger=ChargerTelemetry(now, ChargerMode.STOPPED, 0.0, 70.0)))
    relay = RelayTelemetry(now + 0.5, RelayPosition.OPEN, load_voltage_v=load_v)
    acts = rig.feed(Observed(now + 0.5, relay=relay))
    formed = any(isinstance(a, ChargerCommand) and a.mode is ChargerMode.GRID_FORMING for a in acts)
    assert formed is forms


def test_restart_does_not_repeat_acknowledged_responses() -> None:
    rig = Rig()
    now = rig.home.now
    event = Event(
        mrid=MRID("CD02"),
        program="P",
        primacy=1,
        creation_time=now,
        start=now + 10,
        duration=60,
        controls=ControlSet(export_limit_w=0.0),
        response_required=3,
    )
    rig.feed(EventReceived(now, event))
    rig.run(20)
    rig.restart()
    rig.run(100)
    codes = [a.code for a in rig.log if isinstance(a, NorthReport)]
    assert codes == [1, 2, 3]


def test_lowering_discharge_within_the_deadband_is_still_sent() -> None:
    rig = Rig()
    rig.run(3)
    rig.execute = False
    now = rig.home.now + 1
    idle = MeterTelemetry(now, 0.0, 240.0, 60.0, {"L1": 0.0, "L2": 0.0})
    rig.feed(ManualOverride(now, ControlSet(export_limit_w=1000.0)))
    rig.feed(Observed(now, meter=idle))
    last = [a for a in rig.log if isinstance(a, DerLimit)][-1]
    assert last.max_discharge_w == 1000.0  # no load: the export limit is the PV cap
    for c in [a for a in rig.log if isinstance(a, DerLimit | ChargerCommand)]:
        rig.feed(WriteConfirmed(now, c.id))
    # 10 W less is inside the 50 W deadband, but it is a *lower* cap: it must go out.
    acts = rig.feed(ManualOverride(now + 1, ControlSet(export_limit_w=990.0)))
    lowered = [a for a in acts if isinstance(a, DerLimit)]
    assert [a.max_discharge_w for a in lowered] == [990.0]
    # 10 W more is inside the deadband and raises the cap: not worth a write.
    for c in lowered:
        rig.feed(WriteConfirmed(now + 1, c.id))
    acts = rig.feed(ManualOverride(now + 2, ControlSet(export_limit_w=1000.0)))
    assert [a for a in acts if isinstance(a, DerLimit)] == []


def test_stale_meter_data_falls_back_to_the_static_allowance() -> None:
    rig = Rig()
    rig.run(3)
    rig.feed(Tick(rig.home.now + CONFIG.max_meter_age_s + 1))
    alloc = rig.engine.allocation
    assert alloc is not None
    assert alloc.stale
    assert alloc.allowance_w == pytest.approx(CONFIG.panel.static_allowance_w)


def test_invalid_site_configuration_lists_every_problem() -> None:
    bad = SiteConfig(
        panel=PanelRating(busbar_a=200, main_breaker_a=200),
        ders=(DerRating("pv", "pv", max_discharge_w=-5, max_charge_w=0),),
        charger_id="ev",
        step_timeout_s=0,
    )
    with pytest.raises(ConfigError) as err:
        Engine(bad, draw=lambda b: 0)
    text = str(err.value)
    assert "charger_id 'ev'" in text
    assert "step_timeout_s" in text
    assert "pv" in text


def test_an_absurd_default_is_refused_with_an_alarm_and_nothing_changes() -> None:
    rig = Rig()
    rig.run(2)
    now = rig.home.now
    acts = rig.feed(DefaultsReceived(now, "P", 1, ControlSet(export_limit_w=-5.0)))
    alarms = [a for a in acts if isinstance(a, Alarm)]
    assert alarms
    assert "export_limit_w must not be negative" in alarms[0].message
    assert "nothing in force" in rig.engine.explain(Mode.EXPORT_LIMIT_W)
    rig.feed(DefaultsReceived(now + 1, "P", 1, ControlSet(export_limit_w=800.0)))
    assert "utility default" in rig.engine.explain(Mode.EXPORT_LIMIT_W)


def test_a_stop_that_fails_at_once_is_retried_after_the_back_off_not_in_a_loop() -> None:
    # Found on the Modbus home: a charger whose transport is in reconnect back-off fails every
    # write instantly; the engine re-sent the stop for each failure, forever, in one cycle.
    from gateway.core.messages import WriteFailed

    rig = Rig()
    rig.run(3)
    execute = rig.home.execute

    def dead_charger(cmd: RelayCommand | ChargerCommand | DerLimit) -> Input:
        if isinstance(cmd, ChargerCommand):
            return WriteFailed(rig.home.now, cmd.id, "charger: unreachable")
        return execute(cmd)

    rig.home.execute = dead_charger  # type: ignore[method-assign]
    rig.log.clear()
    rig.home.grid.fail()
    rig.run(1)  # would never return before the fix
    stops = [c for c in rig.commands() if isinstance(c, ChargerCommand)]
    assert rig.engine.phase is Phase.FAULT
    assert 1 <= len(stops) <= 3
    rig.log.clear()
    rig.run(CONFIG.retry_after_s * 3)
    again = [c for c in rig.commands() if isinstance(c, ChargerCommand)]
    assert all(c.mode is ChargerMode.STOPPED for c in again)
    # One retry per back-off period, not one per input.
    assert 2 <= len(again) <= 4
    assert rig.home.violations == []


def _charger_setpoints(acts: list[Action]) -> list[float]:
    return [a.setpoint_w for a in acts if isinstance(a, ChargerCommand)]


def test_a_soc_target_charges_the_ev_towards_it_and_stops_discharge_at_it() -> None:
    rig = Rig()
    rig.home.charger.soc_pct = 50.0
    rig.run(3)
    rig.feed(ManualOverride(rig.home.now, ControlSet(soc_target_pct=80.0)))
    rig.run(2)
    # Below the target with nothing else asking for power: charge at the rating (capped by
    # the panel's import headroom, which is ample here).
    assert _charger_setpoints(rig.log)[-1] == -9_600.0
    assert "SoC target" in [a for a in rig.log if isinstance(a, ChargerCommand)][-1].reason
    # A discharge target is refused while the EV is at or below the SoC target ...
    rig.feed(ManualOverride(rig.home.now, ControlSet(soc_target_pct=80.0, target_w=3_000.0)))
    rig.run(2)
    assert _charger_setpoints(rig.log)[-1] == 0.0
    # ... and carried out once the EV is above it.
    rig.home.charger.soc_pct = 90.0
    rig.run(2)
    assert _charger_setpoints(rig.log)[-1] == 3_000.0


def test_a_soc_target_above_100_is_not_a_valid_control() -> None:
    assert ControlSet(soc_target_pct=101.0).problems() == [
        "soc_target_pct must be 0-100 %, got 101"
    ]


def test_assess_names_what_the_site_cannot_carry_out_and_never_refuses_a_limit() -> None:
    rig = Rig()
    rig.run(3)
    now = rig.home.now
    assert rig.engine.assess(ControlSet(export_limit_w=0.0, import_limit_w=0.0), now) == []
    assert rig.engine.assess(ControlSet(connect=False), now) == []
    assert rig.engine.assess(ControlSet(target_w=20_000.0), now) == [
        "target 20000 W is beyond the charger's rating (-9600..9600 W)"
    ]
    assert rig.engine.assess(ControlSet(export_limit_w=-1.0), now) == [
        "export_limit_w must not be negative, got -1"
    ]
    rig.home.charger.soc_pct = 10.0
    rig.run(1)
    assert rig.engine.assess(ControlSet(connect=False), rig.home.now) == [
        "cannot island: EV at 10 % (reserve 20 %)"
    ]
    rig.home.charger.ev_connected = False
    rig.run(1)
    assert rig.engine.assess(ControlSet(connect=False), rig.home.now) == [
        "cannot island: no EV connected to carry the home"
    ]
    # Stale charger telemetry: the engine cannot know.
    later = rig.home.now + CONFIG.telemetry_max_age_s + 1
    assert rig.engine.assess(ControlSet(connect=False), later) == [
        "cannot island: the charger is not reporting"
    ]
    # assess is a query: nothing was put in force.
    assert rig.engine.resolved.controls.connect is None


def _export_event(mrid: str, start: float, duration: float) -> Event:
    return Event(
        mrid=MRID(mrid),
        program="p",
        primacy=1,
        creation_time=start,
        start=start,
        duration=duration,
        controls=ControlSet(export_limit_w=1_000.0),
    )


def test_long_finished_events_are_forgotten_so_the_schedule_does_not_grow_for_ever() -> None:
    rig = Rig()
    rig.execute = False
    t0 = rig.home.now
    day = 86_400.0
    rig.feed(EventReceived(t0, _export_event("OLD", t0, 600)))
    rig.feed(EventReceived(t0 + 6 * day, _export_event("RECENT", t0 + 6 * day, 600)))
    assert rig.engine.schedule.get(MRID("OLD")) is not None
    acts = rig.feed(Tick(t0 + 7 * day + 601 + 3600))  # OLD ended over 7 days ago
    forgotten = [a for a in acts if isinstance(a, Forget)]
    # ... and the outbox forgets what it delivered before the same horizon (ALL-25-EXT).
    horizon = t0 + 7 * day + 601 + 3600 - rig.engine.config.event_retention_s
    assert forgotten == [
        Forget(Table.EVENT, "OLD"),
        Forget(Table.OUTBOX, "acknowledged", before=horizon),
    ]
    assert acts.index(forgotten[0]) < min(
        i for i, a in enumerate(acts) if not isinstance(a, Persist | Forget)
    )  # stored with the write-ahead records, before anything is acted on
    assert rig.engine.schedule.get(MRID("OLD")) is None
    assert rig.engine.schedule.get(MRID("RECENT")) is not None
    # RECENT goes at the next hourly scan after its own horizon; a second later, no scan.
    acts = rig.feed(Tick(t0 + 13 * day + 3600 + 602))
    assert [a for a in acts if isinstance(a, Forget) and a.table is Table.EVENT] == [
        Forget(Table.EVENT, "RECENT")
    ]
    assert [a for a in rig.feed(Tick(t0 + 13 * day + 3600 + 603)) if isinstance(a, Forget)] == []


# --------------------------------------------------------------------------- setSoftGradW

RATED_W = 7_000 + 9_600  # the site's DER rating: the reference of setGradW and setSoftGradW


def _pv_caps(rig: Rig, seconds: float) -> list[tuple[float, float, Phase]]:
    """(time, the PV's discharge cap, phase) for every PV limit sent over ``seconds``."""
    out: list[tuple[float, float, Phase]] = []
    end = rig.home.now + seconds
    while rig.home.now < end:
        rig.home.advance(rig.home.now + 1.0)
        acts = rig.feed(rig.home.observe())
        out.extend(
            (rig.home.now, a.max_discharge_w, rig.engine.phase)
            for a in acts
            if isinstance(a, DerLimit) and a.der_id == "pv"
        )
    return out


def _reconnected(soft_pct_s: float | None) -> tuple[Rig, list[tuple[float, float, Phase]]]:
    rig = _islanded_rig()
    controls = ControlSet(export_limit_w=20_000.0)
    if soft_pct_s is not None:
        controls = controls.with_(soft_start_rate_pct_s=soft_pct_s)
    rig.feed(DefaultsReceived(rig.home.now, "P", 1, controls))
    rig.home.grid.restore()
    caps = _pv_caps(rig, 400)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    return rig, caps


def test_BASIC_007_set_soft_grad_w_soft_starts_the_der_on_reconnection() -> None:
    rig, caps = _reconnected(soft_pct_s=1.0)  # 1 %/s of 16.6 kW: 166 W/s
    back = [(t, w) for t, w, phase in caps if phase is Phase.GRID_CONNECTED]
    t_in = back[0][0]
    assert back[0][1] <= 166.0  # from 0 W at entry (within one 1 s cycle)
    for t, w in back:
        assert w <= 166.0 * (t - t_in + 1) + 1e-6, (t - t_in, w)
    assert max(w for _, w in back) > 3000  # and it does rise
    assert rig.home.violations == []


def test_without_set_soft_grad_w_the_der_resume_at_once() -> None:
    _, caps = _reconnected(soft_pct_s=None)
    back = [w for _, w, phase in caps if phase is Phase.GRID_CONNECTED]
    assert back[0] > 1000


def test_energize_returning_to_true_soft_starts_the_der() -> None:
    rig = Rig()
    rig.feed(DefaultsReceived(T0, "P", 1, ControlSet(soft_start_rate_pct_s=1.0)))
    rig.run(3)
    rig.feed(ManualOverride(rig.home.now, ControlSet(energize=False)))
    rig.run(3)
    pv = [a for a in rig.commands() if isinstance(a, DerLimit) and a.der_id == "pv"]
    assert pv[-1].max_discharge_w == 0
    t_in = rig.home.now
    acts = rig.feed(ManualOverride(t_in, None))
    at_once = [a.max_discharge_w for a in acts if isinstance(a, DerLimit) and a.der_id == "pv"]
    assert at_once in ([], [0.0])
    caps = _pv_caps(rig, 20)
    assert caps
    for t, w, _ in caps:
        assert w <= 166.0 * (t - t_in) + 1e-6, (t - t_in, w)
    assert caps[-1][1] > 1000


# ------------------------------------------------ setESDelay, setESRandomDelay, setESRampTms

FLOOR_S = 60.0  # the installer's enter-service delay: the floor of a server's setESDelay
ES_CONFIG = replace(CONFIG, enter_service=EnterService(delay_s=FLOOR_S))


class _Draws:
    """An injected draw that records every bound it is asked for and answers ``answer(n)``."""

    def __init__(self, answer: Callable[[int], int] = lambda n: n) -> None:
        self.bounds: list[int] = []
        self.answer = answer

    def __call__(self, bound: int) -> int:
        self.bounds.append(bound)
        return self.answer(bound)


def _es_rig(controls: ControlSet | None, draw: Callable[[int], int] | None = None) -> Rig:
    rig = Rig(ES_CONFIG)
    if draw is not None:
        rig.engine = Engine(ES_CONFIG, draw=draw)
    if controls is not None:
        rig.feed(DefaultsReceived(T0, "P", 1, controls))
    rig.run(3)
    rig.home.grid.fail()
    rig.run(5)
    assert rig.engine.phase is Phase.ISLANDED
    return rig


def _waited(rig: Rig, step: float = 0.25, limit: float = 2000.0) -> float:
    """Restore the grid; how long the engine stayed in RECONNECT_WAIT before it went on."""
    rig.home.grid.restore()
    entered: float | None = None
    end = rig.home.now + limit
    while rig.home.now < end:
        rig.home.advance(rig.home.now + step)
        rig.feed(rig.home.observe())
        phase = rig.engine.phase
        if phase is Phase.RECONNECT_WAIT and entered is None:
            entered = rig.home.now
        elif phase is not Phase.RECONNECT_WAIT and entered is not None:
            return rig.home.now - entered
    raise AssertionError(f"still {rig.engine.phase} after {limit:g} s")


def _notes(rig: Rig, text: str) -> list[str]:
    return [a.message for a in rig.log if isinstance(a, Note) and text in a.message]


def test_set_es_delay_replaces_the_configured_enter_service_delay() -> None:
    rig = _es_rig(ControlSet(enter_service_delay_s=200.0))
    assert 200.0 <= _waited(rig) < 200.0 + 0.25 + 1e-6  # not the configured 60 s
    rig.run(20)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    assert rig.home.violations == []


def test_without_set_es_delay_the_configured_delay_holds() -> None:
    rig = _es_rig(None)
    assert FLOOR_S <= _waited(rig) < FLOOR_S + 0.25 + 1e-6


def test_a_set_es_delay_below_the_site_floor_is_raised_to_it_with_a_note() -> None:
    rig = _es_rig(ControlSet(enter_service_delay_s=5.0))
    assert FLOOR_S <= _waited(rig) < FLOOR_S + 0.25 + 1e-6  # not 5 s
    (note,) = _notes(rig, "setESDelay")
    assert "setESDelay 5 s is below the site's minimum 60 s" in note
    assert "raised to it" in note


def test_set_es_random_delay_is_drawn_once_per_entry_within_its_range() -> None:
    draws = _Draws(lambda n: n // 4)  # a quarter of the bound: 25 s of 100 s
    rig = _es_rig(
        ControlSet(enter_service_delay_s=100.0, enter_service_random_delay_s=100.0), draws
    )
    assert 125.0 <= _waited(rig) < 125.0 + 0.25 + 1e-6
    assert draws.bounds == [10_000]  # once for the whole wait, in hundredths of a second
    rig.run(20)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    # A second outage, a second entry: drawn again.
    rig.home.grid.fail()
    rig.run(5)
    assert rig.engine.phase is Phase.ISLANDED
    draws.answer = lambda n: n
    assert 200.0 <= _waited(rig) < 200.0 + 0.25 + 1e-6
    assert draws.bounds == [10_000, 10_000]


def test_a_wait_broken_by_the_grid_leaving_the_window_draws_again() -> None:
    draws = _Draws(lambda n: 0)
    rig = _es_rig(ControlSet(enter_service_random_delay_s=30.0), draws)
    rig.home.grid.restore()
    rig.run(10)
    assert rig.engine.phase is Phase.RECONNECT_WAIT
    assert draws.bounds == [3000]
    rig.home.grid.restore(voltage_v=265.0)  # out of the window: the wait starts again
    rig.run(2)
    assert rig.engine.phase is Phase.ISLANDED
    assert FLOOR_S <= _waited(rig) < FLOOR_S + 0.25 + 1e-6
    assert draws.bounds == [3000, 3000]


@pytest.mark.parametrize("seed", range(5))
def test_the_random_part_stays_within_its_range(seed: int) -> None:
    rng = random.Random(seed)
    rig = _es_rig(
        ControlSet(enter_service_random_delay_s=40.0),
        lambda b: rng.randint(min(0, b), max(0, b)),
    )
    waited = _waited(rig, step=0.1)
    assert FLOOR_S <= waited <= FLOOR_S + 40.0 + 0.1 + 1e-6
    (note,) = _notes(rig, "setESRandomDelay")
    assert "drawn in 0..40 s" in note


@pytest.mark.parametrize(
    ("controls", "reason"),
    [
        (ControlSet(enter_service_delay_s=2 * 86400.0), "enter_service_delay_s must be 0..86400"),
        (ControlSet(enter_service_random_delay_s=1e7), "enter_service_random_delay_s must be"),
        (ControlSet(enter_service_ramp_s=-1.0), "enter_service_ramp_s must be 0..86400"),
        (ControlSet(enter_service_delay_s=math.inf), "enter_service_delay_s must be"),
    ],
)
def test_absurd_enter_service_settings_are_refused_with_a_reason(
    controls: ControlSet, reason: str
) -> None:
    rig = Rig(ES_CONFIG)
    acts = rig.feed(DefaultsReceived(T0, "P", 1, controls))
    alarms = [a.message for a in acts if isinstance(a, Alarm) and a.code == "bad-default"]
    (why,) = [m for m in alarms if reason in m]
    assert "one day" in why
    assert rig.engine.resolved.controls == ControlSet()  # nothing of it in force


def _es_reconnected(controls: ControlSet) -> tuple[Rig, list[tuple[float, float]]]:
    rig = _es_rig(controls.with_(export_limit_w=20_000.0))
    rig.home.grid.restore()
    caps = _pv_caps(rig, 200)
    assert rig.engine.phase is Phase.GRID_CONNECTED
    return rig, [(t, w) for t, w, phase in caps if phase is Phase.GRID_CONNECTED]


def test_set_es_ramp_tms_ramps_the_der_output_up_over_the_ramp_time() -> None:
    rig, back = _es_reconnected(ControlSet(enter_service_ramp_s=100.0))  # 16.6 kW / 100 s
    rate = RATED_W / 100.0
    t_in = back[0][0]
    assert back[0][1] <= rate  # from 0 W at entry (within one 1 s cycle)
    for t, w in back:
        assert w <= rate * (t - t_in + 1) + 1e-6, (t - t_in, w)
    assert max(w for _, w in back) > 3000  # and it does rise
    assert rig.home.violations == []


def test_with_set_es_ramp_tms_and_set_soft_grad_w_the_slower_rate_applies() -> None:
    # setSoftGradW 2 %/s of 16.6 kW = 332 W/s; setESRampTms 100 s = 166 W/s: 166 W/s applies.
    controls = ControlSet(soft_start_rate_pct_s=2.0, enter_service_ramp_s=100.0)
    _, back = _es_reconnected(controls)
    t_in = back[0][0]
    for t, w in back:
        assert w <= RATED_W / 100.0 * (t - t_in + 1) + 1e-6, (t - t_in, w)
    # The other way round: setSoftGradW 0.5 %/s = 83 W/s is the slower one.
    _, back = _es_reconnected(ControlSet(soft_start_rate_pct_s=0.5, enter_service_ramp_s=100.0))
    t_in = back[0][0]
    for t, w in back:
        assert w <= 83.0 * (t - t_in + 1) + 1e-6, (t - t_in, w)
    assert max(w for _, w in back) > 1000


@pytest.mark.parametrize(
    ("direction", "soc", "asked", "device_w", "expected"),
    [
        # The demo site configured its EV at 9.6 kW on a 7.4 kW charger: setpoints above
        # 7.4 kW were refused by the driver.
        ("discharge", 90.0, 9_000.0, 7_400.0, 7_400.0),
        # The same for charging: a 6 kW charge rating caps what the charger is asked to absorb.
        ("charge", 50.0, -9_000.0, 6_000.0, -6_000.0),
    ],
)
def test_a_device_rating_below_the_configured_one_caps_what_the_der_is_asked_for(
    direction: Direction, soc: float, asked: float, device_w: float, expected: float
) -> None:
    """The rating in force (min of configured and the device's, each direction) is what the
    allocator hands out; the configuration alone still gives what was asked."""
    targets = []
    for reported in (None, device_w):
        rig = Rig()
        rig.home.charger.soc_pct = soc
        rig.run(3)
        if reported is not None:
            rig.feed(DerRated(rig.home.now, "ev", reported, direction))
        rig.feed(ManualOverride(rig.home.now, ControlSet(target_w=asked)))
        rig.run(3)
        targets.append(_charger_setpoints(rig.log)[-1])
    assert targets == [asked, expected]


@pytest.mark.parametrize("drops", [1, 3, 10_000])
def test_a_relay_command_failed_on_the_link_is_retried_within_the_step(drops: int) -> None:
    """A relay that did not answer (connection lost, no reply) during OPENING_RELAY: the open is
    re-sent every STEP_RETRY_S until the step's own timeout, then FAULT. Before, the first such
    failure latched FAULT: a home whose devices had just come back stayed dark."""
    rig = Rig()
    rig.run(3)
    plant = rig.home.execute
    left = [drops]

    def flaky(cmd: RelayCommand | ChargerCommand | DerLimit) -> WriteConfirmed | WriteFailed:
        if isinstance(cmd, RelayCommand) and cmd.position is RelayPosition.OPEN and left[0] > 0:
            left[0] -= 1
            return WriteFailed(rig.home.now, cmd.id, "relay: connection refused", transient=True)
        return plant(cmd)

    rig.home.execute = flaky  # type: ignore[method-assign]
    rig.home.grid.fail()
    rig.run(0.2 * min(drops, 5) + 4, step=0.2)
    opens = [c for c in rig.commands() if isinstance(c, RelayCommand)]
    retrying = [a for a in rig.log if isinstance(a, Alarm) and a.message.endswith("; retrying")]
    if drops < 10_000:
        assert rig.engine.phase in (Phase.FORMING, Phase.ISLANDED), rig.engine.phase
        assert len(opens) == drops + 1
        assert len(retrying) == drops
        # Re-sent after the pause, not on every input (the run feeds one every 0.2 s).
        sent_at = [a.at for a in rig.log if isinstance(a, Alarm) and a in retrying]
        assert all(b - a >= STEP_RETRY_S - 1e-9 for a, b in itertools.pairwise(sent_at))
    else:
        rig.run(CONFIG.step_timeout_s, step=0.2)
        assert rig.engine.phase is Phase.FAULT
        assert rig.home.charger.mode is ChargerMode.STOPPED
        # Bounded by the step: about one attempt per STEP_RETRY_S, no more.
        assert len(opens) <= CONFIG.step_timeout_s / STEP_RETRY_S + 2
    assert rig.home.violations == []


def test_a_device_refusal_in_a_step_still_faults_at_once() -> None:
    rig = Rig()
    rig.run(3)
    plant = rig.home.execute

    def refuses(cmd: RelayCommand | ChargerCommand | DerLimit) -> WriteConfirmed | WriteFailed:
        if isinstance(cmd, RelayCommand) and cmd.position is RelayPosition.OPEN:
            return WriteFailed(rig.home.now, cmd.id, "relay: Modbus exception 4 (device failure)")
        return plant(cmd)

    rig.home.execute = refuses  # type: ignore[method-assign]
    rig.home.grid.fail()
    rig.run(2, step=0.2)
    assert rig.engine.phase is Phase.FAULT
    assert len([c for c in rig.commands() if isinstance(c, RelayCommand)]) == 1


@pytest.mark.parametrize("target_w", [None, -2000.0], ids=["idle", "charging"])
def test_a_charger_listed_first_leaves_the_export_headroom_to_the_pv(
    target_w: float | None,
) -> None:
    # The allocator's box reserves headroom for each DER's whole discharge, in order: with
    # the charger first, an idle or charging EV took the export limit's 1 kW and the PV was
    # held at 0 W (charging from solar under an export limit: from the grid instead).
    ev_first = replace(CONFIG, ders=tuple(reversed(CONFIG.ders)))
    rig = Rig(ev_first)
    rig.run(3)
    rig.execute = False
    now = rig.home.now + 1
    idle = MeterTelemetry(now, 0.0, 240.0, 60.0, {"L1": 0.0, "L2": 0.0})
    rig.feed(ManualOverride(now, ControlSet(export_limit_w=1000.0, target_w=target_w)))
    rig.feed(Observed(now, meter=idle))
    alloc = rig.engine.allocation
    assert alloc is not None
    assert alloc.cap("pv").max_discharge_w == 1000.0  # no load: the export limit is the PV's
    assert alloc.cap("ev").max_discharge_w == 0.0  # what is left, as before: the box holds
    assert alloc.cap("ev").max_charge_w == 9600.0  # the charge order is untouched
    # A discharge target for the EV puts it back in its place: first in the configured order.
    rig.feed(ManualOverride(now + 1, ControlSet(export_limit_w=1000.0, target_w=500.0)))
    rig.feed(Observed(now + 1, meter=idle))
    alloc = rig.engine.allocation
    assert alloc is not None
    assert alloc.cap("ev").max_discharge_w > 0.0


def test_a_charger_charging_to_a_soc_target_leaves_the_export_headroom_to_the_pv() -> None:
    """EV listed before the PV, a 0 W export limit, and a state-of-charge target above the EV's
    charge (an OpenADR 3 or homeowner "charge to 100 %"): the EV will charge, not discharge,
    so it takes discharge headroom after the PV; the PV covers the house and the charging
    (found by the demo: the PV was held at 0 W while the home imported for the EV)."""
    ev = DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600)
    pv = DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0)
    config = replace(CONFIG, ders=(ev, pv), site_policy=ControlSet(export_limit_w=0.0))
    rig = Rig(config)
    rig.run(5)
    assert rig.home.charger.soc_pct < 100
    rig.feed(ManualOverride(rig.home.now, ControlSet(soc_target_pct=100.0)))
    rig.run(10)
    pv_caps = [c.max_discharge_w for c in rig.commands() if isinstance(c, DerLimit)]
    assert pv_caps[-1] > 1000, pv_caps[-5:]
    assert rig.home.violations == []
