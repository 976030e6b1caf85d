"""The running site as the local API sees it (:class:`gateway.api.site.ApiSite`): part of the
runner's port, plus the engine's decisions and allocation, the devices' link state and the
links'."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.api.site import DeviceState
from gateway.core.backfeed import Allocation
from gateway.core.controls import ControlSet
from gateway.core.island import Phase
from gateway.core.messages import Input, Observed
from gateway.core.resolve import Resolved
from gateway.core.schedule import EventRecord
from gateway.core.site import SiteConfig
from gateway.core.units import Timestamp
from gateway.runtime.run_config import RunConfig
from gateway.runtime.runner import Runner


class RuntimeApiSite:
    """A view, no state of its own: each call reads the runner at that moment."""

    def __init__(self, runner: Runner, config: RunConfig) -> None:
        self._runner = runner
        self._config = config

    @property
    def name(self) -> str:
        return self._config.name

    async def feed(self, first: Input, *more: Input) -> None:
        await self._runner.feed(first, *more)

    def now(self) -> Timestamp:
        return self._runner.now()

    @property
    def config(self) -> SiteConfig:
        return self._runner.engine.config

    def observed(self) -> Observed | None:
        return self._runner.last_observed

    def phase(self) -> Phase | None:
        return self._runner.port.phase()

    @property
    def cycles(self) -> int:
        return self._runner.cycles

    def on_cycle(self, hook: Callable[[Observed], None]) -> None:
        self._runner.on_cycle.append(hook)

    def assess(self, controls: ControlSet, now: Timestamp) -> list[str]:
        return self._runner.engine.assess(controls, now)

    def resolved(self) -> Resolved:
        return self._runner.engine.resolved

    def allocation(self) -> Allocation | None:
        return self._runner.engine.allocation

    def devices(self) -> Sequence[DeviceState]:
        failures = self._runner.south.failures
        out = []
        for d in self._config.devices:
            cfg = d.config
            if d.role in ("meter_relay", "meter"):
                part = d.role
            elif d.role == "charger" and d.forms_island:
                part = "charger"
            else:
                part = cfg.der_id or d.name
            out.append(
                DeviceState(d.name, d.role, d.profile.name, d.url, failures.get(d.name), part)
            )
        return out

    def events(self) -> Sequence[EventRecord]:
        return self._runner.engine.schedule.records()

    def links(self) -> dict[str, str | None]:
        down = self._runner.engine.links_down
        return {kind: down.get(kind) for kind in self._config.links}

    def take_timings(self) -> tuple[list[float], list[float]]:
        return self._runner.timings.take()

    def write_failures(self) -> int:
        return self._runner.timings.write_failures
