"""Prometheus metrics of the site (``GET /metrics``), updated once per control cycle.

One registry per API (not the client library's global one), so two sites in one process, or
two tests, never share a series. Names follow the Prometheus conventions: base units (watts,
seconds), ``_total`` for counters, a label for what varies (phase, part, device, link).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.api.site import ApiSite
from gateway.core.controls import Mode
from gateway.core.island import Phase, RelayPosition
from gateway.core.messages import Observed

#: Modbus round trips on loopback take a millisecond; a serial line at 9600 baud, a hundred.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, site: ApiSite, outbox_depth: Callable[[], int]) -> None:
        self.site = site
        self.outbox_depth = outbox_depth
        r = self.registry = CollectorRegistry()
        self.phase = Gauge(
            "gateway_phase", "1 for the islanding phase in force", ["phase"], registry=r
        )
        self.relay_open = Gauge(
            "gateway_relay_open", "1 when the relay reads open, 0 closed, -1 unknown", registry=r
        )
        self.power = Gauge(
            "gateway_power_watts",
            "Power at each part of the home (grid import, EV and DER discharge positive)",
            ["part"],
            registry=r,
        )
        self.soc = Gauge("gateway_ev_soc_percent", "The EV's state of charge", registry=r)
        self.export_limit = Gauge(
            "gateway_export_limit_watts",
            "The site export limit in force (absent: none)",
            registry=r,
        )
        self.allowance = Gauge(
            "gateway_backfeed_allowance_watts",
            "The DER discharge (backfeed) allowance in force",
            registry=r,
        )
        self.cycles = Counter("gateway_cycles", "Control cycles completed", registry=r)
        self.poll = Histogram(
            "gateway_poll_seconds",
            "Reading every device once (a control cycle's telemetry)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.write = Histogram(
            "gateway_write_seconds",
            "A device command: the write and its read-back confirmation",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.write_failures = Gauge(
            "gateway_write_failures", "Device commands that failed, since start", registry=r
        )
        self.device_up = Gauge(
            "gateway_device_up", "1 while the device answers", ["device"], registry=r
        )
        self.device_errors = Counter(
            "gateway_device_errors", "Times a device stopped answering", ["device"], registry=r
        )
        self.link_up = Gauge(
            "gateway_link_up", "1 while the north link is up", ["link"], registry=r
        )
        self.outbox = Gauge(
            "gateway_outbox_depth", "Reports waiting for the utility's acknowledgement", registry=r
        )
        self._down: set[str] = set()
        self._shown_parts: set[str] = set()

    def expose(self) -> bytes:
        self.outbox.set(self.outbox_depth())
        return generate_latest(self.registry)

    def cycled(self, observed: Observed) -> None:
        site = self.site
        self.cycles.inc()
        phase = site.phase()
        for p in Phase:
            self.phase.labels(p.value).set(1 if p is phase else 0)
        relay = observed.relay.position if observed.relay is not None else None
        self.relay_open.set(
            1 if relay is RelayPosition.OPEN else 0 if relay is RelayPosition.CLOSED else -1
        )
        parts: dict[str, float] = {}
        if observed.meter is not None:
            parts["grid"] = observed.meter.net_w
        if observed.charger is not None:
            parts["ev"] = observed.charger.power_w
            if observed.charger.soc_pct is not None:
                self.soc.set(observed.charger.soc_pct)
        for d in observed.ders:
            parts[f"der:{d.der_id}"] = d.power_w
        for part in self._shown_parts - set(parts):
            self.power.remove(part)  # an unread part has no value, not its last one
        for part, w in parts.items():
            self.power.labels(part).set(w)
        self._shown_parts = set(parts)
        export = site.resolved().decisions.get(Mode.EXPORT_LIMIT_W)
        if export is not None and isinstance(export.value, int | float):
            self.export_limit.set(float(export.value))
        alloc = site.allocation()
        if alloc is not None:
            self.allowance.set(alloc.allowance_w)
        polls, writes = site.take_timings()
        for s in polls:
            self.poll.observe(s)
        for s in writes:
            self.write.observe(s)
        self.write_failures.set(site.write_failures())
        for device in site.devices():
            up = device.error is None
            self.device_up.labels(device.name).set(1 if up else 0)
            if not up and device.name not in self._down:
                self.device_errors.labels(device.name).inc()
            (self._down.discard if up else self._down.add)(device.name)
        for link, error in site.links().items():
            self.link_up.labels(link).set(1 if error is None else 0)
