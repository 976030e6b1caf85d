"""CSIP-AUS MUL-01 (class M, several DER behind one EndDevice) against the gateway.

The gateway reports the site's DER (PV and the bidirectional charger) as one aggregated DER,
``/edev/1/der/1`` in the procedures, which is the DER the MUL YAMLs read. "Powering off" a DER
is done in the simulated home: the PV at its isolator (``powered = False``: no output, SunSpec
``ConnSt`` DISCONNECTED), the charger by a trip (it reports a fault and stays stopped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sep2_rig import GatewayRig, export_limit, fast_site, gateway_rig, run, utility_server

from gateway.core.backfeed import DerRating
from gateway.core.controls import ControlSet
from gateway.core.island import RelayPosition
from gateway.core.messages import DerRated
from gateway.core.site import SiteConfig
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import (
    ConnectStatus,
    DERCapability,
    DERSettings,
    OperationalMode,
)
from gateway.north.sep2.model import DefaultDERControl
from gateway.north.sep2.pki import PkiFiles

BITS_0_TO_2 = ConnectStatus.CONNECTED | ConnectStatus.AVAILABLE | ConnectStatus.OPERATING


def _status(r: GatewayRig) -> tuple[int | None, int | None]:
    """(genConnectStatus bits 0-2, operationalModeStatus) of the last DERStatus PUT."""
    s = r.state.der_status(r.lfdi)
    if s is None or s.genConnectStatus is None or s.operationalModeStatus is None:
        return None, None
    return int(s.genConnectStatus.value) & BITS_0_TO_2, s.operationalModeStatus.value


def _charging_site() -> SiteConfig:
    return replace(fast_site(), site_policy=ControlSet(target_w=-3000.0))


def test_MUL_01_one_der_powered_off_the_aggregate_still_operates(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=_charging_site()) as r:
            physics = r.site.home.physics
            await r.until(lambda: physics.charger.power_w < -2500, "the EV charging")
            operating = (int(BITS_0_TO_2), int(OperationalMode.OPERATIONAL))
            await r.until(lambda: _status(r) == operating, "bits 0-2 and 2 Operational")
            physics.pv.powered = False  # the PV is switched off; the charger carries on
            await asyncio.sleep(2.0)
            assert physics.pv.power_w == 0.0
            assert physics.charger.power_w < -2500
            assert r.relay() is RelayPosition.CLOSED
            assert _status(r) == operating

    run(body)


def test_MUL_01_all_der_powered_off_clears_bits_0_to_2_and_reports_off(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=_charging_site()) as r:
            physics = r.site.home.physics
            await r.until(lambda: physics.charger.power_w < -2500, "the EV charging")
            physics.pv.powered = False
            physics.charger.trip("powered off")
            physics.charger.remote_enabled = False  # off: it takes no command to start again
            off = (0, int(OperationalMode.OFF))
            await r.until(lambda: _status(r) == off, "bits 0-2 clear and 1 Off", 4)

    run(body)


def test_MUL_03_the_aggregate_rating_is_every_ders_and_a_changed_rating_is_put_after_a_restart(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """MUL-03: DERCapability/DERSettings of the aggregate DER carry the PV's and the charger's
    ratings together, with the default's setGradW (100: 1 %/s); one DER's configured rating
    changed reaches them once the gateway restarts with it. Each DER's rating is the lower of
    the configured one and the device's own (the Quasar's 7.4 kW below the 9.6 kW configured),
    so the configured change is a lower one (a higher one would stay capped by the device's)."""
    db = tmp_path / "gw.db"
    first = fast_site()
    assert {d.kind for d in first.ders} == {"pv", "charger"}
    pv = next(d for d in first.ders if d.kind == "pv")
    smaller = replace(pv, max_discharge_w=pv.max_discharge_w - 1_000)
    second = replace(first, ders=tuple(smaller if d is pv else d for d in first.ders))
    devices = {"pv": 7_000.0, "ev": 7_400.0}  # the simulated PV's WMaxRtg, the Quasar's max_power

    def rated(site: SiteConfig) -> float:
        return sum(min(d.max_discharge_w, devices[d.der_id]) for d in site.ders)

    def settings_since(r: GatewayRig, since: float) -> list[tuple[float, float, int]]:
        """(rtgMaxW of the last capability, setMaxW, setGradW) of each DERSettings PUT."""
        cap = r.state.der_capability(r.lfdi)
        out = []
        for x in r.recorder.requests("PUT", path="/edev/1/der/1/derg", since=since):
            got = codec.decode(x.body)
            assert isinstance(got, DERSettings)
            rtg = -1.0 if cap is None else cap.rtgMaxW.watts
            out.append((rtg, got.setMaxW.watts, got.setGradW))
        return out

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            u.state.set_default(u.program, DefaultDERControl("0", export_limit(5000), setGradW=100))
            async with gateway_rig(sep2_pki, db, utility=u, site=first) as a:
                want = (rated(first), rated(first), 100)
                await a.until(lambda: want in settings_since(a, 0.0), "DERSettings, 1 %/s")
                assert rated(first) > first.charger.max_discharge_w  # not the charger's alone
            restarted = u.state.clock()
            async with gateway_rig(sep2_pki, db, utility=u, site=second, seed=7) as b:
                want = (rated(second), rated(second), 100)
                await b.until(lambda: want in settings_since(b, restarted), "the new rating PUT")

    run(body)


def _put_ratings(r: GatewayRig, since: float) -> list[tuple[str, float]]:
    """Each DERCapability ("rtg", its rtgMaxW) and DERSettings ("set", its setMaxW) PUT since
    ``since`` (server time), in the order they arrived."""
    out: list[tuple[str, float]] = []
    for x in r.recorder.requests("PUT", path_prefix="/edev/1/der/1/der", since=since):
        got = codec.decode(x.body)
        if isinstance(got, DERCapability):
            out.append(("rtg", got.rtgMaxW.watts))
        elif isinstance(got, DERSettings):
            out.append(("set", got.setMaxW.watts))
    return out


def test_MUL_03_step_d_the_chargers_own_charge_rating_is_put_without_a_restart(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """MUL-03 step d for the charge direction: a charger with its own charge rating register
    (Sigenergy ``rated_charge_power``) is derated while the gateway runs. rtgMaxChargeRateW and
    setMaxChargeRateW follow (setMaxChargeRateW <= rtgMaxChargeRateW) while rtgMaxW does not
    move, and the engine's charge cap for the charger is the new rating."""
    site = fast_site()
    ev = next(d for d in site.ders if d.kind == "charger")

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            for resource in ("dcap", "edev", "reg", "fsa"):
                u.state.set_poll_rate(resource, 300)
            db = tmp_path / "gw.db"
            async with gateway_rig(
                sep2_pki, db, utility=u, site=site, ratings_every_s=0.5, charger="sigenergy-dc"
            ) as r:
                charger = r.site.home.physics.charger

                def fed() -> list[tuple[str, float]]:
                    return [
                        (x.der_id, x.rated_w)
                        for x in r.inputs
                        if isinstance(x, DerRated) and x.direction == "charge"
                    ]

                await r.until(lambda: bool(fed()), "the charge rating read at start")
                await r.until(
                    lambda: (
                        sorted(_put_charge_rates(r, 0.0)[-2:])
                        == [("rtg", ev.max_charge_w), ("set", ev.max_charge_w)]
                    ),
                    "the configured charge rate PUT at start",
                )
                rtg_w = _put_ratings(r, 0.0)[-2][1]
                changed = r.state.clock()
                charger.max_charge_w = 6_000.0  # derated: the register now reads 6 kW
                await r.until(lambda: bool(_put_charge_rates(r, changed)), "the new rate PUT", 5)
                await asyncio.sleep(1.0)  # two more reads of the unchanged rating
                # Lowered: DERSettings first, so setMaxChargeRateW never exceeds the server's
                # rtgMaxChargeRateW between the two PUTs.
                assert _put_charge_rates(r, changed) == [("set", 6_000.0), ("rtg", 6_000.0)]
                assert _put_ratings(r, changed) == [("set", rtg_w), ("rtg", rtg_w)]
                _server_never_held_a_setting_above_its_rating(_put_charge_rates(r, 0.0))
                assert r.site.engine.der_charge_ratings["ev"] == 6_000.0
                assert fed() == [("ev", ev.max_charge_w), ("ev", 6_000.0)]  # one per change

    run(body)


def _put_charge_rates(r: GatewayRig, since: float) -> list[tuple[str, float | None]]:
    """Each DERCapability ("rtg", rtgMaxChargeRateW) and DERSettings ("set",
    setMaxChargeRateW) PUT since ``since`` (server time), in the order they arrived."""
    out: list[tuple[str, float | None]] = []
    for x in r.recorder.requests("PUT", path_prefix="/edev/1/der/1/der", since=since):
        got = codec.decode(x.body)
        if isinstance(got, DERCapability):
            rate = got.rtgMaxChargeRateW
            out.append(("rtg", None if rate is None else rate.watts))
        elif isinstance(got, DERSettings):
            rate = got.setMaxChargeRateW
            out.append(("set", None if rate is None else rate.watts))
    return out


def test_MUL_03_step_d_a_der_rating_changed_on_the_device_is_put_without_a_restart(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """MUL-03 step d without a restart: the PV's nameplate (SunSpec 702 WMaxRtg) changes on the
    device while the gateway runs. At the next ratings read (every 0.5 s here; 600 s by
    default) the engine takes it as one DerRated input, its setGradW reference follows, and
    the next DERCapability/DERSettings PUTs carry the new aggregate rtgMaxW/setMaxW, with
    setMaxW <= rtgMaxW. A nameplate above the configured rating does not raise it: the
    installer's configuration is the ceiling."""
    site = fast_site()
    pv, ev = (next(d for d in site.ders if d.kind == k) for k in ("pv", "charger"))

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            # Walks (which PUT both anyway) only at start: what follows is the change's own PUT.
            for resource in ("dcap", "edev", "reg", "fsa"):
                u.state.set_poll_rate(resource, 300)
            db = tmp_path / "gw.db"
            async with gateway_rig(sep2_pki, db, utility=u, site=site, ratings_every_s=0.5) as r:
                await _rating_changes(r, pv, ev)

    run(body)


async def _rating_changes(r: GatewayRig, pv: DerRating, ev: DerRating) -> None:
    physics, engine = r.site.home.physics, r.site.engine
    # At start: the PV's nameplate (7 kW, as configured) and the Quasar's max_power (7.4 kW,
    # below the 9.6 kW configured).
    ev_w = min(ev.max_discharge_w, physics.charger.max_discharge_w)
    assert ev_w < ev.max_discharge_w
    first = min(pv.max_discharge_w, physics.pv.peak_w) + ev_w
    await r.until(
        lambda: sorted(_put_ratings(r, 0.0)[-2:]) == [("rtg", first), ("set", first)],
        "the ratings read at start PUT",
    )
    assert engine.der_ratings == {"pv": pv.max_discharge_w, "ev": ev_w}

    changed = r.state.clock()  # the recorder's time (server_now is whole seconds)
    physics.pv.rated_w = 5_000.0  # the inverter now reports a 5 kW nameplate
    lower = 5_000.0 + ev_w
    await r.until(lambda: bool(_put_ratings(r, changed)), "the new rating PUT", 5)
    await asyncio.sleep(1.5)  # three more reads of the unchanged rating, posts and polls
    # Once; lowered, so DERSettings first (setMaxW never above the server's rtgMaxW).
    assert _put_ratings(r, changed) == [("set", lower), ("rtg", lower)]
    assert engine.der_ratings["pv"] == 5_000.0
    assert engine._rated_w == lower  # setGradW's reference follows
    fed = [x.rated_w for x in r.inputs if isinstance(x, DerRated) and x.der_id == "pv"]
    assert fed == [physics.pv.peak_w, 5_000.0]  # one DerRated per change

    raised = r.state.clock()
    physics.pv.rated_w = pv.max_discharge_w + 2_000.0  # above the configured 7 kW
    back = pv.max_discharge_w + ev_w
    await r.until(lambda: bool(_put_ratings(r, raised)), "the configured rating PUT", 5)
    await asyncio.sleep(0.5)
    # Not the device's; raised, so DERCapability first.
    assert _put_ratings(r, raised) == [("rtg", back), ("set", back)]
    _server_never_held_a_setting_above_its_rating(_put_ratings(r, 0.0))


def _server_never_held_a_setting_above_its_rating(
    puts: Sequence[tuple[str, float | None]],
) -> None:
    """Replays the PUTs in arrival order: after each, the server's setting (set) is at most its
    rating (rtg), whenever it has both (STO-05, at every moment, not only in the end)."""
    held: dict[str, float | None] = {}
    for kind, value in puts:
        held[kind] = value
        rtg, setting = held.get("rtg"), held.get("set")
        if rtg is not None and setting is not None:
            assert setting <= rtg, puts
