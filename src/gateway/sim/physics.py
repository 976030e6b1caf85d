"""Device-level physics of a simulated home, with no I/O: time is whatever the caller passes in.

One model serves both the pure engine tests (through ``HomeModel`` in ``home.py``) and the Modbus
simulator (``modbus.py``), which drives these devices register by register:

* :class:`Grid` - the utility side: present or not, a scriptable voltage and frequency;
* :class:`Relay` - the meter-collar islanding relay: latency, confirmed position from its aux
  contact, failure to open, a watchdog that *holds* the position when it expires;
* :class:`Charger` - the V2H charger and its EV battery: stopped / grid-following / grid-forming,
  ramp, limits, SoC floor, trips, anti-islanding, a watchdog that *stops* it when it expires;
* :class:`Pv`, :class:`HomeBattery` - grid-following DERs; :class:`Load` - the household demand;
* :class:`HomePhysics` - couples them, integrates energy and records :attr:`~HomePhysics.violations`
  (anything that would have hurt someone).

Sign convention (the gateway's): power into the home is positive for sources (discharge,
generation); the meter's ``net_w`` is positive when the home imports from the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, unique

from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.units import Timestamp

NOMINAL_V = 240.0  # split-phase service, L1-L2
NOMINAL_HZ = 60.0
_EPS_W = 1.0  # below this a power is "zero" for state reporting


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


# --------------------------------------------------------------------------------------------
# Grid


@dataclass(frozen=True, slots=True)
class GridStep:
    """From ``at`` on, the grid is at this voltage and frequency (0 V = outage)."""

    at: Timestamp
    voltage_v: float
    frequency_hz: float


@dataclass(slots=True)
class Grid:
    voltage_v: float = NOMINAL_V
    frequency_hz: float = NOMINAL_HZ
    script: list[GridStep] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.voltage_v > 0.0

    def fail(self) -> None:
        self.voltage_v, self.frequency_hz = 0.0, 0.0

    def restore(self, voltage_v: float = NOMINAL_V, frequency_hz: float = NOMINAL_HZ) -> None:
        self.voltage_v, self.frequency_hz = voltage_v, frequency_hz

    def play(self, steps: Iterable[GridStep]) -> None:
        """Schedule steps (merged with any already scheduled); applied as time reaches them."""
        self.script = sorted([*self.script, *steps], key=lambda s: s.at)

    def next_change(self) -> Timestamp:
        return self.script[0].at if self.script else math.inf

    def update(self, now: Timestamp) -> None:
        while self.script and self.script[0].at <= now:
            step = self.script.pop(0)
            self.voltage_v, self.frequency_hz = step.voltage_v, step.frequency_hz


# --------------------------------------------------------------------------------------------
# Watchdog (device-side revert timer)


@dataclass(slots=True)
class Watchdog:
    """Disarmed until the gateway sets a timeout; a refresh (heartbeat) restarts it."""

    timeout_s: float | None = None  # on the home's clock
    refreshed_at: Timestamp = 0.0
    expired: bool = False
    # Home-clock seconds per wall-clock second (SimulatedHome sets its speed): a device's
    # revert timer counts real seconds, however fast the simulated sun moves. At 60x a 60 s
    # timeout on the home's clock was 1 s of wall time, and the demo's EV stopped forming
    # mid-outage between two keep-alives (20 s apart).
    scale: float = 1.0

    def arm(self, timeout_s: float, now: Timestamp) -> None:
        # A timeout of 0 switches the watchdog off (Quasar reg 88 and most revert timers).
        self.timeout_s = timeout_s * self.scale if timeout_s > 0 else None
        self.refresh(now)

    def refresh(self, now: Timestamp) -> None:
        self.refreshed_at, self.expired = now, False

    def deadline(self) -> Timestamp:
        if self.timeout_s is None or self.expired:
            return math.inf
        return self.refreshed_at + self.timeout_s

    def check(self, now: Timestamp) -> bool:
        """True exactly once, when the deadline has passed."""
        if now >= self.deadline():
            self.expired = True
            return True
        return False


# --------------------------------------------------------------------------------------------
# Relay


@unique
class RelayState(Enum):
    OPEN = "open"
    CLOSED = "closed"
    MOVING = "moving"


@unique
class RelayFault(Enum):
    FAIL_TO_OPEN = "fail_to_open"  # commanded open, aux contact still closed (welded contact)
    WATCHDOG_EXPIRED = "watchdog_expired"  # the gateway stopped refreshing; position held


@dataclass(slots=True)
class Relay:
    position: RelayPosition = RelayPosition.CLOSED  # what the aux contact confirms
    latency_s: float = 0.2
    fail_to_open: bool = False
    moving_to: RelayPosition | None = None
    move_done_at: Timestamp = 0.0
    faults: set[RelayFault] = field(default_factory=set)
    watchdog: Watchdog = field(default_factory=Watchdog)
    # A sync-check: refuse to close while the home side is live (the reference collar map says
    # so). Off by default, so that a gateway closing onto an island shows up as a violation.
    refuses_live_close: bool = False

    @property
    def state(self) -> RelayState:
        if self.moving_to is not None:
            return RelayState.MOVING
        return RelayState.OPEN if self.position is RelayPosition.OPEN else RelayState.CLOSED

    @property
    def confirmed_open(self) -> bool:
        return self.moving_to is None and self.position is RelayPosition.OPEN

    def command(self, target: RelayPosition, now: Timestamp) -> None:
        if target is RelayPosition.UNKNOWN:
            raise ValueError("a relay can only be commanded open or closed")
        self.faults.discard(RelayFault.FAIL_TO_OPEN)  # every command is a fresh attempt
        if self.moving_to is None and target is self.position:
            return
        self.moving_to, self.move_done_at = target, now + self.latency_s

    def heartbeat(self, now: Timestamp) -> None:
        self.watchdog.refresh(now)
        self.faults.discard(RelayFault.WATCHDOG_EXPIRED)

    def next_event(self) -> Timestamp:
        move = self.move_done_at if self.moving_to is not None else math.inf
        return min(move, self.watchdog.deadline())

    def update(self, now: Timestamp) -> None:
        if self.moving_to is not None and now >= self.move_done_at:
            if self.moving_to is RelayPosition.OPEN and self.fail_to_open:
                self.faults.add(RelayFault.FAIL_TO_OPEN)
            else:
                self.position = self.moving_to
            self.moving_to = None
        # On expiry the relay HOLDS: closing by itself could close onto an island, opening by
        # itself would black the house out. It only raises the fault.
        if self.watchdog.check(now):
            self.faults.add(RelayFault.WATCHDOG_EXPIRED)


# --------------------------------------------------------------------------------------------
# Storage: the EV battery behind the charger, and a home battery behind a DER inverter


@dataclass(slots=True)
class Storage:
    capacity_wh: float = 60_000.0
    soc_pct: float = 80.0
    max_discharge_w: float = 9_600.0
    max_charge_w: float = 9_600.0
    soc_floor_pct: float = 0.0
    ramp_w_per_s: float = math.inf
    setpoint_w: float = 0.0  # + discharge into the home, - charge
    power_w: float = 0.0
    # Device-side limits written by the gateway (unsigned W); the ratings apply on top.
    charge_limit_w: float = math.inf
    discharge_limit_w: float = math.inf

    def bounded(self, wanted_w: float, *, limits: bool = True) -> float:
        """``wanted_w`` within the ratings, the limits (unless ``limits`` is False), the SoC
        floor and a full battery."""
        hi = min(self.max_discharge_w, self.discharge_limit_w if limits else math.inf)
        lo = -min(self.max_charge_w, self.charge_limit_w if limits else math.inf)
        if self.soc_pct <= self.soc_floor_pct:
            hi = min(hi, 0.0)
        if self.soc_pct >= 100.0:
            lo = max(lo, 0.0)
        return _clamp(wanted_w, lo, max(lo, hi))

    def run(self, target_w: float, dt: float, *, ramped: bool) -> None:
        """Move the power toward ``target_w`` over ``dt`` and integrate the energy exactly."""
        p0 = self.power_w
        if not ramped or math.isinf(self.ramp_w_per_s):
            p1, energy_ws = target_w, target_w * dt
        else:
            reach = abs(target_w - p0) / self.ramp_w_per_s if self.ramp_w_per_s > 0 else math.inf
            if reach <= dt:
                p1, energy_ws = target_w, (p0 + target_w) / 2 * reach + target_w * (dt - reach)
            else:
                p1 = p0 + math.copysign(self.ramp_w_per_s * dt, target_w - p0)
                energy_ws = (p0 + p1) / 2 * dt
        before = self.soc_pct
        soc = before - energy_ws / 3600.0 / self.capacity_wh * 100.0
        if energy_ws > 0 and before >= self.soc_floor_pct > soc:
            soc = self.soc_floor_pct  # the BMS stops the discharge at the floor
        self.soc_pct = _clamp(soc, 0.0, 100.0)
        self.power_w = p1


@dataclass(slots=True)
class Charger(Storage):
    """A bidirectional (V2H) charger with the EV's battery."""

    mode: ChargerMode = ChargerMode.STOPPED
    ev_connected: bool = True
    remote_enabled: bool = True  # commands are ignored unless the device is under remote control
    backup_armed: bool = False  # grid-forming (V2H backup) mode selected: "start" forms
    tripped: str | None = None
    anti_islanding: bool = True  # IEEE 1547: grid-following ceases to energize without a grid
    island_voltage_v: float = NOMINAL_V
    island_frequency_hz: float = NOMINAL_HZ
    watchdog: Watchdog = field(default_factory=Watchdog)
    watchdog_expired: bool = False
    # Devices differ in the order they accept: one refuses a stop while backup mode is on (it
    # must leave backup first), another refuses to leave backup mode while it runs or forms
    # (it must be stopped first). A refused command is a Modbus exception 3 and changes nothing.
    refuses_stop_in_backup: bool = False
    refuses_backup_off_running: bool = False

    def start(self) -> bool:
        """Grid-following at the present setpoint (clears a trip: a restart)."""
        if not self.remote_enabled:
            return False
        self.mode, self.tripped = ChargerMode.GRID_FOLLOWING, None
        return True

    def stop(self) -> bool:
        """Stop all power flow; also acknowledges a trip."""
        if not self.remote_enabled:
            return False
        self.mode, self.power_w, self.tripped = ChargerMode.STOPPED, 0.0, None
        return True

    def trip(self, reason: str) -> None:
        self.mode, self.power_w, self.tripped = ChargerMode.STOPPED, 0.0, reason

    def heartbeat(self, now: Timestamp) -> None:
        self.watchdog.refresh(now)
        self.watchdog_expired = False

    def update(self, now: Timestamp) -> None:
        # Quasar reg 88 semantics: no refresh within the timeout -> the charger goes idle.
        if self.watchdog.check(now):
            self.watchdog_expired = True
            self.mode, self.power_w = ChargerMode.STOPPED, 0.0

    @property
    def can_form(self) -> bool:
        return self.ev_connected and self.soc_pct > self.soc_floor_pct


