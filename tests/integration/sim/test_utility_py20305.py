"""py20305 (an open IEEE 2030.5 / CSIP client, Apache-2.0, pinned in the ``test`` extra) as a
real third-party client of the utility simulator over mutual TLS: in-band registration,
discovery, subscriptions and a Notification, controls and its DERControlResponses, telemetry.

Every body py20305 sends and every body the simulator serves it is checked against sep.xsd as
CSIP-AUS 1.2 redefines it; where py20305 and the standard disagree the test says which is
which (and docs/sep2.md, "Third-party clients", lists them). Skipped, with the reason, where
py20305 cannot be imported.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sep_xsd import schemas
from utility_rig import Rig, export_limit, rig

from gateway.north.sep2.pki import DeviceFiles, PkiFiles, init_pki
from gateway.sim.utility import UtilityState

csip = pytest.importorskip(
    "py20305.client.csip_client", reason="py20305 (the test extra's peer client) is not installed"
)
from py20305.client.tls import TlsConfig  # noqa: E402
from py20305.connectors.print_demo import PrintDemoConnector  # noqa: E402
from py20305.subscription.manager import SubscriptionManager  # noqa: E402
from py20305.subscription.notification_server import NotificationServer  # noqa: E402
from py20305.telemetry.coordinator import TelemetryCoordinator  # noqa: E402

LOGGER = "py20305"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway",))


@pytest.fixture(scope="module")
def xsd() -> Any:
    return schemas()


def tls_config(leaf: DeviceFiles, serca: Path) -> TlsConfig:
    """py20305 loads one PEM for its certificate: the chain file (leaf first, then the CAs
    below the SERCA) is that. The simulator's certificate names no host: no hostname check."""
    chain = leaf.chain if leaf.chain is not None else leaf.cert
    return TlsConfig(client_cert=chain, client_key=leaf.key, ca_cert=serca, check_hostname=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Peer:
    rig: Rig
    client: Any  # py20305 CsipClient
    lfdi: str


@asynccontextmanager
async def peer(
    pki: PkiFiles, state: UtilityState, *, subscribe: bool, pins: dict[str, int] | None = None
) -> AsyncIterator[Peer]:
    """The simulator and a py20305 client on it (connected: discovery done, subscribed when
    ``subscribe``); the client's poll loop runs until the block ends."""
    leaf = pki.device("gateway")
    tls = tls_config(leaf, pki.serca)
    async with rig(pki, state) as r:
        client = csip.CsipClient(
            r.server.url("/").rstrip("/"),
            tls=tls,
            server_2018_compat=True,  # CSIP-AUS 1.2 is 2030.5-2018
            registration_pins=pins,
        )
        # py20305 writes the CSIP-AUS elements (doeModesSupported, ...) only in CSIP-AUS mode,
        # which it guesses from "csipaus" in the DeviceCapability body; this one has none.
        client.http.csip_aus_mode = True
        if subscribe:
            port = free_port()
            listener = NotificationServer(host="127.0.0.1", port=port, tls=tls)
            manager = SubscriptionManager(
                client.http, f"https://127.0.0.1:{port}/notify", server_2018_compat=True
            )
            client.attach_subscriptions(manager, listener)
        await client.connect()
        running = asyncio.create_task(client.run())
        try:
            yield Peer(r, client, leaf.lfdi)
        finally:
            await client.shutdown()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


def run(body: Callable[[], Awaitable[None]], timeout: float = 60) -> None:
    async def main() -> None:
        await asyncio.wait_for(body(), timeout)

    asyncio.run(main())


async def until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"py20305 did not get there in {timeout} s: {what}")
        await asyncio.sleep(0.05)


async def check_bodies(r: Rig, xsd: Any, *, except_roots: frozenset[str] = frozenset()) -> None:
    """Every XML body py20305 sent (but those named: a disagreement said elsewhere), every
    Notification the simulator sent it, and what the simulator serves at every href py20305
    GETted, against the XSD; none of the simulator's with an XML declaration."""
    gets: set[str] = set()
    for x in r.recorder.exchanges:
        if x.method == "GET":
            gets.add(x.path + (f"?{x.query}" if x.query else ""))
        elif x.body:
            root = etree.QName(etree.fromstring(x.body)).localname
            if root not in except_roots:
                xsd.assert_valid(x.body)
            if x.method == "NOTIFY":
                assert not x.body.startswith(b"<?xml"), x.body[:60]
    assert gets, "py20305 read nothing"
    for href in sorted(gets):
        got = await r.request("GET", href)
        if got.status == 200:
            xsd.assert_valid(got.body)
            assert not got.body.startswith(b"<?xml"), href


def statuses(r: Rig, mrid: str) -> list[int | None]:
    return [status for status, _ in r.recorder.responses_for(mrid)]


