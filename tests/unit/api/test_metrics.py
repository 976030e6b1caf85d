"""The metrics' bookkeeping, on a fake site: what a cycle shows, and what it stops showing."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from gateway.api.metrics import Metrics
from gateway.api.site import DeviceState
from gateway.core.controls import ControlSet
from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import (
    ChargerTelemetry,
    DerTelemetry,
    MeterTelemetry,
    Observed,
    RelayTelemetry,
)
from gateway.core.resolve import Resolved


@dataclass
class _Site:
    error: str | None = None
    down: dict[str, str | None] = field(default_factory=lambda: {"sep2": None})

    def phase(self) -> Phase:
        return Phase.ISLANDED

    def resolved(self) -> Resolved:
        return Resolved({}, ControlSet())

    def allocation(self) -> None:
        return None

    def take_timings(self) -> tuple[list[float], list[float]]:
        return [0.004], [0.02, 0.03]

    def write_failures(self) -> int:
        return 2

    def devices(self) -> list[DeviceState]:
        return [DeviceState("ev", "charger", "wallbox-quasar", "tcp://x:1", self.error, "charger")]

    def links(self) -> dict[str, str | None]:
        return self.down


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.expose().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _observed(with_pv: bool = True) -> Observed:
    return Observed(
        0.0,
        meter=MeterTelemetry(0.0, -1200.0, 240.0, 60.0),
        relay=RelayTelemetry(0.0, RelayPosition.OPEN),
        charger=ChargerTelemetry(0.0, ChargerMode.GRID_FORMING, 800.0, 64.0),
        ders=(DerTelemetry(0.0, "pv", 2000.0),) if with_pv else (),
    )


def test_a_cycle_shows_phase_power_latency_devices_and_links() -> None:
    site = _Site()
    m = Metrics(site, lambda: 3)  # type: ignore[arg-type]
    m.cycled(_observed())
    s = _samples(m)
    assert s[("gateway_phase", (("phase", "islanded"),))] == 1
    assert s[("gateway_phase", (("phase", "grid_connected"),))] == 0
    assert s[("gateway_relay_open", ())] == 1
    assert s[("gateway_power_watts", (("part", "grid"),))] == -1200
    assert s[("gateway_power_watts", (("part", "der:pv"),))] == 2000
    assert s[("gateway_ev_soc_percent", ())] == 64
    assert s[("gateway_write_seconds_count", ())] == 2
    assert s[("gateway_poll_seconds_count", ())] == 1
    assert s[("gateway_write_failures", ())] == 2
    assert s[("gateway_outbox_depth", ())] == 3
    assert s[("gateway_device_up", (("device", "ev"),))] == 1
    assert s[("gateway_link_up", (("link", "sep2"),))] == 1


def test_a_device_that_stops_answering_counts_once_and_an_unread_part_disappears() -> None:
    site = _Site()
    m = Metrics(site, lambda: 0)  # type: ignore[arg-type]
    m.cycled(_observed())
    site.error = "no answer"
    site.down = {"sep2": "connection refused"}
    m.cycled(_observed(with_pv=False))
    m.cycled(_observed(with_pv=False))
    s = _samples(m)
    assert s[("gateway_device_up", (("device", "ev"),))] == 0
    assert s[("gateway_device_errors_total", (("device", "ev"),))] == 1
    assert s[("gateway_link_up", (("link", "sep2"),))] == 0
    assert ("gateway_power_watts", (("part", "der:pv"),)) not in s
    assert s[("gateway_cycles_total", ())] == 3
