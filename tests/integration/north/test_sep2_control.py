"""Control procedures (CSIP-AUS ALL-11 ... ALL-25): events reach the home, responses the server.

Each test runs the whole gateway against the simulated utility (``sep2_rig.py``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from sep2_rig import GatewayRig, export_limit, fast_site, gateway_rig, run

from gateway.core.controls import ControlSet
from gateway.core.island import Phase, RelayPosition
from gateway.core.schedule import Mode
from gateway.core.site import SiteConfig
from gateway.core.units import MRID
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import ConnectStatus, DERStatus
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.north.sep2.pki import PkiFiles


def test_ALL_18_responses_received_started_completed_cancelled_superseded(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = r.server_now()
            done = r.state.add_control(
                r.program, start=int(now) + 1, duration=2, base=export_limit(3000)
            )
            cancelled = r.state.add_control(
                r.program, start=int(now) + 60, duration=600, base=export_limit(2000)
            )
            old = r.state.add_control(
                r.program, start=int(now) + 120, duration=600, base=export_limit(1000)
            )
            await r.until(lambda: r.codes(cancelled) == [1], "1 for the control to cancel")
            r.state.cancel(cancelled)
            new = r.state.supersede(old, base=export_limit(1500))
            await r.until(lambda: r.codes(done) == [1, 2, 3], "1, 2, 3 for the short control")
            await r.until(lambda: r.codes(cancelled) == [1, 6], "1 then 6 after cancel")
            await r.until(lambda: r.codes(old) == [1, 7], "1 then 7 after supersede")
            await r.until(lambda: r.codes(new) == [1], "1 for the superseding control")
            # Each exactly once, in server time, from our LFDI.
            for mrid in (done, cancelled, old, new):
                for _, response in r.recorder.responses(mrid):
                    assert response.endDeviceLFDI == r.lfdi
                    assert response.createdDateTime is not None
                    assert abs(response.createdDateTime - r.server_now()) < 30

    run(body)


def test_ALL_12_disconnect_opens_the_relay_and_reconnects_after(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "grid-connected at start")
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=4, base=DERControlBase(opModConnect=False)
            )
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            await r.until(
                lambda: _gen_connect(r) is not None and _gen_connect(r) & 0b111 == 0,
                "DERStatus genConnectStatus bits 0-2 clear while disconnected",
            )
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "the relay recloses", 30)
            await r.until(
                lambda: (_gen_connect(r) or 0) & ConnectStatus.CONNECTED != 0,
                "genConnectStatus bit 0 set again after the control",
            )
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3")
            assert r.site.engine.explain(Mode.CONNECT)

    run(body)


def _gen_connect(r: GatewayRig) -> int | None:
    puts = [x for x in r.recorder.requests("PUT", "/edev/") if x.path.endswith("/ders")]
    if not puts:
        return None
    status = codec.decode(puts[-1].body)
    assert isinstance(status, DERStatus)
    return None if status.genConnectStatus is None else int(status.genConnectStatus.value)


# --- ALL-11, ALL-13, ALL-21, ALL-22, ALL-24, ALL-25 -----------------------------------------
# The simulated home at its start instant: PV ~2.7 kW, household load pinned to 1 kW, so the
# site exports ~1.7 kW while nothing binds. ``charging_site`` makes the EV charge at 3 kW
# (the installer's site policy, the lowest-precedence source) so that the charger runs too.


def _charging_site() -> SiteConfig:
    return replace(fast_site(), site_policy=ControlSet(target_w=-3000.0))


def _export_w(r: GatewayRig) -> float:
    net: float = r.site.home.physics.meter().net_w
    return -net


def _der_status(r: GatewayRig) -> DERStatus | None:
    return r.state.der_status(r.lfdi)


def _operating(r: GatewayRig) -> bool | None:
    status = _der_status(r)
    if status is None or status.genConnectStatus is None:
        return None
    return bool(status.genConnectStatus.value & ConnectStatus.OPERATING)


def test_ALL_11_energize_false_stops_every_der_and_der_status_follows(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=_charging_site()) as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            await r.until(lambda: physics.charger.power_w < -2500, "the EV charging")
            await r.until(lambda: physics.pv.power_w > 2000, "the PV generating")
            await r.until(lambda: _operating(r) is True, "DERStatus: operating")
            now = int(r.server_now())
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=5, base=DERControlBase(opModEnergize=False)
            )
            await r.until(lambda: r.site.engine.resolved.controls.energize is False, "in force")
            await r.until(lambda: abs(physics.charger.power_w) < 10, "the charger stopped")
            # Cease to energize is for every DER behind the EndDevice, the PV included.
            await r.until(lambda: physics.pv.power_w < 10, "the PV ceases to energize", 4)
            await r.until(lambda: _operating(r) is False, "DERStatus genConnectStatus bit 2 clear")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            await r.until(lambda: physics.charger.power_w < -2500, "charging again")
            await r.until(lambda: _operating(r) is True, "DERStatus bit 2 set again")

    run(body)


def test_ALL_11_ALL_12_held_at_0_w_by_the_default_the_der_still_reports_operating(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """ALL-11 and ALL-12 end under a DefaultDERControl of 0 W import and export and then want
    DERStatus bit 2 (operating). With no house load that default holds every DER at 0 W: the DER
    is carrying out the control, so it is operating; a gateway that sets bit 2 only while power
    flows reports it clear here, and fails both procedures at a quiet site."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 0.0
            zero = DERControlBase(opModImpLimW=ActivePower(0), opModExpLimW=ActivePower(0))
            r.state.set_default(r.program, DefaultDERControl("0", zero))

            def held() -> bool:
                return abs(physics.pv.power_w) < 10 and abs(physics.charger.power_w) < 10

            await r.until(held, "every DER held at 0 W by the default")
            since = r.server_now() + 1  # a DERStatus read after the DER was held

            def reported() -> bool:
                status = _der_status(r)
                return status is not None and (status.readingTime or 0) >= since

            await r.until(reported, "a DERStatus posted while held at 0 W", 8)
            assert held()
            assert _operating(r) is True

    run(body)


