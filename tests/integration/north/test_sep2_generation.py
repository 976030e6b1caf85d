"""Generation procedures (CSIP-AUS GEN-01 ... GEN-04, GEN-09 ... GEN-13): export and generation
limits, as events and as defaults, reach the simulated home's PV and meter.

The simulated home (``sim/physics.py``) at its start instant, a November afternoon: the PV could
give about 2.7 kW; the household load is pinned here to ``LOAD_W`` so the meter's export is
``PV - load`` while the charger idles (no target in force). Unconstrained, the site exports
about 1.7 kW, so every limit below 1.6 kW binds. The engine's export check
(``core/backfeed.py``) lets the PV make ``export limit + load``; the generation limit caps
the PV itself. Values in force are read from the engine, physical results from the physics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sep2_rig import GatewayRig, export_limit, gateway_rig, held, run

from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import PkiFiles

LOAD_W = 1000.0
TOL_W = 60.0  # meter vs limit: PV limit resolution (0.1 % of 7 kW) plus a load sample's skew
SETTLE_S = 6.0  # a limit reaches the meter well within this (1 s polls, 0.2 s cycles)
UNCONSTRAINED_EXPORT_W = 1400.0  # the PV surplus is ~1.7 kW; anything above this is "free"


def gen_limit(watts: float) -> DERControlBase:
    return DERControlBase(opModGenLimW=ActivePower.from_watts(watts))


def export_w(r: GatewayRig) -> float:
    net: float = r.site.home.physics.meter().net_w
    return -net


def pv_w(r: GatewayRig) -> float:
    power: float = r.site.home.physics.pv.power_w
    return power


def export_in_force(r: GatewayRig) -> float | None:
    return r.site.engine.resolved.controls.export_limit_w


def gen_in_force(r: GatewayRig) -> float | None:
    return r.site.engine.resolved.controls.generation_limit_w


async def start(r: GatewayRig) -> None:
    """Pin the load and wait until the PV runs free (nothing binding yet)."""
    r.site.home.physics.load.constant_w = LOAD_W
    await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "the PV exporting freely")


async def export_held(r: GatewayRig, limit: float, what: str, timeout: float = SETTLE_S) -> None:
    """The export settles at ``limit`` (the PV has the surplus to reach it) and stays there."""
    await held(r, export_w, limit, f"{what}: export", tolerance=TOL_W, timeout=timeout)


def test_GEN_01_export_limit_control_brings_site_export_to_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=5, base=export_limit(0))
            await r.until(lambda: export_in_force(r) == 0.0, "export limit 0 W in the engine")
            await export_held(r, 0.0, "GEN-01")
            # The PV carries the household load and no more; it is not simply switched off.
            assert abs(pv_w(r) - LOAD_W) <= TOL_W
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # The default (5 kW, not binding) is back: the PV runs free again.
            await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "export freed")
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: export_in_force(r) == 5000.0, "back to 5000.0 W", 2)

    run(body)


def test_GEN_02_generation_limit_control_brings_der_output_to_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=5, base=gen_limit(0))
            await r.until(lambda: gen_in_force(r) == 0.0, "generation limit 0 W in the engine")
            await r.until(lambda: pv_w(r) <= 10.0, "the PV at 0 W", SETTLE_S)
            # Nothing generates: the site imports its whole load.
            assert abs(-export_w(r) - LOAD_W) <= TOL_W
            assert abs(r.site.home.physics.charger.power_w) <= 10.0
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "generation freed")
            assert gen_in_force(r) is None

    run(body)


def test_GEN_03_default_export_limit_control_over_it_then_back_then_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=export_limit(500)) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await r.until(lambda: export_in_force(r) == 500.0, "the default in force")
            await export_held(r, 500.0, "default 500 W")
            # A control lifts the limit above the surplus: the PV runs free during it.
            now = r.server_now()
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=4, base=export_limit(5000)
            )
            await r.until(lambda: export_in_force(r) == 5000.0, "the control in force")
            await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "unconstrained")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: export_in_force(r) == 500.0, "back to 500.0 W", 2)
            await export_held(r, 500.0, "default again after the control")
            # The default changes to 0 W: the site stops exporting.
            r.state.set_default(r.program, export_limit(0))
            await r.until(lambda: export_in_force(r) == 0.0, "default 0 W in force")
            await export_held(r, 0.0, "default 0 W")
            # The server removes its default: nothing limits the export any more.
            r.state.set_default(r.program, None)
            await r.until(lambda: export_in_force(r) is None, "no default in force")
            await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "export freed")

    run(body)


def test_GEN_04_default_generation_limit_control_over_it_then_back_then_zero(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=gen_limit(800)) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await r.until(lambda: gen_in_force(r) == 800.0, "the default in force")
            await r.until(lambda: abs(pv_w(r) - 800.0) <= TOL_W, "PV at the default 800 W")
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=4, base=gen_limit(7000))
            await r.until(lambda: gen_in_force(r) == 7000.0, "the control in force")
            await r.until(lambda: export_w(r) > UNCONSTRAINED_EXPORT_W, "PV unconstrained")
            await r.until(lambda: r.codes(mrid) == [1, 2, 3], "1, 2, 3", 10)
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: gen_in_force(r) == 800.0, "back to 800.0 W", 2)
            await r.until(lambda: abs(pv_w(r) - 800.0) <= TOL_W, "PV back at 800 W", SETTLE_S)
            r.state.set_default(r.program, gen_limit(0))
            await r.until(lambda: gen_in_force(r) == 0.0, "default 0 W in force")
            await r.until(lambda: pv_w(r) <= 10.0, "PV at 0 W", SETTLE_S)

    run(body)


def test_GEN_09_cancelled_export_control_falls_back_to_the_default(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db", default=export_limit(500)) as r:
            r.site.home.physics.load.constant_w = LOAD_W
            await export_held(r, 500.0, "the default 500 W")
            now = r.server_now()
            mrid = r.state.add_control(r.program, start=now + 1, duration=600, base=export_limit(0))
            await r.until(lambda: r.codes(mrid) == [1, 2], "1, 2")
            await export_held(r, 0.0, "the control's 0 W")
            r.state.cancel(mrid)
            await r.until(lambda: r.codes(mrid) == [1, 2, 6], "1, 2, 6 after the cancel")
            # An input from the north task may carry a server time a hair older than the
            # last cycle's; the next cycle (0.2 s) resolves at the later time.
            await r.until(lambda: export_in_force(r) == 500.0, "back to 500.0 W", 2)
            await export_held(r, 500.0, "the default after the cancel")

    run(body)


def test_GEN_10_primacy_across_programs_answers_2_3_7(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            low = r.state.add_program("low priority", primacy=10)
            other = r.state.add_program("other", primacy=20)
            now = int(r.server_now())
            # The low-priority program's control runs first, alone, at 1000 W ...
            lo = r.state.add_control(low, start=now + 1, duration=30, base=export_limit(1000))
            # ... the rig's program (primacy 1) overrides it from +5 s for 3 s at 300 W ...
            hi = r.state.add_control(r.program, start=now + 5, duration=3, base=export_limit(300))
            # ... and a control of a lower priority still, wholly inside that window, never runs.
            never = r.state.add_control(other, start=now + 6, duration=1, base=export_limit(1200))
            await r.until(lambda: r.codes(lo) == [1, 2], "2 for the low-priority control")
            await export_held(r, 1000.0, "the low-priority control alone")
            await r.until(lambda: r.codes(hi)[:2] == [1, 2], "2 for the high-priority control")
            await r.until(lambda: r.codes(lo) == [1, 2, 7], "7: superseded by primacy")
            await export_held(r, 300.0, "the high-priority control")
            await r.until(lambda: r.codes(hi) == [1, 2, 3], "3 for the high-priority control", 10)
            await r.until(lambda: r.codes(never) == [1, 7], "1, 7 for the one that never ran")
            # The superseded control does not come back: the default (5 kW) is in force.
            await r.until(lambda: export_in_force(r) == 5000.0, "the default after the winner")
            assert r.codes(lo) == [1, 2, 7]

    run(body)


async def follow_steps(
    r: GatewayRig,
    steps: list[tuple[float, DERControlBase]],
    measured: Callable[[], float],
    in_force: Callable[[], float | None],
    step_s: int = 2,
) -> list[str]:
    """Back-to-back controls, ``step_s`` each from +2 s; each value must be in force and reach
    the home within its slot. Returns the mRIDs."""
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
    return mrids


def test_GEN_11_variable_export_limit_is_followed(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            values = [1000.0, 600.0, 200.0, 800.0, 0.0]
            await follow_steps(
                r,
                [(v, export_limit(v)) for v in values],
                lambda: export_w(r),
                lambda: export_in_force(r),
            )

    run(body, timeout=40)


def test_GEN_12_variable_generation_limit_is_followed(sep2_pki: PkiFiles, tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            values = [2000.0, 1200.0, 400.0, 1600.0, 0.0]
            await follow_steps(
                r,
                [(v, gen_limit(v)) for v in values],
                lambda: pv_w(r),
                lambda: gen_in_force(r),
            )

    run(body, timeout=40)


def test_GEN_13_export_limit_tracked_while_the_load_steps(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await start(r)
            limit = 500.0
            now = r.server_now()
            mrid = r.state.add_control(
                r.program, start=now + 1, duration=60, base=export_limit(limit)
            )
            await export_held(r, limit, "load 1000 W")
            physics = r.site.home.physics
            # Load steps down: 2000 W (PV 2.5 kW), 1000 W, then none (PV 500 W). Each time the
            # export settles back at the limit and stays there.
            for load in (2000.0, 1000.0, 0.0):
                physics.load.constant_w = load
                await export_held(r, limit, f"load {load:g} W")
                assert abs(pv_w(r) - (load + limit)) <= TOL_W
            assert r.codes(mrid) == [1, 2]

    run(body, timeout=40)