def test_py20305_registers_discovers_takes_controls_and_responds(
    pki: PkiFiles, xsd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def body() -> None:
        state = UtilityState()  # the OS clock: py20305 schedules on the server's Time
        state.allow_registration = True
        lfdi = pki.device("gateway").lfdi
        # registration: py20305 finds no EndDevice of its own and POSTs one (201 + Location)
        async with peer(pki, state, subscribe=False) as p:
            assert p.client.state.end_devices == {}
            location = await p.client.register_end_device(lfdi=lfdi)
            edev = state.find_end_device(lfdi)
            assert edev is not None
            assert location == f"/edev/{edev.number}"
        assert edev.pin is not None
        program = state.add_program("feeder 7", primacy=1, default=export_limit(5000))
        now = int(state.now())
        first = state.add_control(program, start=now, duration=300, base=export_limit(1000))
        pins = {lfdi.lower(): edev.pin}
        async with peer(pki, state, subscribe=True, pins=pins) as p:
            r = p.rig
            assert list(p.client.state.end_devices) == [f"/edev/{edev.number}"]
            assert "Registration PIN verified" in caplog.text
            # it subscribed where the simulator says subscribable, and all were taken
            subs = {s.resource.subscribedResource for s in state.subscriptions(lfdi)}
            assert {f"/derp/{program.key}/derc", f"/derp/{program.key}/dderc"} <= subs
            assert f"/edev/{edev.number}/fsa" in subs
            refused = r.recorder.requests("POST", f"/edev/{edev.number}/sub", status=400)
            assert refused == []
            # an active control: DERControlResponses "received" (1) then "started" (2)
            await until(lambda: statuses(r, first) == [1, 2], "the first: 1 then 2")
            posted = r.recorder.requests("POST", "/rsps/")
            assert {x.status for x in posted} == {201}
            assert all(b"<DERControlResponse" in x.body for x in posted)
            # a new control reaches it by Notification, not by a poll (the poll rate is 900 s);
            # created a second later, so its creationTime is the newer (it supersedes)
            created = state.control(first).creation_time
            await until(lambda: int(state.now()) > created, "a second later", timeout=2)
            second = state.add_control(
                program, start=int(state.now()) + 1, duration=60, base=export_limit(2000)
            )
            await until(lambda: bool(r.recorder.responses_for(second)), "a Response to the 2nd")
            delivered = [x for x in r.recorder.notifications() if x.status == 201]
            assert delivered, "no Notification delivered to py20305's listener"
            await until(lambda: 2 in statuses(r, second), "the second started (2)")
            # the first was superseded by the second (same program, same mode)
            await until(lambda: 7 in statuses(r, first), "the first superseded (7)")
            await check_bodies(r, xsd)

    run(body)


class Connector(PrintDemoConnector):  # type: ignore[misc]
    """py20305's demo device. ``signed``: its absorbed-var ratings written negative, as
    2030.5 signs rtgMaxVarNeg / setMaxVarNeg (py20305 passes them on as the device says)."""

    signed = False

    async def fetch_nameplate(self) -> dict[str, Any]:
        plate: dict[str, Any] = await super().fetch_nameplate()
        if self.signed:
            plate["VarMaxAbsRtg"] = -abs(plate["VarMaxAbsRtg"])
        return plate

    async def fetch_configuration(self) -> dict[str, Any]:
        config: dict[str, Any] = await super().fetch_configuration()
        if self.signed:
            config["VarMaxAbs"] = -abs(config["VarMaxAbs"])
        return config


def test_py20305_telemetry_mirror_readings_and_der_resources(pki: PkiFiles, xsd: Any) -> None:
    async def body() -> None:
        state = UtilityState()
        lfdi = pki.device("gateway").lfdi
        edev = state.add_end_device(lfdi, pin=111115)
        state.set_post_rate(1, lfdi)
        async with peer(pki, state, subscribe=False) as p:
            r = p.rig
            device = Connector()
            telemetry = TelemetryCoordinator(
                p.client,
                lfdis=[lfdi],
                connector_resolver=lambda _lfdi: device,
                post_rate_seconds=1,
                der_capability_poll_rate_seconds=1,
                der_settings_poll_rate_seconds=1,
            )
            telemetry.setup()
            telemetry.start_device_telemetry(lfdi)
            der = f"/edev/{edev.number}/der/1"
            # metering mirror: the MirrorUsagePoint (201), then MirrorMeterReadingLists (204)
            await until(lambda: len(r.recorder.requests("POST", "/mup/1", status=204)) >= 2, "2")
            assert [x.status for x in r.recorder.requests("POST", "/mup")][:1] == [201]
            watts = [x.reading.Reading.value for x in state.readings(lfdi) if x.reading.Reading]
            assert 10000 in watts  # the demo device's W, as py20305 mirrors it
            # DERStatus and DERAvailability PUT (204) and served back with their href
            for part in ("ders", "dera"):
                await until(
                    lambda part=part: bool(r.recorder.requests("PUT", f"{der}/{part}", status=204)),
                    part,
                )  # type: ignore[misc]
                got = await r.request("GET", f"{der}/{part}")
                assert etree.fromstring(got.body).get("href") == f"{der}/{part}"
            # py20305 writes the absorbed-var ratings as the device gives them (positive):
            # 2030.5 says they are negative, so the simulator refuses them with the reason
            for part in ("dercap", "derg"):
                await until(
                    lambda part=part: bool(r.recorder.requests("PUT", f"{der}/{part}", status=400)),
                    part,
                )  # type: ignore[misc]
                refused = r.recorder.requests("PUT", f"{der}/{part}", status=400)[0]
                assert "written negative" in (refused.error or ""), refused.error
            device.signed = True
            for part in ("dercap", "derg"):
                await until(
                    lambda part=part: bool(r.recorder.requests("PUT", f"{der}/{part}", status=204)),
                    part,
                )  # type: ignore[misc]
                got = await r.request("GET", f"{der}/{part}")
                assert etree.fromstring(got.body).get("href") == f"{der}/{part}"
            await check_bodies(r, xsd)

    run(body)
