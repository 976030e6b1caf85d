"""A charger that does not form the island: an EV charger the engine treats as one more DER.

A home may have two chargers (two EVs) but only one can form the home's grid in an island: the
one the site file marks ``forms_island``. Every other charger *follows*: the engine gives it a
charge cap like any other DER's (``DerLimit``: the import limit, the main breaker and the busbar,
shared among the DER in allocation order), and the driver runs the EV's charging at that cap.

Choices, each on the safe side:

* **It never discharges.** Its discharge cap is 0 W in the engine (the backfeed allowance goes to
  the DER that use it), and the driver never writes a positive setpoint.
* **A cap is a ceiling, not an order.** The driver writes the cap as the charge setpoint and
  starts the charger; an EV that is full, or no EV at all, draws nothing, which is within any
  cap, so ``stopped`` or ``no_ev`` confirms the command (a charger that reads ``discharging``
  does not). The setpoint is in place when an EV is plugged in.
* **Below the charger's minimum, it stops.** A cap at or under ``zero_w`` (island, outage, stale
  meter, energize = false: each gives 0 W) stops the charger and waits for zero power, by the
  profile's stop sequence, as for the grid-former.
"""

from __future__ import annotations

from gateway.core.island import ChargerMode
from gateway.core.messages import (
    ChargerCommand,
    DerLimit,
    DerTelemetry,
    WriteConfirmed,
    WriteFailed,
)
from gateway.south.drivers.charger import STOPPED, Charger

#: What a charging command may read back: charging, or idle within the cap.
_WITHIN_CAP = frozenset({"charging", *STOPPED})


class FollowerCharger(Charger):
    """A :class:`Charger` behind the engine's DER interface (``DerLimit`` in, ``DerTelemetry``
    out). ``der_id`` is its DER id in the engine (its device name)."""

    der_id: str = ""

    async def limit(self, cmd: DerLimit) -> WriteConfirmed | WriteFailed:
        charge = cmd.max_charge_w
        if charge > self.zero_w:
            order = ChargerCommand(cmd.id, ChargerMode.GRID_FOLLOWING, -charge, cmd.reason)
            return await self.guarded(cmd.id, lambda: self._charge(order))
        stop = ChargerCommand(cmd.id, ChargerMode.STOPPED, 0.0, cmd.reason)
        return await self.guarded(cmd.id, lambda: self._stop(stop))

    async def _charge(self, cmd: ChargerCommand) -> None:
        await self._write_setpoint(cmd)
        await self.command("start", reason=cmd.reason, correlation_id=cmd.id)
        await self.await_category("state", _WITHIN_CAP, reason=cmd.reason, correlation_id=cmd.id)

    async def observe_der(self) -> DerTelemetry:
        c = await self.observe()
        return DerTelemetry(c.at, self.der_id, c.power_w)
