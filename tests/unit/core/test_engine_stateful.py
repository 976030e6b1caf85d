"""Hypothesis stateful tests of the engine's safety invariants.

The machine feeds the engine random sequences of utility events, cancellations, defaults,
homeowner overrides, telemetry (including outages and stale data), write confirmations and
failures, north-link loss, fault resets, restarts (with and without the last write-ahead batch)
and time jumps. After every step it checks, against facts the *test* fed in (not the engine's
own view):

1. the charger is never commanded to form a grid unless the relay reads confirmed open;
2. the relay is never commanded closed while the charger is forming or its power unconfirmed;
3. the commanded backfeed never exceeds the allowance in force, and never exceeds the static
   safe allowance when meter data is stale;
4. every accepted event gets its response sequence exactly once (checked to the end in teardown);
5. every fault reset is audited exactly once, and one is accepted only from FAULT, with the relay
   read back open or closed within the telemetry age (open only with the home side dead) and
   the charger reporting, since its confirmed stop, no fault, stopped at zero power.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import (
    Action,
    ChargerCommand,
    ChargerTelemetry,
    DefaultsReceived,
    DerLimit,
    DerTelemetry,
    DeviceCommand,
    EventCancelled,
    EventReceived,
    FaultReset,
    Forget,
    Input,
    ManualOverride,
    MeterTelemetry,
    NorthLinkLost,
    NorthLinkRestored,
    NorthReport,
    Note,
    Observed,
    Persist,
    RelayCommand,
    RelayTelemetry,
    Table,
    Tick,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.schedule import Event
from gateway.core.site import SiteConfig
from gateway.core.units import MRID

# Hundreds of steps on a shared 2-core machine under -n 4: slow is not hung. The suite's
# 120 s timeout cut one run mid-example, which Hypothesis then reported as flaky data.
pytestmark = pytest.mark.timeout(600)

T0 = 1_800_000_000.0
EPS = 1e-6

CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("bat", "battery", max_discharge_w=5_000, max_charge_w=5_000),
    ),
    charger_id="ev",
)

controls_st = st.builds(
    ControlSet,
    connect=st.none() | st.booleans(),
    energize=st.none() | st.booleans(),
    island_permit=st.none() | st.booleans(),
    grid_connect_permit=st.none() | st.booleans(),
    export_limit_w=st.none() | st.floats(0, 20_000),
    generation_limit_w=st.none() | st.floats(0, 20_000),
    target_w=st.none() | st.floats(-10_000, 10_000),
).filter(lambda cs: not cs.is_empty())

# Grid voltages: healthy, slightly off (outside enter-service, not an outage), and dead.
grid_v_st = st.sampled_from([240.0, 240.0, 232.0, 215.0, 0.0, 300.0])
grid_f_st = st.sampled_from([60.0, 60.0, 59.9, 59.0, 0.0])


@dataclass
class Facts:
    """What the test itself told the engine about the world."""

    relay: tuple[RelayPosition, float] | None = None
    relay_v: float | None = None  # the home-side voltage read with ``relay`` (None: not read)
    charger: ChargerTelemetry | None = None
    meter_at: float | None = None


class EngineMachine(RuleBasedStateMachine):
    # The site under test; a subclass draws random ones (tests/unit/runtime).
    config: SiteConfig = CONFIG

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.rng = random.Random(0)
        self.events_docs: dict[str, dict[str, object]] = {}
        self.state_docs: dict[str, dict[str, object]] = {}
        self.engine = self._new_engine()
        self.facts = Facts()
        self.pending: dict[str, DeviceCommand] = {}
        self.last_cmd: dict[str, DeviceCommand] = {}
        self.charger_confirmed_stop_at: float | None = None
        self.reports: dict[str, NorthReport] = {}
        self.accepted: dict[str, int] = {}  # mrid -> responseRequired of accepted events
        self.offered = 0
        self.resets = 0
        self._undo: tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]] | None = None
        self._last_actions: list[Action] = []
        self.grid_up = True
        self.plant_relay = RelayPosition.CLOSED
        self.plant_charger: ChargerCommand | None = None
        self.plant_stuck = False
        self.plant_ev = True

    def _new_engine(self) -> Engine:
        return Engine(
            self.config,
            draw=lambda b: self.rng.randint(min(0, b), max(0, b)),
            events=list(self.events_docs.values()),
            state=self.state_docs,
        )

    # --- plumbing -------------------------------------------------------------------------

    def feed(self, inp: Input) -> list[Action]:
        self._undo = (
            {k: dict(v) for k, v in self.events_docs.items()},
            {k: dict(v) for k, v in self.state_docs.items()},
        )
        actions = self.engine.handle(inp)
        self._last_actions = actions
        # Shown by --hypothesis-show-statistics: proves the walk reaches the deep phases.
        event(f"phase {self.engine.phase.value}")
        seen_non_persist = False
        for a in actions:
            if isinstance(a, Persist):
                assert not seen_non_persist, "persist actions must come first (write-ahead)"
                if a.table is Table.EVENT:
                    self.events_docs[a.key] = dict(a.doc)
                elif a.table is Table.STATE:
                    self.state_docs[a.key] = dict(a.doc)
            elif isinstance(a, Forget):  # persistence too: stored in the same transaction
                assert not seen_non_persist, "forget actions must come first (write-ahead)"
                if a.table is Table.EVENT:
                    self.events_docs.pop(a.key, None)
            else:
                seen_non_persist = True
        for a in actions:
            self._check(a)
        return actions

    def _check(self, a: Action) -> None:
        now = self.now
        if isinstance(a, ChargerCommand | RelayCommand | DerLimit):
            device = _device(a)
            if device in self.last_cmd:  # a newer command supersedes the one in flight
                self.pending.pop(self.last_cmd[device].id, None)
            self.last_cmd[device] = a
            self.pending[a.id] = a
        if isinstance(a, ChargerCommand) and a.mode is ChargerMode.GRID_FORMING:
            # Invariant 1.
            assert self.facts.relay is not None, "forming commanded with the relay never read"
            pos, at = self.facts.relay
            assert pos is RelayPosition.OPEN, f"forming commanded with relay {pos}"
            assert now - at <= self.config.telemetry_max_age_s + EPS, (
                "forming on a stale relay read"
            )
        if isinstance(a, ChargerCommand) and a.mode is not ChargerMode.STOPPED:
            self.charger_confirmed_stop_at = None
        if isinstance(a, RelayCommand) and a.position is RelayPosition.CLOSED:
            # Invariant 2.
            c = self.facts.charger
            stop_at = self.charger_confirmed_stop_at
            assert stop_at is not None, "relay closed without a confirmed charger stop"
            last = self.last_cmd.get("charger")
            assert isinstance(last, ChargerCommand)
            assert last.mode is ChargerMode.STOPPED, "relay closed while charger not stopped"
            assert c is not None, "relay closed with no charger telemetry"
            assert c.at >= stop_at, "relay closed on charger telemetry older than the stop"
            assert now - c.at <= self.config.telemetry_max_age_s + EPS, "stale charger telemetry"
            assert c.mode is ChargerMode.STOPPED, f"relay closed while charger {c.mode}"
            assert abs(c.power_w) <= self.config.zero_power_tolerance_w, "charger power not zero"
        if isinstance(a, NorthReport):
            assert a.key not in self.reports, f"report {a.key} emitted twice"
            self.reports[a.key] = a
            if a.code == 1:
                self.accepted.setdefault(a.subject, 0)

    # --- rules ----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.feed(Tick(self.now))

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.0, 4.0, 7.0, 30.0, 301.0, 2000.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.feed(Tick(self.now))

    @rule(
        v=grid_v_st, f=grid_f_st, net=st.floats(-15_000, 15_000), lag=st.sampled_from([0, 0, 3, 9])
    )
    def meter(self, v: float, f: float, net: float, lag: float) -> None:
        at = self.now - lag
        self.facts.meter_at = max(self.facts.meter_at or at, at)
        amps = abs(net) / 240
        m = MeterTelemetry(at, net, v, f, {"L1": amps, "L2": amps})
        self.feed(Observed(self.now, meter=m))

    @rule(
        pos=st.sampled_from(RelayPosition),
        lag=st.sampled_from([0, 0, 2, 8]),
        load_v=st.sampled_from([None, None, 0.0, 240.0]),
    )
    def relay(self, pos: RelayPosition, lag: float, load_v: float | None) -> None:
        at = self.now - lag
        if self.facts.relay is None or at >= self.facts.relay[1]:
            self.facts.relay = (pos, at)
            self.facts.relay_v = load_v
        self.feed(Observed(self.now, relay=RelayTelemetry(at, pos, load_v)))

    @rule(
        mode=st.sampled_from(ChargerMode),
        power=st.sampled_from([0.0, 10.0, 3000.0, -2000.0]),
        soc=st.sampled_from([5.0, 50.0, 90.0]),
        ev=st.booleans(),
        lag=st.sampled_from([0, 0, 8]),
        fault=st.sampled_from([False, False, False, True]),
    )
    def charger(
        self, mode: ChargerMode, power: float, soc: float, ev: bool, lag: float, fault: bool
    ) -> None:
        t = ChargerTelemetry(self.now - lag, mode, power, soc, ev, fault)
        if self.facts.charger is None or t.at >= self.facts.charger.at:
            self.facts.charger = t
        self.feed(Observed(self.now, charger=t))

    @rule(der=st.sampled_from(["pv", "bat"]), power=st.floats(-5000, 7000))
    def der_output(self, der: str, power: float) -> None:
        self.feed(Observed(self.now, ders=(DerTelemetry(self.now, der, power),)))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.pending)))
        cmd = self.pending.pop(cid)
        if isinstance(cmd, RelayCommand):
            self.facts.relay = (cmd.position, self.now)
            self.facts.relay_v = None
        if isinstance(cmd, ChargerCommand) and self.last_cmd.get("charger") is cmd:
            self.charger_confirmed_stop_at = self.now if cmd.mode is ChargerMode.STOPPED else None
        self.feed(WriteConfirmed(self.now, cid))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.pending)))
        cmd = self.pending.pop(cid)
        if isinstance(cmd, RelayCommand):
            self.facts.relay = None  # a failed relay write leaves its position unknown
        # The device's own refusal, or a link that did not answer (retried inside a step).
        if data.draw(st.booleans()):
            self.feed(WriteFailed(self.now, cid, "connection refused", transient=True))
        else:
            self.feed(WriteFailed(self.now, cid, "Modbus exception 4 (device failure)"))

    @rule(
        controls=controls_st,
        primacy=st.integers(0, 3),
        start=st.sampled_from([-100.0, 0.0, 5.0, 60.0, 600.0]),
        duration=st.sampled_from([1.0, 30.0, 300.0, 3600.0]),
        rr=st.sampled_from([0, 1, 3]),
        rand=st.sampled_from([0, 0, 30, -30]),
    )
    def utility_event(
        self, controls: ControlSet, primacy: int, start: float, duration: float, rr: int, rand: int
    ) -> None:
        self.offered += 1
        ev = Event(
            mrid=MRID(f"{self.offered:032X}"),
            program=f"P{primacy % 2}",
            primacy=primacy,
            creation_time=self.now,
            start=self.now + start,
            duration=duration,
            controls=controls,
            randomize_start=rand,
            response_required=rr,
            reply_to="/rsp",
        )
        self.feed(EventReceived(self.now, ev))
        if any(r.subject == ev.mrid and r.code == 1 for r in self.reports.values()):
            self.accepted[ev.mrid] = rr

    @rule(up=st.booleans())
    def grid(self, up: bool) -> None:
        self.grid_up = up

    @rule(kind=st.sampled_from(["relay-flips", "charger-stuck", "ev-leaves", "ev-returns"]))
    def home_misbehaves(self, kind: str) -> None:
        """The cooperative home goes wrong: a relay that moves on its own, a charger that
        ignores commands (keeps forming or discharging), an EV unplugged mid-island."""
        if kind == "relay-flips":
            self.plant_relay = (
                RelayPosition.CLOSED
                if self.plant_relay is RelayPosition.OPEN
                else RelayPosition.OPEN
            )
        elif kind == "charger-stuck":
            self.plant_stuck = not self.plant_stuck
        else:
            self.plant_ev = kind == "ev-returns"

    # (rounds, seconds per round); 155 x 2 s outlasts the 300 s enter-service delay.
    @rule(pace=st.sampled_from([(1, 0.2), (2, 1.0), (4, 1.0), (155, 2.0)]))
    def cooperative_home(self, pace: tuple[int, float]) -> None:
        """A home that does what it is told: confirms every write and reports coherent
        telemetry. Without it, random walks rarely get through a whole islanding sequence."""
        rounds, dt = pace
        for _ in range(rounds):
            for cid in sorted(self.pending):
                if cid in self.pending:
                    cmd = self.pending.pop(cid)
                    if isinstance(cmd, RelayCommand):
                        self.facts.relay = (cmd.position, self.now)
                        self.facts.relay_v = None
                        self.plant_relay = cmd.position
                    if isinstance(cmd, ChargerCommand):
                        # A stuck charger acknowledges the register write but does not act.
                        if not self.plant_stuck:
                            self.plant_charger = cmd
                        if self.last_cmd.get("charger") is cmd:
                            stop = cmd.mode is ChargerMode.STOPPED
                            self.charger_confirmed_stop_at = self.now if stop else None
                    self.feed(WriteConfirmed(self.now, cid))
            self.now += dt
            mode = self.plant_charger.mode if self.plant_charger else ChargerMode.STOPPED
            power = 0.0
            if self.plant_charger is not None and mode is ChargerMode.GRID_FOLLOWING:
                power = self.plant_charger.setpoint_w
            if mode is ChargerMode.GRID_FORMING:
                power = 1500.0
            charger = ChargerTelemetry(self.now, mode, power, 60.0, self.plant_ev)
            self.facts.charger = charger
            self.facts.relay = (self.plant_relay, self.now)
            self.facts.relay_v = None
            self.facts.meter_at = self.now
            v, f = (240.0, 60.0) if self.grid_up else (0.0, 0.0)
            meter = MeterTelemetry(self.now, 1000.0, v, f, {"L1": 4.0, "L2": 4.0})
            relay = RelayTelemetry(self.now, self.plant_relay)
            self.feed(Observed(self.now, meter=meter, relay=relay, charger=charger))

    @precondition(lambda self: self.offered)
    @rule(data=st.data(), randomized=st.booleans())
    def cancel(self, data: st.DataObject, randomized: bool) -> None:
        n = data.draw(st.integers(1, self.offered))
        self.feed(EventCancelled(self.now, MRID(f"{n:032X}"), randomized))

    @rule(controls=st.none() | controls_st)
    def default(self, controls: ControlSet | None) -> None:
        self.feed(DefaultsReceived(self.now, "P0", 1, controls))

    @rule(
        controls=st.none()
        | st.sampled_from([ControlSet(connect=False), ControlSet(export_limit_w=0.0)])
    )
    def homeowner(self, controls: ControlSet | None) -> None:
        self.feed(ManualOverride(self.now, controls))

    @rule(up=st.booleans())
    def north_link(self, up: bool) -> None:
        self.feed(
            NorthLinkRestored(self.now, "sep2")
            if up
            else NorthLinkLost(self.now, "sep2", "TLS handshake timed out")
        )

    @rule()
    def reset(self) -> None:
        before = self.engine.phase
        # The facts as they were when the reset arrived (an accepted one issues new commands).
        stop_at = self.charger_confirmed_stop_at
        self.resets += 1
        request = f"r{self.resets}"
        actions = self.feed(FaultReset(self.now, "installer", request))
        audits = [
            a.doc
            for a in actions
            if isinstance(a, Persist) and a.table is Table.AUDIT and a.doc["point"] == "fault_reset"
        ]
        # Invariant 5.
        assert len(audits) == 1, f"a reset audited {len(audits)} times"
        assert audits[0]["correlation_id"] == request
        outcome = self.engine.last_reset
        assert outcome is not None
        assert outcome.request == request
        accepted = str(audits[0]["outcome"]).startswith("accepted")
        assert accepted is outcome.accepted
        event(f"reset {'accepted' if accepted else 'refused'} in {before.value}")
        if not accepted:
            assert self.engine.phase is before, "a refused reset moved the machine"
            return
        assert before is Phase.FAULT, f"reset accepted in {before.value}"
        assert self.engine.phase is not Phase.FAULT or self._faulted_again(actions)
        now = self.now
        assert self.facts.relay is not None, "reset accepted with the relay never read"
        pos, at = self.facts.relay
        assert pos in (RelayPosition.OPEN, RelayPosition.CLOSED), f"reset accepted, relay {pos}"
        assert now - at <= self.config.telemetry_max_age_s + EPS, "reset accepted on a stale relay"
        v = self.facts.relay_v
        if pos is RelayPosition.OPEN:
            assert v is None or v < self.config.dead_bus_v, "reset accepted, open relay, home live"
        c = self.facts.charger
        assert c is not None, "reset accepted with no charger telemetry"
        assert stop_at is not None, "reset accepted without a confirmed charger stop"
        assert c.at >= stop_at, "reset accepted on charger telemetry older than the stop"
        assert now - c.at <= self.config.telemetry_max_age_s + EPS, "reset accepted, stale charger"
        assert not c.fault, "reset accepted while the charger reports a fault"
        assert c.mode is ChargerMode.STOPPED, f"reset accepted while the charger is {c.mode}"
        assert abs(c.power_w) <= self.config.zero_power_tolerance_w, "reset accepted, charger power"

    @staticmethod
    def _faulted_again(actions: list[Action]) -> bool:
        notes = [a.message for a in actions if isinstance(a, Note)]
        return sum("-> fault:" in n for n in notes) > 0

    @rule(lose_last_batch=st.booleans())
    def restart(self, lose_last_batch: bool) -> None:
        """SIGKILL and start again from what was persisted."""
        if lose_last_batch and self._undo is not None:
            # Killed before the last write-ahead transaction committed: nothing of that batch
            # happened, including its device commands and reports.
            self.events_docs, self.state_docs = self._undo
            for a in self._last_actions:
                if isinstance(a, NorthReport):
                    self.reports.pop(a.key, None)
                    if a.code == 1:
                        self.accepted.pop(a.subject, None)
                if isinstance(a, RelayCommand | ChargerCommand | DerLimit):
                    self.pending.pop(a.id, None)
        self._undo = None
        self._last_actions = []
        self.engine = self._new_engine()
        # In-flight commands die with the process: their confirmations never arrive.
        self.pending.clear()
        self.last_cmd.clear()
        self.charger_confirmed_stop_at = None
        self.feed(Tick(self.now))

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def backfeed_within_allowance(self) -> None:
        alloc = self.engine.allocation
        if alloc is None:
            return
        total = 0.0
        for cmd in self.last_cmd.values():
            if isinstance(cmd, DerLimit):
                total += max(0.0, cmd.max_discharge_w)
            elif isinstance(cmd, ChargerCommand) and cmd.mode is ChargerMode.GRID_FOLLOWING:
                total += max(0.0, cmd.setpoint_w)
        assert total <= alloc.allowance_w + EPS, (
            f"commanded {total} W > allowance {alloc.allowance_w} W"
        )
        stale = (
            self.facts.meter_at is None
            or self.now - self.facts.meter_at > self.config.max_meter_age_s
        )
        if stale:
            assert alloc.stale
            static_w = self.config.panel.static_allowance_w
            assert total <= static_w + EPS, (
                f"stale meter: commanded {total} W > static {static_w} W"
            )

    @invariant()
    def response_sequences_legal(self) -> None:
        by_subject: dict[str, list[int]] = {}
        for r in self.reports.values():
            by_subject.setdefault(r.subject, []).append(r.code)
        for subject, codes in by_subject.items():
            assert len(codes) == len(set(codes)), f"{subject}: duplicate codes {codes}"
            terminal = [c for c in codes if c in (3, 6, 7, 252, 253, 254)]
            assert len(terminal) <= 1, f"{subject}: more than one final response {codes}"
            if 3 in codes:
                assert 2 in codes, f"{subject}: completed without starting {codes}"

    def teardown(self) -> None:
        # Run the clock past every event: each accepted event must end exactly once.
        self.now += 3 * 86400
        self.feed(Tick(self.now))
        by_subject: dict[str, list[int]] = {}
        for r in self.reports.values():
            by_subject.setdefault(r.subject, []).append(r.code)
        for mrid, rr in self.accepted.items():
            codes = by_subject.get(mrid, [])
            if rr & 0x02:
                finals = [c for c in codes if c in (3, 6, 7)]
                assert len(finals) == 1, f"{mrid}: final responses {codes}"


def _device(cmd: DeviceCommand) -> str:
    if isinstance(cmd, RelayCommand):
        return "relay"
    if isinstance(cmd, ChargerCommand):
        return "charger"
    return f"der:{cmd.der_id}"


EngineMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineSafety = EngineMachine.TestCase
