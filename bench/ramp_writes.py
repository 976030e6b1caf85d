"""A setGradW ramp: Modbus writes per second and north-side latency while it runs (issue 16).

Three runs in the same process, each on a fresh simulated home (loopback TCP, the SunSpec PV
exporting ~1.7 kW), each moving the PV's limit from ~1.7 kW of export down to 200 W at 250 W/s
(~6 s), while a "north" task asks for a turn every 100 ms:

* **plain**: no gateway logic. A script computes the same ramp and writes the PV's limit
  register (704.WMaxLimPct) with bare pymodbus, write then read-back, once per
  ``setpoint_interval_s`` (1 s, the default pacing); its north task is a bare await on the
  event loop (how late a coroutine gets to run).
* **gateway**: the whole gateway (engine, runner, SQLite store, drivers) under a default
  control ``export 200 W, setGradW``, its control loop running every 0.5 s; its north task
  feeds an input through the runner's port (``SitePort.feed``), as the 2030.5 client does.
* **gateway, unpaced** (informational): the same with the ramp's pacing switched off
  (``Engine.pace`` at 1 ns), i.e. the write rate of issue 16 (the runner's turn still bounds
  the north latency).

Printed: writes per second to the PV (all points, and its limit register), audit rows per
second, and the north latency (median, max); the ratio gateway / plain. Target: writes per
second at most 1.5x plain's (the gateway also follows the meter), and the north latency's
max under a turn (the runner's TURN_S, 1 s).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from gateway.core.controls import ControlSet
from gateway.core.island import EnterService
from gateway.core.messages import DefaultsReceived, Tick
from gateway.demo.evening import demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.runtime.runner import TURN_S
from gateway.sim.clock import DEFAULT_START
from gateway.sim.modbus import DeviceSim, SimulatedHome
from gateway.south import codec
from gateway.store.sqlite import SqliteStore

RATE_W_S = 250.0
TARGET_W = 200.0
STEP_S = 1.0  # the default setpoint_interval_s
LOAD_W = 1000.0
NORTH_EVERY_S = 0.1
LIMIT_POINT = "704.WMaxLimPct"


@dataclass
class Run:
    seconds: float
    writes: int
    limit_writes: int
    audit_rows: int
    north_ms: list[float]

    @property
    def writes_s(self) -> float:
        return self.writes / self.seconds

    @property
    def limit_writes_s(self) -> float:
        return self.limit_writes / self.seconds

    @property
    def audit_s(self) -> float:
        return self.audit_rows / self.seconds


async def _north(ask: Callable[[], Awaitable[None]], stop: asyncio.Event) -> list[float]:
    """How long each ask takes, every NORTH_EVERY_S until ``stop``."""
    out: list[float] = []
    while not stop.is_set():
        t = time.perf_counter()
        await ask()
        out.append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(NORTH_EVERY_S)
    return out


def _export_w(home: SimulatedHome) -> float:
    return -float(home.physics.meter().net_w)


async def plain() -> Run:
    async with SimulatedHome(start=DEFAULT_START) as home:
        home.physics.load.constant_w = LOAD_W
        pv: DeviceSim = home.device("der")
        point = pv.profile.points[LIMIT_POINT]
        sf_point = pv.profile.points[f"{LIMIT_POINT}_SF"]
        host, port = home.endpoints["der"].removeprefix("tcp://").split(":")
        client = AsyncModbusTcpClient(host, port=int(port), retries=0, timeout=2)
        await client.connect()
        rr = await client.read_holding_registers(sf_point.address, count=1, device_id=pv.unit_id)
        sf = codec.decode(sf_point, rr.registers)
        assert isinstance(sf, int)
        await asyncio.sleep(0.5)
        start_w = _export_w(home)
        peak = home.physics.pv.peak_w
        # Export = PV - load: the PV's limit follows the export ramp plus the load.
        duration = (start_w - TARGET_W) / RATE_W_S
        stop = asyncio.Event()

        async def bare() -> None:
            await asyncio.sleep(0)

        north = asyncio.create_task(_north(bare, stop))
        t0 = time.monotonic()
        writes0 = pv.writes
        while True:
            elapsed = time.monotonic() - t0
            export = max(TARGET_W, start_w - RATE_W_S * (elapsed + STEP_S))  # falling: ahead
            pct = min(100.0, (export + LOAD_W) / peak * 100)
            words = codec.encode(point, pct, sf)
            w = await client.write_registers(point.address, words, device_id=pv.unit_id)
            r = await client.read_holding_registers(point.address, count=len(words), device_id=1)
            if w.isError() or r.isError() or r.registers != words:
                raise RuntimeError(f"write or read-back failed: {w} {r}")
            if export <= TARGET_W:
                break
            await asyncio.sleep(
                max(0.0, t0 + (int(elapsed / STEP_S) + 1) * STEP_S - time.monotonic())
            )
        seconds = time.monotonic() - t0
        stop.set()
        lat = await north
        client.close()
        assert seconds >= 0.7 * duration
        writes = pv.writes - writes0
        return Run(seconds, writes, pv.writes_since(t0, LIMIT_POINT), 0, lat)  # no audit


async def gateway(*, paced: bool) -> Run:
    config = replace(demo_site(), enter_service=EnterService(delay_s=1.0))
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "gw.db") as store:
        async with ModbusSite(store, config, start=DEFAULT_START, ack_reports=False) as site:
            home = site.home
            home.physics.load.constant_w = LOAD_W
            runner = site.runner
            if not paced:
                site.engine.pace(dict.fromkeys((d.der_id for d in config.ders), 1e-9))
            stop_loop = asyncio.Event()
            loop = asyncio.create_task(runner.run(0.5, stop_loop))
            deadline = time.monotonic() + 20
            while _export_w(home) < 1400 or runner.cycles < 4:
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulated PV never exported")
                await asyncio.sleep(0.1)
            start_w = _export_w(home)
            rated = sum(d.max_discharge_w for d in config.ders)
            pct = RATE_W_S / rated * 100
            pv = home.device("der")
            audit0 = len(store.audit())
            writes0 = pv.writes
            stop = asyncio.Event()

            async def feed() -> None:
                await runner.port.feed(Tick(site.now()))

            north = asyncio.create_task(_north(feed, stop))
            t0 = time.monotonic()
            limit = ControlSet(export_limit_w=TARGET_W, ramp_rate_pct_s=pct)
            await runner.port.feed(DefaultsReceived(site.now(), "P", 1, limit))
            duration = (start_w - TARGET_W) / RATE_W_S
            while _export_w(home) > TARGET_W + 60 or time.monotonic() - t0 < duration:
                if time.monotonic() - t0 > duration + 15:
                    raise RuntimeError("the ramp never reached its target")
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - t0
            stop.set()
            lat = await north
            stop_loop.set()
            await loop
            writes = pv.writes - writes0
            rows = len(store.audit()) - audit0
            return Run(seconds, writes, pv.writes_since(t0, LIMIT_POINT), rows, lat)


def _line(name: str, r: Run) -> str:
    med, top = statistics.median(r.north_ms), max(r.north_ms)
    return (
        f"  {name:<17} {r.seconds:4.1f} s  writes {r.writes_s:6.1f}/s"
        f"  limit {r.limit_writes_s:6.1f}/s  audit {r.audit_s:6.1f} rows/s"
        f"  north median {med:6.2f} ms  max {top:7.2f} ms"
    )


def main() -> None:
    base = asyncio.run(plain())
    gw = asyncio.run(gateway(paced=True))
    unpaced = asyncio.run(gateway(paced=False))
    print(f"a setGradW ramp, ~1.7 kW -> {TARGET_W:g} W export at {RATE_W_S:g} W/s, simulated PV")
    print(_line("plain pymodbus", base))
    print(_line("gateway", gw))
    print(_line("gateway, unpaced", unpaced))
    print("  (unpaced: informational, the write rate of issue 16; plain keeps no audit)")
    ratio = gw.writes_s / base.writes_s
    limit_ratio = gw.limit_writes_s / base.limit_writes_s
    lat = statistics.median(gw.north_ms) / statistics.median(base.north_ms)
    print(
        f"  ratio gateway/plain   writes {ratio:.2f} x  limit writes {limit_ratio:.2f} x"
        f"  north median {lat:.0f} x (an engine step and a commit, against a bare await)"
    )
    top = max(gw.north_ms) / 1000
    verdict = "meets" if limit_ratio <= 1.5 and top < TURN_S else "MISSES"
    print(
        f"  target limit writes <= 1.5x plain and north max < {TURN_S:g} s: {verdict}"
        f" ({limit_ratio:.2f}x, {top * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
