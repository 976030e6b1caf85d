"""Event procedures (QualityLogic E1_*): events from the scripted VTN reach the home.

Each test runs the whole gateway (``oadr2_rig.py``): the VTN queues, the VEN polls (forced
with ``r.poll()``), the engine decides and the simulated home's relay and charger move.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from oadr2_rig import Oadr2Rig, minutes, oadr2_rig, run, scripted_vtn, soon, ven_config

from gateway.core.controls import ControlSet
from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.messages import EventCancelled, EventReceived, NorthLinkLost
from gateway.sim.vtn2.server import kw

CAPACITY = ("LOAD_CONTROL", "x-loadControlCapacity")
DISPATCH = ("LOAD_DISPATCH", "setpoint")


def received(r: Oadr2Rig) -> list[str]:
    return [i.event.mrid for i in r.inputs if isinstance(i, EventReceived)]


def cancelled(r: Oadr2Rig) -> list[str]:
    return [i.mrid for i in r.inputs if isinstance(i, EventCancelled)]


def export_limit(r: Oadr2Rig) -> float | None:
    return r.site.engine.resolved.controls.export_limit_w


def test_E1_1010_empty_distribute_changes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            seen = r.gateway.ven.distributions
            vtn.touch(ven_id)
            r.poll()
            await r.until(lambda: r.gateway.ven.distributions > seen, "the empty distribution")
            assert vtn.created == []
            assert received(r) == []
            assert r.relay() is RelayPosition.CLOSED

    run(body)


def test_E1_1020_island_event_is_followed_and_opted_in(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            eid = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.0)])
            r.poll()
            await r.until(lambda: r.opts(eid) == [(0, "optIn", 200)], "optIn")
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            physics = r.site.home.physics
            await r.until(
                lambda: physics.charger.mode is ChargerMode.GRID_FORMING, "the EV forms the grid"
            )
            vtn.cancel_event(eid)
            r.poll()
            await r.until(lambda: r.opts(eid)[-1] == (1, "optIn", 200), "cancel acknowledged")
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "the relay recloses")
            assert cancelled(r) == received(r)

    run(body)


def test_E1_1025_load_dispatch_kw_is_an_export_limit(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            physics = r.site.home.physics
            await r.until(lambda: physics.meter().net_w < -1000, "the home exporting > 1 kW")
            eid = vtn.add_event(
                ven_id, *DISPATCH, [(soon(), minutes(5), -0.5)], measurement=kw(), priority=1
            )
            r.poll()
            await r.until(lambda: export_limit(r) == 500.0, "export limit 0.5 kW in force")
            await r.until(lambda: physics.meter().net_w >= -550, "export held to 0.5 kW")
            assert r.opts(eid) == [(0, "optIn", 200)]
            event = next(i.event for i in r.inputs if isinstance(i, EventReceived))
            assert event.primacy == 1
            assert event.program == "http://sim.example/dr"

    run(body)


def test_E1_1030_modified_event_replaces_the_old_intervals(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            start = soon()
            eid = vtn.add_event(ven_id, *DISPATCH, [(start, minutes(5), -2.0)], measurement=kw())
            r.poll()
            await r.until(lambda: export_limit(r) == 2000.0, "2 kW in force")
            assert vtn.modify_event(eid, [(start, minutes(5), -1.0)]) == 1
            r.poll()
            await r.until(lambda: export_limit(r) == 1000.0, "1 kW in force")
            # The answer goes out on its own task, after the engine has the event.
            await r.until(lambda: len(r.opts(eid)) >= 2, "the answer to modification 1")
            assert r.opts(eid) == [(0, "optIn", 200), (1, "optIn", 200)]
            first, second = received(r)
            assert cancelled(r) == [first]
            assert first != second

    run(body)


def test_E1_1040_two_events_in_one_distribute_are_both_opted_in(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            a = vtn.add_event(ven_id, *DISPATCH, [(soon(), minutes(5), -3.0)], measurement=kw())
            b = vtn.add_event(ven_id, "CHARGE_STATE", "setpoint", [(soon(), minutes(5), 90.0)])
            r.poll()
            await r.until(lambda: len(vtn.created) == 2, "two eventResponses")
            assert r.opts(a) == [(0, "optIn", 200)]
            assert r.opts(b) == [(0, "optIn", 200)]
            assert vtn.created[0].message == vtn.created[1].message  # one oadrCreatedEvent
            controls = r.site.engine.resolved.controls
            assert controls.export_limit_w == 3000.0
            await r.until(
                lambda: r.site.engine.resolved.controls.soc_target_pct == 90.0, "SoC target 90 %"
            )

    run(body)


def test_E1_opt_out_when_the_site_cannot_island(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            r.site.home.physics.charger.ev_connected = False
            await r.until(
                lambda: bool(r.site.engine.assess(ControlSet(connect=False), r.site.now())),
                "the engine sees the EV unplugged",
            )
            eid = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.0)])
            r.poll()
            await r.until(lambda: r.opts(eid) == [(0, "optOut", 200)], "optOut")
            assert "no EV" in r.gateway.tracker.known[eid].reason
            assert received(r) == []
            assert r.relay() is RelayPosition.CLOSED

    run(body)


def test_E1_absurd_and_past_events_are_opted_out_with_nothing_in_force(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            half = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.5)])
            huge = vtn.add_event(ven_id, *DISPATCH, [(soon(), minutes(5), -5e9)], measurement=kw())
            past = vtn.add_event(ven_id, *DISPATCH, [(soon(-3600), minutes(5), -1.0)])
            soc = vtn.add_event(ven_id, "CHARGE_STATE", "setpoint", [(soon(), minutes(5), 150.0)])
            r.poll()
            await r.until(lambda: len(vtn.created) >= 3, "the answers")
            for eid in (half, huge, soc):
                assert r.opts(eid) == [(0, "optOut", 200)], eid
            # A completed event needs no answer (and gets none); it is never put in force.
            assert r.opts(past) == []
            assert received(r) == []
            assert export_limit(r) is None
            known = r.gateway.tracker.known
            assert "0.5" in known[half].reason
            assert "absurd" in known[huge].reason
            assert "0-100" in known[soc].reason

    run(body)


def test_E1_1070_unsupported_signal_is_answered_460_and_opted_out(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            price = vtn.add_event(ven_id, "ELECTRICITY_PRICE", "price", [(soon(), minutes(5), 0.3)])
            x = vtn.add_event(ven_id, "x-islandCommand", "level", [(soon(), minutes(5), 1.0)])
            r.poll()
            await r.until(lambda: len(vtn.created) == 2, "two answers")
            assert r.opts(price) == [(0, "optOut", 460)]
            assert r.opts(x) == [(0, "optOut", 460)]
            assert received(r) == []

    run(body)


def test_implied_cancellation_ends_an_event_that_vanishes_from_the_list(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            a = vtn.add_event(ven_id, *DISPATCH, [(soon(), minutes(5), -2.0)], measurement=kw())
            b = vtn.add_event(ven_id, *CAPACITY, [(soon(), minutes(5), 0.0)])
            r.poll()
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "island")
            await r.until(lambda: export_limit(r) == 2000.0, "export limit")
            vtn.drop_event(b)  # the list still holds a
            r.poll()
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "reconnected")
            assert export_limit(r) == 2000.0
            vtn.drop_event(a)  # the list is now empty
            r.poll()
            await r.until(lambda: export_limit(r) is None, "export limit lifted")
            assert sorted(cancelled(r)) == sorted(received(r))
            assert r.gateway.tracker.known == {}

    run(body)


def test_E1_1020_the_end_of_an_island_event_reconnects(tmp_path: Path) -> None:
    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            vtn.add_event(ven_id, *CAPACITY, [(soon(), timedelta(seconds=1.5), 0.0)])
            r.poll()
            await r.until(lambda: r.relay() is RelayPosition.OPEN, "the relay opens")
            await r.until(lambda: r.relay() is RelayPosition.CLOSED, "reclosed at the end")
            assert cancelled(r) == []  # the end itself, no cancellation

    run(body)


def test_a_vtn_that_goes_away_is_a_lost_link_and_changes_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with scripted_vtn() as vtn:
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r:
                ven_id = await r.registered()
                vtn.add_event(ven_id, *DISPATCH, [(soon(), minutes(5), -2.0)], measurement=kw())
                r.poll()
                await r.until(lambda: export_limit(r) == 2000.0, "export limit in force")
                await vtn.stop()
                r.poll()
                await r.until(
                    lambda: any(isinstance(i, NorthLinkLost) for i in r.inputs), "link lost"
                )
                assert export_limit(r) == 2000.0  # the event stays in force until it ends
                await vtn.start()  # so that the rig can stop it

    run(body)


def test_E1_1080_a_distribution_under_a_case_swapped_vtn_id_is_refused_452(
    tmp_path: Path,
) -> None:
    """IDs are case-sensitive: an oadrDistributeEvent naming "vtn_sim" when we registered with
    "VTN_SIM" is not our VTN's. The VEN answers 452 (invalid ID) and takes nothing from it; the
    next distribution under the right ID is followed."""

    async def body() -> None:
        async with (
            scripted_vtn() as vtn,
            oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=ven_config(vtn)) as r,
        ):
            ven_id = await r.registered()
            vtn.swap_vtn_id_case_next()
            eid = vtn.add_event(ven_id, *DISPATCH, [(soon(), minutes(5), -2.0)], measurement=kw())
            r.poll()
            await r.until(lambda: len(r.opts(eid)) == 1, "the VEN's answer")
            assert r.opts(eid) == [(0, "optOut", 452)]
            assert vtn.responses(eid)[0].message_code == 452
            assert export_limit(r) is None
            assert received(r) == []
            vtn.touch(ven_id)  # the same list again, under the right vtnID
            r.poll()
            await r.until(lambda: export_limit(r) == 2000.0, "2 kW in force")
            await r.until(lambda: len(r.opts(eid)) >= 2, "the answer to the good copy")
            assert r.opts(eid)[-1] == (0, "optIn", 200)

    run(body)
