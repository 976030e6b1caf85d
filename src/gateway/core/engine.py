"""The engine: inputs + telemetry + time in, device commands, reports, alarms and writes out.

``Engine.handle(input) -> list[Action]`` is the whole interface. Each call folds the input into
the engine's view, then runs one control cycle:

1. the schedule advances and owed responses go to the outbox;
2. every source's controls are resolved into the set in force (:mod:`gateway.core.resolve`);
3. the islanding machine takes every transition whose guard holds (:mod:`gateway.core.island`);
4. the interlocks are checked, on every cycle, whatever the phase;
5. device commands are derived from what the phase wants, clamped by the backfeed caps and
   guarded by the interlocks; only changes are sent.

Persist actions come first in the returned list: the shell stores them (one transaction) before
it acts on the rest, so that a crash never leaves a device step done but unrecorded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from gateway.core import island
from gateway.core.backfeed import (
    Allocation,
    DerOutput,
    DerRating,
    Limits,
    MeterReading,
    allocate,
)
from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.island import (
    STEP_PHASES,
    WANTS,
    ChargerMode,
    IslandState,
    Phase,
    RelayPosition,
    Trigger,
)
from gateway.core.messages import (
    REASONS_JOINED_BY,
    Action,
    Alarm,
    BackupReserveSet,
    ChargerCommand,
    ChargerTelemetry,
    DefaultsReceived,
    DerLimit,
    DerRated,
    DeviceCommand,
    EventCancelled,
    EventReceived,
    EventRejected,
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
    ProgramsRanked,
    RelayCommand,
    RelayTelemetry,
    ReportAcked,
    ResetOutcome,
    Severity,
    Table,
    Tick,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.ramp import Ramps, entry_rate, step_of
from gateway.core.ratings import in_force
from gateway.core.resolve import Claim, Resolved, claims_of, resolve
from gateway.core.schedule import EventRecord, ResponseDue
from gateway.core.schedules import Schedules, link_rank
from gateway.core.site import SiteConfig
from gateway.core.units import Timestamp, iso

ISLAND_KEY = "island"
ENGINE_KEY = "engine"
DEFAULTS_KEY = "defaults"
MANUAL_KEY = "manual"
RESERVE_KEY = "backup_reserve"  # the homeowner's reserve, over the site file's
PRUNE_EVERY_S = 3600.0
INERT_AFTER_S = 10.0  # a finished event's part in re-planning ends this long after it


@dataclass(slots=True)
class _Sent:
    """The last command sent to one device, and what became of it."""

    command: DeviceCommand
    at: Timestamp
    confirmed_at: Timestamp | None = None
    failed: str | None = None


def report_key(origin: str, subject: str, code: int) -> str:
    return f"{origin}|{subject}|{code}"


class Engine:
    """The protocol-neutral decision maker. Pure: no I/O, no clock, no randomness of its own."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        draw: Callable[[int], int],
        events: Iterable[Mapping[str, Any]] = (),
        state: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config.validated()
        state = state or {}
        # One schedule per north link (core.schedules). It asks them about now only, so
        # finished records stop costing a change INERT_AFTER_S after their end
        # (``Schedule._rebuild``).
        self.schedule = Schedules(
            draw=draw, supported_modes=config.supported_modes, inert_after_s=INERT_AFTER_S
        )
        self._draw = draw  # also setESRandomDelay's, once per enter-service wait
        records = [EventRecord.from_dict(dict(doc)) for doc in events]
        if records:
            self.schedule.restore(records)
        if DEFAULTS_KEY in state:
            self.schedule.restore_defaults(dict(state[DEFAULTS_KEY]))
        self.island = (
            IslandState.from_dict(dict(state[ISLAND_KEY])) if ISLAND_KEY in state else None
        )
        reserve = state.get(RESERVE_KEY, {}).get("soc_pct")
        if isinstance(reserve, int | float) and 0 <= reserve <= 100:
            self.config = replace(self.config, backup_reserve_soc_pct=float(reserve))
        self.last_reserve: bool | None = None  # whether the last BackupReserveSet was taken
        manual = state.get(MANUAL_KEY, {}).get("controls")
        self.manual: ControlSet | None = None if manual is None else ControlSet.from_dict(manual)
        # A new boot number keeps command ids unique across restarts.
        self._boot = int(state.get(ENGINE_KEY, {}).get("boot", 0)) + 1
        self._boot_persisted = False
        self._seq = 0
        self._relay: tuple[RelayPosition, Timestamp] | None = None
        self._relay_seen: RelayTelemetry | None = None  # the reading behind _relay, as read
        self._charger: ChargerTelemetry | None = None
        self._meter: MeterTelemetry | None = None
        self._der_out: dict[str, DerOutput] = {}
        self._sent: dict[str, _Sent] = {}  # device key -> last command
        self._by_id: dict[str, str] = {}  # command id -> device key
        self._retry_at: dict[str, Timestamp] = {}
        self._links_down: dict[str, str] = {}
        self.resolved: Resolved = resolve({})
        self.allocation: Allocation | None = None
        self.ramps = Ramps()  # rampTms: new limits reached over time, not as a step
        # Each DER's setpoint_interval_s (its profile's [pacing]; ``pace``): how often a ramp
        # may write it. The ramps step at the slowest (core/ramp.py, Pacing).
        self.setpoint_interval_s: dict[str, float] = {}
        self._pruned_at = -math.inf
        # setGradW's reference: the site's DER rating (what DERSettings reports as setMaxW).
        # Each DER's rating in force: min(configured, the device's own; core.ratings).
        # The charge ratings likewise (reported as rtgMaxChargeRateW, and the allocator's
        # charge caps).
        self.device_rated_w: dict[str, float] = {}
        self.device_charge_w: dict[str, float] = {}
        self._rerate()
        self._last_decisions: dict[Mode, str] = {}
        # The enter-service wait in progress: (setESDelay, setESRandomDelay, the random part
        # drawn for it), or None before its first cycle. Not persisted, like the ramps.
        self._es_wait: tuple[float | None, float, float] | None = None
        self.last_reset: ResetOutcome | None = None  # the answer to the last FaultReset

    # -----------------------------------------------------------------------------------------
    # The one entry point

    def handle(self, event: Input) -> list[Action]:
        now = event.at
        out: list[Action] = []
        if not self._boot_persisted:
            self._boot_persisted = True
            out.append(Persist(Table.STATE, ENGINE_KEY, {"boot": self._boot}))
        if self.island is None:
            self.island = IslandState(since=now, reason="first start")
            out.append(Persist(Table.STATE, ISLAND_KEY, self.island.to_dict()))
        self._fold(event, now, out)
        self._cycle(now, out)
        # Write-ahead ordering: persistence first, then everything else in decision order.
        return [a for a in out if isinstance(a, Persist | Forget)] + [
            a for a in out if not isinstance(a, Persist | Forget)
        ]

    def pace(self, intervals: Mapping[str, float]) -> None:
        """The devices' setpoint intervals by DER id (the south side knows them once built)."""
        self.setpoint_interval_s = dict(intervals)

    @property
    def links_down(self) -> Mapping[str, str]:
        """The north links reported lost, by origin, with their last error."""
        return MappingProxyType(self._links_down)

    @property
    def phase(self) -> Phase:
        assert self.island is not None
        return self.island.phase

    def explain(self, mode: Mode) -> str:
        """What is in force for ``mode`` at the last cycle, and why."""
        return self.resolved.explain(mode)

    def assess(self, controls: ControlSet, now: Timestamp) -> list[str]:
        """Why this site would not carry out ``controls`` (empty = it would), as sentences.

        A read-only query for protocols that answer before acting (OpenADR opts in or out when
        an event arrives): invalid values, modes this site does not support, a target beyond the
        charger's rating, or an island the home cannot ride (no EV, EV at its reserve). Limits
        are never a reason: the site can always do less.
        """
        out = list(controls.problems())
        if out:
            return out
        unsupported = controls.modes() - self.config.supported_modes
        out += [f"{m.value} is not supported by this site" for m in sorted(unsupported, key=str)]
        rating = self.config.charger
        t = controls.target_w
        if t is not None and not -rating.max_charge_w <= t <= rating.max_discharge_w:
            out.append(
                f"target {t:g} W is beyond the charger's rating "
                f"(-{rating.max_charge_w:g}..{rating.max_discharge_w:g} W)"
            )
        if controls.connect is False:
            c = self._charger_fresh(now)
            reserve = self.config.backup_reserve_soc_pct
            if c is None:
                out.append("cannot island: the charger is not reporting")
            elif not c.ev_connected:
                out.append("cannot island: no EV connected to carry the home")
            elif c.soc_pct is not None and c.soc_pct <= reserve:
                out.append(f"cannot island: EV at {c.soc_pct:g} % (reserve {reserve:g} %)")
        return out

    # -----------------------------------------------------------------------------------------
    # Folding inputs into the view

    def _fold(self, event: Input, now: Timestamp, out: list[Action]) -> None:
        match event:
            case Tick():
                pass
            case Observed():
                self._observe(event)
            case EventReceived():
                self._responses(self.schedule.offer(event.event, now), out)
            case EventRejected():
                self._responses(self.schedule.reject(event.event, now, event.reason), out)
            case ProgramsRanked():
                self._responses(self.schedule.rerank(event.primacies, now, event.origin), out)
            case EventCancelled():
                self._responses(
                    self.schedule.cancel(
                        event.mrid, now, randomized=event.randomized, origin=event.origin
                    ),
                    out,
                )
            case DefaultsReceived():
                if event.controls is None:
                    self.schedule.clear_default(event.program, event.origin)
                else:
                    problems = self.schedule.set_default(
                        event.program, event.primacy, event.controls, event.origin
                    )
                    for p in problems:
                        text = f"default control of {event.program} refused: {p}"
                        out.append(Alarm(now, Severity.WARNING, "bad-default", text))
                out.append(Persist(Table.STATE, DEFAULTS_KEY, self.schedule.defaults()))
            case ManualOverride():
                self.manual = event.controls
                doc = {"controls": None if event.controls is None else event.controls.to_dict()}
                out.append(Persist(Table.STATE, MANUAL_KEY, doc))
                out.append(Note(now, f"homeowner override: {event.controls or 'cleared'}"))
            case BackupReserveSet():
                self._reserve(event, now, out)
            case WriteConfirmed():
                self._confirmed(event.command_id, now, out)
            case WriteFailed():
                self._failed(event.command_id, event.error, now, out, transient=event.transient)
            case NorthLinkLost():
                self._links_down[event.origin] = event.error
                out.append(
                    Alarm(
                        now,
                        Severity.WARNING,
                        "north-link-lost",
                        f"{event.origin}: {event.error}; scheduled events keep running, "
                        "defaults apply when none is active, reports wait in the outbox",
                    )
                )
            case NorthLinkRestored():
                if self._links_down.pop(event.origin, None) is not None:
                    out.append(Note(now, f"{event.origin}: link restored"))
            case ReportAcked():
                out.append(Persist(Table.ACK, event.key, {"at": now}))
            case FaultReset():
                self._reset(event, now, out)
            case DerRated():
                readings = (
                    self.device_rated_w if event.direction == "discharge" else self.device_charge_w
                )
                readings[event.der_id] = event.rated_w
                self._rerate()

    def _rerate(self) -> None:
        self.der_ratings = in_force(self.config.ders, self.device_rated_w)
        self.der_charge_ratings = in_force(self.config.ders, self.device_charge_w, "charge")
        self._rated_w = sum(self.der_ratings.values())
        self._ders = _rated(self.config.ders, self.der_ratings, self.der_charge_ratings)

    def _observe(self, obs: Observed) -> None:
        if obs.meter is not None and (self._meter is None or obs.meter.at >= self._meter.at):
            self._meter = obs.meter
        if obs.charger is not None and (
            self._charger is None or obs.charger.at >= self._charger.at
        ):
            self._charger = obs.charger
            cid = self.config.charger_id
            self._der_out[cid] = DerOutput(cid, obs.charger.at, obs.charger.power_w)
        if obs.relay is not None and (self._relay is None or obs.relay.at >= self._relay[1]):
            self._relay = (self._corroborated(obs.relay), obs.relay.at)
            self._relay_seen = obs.relay
        for d in obs.ders:
            self._der_out[d.der_id] = DerOutput(d.der_id, d.at, d.power_w)

    def _corroborated(self, relay: RelayTelemetry) -> RelayPosition:
        """OPEN only if the home side agrees: live with nothing forming means the contact lies
        (or the contacts are welded), and the relay counts as UNKNOWN, that is, closed."""
        v = relay.load_voltage_v
        if relay.position is not RelayPosition.OPEN or v is None or v < self.config.dead_bus_v:
            return relay.position
        c = self._charger
        if c is not None and c.mode is ChargerMode.GRID_FORMING:
            return relay.position  # the island is live because we made it
        return RelayPosition.UNKNOWN

    def _responses(self, due: Iterable[ResponseDue], out: list[Action]) -> None:
        for r in due:
            text = f"event {r.mrid}: response {int(r.code)} {r.code.name.lower()} ({r.reason})"
            out.append(Note(r.at, text))
            if not r.post:
                continue
            key = report_key(r.origin, r.mrid, int(r.code))
            report = NorthReport(key, r.origin, r.mrid, int(r.code), r.at, r.reply_to, r.reason)
            out.append(Persist(Table.OUTBOX, key, _report_doc(report)))
            out.append(report)

    # -----------------------------------------------------------------------------------------
    # Device confirmations

    def _confirmed(self, command_id: str, now: Timestamp, out: list[Action]) -> None:
        device = self._by_id.pop(command_id, None)
        if device is None:
            out.append(Note(now, f"confirmation for unknown or superseded command {command_id}"))
            return
        sent = self._sent[device]
        out.append(_audit(sent.command, now, "confirmed"))
        if sent.command.id != command_id:
            return  # a newer command to the same device is in flight; this one is history
        sent.confirmed_at = now
        if isinstance(sent.command, RelayCommand):
            # The driver's read-back is the independent confirmation of the position.
            self._relay = (sent.command.position, now)

    def _failed(
        self,
        command_id: str,
        error: str,
        now: Timestamp,
        out: list[Action],
        *,
        transient: bool = False,
    ) -> None:
        device = self._by_id.pop(command_id, None)
        if device is None:
            return
        sent = self._sent[device]
        out.append(_audit(sent.command, now, f"failed: {error}"))
        if sent.command.id != command_id:
            return
        sent.failed = error
        message = f"{device}: command {command_id} failed: {error}"
        if isinstance(sent.command, RelayCommand):
            self._relay = None  # whatever it did, its position is now unknown
        safety = isinstance(sent.command, RelayCommand | ChargerCommand)
        if safety and failed_link_in_step(self.phase, transient):
            # The link dropped, not the device: re-send after a pause (the device's steps are
            # idempotent and confirmed by read-back). The step's own timeout (_step) still
            # ends it in FAULT; a link that was down for one request no longer does.
            self._retry_at[device] = now + STEP_RETRY_S
            out.append(Alarm(now, Severity.WARNING, "write-failed", message + "; retrying"))
        elif self.phase is not Phase.GRID_CONNECTED and self.phase is not Phase.FAULT and safety:
            self._move(Trigger.STEP_FAILED, now, message, out)
        else:
            self._retry_at[device] = now + self.config.retry_after_s
            out.append(Alarm(now, Severity.WARNING, "write-failed", message))

    def _expire_pending(self, now: Timestamp, out: list[Action]) -> None:
        limit = self.config.step_timeout_s
        for command_id, device in list(self._by_id.items()):
            sent = self._sent[device]
            if sent.confirmed_at is None and now - sent.at > limit:
                self._failed(command_id, f"no read-back confirmation within {limit:g} s", now, out)

    # -----------------------------------------------------------------------------------------
    # The control cycle

    def _cycle(self, now: Timestamp, out: list[Action]) -> None:
        self._responses(self.schedule.advance(now), out)
        self._prune(now, out)
        self._expire_pending(now, out)
        self._resolve(now, out)
        for _ in range(len(Phase) + 1):  # each pass takes at most one transition
            if not self._step(now, out):
                break
        self._interlocks(now, out)
        self._drive(now, out)
        out.extend(
            Persist(Table.EVENT, rec.event.mrid, rec.to_dict())
            for rec in self.schedule.take_dirty()
        )

    def _prune(self, now: Timestamp, out: list[Action]) -> None:
        """Forget long-finished events, at most once per PRUNE_EVERY_S (the scan is O(n))."""
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        gone = self.schedule.prune(now, older_than_s=self.config.event_retention_s)
        out.extend(Forget(Table.EVENT, str(m)) for m in gone)
        # The outbox keeps what was delivered for as long as the events it answers, not forever.
        horizon = now - self.config.event_retention_s
        out.append(Forget(Table.OUTBOX, "acknowledged", before=horizon))
        if gone:
            days = self.config.event_retention_s / 86400
            out.append(Note(now, f"forgot {len(gone)} event(s) finished over {days:g} days ago"))

    def _outage(self, now: Timestamp) -> str | None:
        """Why the gateway itself says the grid is gone, or None."""
        m = self._meter
        if m is None or now - m.at > self.config.max_meter_age_s:
            return None  # stale data is not evidence of an outage
        if self.phase.stage in (island.Stage.GRID_CONNECTED, island.Stage.ISLANDING):
            if self.config.outage.failed(m.grid_voltage_v, m.grid_frequency_hz):
                return f"grid out of range: {_vf(m)}"
            return None
        # Once islanded, the grid counts as back only inside the enter-service window.
        if not self.config.enter_service.contains(m.grid_voltage_v, m.grid_frequency_hz):
            return f"grid not within the enter-service window: {_vf(m)}"
        return None

    def _resolve(self, now: Timestamp, out: list[Action]) -> None:
        claims: dict[Mode, list[Claim]] = {}

        def add(cs: Mapping[Mode, Claim]) -> None:
            for mode, claim in cs.items():
                claims.setdefault(mode, []).append(claim)

        outage = self._outage(now)
        if outage is not None:
            add(claims_of(ControlSet(connect=False), Source.OUTAGE_RESPONSE, outage))
        if self.manual is not None:
            add(claims_of(self.manual, Source.MANUAL_OVERRIDE, "homeowner override"))
        several = len(self.schedule.links) > 1  # name the link only where it tells them apart
        for link, mode, inf in self.schedule.claims(now):
            if inf.value is not None and inf.source is not None:
                named = link if several else None
                add({mode: Claim(inf.source, inf.value, inf.why, named, link_rank(link))})
        add(claims_of(self.config.site_policy, Source.SITE_POLICY, "site policy"))
        self.resolved = resolve(claims)
        decisions = {m: str(d) for m, d in self.resolved.decisions.items()}
        for mode in sorted(set(decisions) | set(self._last_decisions), key=lambda m: m.value):
            if decisions.get(mode) != self._last_decisions.get(mode):
                text = decisions.get(mode, f"{mode.value}: no longer controlled")
                out.append(Note(now, f"in force: {text}"))
        self._last_decisions = decisions

    # Guards -----------------------------------------------------------------------------------

    def _relay_is(self, position: RelayPosition, now: Timestamp) -> bool:
        """Confirmed by a fresh read-back. Unknown or stale never confirms anything."""
        if self._relay is None:
            return False
        pos, at = self._relay
        return pos is position and now - at <= self.config.telemetry_max_age_s

    def _charger_fresh(self, now: Timestamp) -> ChargerTelemetry | None:
        c = self._charger
        if c is None or now - c.at > self.config.telemetry_max_age_s:
            return None
        return c

    def _island_needed(self) -> bool:
        decision = self.resolved.decisions.get(Mode.CONNECT)
        if decision is None or decision.value is not False:
            return False
        permit = self.resolved.controls.island_permit
        # An explicit utility disconnect is an order; islanding on our own initiative (outage,
        # homeowner) honours the utility's island permit.
        return not (permit is False and decision.source is not Source.UTILITY_EVENT)

    def _reconnect_ok(self, now: Timestamp) -> bool:
        c = self.resolved.controls
        if c.connect is False or c.grid_connect_permit is False:
            return False
        m = self._meter
        if m is None or now - m.at > self.config.max_meter_age_s:
            return False
        return self.config.enter_service.contains(m.grid_voltage_v, m.grid_frequency_hz)

    def _forming_blocker(self, now: Timestamp) -> str | None:
        """Why the charger may not form a grid now (None = it may)."""
        if not self._relay_is(RelayPosition.OPEN, now):
            return _RELAY_NOT_OPEN
        c = self._charger_fresh(now)
        if c is None:
            return _CHARGER_UNKNOWN
        if not c.ev_connected:
            return "no EV connected"
        if c.soc_pct is not None and c.soc_pct <= self.config.backup_reserve_soc_pct:
            return f"EV at {c.soc_pct:g} % (reserve {self.config.backup_reserve_soc_pct:g} %)"
        if self.resolved.controls.island_permit is False and not self._utility_disconnect():
            return "utility does not permit islanding"
        return None

    def _utility_disconnect(self) -> bool:
        d = self.resolved.decisions.get(Mode.CONNECT)
        return d is not None and d.value is False and d.source is Source.UTILITY_EVENT

    def _charger_stopped(self, now: Timestamp) -> bool:
        """Stop command confirmed and fresh telemetry since then shows zero power."""
        sent = self._sent.get("charger")
        if sent is None or sent.confirmed_at is None:
            return False
        cmd = sent.command
        if not isinstance(cmd, ChargerCommand) or cmd.mode is not ChargerMode.STOPPED:
            return False
        c = self._charger_fresh(now)
        return (
            c is not None
            and c.at >= sent.confirmed_at
            and c.mode is ChargerMode.STOPPED
            and abs(c.power_w) <= self.config.zero_power_tolerance_w
        )

    def _confirmed_cmd(self, device: str) -> DeviceCommand | None:
        sent = self._sent.get(device)
        return sent.command if sent is not None and sent.confirmed_at is not None else None

    # Transitions ------------------------------------------------------------------------------

    def _step(self, now: Timestamp, out: list[Action]) -> bool:
        phase = self.phase
        assert self.island is not None
        trig: Trigger | None = None
        why = ""
        match phase:
            case Phase.GRID_CONNECTED:
                if self._island_needed():
                    trig, why = Trigger.ISLAND_NEEDED, self.explain(Mode.CONNECT)
            case Phase.STOPPING_EXPORT:
                if not self._island_needed():
                    trig, why = Trigger.ISLAND_NOT_NEEDED, "connect no longer false"
                elif self._export_stopped():
                    trig, why = Trigger.EXPORT_STOPPED, "charger stopped, DER export at 0 W"
            case Phase.OPENING_RELAY:
                if self._relay_moved(RelayPosition.OPEN, now):
                    trig, why = Trigger.RELAY_OPEN_CONFIRMED, "relay read back open"
            case Phase.FORMING:
                blocker = self._forming_blocker(now)
                cmd = self._confirmed_cmd("charger")
                if (
                    isinstance(cmd, ChargerCommand)
                    and cmd.mode is ChargerMode.GRID_FORMING
                    and blocker is None
                ):
                    trig, why = Trigger.FORMING_CONFIRMED, "charger read back grid-forming"
                elif blocker is not None and blocker not in _WAIT_FOR_FORMING:
                    trig, why = Trigger.FORMING_SKIPPED, f"home islanded unpowered: {blocker}"
            case Phase.ISLANDED:
                if self._reconnect_ok(now):
                    m = self._meter
                    assert m is not None
                    trig, why = Trigger.GRID_RESTORED, f"grid back: {_vf(m)}"
            case Phase.RECONNECT_WAIT:
                since = self.island.window_since or self.island.since
                if not self._reconnect_ok(now):
                    trig, why = Trigger.GRID_LOST_AGAIN, "grid left the window or not permitted"
                elif now - since >= (delay := self._enter_service_delay(now, out)):
                    trig = Trigger.ENTER_SERVICE_ELAPSED
                    why = f"grid in window for {now - since:g} s (delay {delay:g} s)"
            case Phase.STOPPING_FORMING:
                if self._outage(now) is not None or self._island_needed():
                    trig, why = Trigger.ISLAND_NEEDED, "grid failed again before reconnection"
                elif self._charger_stopped(now):
                    trig, why = Trigger.FORMING_STOPPED, "charger stopped at zero power"
            case Phase.CLOSING_RELAY:
                if self._relay_moved(RelayPosition.CLOSED, now):
                    trig, why = Trigger.RELAY_CLOSED_CONFIRMED, "relay read back closed"
            case Phase.FAULT:
                pass
        timeout = self.config.step_timeout_s
        if trig is None and phase in STEP_PHASES and now - self.island.since > timeout:
            trig = Trigger.STEP_FAILED
            why = f"{phase.value} not confirmed within {timeout:g} s"
        if trig is None:
            return False
        self._move(trig, now, why, out)
        return True

    def _enter_service_delay(self, now: Timestamp, out: list[Action]) -> float:
        """How long the grid must stay in the enter-service window in this wait.

        A default's ``setESDelay`` (``enter_service_delay_s``) replaces the configured
        ``enter_service.delay_s``, which is the installer's floor (the interconnection rules'
        minimum): a shorter server value is raised to it, with a Note. ``setESRandomDelay``
        (``enter_service_random_delay_s``) adds a part drawn uniformly in [0, it] (hundredths
        of a second) with the injected ``draw``, once per wait: again only if it changes.
        """
        c = self.resolved.controls
        server, bound = c.enter_service_delay_s, c.enter_service_random_delay_s or 0.0
        floor = self.config.enter_service.delay_s
        base = floor if server is None else max(floor, server)
        wait = self._es_wait
        if wait is not None and (wait[0], wait[1]) == (server, bound):
            return base + wait[2]
        extra = wait[2] if wait is not None and wait[1] == bound else self._draw_hundredths(bound)
        self._es_wait = (server, bound, extra)
        text = f"enter-service delay {base + extra:g} s"
        if bound > 0:
            text += f" ({base:g} s + {extra:g} s drawn in 0..{bound:g} s, setESRandomDelay)"
        if server is not None and server < floor:
            text += (
                f"; setESDelay {server:g} s is below the site's minimum {floor:g} s "
                "(installer configuration): raised to it"
            )
        out.append(Note(now, text))
        return base + extra

    def _draw_hundredths(self, bound_s: float) -> float:
        """Seconds drawn uniformly in [0, bound_s], to a hundredth (setESRandomDelay's unit)."""
        n = round(bound_s * 100)
        if n <= 0:
            return 0.0  # no call: keeps an injected deterministic draw sequence meaningful
        return min(max(self._draw(n), 0), n) / 100

    def _relay_moved(self, position: RelayPosition, now: Timestamp) -> bool:
        """Our command to ``position`` was confirmed and a fresh read-back still agrees."""
        cmd = self._confirmed_cmd("relay")
        return (
            isinstance(cmd, RelayCommand)
            and cmd.position is position
            and self._relay_is(position, now)
        )

    def _export_stopped(self) -> bool:
        cmd = self._confirmed_cmd("charger")
        if not isinstance(cmd, ChargerCommand) or cmd.mode is not ChargerMode.STOPPED:
            return False
        for d in self.config.ders:
            if d.der_id == self.config.charger_id:
                continue
            lim = self._confirmed_cmd(f"der:{d.der_id}")
            if not isinstance(lim, DerLimit) or lim.max_discharge_w > 0:
                return False
        return True

    def _move(self, trig: Trigger, now: Timestamp, why: str, out: list[Action]) -> None:
        assert self.island is not None
        before = self.island.phase
        self.island = island.apply(self.island, trig, now, why)
        after = self.island.phase
        out.append(Persist(Table.STATE, ISLAND_KEY, self.island.to_dict()))
        out.append(Note(now, f"{before.value} -> {after.value}: {why}"))
        self._es_wait = None  # a new wait (a new entry) draws its random delay again
        if after is Phase.FAULT:
            out.append(Alarm(now, Severity.CRITICAL, "fault", f"{before.value}: {why}"))
        # A new phase starts its own step: forget retries of the old one.
        self._retry_at.clear()

    def _reserve(self, req: BackupReserveSet, now: Timestamp, out: list[Action]) -> None:
        """The homeowner's new backup reserve, kept across restarts (it replaces the site
        file's ``backup_reserve_pct`` until set again); a value outside 0-100 % changes
        nothing. Either way an audit entry says what became of it."""
        before = self.config.backup_reserve_soc_pct
        ok = math.isfinite(req.soc_pct) and 0 <= req.soc_pct <= 100
        if ok:
            self.config = replace(self.config, backup_reserve_soc_pct=float(req.soc_pct))
            out.append(Persist(Table.STATE, RESERVE_KEY, {"soc_pct": float(req.soc_pct)}))
            out.append(Note(now, f"backup reserve {before:g} % -> {req.soc_pct:g} % ({req.by})"))
        self.last_reserve = ok
        doc = {
            "at": now,
            "device": "site",
            "point": "backup_reserve_pct",
            "value": req.soc_pct,
            "reason": f"backup reserve asked by {req.by}",
            "outcome": f"accepted: {before:g} % -> {req.soc_pct:g} %"
            if ok
            else "refused: a state of charge is 0 to 100 %",
        }
        out.append(Persist(Table.AUDIT, f"reserve-{self._new_id()}", doc))

    def _reset(self, req: FaultReset, now: Timestamp, out: list[Action]) -> None:
        """Leave FAULT if nothing that caused it persists; either way an audit entry and a Note.

        Accepted: relay read back closed -> GRID_CONNECTED; read back open (home side dead) ->
        OPENING_RELAY, the islanding sequence from the relay step.
        """
        assert self.island is not None
        request = req.request or f"reset-{self._new_id()}"
        before, fault = self.phase, self.island.fault
        blockers = self.reset_blockers(now)
        if blockers:
            reason = REASONS_JOINED_BY.join(blockers)
        elif self._relay_is(RelayPosition.CLOSED, now):
            reason = "relay read back closed, charger stopped at zero power"
            self._move(Trigger.RESET_CLOSED, now, f"reset by {req.by}; {reason}", out)
        else:
            reason = "relay read back open with the home side dead, charger stopped"
            self._move(Trigger.RESET_OPEN, now, f"reset by {req.by}; re-confirming relay open", out)
        accepted = not blockers
        if accepted:
            reason = f"{reason}: {before.value} -> {self.phase.value}"
        self.last_reset = ResetOutcome(now, req.by, request, accepted, reason)
        outcome = f"{'accepted' if accepted else 'refused'}: {reason}"
        doc = {
            "at": now,
            "device": "island",
            "point": "fault_reset",
            "value": req.by,
            "reason": f"fault reset asked by {req.by} in {before.value}"
            + ("" if fault is None else f" (fault: {fault})"),
            "outcome": outcome,
            "correlation_id": request,
        }
        out.append(Persist(Table.AUDIT, request, doc))
        out.append(Note(now, f"fault reset by {req.by} {outcome}"))

    def reset_blockers(self, now: Timestamp) -> list[str]:
        """Why a fault reset would be refused now (empty = it would be accepted), each reason a
        sentence a person can act on. Read-only, like :meth:`assess`.

        The fault's condition persists while: the charger reports a fault, is not reporting, or
        is not confirmed stopped at zero power (its stop command confirmed and a fresh report
        since then showing it); or the relay's position is not known from a fresh read-back,
        reads neither open nor closed, has a command in flight, or reads open while the home
        side is live and the charger is not forming (welded contacts, or a contact that lies).
        """
        if self.phase is not Phase.FAULT:
            return [f"nothing to reset: the gateway is {self.phase.value}, not in fault"]
        return self._charger_blockers(now) + self._relay_blockers(now)

    def _charger_blockers(self, now: Timestamp) -> list[str]:
        max_age = self.config.telemetry_max_age_s
        c = self._charger
        if c is None:
            return ["the charger has not reported since the gateway started: check its link"]
        if now - c.at > max_age:
            age = now - c.at
            return [
                f"the charger's last report is {age:g} s old (limit {max_age:g} s): check its link"
            ]
        out = []
        if c.fault:
            out.append("the charger reports a fault: clear it at the charger, then reset again")
        tolerance = self.config.zero_power_tolerance_w
        if c.mode is not ChargerMode.STOPPED or abs(c.power_w) > tolerance:
            out.append(
                f"the charger reports {c.mode.value} at {c.power_w:g} W, "
                f"not stopped at zero power (tolerance {tolerance:g} W)"
            )
        sent = self._sent.get("charger")
        if sent is None or not _is_stop(sent.command):
            out.append("the gateway has not yet commanded the charger to stop (wait a cycle)")
        elif sent.failed is not None:
            out.append(
                f"the charger's stop command failed ({sent.failed}), "
                f"it is retried every {self.config.retry_after_s:g} s"
            )
        elif sent.confirmed_at is None:
            out.append("the charger's stop command is not confirmed yet (wait for its read-back)")
        elif c.at < sent.confirmed_at:
            out.append("no charger report yet since its stop was confirmed (wait a cycle)")
        return out

    def _relay_blockers(self, now: Timestamp) -> list[str]:
        why = self._relay_blocker(now)
        return [] if why is None else [why]

    def _relay_blocker(self, now: Timestamp) -> str | None:
        sent = self._sent.get("relay")
        if sent is not None and sent.confirmed_at is None and sent.failed is None:
            return "a relay command is in flight (wait for its read-back)"
        if self._relay is None:
            return (
                "the relay's position is unknown (no read-back since the gateway started "
                "or since its last command failed): check the relay and its link"
            )
        position, at = self._relay
        max_age = self.config.telemetry_max_age_s
        if now - at > max_age:
            return (
                f"the relay's last read-back is {now - at:g} s old (limit {max_age:g} s): "
                "check its link"
            )
        seen = self._relay_seen
        # The reading is the evidence (not a newer read-back of our own command), and it says
        # open with the home side live: whatever the charger did when it was read, the charger
        # is not forming now (it is confirmed stopped, or the reset is refused for that too).
        if (
            seen is not None
            and seen.at >= at
            and seen.position is RelayPosition.OPEN
            and seen.load_voltage_v is not None
            and seen.load_voltage_v >= self.config.dead_bus_v
        ):
            return (
                f"the relay reads open but the home side is live ({seen.load_voltage_v:g} V, "
                f"dead below {self.config.dead_bus_v:g} V) with the charger not forming: the "
                "contacts may be welded or the auxiliary contact lies: inspect the relay"
            )
        if position is RelayPosition.UNKNOWN:
            return "the relay reads neither open nor closed (moving, or faulted): inspect the relay"
        return None

    # Interlocks -------------------------------------------------------------------------------

    def _interlocks(self, now: Timestamp, out: list[Action]) -> None:
        charger = self._charger_fresh(now)
        sent = self._sent.get("charger")
        commanded_forming = (
            sent is not None
            and isinstance(sent.command, ChargerCommand)
            and sent.command.mode is ChargerMode.GRID_FORMING
            and sent.failed is None
        )
        reported_forming = charger is not None and charger.mode is ChargerMode.GRID_FORMING
        relay_open = self._relay_is(RelayPosition.OPEN, now)
        if (commanded_forming or reported_forming) and not relay_open:
            why = "charger forming a grid while the relay is not confirmed open"
            self._command_charger(ChargerMode.STOPPED, 0.0, f"interlock: {why}", now, out)
            if self.phase is not Phase.FAULT:
                self._move(Trigger.INTERLOCK_TRIPPED, now, why, out)
        if self.phase is Phase.GRID_CONNECTED and self._relay_is(RelayPosition.OPEN, now):
            self._move(Trigger.INTERLOCK_TRIPPED, now, "relay reads open while grid-connected", out)

    # Driving the devices ----------------------------------------------------------------------

    def _drive(self, now: Timestamp, out: list[Action]) -> None:
        phase = self.phase
        wants = WANTS[phase]
        self.allocation = self._allocate(now)
        out.extend(Note(now, text) for text in self.ramps.take_notes())
        # Relay: only the two relay steps move it, and closing needs a stopped charger.
        if phase is Phase.OPENING_RELAY:
            self._command_relay(RelayPosition.OPEN, "islanding: open the relay", now, out)
        elif phase is Phase.CLOSING_RELAY and self._charger_stopped(now):
            self._command_relay(
                RelayPosition.CLOSED, "reconnecting: charger at zero power", now, out
            )
        # Charger.
        if wants.charger is ChargerMode.GRID_FORMING:
            blocker = self._forming_blocker(now)
            if blocker is None:
                self._command_charger(
                    ChargerMode.GRID_FORMING, 0.0, "V2H: form the home grid", now, out
                )
            else:
                self._command_charger(ChargerMode.STOPPED, 0.0, f"not forming: {blocker}", now, out)
        elif wants.charger is ChargerMode.STOPPED:
            self._command_charger(
                ChargerMode.STOPPED, 0.0, f"{phase.value}: charger stopped", now, out
            )
        else:
            mode, setpoint, why = self._following_setpoint(now)
            self._command_charger(mode, setpoint, why, now, out)
        # Other DER: backfeed caps while grid-connected, no export otherwise. opModEnergize =
        # false means every DER behind the site ceases to energize, not only the charger.
        deenergized = self.resolved.controls.energize is False
        for d in self.config.ders:
            if d.der_id == self.config.charger_id:
                continue
            if wants.export and self.allocation is not None and not deenergized:
                cap = self.allocation.cap(d.der_id)
                self._command_der(
                    d.der_id, cap.max_discharge_w, cap.max_charge_w, cap.binding, now, out
                )
            elif wants.export and deenergized:
                why = f"energize = false: cease to energize ({self.explain(Mode.ENERGIZE)})"
                self._command_der(d.der_id, 0.0, 0.0, why, now, out)
            else:
                self._command_der(d.der_id, 0.0, 0.0, f"{phase.value}: no export", now, out)

    def _allocate(self, now: Timestamp) -> Allocation:
        m = self._meter
        reading = None
        if m is not None:
            reading = MeterReading(m.at, m.net_w, m.phase_current_a, m.grid_voltage_v)
        controls = self.resolved.controls
        rate = controls.ramp_rate_pct_s
        soft = controls.soft_start_rate_pct_s
        limits = self.ramps.apply(
            Limits.from_controls(controls),
            controls.ramp_time_s,
            self._measured(),
            now,
            None if rate is None else rate / 100.0 * self._rated_w,
            # In service: the DER may export (setSoftGradW and setESRampTms ramp them up on
            # entering it: the slower of the two).
            in_service=WANTS[self.phase].export and controls.energize is not False,
            soft_w_per_s=entry_rate(
                None if soft is None else soft / 100.0 * self._rated_w,
                controls.enter_service_ramp_s,
                self._rated_w,
            ),
            rated_w=self._rated_w,
            step_s=step_of(self.setpoint_interval_s, (d.der_id for d in self.config.ders)),
        )
        return allocate(
            self.config.panel,
            self._ders,  # ratings in force: never above configured, lower if a device says
            reading,
            self._der_out,
            limits,
            now,
            self.config.max_meter_age_s,
            self._dispatch(now),
            self._discharge_last(),
        )

    def _discharge_last(self) -> tuple[str, ...]:
        """The charger, while nothing asks it to discharge (idle or charging): it takes the
        allocator's discharge headroom after the other DER. First in the order (as every
        shipped example lists it), it held the export and backfeed headroom for a discharge it
        was never going to make, and the PV got none (found by the conformance suite: at noon
        under a 1 kW export limit the PV was held at 0 W, and while the EV charged, too). It
        still gets what is left, so the box and every total are as before; a target or a
        dispatch (granted first anyway) puts it back in its place, and so does a state-of-charge
        target the EV is not below."""
        c = self.resolved.controls
        want, _, _ = self._charger_want()
        if want > 0:
            return ()
        if c.soc_target_pct is not None:
            # A target above the EV's charge is charging, not discharging (the demo's "charge
            # to 100 %" held the PV at 0 W under a 0 W export limit); at or below it, or with
            # the charge unknown, the target may ask for discharge: the charger keeps its place.
            ch = self._charger
            if ch is None or ch.soc_pct is None or ch.soc_pct >= c.soc_target_pct:
                return ()
        return (self.config.charger_id,)

    def _measured(self) -> dict[str, float | None]:
        """What the site is doing on each limited quantity: where a ramp starts from."""
        m = self._meter
        outputs = [d.power_w for d in self._der_out.values()]
        return {
            "export_limit_w": None if m is None else max(0.0, -m.net_w),
            "import_limit_w": None if m is None else max(0.0, m.net_w),
            "generation_limit_w": sum(max(0.0, w) for w in outputs) if outputs else None,
            "load_limit_w": sum(max(0.0, -w) for w in outputs) if outputs else None,
        }

    def _charger_want(self) -> tuple[float, str, bool]:
        """The charger's setpoint as the controls ask it, before any cap: (W, why, idle)."""
        c = self.resolved.controls
        rating = self.config.charger
        if c.target_w is not None:
            return c.target_w, self.explain(Mode.TARGET_W), False
        if c.fixed_w_pct is not None:
            base = rating.max_discharge_w if c.fixed_w_pct >= 0 else rating.max_charge_w
            return c.fixed_w_pct / 100.0 * base, self.explain(Mode.FIXED_W_PCT), False
        if c.storage_target_w is not None:
            return c.storage_target_w, self.explain(Mode.STORAGE_TARGET_W), False
        return 0.0, "no target in force: idle", True

    def _dispatch(self, now: Timestamp) -> dict[str, float]:
        """A discharge the controls order of the charger, for the allocator to grant first
        (it would be refused below anyway at or under the reserve or the SoC target)."""
        c = self.resolved.controls
        want, _, _ = self._charger_want()
        charger = self._charger_fresh(now)
        soc = charger.soc_pct if charger is not None else None
        floor = max(self.config.backup_reserve_soc_pct, c.soc_target_pct or 0.0)
        if c.energize is False or want <= 0 or soc is None or soc <= floor:
            return {}
        return {self.config.charger_id: want}

    def _following_setpoint(self, now: Timestamp) -> tuple[ChargerMode, float, str]:
        c = self.resolved.controls
        if c.energize is False:
            return ChargerMode.STOPPED, 0.0, self.explain(Mode.ENERGIZE)
        want, why, idle = self._charger_want()
        assert self.allocation is not None
        cap = self.allocation.cap(self.config.charger_id)
        charger = self._charger_fresh(now)
        soc = charger.soc_pct if charger is not None else None
        if c.soc_target_pct is not None:
            want, why = self._soc_target(c.soc_target_pct, soc, want, why, idle=idle)
        if want > cap.max_discharge_w:
            want, why = cap.max_discharge_w, f"{why}; capped: {cap.binding}"
        if want < -cap.max_charge_w:
            want, why = -cap.max_charge_w, f"{why}; capped: {cap.binding}"
        if want > 0 and (soc is None or soc <= self.config.backup_reserve_soc_pct):
            reserve = self.config.backup_reserve_soc_pct
            want, why = 0.0, f"{why}; no discharge: EV SoC {soc} at/below reserve {reserve:g} %"
        return ChargerMode.GRID_FOLLOWING, want, why

    def _soc_target(
        self, target: float, soc: float | None, want: float, why: str, *, idle: bool
    ) -> tuple[float, str]:
        """A state-of-charge target: charge towards it when no other setpoint is in force, and
        never discharge at or below it (it raises the backup reserve while it holds)."""
        if soc is None:
            return want, why  # discharge is already refused with an unknown SoC (below)
        if idle and soc < target:
            why = f"charging towards the SoC target: {self.explain(Mode.SOC_TARGET_PCT)}"
            return -self.config.charger.max_charge_w, why
        if want > 0 and soc <= target:
            return 0.0, f"{why}; no discharge: EV SoC {soc:g} % at/below target {target:g} %"
        return want, why

    def _new_id(self) -> str:
        self._seq += 1
        return f"{self._boot}-{self._seq}"

    def _issue(self, device: str, cmd: DeviceCommand, now: Timestamp, out: list[Action]) -> None:
        old = self._sent.get(device)
        if old is not None:
            self._by_id.pop(old.command.id, None)
        self._sent[device] = _Sent(cmd, now)
        self._by_id[cmd.id] = device
        out.append(_audit(cmd, now, "commanded"))
        out.append(cmd)

    def _held(self, device: str, now: Timestamp) -> bool:
        """A device with a command in flight gets nothing new (no pipelining, no blind resend)."""
        sent = self._sent.get(device)
        if sent is not None and sent.confirmed_at is None and sent.failed is None:
            return True
        return now < self._retry_at.get(device, float("-inf"))

    def _command_relay(
        self, position: RelayPosition, why: str, now: Timestamp, out: list[Action]
    ) -> None:
        sent = self._sent.get("relay")
        if (
            sent is not None
            and isinstance(sent.command, RelayCommand)
            and sent.command.position is position
            and sent.failed is None
        ):
            return
        if self._held("relay", now):
            return
        self._issue("relay", RelayCommand(self._new_id(), position, why), now, out)

    def _command_charger(
        self, mode: ChargerMode, setpoint: float, why: str, now: Timestamp, out: list[Action]
    ) -> None:
        sent = self._sent.get("charger")
        if sent is not None and isinstance(sent.command, ChargerCommand) and sent.failed is None:
            old = sent.command
            if old.mode is mode and (
                mode is not ChargerMode.GRID_FOLLOWING
                or old.setpoint_w == setpoint
                or (
                    # Small moves are not worth a write, unless they lower discharge.
                    abs(setpoint - old.setpoint_w) < self.config.setpoint_deadband_w
                    and setpoint >= old.setpoint_w
                )
            ):
                return
        stopping = mode is ChargerMode.STOPPED
        # A stop, or less discharge, is never held back: it is the safe direction.
        lowers = (
            sent is not None
            and isinstance(sent.command, ChargerCommand)
            and sent.command.mode is mode
            and setpoint < sent.command.setpoint_w
        )
        if self._held("charger", now) and not (stopping or lowers):
            return
        if stopping and sent is not None and _is_stop(sent.command):
            if sent.failed is None:
                return
            # The same stop failed: retry it after the back-off, not on every input. A device
            # that fails at once (a transport in reconnect back-off) would otherwise be sent a
            # stop per input, forever, within one control cycle (found on the Modbus home).
            if now < self._retry_at.get("charger", float("-inf")):
                return
        self._issue("charger", ChargerCommand(self._new_id(), mode, setpoint, why), now, out)

    def _command_der(
        self,
        der_id: str,
        discharge: float,
        charge: float,
        why: str,
        now: Timestamp,
        out: list[Action],
    ) -> None:
        device = f"der:{der_id}"
        sent = self._sent.get(device)
        if sent is not None and isinstance(sent.command, DerLimit):
            old = sent.command
            # Lower than the last attempt: the safe direction is never held back, not even by
            # a retry back-off after a failed write (the device may still run the old limit).
            lowers = discharge < old.max_discharge_w or charge < old.max_charge_w
            small = (
                abs(discharge - old.max_discharge_w) < self.config.setpoint_deadband_w
                and abs(charge - old.max_charge_w) < self.config.setpoint_deadband_w
            )
            same = (old.max_discharge_w, old.max_charge_w) == (discharge, charge)
            if sent.failed is None and (same or (small and not lowers)):
                return
            if self._held(device, now) and not lowers:
                return
        elif self._held(device, now):
            return
        self._issue(device, DerLimit(self._new_id(), der_id, discharge, charge, why), now, out)


