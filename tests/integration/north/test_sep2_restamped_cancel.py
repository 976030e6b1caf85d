"""A cancel or supersede that also changes creationTime (ALL-18, LOA-01 against the reference
server).

The reference CSIP-AUS server (envoy) serves a control's row change time as its creationTime,
so a cancelled control comes back with EventStatus 2 *and* a new creationTime (a superseded
one with 4 and a new creationTime). creationTime and EventStatus are the server's bookkeeping,
not what the event does: the same mRID with only those changed is the same event, cancelled
(6) or superseded (7), never "mRID reused with different content" (253). Both habits are played
(``UtilityState.restamp_on_cancel``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sep2_rig import GatewayRig, export_limit, gateway_rig, run

from gateway.core.controls import Mode
from gateway.north.sep2.pki import PkiFiles


def _export_limit(r: GatewayRig) -> float | None:
    in_force = r.site.engine.schedule.in_force(Mode.EXPORT_LIMIT_W, r.http.time.now())
    return None if in_force.value is None else float(in_force.value)


@pytest.mark.parametrize("restamp", [True, False], ids=["restamped", "kept"])
def test_ALL_18_a_cancel_is_6_and_a_supersede_7_whatever_the_creation_time(
    sep2_pki: PkiFiles, tmp_path: Path, restamp: bool
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            r.state.restamp_on_cancel = restamp
            now = int(r.server_now())
            active = r.state.add_control(
                r.program, start=now + 1, duration=600, base=export_limit(2000)
            )
            old = r.state.add_control(
                r.program, start=now + 120, duration=600, base=export_limit(1000)
            )
            await r.until(lambda: r.codes(active) == [1, 2], "1, 2 for the active control")
            await r.until(lambda: _export_limit(r) == 2000, "the control in force")
            await r.until(lambda: r.codes(old) == [1], "1 for the control to supersede")
            created = r.state.control(active).creation_time
            r.state.cancel(active)
            assert (r.state.control(active).creation_time != created) is restamp
            new = r.state.supersede(old, base=export_limit(1500))
            await r.until(lambda: r.codes(active) == [1, 2, 6], "6 after the cancel")
            await r.until(lambda: _export_limit(r) == 5000, "back to the default")
            await r.until(lambda: r.codes(old) == [1, 7], "7 after the supersede")
            await r.until(lambda: r.codes(new) == [1], "1 for the superseding control")
            await asyncio.sleep(2.0)  # more polls of the same lists: nothing more said
            assert r.codes(active) == [1, 2, 6]
            assert r.codes(old) == [1, 7]
            assert _export_limit(r) == 5000

    run(body)
