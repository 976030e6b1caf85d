"""A site meter apart from the relay (a CT meter in the panel, ``eastron-sdm630``), over Modbus
TCP against the simulated home: its net power and currents are the site's, and its voltage is
never taken for the grid's. In an island the panel meter reads the island the charger forms
(about 240 V); the engine must see the grid side, from the relay, as dead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.island import RelayPosition
from gateway.core.messages import Observed
from gateway.runtime.south import DeviceConfig, South
from gateway.sim.modbus import SimulatedHome
from gateway.sim.physics import Pv
from gateway.south.drivers.base import Confirmation
from gateway.south.profiles import load_profile, shipped


def _bare_relay(folder: Path) -> Path:
    """The reference relay's profile without its meter: a relay and its grid-side reading."""
    text = shipped()["meter-collar-relay"].read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.startswith(("net_", "current_l"))]
    text = "\n".join(kept).replace('name = "meter-collar-relay"', 'name = "bare-relay"')
    path = folder / "bare-relay.toml"
    path.write_text(text.replace("#:schema", "# schema"), encoding="utf-8")
    return path


def test_the_meter_gives_net_power_and_the_relay_the_grid_side(tmp_path: Path) -> None:
    relay = load_profile(_bare_relay(tmp_path))
    assert relay.role("net_power") is None

    async def body() -> tuple[Observed, Observed, float]:
        async with SimulatedHome(relay=relay, meter="eastron-sdm630", der=None) as home:
            profiles = {"bare-relay": relay}
            configs = [
                DeviceConfig(n, home.device(n).profile.name, url, forms_island=True)
                for n, url in home.endpoints.items()
            ]
            south = South(
                configs,
                now=home.clock.now,
                audit=lambda _r: None,
                confirm=Confirmation(timeout_s=1.0, poll_s=0.02),
                profiles=profiles,
            )
            try:
                assert await south.connect() == []
                home.physics.load.constant_w = 1_500.0
                home.physics.pv = Pv(peak_w=0.0, limit_w=0.0)  # the house draws 1.5 kW, all told
                home.sync()
                on_grid = await south.observe()
                # The grid fails; the relay opens and the EV forms the home's grid.
                home.physics.grid.fail()
                home.physics.command_relay(RelayPosition.OPEN)
                home.physics.advance(home.physics.now + 5.0)
                assert home.physics.form()
                home.sync()
                islanded = await south.observe()
                assert south.meter is not None
                panel_v = await south.meter.device.read_one("voltage_l1")
                assert isinstance(panel_v, float)
            finally:
                await south.close()
            return on_grid, islanded, panel_v

    on_grid, islanded, panel_v = asyncio.run(asyncio.wait_for(body(), 30))
    assert on_grid.meter is not None
    assert on_grid.meter.net_w == pytest.approx(1_500.0, abs=50)  # the meter's, float32 W
    assert on_grid.meter.phase_current_a["L1"] == pytest.approx(1_500.0 / 240.0, abs=0.5)
    assert on_grid.meter.grid_voltage_v == pytest.approx(240.0, abs=1)
    # Islanded: the panel meter reads the island's 240 V, the engine sees the relay's dead grid.
    assert panel_v == pytest.approx(240.0, abs=1)
    assert islanded.meter is not None
    assert islanded.relay is not None
    assert islanded.relay.position is RelayPosition.OPEN
    assert islanded.meter.grid_voltage_v == 0.0
    assert islanded.meter.net_w == 0.0
