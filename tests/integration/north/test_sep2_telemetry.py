"""Telemetry procedures (CSIP-AUS ALL-06 ... ALL-10): what the server can rely on."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path

from sep2_rig import GatewayRig, export_limit, fast_site, gateway_rig, run

from gateway.core.controls import ControlSet
from gateway.core.island import RelayPosition
from gateway.core.messages import ManualOverride, NorthLinkLost
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import ConnectStatus, DERStatus, DOEModes, OperationalMode
from gateway.north.sep2.metering import (
    FlowDirection,
    MirrorMeterReadingList,
    MirrorUsagePoint,
    Uom,
)
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.telemetry import DerAlarm
from gateway.sim.physics import NOMINAL_V


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
            assert {Uom.W, Uom.VAR, Uom.V} <= uoms
            der_uoms = {m.ReadingType.uom for m in der.MirrorMeterReading if m.ReadingType}
            assert {Uom.W, Uom.VAR, Uom.V} <= der_uoms
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


# --- ALL-07 ... ALL-10, ALL-29 --------------------------------------------------------------


def _status(r: GatewayRig) -> DERStatus | None:
    return r.state.der_status(r.lfdi)


def _alarm_bits(r: GatewayRig) -> int | None:
    s = _status(r)
    return None if s is None else s.alarmStatus


def _gen_bits(r: GatewayRig) -> int | None:
    s = _status(r)
    return None if s is None or s.genConnectStatus is None else int(s.genConnectStatus.value)


def _op_mode(r: GatewayRig) -> int | None:
    s = _status(r)
    return None if s is None or s.operationalModeStatus is None else s.operationalModeStatus.value


async def _override(r: GatewayRig, controls: ControlSet | None) -> None:
    """The homeowner's local override (the installer's "manual" action of the procedures)."""
    await r.site.runner.feed(ManualOverride(r.site.now(), controls))


def test_ALL_07_gen_connect_status_follows_a_manual_disconnect(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: (_gen_bits(r) or 0) & ConnectStatus.CONNECTED != 0, "bit 0")
            await _override(r, ControlSet(connect=False))
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the DER disconnected")
            await r.until(lambda: _gen_bits(r) == 0, "genConnectStatus bits clear")
            await _override(r, None)
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "reconnected", 30)
            await r.until(lambda: (_gen_bits(r) or 0) & ConnectStatus.CONNECTED != 0, "bit 0 again")

    run(body)


def test_ALL_08_operational_mode_status_follows_the_der_stopped_at_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        site = replace(fast_site(), site_policy=ControlSet(target_w=-3000.0))
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=site) as r:
            physics = r.site.home.physics
            await r.until(lambda: physics.charger.power_w < -2500, "the EV charging")
            await r.until(lambda: _op_mode(r) == OperationalMode.OPERATIONAL, "2 operational")
            # Stop every DER at 0 W while the site stays grid-connected.
            await _override(r, ControlSet(energize=False, generation_limit_w=0.0))
            await r.until(
                lambda: abs(physics.charger.power_w) < 10 and physics.pv.power_w < 10, "all at 0 W"
            )
            assert r.relay() is RelayPosition.CLOSED
            await r.until(lambda: _op_mode(r) == OperationalMode.OFF, "1 off", 6)
            await _override(r, None)
            await r.until(lambda: physics.charger.power_w < -2500, "charging again")
            await r.until(lambda: _op_mode(r) == OperationalMode.OPERATIONAL, "2 again", 6)

    run(body)


def test_ALL_09_capability_settings_and_status_are_put_and_valid(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(
                lambda: (
                    None
                    not in (
                        r.state.der_capability(r.lfdi),
                        r.state.der_settings(r.lfdi),
                        _status(r),
                    )
                ),
                "DERCapability, DERSettings and DERStatus PUT",
            )
            cap = r.state.der_capability(r.lfdi)
            settings = r.state.der_settings(r.lfdi)
            status = _status(r)
            assert cap is not None
            assert settings is not None
            assert status is not None
            every_doe = (
                DOEModes.EXP_LIM_W | DOEModes.IMP_LIM_W | DOEModes.GEN_LIM_W | DOEModes.LOAD_LIM_W
            )
            assert cap.doeModesSupported == every_doe
            assert settings.doeModesEnabled is not None
            assert settings.doeModesEnabled & ~every_doe == 0
            assert cap.rtgMaxW.watts > 0
            assert 0 < settings.setMaxW.watts <= cap.rtgMaxW.watts
            assert settings.modesEnabled is not None
            assert settings.modesEnabled & ~cap.modesSupported == 0
            assert abs(settings.updatedTime - r.server_now()) < 30
            assert status.genConnectStatus is not None
            assert status.operationalModeStatus is not None
            assert abs(status.readingTime - r.server_now()) < 30

    run(body)


def _reading_times(r: GatewayRig, direction: FlowDirection) -> list[int]:
    out = []
    for got in r.state.readings(r.lfdi):
        rt = got.reading.ReadingType
        if rt is None or rt.uom != Uom.W or rt.flowDirection != direction:
            continue
        period = got.reading.Reading.timePeriod if got.reading.Reading else None
        assert period is not None
        out.append(period.start)
    return out


def test_ALL_10_a_changed_post_rate_is_honoured(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            site = lambda: _reading_times(r, FlowDirection.FORWARD)  # noqa: E731
            await r.until(lambda: len(site()) >= 4, "readings at the 1 s postRate")
            r.state.set_post_rate(2)
            changed = r.server_now()
            await r.until(lambda: len([t for t in site() if t > changed + 2]) >= 4, "4 more", 20)
            later = [t for t in site() if t > changed + 2]
            gaps = [b - a for a, b in itertools.pairwise(later)]
            assert all(2 <= g <= 3 for g in gaps), gaps
            assert len(_reading_times(r, FlowDirection.REVERSE)) >= 4  # DER readings too

    run(body, timeout=40)


def test_ALL_29_der_and_site_readings_match_the_home(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        site = replace(fast_site(), site_policy=ControlSet(target_w=-2000.0))
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=site) as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0

            def latest(direction: FlowDirection, after: float) -> float | None:
                found = None
                for got in r.state.readings(r.lfdi):
                    rt = got.reading.ReadingType
                    reading = got.reading.Reading
                    if rt is None or rt.uom != Uom.W or rt.flowDirection != direction:
                        continue
                    if reading is None or reading.value is None or got.at <= after:
                        continue
                    found = reading.value * 10.0 ** (rt.powerOfTenMultiplier or 0)
                return found

            # Several operating points: free, export-limited, generation-limited.
            for base in (None, export_limit(300), DERControlBase(opModGenLimW=ActivePower(800))):
                if base is not None:
                    now = int(r.server_now())
                    r.state.add_control(r.program, start=now, duration=30, base=base)
                await asyncio.sleep(3.0)  # settle
                mark = r.server_now()
                await r.until(
                    lambda m=mark: latest(FlowDirection.REVERSE, m) is not None, "a fresh reading"
                )
                der_w = physics.pv.power_w + physics.charger.power_w
                site_w = physics.meter().net_w
                reported_der = latest(FlowDirection.REVERSE, mark)
                reported_site = latest(FlowDirection.FORWARD, mark)
                assert reported_der is not None
                assert reported_site is not None
                assert abs(reported_der - der_w) <= 100, (base, reported_der, der_w)
                assert abs(reported_site - site_w) <= 100, (base, reported_site, site_w)
            assert len(_reading_times(r, FlowDirection.REVERSE)) >= 8
            assert len(_reading_times(r, FlowDirection.FORWARD)) >= 8

    run(body)


def test_STO_01_der_stored_energy_readings_follow_the_ev(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """STO-01 / STO-04 (CSIP-AUS storage): the DER mirror carries the EV's stored energy (Wh,
    kind energy, dataQualifier 0), the SoC times the configured usable capacity; and
    DERCapability/DERSettings carry that capacity as rtgMaxWh / setMaxWh (STO-02, in part)."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            capacity = r.site.engine.config.charger.capacity_wh
            assert capacity is not None

            def stored() -> list[tuple[float, float]]:
                out = []
                for got in r.state.readings(r.lfdi):
                    rt, reading = got.reading.ReadingType, got.reading.Reading
                    if rt is None or rt.uom != Uom.WH or reading is None:
                        continue
                    assert (rt.kind, rt.dataQualifier) == (12, 0)
                    assert reading.value is not None
                    out.append((got.at, reading.value * 10.0 ** (rt.powerOfTenMultiplier or 0)))
                return out

            await r.until(lambda: len(stored()) >= 4, "four stored-energy readings")
            soc = r.site.home.physics.charger.soc_pct
            assert abs(stored()[-1][1] - soc / 100 * capacity) <= 0.01 * capacity
            cap = r.state.der_capability(r.lfdi)
            settings = r.state.der_settings(r.lfdi)
            assert cap is not None
            assert cap.rtgMaxWh is not None
            assert settings is not None
            assert settings.setMaxWh is not None
            assert cap.rtgMaxWh.watts == settings.setMaxWh.watts == capacity

    run(body)


