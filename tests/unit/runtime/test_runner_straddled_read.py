"""A control cycle whose reads straddle a device write is read again (found by the OpenADR 3
conformance suite, OA3-08).

``Runner.cycle`` reads the devices outside the runner's lock, so a north input can land in the
middle: the meter is read, a feed raises the export limit and writes the PV's new cap, then the
PV is read. The observation then holds the meter from before the write and the PV from after
it, the engine's estimate of the house load (net + DER output) is off by the PV's step, and the
PV was given that much too much: at noon, 500 W of house, a limit raised from 1 kW to 2.5 kW
put the PV at 4.5 kW, not 3 kW, and the home exported 4 kW for a cycle (the suite saw it at the
meter in about one run in four). The devices here are the pure home model behind a
South-shaped adapter whose read waits, once, between the meter and the rest for such a write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import cast

from test_runner_turns import CONFIG, T0  # the same site: a PV and a V2H charger

from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.messages import DefaultsReceived, DerLimit, DeviceCommand, Observed
from gateway.runtime.runner import Runner, audit_to
from gateway.runtime.south import South
from gateway.sim.home import HomeModel
from gateway.store.sqlite import SqliteStore

LOAD_W = 500.0


class StraddledSouth:
    """The home model; with ``straddle`` set, the next read takes the meter, then waits for
    ``written`` (a write lands), then reads the rest: one observation across a write."""

    def __init__(self, home: HomeModel, start: float) -> None:
        self.home, self.start = home, start
        self.straddle = False
        self.meter_read = asyncio.Event()
        self.written = asyncio.Event()
        self.pv_caps: list[float] = []

    def now(self) -> float:
        return T0 + (time.monotonic() - self.start)

    async def observe(self) -> Observed:
        self.home.advance(self.now())
        first = self.home.observe()
        if self.straddle:
            self.straddle = False
            self.meter_read.set()
            await self.written.wait()
        self.home.advance(self.now())
        return dataclasses.replace(self.home.observe(), meter=first.meter)

    async def execute(self, cmd: DeviceCommand) -> object:
        self.home.advance(self.now())
        if isinstance(cmd, DerLimit) and cmd.der_id == "pv":
            self.pv_caps.append(cmd.max_discharge_w)
        return self.home.execute(cmd)


def _limit(south: StraddledSouth, watts: float) -> DefaultsReceived:
    return DefaultsReceived(south.now(), "P", 1, ControlSet(export_limit_w=watts), "openadr3")


def test_a_limit_raised_while_the_devices_are_read_does_not_overshoot(tmp_path: Path) -> None:
    async def body() -> tuple[list[float], float]:
        with SqliteStore(tmp_path / "g.db") as store:
            home = HomeModel(now=T0, load_w=LOAD_W)
            engine = Engine(CONFIG, draw=lambda b: 0)
            engine.pace({"pv": 1e-9, "ev": 1e-9})  # no pacing: the runner is what is tested
            south = StraddledSouth(home, time.monotonic())
            runner = Runner(
                engine, store, cast("South", south), now=south.now, trail=audit_to(store)
            )
            for _ in range(2):
                await runner.cycle()
            await runner.feed(_limit(south, 1000.0))
            for _ in range(3):
                await runner.cycle()
            assert abs(-home.physics.meter().net_w - 1000.0) <= 50  # 1 kW, the PV at 1.5 kW
            south.pv_caps.clear()
            south.straddle = True
            cycle = asyncio.create_task(runner.cycle())
            await south.meter_read.wait()
            await runner.feed(_limit(south, 2500.0))  # raised mid-read: the PV to 3 kW
            south.written.set()
            await cycle
            for _ in range(3):
                await runner.cycle()
            return south.pv_caps, -home.physics.meter().net_w

    caps, export = asyncio.run(body())
    assert caps, "the raised limit wrote nothing to the PV"
    # Never more than the new limit plus the house: 3 kW (not 4.5 kW from a straddled read).
    assert max(caps) <= 2500.0 + LOAD_W + 50, caps
    assert abs(export - 2500.0) <= 50, export
