"""A simulated home's physics, with no I/O: grid, islanding relay, V2H charger, PV and load.

The Modbus simulator (issue 3) serves this model's state through pymodbus; the demo and the
engine's end-to-end tests drive it directly. Time is whatever the caller says it is, so a
300 s enter-service delay takes no wall-clock time.

Conventions: power into the home is positive for sources (charger discharge, PV); the meter's
``net_w`` is positive when the home imports from the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.messages import (
    ChargerCommand,
    ChargerTelemetry,
    DerLimit,
    DerTelemetry,
    DeviceCommand,
    MeterTelemetry,
    Observed,
    RelayCommand,
    RelayTelemetry,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.units import Timestamp


@dataclass(slots=True)
class Grid:
    voltage_v: float = 240.0
    frequency_hz: float = 60.0

    @property
    def up(self) -> bool:
        return self.voltage_v > 0.0

    def fail(self) -> None:
        self.voltage_v, self.frequency_hz = 0.0, 0.0

    def restore(self, voltage_v: float = 240.0, frequency_hz: float = 60.0) -> None:
        self.voltage_v, self.frequency_hz = voltage_v, frequency_hz


@dataclass(slots=True)
class Relay:
    position: RelayPosition = RelayPosition.CLOSED
    fail_to_open: bool = False
    # When a commanded move completes (latency), and to what.
    moving_to: RelayPosition | None = None
    move_done_at: Timestamp = 0.0
    latency_s: float = 0.2


@dataclass(slots=True)
class Charger:
    capacity_wh: float = 60_000.0
    soc_pct: float = 80.0
    max_discharge_w: float = 9_600.0
    max_charge_w: float = 9_600.0
    mode: ChargerMode = ChargerMode.STOPPED
    setpoint_w: float = 0.0
    power_w: float = 0.0
    ev_connected: bool = True
    tripped: str | None = None


@dataclass(slots=True)
class Pv:
    der_id: str = "pv"
    peak_w: float = 7_000.0
    limit_w: float = 7_000.0
    power_w: float = 0.0


@dataclass(slots=True)
class HomeModel:
    """Physics plus the devices' command/read-back behaviour."""

    grid: Grid = field(default_factory=Grid)
    relay: Relay = field(default_factory=Relay)
    charger: Charger = field(default_factory=Charger)
    pv: Pv = field(default_factory=Pv)
    load_w: float = 1_500.0
    now: Timestamp = 0.0
    # Anything that would have hurt someone: the test suite asserts this stays empty.
    violations: list[str] = field(default_factory=list)

    # --- commands -------------------------------------------------------------------------

    def execute(self, cmd: DeviceCommand) -> WriteConfirmed | WriteFailed:
        """Apply one command and answer as a driver with read-back would."""
        match cmd:
            case RelayCommand():
                r = self.relay
                if cmd.position is RelayPosition.OPEN and r.fail_to_open:
                    return WriteFailed(self.now, cmd.id, "relay read back closed after open")
                r.moving_to, r.move_done_at = cmd.position, self.now + r.latency_s
                if cmd.position is RelayPosition.CLOSED and self.charger.mode is (
                    ChargerMode.GRID_FORMING
                ):
                    self.violations.append(f"{self.now}: relay closed onto a forming charger")
                self._settle_relay(self.now + r.latency_s)
                return WriteConfirmed(self.now + r.latency_s, cmd.id)
            case ChargerCommand():
                c = self.charger
                if cmd.mode is ChargerMode.GRID_FORMING and self.relay.position is not (
                    RelayPosition.OPEN
                ):
                    # A real charger trips here; the simulator records it as a violation.
                    c.tripped = "asked to form a grid with the relay closed"
                    self.violations.append(f"{self.now}: {c.tripped}")
                    c.mode = ChargerMode.STOPPED
                    return WriteFailed(self.now, cmd.id, c.tripped)
                c.mode, c.setpoint_w = cmd.mode, cmd.setpoint_w
                self._settle_charger()
                return WriteConfirmed(self.now, cmd.id)
            case DerLimit():
                self.pv.limit_w = max(0.0, cmd.max_discharge_w)
                self._settle_pv()
                return WriteConfirmed(self.now, cmd.id)

    # --- physics --------------------------------------------------------------------------

    def advance(self, now: Timestamp) -> None:
        dt = max(0.0, now - self.now)
        self._settle_relay(now)
        self.now = now
        self._settle_pv()
        self._settle_charger()
        c = self.charger
        c.soc_pct = max(0.0, min(100.0, c.soc_pct - c.power_w * dt / 3600.0 / c.capacity_wh * 100))

    def _settle_relay(self, at: Timestamp) -> None:
        r = self.relay
        if r.moving_to is not None and at >= r.move_done_at:
            r.position, r.moving_to = r.moving_to, None

    def _settle_pv(self) -> None:
        # A daily curve: zero at night, a sine hump from 06:00 to 18:00 (local = UTC here).
        hour = (self.now / 3600.0) % 24
        sun = max(0.0, math.sin((hour - 6.0) / 12.0 * math.pi)) if 6 <= hour <= 18 else 0.0
        available = self.pv.peak_w * sun
        grid_tied = self.relay.position is RelayPosition.CLOSED and self.grid.up
        # Grid-following PV ceases to energize without a grid (IEEE 1547 anti-islanding).
        self.pv.power_w = min(available, self.pv.limit_w) if grid_tied else 0.0

    def _settle_charger(self) -> None:
        c = self.charger
        grid_tied = self.relay.position is RelayPosition.CLOSED and self.grid.up
        if c.mode is ChargerMode.GRID_FORMING:
            if self.relay.position is not RelayPosition.OPEN:
                self.violations.append(f"{self.now}: charger forming with the relay closed")
            c.power_w = self.load_w - self.pv.power_w if c.soc_pct > 0 else 0.0
        elif c.mode is ChargerMode.GRID_FOLLOWING and grid_tied and c.ev_connected:
            c.power_w = max(-c.max_charge_w, min(c.max_discharge_w, c.setpoint_w))
        else:
            c.power_w = 0.0

    # --- read-back ------------------------------------------------------------------------

    def observe(self) -> Observed:
        grid_side_v = self.grid.voltage_v
        home_supply = self.charger.power_w + self.pv.power_w
        net = self.load_w - home_supply if self.relay.position is RelayPosition.CLOSED else 0.0
        amps = abs(net) / 240.0
        return Observed(
            self.now,
            meter=MeterTelemetry(
                self.now,
                net_w=net,
                grid_voltage_v=grid_side_v,
                grid_frequency_hz=self.grid.frequency_hz,
                phase_current_a={"L1": amps, "L2": amps},
            ),
            relay=RelayTelemetry(self.now, self.relay.position),
            charger=ChargerTelemetry(
                self.now,
                self.charger.mode,
                self.charger.power_w,
                round(self.charger.soc_pct, 2),
                self.charger.ev_connected,
            ),
            ders=(DerTelemetry(self.now, self.pv.der_id, self.pv.power_w),),
        )