def test_MUL_02_reactive_power_readings_match_the_meter(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    """ALL-06 / MUL-02 / BASIC-029 count var: the site's (the meter's net reactive power,
    + = import) and the DER's (the inverter's, + = injected: 0 at unity power factor)."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            r.site.home.physics.load.constant_w = 2000.0

            def latest(direction: FlowDirection) -> float | None:
                found = None
                for got in r.state.readings(r.lfdi):
                    rt, reading = got.reading.ReadingType, got.reading.Reading
                    if rt is None or rt.uom != Uom.VAR or rt.flowDirection != direction:
                        continue
                    if reading is not None and reading.value is not None:
                        found = reading.value * 10.0 ** (rt.powerOfTenMultiplier or 0)
                return found

            await r.until(lambda: latest(FlowDirection.FORWARD) is not None, "a site var reading")
            await r.until(lambda: latest(FlowDirection.REVERSE) is not None, "a DER var reading")
            expected = r.site.home.physics.meter().net_var
            assert expected > 600  # 2 kW at power factor 0.95 lagging: ~657 var drawn
            site_var = latest(FlowDirection.FORWARD)
            assert site_var is not None
            assert abs(site_var - expected) <= 20
            assert latest(FlowDirection.REVERSE) == 0.0

    run(body)


def test_BASIC_027_alarms_are_log_events_as_they_occur_and_return_to_normal(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """A grid outage raises under-voltage and under-frequency alarms (DERStatus alarmStatus
    bits 2 and 4; LogEvents 4 and 8, IEEE 2030.5 PEN, DER function set), each posted once; the
    grid's return posts their return-to-normal codes (5 and 9)."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            grid = r.site.home.physics.grid
            await r.until(lambda: _status(r) is not None, "DERStatus")
            assert r.state.log_events(r.lfdi) == []
            grid.fail()

            def codes() -> list[int]:
                return [e.logEventCode for e in r.state.log_events(r.lfdi)]

            await r.until(lambda: sorted(codes()) == [4, 8], "under-voltage and -frequency", 8)
            # The LogEvents go out when the edge is seen; DERStatus at the next postRate.
            await r.until(lambda: _alarm_bits(r) == 0b10100, "DERStatus alarmStatus", 3)
            await asyncio.sleep(2.5)  # several postRates: an alarm in force is not re-posted
            assert sorted(codes()) == [4, 8]
            grid.restore()
            await r.until(lambda: sorted(codes()[2:]) == [5, 9], "back to normal", 8)
            events = r.state.log_events(r.lfdi)
            assert {(e.functionSet, e.profileID, e.logEventPEN) for e in events} == {(11, 2, 40732)}
            assert len({e.logEventID for e in events}) == 4

    run(body)


def test_BASIC_027_an_alarm_raised_and_cleared_during_an_outage_is_reported_after(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """Comms down, the grid goes over-voltage (DERStatus bit 1) for a moment and comes back;
    comms up: both LogEvents (2 raised, 3 normal) reach the server, once each, in order, with
    the times the control cycles saw them (the gateway's server time), not when they were sent."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            grid, alarms = r.site.home.physics.grid, r.gateway.alarms
            await r.until(lambda: _status(r) is not None, "DERStatus")
            r.state.cut()
            await r.until(lambda: any(isinstance(i, NorthLinkLost) for i in r.inputs), "lost")
            now = r.gateway.client.now  # the gateway's server time: the edges are stamped on it
            before = now()
            grid.restore(voltage_v=1.25 * NOMINAL_V)
            await r.until(lambda: alarms.bits == DerAlarm.OVER_VOLTAGE, "over-voltage seen", 3)
            raised = now()
            grid.restore()
            await r.until(lambda: alarms.bits == 0, "back to normal", 3)
            cleared = now()
            await asyncio.sleep(0.5)
            assert r.state.log_events(r.lfdi) == []
            r.state.restore()
            await r.until(lambda: len(r.state.log_events(r.lfdi)) == 2, "both LogEvents", 6)
            up, down = r.state.log_events(r.lfdi)
            assert (up.logEventCode, down.logEventCode) == (2, 3)
            assert int(before) <= up.createdDateTime <= raised
            assert int(raised) <= down.createdDateTime <= cleared
            assert up.logEventID != down.logEventID
            await asyncio.sleep(1.5)  # more drains and postRates: nothing is sent twice
            assert r.state.log_events(r.lfdi) == [up, down]

    run(body)
