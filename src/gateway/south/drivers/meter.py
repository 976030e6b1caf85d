"""A site meter apart from the relay (a CT meter in the panel): net power, var, phase currents.

Its voltage is not used: a meter in the panel sits on the home side of a meter-collar relay and,
once the home is islanded, reads the island the charger forms, not the grid. The grid's voltage
and frequency (outage detection, the enter-service window) come from the relay's profile,
which must bind ``grid_voltage`` (``REQUIRED``), so a meter apart from it only brings the net
power and currents the backfeed coordinator needs.
"""

from __future__ import annotations

from gateway.core.messages import MeterTelemetry
from gateway.south.drivers.base import DriverBase
from gateway.south.drivers.meter_relay import PHASES, GridSide, net_reading

_ROLES = ("net_power", "net_reactive_power", *PHASES)


class Meter(DriverBase):
    async def observe(self, grid: GridSide) -> MeterTelemetry | None:
        """The meter's reading with the relay's ``grid`` side; stamped at the older of the two
        (before this request: see MeterRelay.observe), so neither looks newer than it is."""
        points = {r: self.binding(r).point for r in _ROLES if self.has(r)}
        at = self.now()
        values = await self.device.read(*dict.fromkeys(points.values()))
        return net_reading(self, min(at, grid.at), values, points, grid)
