"""The Runner's write-ahead rule and what it costs: every record of a step is committed before
anything that step (or a later one) sends to a device, and a step that sends nothing shares the
next step's commit. The devices are the pure home model behind a South-shaped adapter (a fake
of the wire is fine here: the rule is about the order of commits and calls)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import Phase
from gateway.core.messages import (
    ChargerCommand,
    DerLimit,
    DeviceCommand,
    EventReceived,
    Observed,
    RelayCommand,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.schedule import Event
from gateway.core.site import SiteConfig
from gateway.core.units import MRID
from gateway.runtime.runner import Runner, audit_to
from gateway.sim.home import HomeModel
from gateway.store.sqlite import SqliteStore

T0 = 1_800_000_000.0 + 16 * 3600
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


class CountingStore(SqliteStore):
    """A real SQLite store that counts its outermost commits."""

    commits = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outer = self._depth == 0
        with super().transaction():
            yield
        if outer:
            self.commits += 1


class ModelSouth:
    """The home model behind the two calls the Runner makes; checks write-ahead on each call."""

    def __init__(self, home: HomeModel, store: CountingStore) -> None:
        self.home, self.store = home, store
        self.sent: list[tuple[DeviceCommand, int]] = []  # each command, commits before it

    async def observe(self) -> Observed:
        return self.home.observe()

    async def execute(self, cmd: DeviceCommand) -> WriteConfirmed | WriteFailed:
        commanded = {(r.point, r.outcome) for r in self.store.audit() if r.correlation_id == cmd.id}
        assert commanded, f"{cmd.id} reached the wire before its commanded record was committed"
        self.sent.append((cmd, self.store.commits))
        return self.home.execute(cmd)


def test_islanding_commits_each_step_before_the_wire_and_merges_the_waiting_one(
    tmp_path: Path,
) -> None:
    async def body() -> tuple[ModelSouth, int, Engine]:
        with CountingStore(tmp_path / "g.db") as store:
            home = HomeModel(now=T0)
            engine = Engine(CONFIG, draw=lambda b: 0)
            south = ModelSouth(home, store)
            runner = Runner(engine, store, south, now=lambda: home.now, trail=audit_to(store))
            for _ in range(5):
                home.advance(home.now + 1)
                await runner.cycle()
            assert engine.phase is Phase.GRID_CONNECTED
            before, south.sent = store.commits, []
            home.advance(home.now + 1)
            island = Event(MRID("1" * 32), "P", 1, home.now, home.now - 1, 3600.0,
                           ControlSet(connect=False))  # fmt: skip
            await runner.feed(EventReceived(home.now, island))
            return south, store.commits - before, engine

    south, commits, engine = asyncio.run(body())
    kinds = [type(c) for c, _ in south.sent]
    # Charger stop and PV at 0 W (one batch), then the relay, then the charger forms the grid.
    assert kinds[:2] in ([ChargerCommand, DerLimit], [DerLimit, ChargerCommand])
    assert kinds[2:4] == [RelayCommand, ChargerCommand]
    assert engine.phase is Phase.ISLANDED
    # A commit before each of the three steps and one at the end: the charger's confirmation,
    # which sends nothing while the PV's is awaited, shares the relay step's commit.
    steps = sorted({n for _, n in south.sent})
    assert len(steps) == 3
    assert commits == 4
