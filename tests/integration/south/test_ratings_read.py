"""MUL-03 step d on the wire: the devices' own ratings, as ``South.read_ratings`` reads them
from the simulated home over Modbus TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.south.transport import Endpoint
from gateway.store.sqlite import SqliteStore


def _requests(link: object) -> int:
    assert isinstance(link, Endpoint)
    return link.stats.requests


def test_both_ratings_of_a_charger_that_holds_them_in_one_register_take_one_read(
    tmp_path: Path,
) -> None:
    """The Quasar's max_power is its rating both ways: read once, reported for both."""

    async def body() -> None:
        with SqliteStore(tmp_path / "gateway.db") as store:
            async with ModbusSite(store, demo_site(), start=START) as site:
                charger = site.south.charger
                assert charger is not None
                link = charger.device.link
                before = _requests(link)
                read = await site.south.read_ratings()
                assert _requests(link) - before == 1
                quasar = site.home.physics.charger.max_discharge_w
                assert read[("ev", "discharge")] == read[("ev", "charge")] == quasar

    asyncio.run(body())


def test_a_charger_with_two_rating_registers_reads_each(tmp_path: Path) -> None:
    async def body() -> None:
        with SqliteStore(tmp_path / "gateway.db") as store:
            site = ModbusSite(store, demo_site(), start=START, charger="sigenergy-dc")
            async with site:
                site.home.physics.charger.max_charge_w = 6_000.0
                charger = site.south.charger
                assert charger is not None
                before = _requests(charger.device.link)
                read = await site.south.read_ratings()
                assert _requests(charger.device.link) - before == 2
                assert read[("ev", "charge")] == 6_000.0
                assert read[("ev", "discharge")] == site.home.physics.charger.max_discharge_w

    asyncio.run(body())
