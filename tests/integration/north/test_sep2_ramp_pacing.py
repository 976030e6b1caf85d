"""A setGradW ramp costs a bounded number of Modbus writes per second, and the 2030.5 client is
answered while it runs (ALL-21: Responses in time).

Found against the reference CSIP-AUS server (issue 16): after a DefaultDERControl with setGradW
the engine moved the PV limit in tiny steps, each confirmation of a write producing the next
one (a lower limit is never held back), about 660 write + read-back commands a second, while
the runner's lock kept every north input waiting: no Response for a control posted meanwhile.
Now a ramp steps at most once per ``setpoint_interval_s`` (1 s unless the profile's
``[pacing]`` says otherwise) and a feed yields to waiting inputs after a bounded turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from sep2_rig import GatewayRig, export_limit, gateway_rig, run

from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.north.sep2.pki import PkiFiles

RATE_W_S = 100.0  # the default's ramp rate: ~1.7 kW of export to 200 W in ~15 s
LIMIT_POINT_WRITES_PER_S = 2.0  # the PV's limit register, averaged over the ramp
AUDIT_ROWS_PER_S = 20.0  # every device's, the Responses' and DER reports' included


def _export_w(r: GatewayRig) -> float:
    net: float = r.site.home.physics.meter().net_w
    return -net


def test_ALL_21_a_set_grad_w_ramp_is_paced_and_a_control_posted_meanwhile_is_answered(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.runtime.runner")

    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            r.site.home.physics.load.constant_w = 1000.0
            await r.until(lambda: _export_w(r) > 1400, "the PV exporting freely")
            cycles = r.site.runner.cycles
            await r.until(lambda: r.site.runner.cycles > cycles + 2, "the engine measuring it")
            before = _export_w(r)
            rated = sum(d.max_discharge_w for d in r.site.engine.config.ders)
            grad = round(RATE_W_S / rated * 100 * 100)
            pv = r.site.home.device("der")
            r.state.set_default(r.program, DefaultDERControl("0", export_limit(200), setGradW=grad))
            await r.until(
                lambda: r.site.engine.resolved.controls.export_limit_w == 200, "the default", 8
            )
            started = time.monotonic()
            writes_at_start = pv.writes
            store = r.site.store
            audit_from = store.audit()[-1].id
            await asyncio.sleep(2.0)
            # A control posted while the ramp runs (an import limit: the ramp goes on) is
            # answered: 1 (received) and 2 (started) within a few polls, not after the ramp.
            now = int(r.server_now())
            base = DERControlBase(opModImpLimW=ActivePower.from_watts(20000))
            posted = time.monotonic()
            mrid = r.state.add_control(r.program, start=now + 2, duration=60, base=base)
            await r.until(lambda: r.codes(mrid)[:1] == [1], "1 (received) during the ramp", 5)
            received_s = time.monotonic() - posted
            await r.until(lambda: r.codes(mrid)[:2] == [1, 2], "2 (started) during the ramp", 6)
            expected_s = (before - 200) / RATE_W_S
            assert time.monotonic() - started < expected_s, "the ramp was over before the check"
            await r.until(lambda: _export_w(r) <= 200 + 60, "the limit reached", expected_s + 5)
            elapsed = time.monotonic() - started
            limit_writes = pv.writes_since(started, _limit_point(r))
            per_s = limit_writes / elapsed
            assert per_s <= LIMIT_POINT_WRITES_PER_S, (
                f"{limit_writes} writes of the PV limit in {elapsed:.1f} s "
                f"({per_s:.1f}/s; all writes {pv.writes - writes_at_start})"
            )
            # The audit trail grows by the rows of each written step (~6: the engine's commanded
            # and confirmed, the driver's writing and confirmed for the limit and its enable),
            # not per computed value: the flood wrote ~3,700 rows a second.
            rows = len(store.audit(since_id=audit_from))
            assert rows <= 8 * (pv.writes - writes_at_start) + 40, (rows, pv.writes)
            assert rows / elapsed <= AUDIT_ROWS_PER_S, rows
            # Still a ramp, not a step: it took about as long as the rate says.
            assert elapsed >= 0.7 * expected_s, (elapsed, expected_s)
            assert received_s < 5
            ramps = r.site.engine.ramps
            await r.until(lambda: "export_limit_w" not in ramps.ramping(), "the ramp over", 5)

    run(body, timeout=90)
    # One INFO line when the ramp starts, one when it is over: nothing per step.
    ramps = [r for r in caplog.records if r.getMessage().startswith("ramp of export_limit_w")]
    assert [r.levelno for r in ramps] == [logging.INFO, logging.INFO], ramps
    assert "one step per 1 s" in ramps[0].getMessage()
    assert ramps[1].getMessage() == "ramp of export_limit_w over: 200 W in force"


def _limit_point(r: GatewayRig) -> str:
    """The PV profile's point behind the DER output limit (the ramped setpoint)."""
    profile = r.site.home.device("der").profile
    for role in ("max_discharge_w", "max_discharge_pct", "limit_w", "limit_pct"):
        if role in profile.roles:
            return profile.roles[role].point
    raise AssertionError(f"no limit role in {sorted(profile.roles)}")
