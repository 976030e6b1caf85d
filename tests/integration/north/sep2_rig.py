"""The whole gateway against the simulated utility, over real sockets on both sides.

``gateway_rig`` starts the 2030.5 utility server (mutual TLS, its clock ``SERVER_OFFSET_S``
ahead of the OS clock, so anything that schedules on the OS clock fails), the simulated home on
Modbus, and the gateway between them exactly as ``gateway run`` composes it (``Http`` +
``ModbusSite`` + ``Sep2Gateway`` over a real SQLite file). Every poll rate and the post rate
are 1 s, so a procedure that takes minutes on a real server takes seconds here; the site's
enter-service delay is 1 s for the same reason.

Procedures (ALL-xx, GEN-xx, LOA-xx, MUL-xx, P-xx) are tests in ``test_sep2_<function set>.py``
named after their ID; docs/sep2-conformance.md maps every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from north_rig import record_inputs, run_with_timeout

from gateway.core.controls import Mode
from gateway.core.island import EnterService, RelayPosition
from gateway.core.messages import Input
from gateway.core.schedule import InForce
from gateway.core.site import SiteConfig
from gateway.demo.evening import demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.north.sep2 import tls
from gateway.north.sep2.adapter import NotificationRouter, Sep2Gateway
from gateway.north.sep2.client import Backoff, Http, Identity
from gateway.north.sep2.identity import sfdi_from_lfdi
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.telemetry import SiteRatings
from gateway.runtime.runner import RATINGS_EVERY_S
from gateway.sim.clock import DEFAULT_START
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.utility.records import Program
from gateway.store.sqlite import SqliteStore

SERVER_OFFSET_S = 5 * 3600.0  # the utility's clock runs 5 h ahead of this machine's
PIN = 111115
RATE_S = 1
POLLED = ("dcap", "tm", "edev", "reg", "fsa", "derp", "der")


def fast_site() -> SiteConfig:
    return replace(demo_site(), enter_service=EnterService(delay_s=1.0))


def server_clock() -> float:
    return time.time() + SERVER_OFFSET_S


def export_limit(watts: float) -> DERControlBase:
    return DERControlBase(opModExpLimW=ActivePower.from_watts(watts))


@dataclass
class GatewayRig:
    state: UtilityState
    server: UtilityServer
    recorder: Recorder
    pki: PkiFiles
    http: Http
    site: ModbusSite
    gateway: Sep2Gateway
    program: Program  # the rig's DERProgram record (primacy 1)
    # What the north side fed the engine (everything but Observed and Tick), in order.
    inputs: list[Input] = field(default_factory=list)
    listener: NotificationListener | None = None  # with notifications=True
    router: NotificationRouter | None = None  # with notifications=True

    @property
    def lfdi(self) -> str:
        return self.pki.device("gateway").lfdi

    def server_now(self) -> float:
        return self.state.now()

    def relay(self) -> RelayPosition:
        position: RelayPosition = self.site.home.physics.relay.position
        return position

    def codes(self, mrid: str) -> list[int]:
        return [status for status, _ in self.recorder.responses_for(mrid)]

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        await until(check, what, timeout)


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``check`` every 50 ms until it holds; AssertionError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
        await asyncio.sleep(0.05)


@dataclass
class Utility:
    """A running simulated utility server (``utility_server``), to run gateways against."""

    state: UtilityState
    server: UtilityServer
    recorder: Recorder
    program: Program


@asynccontextmanager
async def utility_server(
    pki: PkiFiles,
    *,
    register_in_band: bool = False,
    default: DERControlBase | None = None,
    server_pin: int | None = PIN,
    notify_with_certificate: bool = True,
) -> AsyncIterator[Utility]:
    """The utility alone: every poll rate 1 s, the rig's program, the gateway's EndDevice
    registered out of band unless ``register_in_band`` (``server_pin``: the PIN its
    Registration holds, None: no RegistrationLink; in band, the PIN given to it).
    ``notify_with_certificate=False``: notifications go out without a client certificate."""
    state = UtilityState(clock=server_clock)
    for resource in POLLED:
        state.set_poll_rate(resource, RATE_S)  # type: ignore[arg-type]
    gw = pki.device("gateway")
    if register_in_band:
        state.registration_pin = server_pin
    else:
        state.add_end_device(gw.lfdi, pin=server_pin, post_rate=RATE_S)
    program = state.add_program("feeder 7", primacy=1, default=default or export_limit(5000))
    recorder = Recorder()
    s = pki.server
    server = UtilityServer(
        state,
        cert=s.cert,
        key=s.key,
        chain=s.chain,
        serca=pki.serca,
        recorder=recorder,
        notify_with_certificate=notify_with_certificate,
    )
    async with server:
        yield Utility(state, server, recorder, program)


@asynccontextmanager
async def gateway_rig(
    pki: PkiFiles,
    db: Path,
    *,
    register_in_band: bool = False,
    default: DERControlBase | None = None,
    site: SiteConfig | None = None,
    backoff: Backoff | None = None,
    notifications: bool = False,
    server_pin: int | None = PIN,
    connection_point: str | None = None,
    seed: int = 2030,
    utility: Utility | None = None,
    ratings_every_s: float = RATINGS_EVERY_S,
    charger: str = "wallbox-quasar",
    notify_require_certificate: bool = True,
) -> AsyncIterator[GatewayRig]:
    """The gateway against a fresh utility, or against ``utility`` (already running: a second
    gateway on the same SQLite file is a restart). ``server_pin``: see ``utility_server``;
    ``connection_point``: the NMI the gateway PUTs to its ConnectionPoint; ``seed``: the
    engine's randomisation RNG; ``ratings_every_s``: how often the devices' own ratings are
    re-read (``Runner``); ``charger``: the simulated charger's profile;
    ``notify_require_certificate``: the listener's ``[sep2.notify] require_certificate``."""
    async with contextlib.AsyncExitStack() as stack:
        if utility is None:
            utility = await stack.enter_async_context(
                utility_server(
                    pki,
                    register_in_band=register_in_band,
                    default=default,
                    server_pin=server_pin,
                )
            )
        async with _gateway(
            pki,
            db,
            utility,
            register_in_band=register_in_band,
            site=site,
            backoff=backoff,
            notifications=notifications,
            connection_point=connection_point,
            seed=seed,
            ratings_every_s=ratings_every_s,
            charger=charger,
            notify_require_certificate=notify_require_certificate,
        ) as rig:
            yield rig


