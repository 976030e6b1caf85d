"""The simulated home as the engine sees it: commands in, read-backs out, no I/O.

A thin adapter over the device-level physics (``physics.py``), which the Modbus simulator drives
register by register; the demo and the engine's end-to-end tests drive it here, one
``DeviceCommand`` at a time, with every write confirmed as a driver with read-back would. Time is
whatever the caller says it is, so a 300 s enter-service delay takes no wall-clock time.

The engine tests want an ideal home: the charger reaches its setpoint at once (no ramp), a
relay move is confirmed within its latency, no watchdogs, and a constant household load.

Conventions: power into the home is positive for sources (charger discharge, PV); the meter's
``net_w`` is positive when the home imports from the grid.
"""

from __future__ import annotations

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
from gateway.sim.physics import Charger, Grid, HomePhysics, Load, Pv, Relay, RelayFault


class HomeModel:
    """Physics plus the devices' command/read-back behaviour."""

    def __init__(
        self, now: Timestamp = 0.0, load_w: float = 1_500.0, physics: HomePhysics | None = None
    ) -> None:
        self.physics = (
            physics if physics is not None else HomePhysics(now=now, load=Load(constant_w=load_w))
        )

    # The devices, for tests and scripts that poke at them directly.
    @property
    def grid(self) -> Grid:
        return self.physics.grid

    @property
    def relay(self) -> Relay:
        return self.physics.relay

    @property
    def charger(self) -> Charger:
        return self.physics.charger

    @property
    def pv(self) -> Pv:
        return self.physics.pv

    @property
    def now(self) -> Timestamp:
        return self.physics.now

    @property
    def violations(self) -> list[str]:
        return self.physics.violations

    @property
    def load_w(self) -> float:
        return self.physics.load.demand(self.now)

    @load_w.setter
    def load_w(self, watts: float) -> None:
        self.physics.load.constant_w = watts

    # --- commands -------------------------------------------------------------------------

    def execute(self, cmd: DeviceCommand) -> WriteConfirmed | WriteFailed:
        """Apply one command and answer as a driver with read-back would."""
        p = self.physics
        match cmd:
            case RelayCommand():
                p.command_relay(cmd.position)
                # The driver polls the aux contact until the move is done (or not).
                done = self.now + self.relay.latency_s
                self.relay.update(done)
                p.settle()
                if RelayFault.FAIL_TO_OPEN in self.relay.faults:
                    return WriteFailed(self.now, cmd.id, "relay read back closed after open")
                return WriteConfirmed(done, cmd.id)
            case ChargerCommand():
                if p.command_charger(cmd.mode, cmd.setpoint_w):
                    return WriteConfirmed(self.now, cmd.id)
                # Tripped (forming without a confirmed-open relay), or refused (no EV).
                why = self.charger.tripped or f"charger refused {cmd.mode.value}"
                return WriteFailed(self.now, cmd.id, why)
            case DerLimit():
                self.pv.limit_w = max(0.0, cmd.max_discharge_w)
                p.settle()
                return WriteConfirmed(self.now, cmd.id)

    # --- physics --------------------------------------------------------------------------

    def advance(self, now: Timestamp) -> None:
        self.physics.advance(now)

    # --- read-back ------------------------------------------------------------------------

    def observe(self) -> Observed:
        p = self.physics
        m = p.meter()
        return Observed(
            self.now,
            meter=MeterTelemetry(
                self.now,
                net_w=m.net_w,
                grid_voltage_v=m.grid_voltage_v,
                grid_frequency_hz=m.grid_frequency_hz,
                phase_current_a={"L1": m.current_l1_a, "L2": m.current_l2_a},
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
