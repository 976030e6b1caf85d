"""Confirmation waits poll at a bounded rate: the first re-read is fast, later ones back off.

A relay with a 3 s travel time, on the simulated home over Modbus TCP, is opened through the
driver with the runtime's confirmation (first re-read after 20 ms); the reads of that one wait
are counted at the endpoint. A fixed 20 ms poll reads it about 150 times.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from gateway.core.island import RelayPosition
from gateway.core.messages import RelayCommand, WriteConfirmed
from gateway.demo.evening import START, demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.south.transport import Endpoint
from gateway.store.sqlite import SqliteStore

TRAVEL_S = 3.0


def test_a_long_wait_reads_the_relay_a_bounded_number_of_times(tmp_path: Path) -> None:
    async def body() -> tuple[int, float]:
        with SqliteStore(tmp_path / "gateway.db") as store:
            async with ModbusSite(store, demo_site(), start=START) as site:
                relay = site.south.relay
                assert relay is not None
                link = relay.device.link
                assert isinstance(link, Endpoint)
                site.home.physics.relay.latency_s = TRAVEL_S
                loop = asyncio.get_running_loop()
                before, began = link.stats.requests, loop.time()
                done = await relay.execute(RelayCommand("r1", RelayPosition.OPEN, "test"))
                took = loop.time() - began
                assert isinstance(done, WriteConfirmed), done
                assert site.home.violations == []
                return link.stats.requests - before, took

    requests, took = asyncio.run(body())
    first, cap = 0.02, 0.25  # ModbusSite's poll_s, and the cap
    # The write, the reads of the wait (one at once, a few while the pause doubles from 20 ms
    # to the cap, then one per cap), and the home-side witness read.
    bound = 1 + (1 + math.ceil(math.log2(cap / first)) + math.ceil(TRAVEL_S / cap)) + 1
    assert requests <= bound, f"{requests} requests in {took:.2f} s (bound {bound})"
    assert TRAVEL_S <= took < TRAVEL_S + cap + 0.2  # and the open is still seen promptly
