"""The whole gateway against the scripted OpenADR 2.0b VTN, over real sockets on both sides.

``oadr2_rig`` starts the scripted VTN (openleadr's ``OpenADRServer``; optionally TLS + ECDSA
signatures), the simulated home on Modbus, and the gateway between them as ``gateway run``
composes it (``ModbusSite`` + ``Oadr2Gateway`` over a real SQLite file, on the wall clock, which
is OpenADR's timebase). The VEN polls every 0.3 s and can be made to poll at once
(``rig.poll()``), so the E1/N1/R1/G1 procedures of the QualityLogic harness run in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from north_rig import record_inputs, run_with_timeout

from gateway.core.island import EnterService, RelayPosition
from gateway.core.messages import Input
from gateway.core.site import SiteConfig
from gateway.demo.evening import demo_site
from gateway.demo.modbus_site import ModbusSite
from gateway.north.openadr2.adapter import Oadr2Gateway
from gateway.north.openadr2.config import Availability, Oadr2Config, Tls
from gateway.sim.clock import DEFAULT_START
from gateway.sim.vtn2 import ScriptedVtn, VtnTls
from gateway.sim.vtn2.pki import Oadr2Pki, init_pki
from gateway.store.sqlite import SqliteStore

VEN_NAME = "gateway-ven"
POLL_S = 0.3
# Hostile answers: nested entities (crash openleadr's parser: ven.py workaround 5) and XXE.
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">]>
<oadrPayload>&lol6;</oadrPayload>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">&x;</oadr:oadrPayload>"""


@pytest.fixture(scope="session")
def oadr2_pki(tmp_path_factory: pytest.TempPathFactory) -> Oadr2Pki:
    return init_pki(tmp_path_factory.mktemp("oadr2-pki"))


def fast_site() -> SiteConfig:
    return replace(demo_site(), enter_service=EnterService(delay_s=1.0))


def now() -> datetime:
    return datetime.now(UTC)


def soon(seconds: float = 0.0) -> datetime:
    return now() + timedelta(seconds=seconds)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@asynccontextmanager
async def scripted_vtn(
    pki: Oadr2Pki | None = None,
    *,
    pre_allocated: dict[str, str | None] | None = None,
    vtn_id: str = "VTN_SIM",
) -> AsyncIterator[ScriptedVtn]:
    tls = VtnTls(str(pki.vtn.cert), str(pki.vtn.key), str(pki.ca)) if pki else None
    async with ScriptedVtn(
        vtn_id=vtn_id, poll_interval_s=POLL_S, tls=tls, pre_allocated=pre_allocated
    ) as vtn:
        yield vtn


def ven_config(
    vtn: ScriptedVtn,
    pki: Oadr2Pki | None = None,
    *,
    ven_id: str | None = None,
    vtn_fingerprint: str | None = None,
    report_interval_s: float = 1.0,
    availability: Availability | None = None,
) -> Oadr2Config:
    tls = None
    if pki is not None:
        fp = vtn_fingerprint or pki.vtn.fingerprint
        tls = Tls(pki.ven.cert, pki.ven.key, pki.ca, fp)
    return Oadr2Config(
        vtn_url=vtn.url,
        ven_name=VEN_NAME,
        ven_id=ven_id,
        poll_interval_s=POLL_S,
        report_interval_s=report_interval_s,
        tls=tls,
        availability=availability or Availability(),
    )


@dataclass
class Oadr2Rig:
    vtn: ScriptedVtn
    site: ModbusSite
    gateway: Oadr2Gateway
    store: SqliteStore
    inputs: list[Input] = field(default_factory=list)

    @property
    def ven_id(self) -> str:
        ven_id = self.vtn.ven_id(VEN_NAME)
        assert ven_id is not None, "the VEN has not registered"
        return ven_id

    def relay(self) -> RelayPosition:
        position: RelayPosition = self.site.home.physics.relay.position
        return position

    def opts(self, event_id: str) -> list[tuple[int, str, int]]:
        """(modificationNumber, opt, code) of every eventResponse the VTN got for the event."""
        return [
            (c.modification_number, c.opt_type, c.response_code)
            for c in self.vtn.responses(event_id)
        ]

    def poll(self) -> None:
        self.gateway.poll_now()

    def _charger_seen(self) -> bool:
        observed = self.site.runner.last_observed
        return observed is not None and observed.charger is not None and self.site.runner.cycles > 0

    async def registered(self) -> str:
        """The venID, once registered, synced, and the charger seen by the engine (an island
        event before that is rightly opted out: "the charger is not reporting")."""
        await self.until(self._charger_seen, "the charger's first telemetry")
        await self.until(lambda: self.vtn.ven_id(VEN_NAME) is not None, "registration")
        await self.until(lambda: self.gateway.ven.distributions >= 1, "the first event sync")
        return self.ven_id

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def oadr2_rig(
    db: Path,
    *,
    vtn: ScriptedVtn,
    config: Oadr2Config,
    site: SiteConfig | None = None,
) -> AsyncIterator[Oadr2Rig]:
    """The gateway (a fresh one per call: a second call on the same ``db`` is a restart)
    against ``vtn``."""
    with SqliteStore(db) as store:
        async with ModbusSite(
            store, site or fast_site(), start=DEFAULT_START, now=time.time, ack_reports=False
        ) as home:
            gateway = Oadr2Gateway(home.runner.port, store, config)
            rig = Oadr2Rig(vtn, home, gateway, store)
            record_inputs(rig.site.runner, rig.inputs)
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop, period_s=0.2))
            try:
                yield rig
            finally:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
                assert home.home.violations == [], home.home.violations


def run(coro_fn: Callable[[], object], timeout: float = 30.0) -> None:
    run_with_timeout(coro_fn, timeout)  # type: ignore[arg-type]
