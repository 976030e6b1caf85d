"""MUL-03 step d in the runner: the devices' own ratings are fed to the engine as DerRated,
one input per change, and a device that does not answer changes nothing."""

from __future__ import annotations

import asyncio
from typing import cast

from gateway.core.engine import Engine
from gateway.core.messages import DerRated, DeviceCommand, Direction, Input, WriteFailed
from gateway.demo.evening import demo_site
from gateway.runtime.runner import Runner
from gateway.runtime.south import South
from gateway.store.memory import MemoryStore


class Ratings:
    """A south side that only reads ratings: one scripted answer per read."""

    def __init__(self, *reads: dict[tuple[str, Direction], float]) -> None:
        self.reads = list(reads)

    async def read_ratings(self) -> dict[tuple[str, Direction], float]:
        return self.reads.pop(0)

    async def execute(self, cmd: DeviceCommand) -> WriteFailed:
        return WriteFailed(10.0, cmd.id, "no devices here")


def test_MUL_03_each_changed_rating_is_fed_once_and_the_engine_follows() -> None:
    ev, ev_charge, pv = ("ev", "discharge"), ("ev", "charge"), ("pv", "discharge")
    south = Ratings(
        {ev: 7_400.0, ev_charge: 7_400.0, pv: 7_000.0},
        {ev: 7_400.0, ev_charge: 7_400.0, pv: 7_000.0},  # unchanged: nothing fed
        {ev: 7_400.0},  # the PV did not answer: its rating stays (so does the EV's charge)
        {ev: 7_400.0, ev_charge: 6_000.0, pv: 5_000.0},
    )
    engine = Engine(demo_site(), draw=lambda bound: 0)
    runner = Runner(engine, MemoryStore(), cast("South", south), now=lambda: 10.0)
    fed: list[Input] = []
    feed = runner.feed

    async def recording(item: Input, *more: Input) -> None:
        fed.extend((item, *more))
        await feed(item, *more)

    runner.feed = recording  # type: ignore[method-assign]

    async def body() -> None:
        for _ in range(4):
            await runner.read_ratings()

    asyncio.run(body())
    assert [x for x in fed if isinstance(x, DerRated)] == [
        DerRated(10.0, "ev", 7_400.0),
        DerRated(10.0, "ev", 7_400.0, "charge"),
        DerRated(10.0, "pv", 7_000.0),
        DerRated(10.0, "ev", 6_000.0, "charge"),
        DerRated(10.0, "pv", 5_000.0),
    ]
    assert engine.der_ratings == {"pv": 5_000.0, "ev": 7_400.0}
    assert engine.der_charge_ratings == {"pv": 0.0, "ev": 6_000.0}
