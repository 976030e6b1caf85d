"""One engine control cycle for a site with 10 DER and 200 scheduled events.

Each cycle is ``Engine.handle(Observed(...))`` with a full telemetry snapshot (meter, relay,
charger and nine more DER): schedule advance, source resolution, islanding guards, interlocks,
backfeed allocation and command derivation. The baseline, timed in the same run on the same
machine, is plain Python's ``sorted()`` over the same 200 events by (primacy, -creation_time):
the least any scheduler must do to pick a winner. Target: under 1 ms per cycle.
"""

from __future__ import annotations

import gc
import random
import statistics
import time

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.messages import (
    ChargerCommand,
    ChargerTelemetry,
    DerLimit,
    DerTelemetry,
    EventReceived,
    MeterTelemetry,
    Observed,
    RelayCommand,
    RelayTelemetry,
    WriteConfirmed,
)
from gateway.core.schedule import Event
from gateway.core.site import SiteConfig
from gateway.core.units import MRID

T0 = 1_800_000_000.0
N_EVENTS = 200
N_DER = 10
CYCLES = 5_000


def site() -> SiteConfig:
    ders = [DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600)]
    for i in range(N_DER - 1):
        kind = "pv" if i % 2 else "battery"
        ders.append(
            DerRating(f"der{i}", kind, max_discharge_w=5_000, max_charge_w=5_000 * (i % 2 == 0))
        )
    return SiteConfig(
        panel=PanelRating(busbar_a=200, main_breaker_a=200), ders=tuple(ders), charger_id="ev"
    )


def events(rng: random.Random) -> list[Event]:
    modes = [
        lambda: ControlSet(export_limit_w=rng.uniform(0, 10_000)),
        lambda: ControlSet(generation_limit_w=rng.uniform(0, 10_000)),
        lambda: ControlSet(target_w=rng.uniform(-5_000, 5_000)),
        lambda: ControlSet(import_limit_w=rng.uniform(0, 10_000), load_limit_w=5000.0),
        lambda: ControlSet(max_generation_pct=rng.uniform(0, 100)),
    ]
    out = []
    for i in range(N_EVENTS):
        start = T0 + rng.uniform(-600, CYCLES)
        out.append(
            Event(
                mrid=MRID(f"{i:032X}"),
                program=f"P{i % 3}",
                primacy=rng.randint(0, 3),
                creation_time=T0 - rng.uniform(0, 1e5),
                start=start,
                duration=rng.choice([60.0, 300.0, 900.0, 3600.0]),
                controls=rng.choice(modes)(),
                randomize_start=rng.choice([0, 0, 30]),
                response_required=3,
            )
        )
    return out


def snapshot(now: float, rng: random.Random) -> Observed:
    return Observed(
        now,
        meter=MeterTelemetry(now, rng.uniform(-5000, 5000), 240.0, 60.0, {"L1": 20.0, "L2": 22.0}),
        relay=RelayTelemetry(now, RelayPosition.CLOSED),
        charger=ChargerTelemetry(now, ChargerMode.GRID_FOLLOWING, rng.uniform(-3000, 3000), 60.0),
        ders=tuple(DerTelemetry(now, f"der{i}", rng.uniform(0, 4000)) for i in range(N_DER - 1)),
    )


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> None:
    rng = random.Random(7)
    engine = Engine(site(), draw=lambda b: rng.randint(min(0, b), max(0, b)))
    evs = events(rng)
    for ev in evs:
        engine.handle(EventReceived(T0 - 1, ev))
    cycle_us: list[float] = []
    base_us: list[float] = []
    key = lambda e: (e.primacy, -e.creation_time)  # noqa: E731
    gc.collect()
    for i in range(CYCLES):
        now = T0 + i
        obs = snapshot(now, rng)
        t = time.perf_counter_ns()
        actions = engine.handle(obs)
        cycle_us.append((time.perf_counter_ns() - t) / 1000)
        t = time.perf_counter_ns()
        sorted(evs, key=key)
        base_us.append((time.perf_counter_ns() - t) / 1000)
        # The devices confirm at once, so the next cycle sees a settled site.
        for a in actions:
            if isinstance(a, RelayCommand | ChargerCommand | DerLimit):
                engine.handle(WriteConfirmed(now, a.id))
    med, p99 = statistics.median(cycle_us), percentile(cycle_us, 99)
    bmed, bp99 = statistics.median(base_us), percentile(base_us, 99)
    print(f"engine cycle, {N_DER} DER, {N_EVENTS} events, {CYCLES} cycles")
    print(f"  engine.handle(telemetry)   median {med:8.1f} us   p99 {p99:8.1f} us")
    print(f"  baseline sorted(events)    median {bmed:8.1f} us   p99 {bp99:8.1f} us")
    print(f"  ratio engine/baseline      median {med / bmed:8.2f} x    p99 {p99 / bp99:8.2f} x")
    verdict = "meets" if p99 < 1000 else "MISSES"
    print(f"  target < 1000 us per cycle: {verdict} (p99 {p99:.0f} us)")


if __name__ == "__main__":
    main()
