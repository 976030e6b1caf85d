"""The running site as the local API sees it (:class:`gateway.api.site.ApiSite`): part of the
runner's port, plus the engine's decisions and allocation, the devices' link state and the
links'."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.api.site import DeviceState
from gateway.core.backfeed import Allocation
from gateway.core.resolve import Resolved
from gateway.core.schedule import EventRecord
from gateway.runtime.run_config import RunConfig
from gateway.runtime.runner import Runner, RunnerPort


class RuntimeApiSite(RunnerPort):
    """The runner's port (feed, now, config, observed, phase, cycles, on_cycle, assess), plus
    what people look at. A view, no state of its own: each call reads the runner then."""

    def __init__(self, runner: Runner, config: RunConfig) -> None:
        super().__init__(runner)
        self._config = config

    @property
    def name(self) -> str:
        return self._config.name

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
