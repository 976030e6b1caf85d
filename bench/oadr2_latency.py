"""An OpenADR 2.0b island event: from ``add_event`` at the VTN to the first device write.

One process, one event loop (in-process: the VTN, both VENs and the simulated home share the
CPU, which is charged to everyone alike): the scripted VTN (openleadr's ``OpenADRServer``) with
TLS and ECDSA P-256 XML signatures, the gateway composed as ``gateway run`` composes it
(``ModbusSite`` with the SQLite store, ``Oadr2Gateway``'s VEN), and a **bare openleadr VEN**
(stock ``OpenADRClient``, its own certificate, an ``on_event`` handler that records the instant
and returns ``optIn``) registered at the same VTN. Neither VEN polls on a timer: each sample
queues the event and then awaits one poll (``_poll``), so the poll interval is out of the figure
and both VENs pay for exactly the same protocol work (oadrPoll -> signed oadrDistributeEvent ->
verify + parse).

Marks (``time.perf_counter_ns``): ``queued`` just before ``add_event``; for the bare VEN, entry
into its ``on_event``; for the gateway, the entry into ``South.execute`` of the first device
command the event causes (the charger stop of the islanding sequence: a Modbus write follows at
once), with the entry into ``on_distribute`` (the point equivalent to the bare handler) as an
intermediate mark. The gateway's added time is its total minus the bare VEN's, per interleaved
pair. Between gateway samples the event is cancelled, polled, and the home reconnects (enter
service after 0.1 s). Target: the gateway adds at most 2 ms (median).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openleadr import OpenADRClient

from gateway.core.island import EnterService, Phase, RelayPosition
from gateway.core.messages import WriteConfirmed, WriteFailed
from gateway.demo.evening import demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr2.config import Oadr2Config, Tls
from gateway.sim.clock import DEFAULT_START
from gateway.sim.vtn2 import ScriptedVtn, VtnTls
from gateway.sim.vtn2.pki import Oadr2Pki, init_pki
from gateway.store.sqlite import SqliteStore

SAMPLES = 60
WARMUP = 3
PERIOD_S = 0.25  # control loop; an event acts within its own feed, not at a cycle
TARGET_ADDED_MS = 2.0
CAPACITY = ("LOAD_CONTROL", "x-loadControlCapacity")


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def _line(label: str, xs: list[float]) -> str:
    return (
        f"  {label:40s} median {statistics.median(xs):7.2f} ms   p99 {percentile(xs, 99):7.2f} ms"
    )


async def _until(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Marks:
    def __init__(self) -> None:
        self.at: dict[str, int] = {}

    def mark(self, stage: str) -> None:
        self.at.setdefault(stage, time.perf_counter_ns())

    def ms(self, a: str, b: str) -> float:
        return (self.at[b] - self.at[a]) / 1e6


async def _bare_ven(vtn: ScriptedVtn, pki: Oadr2Pki, marks: Marks) -> OpenADRClient:
    with contextlib.redirect_stdout(io.StringIO()):
        client = OpenADRClient(
            ven_name="bare-openleadr-ven",
            vtn_url=vtn.url,
            cert=str(pki.other.cert),
            key=str(pki.other.key),
            ca_file=str(pki.ca),
            vtn_fingerprint=pki.vtn.fingerprint,
            show_fingerprint=False,
        )

    async def on_event(_: dict[str, Any]) -> str:
        marks.mark("handler")
        return "optIn"

    client.add_handler("on_event", on_event)
    client.add_handler("on_update_event", on_event)
    await client.run()
    client.scheduler.pause()  # polls are forced
    return client


async def run(pki: Oadr2Pki, db: Path) -> tuple[list[float], list[float], list[float]]:
    tls = VtnTls(str(pki.vtn.cert), str(pki.vtn.key), str(pki.ca))
    gw_marks, bare_marks = Marks(), Marks()
    site = replace(demo_site(), enter_service=EnterService(delay_s=0.1))
    async with ScriptedVtn(tls=tls, poll_interval_s=3600) as vtn:
        config = Oadr2Config(
            vtn_url=vtn.url,
            ven_name="gateway-ven",
            poll_interval_s=3600,
            report_interval_s=3600,
            tls=Tls(pki.ven.cert, pki.ven.key, pki.ca, pki.vtn.fingerprint),
        )
        with SqliteStore(db) as store:
            async with ModbusSite(
                store, site, start=DEFAULT_START, now=time.time, ack_reports=False
            ) as home:
                gateway = Oadr2Gateway(home.runner.port, store, config)
                _instrument(gateway, home, gw_marks)
                stop = asyncio.Event()
                loop_task = asyncio.create_task(home.runner.run(PERIOD_S, stop))
                assert await gateway.ven.register(), "the gateway VEN did not register"
                bare = await _bare_ven(vtn, pki, bare_marks)
                try:
                    return await _samples(Bench(vtn, gateway, home, bare, gw_marks, bare_marks))
                finally:
                    stop.set()
                    await loop_task
                    await gateway.ven.close()
                    await bare.stop()


@dataclass
class Bench:
    vtn: ScriptedVtn
    gateway: Oadr2Gateway
    home: ModbusSite
    bare: OpenADRClient
    gw_marks: Marks
    bare_marks: Marks

    async def bare_sample(self) -> None:
        self.bare_marks.at = {}
        self.bare_marks.mark("queued")
        eid = self.vtn.add_event(self.bare.ven_id, *CAPACITY, [_now_for_5_min()])
        await self.bare._poll()
        self.vtn.drop_event(eid)
        await self.bare._poll()

    async def gateway_sample(self) -> None:
        self.gw_marks.at = {}
        self.gw_marks.mark("queued")
        eid = self.vtn.add_event(self.gateway.ven.ven_id, *CAPACITY, [_now_for_5_min()])
        await self.gateway.ven._poll()
        physics = self.home.home.physics
        await _until(lambda: physics.relay.position is RelayPosition.OPEN, "island")
        self.vtn.cancel_event(eid)
        await self.gateway.ven._poll()


def _now_for_5_min() -> tuple[datetime, timedelta, float]:
    return datetime.now(UTC), timedelta(minutes=5), 0.0


async def _samples(b: Bench) -> tuple[list[float], list[float], list[float]]:
    ours: list[float] = []
    stock: list[float] = []
    ours_to_handler: list[float] = []
    for i in range(WARMUP + SAMPLES):
        await _until(
            lambda: (
                b.home.engine.phase is Phase.GRID_CONNECTED
                and b.home.home.physics.relay.position is RelayPosition.CLOSED
            ),
            "a settled, grid-connected site",
        )
        await asyncio.sleep(3 * PERIOD_S)
        gc.collect()
        # Interleaved, in alternating order, so that neither VEN always goes first.
        if i % 2:
            await b.bare_sample()
            await b.gateway_sample()
        else:
            await b.gateway_sample()
            await b.bare_sample()
        if i >= WARMUP:
            stock.append(b.bare_marks.ms("queued", "handler"))
            ours.append(b.gw_marks.ms("queued", "write"))
            ours_to_handler.append(b.gw_marks.ms("queued", "distribute"))
    return ours, stock, ours_to_handler


def _instrument(gateway: Oadr2Gateway, home: ModbusSite, marks: Marks) -> None:
    south = home.south
    execute = south.execute
    on_distribute = gateway.ven.on_distribute

    async def timed_execute(cmd: Any) -> WriteConfirmed | WriteFailed:
        marks.mark("write")
        return await execute(cmd)

    async def timed_distribute(events: list[dict[str, Any]]) -> Any:
        marks.mark("distribute")
        return await on_distribute(events)

    south.execute = timed_execute  # type: ignore[method-assign]
    gateway.ven.on_distribute = timed_distribute


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("openleadr").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:  # the test PKI's keys never leave it
        pki = init_pki(Path(tmp) / "pki")
        ours, stock, to_handler = asyncio.run(run(pki, Path(tmp) / "gw.db"))
    added = [o - s for o, s in zip(ours, stock, strict=True)]
    print(
        f"OpenADR 2.0b island event, add_event -> first device write, {len(ours)} samples, "
        "TLS + ECDSA signatures, poll forced, one process, SQLite store"
    )
    print(_line("gateway: queued -> charger write", ours))
    print(_line("  queued -> on_distribute entry", to_handler))
    print(
        _line(
            "  on_distribute -> charger write",
            [o - h for o, h in zip(ours, to_handler, strict=True)],
        )
    )
    print(_line("bare openleadr VEN: queued -> on_event", stock))
    print(_line("added by the gateway (pairwise)", added))
    med = statistics.median(added)
    verdict = "meets" if med <= TARGET_ADDED_MS else "MISSES"
    print(f"  target: adds <= {TARGET_ADDED_MS:g} ms (median): {verdict} ({med:.2f} ms)")


if __name__ == "__main__":
    main()