@asynccontextmanager
async def _gateway(
    pki: PkiFiles,
    db: Path,
    utility: Utility,
    *,
    register_in_band: bool,
    site: SiteConfig | None,
    backoff: Backoff | None,
    notifications: bool,
    connection_point: str | None,
    seed: int,
    ratings_every_s: float,
    charger: str,
    notify_require_certificate: bool = True,
) -> AsyncIterator[GatewayRig]:
    state, server, recorder, program = (
        utility.state,
        utility.server,
        utility.recorder,
        utility.program,
    )
    gw = pki.device("gateway")
    config = site or fast_site()
    ratings = SiteRatings.of_site(config)
    context = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca)
    http = Http(server.url("/dcap"), context, backoff=backoff or Backoff(0.2, 2.0), lfdi=gw.lfdi)
    with SqliteStore(db) as store:
        async with (
            http,
            ModbusSite(
                store,
                config,
                start=DEFAULT_START,
                now=http.time.now,
                ack_reports=False,
                seed=seed,
                ratings_every_s=ratings_every_s,
                charger=charger,
            ) as home,
        ):
            identity = Identity(
                gw.lfdi,
                sfdi_from_lfdi(gw.lfdi),
                pin=PIN,
                register=register_in_band,
                connection_point_id=connection_point,
            )
            router = NotificationRouter()
            listener = _listener(
                pki, "gateway", router, server, require_certificate=notify_require_certificate
            )
            notify = None
            if notifications:
                await listener.start()
                notify = (router, listener.url)
            gateway = Sep2Gateway(
                home.runner.port, store, http, identity, ratings=ratings, notify=notify
            )
            rig = GatewayRig(state, server, recorder, pki, http, home, gateway, program)
            rig.listener = listener if notifications else None
            rig.router = router if notifications else None
            record_inputs(rig.site.runner, rig.inputs)
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop, period_s=0.2))
            try:
                yield rig
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)
                await listener.stop()
                assert home.home.violations == [], home.home.violations


def _listener(
    pki: PkiFiles,
    device: str,
    router: NotificationRouter,
    server: UtilityServer,
    *,
    require_certificate: bool = True,
) -> NotificationListener:
    """The notification listener of ``device`` (not started), taking only ``server``'s (or,
    without ``require_certificate``, also unverified ones, as ``gateway run`` does)."""
    d = pki.device(device)
    return NotificationListener(
        cert=d.cert,
        key=d.key,
        chain=d.chain,
        serca=pki.serca,
        on_notification=router,
        pinned_lfdi=server.lfdi,
        require_client_certificate=require_certificate,
        on_unverified=router.unverified,
    )


def run(coro_fn: Callable[[], object], timeout: float = 60.0) -> None:
    run_with_timeout(coro_fn, timeout)  # type: ignore[arg-type]


