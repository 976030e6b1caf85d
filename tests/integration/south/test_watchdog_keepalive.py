"""Device watchdogs: kept alive while the gateway is healthy, left to expire when it is not.

A copy of the example vendor profile with a 2 s revert timer (refreshed every 0.5 s) runs on the
simulated home in real time; the simulator's charger stops by itself when its timer expires.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.core.island import ChargerMode
from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.store.sqlite import SqliteStore

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "acme-v2h.toml"


def quick_watchdog(tmp_path: Path) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "timeout_s = 30\nrefresh_s = 10" in text
    copy = tmp_path / "acme-quick.toml"
    copy.write_text(
        text.replace("timeout_s = 30\nrefresh_s = 10", "timeout_s = 2\nrefresh_s = 0.5")
    )
    return str(copy)


def test_a_running_gateway_keeps_the_charger_alive_and_a_dead_one_lets_it_stop(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        with SqliteStore(tmp_path / "gateway.db") as store:
            site = ModbusSite(store, demo_site(), start=START, charger=quick_watchdog(tmp_path))
            async with site:
                assert site.problems == []
                charger = site.home.physics.charger
                stop = asyncio.Event()
                loop = asyncio.create_task(site.runner.run(0.1, stop))
                await asyncio.sleep(3.0)  # 1.5 revert periods
                site.home.sync()
                assert charger.watchdog.timeout_s == 2
                assert not charger.watchdog.expired
                assert site.runner.cycles > 10
                # The gateway dies: no more cycles, no more keep-alives.
                stop.set()
                await loop
                await asyncio.sleep(2.5)
                site.home.sync()
                assert charger.watchdog.expired
                assert charger.mode is ChargerMode.STOPPED

    asyncio.run(body())


def test_keep_alives_stop_when_the_control_loop_is_not_healthy(tmp_path: Path) -> None:
    async def body() -> None:
        with SqliteStore(tmp_path / "gateway.db") as store:
            site = ModbusSite(store, demo_site(), start=START, charger=quick_watchdog(tmp_path))
            async with site:
                charger = site.home.physics.charger
                healthy = True
                stop = asyncio.Event()
                keep = asyncio.create_task(site.south.keepalive(lambda: healthy, stop))
                await asyncio.sleep(2.5)
                site.home.sync()
                assert not charger.watchdog.expired
                healthy = False  # a hung engine loop: the keep-alive task runs but holds off
                await asyncio.sleep(2.5)
                site.home.sync()
                assert charger.watchdog.expired
                stop.set()
                await keep

    asyncio.run(body())