@dataclass(slots=True)
class HomeBattery(Storage):
    """A battery behind a grid-following DER inverter (SunSpec 713 SoC, 704 WSet)."""

    capacity_wh: float = 10_000.0
    soc_pct: float = 50.0
    max_discharge_w: float = 5_000.0
    max_charge_w: float = 5_000.0


# --------------------------------------------------------------------------------------------
# PV and load


@dataclass(slots=True)
class Pv:
    """A PV inverter (possibly hybrid, with a :class:`HomeBattery` next to it)."""

    der_id: str = "pv"
    peak_w: float = 7_000.0  # w_max
    limit_w: float = 7_000.0
    power_w: float = 0.0
    anti_islanding: bool = True
    # Revert timer: on expiry the inverter falls back to ``fallback_limit_w`` (and a battery
    # behind it to idle) until the next heartbeat - the conservative default of CSIP-AUS.
    watchdog: Watchdog = field(default_factory=Watchdog)
    fallback_limit_w: float = 0.0
    reverted: bool = False
    powered: bool = True  # False: switched off at its isolator (no output, reports disconnected)
    # The nameplate it reports (SunSpec 702 WMaxRtg, 120 WRtg); None: ``peak_w``. A test
    # changes it to change the device's rating at run time (MUL-03 step d).
    rated_w: float | None = None

    def set_limit_pct(self, pct: float) -> None:
        self.limit_w = _clamp(pct, 0.0, 100.0) / 100.0 * self.peak_w

    @property
    def effective_limit_w(self) -> float:
        return self.fallback_limit_w if self.reverted else max(0.0, self.limit_w)

    def heartbeat(self, now: Timestamp) -> None:
        self.watchdog.refresh(now)
        self.reverted = False

    def update(self, now: Timestamp) -> None:
        if self.watchdog.check(now):
            self.reverted = True

    def available(self, now: Timestamp) -> float:
        # A daily curve: zero at night, a sine hump from 06:00 to 18:00 (local = UTC here).
        hour = (now / 3600.0) % 24
        sun = math.sin((hour - 6.0) / 12.0 * math.pi) if 6 <= hour <= 18 else 0.0
        return self.peak_w * max(0.0, sun) if self.powered else 0.0


