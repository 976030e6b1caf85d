"""Registration procedures (CSIP-AUS ALL-01 ... ALL-05): discovery, registration, the PIN.

Each test runs the whole gateway against the simulated utility (``sep2_rig.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sep2_rig import PIN, GatewayRig, export_limit, gateway_rig, run, utility_server

from gateway.core.controls import Mode
from gateway.core.messages import NorthLinkLost
from gateway.north.sep2 import codec, tls
from gateway.north.sep2.client import Http, discover_dcap
from gateway.north.sep2.der_resources import DOEModes
from gateway.north.sep2.identity import pin_with_check, sfdi_from_lfdi
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.pubsub import ConnectionPoint
from gateway.north.sep2.resources import EndDevice
from gateway.north.sep2.wellknown import WellKnownError

NMI = "4123456789"  # a 10-character NMI, as CSIP-AUS puts in ConnectionPoint


def _get_paths(r: GatewayRig) -> list[str]:
    return [x.path for x in r.recorder.requests("GET")]


def _discovered(r: GatewayRig) -> bool:
    return r.gateway.client.session.discovery is not None


def _assert_walked_in_order(r: GatewayRig, *, registration: bool) -> None:
    """DeviceCapability, Time, EndDeviceList, (Registration), FSAs, programs, DER, in order."""
    gets = _get_paths(r)
    wanted = ["/dcap", "/tm", "/edev", "/edev/1/fsa", "/edev/1/fsa/1/derp"]
    wanted += ["/derp/1/dderc", "/derp/1/derc"]
    if registration:
        wanted.insert(3, "/edev/1/reg")
    firsts = [gets.index(p) for p in wanted]
    assert firsts == sorted(firsts), list(zip(wanted, firsts, strict=True))
    assert "/edev/1/der" in gets
    for x in r.recorder.requests("GET"):
        assert x.lfdi == r.lfdi
        assert x.status == 200 or x.path == "/edev/1/cp", x  # cp: 404 until PUT


def _default_export_limit(r: GatewayRig) -> float | None:
    in_force = r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now())
    return None if in_force.value is None else float(in_force.value)


def test_ALL_01_discovery_after_out_of_band_registration(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=export_limit(4200)) as r:
            await r.until(lambda: _discovered(r), "a complete walk")
            await r.until(lambda: _default_export_limit(r) == 4200, "the default in force")
            # The DER list is fetched with the telemetry, which may still be in flight when
            # the default is already in force: wait for it, then check the order of all.
            await r.until(lambda: "/edev/1/der" in _get_paths(r), "the DER list fetched")
            _assert_walked_in_order(r, registration=True)
            # Out of band: the EndDevice was found, never POSTed.
            assert r.recorder.requests("POST", path="/edev") == []
            found = r.gateway.client.session.discovery
            assert found is not None
            assert found.end_device.lFDI == r.lfdi
            assert found.end_device.sFDI == sfdi_from_lfdi(r.lfdi)
            assert found.registration is not None
            assert found.registration.pIN == PIN

    run(body)


def test_ALL_02_in_band_registration_then_der_capability_settings_status(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", register_in_band=True) as r:
            await r.until(lambda: r.state.find_end_device(r.lfdi) is not None, "registration")
            posts = r.recorder.requests("POST", path="/edev")
            assert [x.status for x in posts] == [201]
            posted = codec.decode(posts[0].body)
            assert isinstance(posted, EndDevice)
            assert posted.lFDI == r.lfdi
            assert posted.sFDI == sfdi_from_lfdi(r.lfdi)
            assert abs(posted.changedTime - r.server_now()) < 30  # server time, not the OS's
            edev = r.state.end_device(r.lfdi)
            assert edev.sfdi == sfdi_from_lfdi(r.lfdi)
            # The new EndDevice is read back (Location), then the walk carries on.
            gets = _get_paths(r)
            assert "/edev/1" in gets
            await r.until(
                lambda: (
                    None
                    not in (
                        r.state.der_capability(r.lfdi),
                        r.state.der_settings(r.lfdi),
                        r.state.der_status(r.lfdi),
                    )
                ),
                "DERCapability, DERSettings and DERStatus PUT",
            )
            await r.until(lambda: "/edev/1/der" in _get_paths(r), "the DER list fetched")
            _assert_walked_in_order(r, registration=True)
            cap = r.state.der_capability(r.lfdi)
            settings = r.state.der_settings(r.lfdi)
            status = r.state.der_status(r.lfdi)
            assert cap is not None
            assert settings is not None
            assert status is not None
            assert cap.rtgMaxW.watts > 0
            assert cap.modesSupported != 0
            assert cap.doeModesSupported is not None
            assert cap.doeModesSupported & DOEModes.EXP_LIM_W
            assert 0 < settings.setMaxW.watts <= cap.rtgMaxW.watts
            assert settings.doeModesEnabled is not None
            assert settings.doeModesEnabled & ~cap.doeModesSupported == 0
            assert abs(settings.updatedTime - r.server_now()) < 30
            assert abs(status.readingTime - r.server_now()) < 30
            assert status.genConnectStatus is not None
            assert status.operationalModeStatus is not None
            der_puts = [x for x in r.recorder.requests("PUT") if "/der/" in x.path]
            assert der_puts
            assert all(x.status == 204 for x in der_puts), der_puts

    run(body)


def test_ALL_03_connection_point_put_after_registration(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(
            sep2_pki, tmp_path / "gw.db", register_in_band=True, connection_point=NMI
        ) as r:
            await r.until(
                lambda: bool(r.recorder.requests("PUT", path="/edev/1/cp")),
                "the ConnectionPoint PUT",
            )
            cp = r.state.connection_point(r.lfdi)
            assert cp == ConnectionPoint(connectionPointId=NMI)
            puts = r.recorder.requests("PUT", path="/edev/1/cp")
            assert [x.status for x in puts] == [201]
            registered = r.recorder.requests("POST", path="/edev")[0]
            assert puts[0].at >= registered.at
            # Walks go on; the same id is not PUT again while the server holds it.
            walks = len(r.recorder.requests("GET", path="/dcap"))
            await r.until(
                lambda: len(r.recorder.requests("GET", path="/dcap")) >= walks + 2, "two walks"
            )
            assert len(r.recorder.requests("PUT", path="/edev/1/cp")) == 1

    run(body)


def test_ALL_03_REJ_a_wrong_registration_pin_stops_the_client(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    wrong = pin_with_check(22222)
    assert wrong != PIN

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", server_pin=wrong) as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=30, base=export_limit(1000)
            )
            await r.until(
                lambda: len(r.recorder.requests("GET", path="/edev/1/reg")) >= 1,
                "the Registration read",
            )
            await r.until(
                lambda: any("PIN" in e for e in r.gateway.client.errors),
                "a PIN error in gateway.client.errors",
            )
            await asyncio.sleep(3.0)  # several walk periods: nothing beyond the Registration
            errors = r.gateway.client.errors
            assert any(f"{PIN:06d}" in e and f"{wrong:06d}" in e for e in errors), errors
            beyond = [
                x
                for x in r.recorder.exchanges
                if x.path.startswith(("/edev/1/fsa", "/derp", "/rsps", "/mup", "/edev/1/der"))
            ]
            assert beyond == [], beyond
            assert [x for x in r.recorder.exchanges if x.method in ("PUT", "POST")] == []
            assert r.site.engine.schedule.get(mrid) is None  # type: ignore[arg-type]
            assert _default_export_limit(r) is None
            assert r.gateway.client.session.discovery is None
            assert any(isinstance(i, NorthLinkLost) for i in r.inputs)
            # Stopping means not re-reading the Registration at the 1 s poll rate either.
            reads = r.recorder.requests("GET", path="/edev/1/reg")
            assert len(reads) <= 2, [round(x.at - reads[0].at, 1) for x in reads]

    run(body)


def test_ALL_04_matching_pin_the_client_carries_on(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=2, base=export_limit(2500)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3")
            assert r.gateway.client.session.discovery is not None
            assert not any("PIN" in e for e in r.gateway.client.errors)
            assert not any(isinstance(i, NorthLinkLost) for i in r.inputs)
            # The PIN is checked at every walk, and every walk goes on past it.
            reads = r.recorder.requests("GET", path="/edev/1/reg")
            fsas = r.recorder.requests("GET", path="/edev/1/fsa")
            assert len(reads) >= 2
            assert len(fsas) >= len(reads) - 1

    run(body)


def test_ALL_05_no_registration_link_the_walk_goes_on(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", server_pin=None) as r:
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=2, base=export_limit(2500)
            )
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3")
            await r.until(lambda: "/edev/1/der" in _get_paths(r), "the DER list fetched")
            _assert_walked_in_order(r, registration=False)
            assert r.recorder.requests(path="/edev/1/reg") == []
            found = r.gateway.client.session.discovery
            assert found is not None
            assert found.end_device.RegistrationLink is None
            assert found.registration is None
            await r.until(lambda: r.state.der_status(r.lfdi) is not None, "DERStatus")
            await r.until(lambda: len(r.state.readings(r.lfdi)) > 0, "readings")

    run(body)


def test_SDVN_01_the_dcap_is_found_at_the_well_known_route_newest_supported_version_first(
    sep2_pki: PkiFiles,
) -> None:
    """CSIP-AUS 1.3 service discovery: an unsupported version is never tried; the newest
    supported one's paths are tried in order, a 404 and a path that serves something else are
    skipped, and the older supported version's DeviceCapability is the one taken."""

    async def body() -> tuple[str, str, list[str]]:
        async with utility_server(sep2_pki) as u:
            u.state.well_known = {
                "https://csipaus.org/ns/v99.99": ["/future-dcap"],
                "https://csipaus.org/ns/v1.3": ["/missing-dcap", "/tm", "https://elsewhere/dcap"],
                "https://csipaus.org/ns": ["/dcap"],
            }
            gw = sep2_pki.device("gateway")
            context = tls.client_context(gw.cert, gw.key, gw.chain, sep2_pki.serca)
            async with Http(u.server.url("/"), context) as http:
                version, url = await discover_dcap(http)
            paths = [x.path for x in u.recorder.requests("GET")]
            return version, url, paths

    version, url, paths = asyncio.run(body())
    assert version == "1.2"
    assert url.endswith("/dcap")
    assert paths == ["/.well-known/csipaus", "/missing-dcap", "/tm", "/dcap"]


