"""What a client reports to the utility simulator, over mutual TLS: the metering mirror
(2030.5 §10.11.3), the CSIP-AUS ConnectionPoint, DER PUTs, and Notifications of FSA and
EndDevice changes with their delivery retried (the rig: ``utility_rig``)."""

from __future__ import annotations

import pytest
from utility_rig import SERVER_NOW, Rig, export_limit, listener, run, subscription

from gateway.north.sep2 import codec, metering
from gateway.north.sep2.der_resources import DERAvailability
from gateway.north.sep2.pki import PkiFiles, init_pki
from gateway.north.sep2.pubsub import ConnectionPoint, Notification
from gateway.north.sep2.resources import EndDevice, FunctionSetAssignmentsList

PEN = 32473


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other"))


def _site(lfdi: str, watts: float, at: int = SERVER_NOW) -> metering.MirrorUsagePoint:
    return metering.site_mirror_usage_point(lfdi, PEN, at=at, site_w=watts, volts=230.5)


def _update(mup: metering.MirrorUsagePoint, at: int) -> metering.MirrorMeterReadingList:
    """The later POSTs: the same MirrorMeterReadings, values only (no ReadingType)."""
    mmrs = tuple(
        metering.MirrorMeterReading(
            mRID=m.mRID, Reading=metering.Reading(value=7, timePeriod=None), lastUpdateTime=at
        )
        for m in mup.MirrorMeterReading
    )
    return metering.MirrorMeterReadingList(len(mmrs), len(mmrs), mmrs)


