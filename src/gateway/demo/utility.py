"""``gateway demo utility``: the gateway following a real 2030.5 server, end to end.

Everything real but the utility's people: a test PKI minted into a temporary directory, the
simulated utility server over mutual TLS (its clock an hour ahead of this machine's, so every
event is visibly scheduled in server time), the gateway exactly as ``gateway run`` composes it
(client, engine, SQLite outbox, simulated home over Modbus), and a script on the utility side:

1. the gateway registers in band, walks, subscribes, and applies the program's default;
2. the utility sends an export limit for a few seconds: responses 1, 2, 3 come back;
3. the utility asks the home to disconnect (``opModConnect=false``): the relay opens, the EV
   forms the home grid, DERStatus reports disconnected, then the home reconnects;
4. the utility sends a control with a negative limit: it is refused with 253.

It prints the gateway's decisions as they happen and, at the end, what the utility received.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from gateway.core.island import EnterService
from gateway.demo.evening import demo_site
from gateway.demo.modbus_evening import _printer
from gateway.demo.modbus_site import ModbusSite
from gateway.north.sep2 import codec, tls
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import Backoff, Http, Identity
from gateway.north.sep2.der_resources import DERStatus
from gateway.north.sep2.identity import sfdi_from_lfdi
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.pki import init_pki
from gateway.north.sep2.telemetry import SiteRatings
from gateway.sim.clock import DEFAULT_START
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.utility.records import Program
from gateway.store.sqlite import SqliteStore

SERVER_AHEAD_S = 3600.0
PIN = 111115


async def run_utility_demo(out: TextIO) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return await _demo(out, Path(tmp))


async def _demo(out: TextIO, tmp: Path) -> int:
    started = time.monotonic()

    def say(text: str) -> None:
        out.write(f"{time.monotonic() - started:6.2f}s  {text}\n")
        out.flush()

    pki = init_pki(tmp / "pki")
    state = UtilityState(clock=lambda: time.time() + SERVER_AHEAD_S, registration_pin=PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 2)
    program = state.add_program(
        "feeder 7", primacy=1, default=DERControlBase(opModExpLimW=ActivePower(5000))
    )
    recorder = Recorder()
    s, gw = pki.server, pki.device("gateway")
    site_config = replace(demo_site(), enter_service=EnterService(delay_s=2.0))
    ratings = SiteRatings.of_site(site_config)
    server = UtilityServer(
        state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=recorder
    )
    context = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca, pinned_lfdi=server.lfdi)
    async with server:
        out.write(f"utility server: {server.url('/dcap')} (its clock is 1 h ahead of ours)\n")
        http = Http(server.url("/dcap"), context, backoff=Backoff(0.5, 5.0))
        with SqliteStore(tmp / "gateway.db") as store:
            home = ModbusSite(
                store, site_config, start=DEFAULT_START, now=http.time.now, ack_reports=False
            )
            home.site.listener = _printer(say)
            router = NotificationRouter()
            listener = NotificationListener(
                cert=gw.cert,
                key=gw.key,
                chain=gw.chain,
                serca=pki.serca,
                on_notification=router,
                pinned_lfdi=server.lfdi,
            )
            async with http, home:
                await listener.start()
                identity = Identity(gw.lfdi, sfdi_from_lfdi(gw.lfdi), pin=PIN, register=True)
                gateway = Sep2Gateway(
                    home.runner.port,
                    store,
                    http,
                    identity,
                    ratings=ratings,
                    notify=(router, listener.url),
                )
                stop = asyncio.Event()
                task = asyncio.create_task(gateway.run(stop, period_s=0.25))
                try:
                    ok = await _script(say, state, recorder, program, gw.lfdi)
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 10)
                    await listener.stop()
                violations = home.home.violations
    out.write("\nwhat the utility received:\n")
    for mrid, codes in _responses(recorder).items():
        out.write(f"  Responses for {mrid}: {codes}\n")
    puts = len(recorder.requests("PUT"))
    posts = len(recorder.requests("POST", "/mup"))
    out.write(f"  {puts} telemetry PUTs, {posts} MirrorUsagePoint posts\n")
    out.write(f"violations recorded by the simulated home: {len(violations)}\n")
    return 0 if ok and not violations else 1


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _codes(recorder: Recorder, mrid: str) -> list[int | None]:
    return [status for status, _ in recorder.responses_for(mrid)]


def _responses(recorder: Recorder) -> dict[str, list[int | None]]:
    out: dict[str, list[int | None]] = {}
    for _, response in recorder.responses():
        out.setdefault(response.subject, []).append(response.status)
    return out


def _connected(recorder: Recorder) -> bool | None:
    puts = [x for x in recorder.requests("PUT") if x.path.endswith("/ders")]
    if not puts:
        return None
    status = codec.decode(puts[-1].body)
    if not isinstance(status, DERStatus) or status.genConnectStatus is None:
        return None
    return bool(status.genConnectStatus.value & 1)


async def _script(
    tell: Callable[[str], None],
    state: UtilityState,
    recorder: Recorder,
    program: Program,
    lfdi: str,
) -> bool:
    ok = await _until(lambda: state.find_end_device(lfdi) is not None)
    tell(f"## the gateway registered in band as {lfdi}")
    state.set_post_rate(1)
    ok &= await _until(lambda: bool(recorder.requests("POST", "/edev/1/sub", status=201)))
    tell("## it subscribed to the program; the default (5 kW export) is in force")

    tell("## the utility: export limit 1.5 kW, starting in 2 s, for 4 s")
    limit = state.add_control(
        program,
        start=state.now() + 2,
        duration=4,
        base=DERControlBase(opModExpLimW=ActivePower(1500)),
    )
    ok &= await _until(lambda: _codes(recorder, limit) == [1, 2, 3])
    tell(f"## the utility has 1, 2, 3 for {limit}")

    tell("## the utility: disconnect the home (opModConnect=false) for 5 s")
    island = state.add_control(
        program,
        start=state.now() + 1,
        duration=5,
        base=DERControlBase(opModConnect=False),
    )
    ok &= await _until(lambda: _connected(recorder) is False)
    tell("## the utility sees DERStatus: disconnected (genConnectStatus bit 0 clear)")
    ok &= await _until(lambda: _codes(recorder, island) == [1, 2, 3])
    ok &= await _until(lambda: _connected(recorder) is True, 30)
    tell("## the home is back on the grid; DERStatus: connected")

    tell("## the utility: an export limit of -777 W (invalid: a limit is a magnitude)")
    state.tamper(["/derp/*/derc"], lambda body: body.replace(b">777<", b">-777<"))
    bad = state.add_control(
        program,
        start=state.now() + 1,
        duration=60,
        base=DERControlBase(opModExpLimW=ActivePower(777)),
    )
    ok &= await _until(lambda: _codes(recorder, bad) == [253])
    tell(f"## the utility has 253 (invalid) for {bad}; nothing of it is in force")
    return ok
