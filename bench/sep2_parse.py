"""Parse and map one DERControlList of 100 CSIP-AUS controls: our codec against envoy-schema.

The body is what a CSIP-AUS utility server sends a site for the next 100 five-minute intervals
(about 8 h of dynamic operating envelopes): every control has an export and an import limit,
most a generation and a load limit, some a connect/energize, storage target or ramp; it is
encoded with our own codec (so it is valid against the CSIP-AUS schema, see
tests/unit/north/test_sep2_codec.py) and is about 100 kB.

One iteration is what a 2030.5 client does with a polled body: bytes -> resource -> one core
``Event`` per control.

- ours: ``codec.decode`` (hardened lxml parse, every range checked) then ``mapping.event``;
- envoy: ``DERControlListResponse.from_xml`` (envoy-schema's pydantic-xml models, the ones the
  CSIP-AUS reference server envoy and the CACTUS test harness use) then the same conversion to
  ``Event`` written against envoy's field names (``envoy_event`` below). envoy-schema 2.7
  binds CSIP-AUS elements to ``https://csipaus.org/ns/v1.3``, ours to ``https://csipaus.org/ns``
  (CSIP-AUS 1.2), so envoy is handed the same body with that one namespace URI swapped (done
  once, outside the timing), and the two decoded lists are checked to map to the same events.

Both run in the same process, interleaved iteration by iteration. Target: ours at least 3x
faster at the median. envoy-schema is the ``bench`` extra (``pip install -e '.[bench]'``,
which ``make bench`` does); without it only our numbers are printed.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from gateway.core.controls import ControlSet
from gateway.core.schedule import Event
from gateway.core.schedule import EventStatus as CoreEventStatus
from gateway.core.units import MRID
from gateway.north.sep2 import codec, mapping
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
)
from gateway.north.sep2.xml import CSIPAUS_NS

T0 = 1_764_072_000  # 2025-11-25T12:00:00Z
N_CONTROLS = 100
ITERATIONS = 300
WARMUP = 20
PROGRAM = "/derp/1"
PRIMACY = 1
ENVOY_CSIPAUS_NS = "https://csipaus.org/ns/v1.3"
TARGET_RATIO = 3.0


def controls(rng: random.Random) -> DERControlList:
    """100 five-minute DOE intervals, as a CSIP-AUS utility server publishes them."""
    out = []
    for i in range(N_CONTROLS):
        start = T0 + 300 * i
        created = T0 - 3600 + rng.randint(0, 600)
        out.append(
            DERControl(
                mRID=f"{rng.getrandbits(128):032X}",
                description=f"DOE interval {i}",
                version=0,
                creationTime=created,
                EventStatus=EventStatus(
                    currentStatus=1 if i == 0 else 0,
                    dateTime=created,
                    potentiallySuperseded=False,
                ),
                interval=DateTimeInterval(duration=300, start=start),
                randomizeStart=0 if i % 10 else 30,
                DERControlBase=DERControlBase(
                    opModConnect=True if i % 25 == 0 else None,
                    opModEnergize=True if i % 25 == 0 else None,
                    rampTms=3000 if i % 5 == 0 else None,
                    # Export 0..10 kW in 100 W steps (1.5 kW is the usual fixed fallback);
                    # import up to 15 kW (multiplier 1 above 9.9 kW, as servers scale it).
                    opModExpLimW=ActivePower.from_watts(100 * rng.randint(0, 100)),
                    opModImpLimW=ActivePower(rng.randint(500, 1500), 1),
                    opModGenLimW=ActivePower(rng.randint(0, 10), 3) if i % 4 else None,
                    opModLoadLimW=ActivePower(rng.choice([3680, 7360, 9600]), 0) if i % 3 else None,
                    opModStorageTargetW=ActivePower(rng.randint(-5000, 5000), 0)
                    if i % 7 == 0
                    else None,
                ),
                href=f"/derp/1/derc/{i}",
                replyTo="/rsp/1",
                responseRequired=3,
            )
        )
    return DERControlList(
        all=N_CONTROLS, results=N_CONTROLS, DERControl=tuple(out), href="/derp/1/derc"
    )


def ours(body: bytes) -> list[Event]:
    resource = codec.decode(body)
    assert isinstance(resource, DERControlList)
    return [mapping.event(c, program=PROGRAM, primacy=PRIMACY).event for c in resource.DERControl]


def _w(p: Any) -> float | None:
    return None if p is None else ActivePower(p.value, p.multiplier).watts


def _hundredths(v: int | None) -> float | None:
    return None if v is None else v / 100


def envoy_event(c: Any) -> Event:
    """``mapping.event`` for envoy-schema's ``DERControlResponse``: the same fields, same units."""
    b = c.DERControlBase_
    return Event(
        mrid=MRID(c.mRID.upper()),
        program=PROGRAM,
        primacy=PRIMACY,
        creation_time=float(c.creationTime),
        start=float(c.interval.start),
        duration=float(c.interval.duration),
        controls=ControlSet(
            connect=b.opModConnect,
            energize=b.opModEnergize,
            export_limit_w=_w(b.opModExpLimW),
            import_limit_w=_w(b.opModImpLimW),
            generation_limit_w=_w(b.opModGenLimW),
            load_limit_w=_w(b.opModLoadLimW),
            max_generation_pct=_hundredths(b.opModMaxLimW),
            fixed_w_pct=_hundredths(b.opModFixedW),
            target_w=_w(b.opModTargetW),
            storage_target_w=_w(b.opModStorageTargetW),
            ramp_time_s=_hundredths(b.rampTms),
        ),
        randomize_start=c.randomizeStart or 0,
        randomize_duration=c.randomizeDuration or 0,
        status=CoreEventStatus(c.EventStatus_.currentStatus),
        response_required=int(c.responseRequired, 16) if c.responseRequired else 0,
        reply_to=c.replyTo,
        origin=mapping.ORIGIN,
    )


