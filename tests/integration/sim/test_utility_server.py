"""The utility simulator over real mutual-TLS sockets, driven by the gateway's own walk:
discovery, paging, registration, access, faults, relocation, Responses, DER PUTs, cuts, and
Notifications (the rig: ``utility_rig``; the metering mirror, ConnectionPoint and notification
retries: ``test_utility_reports``)."""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest
from utility_rig import PIN, SERVER_NOW, Rig, export_limit, listener, run, subscription

from gateway.north.sep2 import codec, identity, walk
from gateway.north.sep2.der_resources import ConnectStatus, ConnectStatusType, DERStatus
from gateway.north.sep2.model import Response
from gateway.north.sep2.pki import PkiFiles, init_pki
from gateway.north.sep2.pubsub import Notification, Subscription, SubscriptionList
from gateway.north.sep2.resources import EndDevice


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other", "agg"))


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
        # served as PUT, with its href (the PUT carried none)
        assert codec.decode((await r.request("GET", href)).body) == replace(status, href=href)
        put = r.recorder.requests("PUT", href)
        assert put[0].body == codec.encode(status)
        assert put[0].at == SERVER_NOW
        bad = await r.request("PUT", href, codec.encode(Response(edev.lfdi, "AB")))
        assert bad.status == 400
        assert b"expected a DERStatus" in bad.body
        assert (await r.request("PUT", href, b"<DERStatus")).status == 400

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
    async def body(r: Rig) -> None:
        gw = pki.device("gateway")
        async with listener(gw, pki.serca) as note:
            edev = r.state.add_end_device(gw.lfdi)
            p = r.state.add_program("p")
            sub = subscription(f"/derp/{p.key}/derc", note.url)
            made = await r.request("POST", f"/edev/{edev.number}/sub", sub)
            assert made.status == 201
            assert made.headers["Location"] == f"/edev/{edev.number}/sub/1"
            mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
            await r.server.drain()
            r.state.cancel(mrid)
            await r.server.drain()
        assert [lfdi for lfdi, _ in note.received] == [r.server.lfdi, r.server.lfdi]
        first = codec.decode(note.received[0][1])
        assert isinstance(first, Notification)
        assert first.subscribedResource == f"/derp/{p.key}/derc"
        assert first.subscriptionURI == r.server.url(f"/edev/{edev.number}/sub/1")
        assert mrid.encode() in note.received[0][1]
        assert type(first.Resource).__name__ == "DERControlList"
        assert b"<currentStatus>2</currentStatus>" in note.received[1][1]
        assert [n.status for n in r.recorder.notifications()] == [201, 201]
        assert [n.Resource is not None for _, n in r.recorder.notes(delivered=True)] == [True] * 2

    run(pki, body)


def test_subscriptions_listed_decoded_and_deleted(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        other = r.state.add_end_device(pki.device("other").lfdi)
        p = r.state.add_program("p")
        uri = "https://127.0.0.1:1/note"
        for href in (f"/derp/{p.key}/derc", f"/edev/{edev.number}/fsa"):
            assert (await r.request("POST", "/edev/1/sub", subscription(href, uri))).status == 201
        subs = r.state.subscriptions(edev.lfdi)
        assert [s.resource.subscribedResource for s in subs] == [
            f"/derp/{p.key}/derc",
            f"/edev/{edev.number}/fsa",
        ]
        listed = codec.decode((await r.request("GET", "/edev/1/sub?l=10")).body)
        assert isinstance(listed, SubscriptionList)
        assert (listed.all, listed.results) == (2, 2)
        one = codec.decode((await r.request("GET", "/edev/1/sub/2")).body)
        assert isinstance(one, Subscription)
        assert (one.href, one.notificationURI, one.limit) == ("/edev/1/sub/2", uri, 5)
        # another EndDevice's resources are not to be watched; bad bodies are 400
        foreign = subscription(f"/edev/{other.number}/fsa", uri)
        assert (await r.request("POST", "/edev/1/sub", foreign)).status == 400
        ftp = subscription("/edev/1", "ftp://127.0.0.1/note")
        assert (await r.request("POST", "/edev/1/sub", ftp)).status == 400
        assert (await r.request("DELETE", "/edev/1/sub/1")).status == 204
        assert (await r.request("DELETE", "/edev/1/sub/1")).status == 404
        assert len(r.state.subscriptions(edev.lfdi)) == 1

    run(pki, body)
