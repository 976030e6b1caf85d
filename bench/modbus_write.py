"""A safety write with read-back: the whole driver stack against bare pymodbus.

Both sides write the Quasar-style charger's power setpoint (holding 260, FC06) and read it back
(FC03) on the same simulated home, over loopback TCP, in the same run, interleaved in blocks
so that drift on a shared machine hits both alike:

* **bare**: ``AsyncModbusTcpClient(retries=0)``, ``write_register`` then
  ``read_holding_registers`` and a comparison: the least a careful client does;
* **gateway**: ``Device.write("power_setpoint", w, verify=True)``: profile lookup, range check,
  codec, the transport's lock, pacing and timeout, read-back comparison, and two audit records
  into a ``MemoryStore`` (the store's own cost is measured by the SQLite line, which is
  informational: ``synchronous=FULL`` makes every append an fsync).

Target: gateway / bare at most 1.3x (median).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from gateway.runtime.runner import audit_to
from gateway.sim.modbus import SimulatedHome
from gateway.south.device import Device
from gateway.south.transport import Transports
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SqliteStore

WRITES = 3000
BLOCK = 100
ADDRESS = 260  # the Quasar power setpoint


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def timed(samples: list[float], op: Callable[[int], Awaitable[None]], i: int) -> None:
    t = time.perf_counter_ns()
    await op(i)
    samples.append((time.perf_counter_ns() - t) / 1000)


async def run() -> dict[str, list[float]]:
    async with SimulatedHome(charger="wallbox-quasar", der=None) as home:
        url = home.endpoints["charger"]
        host, port = url.removeprefix("tcp://").split(":")
        profile = home.device("charger").profile
        bare_client = AsyncModbusTcpClient(host, port=int(port), retries=0, timeout=2)
        await bare_client.connect()
        transports = Transports()
        memory = MemoryStore()
        with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "a.db") as sqlite:
            link = transports.endpoint(url)
            fast = Device("charger", profile, link, audit=audit_to(memory), now=time.time)
            durable = Device("charger", profile, link, audit=audit_to(sqlite), now=time.time)

            async def bare(i: int) -> None:
                value = (i % 2000) - 1000
                raw = value & 0xFFFF
                rr = await bare_client.write_register(ADDRESS, raw, device_id=1)
                if rr.isError():
                    raise RuntimeError(rr)
                rr = await bare_client.read_holding_registers(ADDRESS, count=1, device_id=1)
                if rr.isError() or rr.registers != [raw]:
                    raise RuntimeError(rr)

            def gateway(device: Device) -> Callable[[int], Awaitable[None]]:
                async def op(i: int) -> None:
                    await device.write("power_setpoint", (i % 2000) - 1000, reason="bench")

                return op

            ops = {"bare": bare, "gateway": gateway(fast), "gateway+sqlite": gateway(durable)}
            samples: dict[str, list[float]] = {name: [] for name in ops}
            for op in ops.values():  # warm-up: connections, caches
                for i in range(50):
                    await op(i)
            gc.collect()
            for block in range(WRITES // BLOCK):
                for name, op in ops.items():
                    if name == "gateway+sqlite" and block % 5:
                        continue  # fsync-bound and informational: a fifth of the samples
                    for i in range(BLOCK):
                        await timed(samples[name], op, block * BLOCK + i)
            bare_client.close()
            await transports.close()
        return samples


def main() -> None:
    samples = asyncio.run(run())
    bare, gw, durable = samples["bare"], samples["gateway"], samples["gateway+sqlite"]
    bmed, bp99 = statistics.median(bare), percentile(bare, 99)
    gmed, gp99 = statistics.median(gw), percentile(gw, 99)
    smed, sp99 = statistics.median(durable), percentile(durable, 99)
    print(f"safety write + read-back over loopback TCP, {len(bare)} each, simulated Quasar")
    print(f"  bare pymodbus (retries=0)      median {bmed:8.1f} us   p99 {bp99:8.1f} us")
    print(f"  gateway Device.write, verified median {gmed:8.1f} us   p99 {gp99:8.1f} us")
    ratio, ratio99 = gmed / bmed, gp99 / bp99
    print(f"  ratio gateway/bare             median {ratio:8.2f} x    p99 {ratio99:8.2f} x")
    print(f"  (informational) audit to SQLite median {smed:8.1f} us   p99 {sp99:8.1f} us")
    verdict = "meets" if gmed / bmed <= 1.3 else "MISSES"
    print(f"  target <= 1.3x median: {verdict} ({gmed / bmed:.2f}x)")


if __name__ == "__main__":
    main()