# A step's relay or charger command that failed on the link is re-sent after this pause.
STEP_RETRY_S: Final = 0.5


def failed_link_in_step(phase: Phase, transient: bool) -> bool:
    """Whether a failed command is retried rather than faulted: a link failure (the device
    never answered) inside an islanding step, whose timeout bounds the retries."""
    return transient and phase in STEP_PHASES


# Blockers that may clear by themselves within the step timeout: FORMING waits for them.
_RELAY_NOT_OPEN = "relay not confirmed open"
_CHARGER_UNKNOWN = "charger state unknown"
_WAIT_FOR_FORMING = frozenset({_RELAY_NOT_OPEN, _CHARGER_UNKNOWN})


def _is_stop(cmd: DeviceCommand) -> bool:
    return isinstance(cmd, ChargerCommand) and cmd.mode is ChargerMode.STOPPED


def _vf(m: MeterTelemetry) -> str:
    v = "?" if m.grid_voltage_v is None else f"{m.grid_voltage_v:g} V"
    f = "?" if m.grid_frequency_hz is None else f"{m.grid_frequency_hz:g} Hz"
    return f"{v}, {f}"


def _report_doc(r: NorthReport) -> dict[str, Any]:
    return {
        "origin": r.origin,
        "subject": r.subject,
        "code": r.code,
        "at": r.at,
        "reply_to": r.reply_to,
        "reason": r.reason,
        "time": iso(r.at),
    }