async def held(
    r: GatewayRig,
    measure: Callable[[GatewayRig], float],
    limit: float,
    what: str,
    *,
    tolerance: float,
    timeout: float,
) -> None:
    """``measure`` settles at ``limit`` (the DER have the room to reach it) and stays at or
    under it for half a second more."""
    await r.until(lambda: abs(measure(r) - limit) <= tolerance, f"{what}: at {limit:g} W", timeout)
    for _ in range(5):
        await asyncio.sleep(0.1)
        got = measure(r)
        assert got <= limit + tolerance, f"{what}: {got:.0f} W > {limit:g} W"


# --- an aggregator: one certificate, several EndDevices, one notification listener ------------


@dataclass
class Member:
    """One EndDevice of an ``aggregator_rig``: its site, its gateway and its own program."""

    lfdi: str
    number: int  # the server's /edev/{number}
    site: ModbusSite
    gateway: Sep2Gateway
    program: Program  # assigned to this EndDevice alone (primacy 2, no default)
    inputs: list[Input] = field(default_factory=list)

    @property
    def sub_list(self) -> str:
        return f"/edev/{self.number}/sub"

    def in_force(self, mode: Mode) -> InForce:
        return self.site.engine.schedule.in_force(mode, self.gateway.client.now())


@dataclass
class AggregatorRig:
    utility: Utility
    http: Http
    router: NotificationRouter
    listener: NotificationListener
    members: list[Member]

    @property
    def state(self) -> UtilityState:
        return self.utility.state

    @property
    def recorder(self) -> Recorder:
        return self.utility.recorder

    def codes(self, mrid: str, member: Member) -> list[int | None]:
        """The Response statuses ``member`` sent about ``mrid``."""
        return [
            r.status for _, r in self.recorder.responses(mrid) if r.endDeviceLFDI == member.lfdi
        ]


def member_lfdi(i: int) -> str:
    """A made-up LFDI for the aggregator's ``i``-th EndDevice (they need no certificate)."""
    return hashlib.sha256(f"aggregated EndDevice {i}".encode()).hexdigest()[:40].upper()


@asynccontextmanager
async def aggregator_rig(
    pki: PkiFiles,
    tmp: Path,
    members: int = 2,
    *,
    notifications: bool = True,
    own_end_device: bool = False,
) -> AsyncIterator[AggregatorRig]:
    """``gateway run`` in aggregator mode (``runtime/cli_run.py``'s composition) against the
    utility: ``members`` EndDevices behind the ``agg`` certificate over one ``Http``, each with
    its own SQLite store, simulated home and ``Sep2Gateway``, sharing one notification listener
    (``notifications``). Every EndDevice gets the rig's shared program (primacy 1, default
    export 5000 W) and a program of its own. ``own_end_device``: the server plays the
    reference server's habit, the aggregator's own EndDevice ``/edev/0`` holding the only
    SubscriptionListLink (``UtilityState.add_aggregator``)."""
    agg = pki.device("agg")
    async with utility_server(pki) as u, contextlib.AsyncExitStack() as stack:
        u.state.add_aggregator(agg.lfdi, end_device=own_end_device)
        context = tls.client_context(agg.cert, agg.key, agg.chain, pki.serca)
        http = await stack.enter_async_context(
            Http(u.server.url("/dcap"), context, backoff=Backoff(0.2, 2.0), lfdi=agg.lfdi)
        )
        router = NotificationRouter()
        listener = _listener(pki, "agg", router, u.server)
        if notifications:
            await listener.start()
            stack.push_async_callback(listener.stop)
        config = fast_site()
        crew: list[Member] = []
        for i in range(members):
            lfdi = member_lfdi(i)
            edev = u.state.add_end_device(lfdi, pin=PIN, aggregator=agg.lfdi, post_rate=RATE_S)
            own = u.state.add_program(f"edev {edev.number}", primacy=2, end_devices=[lfdi])
            store = stack.enter_context(SqliteStore(tmp / f"edev{i}.db"))
            home = await stack.enter_async_context(
                ModbusSite(store, config, start=DEFAULT_START, now=http.time.now, ack_reports=False)
            )
            gateway = Sep2Gateway(
                home.runner.port,
                store,
                http,
                Identity(lfdi, sfdi_from_lfdi(lfdi), pin=PIN),
                ratings=SiteRatings.of_site(config),
                notify=(router, listener.url) if notifications else None,
            )
            crew.append(Member(lfdi, edev.number, home, gateway, own))
            record_inputs(home.runner, crew[-1].inputs)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(m.gateway.run(stop, period_s=0.2)) for m in crew]
        try:
            yield AggregatorRig(u, http, router, listener, crew)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for m in crew:
                assert m.site.home.violations == [], (m.lfdi, m.site.home.violations)
