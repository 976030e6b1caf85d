"""One feed's device work never holds the north side up for longer than a turn (issue 16).

A feed whose commands keep bringing back confirmations that cause more commands (here an
unpaced falling ramp: each confirmation moves the line a little and a lower limit is never held
back) used to keep the runner's lock for as long as that went on. Now it gives way after
``TURN_STEPS`` engine steps or ``TURN_S`` seconds: inputs waiting (the north side's) go first,
and its follow-ups go on in the background. A north input that continues the flood itself
(a lower limit is never held back) returns after its turn too: the first version of the bound
let such a feed carry the flood to its end (2.6 s, one run in five). The devices are the pure
home model behind a South-shaped adapter that takes a millisecond per command, on a clock that
runs in real time (the wire, the time).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import cast

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import Phase
from gateway.core.messages import (
    DefaultsReceived,
    DerLimit,
    DeviceCommand,
    Observed,
    Tick,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.site import SiteConfig
from gateway.runtime.runner import Runner, audit_to
from gateway.runtime.south import South
from gateway.sim.home import HomeModel
from gateway.store.sqlite import SqliteStore

T0 = 1_800_000_000.0 + 2 * 3600  # the simulated PV near its peak
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


class WireSouth:
    """The home model, a millisecond per command, its clock following real time."""

    def __init__(self, home: HomeModel, start: float) -> None:
        self.home, self.start = home, start
        self.limits = 0

    def now(self) -> float:
        return T0 + (time.monotonic() - self.start)

    async def observe(self) -> Observed:
        self.home.advance(self.now())
        return self.home.observe()

    async def execute(self, cmd: DeviceCommand) -> WriteConfirmed | WriteFailed:
        await asyncio.sleep(0.001)
        self.home.advance(self.now())
        self.limits += isinstance(cmd, DerLimit)
        return self.home.execute(cmd)


def test_a_feed_flooding_the_devices_lets_a_north_input_through_within_a_turn(
    tmp_path: Path,
) -> None:
    async def body() -> tuple[list[float], int, int]:
        with SqliteStore(tmp_path / "g.db") as store:
            home = HomeModel(now=T0, load_w=500.0)
            engine = Engine(CONFIG, draw=lambda b: 0)
            # Pacing off (the flood's cause, so that the runner's own bound is what is tested).
            engine.pace({"pv": 1e-9, "ev": 1e-9})
            south = WireSouth(home, time.monotonic())
            port = cast("South", south)
            runner = Runner(engine, store, port, now=south.now, trail=audit_to(store))
            for _ in range(3):
                await runner.cycle()
            assert engine.phase is Phase.GRID_CONNECTED
            export = -home.physics.meter().net_w
            assert export > 1000, export
            rate = 2_000.0 / (7_000 + 9_600) * 100  # %/s of the rating: 2 kW/s, ~3 s
            limit = ControlSet(export_limit_w=0.0, ramp_rate_pct_s=rate)
            flood = asyncio.create_task(runner.feed(DefaultsReceived(south.now(), "P", 1, limit)))
            waits: list[float] = []
            for _ in range(5):
                await asyncio.sleep(0.2)
                if flood.done():
                    break  # (only inputs fed while the ramp runs count)
                asked = time.monotonic()
                await runner.feed(Tick(south.now()))  # a north input, mid-ramp
                waits.append(time.monotonic() - asked)
            await flood
            deadline = time.monotonic() + 20
            while engine.ramps.ramping():  # the device steps go on in the background
                assert time.monotonic() < deadline, "the ramp never ended"
                await asyncio.sleep(0.05)
            return waits, south.limits, runner.turns_cut

    waits, limits, cut = asyncio.run(body())
    assert waits, "the ramp was over before a north input was fed"
    assert limits > 100, f"no flood to bound ({limits} limits written)"
    # Each north input waited for at most about one turn, not for the ramp to end.
    assert max(waits) < 1.5, waits  # a turn is at most TURN_S = 1 s; and some slack
    assert cut > 0
