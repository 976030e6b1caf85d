"""Aggregator mode: client CPU per EndDevice program poll, 1,000 EndDevices over one Http.

One aggregator certificate (``UtilityState.add_aggregator``) sees ``N_EDEV`` EndDevices, each
with its own DERProgram (a DefaultDERControl and ``N_CONTROLS`` CSIP-AUS controls). The utility
simulator runs in a **subprocess** (this module with ``--serve``), so that this process's
``time.process_time()`` is the client's CPU alone: aiohttp, TLS, our codec, the walk and the
session. ``N_EDEV`` ``EndDeviceClient``s share ONE ``Http`` (one pool of ``POOL`` mutual-TLS
connections, one back-off gate), each delivering to a no-op sink. The machine needs two cores
for the wall-clock figure to mean anything: the server is one Python process, and its rate bounds
polls/s for both lines alike (the CPU figures are what the benchmark is about).

Setup: every client walks (discovery) once. Timed: rounds of one program poll per EndDevice
(``EndDeviceClient.poll``: GET the DefaultDERControl, GET the DERControlList page, decode,
session diff; what the client's loop does when a program's pollRate is due), ``CONCURRENCY``
EndDevices at a time. Reported: CPU ms per EndDevice poll and polls/s (wall), the median of
``ROUNDS`` rounds.

Baseline, in the same run and process, interleaved round by round: the same two GETs per
EndDevice with a bare ``aiohttp.ClientSession`` on the same TLS context and pool size, bodies
read, nothing decoded. The ratio is what our codec, poll generator and session add per poll.

Informational: the CPU and wall time of the discovery walks, and of one walk alone for the first
and the last EndDevice of the list. 2030.5 has no lookup by LFDI: the EndDevices of one
connection share one scan of the EndDeviceList (``walk.scan_end_devices``), so N first walks
decode the list once, not N^2/2 EndDevices; later walks start from each verified href.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import aiohttp

from gateway.core.messages import Input
from gateway.north.sep2 import identity, tls
from gateway.north.sep2.client import EndDeviceClient, Http, Identity
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles, init_pki
from gateway.sim.utility import UtilityServer, UtilityState

N_EDEV: Final = 1000
N_CONTROLS: Final = 3
ROUNDS: Final = 5
CONCURRENCY: Final = 32
POOL: Final = 32  # Http's connector limit
PAGE: Final = 32
HOUR: Final = 3600
SEED: Final = 2030
READY: Final = "serving "


# ------------------------------------------------------------------ the server (subprocess)


def lfdis(n: int) -> list[str]:
    rng = random.Random(SEED)
    return [f"{rng.getrandbits(160):040X}" for _ in range(n)]


def populate(state: UtilityState, aggregator: str, n: int) -> None:
    now = state.now()
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, HOUR)
    for i, lfdi in enumerate(lfdis(n)):
        state.add_end_device(lfdi, pin=None, aggregator=aggregator)
        default = DERControlBase(
            opModExpLimW=ActivePower.from_watts(5000), opModImpLimW=ActivePower.from_watts(10000)
        )
        program = state.add_program(f"site {i}", primacy=1, default=default, end_devices=[lfdi])
        for k in range(N_CONTROLS):
            state.add_control(
                program,
                start=now + 300 * (k + 1),
                duration=300,
                base=DERControlBase(
                    opModExpLimW=ActivePower.from_watts(1500 + 100 * k),
                    opModImpLimW=ActivePower.from_watts(8000),
                ),
            )


async def serve(directory: Path, n: int) -> None:
    """The utility server for the benchmark: until stdin closes."""
    s = directory / "server"
    aggregator = identity.Identity.from_certificate(
        (directory / "aggregator.pem").read_bytes()
    ).lfdi
    state = UtilityState()
    populate(state, aggregator, n)
    server = UtilityServer(
        state,
        cert=s.with_suffix(".pem"),
        key=s.with_suffix(".key"),
        chain=directory / "server-chain.pem",
        serca=directory / "serca.pem",
    )
    async with server:
        print(f"{READY}{server.url()}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # EOF: the benchmark is done


# ------------------------------------------------------------------ the client (this process)


async def start_server(pki: PkiFiles) -> tuple[asyncio.subprocess.Process, str]:
    root = Path(__file__).resolve().parent.parent
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sep2_aggregator",
        "--serve",
        str(pki.directory),
        str(N_EDEV),
        cwd=root,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
    if not line.startswith(READY):
        raise RuntimeError(f"the utility server did not start: {line!r}")
    return proc, line.removeprefix(READY)


async def bounded(jobs: Sequence[Callable[[], Awaitable[None]]], limit: int) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(limit)))


async def timed(jobs: Sequence[Callable[[], Awaitable[None]]]) -> tuple[float, float]:
    """(CPU s, wall s) of this process for running ``jobs``, CONCURRENCY at a time."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await bounded(jobs, CONCURRENCY)
    return time.process_time() - cpu, time.perf_counter() - wall