@dataclass(slots=True)
class Load:
    """Household demand: a constant (for tests) or a deterministic daily curve."""

    constant_w: float | None = None
    base_w: float = 450.0
    morning_w: float = 900.0  # around 07:30
    evening_w: float = 2_600.0  # around 19:00
    # Motors and power supplies draw reactive power: a lagging displacement power factor.
    power_factor: float = 0.95

    def reactive(self, watts: float) -> float:
        """var drawn with ``watts`` (positive = lagging, drawn from the supply)."""
        return watts * math.tan(math.acos(self.power_factor))

    def demand(self, now: Timestamp) -> float:
        if self.constant_w is not None:
            return self.constant_w
        hour = (now / 3600.0) % 24
        return (
            self.base_w
            + self.morning_w * math.exp(-(((hour - 7.5) / 1.0) ** 2))
            + self.evening_w * math.exp(-(((hour - 19.0) / 1.8) ** 2))
        )


@dataclass(frozen=True, slots=True)
class Meter:
    """What the meter in the collar measures (grid side and load side of the relay)."""

    net_w: float  # + import
    net_var: float  # + import (the household's lagging var; DER run at unity power factor)
    current_l1_a: float
    current_l2_a: float
    grid_voltage_v: float
    grid_frequency_hz: float
    load_voltage_v: float
    load_frequency_hz: float


