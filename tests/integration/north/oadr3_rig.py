"""The whole gateway against the simulated OpenADR 3 VTN, over real sockets and real TLS.

``oadr3_rig`` starts the VTN (``sim.vtn3``, HTTPS with a test CA minted in ``tmp_path``), the
simulated home on Modbus and the gateway between them exactly as ``gateway run`` composes it
(``ModbusSite`` + ``Oadr3Gateway`` over a real SQLite file). The webhook listener, when used,
also serves HTTPS with a certificate from the same CA, and the VTN checks it.
Polling is every ``poll_s`` (long by default, so that a test of notifications cannot pass by
polling), reports every 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from north_rig import record_inputs, run_with_timeout

from gateway.core.island import EnterService, RelayPosition
from gateway.core.messages import Input
from gateway.core.site import SiteConfig
from gateway.demo.evening import demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.north.openadr3.adapter import Oadr3Gateway
from gateway.north.openadr3.config import Oadr3Config, WebhookConfig
from gateway.north.openadr3.mapping import AlertAction, ProgramMapping
from gateway.sim.clock import DEFAULT_START
from gateway.sim.vtn2.pki import init_pki
from gateway.sim.vtn3 import Vtn3Server, VtnState
from gateway.store.sqlite import SqliteStore

PROGRAM = "feeder-7"
CLIENT_ID = "gateway"
SECRET = "s3cret-for-tests"


@dataclass(frozen=True)
class TestPki:
    ca: Path
    cert: Path
    key: Path


def make_pki(folder: Path) -> TestPki:
    """A CA and a server certificate for 127.0.0.1/localhost (P-256): the OpenADR test PKI's
    VTN certificate (``gateway.sim.vtn2.pki``), written to ``folder``."""
    pki = init_pki(folder)
    return TestPki(pki.ca, pki.vtn.cert, pki.vtn.key)


def fast_site() -> SiteConfig:
    return replace(demo_site(), enter_service=EnterService(delay_s=1.0))


@dataclass
class Vtn:
    state: VtnState
    server: Vtn3Server
    program_id: str
    pki: TestPki


@asynccontextmanager
async def vtn_server(pki: TestPki) -> AsyncIterator[Vtn]:
    state = VtnState(clients={CLIENT_ID: SECRET})
    pid = state.add_program(PROGRAM)
    async with Vtn3Server(state, cert=pki.cert, key=pki.key, notify_ca=pki.ca) as server:
        yield Vtn(state, server, pid, pki)


@dataclass
class Rig:
    vtn: Vtn
    site: ModbusSite
    gateway: Oadr3Gateway
    inputs: list[Input] = field(default_factory=list)

    @property
    def state(self) -> VtnState:
        return self.vtn.state

    @property
    def pid(self) -> str:
        return self.vtn.program_id

    def relay(self) -> RelayPosition:
        position: RelayPosition = self.site.home.physics.relay.position
        return position

    def export_limit(self) -> float | None:
        return self.site.engine.resolved.controls.export_limit_w

    def add(
        self,
        intervals: list[dict[str, list[Any]]],
        *,
        start: float | None = None,
        duration_s: float = 60.0,
        **kw: Any,
    ) -> str:
        """An event on the rig's program, starting now by default."""
        return self.state.add_event(
            self.pid,
            intervals=intervals,
            start=time.time() if start is None else start,
            duration_s=duration_s,
            **kw,
        )

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
            await asyncio.sleep(0.02)

    async def observed(self) -> None:
        await self.until(lambda: self.site.runner.last_observed is not None, "first telemetry")


def config(
    vtn: Vtn,
    *,
    secret: str = SECRET,
    poll_s: float = 30.0,
    webhook: bool = True,
    mapping: ProgramMapping | None = None,
    report_period_s: float = 0.5,
) -> Oadr3Config:
    return Oadr3Config(
        vtn=vtn.server.url,
        client_id=CLIENT_ID,
        client_secret=secret,
        ven_name="gateway-1",
        programs=(mapping or ProgramMapping(PROGRAM),),
        ca_file=vtn.pki.ca,
        poll_s=poll_s,
        report_period_s=report_period_s,
        webhook=WebhookConfig() if webhook else None,
        backoff_min_s=0.1,
        backoff_max_s=0.5,
    )


ISLAND_ALERTS = ProgramMapping(PROGRAM, alerts={"ALERT_GRID_EMERGENCY": AlertAction.ISLAND})


@asynccontextmanager
async def oadr3_rig(
    tmp_path: Path,
    *,
    vtn: Vtn | None = None,
    db: str = "gw.db",
    **kw: Any,
) -> AsyncIterator[Rig]:
    """The gateway against a fresh VTN, or ``vtn`` (already running: a second rig on the same
    ``db`` is a restart). ``kw``: see :func:`config`."""
    async with contextlib.AsyncExitStack() as stack:
        if vtn is None:
            vtn = await stack.enter_async_context(vtn_server(make_pki(tmp_path / "pki")))
        with SqliteStore(tmp_path / db) as store:
            async with ModbusSite(
                store, fast_site(), start=DEFAULT_START, now=time.time, ack_reports=False
            ) as home:
                cfg = config(vtn, **kw)
                webhook_ssl = None
                if cfg.webhook is not None:
                    import ssl

                    webhook_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    webhook_ssl.load_cert_chain(vtn.pki.cert, vtn.pki.key)
                gateway = Oadr3Gateway(home.runner.port, store, cfg, webhook_ssl=webhook_ssl)
                rig = Rig(vtn, home, gateway)
                record_inputs(rig.site.runner, rig.inputs)
                stop = asyncio.Event()
                task = asyncio.create_task(gateway.run(stop, period_s=0.2))
                try:
                    yield rig
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 10)
                    assert home.home.violations == [], home.home.violations


def run(coro_fn: Callable[[], object], timeout: float = 40.0) -> None:
    run_with_timeout(coro_fn, timeout)  # type: ignore[arg-type]
