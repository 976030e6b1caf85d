"""A second charger, which does not form the island, driven as a DER over Modbus TCP: it charges
at the engine's charge cap, never discharges, stops at a 0 W cap, and confirms a cap it cannot
use (no EV plugged in) instead of failing every cycle. For each shipped charger profile."""

from __future__ import annotations

import asyncio
import math

import pytest

from gateway.core.messages import DerLimit, DerTelemetry, WriteConfirmed, WriteFailed
from gateway.runtime.south import DeviceConfig, South
from gateway.sim.modbus import SimulatedHome
from gateway.south.drivers.base import Confirmation
from gateway.south.profile import DeviceKind
from gateway.south.profiles import load_shipped, shipped

CHARGERS = sorted(n for n in shipped() if load_shipped(n).kind is DeviceKind.CHARGER)


def _run(
    profile: str, caps: list[float], *, ev: bool = True
) -> tuple[list[WriteConfirmed | WriteFailed], list[DerTelemetry], SimulatedHome]:
    async def body() -> tuple[
        list[WriteConfirmed | WriteFailed], list[DerTelemetry], SimulatedHome
    ]:
        async with SimulatedHome(der=None, followers={"ev2": profile}) as home:
            home.physics.followers["ev2"].ev_connected = ev
            home.physics.followers["ev2"].max_charge_w = 7_000.0
            home.physics.followers["ev2"].ramp_w_per_s = math.inf  # read back at once
            configs = [
                DeviceConfig(n, home.device(n).profile.name, url, forms_island=n != "ev2")
                for n, url in home.endpoints.items()
            ]
            south = South(
                configs,
                now=home.clock.now,
                audit=lambda _record: None,
                confirm=Confirmation(timeout_s=2.0, poll_s=0.02),
            )
            outcomes: list[WriteConfirmed | WriteFailed] = []
            seen: list[DerTelemetry] = []
            try:
                assert await south.connect() == []
                for i, cap in enumerate(caps):
                    outcomes.append(await south.execute(DerLimit(str(i), "ev2", 5_000.0, cap, "t")))
                    await asyncio.sleep(0.05)
                    home.sync()
                    obs = await south.observe()
                    seen += [d for d in obs.ders if d.der_id == "ev2"]
            finally:
                await south.close()
            return outcomes, seen, home

    return asyncio.run(asyncio.wait_for(body(), 60))


@pytest.mark.parametrize("profile", CHARGERS)
def test_a_follower_charges_at_its_cap_and_stops_at_zero(profile: str) -> None:
    outcomes, seen, home = _run(profile, [4_000.0, 0.0])
    assert all(isinstance(o, WriteConfirmed) for o in outcomes), outcomes
    ev2 = home.physics.followers["ev2"]
    # Charging at the cap (it was given a 5 kW discharge cap too, which it must not use).
    assert seen[0].power_w == pytest.approx(-4_000.0, abs=60), seen
    assert seen[1].power_w == 0.0
    assert ev2.setpoint_w <= 0.0
    assert home.violations == []
    # The grid-former was never touched.
    assert home.physics.charger.power_w == 0.0


@pytest.mark.parametrize("profile", CHARGERS)
def test_a_follower_with_no_ev_confirms_its_cap(profile: str) -> None:
    outcomes, seen, home = _run(profile, [4_000.0, 2_000.0], ev=False)
    assert all(isinstance(o, WriteConfirmed) for o in outcomes), outcomes
    assert [d.power_w for d in seen] == [0.0, 0.0]
    # When the EV is plugged in, the cap is already there (it charges no faster).
    ev2 = home.physics.followers["ev2"]
    assert -ev2.bounded(ev2.setpoint_w) <= 2_000.0 + 1e-6
    assert home.violations == []
