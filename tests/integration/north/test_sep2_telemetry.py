"""Telemetry procedures (CSIP-AUS ALL-06 ... ALL-10): what the server can rely on."""

from __future__ import annotations

from pathlib import Path

from sep2_rig import gateway_rig, run

from gateway.north.sep2 import codec
from gateway.north.sep2.metering import MirrorMeterReadingList, MirrorUsagePoint, Uom
from gateway.north.sep2.pki import PkiFiles


def test_ALL_06_site_and_der_readings_reach_their_mirrors(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:

            def created() -> list[MirrorUsagePoint]:
                out = []
                for x in r.recorder.requests("POST", path="/mup"):
                    mup = codec.decode(x.body)
                    assert isinstance(mup, MirrorUsagePoint)
                    assert x.status == 201
                    out.append(mup)
                return out

            def updates() -> list[MirrorMeterReadingList]:
                out = []
                for x in r.recorder.requests("POST", "/mup/"):
                    readings = codec.decode(x.body)
                    assert isinstance(readings, MirrorMeterReadingList)
                    out.append(readings)
                return out

            await r.until(lambda: len(created()) == 2, "a site and a DER mirror")
            await r.until(lambda: len(updates()) >= 4, "readings at postRate")
            site, der = created()
            assert site.deviceLFDI == der.deviceLFDI == r.lfdi
            uoms = {m.ReadingType.uom for m in site.MirrorMeterReading if m.ReadingType is not None}
            assert {Uom.W, Uom.V} <= uoms
            assert len({m.mRID for m in site.MirrorMeterReading}) == len(site.MirrorMeterReading)
            # Readings are stamped in server time, each mirror's newer than its last.
            readings = r.state.readings(r.lfdi)
            assert readings
            by_mirror: dict[str, list[int]] = {}
            for got in readings:
                period = got.reading.Reading.timePeriod if got.reading.Reading else None
                assert period is not None
                assert abs(period.start - r.server_now()) < 30
                by_mirror.setdefault(got.mup, []).append(period.start)
            for stamps in by_mirror.values():
                assert stamps == sorted(stamps)

    run(body)


def test_a_lost_mirror_is_created_again(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            creates = lambda: r.recorder.requests("POST", path="/mup")  # noqa: E731
            await r.until(lambda: len(creates()) == 2, "two mirrors")
            await r.until(
                lambda: len(r.recorder.requests("POST", "/mup/", status=204)) >= 2, "updates"
            )
            r.state.lose_mup(1)
            await r.until(lambda: len(creates()) == 3, "the lost mirror is recreated")
            assert r.recorder.requests("POST", "/mup/1", status=404)

    run(body)