def test_SDVN_01_no_supported_version_is_a_clear_error(sep2_pki: PkiFiles) -> None:
    async def body() -> str:
        async with utility_server(sep2_pki) as u:
            u.state.well_known = {"v99.99": ["/dcap"], "null": []}
            gw = sep2_pki.device("gateway")
            context = tls.client_context(gw.cert, gw.key, gw.chain, sep2_pki.serca)
            async with Http(u.server.url("/"), context) as http:
                try:
                    await discover_dcap(http)
                except WellKnownError as e:
                    return str(e)
            raise AssertionError("discovery accepted an unsupported version")

    message = asyncio.run(body())
    assert "CSIP-AUS 1.3 or 1.2" in message
    assert "null, v99.99" in message


def test_MAINT_001_an_end_device_reprovisioned_out_of_band_is_reported_then_found_again(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """MAINT-001 (SunSpec CSIP, aggregator; read from its title, "EndDevice out-of-band
    maintenance"): the utility removes our EndDevice out of band, then provisions it again at
    another href. While it is gone the walk says so (not registered: the link is lost and the
    defaults rule, as after any comms loss); once it is back the client finds it by its LFDI,
    never at the old href, and follows its controls again."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=export_limit(4200)) as r:
            await r.until(lambda: _discovered(r), "a complete walk")
            other = "0123456789ABCDEF0123456789ABCDEF01234567"  # another site's, out of band
            r.state.add_end_device(other, pin=PIN)  # /edev/2: ours will come back as /edev/3
            r.state.remove_end_device(r.lfdi)
            await r.until(
                lambda: any("no EndDevice with lFDI" in e for e in r.gateway.client.errors),
                "a 'not registered' error in gateway.client.errors",
            )
            assert any(isinstance(i, NorthLinkLost) for i in r.inputs)
            seen = len(r.recorder.exchanges)
            back = r.state.add_end_device(r.lfdi, pin=PIN)
            assert back.number == 3
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 2, duration=30, base=export_limit(1000)
            )
            await r.until(lambda: r.codes(mrid)[:2] == [1, 2], "1 and 2 for the control")
            found = r.gateway.client.session.discovery
            assert found is not None
            assert found.end_device.href == "/edev/3"
            assert _default_export_limit(r) == 1000  # the control is what is in force
            gets = [x.path for x in r.recorder.exchanges[seen:] if x.method == "GET"]
            assert "/edev/3/fsa" in gets
            assert not [p for p in gets if p.startswith("/edev/1/")], gets

    run(body)
