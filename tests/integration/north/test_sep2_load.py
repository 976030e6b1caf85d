"""Load procedures (CSIP-AUS LOA-01 ... LOA-04, LOA-09 ... LOA-13, ALT-LOA-13): import and load
limits, as events and as defaults, reach the EV charger's charging and the meter.

The site's load is the V2H charger charging the EV: the installer's site policy asks for
``WANT_CHARGE_W`` (the lowest-precedence source, ``core/controls.Source``), so the charger
charges at that rate until a utility limit binds. The household load is pinned to ``LOAD_W``;
the PV gives about 2.7 kW at the simulated home's start instant, so unconstrained the site
imports about ``LOAD_W + 7000 - 2700`` W. The engine's import check (``core/backfeed.py``)
leaves the charger ``import limit - load + PV output``; the load limit caps the charging itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sep2_rig import GatewayRig, fast_site, gateway_rig, held, run

from gateway.core.controls import ControlSet
from gateway.core.site import SiteConfig
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles

WANT_CHARGE_W = 7000.0
LOAD_W = 2000.0
TOL_W = 80.0  # meter vs limit: the charger's 50 W deadband plus a sample's skew
SETTLE_S = 8.0  # the charger ramps at 2 kW/s
UNCONSTRAINED_CHARGE_W = 6500.0


def charging_site() -> SiteConfig:
    return replace(fast_site(), site_policy=ControlSet(target_w=-WANT_CHARGE_W))


def import_limit(watts: float) -> DERControlBase:
    return DERControlBase(opModImpLimW=ActivePower.from_watts(watts))


def load_limit(watts: float) -> DERControlBase:
    return DERControlBase(opModLoadLimW=ActivePower.from_watts(watts))


def import_w(r: GatewayRig) -> float:
    net: float = r.site.home.physics.meter().net_w
    return net


def charge_w(r: GatewayRig) -> float:
    power: float = r.site.home.physics.charger.power_w
    return -power


def pv_w(r: GatewayRig) -> float:
    power: float = r.site.home.physics.pv.power_w
    return power


def import_in_force(r: GatewayRig) -> float | None:
    return r.site.engine.resolved.controls.import_limit_w


def load_in_force(r: GatewayRig) -> float | None:
    return r.site.engine.resolved.controls.load_limit_w


async def charging(r: GatewayRig) -> None:
    r.site.home.physics.load.constant_w = LOAD_W
    await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "the EV charging freely")


async def import_held(r: GatewayRig, limit: float, what: str, timeout: float = SETTLE_S) -> None:
    """The import settles at ``limit`` (the charger has the room to reach it) and stays."""
    await held(r, import_w, limit, f"{what}: import", tolerance=TOL_W, timeout=timeout)


async def charge_held(r: GatewayRig, watts: float, what: str, timeout: float = SETTLE_S) -> None:
    await r.until(
        lambda: abs(charge_w(r) - watts) <= TOL_W, f"{what}: charging {watts:g} W", timeout
    )
    for _ in range(5):
        await asyncio.sleep(0.1)
        assert charge_w(r) <= watts + TOL_W, f"{what}: charging {charge_w(r):.0f} W > {watts:g} W"


def test_LOA_01_import_limit_control_brings_site_import_to_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=6, base=import_limit(0))
            await r.until(lambda: import_in_force(r) == 0.0, "import limit 0 W in the engine")
            await import_held(r, 0.0, "LOA-01")
            # The EV charges from the PV surplus only.
            assert abs(charge_w(r) - (pv_w(r) - LOAD_W)) <= TOL_W
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "charging freed")
            assert import_in_force(r) is None

    run(body)


def test_LOA_02_load_limit_control_brings_charging_to_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=6, base=load_limit(0))
            await r.until(lambda: load_in_force(r) == 0.0, "load limit 0 W in the engine")
            await charge_held(r, 0.0, "LOA-02")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "charging freed")

    run(body)


def test_LOA_03_default_import_limit_control_over_it_then_back_then_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(
            sep2_pki, tmp_path / "gw.db", site=charging_site(), default=import_limit(3000)
        ) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await r.until(lambda: import_in_force(r) == 3000.0, "the default in force")
            await import_held(r, 3000.0, "default 3000 W")
            now = r.server_now()
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=5, base=import_limit(20000)
            )
            await r.until(lambda: import_in_force(r) == 20000.0, "the control in force")
            await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "unconstrained")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: import_in_force(r) == 3000.0, "back to 3000.0 W", 2)
            await import_held(r, 3000.0, "default again after the control")
            r.state.set_default(r.program, import_limit(0))
            await r.until(lambda: import_in_force(r) == 0.0, "default 0 W in force")
            await import_held(r, 0.0, "default 0 W")

    run(body)


def test_LOA_04_default_load_limit_control_over_it_then_back_then_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(
            sep2_pki, tmp_path / "gw.db", site=charging_site(), default=load_limit(2000)
        ) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await r.until(lambda: load_in_force(r) == 2000.0, "the default in force")
            await charge_held(r, 2000.0, "default 2000 W")
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=5, base=load_limit(9600))
            await r.until(lambda: load_in_force(r) == 9600.0, "the control in force")
            await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "unconstrained")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: load_in_force(r) == 2000.0, "back to 2000.0 W", 2)
            await charge_held(r, 2000.0, "default again after the control")
            r.state.set_default(r.program, load_limit(0))
            await r.until(lambda: load_in_force(r) == 0.0, "default 0 W in force")
            await charge_held(r, 0.0, "default 0 W")

    run(body)


def test_LOA_09_cancelled_import_control_falls_back_to_the_default(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(
            sep2_pki, tmp_path / "gw.db", site=charging_site(), default=import_limit(3000)
        ) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await import_held(r, 3000.0, "the default 3000 W")
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=600, base=import_limit(0))
            await r.until(lambda: r.codes(mrid) == [1, 2], "1, 2")
            await import_held(r, 0.0, "the control's 0 W")
            r.state.cancel(mrid)
            await r.until(lambda: r.codes(mrid) == [1, 2, 6], "1, 2, 6 after the cancel")
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: import_in_force(r) == 3000.0, "back to 3000.0 W", 2)
            await import_held(r, 3000.0, "the default after the cancel")

    run(body)


def test_LOA_10_primacy_across_programs_answers_2_3_7(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            low = r.state.add_program("low priority", primacy=10)
            other = r.state.add_program("other", primacy=20)
            now = int(r.server_now())
            lo = r.state.add_control(low, start=now + 1, duration=30, base=import_limit(4000))
            hi = r.state.add_control(r.program, start=now + 6, duration=4, base=import_limit(1000))
            never = r.state.add_control(other, start=now + 7, duration=1, base=load_limit(500))
            await r.until(lambda: r.codes(lo) == [1, 2], "2 for the low-priority control")
            await import_held(r, 4000.0, "the low-priority control alone")
            await r.until(lambda: r.codes(hi)[:2] == [1, 2], "2 for the high-priority control")
            await r.until(lambda: r.codes(lo) == [1, 2, 7], "7: superseded by primacy")
            await import_held(r, 1000.0, "the high-priority control")
            # A lower-priority control of another mode (load limit) is not superseded by it.
            await r.until(lambda: r.codes(never) == [1, 2, 3], "1, 2, 3 for the load limit", 10)
            await r.until(lambda: r.codes(hi) == [1, 2, 3], "3 for the high-priority control", 10)
            await r.until(lambda: import_in_force(r) is None, "nothing after the winner")
            await r.until(lambda: charge_w(r) > UNCONSTRAINED_CHARGE_W, "charging freed")
            assert r.codes(lo) == [1, 2, 7]

    run(body, timeout=40)


async def follow_steps(
    r: GatewayRig,
    steps: list[tuple[float, DERControlBase]],
    measured: Callable[[], float],
    in_force: Callable[[], float | None],
    step_s: int = 3,
) -> None:
    """Back-to-back controls, ``step_s`` each from +2 s; each value must be in force and reach
    the home within its slot; then 1, 2, 3 for each."""
    now = int(r.server_now())
    mrids = [
        r.state.add_control(r.program, start=now + 2 + i * step_s, duration=step_s, base=base)
        for i, (_, base) in enumerate(steps)
    ]
    for i, (value, _) in enumerate(steps):
        await r.until(lambda v=value: in_force() == v, f"step {i}: {value:g} W in force", 8)
        await r.until(
            lambda v=value: abs(measured() - v) <= TOL_W,
            f"step {i}: the home at {value:g} W",
            step_s + 0.5,
        )
    for mrid in mrids:
        await r.until(lambda m=mrid: r.codes(m) == [1, 2, 3], f"1, 2, 3 for {mrid}", 8)


def test_LOA_11_variable_import_limit_is_followed(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            values = [4000.0, 2500.0, 1000.0, 3000.0, 0.0]
            await follow_steps(
                r,
                [(v, import_limit(v)) for v in values],
                lambda: import_w(r),
                lambda: import_in_force(r),
            )

    run(body, timeout=40)


def test_LOA_12_variable_load_limit_is_followed(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            values = [5000.0, 3000.0, 1000.0, 4000.0, 0.0]
            await follow_steps(
                r,
                [(v, load_limit(v)) for v in values],
                lambda: charge_w(r),
                lambda: load_in_force(r),
            )

    run(body, timeout=40)


async def track_import(r: GatewayRig, limit: float) -> None:
    now = r.server_now()
    mrid = r.state.add_control(r.program, start=now + 1, duration=60, base=import_limit(limit))
    await import_held(r, limit, f"load {LOAD_W:g} W")
    physics = r.site.home.physics
    # The household load steps down; the charger takes up what it frees, the import holds.
    for load in (3000.0, 1500.0, 0.0):
        physics.load.constant_w = load
        await import_held(r, limit, f"load {load:g} W")
        assert abs(charge_w(r) - (limit - load + pv_w(r))) <= TOL_W
    assert r.codes(mrid) == [1, 2]


def test_LOA_13_import_limit_tracked_while_the_load_steps(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            await track_import(r, 1000.0)

    run(body, timeout=40)


def test_ALT_LOA_13_evse_import_limit_tracked_while_the_load_steps(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", site=charging_site()) as r:
            await charging(r)
            # The EVSE alternate: the same limit raised by 20 %.
            await track_import(r, 1200.0)

    run(body, timeout=40)
