"""CSIP-AUS storage (v1.3-beta/storage): ``opModStorageTargetW`` drives the EV charger.

The storage target is the V2H charger's setpoint (positive = discharge), composed with the
site's limits like any other: the export limit still caps what leaves the site.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sep2_rig import GatewayRig, fast_site, gateway_rig, run, utility_server

from gateway.north.sep2.der_resources import DERCapability, DERSettings, VPPModes
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles
from gateway.north.sep2.xml import CSIPAUS_NS_V13_BETA, with_csipaus_ns


def test_STO_03_storage_target_with_an_export_limit_discharges_and_answers_1_2_3(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            charger = r.site.home.physics.charger
            rate = r.site.engine.config.charger.max_discharge_w
            target = min(3000.0, rate)
            base = DERControlBase(
                opModStorageTargetW=ActivePower.from_watts(target),
                opModExpLimW=ActivePower.from_watts(2 * rate),
            )
            now = int(r.server_now())
            mrid = r.state.add_control(r.program, start=now, duration=6, base=base)
            await r.until(lambda: r.codes(mrid)[:2] == [1, 2], "1 and 2")
            await r.until(lambda: abs(charger.power_w - target) <= 100, "the EV discharging")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "3: completed", 10)
            await r.until(lambda: abs(charger.power_w) <= 100, "the EV back to idle")

    run(body)


def test_STO_06_storage_target_to_charge_and_the_export_limit_caps_a_discharge(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """A negative target charges the EV; a discharge target above what the export limit
    leaves room for is capped by it. The dispatched EV is served before the PV, although the
    site lists the PV first, so the PV gives way (the export limit holds either way)."""
    assert [d.der_id for d in fast_site().ders] == ["pv", "ev"]

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            physics = r.site.home.physics
            physics.load.constant_w = 3000.0
            charger = physics.charger
            now = int(r.server_now())
            charge = DERControlBase(opModStorageTargetW=ActivePower.from_watts(-2000))
            first = r.state.add_control(r.program, start=now, duration=4, base=charge)
            await r.until(lambda: abs(charger.power_w + 2000) <= 100, "the EV charging at 2 kW")
            await r.until(lambda: r.codes(first) == [1, 2, 3], "the charge completed", 10)
            now = int(r.server_now())
            capped = DERControlBase(
                opModStorageTargetW=ActivePower.from_watts(5000),
                opModExpLimW=ActivePower.from_watts(500),
            )
            second = r.state.add_control(r.program, start=now, duration=6, base=capped)
            await r.until(lambda: r.codes(second)[:2] == [1, 2], "started")
            # 5 kW asked; the EV may serve the 3 kW load plus 500 W of export, no more.
            await r.until(lambda: abs(charger.power_w - 3500) <= 150, "capped at 3.5 kW")
            await r.until(lambda: physics.pv.power_w <= 100, "the PV giving way")
            assert -physics.meter().net_w <= 500 + 100

    run(body)


def test_BASIC_013_fixed_w_percent_sets_the_charger_and_014_target_w_in_watts(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """opModFixedW (hundredths of % of the rating, negative = charge) and opModTargetW (W,
    positive = discharge) each become the V2H charger's setpoint while in force, with 1/2/3."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            charger = r.site.home.physics.charger
            rating = r.site.engine.config.charger.max_charge_w
            now = int(r.server_now())
            fixed = DERControlBase(opModFixedW=-2500)  # -25 % of the rating: charge
            first = r.state.add_control(r.program, start=now, duration=4, base=fixed)
            expected = -0.25 * rating
            await r.until(lambda: abs(charger.power_w - expected) <= 100, "charging at 25 %")
            await r.until(lambda: r.codes(first) == [1, 2, 3], "1, 2, 3", 10)
            now = int(r.server_now())
            target = DERControlBase(opModTargetW=ActivePower.from_watts(1500))
            second = r.state.add_control(r.program, start=now, duration=4, base=target)
            await r.until(lambda: abs(charger.power_w - 1500) <= 100, "discharging 1.5 kW")
            await r.until(lambda: r.codes(second) == [1, 2, 3], "1, 2, 3", 10)
            await r.until(lambda: abs(charger.power_w) <= 100, "idle again")

    run(body)


def _capability_and_settings(r: GatewayRig) -> tuple[DERCapability, DERSettings]:
    cap = r.state.der_capability(r.lfdi)
    settings = r.state.der_settings(r.lfdi)
    assert cap is not None
    assert settings is not None
    return cap, settings


