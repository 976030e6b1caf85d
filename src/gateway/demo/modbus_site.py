"""A whole gateway on the simulated home: engine, store, south stack and Modbus simulators.

The composition the Modbus demo, the end-to-end tests and (later) the dashboard demo and the
conformance suite share: one ``async with ModbusSite(store) as site`` starts the simulated home
on loopback sockets, connects the real drivers to it and gives a ``Runner``. Time is the
simulator's clock, running in real time (so relays take their travel time) and stepped between
control cycles, so simulated hours pass in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Literal

from gateway.core.engine import Engine
from gateway.core.messages import ReportAcked
from gateway.core.site import SiteConfig
from gateway.core.units import Timestamp
from gateway.runtime.runner import RATINGS_EVERY_S, Listener, Runner
from gateway.runtime.site import Site
from gateway.runtime.south import DeviceConfig, South
from gateway.sim.clock import SimClock
from gateway.sim.modbus import SimulatedHome
from gateway.south.drivers.base import Confirmation
from gateway.store.api import Store

# The engine's DER ids for the simulated home's devices.
DER_IDS = {"der": "pv"}

Framer = Literal["socket", "rtu"]


class ModbusSite:
    """A :class:`~gateway.runtime.site.Site` on a :class:`SimulatedHome` it starts itself."""

    def __init__(
        self,
        store: Store,
        config: SiteConfig,
        *,
        start: Timestamp,
        charger: str = "wallbox-quasar",
        framer: Framer = "socket",
        single_client: bool = False,
        confirm: Confirmation | None = None,
        listener: Listener | None = None,
        ack_reports: bool = True,
        seed: int = 2030,
        now: Callable[[], Timestamp] | None = None,
        ratings_every_s: float = RATINGS_EVERY_S,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = SimClock(start, speed=1.0)
        # The gateway's clock: the simulator's, unless a north adapter keeps server time (the
        # home's physics then runs on its own clock; the two only need the same rate).
        self.now: Callable[[], Timestamp] = now or self.clock.now
        self.home = SimulatedHome(
            charger=charger, clock=self.clock, framer=framer, single_client=single_client
        )
        self.ack_reports = ack_reports
        # The devices' addresses are known once the home listens (__aenter__).
        self.site = Site(
            store,
            config,
            [],
            now=self.now,
            confirm=confirm,
            listener=listener,
            seed=seed,
            ratings_every_s=ratings_every_s,
        )
        self.problems: list[str] = []

    @property
    def engine(self) -> Engine:
        return self.site.engine

    @property
    def south(self) -> South:
        return self.site.south

    @property
    def runner(self) -> Runner:
        return self.site.runner

    @property
    def confirm(self) -> Confirmation:
        return self.site.confirm

    def configs(self) -> list[DeviceConfig]:
        ids = {**DER_IDS, "charger": self.config.charger_id}
        return [
            DeviceConfig(d.name, d.profile, d.url, d.unit_id, ids.get(d.name))
            for d in self.home.describe()
        ]

    async def __aenter__(self) -> ModbusSite:
        await self.home.start()
        try:
            self.site.devices = self.configs()
            self.site.profiles = {
                d.profile: self.home.device(d.name).profile for d in self.home.describe()
            }
            await self.site.__aenter__()
        except BaseException:
            await self.home.stop()
            raise
        self.problems = self.site.problems
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.site.__aexit__(exc_type, exc, tb)
        finally:
            await self.home.stop()

    async def run_until(self, until: Timestamp, step_s: float = 5.0) -> None:
        """Control cycles every ``step_s`` simulated seconds until the clock reaches ``until``."""
        while self.clock.now() < until:
            self.clock.advance(step_s)
            await self.runner.cycle()
            if self.ack_reports:
                # The simulated utility acknowledges every report at once (201 Created).
                for item in self.store.pending():
                    await self.runner.feed(ReportAcked(self.clock.now(), item.key))

    async def run_for(self, seconds: float, step_s: float = 5.0) -> None:
        await self.run_until(self.clock.now() + seconds, step_s)