def _audit(cmd: DeviceCommand, now: Timestamp, outcome: str) -> Persist:
    match cmd:
        case RelayCommand():
            device, point, value = "relay", "position", cmd.position.value
        case ChargerCommand():
            device, point = "charger", "mode/setpoint_w"
            value = f"{cmd.mode.value}/{cmd.setpoint_w:g}"
        case DerLimit():
            device, point = f"der:{cmd.der_id}", "max_discharge_w/max_charge_w"
            value = f"{cmd.max_discharge_w:g}/{cmd.max_charge_w:g}"
    doc = {
        "at": now,
        "device": device,
        "point": point,
        "value": value,
        "reason": cmd.reason,
        "outcome": outcome,
        "correlation_id": cmd.id,
    }
    return Persist(Table.AUDIT, cmd.id, doc)


def _rated(
    ders: tuple[DerRating, ...], discharge: Mapping[str, float], charge: Mapping[str, float]
) -> tuple[DerRating, ...]:
    """The DERs with their ratings in force (``core.ratings``: min of configured and the
    device's), each direction: the allocator then never asks a DER for more than it says it
    can give (a 9.6 kW configuration on a 7.4 kW charger had its setpoints above 7.4 kW
    refused), while its budgets (panel, meter) are unchanged, so a lower rating can only lower
    what is sent."""
    return tuple(
        replace(
            d,
            max_discharge_w=min(d.max_discharge_w, discharge.get(d.der_id, d.max_discharge_w)),
            max_charge_w=min(d.max_charge_w, charge.get(d.der_id, d.max_charge_w)),
        )
        for d in ders
    )