def _put_bodies(r: GatewayRig) -> list[bytes]:
    return [
        x.body
        for part in ("dercap", "derg")
        for x in r.recorder.requests("PUT", path=f"/edev/1/der/1/{part}")
    ]


def _assert_va_var_pf(
    cap: DERCapability,
    settings: DERSettings,
    *,
    va: float,
    var: float,
    var_neg: float,
    pf: tuple[float, float],
) -> None:
    """STO-02: rtgMaxVA, rtgMaxVar, rtgMaxVarNeg, rtgMinPF* and their set* arrived (as the
    server decoded them); STO-05: set <= rtg (VA, var), setMaxVarNeg >= rtgMaxVarNeg (var
    received is negative), setMinPF* >= rtgMinPF*; and the values are ``va`` ... ``pf``."""
    got = [
        (cap.rtgMaxVA, settings.setMaxVA),
        (cap.rtgMaxVar, settings.setMaxVar),
        (cap.rtgMaxVarNeg, settings.setMaxVarNeg),
    ]
    values = []
    for rtg, setting in got:
        assert rtg is not None
        assert setting is not None
        values.append((rtg.amount, setting.amount))
    (rtg_va, set_va), (rtg_var, set_var), (rtg_neg, set_neg) = values
    # The same rules as the builders' unit test (test_sep2_telemetry_builders.py,
    # assert_sto_05_va_var_pf_ranges), here on what the server decoded.
    assert 0 < set_va <= rtg_va
    assert rtg_va >= cap.rtgMaxW.watts
    assert 0 <= set_var <= rtg_var <= rtg_va
    assert rtg_neg <= set_neg <= 0
    pfs = []
    # Under-excited "SHALL be a positive value between 0.0 and 0.9999" (over-excited: 1.0).
    for rtg_pf, set_pf, most in (
        (cap.rtgMinPFOverExcited, settings.setMinPFOverExcited, 1.0),
        (cap.rtgMinPFUnderExcited, settings.setMinPFUnderExcited, 0.9999),
    ):
        assert rtg_pf is not None
        assert set_pf is not None
        assert 0 < rtg_pf.ratio <= set_pf.ratio <= most
        pfs.append(rtg_pf.ratio)
    assert (rtg_va, rtg_var, rtg_neg) == (va, var, -var_neg)
    assert tuple(pfs) == pf