def test_ALL_13_default_set_grad_w_reaches_der_settings(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.state.der_settings(r.lfdi) is not None, "DERSettings PUT")
            for grad in (100, 27):
                r.state.set_default(
                    r.program, DefaultDERControl("0", export_limit(5000), setGradW=grad)
                )

                def follows(g: int = grad) -> bool:
                    settings = r.state.der_settings(r.lfdi)
                    return settings is not None and settings.setGradW == g

                await r.until(follows, f"DERSettings setGradW {grad}", 8)

    run(body)


def test_ALL_21_scheduled_controls_answer_1_2_3_at_their_server_times(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = int(r.server_now())
            plan = [
                (now + 3, 2, DERControlBase(opModExpLimW=ActivePower(1500))),
                (now + 5, 2, DERControlBase(opModImpLimW=ActivePower(2500))),
                (
                    now + 7,
                    2,
                    DERControlBase(opModExpLimW=ActivePower(1000), opModImpLimW=ActivePower(2000)),
                ),
            ]
            mrids = [
                r.state.add_control(r.program, start=s, duration=d, base=b) for s, d, b in plan
            ]
            await r.until(lambda: r.codes(mrids[0]) == [1], "1 before any start")
            # The second's limit is in force during its interval, the first's before it.
            await r.until(
                lambda: r.site.engine.resolved.controls.import_limit_w == 2500.0, "2nd in force"
            )
            assert r.site.engine.resolved.controls.export_limit_w == 5000.0  # the default
            for mrid in mrids:
                await r.until(lambda m=mrid: r.codes(m) == [1, 2, 3], f"1, 2, 3 for {mrid}", 12)
            for mrid, (start, duration, _) in zip(mrids, plan, strict=True):
                at = dict(r.recorder.responses_for(mrid))
                received, started, completed = at[1], at[2], at[3]
                assert received is not None
                assert started is not None
                assert completed is not None
                assert received <= start, (mrid, received, start)
                assert start <= started <= start + 1, (mrid, started, start)
                assert start + duration <= completed <= start + duration + 1, (mrid, completed)

    run(body)


def test_ALL_22_randomized_start_falls_in_its_window_and_is_drawn_once(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            now = int(r.server_now())
            spread = [
                r.state.add_control(
                    r.program,
                    start=now + 300 + 1000 * i,
                    duration=60,
                    base=export_limit(1000 + i),
                    randomize_start=60,
                )
                for i in range(5)
            ]
            short = r.state.add_control(
                r.program, start=now + 2, duration=2, base=export_limit(800), randomize_start=4
            )
            schedule = r.site.engine.schedule

            def offsets() -> list[int] | None:
                recs = [schedule.get(MRID(m)) for m in [*spread, short]]
                return None if None in recs else [rec.start_offset for rec in recs if rec]

            await r.until(lambda: offsets() is not None, "every control received")
            first = offsets()
            assert first is not None
            assert all(0 <= off <= 60 for off in first[:5]), first
            assert len(set(first[:5])) > 1, f"randomizeStart=60 drew the same offset: {first}"
            assert 0 <= first[5] <= 4
            # Drawn once: many re-polls later the draws are the same.
            polls = len(r.recorder.requests("GET", "/derp/"))
            await r.until(lambda: len(r.recorder.requests("GET", "/derp/")) >= polls + 6, "polls")
            assert offsets() == first
            # The short one starts at its drawn start, not at its nominal start.
            await r.until(lambda: r.codes(short) == [1, 2, 3], "1, 2, 3 for the short one", 15)
            at = dict(r.recorder.responses_for(short))
            actual = now + 2 + first[5]
            assert at[2] is not None
            assert actual <= at[2] <= actual + 1, (at, actual)
            assert at[3] is not None
            assert actual + 2 <= at[3] <= actual + 3, (at, actual)

    run(body)


def test_ALL_24_scaling_factors_reach_the_engine_in_watts(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            await r.until(lambda: _export_w(r) > 1400, "the PV exporting freely")
            now = int(r.server_now())
            base = DERControlBase(
                opModExpLimW=ActivePower(8, 2),  # 800 W
                opModImpLimW=ActivePower(15, 3),  # 15000 W
            )
            mrid = r.state.add_control(r.program, start=now + 1, duration=4, base=base)
            controls = lambda: r.site.engine.resolved.controls  # noqa: E731
            await r.until(lambda: controls().export_limit_w == 800.0, "800 W export in force")
            assert controls().import_limit_w == 15000.0
            await r.until(lambda: abs(_export_w(r) - 800) <= 60, "the site exports 800 W", 6)
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # A negative multiplier: tenths of a watt.
            now = int(r.server_now())
            fine = DERControlBase(opModExpLimW=ActivePower(12345, -1))
            mrid = r.state.add_control(r.program, start=now + 1, duration=2, base=fine)
            await r.until(lambda: controls().export_limit_w == 1234.5, "1234.5 W in force")
            await r.until(lambda: r.codes(mrid)[:2] == [1, 2], "1, 2")

    run(body)


def test_ALL_25_ramp_time_spreads_the_change_over_ramp_tms(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            await r.until(lambda: _export_w(r) > 1400, "the PV exporting freely")
            before = _export_w(r)
            now = int(r.server_now())
            # From ~1.7 kW of export to 200 W over rampTms = 6 s.
            base = DERControlBase(opModExpLimW=ActivePower(200), rampTms=600)
            mrid = r.state.add_control(r.program, start=now + 1, duration=20, base=base)
            await r.until(lambda: r.codes(mrid) == [1, 2], "2: the control started")
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while time.monotonic() - started < 8.0:
                samples.append((time.monotonic() - started, _export_w(r)))
                await asyncio.sleep(0.1)
            early = [w for t, w in samples if t <= 1.5]
            mid = [w for t, w in samples if 2.0 <= t <= 3.0]
            late = [w for t, w in samples if t >= 7.0]
            # Not a step: a third of the way into the ramp the export is still well above 200 W,
            # half-way it is between the two levels, and after the ramp it is at the limit.
            assert min(early) > 200 + 0.5 * (before - 200), samples
            assert 200 + 60 < max(mid) < before, samples
            assert max(late) <= 200 + 60, samples

    run(body)


def test_ALL_28_a_default_set_grad_w_ramps_a_new_limit_at_that_rate(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """The default's setGradW (hundredths of % of the DER rating per second) is the ramp rate
    of a limit change when the control gives no rampTms (BASIC-007)."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            r.site.home.physics.load.constant_w = 1000.0
            await r.until(lambda: _export_w(r) > 1400, "the PV exporting freely")
            cycles = r.site.runner.cycles
            await r.until(lambda: r.site.runner.cycles > cycles + 2, "the engine measuring it")
            before = _export_w(r)
            rated = sum(d.max_discharge_w for d in r.site.engine.config.ders)
            # ~250 W/s: from ~1.7 kW of export to a 200 W default limit in about 6 s.
            grad = round(250 / rated * 100 * 100)
            r.state.set_default(r.program, DefaultDERControl("0", export_limit(200), setGradW=grad))
            await r.until(
                lambda: r.site.engine.resolved.controls.export_limit_w == 200, "the default", 8
            )
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while time.monotonic() - started < 8.5:
                samples.append((time.monotonic() - started, _export_w(r)))
                await asyncio.sleep(0.1)
            expected_s = (before - 200) / (grad / 100 / 100 * rated)
            early = [w for t, w in samples if t <= 0.25 * expected_s]
            mid = [w for t, w in samples if 0.4 * expected_s <= t <= 0.6 * expected_s]
            late = [w for t, w in samples if t >= expected_s + 1.5]
            assert min(early) > 200 + 0.5 * (before - 200), samples
            assert 200 + 60 < max(mid) < before, samples
            assert max(late) <= 200 + 60, samples

    run(body)


def test_BASIC_007_a_default_set_soft_grad_w_soft_starts_the_pv_after_cease_to_energize(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """setSoftGradW (hundredths of % of the DER rating per second): when opModEnergize returns
    to true the DER output rises from 0 at that rate, not as a step (BASIC-007)."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            await r.until(lambda: physics.pv.power_w > 2000, "the PV generating")
            rated = sum(d.max_discharge_w for d in r.site.engine.config.ders)
            soft = round(400 / rated * 100 * 100)  # ~400 W/s
            r.state.set_default(r.program, DefaultDERControl("0", setSoftGradW=soft))
            await r.until(
                lambda: r.site.engine.resolved.controls.soft_start_rate_pct_s is not None,
                "the default",
                8,
            )
            now = int(r.server_now())
            r.state.add_control(
                r.program, start=now + 1, duration=2, base=DERControlBase(opModEnergize=False)
            )
            await r.until(lambda: r.site.engine.resolved.controls.energize is False, "in force")
            await r.until(lambda: physics.pv.power_w < 10, "the PV ceases to energize", 4)
            await r.until(lambda: r.site.engine.resolved.controls.energize is None, "over", 5)
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while time.monotonic() - started < 3.0:
                samples.append((time.monotonic() - started, physics.pv.power_w))
                await asyncio.sleep(0.1)
            rate = soft / 100 / 100 * rated
            # Under the soft-start line (plus a cycle of slack), and rising.
            assert all(w <= rate * (t + 0.6) + 50 for t, w in samples), samples
            assert samples[-1][1] > 400, samples

    run(body)


def test_BASIC_007_a_defaults_set_es_delay_and_set_es_ramp_tms_hold_and_ramp_the_reentry(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """setESDelay (hundredths of a second) replaces the site's enter-service delay (1 s here,
    the installer's floor) after an opModConnect=false control, and setESRampTms ramps the DER
    output up from 0 over that time (the DER rating / setESRampTms per second) once back."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 1000.0
            engine = r.site.engine
            await r.until(lambda: physics.pv.power_w > 2000, "the PV generating")
            rated = sum(d.max_discharge_w for d in engine.config.ders)
            default = DefaultDERControl("0", setESDelay=300, setESRampTms=4000)  # 3 s, 40 s
            r.state.set_default(r.program, default)
            await r.until(
                lambda: engine.resolved.controls.enter_service_ramp_s == 40.0, "the default", 8
            )
            assert engine.resolved.controls.enter_service_delay_s == 3.0
            now = int(r.server_now())
            r.state.add_control(
                r.program, start=now + 1, duration=1, base=DERControlBase(opModConnect=False)
            )
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            await r.until(lambda: engine.phase is Phase.RECONNECT_WAIT, "the wait starts", 8)
            waiting = time.monotonic()
            await r.until(lambda: engine.phase is not Phase.RECONNECT_WAIT, "the wait ends", 8)
            waited = time.monotonic() - waiting
            assert 3.0 - 0.2 <= waited < 3.0 + 1.5, waited  # setESDelay, not the site's 1 s
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "the relay recloses", 8)
            started = time.monotonic()
            samples: list[tuple[float, float]] = []
            while time.monotonic() - started < 2.5:
                samples.append((time.monotonic() - started, physics.pv.power_w))
                await asyncio.sleep(0.1)
            rate = rated / 40.0
            # Under the enter-service ramp's line (plus a cycle of slack), and rising.
            assert all(w <= rate * (t + 0.6) + 50 for t, w in samples), samples
            assert samples[-1][1] > 300, samples

    run(body)
