"""The meter-collar islanding relay and the site meter behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.island import RelayPosition
from gateway.core.messages import (
    MeterTelemetry,
    RelayCommand,
    RelayTelemetry,
    WriteConfirmed,
    WriteFailed,
)
from gateway.south.codec import Value
from gateway.south.drivers.base import DriverBase
from gateway.south.profile import sign

PHASES = {"current_l1": "L1", "current_l2": "L2", "current_l3": "L3"}
_MEASURES = (
    "net_power",
    "net_reactive_power",
    "grid_voltage",
    "grid_frequency",
    "load_voltage",
    "load_frequency",
)


class MeterRelay(DriverBase):
    grid_side: GridSide | None = None  # the last read of the utility side

    async def execute(self, cmd: RelayCommand) -> WriteConfirmed | WriteFailed:
        """Command the relay, then confirm from its auxiliary-contact state (devices.md §4.2
        step 3): the command register itself proves nothing about the contacts."""
        opening = cmd.position is RelayPosition.OPEN
        role, target = ("relay_open", "open") if opening else ("relay_close", "closed")

        faults = (self.binding("relay_faults").point,) if self.has("relay_faults") else ()

        async def step() -> None:
            await self.command(role, reason=cmd.reason, correlation_id=cmd.id)
            await self.await_category(
                "relay_state",
                {target},
                reason=cmd.reason,
                correlation_id=cmd.id,
                also=self._home_side_dead if opening else None,
                extra=faults,
                failed=self._fault,
            )

        return await self.guarded(cmd.id, step)

    def _fault(self, category: str | None, values: Mapping[str, Value | None]) -> str | None:
        """A relay that reports a fault has failed the move now: its state reads the fault
        category, or its fault bits (``relay_faults``) are not all clear. Waiting out the
        confirmation timeout would only delay the engine's FAULT by 5 s."""
        if category == "fault":
            return f"the relay reports a fault (relay_state reads fault{self._bits(values)})"
        bits = self._bits(values)
        return f"the relay reports a fault{bits}" if bits else None

    def _bits(self, values: Mapping[str, Value | None]) -> str:
        """`: relay_faults FAIL_TO_OPEN, bit 5` for the bits set that the profile does not
        ignore; "" when none are, or the role is unbound."""
        if not self.has("relay_faults"):
            return ""
        binding = self.binding("relay_faults")
        point = self.device.point(binding.point)
        raw = values.get(point.name)
        if not isinstance(raw, int) or isinstance(raw, bool):
            return ""
        names = {bit: name for name, bit in point.symbols.items()}
        bits = [n for n in range(16 * point.count) if raw >> n & 1 and n not in binding.ignore]
        if not bits:
            return ""
        return f": {point.name} " + ", ".join(names.get(n, f"bit {n}") for n in bits)

    async def _home_side_dead(self) -> str | None:
        """The second witness of an open relay: the home side carries no voltage (the charger
        is stopped before the relay opens). A live home side means the auxiliary contact lies
        or the contacts are welded, and the charger must not form a grid onto it."""
        if not self.has("load_voltage"):
            return None
        v = await self.device.read_one(self.binding("load_voltage").point)
        if isinstance(v, int | float) and v >= self.confirm.dead_bus_v:
            return f"the home side still reads {v:g} V (contacts welded, or the contact lies?)"
        return None

    async def observe(self) -> tuple[MeterTelemetry | None, RelayTelemetry]:
        roles = [r for r in (*_MEASURES, *PHASES) if self.has(r)]
        state = self.binding("relay_state")
        points = {r: self.binding(r).point for r in roles}
        # Stamped before the request: the device sampled somewhere between here and the reply,
        # and a reading that left before a confirmed relay command must not pass for newer
        # than it (a read queued behind the "open" write resumes after its confirmation).
        at = self.now()
        values = await self.device.read(*dict.fromkeys((*state.points, *points.values())))
        category = state.decide(values)
        # Anything but a definite open/closed (moving, fault, unknown symbol) is UNKNOWN, which
        # the engine treats as closed for every safety decision.
        position = {"open": RelayPosition.OPEN, "closed": RelayPosition.CLOSED}.get(
            category or "", RelayPosition.UNKNOWN
        )

        def num(role: str) -> float | None:
            v = values.get(points[role]) if role in points else None
            return float(v) if isinstance(v, int | float) else None

        self.grid_side = GridSide(at, num("grid_voltage"), num("grid_frequency"))
        return net_reading(self, at, values, points, self.grid_side), RelayTelemetry(
            at, position, num("load_voltage")
        )


@dataclass(frozen=True, slots=True)
class GridSide:
    """The relay's own reading of the utility side: the only one that shows the grid's return
    while the home runs islanded (a meter in the panel then reads the island)."""

    at: float
    voltage_v: float | None
    frequency_hz: float | None


def net_reading(
    driver: DriverBase,
    at: float,
    values: Mapping[str, Value | None],
    points: Mapping[str, str],
    grid: GridSide,
) -> MeterTelemetry | None:
    """The site meter's reading from ``values`` (role -> point in ``points``), with the utility
    side's voltage and frequency from ``grid``; None without a net power reading."""

    def num(role: str) -> float | None:
        v = values.get(points[role]) if role in points else None
        return float(v) if isinstance(v, int | float) else None

    net = num("net_power")
    if net is None:
        # "Not implemented" is not zero: without a net reading the engine falls back to the
        # static 120 % allowance, which is the safe side.
        return None
    var = num("net_reactive_power")
    if var is not None:
        var *= sign(driver.binding("net_reactive_power").positive)
    return MeterTelemetry(
        at,
        net_w=net * sign(driver.binding("net_power").positive),
        net_var=var,
        grid_voltage_v=grid.voltage_v,
        grid_frequency_hz=grid.frequency_hz,
        phase_current_a={
            phase: v for role, phase in PHASES.items() if (v := num(role)) is not None
        },
    )
