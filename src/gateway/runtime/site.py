"""The home as the site file describes it: the engine restored from the store, the south side
connected to the devices at their addresses, and the runner between them.

``gateway run`` builds one from the site file; the demos and the end-to-end tests build one on
the addresses a simulated home serves (``demo.modbus_site``). Either way the devices are reached
over sockets (or a serial line), exactly as a real installation's: nothing here knows whether
a relay is real or simulated.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType

from gateway.core.site import SiteConfig
from gateway.core.units import Timestamp
from gateway.runtime.runner import RATINGS_EVERY_S, Listener, Runner, audit_to
from gateway.runtime.south import DeviceConfig, South
from gateway.runtime.wiring import restore_engine
from gateway.south.drivers.base import Confirmation
from gateway.south.profile import Profile
from gateway.store.api import Store

log = logging.getLogger(__name__)


class Site:
    """``async with Site(...) as site``: ``site.runner`` drives the home until the block ends;
    leaving it closes every device link (the devices keep the state last confirmed)."""

    def __init__(
        self,
        store: Store,
        config: SiteConfig,
        devices: Sequence[DeviceConfig],
        *,
        now: Callable[[], Timestamp],
        profiles: dict[str, Profile] | None = None,
        confirm: Confirmation | None = None,
        listener: Listener | None = None,
        seed: int | None = None,
        ratings_every_s: float = RATINGS_EVERY_S,
    ) -> None:
        self.store = store
        self.config = config
        self.devices = list(devices)
        self.now = now
        self.profiles = profiles
        # Randomised delays (2030.5 randomizeStart, the enter-service random delay): seeded only
        # where a test or demo needs the same draws every run.
        rng = random.Random(seed)  # noqa: S311 - randomisation offsets, not cryptography
        self.engine = restore_engine(
            config, store, lambda bound: rng.randint(min(0, bound), max(0, bound))
        )
        base = confirm or Confirmation(timeout_s=5.0, poll_s=0.02)
        self.confirm = replace(base, dead_bus_v=config.dead_bus_v)
        self.listener = listener
        self.ratings_every_s = ratings_every_s
        self.problems: list[str] = []
        self._south: South | None = None
        self._runner: Runner | None = None

    @property
    def south(self) -> South:
        assert self._south is not None, "use 'async with Site(...)'"
        return self._south

    @property
    def runner(self) -> Runner:
        assert self._runner is not None, "use 'async with Site(...)'"
        return self._runner

    async def __aenter__(self) -> Site:
        trail = audit_to(self.store)
        self._south = South(
            self.devices, now=self.now, audit=trail, confirm=self.confirm, profiles=self.profiles
        )
        self.engine.pace(self._south.setpoint_intervals())  # how often a ramp may write each
        self._runner = Runner(
            self.engine,
            self.store,
            self._south,
            now=self.now,
            listener=self.listener,
            trail=trail,
            ratings_every_s=self.ratings_every_s,
        )
        # A device that is down now may come back: connect never raises, the engine sees the
        # missing telemetry and keeps the home safe, and the transport keeps reconnecting.
        self.problems = await self._south.connect(self.config.backup_reserve_soc_pct)
        for problem in self.problems:
            log.warning("not reachable at start (retrying): %s", problem)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._south is not None:
            await self._south.close()
