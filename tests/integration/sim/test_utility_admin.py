"""The utility simulator's runtime admin interface (``gateway.sim.utility.admin``) over a real
loopback socket, beside the 2030.5 server over mutual TLS: what an admin request changes is what
the next 2030.5 GET serves. And the server fixes cactus-client's procedures found (S-ALL-05,
-10, -49, -53, -57), each checked on the wire without cactus-client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from utility_rig import SERVER_NOW, Rig, export_limit, run

from gateway.north.sep2 import codec
from gateway.north.sep2.model import Response
from gateway.north.sep2.pki import PkiFiles, init_pki
from gateway.sim.utility.admin import AdminServer

NS = "urn:ieee:std:2030.5:ns"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other"))


async def _admin(
    admin: AdminServer, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, admin.url("/admin" + path), json=body) as reply,
    ):
        return reply.status, await reply.json()


def test_admin_builds_what_the_2030_5_server_serves(pki: PkiFiles) -> None:
    lfdi = pki.device("gateway").lfdi

    async def body(r: Rig) -> None:
        async with AdminServer(r.state) as admin:
            status, edev = await _admin(admin, "POST", "/end-devices", {"lfdi": lfdi})
            assert (status, edev["href"]) == (201, "/edev/1")
            assert (await _admin(admin, "POST", "/end-devices", {"lfdi": lfdi}))[0] == 409
            assert (await r.request("GET", "/edev/1")).status == 200
            status, fsa = await _admin(admin, "POST", f"/end-devices/{lfdi}/fsas", {})
            assert (status, fsa["href"]) == (201, "/edev/1/fsa/2")
            status, derp = await _admin(
                admin, "POST", "/programs", {"lfdi": lfdi, "fsa": 2, "primacy": 3}
            )
            assert status == 201
            listed = (await r.request("GET", "/edev/1/fsa/2/derp")).body
            assert derp["mrid"].encode() in listed
            assert b"<primacy>3</primacy>" in listed
            key = derp["key"]
            # No default yet: not linked (S-ALL-49); set one, and the link and body appear.
            assert b"DefaultDERControlLink" not in (await r.request("GET", f"/derp/{key}")).body
            status, _ = await _admin(admin, "PUT", f"/programs/{key}/default",
                                     {"opModExpLimW": 1500})  # fmt: skip
            assert status == 200
            assert b"DefaultDERControlLink" in (await r.request("GET", f"/derp/{key}")).body
            assert b"<value>1500</value>" in (await r.request("GET", f"/derp/{key}/dderc")).body
            # A control, cancelled: EventStatus 2 on the wire.
            status, c = await _admin(admin, "POST", f"/programs/{key}/controls",
                                     {"duration": 600, "opModExpLimW": 0})  # fmt: skip
            assert status == 201
            status, cancelled = await _admin(admin, "POST", "/controls/cancel-active", {})
            assert cancelled == {"cancelled": [c["mrid"]]}
            derc = (await r.request("GET", c["href"])).body
            assert b"<currentStatus>2</currentStatus>" in derc
            # Rates, then a reset back to an empty server.
            assert (await _admin(admin, "PUT", "/poll-rates", {"derp": 60}))[0] == 200
            assert b'pollRate="60"' in (await r.request("GET", "/edev/1/fsa/2/derp")).body
            # The MirrorUsagePointList's own pollRate (cactus S-ALL-43), not the post rate.
            assert (await _admin(admin, "PUT", "/poll-rates", {"mup": 120}))[0] == 200
            assert b'pollRate="120"' in (await r.request("GET", "/mup")).body
            assert (await _admin(admin, "POST", "/reset"))[0] == 200
            assert (await r.request("GET", "/edev/1")).status in (403, 404)
            assert (await _admin(admin, "GET", "/state"))[1]["end_devices"] == []

    run(pki, body)


def test_admin_bad_input_is_one_line_json(pki: PkiFiles) -> None:
    async def body(r: Rig) -> None:
        async with AdminServer(r.state) as admin:
            status, err = await _admin(admin, "POST", "/end-devices", {"lfdi": "xyz"})
            assert status == 400
            assert "LFDI" in err["error"]
            assert "\n" not in err["error"]
            status, err = await _admin(admin, "PUT", "/poll-rates", {"nope": 5})
            assert status == 400
            assert "pollRate" in err["error"]
            status, err = await _admin(admin, "POST", "/programs/99/controls", {"duration": 1})
            assert status == 404
            assert "/derp/99" in err["error"]
            assert (await _admin(admin, "GET", "/nothing"))[0] == 404

    run(pki, body)


def test_admin_listens_on_loopback_only() -> None:
    from gateway.sim.utility import UtilityState

    with pytest.raises(ValueError, match="loopback"):
        AdminServer(UtilityState(), host="0.0.0.0")


def test_response_with_reserved_status_or_foreign_lfdi_refused(pki: PkiFiles) -> None:
    """cactus S-ALL-57: status 15 is reserved in 2030.5-2018; an endDeviceLFDI the client
    does not speak for is no answer of its own."""

    async def body(r: Rig) -> None:
        edev = r.state.add_end_device(pki.device("gateway").lfdi)
        p = r.state.add_program("p")
        mrid = r.state.add_control(p, start=SERVER_NOW, duration=60, base=export_limit(0))
        to = r.state.control(mrid).reply_to
        assert to is not None
        ok = Response(edev.lfdi, mrid, 1, SERVER_NOW)
        assert (await r.request("POST", to, codec.encode(ok))).status == 201
        reserved = Response(edev.lfdi, mrid, 15, SERVER_NOW)
        assert (await r.request("POST", to, codec.encode(reserved))).status == 400
        foreign = Response(pki.device("other").lfdi, mrid, 1, SERVER_NOW)
        assert (await r.request("POST", to, codec.encode(foreign))).status == 400

    run(pki, body)


def test_mirror_meter_reading_of_another_client_refused(pki: PkiFiles) -> None:
    """cactus S-ALL-05: a MirrorMeterReading mRID another client's mirror holds is 409."""

    def mup(mrid: str, mmr: str, lfdi: str) -> bytes:
        return (
            f'<MirrorUsagePoint xmlns="{NS}"><mRID>{mrid}</mRID><roleFlags>49</roleFlags>'
            f"<serviceCategoryKind>0</serviceCategoryKind><status>1</status>"
            f"<deviceLFDI>{lfdi}</deviceLFDI><MirrorMeterReading><mRID>{mmr}</mRID>"
            f"<ReadingType><uom>38</uom></ReadingType></MirrorMeterReading></MirrorUsagePoint>"
        ).encode()

    async def body(r: Rig) -> None:
        me, other = pki.device("gateway"), pki.device("other")
        r.state.add_end_device(me.lfdi)
        r.state.add_end_device(other.lfdi)
        mmr = "ABCDEF0123456789ABCDEF0100028547"
        theirs = mup("11" * 15 + "01", mmr, other.lfdi)
        assert (await r.request("POST", "/mup", theirs, as_=other)).status == 201
        mine = mup("22" * 15 + "02", mmr, me.lfdi)
        assert (await r.request("POST", "/mup", mine)).status == 409
        fresh = mup("22" * 15 + "02", "33" * 16, me.lfdi)
        assert (await r.request("POST", "/mup", fresh)).status == 201

    run(pki, body)