def test_mirror_created_201_again_204_readings_kept_decoded(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        lfdi = pki.device("gateway").lfdi
        r.state.add_end_device(lfdi)
        mup = _site(lfdi, 1234)
        first = await r.request("POST", "/mup", codec.encode(mup))
        assert (first.status, first.headers["Location"]) == (201, "/mup/1")
        again = await r.request("POST", "/mup", codec.encode(mup))  # same mRID: overwritten
        assert (again.status, again.headers["Location"]) == (204, "/mup/1")
        assert r.state.mirror_usage_points(lfdi) == [mup]
        update = _update(mup, SERVER_NOW + 60)
        got = await r.request("POST", "/mup/1", codec.encode(update))
        assert (got.status, got.headers["Location"]) == (204, "/upt/1/mr")
        one = update.MirrorMeterReading[1]
        got = await r.request("POST", "/mup/1", codec.encode(one))
        assert (got.status, got.headers["Location"]) == (204, "/upt/1/mr/2")
        # two MMRs in each MUP POST, two in the list, one alone: seven readings, in order
        readings = r.state.readings(lfdi)
        assert len(readings) == 7
        assert {x.mup for x in readings} == {mup.mRID}
        posted = [*update.MirrorMeterReading, one]
        assert [x.reading.mRID for x in readings[4:]] == [m.mRID for m in posted]
        assert [x.reading.Reading for x in readings[4:]] == [m.Reading for m in posted]
        # each comes with its ReadingType, from the mirror when the POST left it out
        assert readings[-1].reading.ReadingType == mup.MirrorMeterReading[1].ReadingType
        assert readings[-1].reading.ReadingType.uom == metering.Uom.V  # type: ignore[union-attr]
        assert (readings[-1].at, readings[-1].lfdi) == (SERVER_NOW, lfdi)
        assert readings[0].reading.Reading is not None
        assert readings[0].reading.Reading.value == 1234
        assert len(r.state.readings(mrid=one.mRID)) == 4
        kept = r.state.mup(1)
        assert kept is not None
        # a value-only update keeps the ReadingType the mirror was created with
        assert kept.meter_readings[one.mRID].ReadingType == mup.MirrorMeterReading[1].ReadingType
        assert r.recorder.requests("POST", "/mup/1")[0].body == codec.encode(update)  # raw kept
        # GET shows first-level elements only (rule c)
        shown = codec.decode((await r.request("GET", "/mup/1")).body)
        assert isinstance(shown, metering.MirrorUsagePoint)
        assert (shown.href, shown.mRID, shown.MirrorMeterReading) == ("/mup/1", mup.mRID, ())
        listed = codec.decode((await r.request("GET", "/mup?l=5")).body)
        assert isinstance(listed, metering.MirrorUsagePointList)
        assert (listed.all, listed.results) == (1, 1)

    run(pki, body)


def test_mirror_rules_lost_foreign_and_untyped(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        lfdi, other = pki.device("gateway").lfdi, pki.device("other")
        r.state.add_end_device(lfdi)
        mup = _site(lfdi, 10)
        assert (await r.request("POST", "/mup", codec.encode(mup))).status == 201
        update = codec.encode(_update(mup, SERVER_NOW + 1))
        # only the client that created the mirror may see it or POST to it (rule e)
        assert (await r.request("POST", "/mup/1", update, as_=other)).status == 403
        assert (await r.request("GET", "/mup/1", as_=other)).status == 403
        theirs = codec.decode((await r.request("GET", "/mup?l=5", as_=other)).body)
        assert isinstance(theirs, metering.MirrorUsagePointList)
        assert theirs.all == 0
        assert (await r.request("POST", "/mup", codec.encode(mup), as_=other)).status == 409
        # a MirrorMeterReading the mirror does not know needs its ReadingType (rule h 3)
        stray = metering.MirrorMeterReading(mRID="AB" * 16, Reading=metering.Reading(value=1))
        bad = await r.request("POST", "/mup/1", codec.encode(stray))
        assert bad.status == 400
        assert b"ReadingType" in bad.body
        assert (await r.request("POST", "/mup/1", codec.encode(mup))).status == 400  # not readings
        assert (await r.request("POST", "/mup", update)).status == 400  # not a MUP
        # a lost mirror answers 404 until the client POSTs it to /mup again: a new one, 201
        r.state.lose_mup()
        assert (await r.request("POST", "/mup/1", update)).status == 404
        assert (await r.request("GET", "/mup/1")).status == 404
        again = await r.request("POST", "/mup", codec.encode(mup))
        assert (again.status, again.headers["Location"]) == (201, "/mup/1")
        assert (await r.request("POST", "/mup/1", update)).status == 204

    run(pki, body)


def test_connection_point_404_then_201_then_204(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        shown = codec.decode((await r.request("GET", "/edev/1")).body)
        assert isinstance(shown, EndDevice)
        assert shown.ConnectionPointLink is not None
        href = shown.ConnectionPointLink.href
        assert href == "/edev/1/cp"
        assert (await r.request("GET", href)).status == 404
        put = await r.request("PUT", href, codec.encode(ConnectionPoint("4102345678")))
        assert (put.status, put.headers["Location"]) == (201, href)
        got = codec.decode((await r.request("GET", href)).body)
        assert got == ConnectionPoint("4102345678", href=href)
        fixed = await r.request("PUT", href, codec.encode(ConnectionPoint("4102345679")))
        assert fixed.status == 204
        assert r.state.connection_point(edev.lfdi) == ConnectionPoint("4102345679")
        assert (await r.request("PUT", href, codec.encode(shown))).status == 400
        assert (await r.request("POST", href, codec.encode(ConnectionPoint("1")))).status == 405
        assert (await r.request("GET", href, as_=pki.device("other"))).status == 403
        r.state.set_connection_point(edev.lfdi, None)
        assert (await r.request("GET", href)).status == 404

    run(pki, body)


def test_der_parts_queried_by_lfdi(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        lfdi = pki.device("gateway").lfdi
        r.state.add_end_device(lfdi)
        assert r.state.der_availability(lfdi) is None
        avail = DERAvailability(readingTime=SERVER_NOW, availabilityDuration=600)
        assert (await r.request("PUT", "/edev/1/der/1/dera", codec.encode(avail))).status == 204
        assert r.state.der_availability(lfdi.lower()) == avail
        assert r.state.der_status(lfdi) is None
        assert r.state.der_settings(lfdi) is None
        assert r.state.der_capability(lfdi) is None
        with pytest.raises(KeyError):
            r.state.der_status(lfdi, der=2)
        with pytest.raises(KeyError):
            r.state.der_status(pki.device("other").lfdi)

    run(pki, body)


def test_fsa_and_end_device_changes_are_notified(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        gw = pki.device("gateway")
        async with listener(gw, pki.serca) as note:
            edev = r.state.add_end_device(gw.lfdi)
            for href in ("/edev/1/fsa", "/edev/1"):
                made = await r.request("POST", "/edev/1/sub", subscription(href, note.url))
                assert made.status == 201
            p = r.state.add_program("later", end_devices=[gw.lfdi])  # in FSA 1: both hear it
            await r.server.drain()
            r.state.add_fsa(gw.lfdi, [p], "second")
            await r.server.drain()
            r.state.set_post_rate(60, gw.lfdi)  # the EndDevice only
            await r.server.drain()
        notes = [codec.decode(body) for _, body in note.received]
        assert all(isinstance(n, Notification) for n in notes)
        seen = [(n.subscribedResource, type(n.Resource).__name__) for n in notes]  # type: ignore[union-attr]
        assert sorted(seen[:2]) == [
            ("/edev/1", "EndDevice"),
            ("/edev/1/fsa", "FunctionSetAssignmentsList"),
        ]
        assert sorted(seen[2:4]) == sorted(seen[:2])
        assert seen[4:] == [("/edev/1", "EndDevice")]
        fsas = [n.Resource for n in notes if isinstance(n.Resource, FunctionSetAssignmentsList)]  # type: ignore[union-attr]
        assert [f.all for f in fsas] == [1, 2]
        last = notes[-1].Resource  # type: ignore[union-attr]
        assert isinstance(last, EndDevice)
        assert (last.postRate, last.href) == (60, f"/edev/{edev.number}")

    run(pki, body)


def test_failed_delivery_retried_with_backoff_each_attempt_recorded(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        gw = pki.device("gateway")
        async with listener(gw, pki.serca) as note:
            r.state.add_end_device(gw.lfdi)
            p = r.state.add_program("p")
            await r.request("POST", "/edev/1/sub", subscription(f"/derp/{p.key}/derc", note.url))
            note.fail = [503, 429]
            r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
            await r.server.drain()
            attempts = r.recorder.notifications(note.url)
            assert [(x.attempt, x.status) for x in attempts] == [(1, 503), (2, 429), (3, 201)]
            assert attempts[0].error == "answered 503"
            assert len(note.received) == 1
            assert attempts[0].to_json()["attempt"] == 1
            # a 4xx other than 429 is final: the subscriber said no
            r.recorder.clear()
            note.fail = [404]
            r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(1))
            await r.server.drain()
            assert [x.status for x in r.recorder.notifications()] == [404]
            unreachable = note.url
        # the listener is gone: 1 + 2 retries, every one unanswered, then given up
        r.recorder.clear()
        r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(2))
        await r.server.drain()
        tries = r.recorder.notifications(unreachable)
        assert [(x.attempt, x.status) for x in tries] == [(1, 0), (2, 0), (3, 0)]
        assert all(x.error for x in tries)
        assert r.recorder.notes(delivered=True) == []

    run(pki, body, notify_retries=2, notify_backoff=0.01)
