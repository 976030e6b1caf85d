"""The runner as the north adapters' port (``core.ports.SitePort``): a live view of the runner
and its engine, the control loop run with the adapter's tasks under one supervision."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import Phase
from gateway.core.messages import DeviceCommand, Direction, Input, Observed, Tick, WriteFailed
from gateway.core.units import MRID
from gateway.demo.evening import demo_site
from gateway.runtime.runner import Runner
from gateway.runtime.south import South
from gateway.store.memory import MemoryStore


class Quiet:
    """A south side with no devices: empty snapshots, no ratings, every write refused."""

    async def observe(self) -> Observed:
        return Observed(at=10.0)

    async def read_ratings(self) -> dict[tuple[str, Direction], float]:
        return {}

    async def execute(self, cmd: DeviceCommand) -> WriteFailed:
        return WriteFailed(10.0, cmd.id, "no devices here")

    async def keepalive(self, healthy: object, stop: asyncio.Event) -> None:
        await stop.wait()


def _runner() -> Runner:
    engine = Engine(demo_site(), draw=lambda bound: 0)
    return Runner(engine, MemoryStore(), cast("South", Quiet()), now=lambda: 10.0)


def test_the_port_reads_the_runner_and_its_engine_at_each_call() -> None:
    runner = _runner()
    port = runner.port
    assert port is runner.port  # one view per runner
    assert port.phase() is None  # before the engine's first turn
    assert port.observed() is None
    assert port.now() == 10.0
    assert port.config is runner.engine.config
    assert port.scheduled(MRID("nope")) is None
    seen: list[Observed] = []
    port.on_cycle(seen.append)
    asyncio.run(runner.cycle())
    assert port.phase() is Phase.GRID_CONNECTED
    assert port.observed() == Observed(at=10.0) == runner.last_observed
    assert seen == [Observed(at=10.0)]
    assert port.cycles == 1
    assert port.controls() == runner.engine.resolved.controls
    assert port.ratings() == (runner.engine.der_ratings, runner.engine.der_charge_ratings)


def test_assess_is_the_engines() -> None:
    runner = _runner()
    island = ControlSet(connect=False)
    assert runner.port.assess(island, 10.0) == runner.engine.assess(island, 10.0)
    assert runner.port.assess(island, 10.0) == ["cannot island: the charger is not reporting"]


def test_feed_goes_through_the_runner_so_a_wrapped_feed_sees_it() -> None:
    runner = _runner()
    port = runner.port  # made before the wrap, as an adapter's is
    fed: list[Input] = []
    feed = runner.feed

    async def recording(item: Input, *more: Input) -> None:
        fed.extend((item, *more))
        await feed(item, *more)

    runner.feed = recording  # type: ignore[method-assign]
    asyncio.run(port.feed(Tick(10.0), Tick(11.0)))
    assert fed == [Tick(10.0), Tick(11.0)]


def test_run_runs_the_control_loop_with_the_adapters_tasks() -> None:
    runner = _runner()

    async def body() -> None:
        stop = asyncio.Event()

        async def adapter() -> None:
            while runner.port.cycles < 3:
                await asyncio.sleep(0.005)
            stop.set()

        await runner.port.run(stop, {"adapter": adapter}, period_s=0.005)

    asyncio.run(asyncio.wait_for(body(), 10))
    assert runner.cycles >= 3


def test_a_crashed_task_is_restarted_while_the_control_loop_goes_on() -> None:
    runner = _runner()
    runs: list[int] = []

    async def body() -> None:
        stop = asyncio.Event()

        async def adapter() -> None:
            runs.append(runner.port.cycles)
            if len(runs) < 2:
                raise RuntimeError("the link died")
            stop.set()

        await runner.port.run(stop, {"adapter": adapter}, period_s=0.005)

    asyncio.run(asyncio.wait_for(body(), 10))
    assert len(runs) == 2
    assert runs[1] > runs[0]  # the control loop kept cycling during the back-off


def test_run_wants_an_asyncio_event() -> None:
    class Flag:
        def is_set(self) -> bool:
            return False

        def set(self) -> None:
            pass

        async def wait(self) -> bool:
            return True

    with pytest.raises(TypeError, match=r"asyncio\.Event"):
        asyncio.run(_runner().port.run(Flag(), {}, period_s=1.0))