def envoy_parser() -> Callable[[bytes], list[Event]] | None:
    try:
        from envoy_schema.server.schema.sep2.der import DERControlListResponse
    except ImportError:
        return None

    def envoy(body: bytes) -> list[Event]:
        resource = DERControlListResponse.from_xml(body)
        return [envoy_event(c) for c in resource.DERControl or ()]

    return envoy


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _timed(fn: Callable[[bytes], list[Event]], body: bytes, into: list[float]) -> None:
    t = time.perf_counter_ns()
    fn(body)
    into.append((time.perf_counter_ns() - t) / 1000)


def main() -> None:
    body = codec.encode(controls(random.Random(7)))
    envoy = envoy_parser()
    envoy_body = body.replace(CSIPAUS_NS.encode() + b'"', ENVOY_CSIPAUS_NS.encode() + b'"')
    if envoy is not None:
        # The same events from both, or the comparison is meaningless.
        mine, theirs = ours(body), envoy(envoy_body)
        assert len(mine) == N_CONTROLS
        assert mine == theirs, "envoy-schema and our codec map the body to different events"
    for _ in range(WARMUP):
        ours(body)
        if envoy is not None:
            envoy(envoy_body)
    ours_us: list[float] = []
    envoy_us: list[float] = []
    gc.collect()
    for _ in range(ITERATIONS):
        _timed(ours, body, ours_us)
        if envoy is not None:
            _timed(envoy, envoy_body, envoy_us)
    med, p99 = statistics.median(ours_us), percentile(ours_us, 99)
    print(
        f"2030.5 DERControlList parse + map, {N_CONTROLS} CSIP-AUS controls "
        f"({len(body) / 1000:.0f} kB), {ITERATIONS} iterations"
    )
    print(f"  ours: codec.decode + mapping.event   median {med:8.0f} us   p99 {p99:8.0f} us")
    if envoy is None:
        print("  envoy-schema is not installed: no comparison. Install it with")
        print("    .venv/bin/pip install -e '.[bench]'   (or: make bench)")
        return
    emed, ep99 = statistics.median(envoy_us), percentile(envoy_us, 99)
    print(f"  envoy-schema from_xml + same mapping  median {emed:8.0f} us   p99 {ep99:8.0f} us")
    ratio, ratio99 = emed / med, ep99 / p99
    print(f"  ratio envoy/ours                      median {ratio:8.2f} x    p99 {ratio99:8.2f} x")
    verdict = "meets" if emed / med >= TARGET_RATIO else "MISSES"
    print(
        f"  target ours >= {TARGET_RATIO:.0f}x faster: {verdict} ({emed / med:.1f}x at the median)"
    )


if __name__ == "__main__":
    main()