async def run(tmp: Path) -> dict[str, list[float]]:
    pki = init_pki(tmp / "pki", devices=("aggregator",))
    proc, dcap = await start_server(pki)
    agg = pki.device("aggregator")
    context = tls.client_context(agg.cert, agg.key, agg.chain, pki.serca)
    out: dict[str, list[float]] = {"ours_cpu": [], "ours_wall": [], "bare_cpu": [], "bare_wall": []}

    async def deliver(_inputs: list[Input]) -> None:
        return None

    try:
        async with Http(dcap, context) as http:
            clients = [
                EndDeviceClient(
                    http,
                    Identity(lfdi, identity.sfdi_from_lfdi(lfdi)),
                    deliver=deliver,
                    page_size=PAGE,
                )
                for lfdi in lfdis(N_EDEV)
            ]
            walk_cpu, walk_wall = await timed([c.walk for c in clients])
            out["walk_cpu"], out["walk_wall"] = [walk_cpu], [walk_wall]
            # One walk alone, of the first and of the last EndDevice in the server's list (the
            # simulator orders it by SFDI).
            ordered = sorted(clients, key=lambda c: c.identity.sfdi)
            for key, client in (("walk_first", ordered[0]), ("walk_last", ordered[-1])):
                cpu = time.process_time()
                await client.walk()
                out[key] = [time.process_time() - cpu]
            polls: list[Callable[[], Awaitable[None]]] = []
            hrefs: list[str] = []
            for c in clients:
                (view,) = c.session.programs
                mrid = view.program.mRID
                polls.append(functools.partial(c.poll, mrid))
                assert view.program.DefaultDERControlLink is not None
                assert view.program.DERControlListLink is not None
                assert len(view.controls) == N_CONTROLS, view
                hrefs.append(http.resolve(view.program.DefaultDERControlLink.href))
                derc = view.program.DERControlListLink.href
                hrefs.append(http.resolve(f"{derc}?s=0&l={PAGE}"))  # the poll's first page
            connector = aiohttp.TCPConnector(ssl=context, limit=POOL)
            async with aiohttp.ClientSession(connector=connector) as bare:

                async def get_both(i: int) -> None:
                    for url in hrefs[2 * i : 2 * i + 2]:
                        async with bare.get(url, headers={"Accept": "application/sep+xml"}) as r:
                            await r.read()
                            if r.status != 200:
                                raise RuntimeError(f"GET {url}: {r.status}")

                bare_jobs = [functools.partial(get_both, i) for i in range(N_EDEV)]
                await timed(bare_jobs[:100])  # warm-up: connections, caches
                await timed(polls[:100])
                for _ in range(ROUNDS):
                    cpu, wall = await timed(polls)
                    out["ours_cpu"].append(cpu)
                    out["ours_wall"].append(wall)
                    cpu, wall = await timed(bare_jobs)
                    out["bare_cpu"].append(cpu)
                    out["bare_wall"].append(wall)
            errors = [e for c in clients for e in c.errors]
            if errors:
                raise RuntimeError(f"{len(errors)} client problems, e.g. {errors[0]}")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:  # the test PKI's keys never leave it
        out = asyncio.run(run(Path(tmp)))
    ours_ms = 1000 * statistics.median(out["ours_cpu"]) / N_EDEV
    bare_ms = 1000 * statistics.median(out["bare_cpu"]) / N_EDEV
    ours_rate = N_EDEV / statistics.median(out["ours_wall"])
    bare_rate = N_EDEV / statistics.median(out["bare_wall"])
    print(
        f"2030.5 aggregator mode: {N_EDEV} EndDevices over one Http ({POOL} mTLS connections), "
        f"a default + {N_CONTROLS} controls each, server in a subprocess, median of {ROUNDS} rounds"
    )
    rows = (
        ("ours: EndDeviceClient program poll", ours_ms, ours_rate),
        ("baseline: bare aiohttp, same 2 GETs", bare_ms, bare_rate),
    )
    for label, ms, rate in rows:
        print(f"  {label:37s} client CPU {ms:6.3f} ms/poll   {rate:6.0f} polls/s")
    ratio, wall_ratio = ours_ms / bare_ms, bare_rate / ours_rate
    print(
        f"  {'ratio ours/baseline':37s} client CPU {ratio:6.2f} x         wall {wall_ratio:5.2f} x"
    )
    print(
        f"  (polls/s is bounded by the one-process simulator; the client alone, CPU-bound, "
        f"would do about {1000 / ours_ms:.0f} polls/s per core)"
    )
    walk_cpu, walk_wall = out["walk_cpu"][0], out["walk_wall"][0]
    first, last = 1000 * out["walk_first"][0], 1000 * out["walk_last"][0]
    print(
        f"  (informational) discovery, {N_EDEV} walks: client CPU {walk_cpu:.1f} s "
        f"({1000 * walk_cpu / N_EDEV:.1f} ms/walk), wall {walk_wall:.1f} s; one walk alone: "
        f"first EndDevice {first:.1f} ms CPU, last {last:.1f} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(serve(Path(sys.argv[2]), int(sys.argv[3])))
    else:
        main()