def test_STO_02_STO_05_a_1_3_beta_storage_server_gets_vpp_modes_and_set_min_wh_in_range(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """Against a server that speaks https://csipaus.org/ns/v1.3-beta/storage, DERCapability
    carries vppModesSupported (bit 0: opModStorageTargetW) and DERSettings vppModesEnabled and
    setMinWh, in that namespace, with STO-05's ranges; rtgMaxW / setMaxW are every DER's
    generation together (MUL-03 step d). The server's storage target, in that namespace too,
    drives the charger."""

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            # Every body the utility serves declares the 1.3-beta/storage namespace.
            u.state.tamper(["*"], lambda b: with_csipaus_ns(b, CSIPAUS_NS_V13_BETA))
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:

                def put() -> bool:
                    cap, settings = r.state.der_capability(r.lfdi), r.state.der_settings(r.lfdi)
                    total = sum(r.site.engine.der_ratings.values())  # min(configured, device's)
                    return cap is not None and settings is not None and cap.rtgMaxW.watts == total

                await r.until(put, "DERCapability and DERSettings PUT, with the ratings in force")
                config = r.site.engine.config
                cap, settings = _capability_and_settings(r)
                bodies = _put_bodies(r)
                assert bodies
                for put in bodies:
                    assert b'xmlns:csipaus="' + CSIPAUS_NS_V13_BETA.encode() + b'"' in put
                # STO-02: present; STO-05: vppModes*_set "01" and the ranges.
                assert cap.vppModesSupported is not None
                assert cap.vppModesSupported & VPPModes.STORAGE_TARGET_W
                assert settings.vppModesEnabled is not None
                assert settings.vppModesEnabled & VPPModes.STORAGE_TARGET_W
                assert cap.doeModesSupported is not None
                assert settings.doeModesEnabled is not None
                assert cap.rtgMaxChargeRateW is not None
                assert cap.rtgMaxDischargeRateW is not None
                assert cap.rtgMaxWh is not None
                assert settings.setMaxChargeRateW is not None
                assert settings.setMaxDischargeRateW is not None
                assert settings.setMaxWh is not None
                assert settings.setMinWh is not None
                assert cap.rtgMaxChargeRateW.watts > 0
                assert cap.rtgMaxDischargeRateW.watts > 0
                assert cap.rtgMaxWh.watts > 0
                assert settings.setMaxChargeRateW.watts > 0
                assert settings.setMaxDischargeRateW.watts > 0
                assert 0 < settings.setMaxW.watts <= cap.rtgMaxW.watts
                assert 0 < settings.setMaxWh.watts <= cap.rtgMaxWh.watts
                assert 0 <= settings.setMinWh.watts <= settings.setMaxWh.watts
                # STO-02/05: VA, var and PF present and in range; unconfigured, a unity-PF DER.
                _assert_va_var_pf(cap, settings, va=16_600, var=0, var_neg=0, pf=(1.0, 0.9999))
                charger = config.charger
                assert charger.capacity_wh is not None
                reserve = config.backup_reserve_soc_pct / 100 * charger.capacity_wh
                assert abs(settings.setMinWh.watts - reserve) <= 10
                # MUL-03: the aggregate's rating is the PV's and the charger's together, each
                # the lower of the configured one and the device's own (the Quasar's 7.4 kW).
                assert len(config.ders) > 1
                in_force = r.site.engine.der_ratings
                total = sum(in_force.values())
                assert cap.rtgMaxW.watts == settings.setMaxW.watts == total
                assert cap.rtgMaxDischargeRateW.watts == in_force[charger.der_id]
                # The charge rate too: the Quasar's one max_power (7.4 kW) for both directions.
                charge = r.site.engine.der_charge_ratings[charger.der_id]
                assert cap.rtgMaxChargeRateW.watts == charge < charger.max_charge_w
                # The storage target the 1.3-beta server sends is read (not dropped).
                target = min(2000.0, charger.max_discharge_w)
                base = DERControlBase(opModStorageTargetW=ActivePower.from_watts(target))
                mrid = r.state.add_control(
                    r.program, start=int(r.server_now()), duration=4, base=base
                )
                await r.until(lambda: r.codes(mrid)[:2] == [1, 2], "1 and 2")
                physics = r.site.home.physics
                await r.until(
                    lambda: abs(physics.charger.power_w - target) <= 100, "the EV discharging"
                )

    run(body)


def test_STO_02_a_1_2_server_gets_no_storage_elements(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    """CSIP-AUS 1.2's schema has no vppModes* or setMinWh: a 1.2 session writes none."""

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(
                lambda: None not in (r.state.der_capability(r.lfdi), r.state.der_settings(r.lfdi)),
                "DERCapability and DERSettings PUT",
            )
            cap, settings = _capability_and_settings(r)
            assert cap.doeModesSupported is not None
            assert cap.vppModesSupported is None
            assert settings.vppModesEnabled is None
            assert settings.setMinWh is None
            # The VA / var / PF ratings are plain 2030.5: a 1.2 server gets them too.
            _assert_va_var_pf(cap, settings, va=16_600, var=0, var_neg=0, pf=(1.0, 0.9999))
            for put in _put_bodies(r):
                assert b'xmlns:csipaus="https://csipaus.org/ns"' in put
                assert b"vppModes" not in put
                assert b"setMinWh" not in put

    run(body)


def test_STO_02_STO_05_a_configured_va_var_pf_nameplate_reaches_the_server_in_range(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """Each DER's configured nameplate (the run file's [site.der.<id>]), aggregated: VA and
    var summed, var received written negative, the minimum PFs the smallest; settings =
    ratings, so STO-05's ranges hold. Against a 1.3-beta/storage server, as STO-05 runs."""
    pv, ev = fast_site().ders
    site = replace(
        fast_site(),
        ders=(
            replace(pv, max_va=7_500, max_var=3_000, min_pf_over_excited=0.9),
            replace(
                ev,
                max_va=10_000,
                max_var=4_400,
                max_var_neg=4_000,
                min_pf_over_excited=0.95,
                min_pf_under_excited=0.85,
            ),
        ),
    )

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            u.state.tamper(["*"], lambda b: with_csipaus_ns(b, CSIPAUS_NS_V13_BETA))
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u, site=site) as r:
                await r.until(
                    lambda: (
                        None not in (r.state.der_capability(r.lfdi), r.state.der_settings(r.lfdi))
                    ),
                    "DERCapability and DERSettings PUT",
                )
                cap, settings = _capability_and_settings(r)
                _assert_va_var_pf(
                    cap, settings, va=17_500, var=7_400, var_neg=7_000, pf=(0.9, 0.85)
                )
                for put in _put_bodies(r):
                    assert b"MaxVarNeg><multiplier>0</multiplier><value>-7000</value>" in put

    run(body)