def test_der_part_reads_back_as_put_and_cp_204_has_location(pki: PkiFiles) -> None:
    """cactus S-ALL-10 (HexBinary32 "03" reads back "03", with the href) and S-ALL-53."""

    async def body(r: Rig) -> None:
        r.state.add_end_device(pki.device("gateway").lfdi)
        cap = (
            f'<DERCapability xmlns="{NS}"><modesSupported>03</modesSupported>'
            "<rtgMaxW><multiplier>0</multiplier><value>5000</value></rtgMaxW>"
            "<type>4</type></DERCapability>"
        ).encode()
        assert (await r.request("PUT", "/edev/1/der/1/dercap", cap)).status == 204
        got = (await r.request("GET", "/edev/1/der/1/dercap")).body
        assert b"<modesSupported>03</modesSupported>" in got
        assert b'href="/edev/1/der/1/dercap"' in got
        cp = (
            '<ConnectionPoint xmlns="https://csipaus.org/ns">'
            "<connectionPointId>{}</connectionPointId></ConnectionPoint>"
        )
        for n, status in (("4102000000", 201), ("4102000000", 204)):
            put = await r.request("PUT", "/edev/1/cp", cp.format(n).encode())
            assert put.status == status, put.body
            assert put.headers.get("Location") == "/edev/1/cp"

    run(pki, body)


def test_admin_empty_defaults_serve_a_default_before_one_is_set(pki: PkiFiles) -> None:
    """cactus S-ALL-35: a client subscribes to the DefaultDERControl before the utility sets
    one; with empty_defaults each program has one (no modes) from the start."""
    lfdi = pki.device("gateway").lfdi

    async def body(r: Rig) -> None:
        async with AdminServer(r.state) as admin:
            assert (await _admin(admin, "PUT", "/admin-typo", {}))[0] == 404
            status, err = await _admin(admin, "PUT", "/settings", {"empty_defaults": "yes"})
            assert status == 400
            assert "empty_defaults" in err["error"]
            assert (await _admin(admin, "PUT", "/settings", {"empty_defaults": True}))[0] == 200
            await _admin(admin, "POST", "/end-devices", {"lfdi": lfdi})
            _, derp = await _admin(admin, "POST", "/programs", {"lfdi": lfdi, "primacy": 1})
            dderc = await r.request("GET", f"/derp/{derp['key']}/dderc")
            assert dderc.status == 200
            assert b"opModExpLimW" not in dderc.body
            await _admin(admin, "DELETE", f"/programs/{derp['key']}/default")
            assert (await r.request("GET", f"/derp/{derp['key']}/dderc")).status == 200

    run(pki, body)


def test_admin_hides_ended_controls_and_supersedes_overlapped(pki: PkiFiles) -> None:
    """cactus S-ALL-41: ended controls leave the list (a setting), and a new control marks
    the live ones of its program it overlaps superseded (EventStatus 4)."""

    async def body(r: Rig) -> None:
        async with AdminServer(r.state) as admin:
            await _admin(admin, "POST", "/end-devices", {"lfdi": pki.device("gateway").lfdi})
            _, derp = await _admin(admin, "POST", "/programs", {"primacy": 1})
            controls = f"/programs/{derp['key']}/controls"
            ended = {"start": SERVER_NOW - 100, "duration": 50, "opModExpLimW": 1}
            await _admin(admin, "POST", controls, ended)
            later = {"start_offset": 60, "duration": 600, "opModExpLimW": 2}
            _, first = await _admin(admin, "POST", controls, later)
            derc = f"/derp/{derp['key']}/derc"
            assert b'all="2"' in (await r.request("GET", derc)).body
            settings = {"hide_ended_controls": True}
            assert (await _admin(admin, "PUT", "/settings", settings))[0] == 200
            assert b'all="1"' in (await r.request("GET", derc)).body
            over = {"duration": 700, "opModExpLimW": 3, "supersede_overlapping": True}
            await _admin(admin, "POST", controls, over)
            old = (await r.request("GET", first["href"])).body
            assert b"<currentStatus>4</currentStatus>" in old

    run(pki, body)
