"""The utility simulator over real mutual-TLS sockets, driven by the gateway's own walk.

A PKI is minted into a temporary directory; the client side is aiohttp with
``tls.client_context`` (the gateway's own device certificate), so every request is identified
by its certificate's LFDI exactly as the server will see a real gateway. Each test runs its
own event loop with ``asyncio.run`` (the repository's style).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web

from gateway.north.sep2 import codec, identity, tls, walk
from gateway.north.sep2.der_resources import ConnectStatus, ConnectStatusType, DERStatus
from gateway.north.sep2.model import ActivePower, DERControlBase, Response
from gateway.north.sep2.pki import DeviceFiles, PkiFiles, init_pki
from gateway.north.sep2.resources import EndDevice
from gateway.sim.utility import Recorder, UtilityServer, UtilityState

SERVER_NOW = 4_000_000_000  # 2096: far from the OS clock, so nothing reads time.time()
PIN = 111115


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other", "agg"))


@dataclass
class Rig:
    state: UtilityState
    server: UtilityServer
    recorder: Recorder
    pki: PkiFiles
    session: aiohttp.ClientSession
    _extra: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.server.url("/")

    async def request(
        self, method: str, href: str, body: bytes | None = None, *, as_: DeviceFiles | None = None
    ) -> walk.Reply:
        session = self.session if as_ is None else self._sessions(as_)
        async with session.request(
            method,
            urljoin(self.base, href),
            data=body,
            headers={"Content-Type": "application/sep+xml"} if body is not None else None,
        ) as r:
            return walk.Reply(r.status, await r.read(), dict(r.headers))

    def _sessions(self, leaf: DeviceFiles) -> aiohttp.ClientSession:
        ctx = tls.client_context(leaf.cert, leaf.key, leaf.chain, self.pki.serca)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        self._extra.append(session)
        return session

    async def discover(self, **kwargs: object) -> walk.Discovery:
        lfdi = self.pki.device("gateway").lfdi
        w = walk.discover("/dcap", lfdi=lfdi, pin=PIN, page_size=2, **kwargs)  # type: ignore[arg-type]
        request = next(w)
        while True:
            reply = await self.request(request.method, request.href, request.body)
            try:
                request = w.send(reply)
            except StopIteration as done:
                return done.value


@asynccontextmanager
async def rig(pki: PkiFiles, state: UtilityState | None = None) -> AsyncIterator[Rig]:
    state = state or UtilityState(clock=lambda: float(SERVER_NOW))
    recorder = Recorder()
    s = pki.server
    server = UtilityServer(
        state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=recorder
    )
    gw = pki.device("gateway")
    ctx = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca)
    async with server, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        r = Rig(state, server, recorder, pki, session)
        try:
            yield r
        finally:
            for extra in r._extra:
                await extra.close()


def run(
    pki: PkiFiles, body: Callable[[Rig], Awaitable[None]], state: UtilityState | None = None
) -> None:
    async def main() -> None:
        async with rig(pki, state) as r:
            await asyncio.wait_for(body(r), 20)

    asyncio.run(main())


def export_limit(watts: int) -> DERControlBase:
    return DERControlBase(opModExpLimW=ActivePower.from_watts(watts))


def test_discovery_end_to_end_with_paging(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        st = r.state
        st.set_poll_rate("derp", 60)
        for name in ("other", "agg"):  # more EndDevices than one page of 2
            st.add_end_device(pki.device(name).lfdi)
        st.add_end_device(pki.device("gateway").lfdi, pin=PIN)
        feeder = st.add_program("feeder 7", primacy=1, default=export_limit(5000))
        backup = st.add_program("backup", primacy=10)
        mrids = [
            st.add_control(feeder, start=SERVER_NOW + 60 * i, duration=300, base=export_limit(i))
            for i in range(5)
        ]
        d = await r.discover()
        assert d.end_device.lFDI == pki.device("gateway").lfdi
        assert d.registration is not None
        assert d.registration.pIN == PIN
        assert d.time is not None
        assert d.time.currentTime == SERVER_NOW
        assert [v.program.mRID for v in d.programs] == [feeder.mrid, backup.mrid]
        view = d.programs[0]
        assert view.default is not None
        assert view.default.DERControlBase == export_limit(5000)
        assert [c.mRID for c in view.controls] == mrids
        assert view.controls[0].EventStatus.currentStatus == 1  # start == now: active
        assert view.controls[1].EventStatus.currentStatus == 0
        assert view.controls[0].replyTo == f"/rsps/{feeder.number}/rsp"
        assert d.programs[1].default is None  # dderc 404 = none
        assert d.poll_rates[f"/edev/{3}/fsa/1/derp"] == 60
        # the control list was read in pages of 2: s=0, 2, 4
        queries = [x.query for x in r.recorder.requests("GET", f"/derp/{feeder.key}/derc")]
        assert queries == ["s=0&l=2", "s=2&l=2", "s=4&l=2"]
        assert all(x.lfdi == pki.device("gateway").lfdi for x in r.recorder.exchanges)

    run(pki, body)


def test_paging_defaults_and_bad_queries(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        p = r.state.add_program("p")
        for i in range(3):
            r.state.add_control(p, start=SERVER_NOW + i, duration=10, base=export_limit(i))
        one = codec.decode((await r.request("GET", f"/derp/{p.key}/derc")).body)
        assert (one.all, one.results) == (3, 1)  # type: ignore[union-attr]
        tail = codec.decode((await r.request("GET", f"/derp/{p.key}/derc?s=2&l=10")).body)
        assert (tail.all, tail.results) == (3, 1)  # type: ignore[union-attr]
        assert (await r.request("GET", f"/derp/{p.key}/derc?s=x")).status == 400
        assert (await r.request("GET", "/nowhere")).status == 404
        wrong = await r.request("DELETE", "/dcap")
        assert wrong.status == 405
        assert "GET" in wrong.headers["Allow"]

    run(pki, body)


def test_in_band_registration_201_then_409(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        r.state.add_program("everyone", default=export_limit(1000))
        gw = identity.Identity.from_lfdi(pki.device("gateway").lfdi)
        d = await r.discover(register=EndDevice(sFDI=gw.sfdi, changedTime=0, lFDI=gw.lfdi))
        assert d.end_device.lFDI == gw.lfdi
        assert d.registration is not None
        assert len(d.programs) == 1
        post = r.recorder.requests("POST", "/edev")
        assert [x.status for x in post] == [201]
        assert post[0].location == "/edev/1"
        again = await r.request("POST", "/edev", codec.encode(EndDevice(gw.sfdi, 0, lFDI=gw.lfdi)))
        assert again.status == 409
        # a device certificate registers only its own LFDI
        other = identity.Identity.from_lfdi(pki.device("other").lfdi)
        foreign = codec.encode(EndDevice(other.sfdi, 0, lFDI=other.lfdi))
        assert (await r.request("POST", "/edev", foreign)).status == 403
        assert (await r.request("POST", "/edev", b"<nonsense/>")).status == 400

    run(pki, body)


def test_another_devices_end_device_is_403_aggregator_sees_many(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        st = r.state
        mine = st.add_end_device(pki.device("gateway").lfdi)
        agg = pki.device("agg").lfdi
        theirs = st.add_end_device(pki.device("other").lfdi, aggregator=agg)
        assert (await r.request("GET", f"/edev/{mine.number}")).status == 200
        assert (await r.request("GET", f"/edev/{theirs.number}")).status == 403
        assert (await r.request("GET", f"/edev/{theirs.number}/der")).status == 403
        listed = codec.decode((await r.request("GET", "/edev?l=10")).body)
        assert [e.lFDI for e in listed.EndDevice] == [mine.lfdi]  # type: ignore[union-attr]
        as_agg = await r.request("GET", f"/edev/{theirs.number}", as_=pki.device("agg"))
        assert as_agg.status == 200
        assert r.recorder.requests(lfdi=agg)[0].status == 200

    run(pki, body)


def test_429_with_retry_after_then_recovers(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        r.state.add_program("p")
        r.state.fail(429, retry_after=30, count=1, paths=["/derp/*/derc"])
        with pytest.raises(walk.RetryableWalkError) as caught:
            await r.discover()
        assert caught.value.status == 429
        assert caught.value.retry_after_s == 30
        assert len((await r.discover()).programs) == 1  # the fault was used up
        r.state.fail(500)  # until cleared (ALL-23)
        assert (await r.request("GET", "/dcap")).status == 500
        assert (await r.request("GET", "/tm")).status == 500
        r.state.clear_faults()
        assert (await r.request("GET", "/dcap")).status == 200

    run(pki, body)


def test_relocated_program_old_hrefs_404_rediscovery_finds_it(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        p = r.state.add_program("p", default=export_limit(100))
        mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
        before = await r.discover()
        old = before.programs[0].program
        r.state.relocate_program(p)
        assert old.DERControlListLink is not None
        assert old.href is not None
        for href in (old.href, old.DERControlListLink.href, f"{old.href}/dderc"):
            assert (await r.request("GET", href)).status == 404
        with pytest.raises(walk.WalkError):
            await _drive(r, walk.poll_program(old))
        after = await r.discover()
        assert after.programs[0].program.href != old.href
        assert [c.mRID for c in after.programs[0].controls] == [mrid]

    run(pki, body)


async def _drive(r: Rig, w: walk.Walk | object) -> object:
    gen = w  # a sans-I/O generator
    request = next(gen)  # type: ignore[call-overload]
    while True:
        reply = await r.request(request.method, request.href, request.body)
        try:
            request = gen.send(reply)  # type: ignore[attr-defined]
        except StopIteration as done:
            return done.value


def test_response_post_recorded(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        p = r.state.add_program("p")
        mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
        reply_to = r.state.control(mrid).reply_to
        assert reply_to is not None
        for status in (1, 2):
            resp = Response(edev.lfdi, mrid, status, SERVER_NOW + status)
            got = await r.request("POST", reply_to, codec.encode(resp))
            assert got.status == 201
            assert got.headers["Location"].startswith(reply_to + "/")
        assert r.recorder.responses_for(mrid) == [(1, SERVER_NOW + 1), (2, SERVER_NOW + 2)]
        assert (await r.request("POST", reply_to, b"<Response/>")).status == 400
        assert (await r.request("POST", "/rsps/99/rsp", codec.encode(resp))).status == 404

    run(pki, body)


def test_der_status_put_recorded_and_bad_body_400(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        href = f"/edev/{edev.number}/der/1/ders"
        assert (await r.request("GET", href)).status == 404  # nothing reported yet
        status = DERStatus(
            readingTime=SERVER_NOW,
            genConnectStatus=ConnectStatusType(SERVER_NOW, ConnectStatus.CONNECTED),
        )
        assert (await r.request("PUT", href, codec.encode(status))).status == 204
        assert edev.ders[0].status == status
        assert codec.decode((await r.request("GET", href)).body) == status
        put = r.recorder.requests("PUT", href)
        assert put[0].body == codec.encode(status)
        assert put[0].at == SERVER_NOW
        bad = await r.request("PUT", href, codec.encode(Response(edev.lfdi, "AB")))
        assert bad.status == 400
        assert b"expected a DERStatus" in bad.body
        assert (await r.request("PUT", href, b"<DERStatus")).status == 400

    run(pki, body)


def test_mirror_usage_point_lost_then_404(pki: PkiFiles) -> None:
    mup = (
        b'<MirrorUsagePoint xmlns="urn:ieee:std:2030.5:ns"><mRID>0123456789ABCDEF0123456700007ED9'
        b"</mRID><roleFlags>03</roleFlags><serviceCategoryKind>0</serviceCategoryKind>"
        b"<status>1</status><deviceLFDI>" + b"A" * 40 + b"</deviceLFDI></MirrorUsagePoint>"
    )

    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        first = await r.request("POST", "/mup", mup)
        assert first.status == 201
        assert first.headers["Location"] == "/mup/1"
        assert (await r.request("POST", "/mup", mup)).headers["Location"] == "/mup/1"
        assert (await r.request("POST", "/mup/1", b"<MirrorMeterReading/>")).status == 204
        assert b'all="1"' in (await r.request("GET", "/mup?l=5")).body
        r.state.lose_mup(1)
        assert (await r.request("POST", "/mup/1", b"<MirrorMeterReading/>")).status == 404

    run(pki, body)


def test_cut_refuses_then_restore_serves(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        assert (await r.request("GET", "/dcap")).status == 200
        r.state.cut()
        await r.server.drain()
        with pytest.raises(aiohttp.ClientError):
            await r.request("GET", "/dcap")
        r.state.restore()
        await r.server.drain()
        assert (await r.request("GET", "/dcap")).status == 200

    run(pki, body)


def test_notification_delivered_over_mtls(pki: PkiFiles) -> None:
    received: list[tuple[str, bytes]] = []

    async def body(r: Rig) -> None:
        gw = pki.device("gateway")
        app = web.Application()

        async def listener(request: web.Request) -> web.Response:
            obj = request.transport.get_extra_info("ssl_object")  # type: ignore[union-attr]
            received.append((tls.peer_lfdi(obj), await request.read()))
            return web.Response(status=201)

        app.router.add_post("/note", listener)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(
            runner,
            "127.0.0.1",
            0,
            ssl_context=tls.server_context(gw.cert, gw.key, gw.chain, pki.serca),
        )
        await site.start()
        port = runner.addresses[0][1]
        try:
            edev = r.state.add_end_device(gw.lfdi)
            p = r.state.add_program("p")
            sub = (
                '<Subscription xmlns="urn:ieee:std:2030.5:ns">'
                f"<subscribedResource>/derp/{p.key}/derc</subscribedResource>"
                "<encoding>0</encoding><level>+S1</level><limit>5</limit>"
                f"<notificationURI>https://127.0.0.1:{port}/note</notificationURI>"
                "</Subscription>"
            ).encode()
            made = await r.request("POST", f"/edev/{edev.number}/sub", sub)
            assert made.status == 201
            assert made.headers["Location"] == f"/edev/{edev.number}/sub/1"
            mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
            await r.server.drain()
            r.state.cancel(mrid)
            await r.server.drain()
        finally:
            await runner.cleanup()
        assert [lfdi for lfdi, _ in received] == [r.server.lfdi, r.server.lfdi]
        assert mrid.encode() in received[0][1]
        assert b"DERControlList" in received[0][1]
        assert b"<currentStatus>2</currentStatus>" in received[1][1]
        notes = r.recorder.notifications()
        assert [n.status for n in notes] == [201, 201]

    run(pki, body)
