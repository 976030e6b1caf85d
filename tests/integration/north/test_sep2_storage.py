"""CSIP-AUS storage (v1.3-beta/storage): ``opModStorageTargetW`` drives the EV charger.

The storage target is the V2H charger's setpoint (positive = discharge), composed with the
site's limits like any other: the export limit still caps what leaves the site.
"""

from __future__ import annotations

from pathlib import Path

from sep2_rig import fast_site, gateway_rig, run

from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles


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