# --------------------------------------------------------------------------------------------
# The home


@dataclass(slots=True)
class HomePhysics:
    grid: Grid = field(default_factory=Grid)
    relay: Relay = field(default_factory=Relay)
    charger: Charger = field(default_factory=Charger)
    # Chargers that do not form the island, by device name: grid-following only (a second EV).
    followers: dict[str, Charger] = field(default_factory=dict)
    pv: Pv = field(default_factory=Pv)
    load: Load = field(default_factory=Load)
    battery: HomeBattery | None = None
    now: Timestamp = 0.0
    # Anything that would have hurt someone. Tests assert it stays empty for correct sequences.
    violations: list[str] = field(default_factory=list)
    max_step_s: float = 1.0
    # Watts per leg-amp: 240 on a 120/240 V split-phase service, 230 single phase, 690 on a
    # balanced 230/400 V three-phase one.
    watts_per_amp: float = NOMINAL_V
    _backfeeding: bool = field(default=False, init=False, repr=False)

    # --- commands, at ``now`` ------------------------------------------------------------

    def command_relay(self, target: RelayPosition) -> bool:
        """False when a sync-checking relay refuses to close onto a live island."""
        if target is RelayPosition.CLOSED and self.relay.refuses_live_close and self.forming:
            return False
        self.relay.command(target, self.now)
        self.settle()
        return True

    def form(self) -> bool:
        """Ask the charger to form a grid. It trips unless the relay is confirmed open."""
        c = self.charger
        if not c.remote_enabled or not c.ev_connected:
            return False
        if not self.relay.confirmed_open:
            self._violate(f"charger asked to form a grid with the relay {self.relay.state.value}")
            c.trip("asked to form a grid with the relay not confirmed open")
            return False
        c.mode, c.tripped = ChargerMode.GRID_FORMING, None
        self.settle()
        return True

    def start_charger(self) -> bool:
        """The vendor "start": grid-forming when backup mode is armed, else grid-following."""
        if self.charger.backup_armed:
            return self.form()
        ok = self.charger.start()
        self.settle()
        return ok

    def stop_charger(self) -> bool:
        if self.charger.refuses_stop_in_backup and self.charger.backup_armed:
            return False
        ok = self.charger.stop()
        self.settle()
        return ok

    def set_backup(self, on: bool) -> bool:
        """Arm or disarm grid-forming. A running charger switches at once; disarming ends an
        island (the charger stops)."""
        c = self.charger
        if not c.remote_enabled:
            return False
        if not on and c.refuses_backup_off_running and c.mode is not ChargerMode.STOPPED:
            return False
        c.backup_armed = on
        if on and c.mode is ChargerMode.GRID_FOLLOWING:
            return self.form()
        if not on and c.mode is ChargerMode.GRID_FORMING:
            c.stop()
        self.settle()
        return True

    def command_charger(self, mode: ChargerMode, setpoint_w: float | None = None) -> bool:
        c = self.charger
        if setpoint_w is not None:
            c.setpoint_w = setpoint_w
        match mode:
            case ChargerMode.GRID_FORMING:
                return self.form()
            case ChargerMode.GRID_FOLLOWING:
                ok = c.start()
            case ChargerMode.STOPPED:
                ok = c.stop()
        self.settle()
        return ok

    # --- time ----------------------------------------------------------------------------

    def advance(self, now: Timestamp) -> None:
        """Integrate up to ``now`` in steps of at most ``max_step_s``, stopping at each event."""
        self.settle()
        while self.now < now:
            t = min(now, self.now + self.max_step_s, self._next_event())
            if t <= self.now:  # an event due now was applied by settle(); never stall
                t = min(now, self.now + self.max_step_s)
            self._integrate(t - self.now)
            self.now = t
            self.settle()

    def settle(self) -> None:
        """Apply what is due at ``now`` and recompute every instantaneous quantity."""
        self.grid.update(self.now)
        was = self.relay.position
        self.relay.update(self.now)
        self.charger.update(self.now)
        for f in self.followers.values():
            f.update(self.now)
        self.pv.update(self.now)
        self._interlocks(closed_now=was is not RelayPosition.CLOSED)
        self.pv.power_w = self._pv_power()
        b = self.battery
        if b is not None:
            target, ramped = self._battery_target(b)
            if not ramped or math.isinf(b.ramp_w_per_s):
                b.power_w = target
        for f in self.followers.values():
            target, ramped = self._follower_target(f)
            if not ramped or math.isinf(f.ramp_w_per_s):
                f.power_w = target
        target, ramped = self._charger_target()
        if not ramped or math.isinf(self.charger.ramp_w_per_s):
            self.charger.power_w = target

    def watchdogs(self) -> list[Watchdog]:
        """Every device's revert timer."""
        return [
            self.relay.watchdog,
            self.charger.watchdog,
            self.pv.watchdog,
            *(f.watchdog for f in self.followers.values()),
        ]

    def _next_event(self) -> Timestamp:
        return min(
            self.grid.next_change(),
            self.relay.next_event(),
            self.charger.watchdog.deadline(),
            self.pv.watchdog.deadline(),
            *(f.watchdog.deadline() for f in self.followers.values()),
        )

    def _integrate(self, dt: float) -> None:
        for f in self.followers.values():
            target, ramped = self._follower_target(f)
            f.run(target, dt, ramped=ramped)
        target, ramped = self._charger_target()
        self.charger.run(target, dt, ramped=ramped)
        if self.battery is not None:
            target, ramped = self._battery_target(self.battery)
            self.battery.run(target, dt, ramped=ramped)

    # --- coupling ------------------------------------------------------------------------

    @property
    def grid_tied(self) -> bool:
        """The load side is energized by the utility."""
        return self.relay.position is RelayPosition.CLOSED and self.grid.up

    @property
    def forming(self) -> bool:
        c = self.charger
        return c.mode is ChargerMode.GRID_FORMING and c.can_form

    @property
    def load_side_live(self) -> bool:
        return self.grid_tied or self.forming

    def _violate(self, what: str) -> None:
        self.violations.append(f"{self.now}: {what}")

    def _interlocks(self, *, closed_now: bool) -> None:
        c = self.charger
        if c.mode is ChargerMode.GRID_FORMING and self.relay.position is not RelayPosition.OPEN:
            what = "relay closed onto a forming charger" if closed_now else "charger forming"
            self._violate(f"{what} with the relay {self.relay.position.value}")
            c.trip("relay closed while forming")
        # A grid-following source with anti-islanding defeated keeps energizing a dead line.
        dead_line = self.relay.position is RelayPosition.CLOSED and not self.grid.up
        backfeed = dead_line and (
            (c.mode is ChargerMode.GRID_FOLLOWING and not c.anti_islanding and c.setpoint_w > 0)
            or (not self.pv.anti_islanding and self.pv.available(self.now) > 0)
        )
        if backfeed and not self._backfeeding:
            self._violate("backfeed onto a dead grid (anti-islanding defeated)")
        self._backfeeding = backfeed

    def _pv_power(self) -> float:
        # Grid-following: it follows whichever grid is there, the charger's island included
        # (the engine holds it at 0 W in an island: docs/architecture.md, backfeed).
        live = self.load_side_live or (
            not self.pv.anti_islanding and self.relay.position is RelayPosition.CLOSED
        )
        return min(self.pv.available(self.now), self.pv.effective_limit_w) if live else 0.0

    def _battery_target(self, b: HomeBattery) -> tuple[float, bool]:
        if not self.load_side_live or self.pv.reverted:
            return 0.0, False
        return b.bounded(b.setpoint_w), True

    def _charger_target(self) -> tuple[float, bool]:
        """The charger's power target, and whether it moves there at the ramp rate."""
        c = self.charger
        if c.mode is ChargerMode.GRID_FORMING:
            if not c.can_form:
                return 0.0, False
            # A voltage source: it carries whatever the island needs, at once, up to its
            # ratings (the grid-following limits written by the gateway do not apply).
            others = self.pv.power_w + (self.battery.power_w if self.battery else 0.0)
            others += sum(f.power_w for f in self.followers.values())
            return c.bounded(self.load.demand(self.now) - others, limits=False), False
        if c.mode is ChargerMode.GRID_FOLLOWING and c.ev_connected:
            energized = self.grid_tied or (
                not c.anti_islanding and self.relay.position is RelayPosition.CLOSED
            )
            if energized:
                return c.bounded(c.setpoint_w), True
        return 0.0, False  # stopped, no EV, or ceased to energize (anti-islanding)

    def _follower_target(self, f: Charger) -> tuple[float, bool]:
        """A charger that does not form: like a PV inverter, it follows whichever grid is there,
        the island included (where it draws on the grid-former; the engine stops it)."""
        if f.mode is ChargerMode.GRID_FOLLOWING and f.ev_connected and self.load_side_live:
            return f.bounded(f.setpoint_w), True
        return 0.0, False

    def follower_command(self, name: str, role: str) -> bool:
        """A follower's command register: start, stop; it has no grid-forming to arm (asked to,
        it refuses, and that is a violation: the gateway must never ask it)."""
        f = self.followers[name]
        match role:
            case "start":
                ok = f.start()
            case "stop":
                ok = f.stop()
            case "grid_forming_off":
                ok = True
            case _:
                self._violate(f"charger {name} (not the grid-former) asked to {role}")
                return False
        self.settle()
        return ok

    # --- read-back -----------------------------------------------------------------------

    def served_load(self) -> float:
        return self.load.demand(self.now) if self.load_side_live else 0.0

    def supply(self) -> float:
        """Power into the home from its own sources."""
        b = self.battery.power_w if self.battery is not None else 0.0
        followers = sum(f.power_w for f in self.followers.values())
        return self.charger.power_w + self.pv.power_w + b + followers

    def meter(self) -> Meter:
        var = 0.0
        if self.grid_tied:
            net = self.served_load() - self.supply()
            var = self.load.reactive(self.served_load())
            load_v, load_hz = self.grid.voltage_v, self.grid.frequency_hz
        elif self.forming:
            net = 0.0
            load_v, load_hz = self.charger.island_voltage_v, self.charger.island_frequency_hz
        else:
            net, load_v, load_hz = 0.0, 0.0, 0.0
        # Balanced: the same current on every leg (L1 and L2 of a split-phase service).
        amps = abs(net) / self.watts_per_amp
        return Meter(
            net_w=net,
            net_var=var,
            current_l1_a=amps,
            current_l2_a=amps,
            grid_voltage_v=self.grid.voltage_v,
            grid_frequency_hz=self.grid.frequency_hz,
            load_voltage_v=load_v,
            load_frequency_hz=load_hz,
        )

    def charger_category(self, c: Charger | None = None) -> str:
        """A charger's state in the profile vocabulary (``ROLES`` state categories); the
        grid-former's by default."""
        c = self.charger if c is None else c
        if c.tripped is not None:
            return "fault"
        if not c.ev_connected:
            return "no_ev"
        if c.mode is ChargerMode.GRID_FORMING:
            return "forming"
        if c.power_w > _EPS_W:
            return "discharging"
        if c.power_w < -_EPS_W:
            return "charging"
        return "stopped"

    def relay_category(self) -> str:
        if RelayFault.FAIL_TO_OPEN in self.relay.faults:
            return "fault"
        return self.relay.state.value
