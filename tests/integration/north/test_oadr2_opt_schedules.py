"""EiOpt over real sockets (TLS + ECDSA signatures both ways): availability schedules
(QualityLogic P1_2010/2015/2020/2040), an opt tied to an event (E1_1060 "VEN CreateOpt
Qualification"), and a restart with an opt open."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from oadr2_rig import (  # noqa: F401 - oadr2_pki is a fixture
    Oadr2Rig,
    minutes,
    now,
    oadr2_pki,
    oadr2_rig,
    run,
    scripted_vtn,
    soon,
    ven_config,
)

from gateway.core.controls import ControlSet
from gateway.core.island import RelayPosition
from gateway.north.openadr2.config import Availability
from gateway.sim.vtn2 import OptRecord
from gateway.sim.vtn2.pki import Oadr2Pki

ISLAND = "http://utility.example/islanding"
V2H = "http://utility.example/v2h"
DEBOUNCE_S = 0.4
CAPACITY = ("LOAD_CONTROL", "x-loadControlCapacity")


def created(r: Oadr2Rig) -> list[OptRecord]:
    return [o for o in r.vtn.opts if not o.cancelled]


def cancelled(r: Oadr2Rig) -> list[OptRecord]:
    return [o for o in r.vtn.opts if o.cancelled]


def island_refused(r: Oadr2Rig) -> list[str]:
    return r.site.engine.assess(ControlSet(connect=False), r.site.now())


def plug(r: Oadr2Rig, *, connected: bool) -> None:
    r.site.home.physics.charger.ev_connected = connected


def test_P1_2010_P1_2015_an_unplugged_ev_sends_an_open_ended_opt_out_schedule_per_program(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
) -> None:
    availability = Availability({ISLAND: "island", V2H: "discharge"}, debounce_s=DEBOUNCE_S)

    async def body() -> None:
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, availability=availability)
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=config) as r:
                ven_id = await r.registered()
                start = r.site.runner.cycles
                await r.until(lambda: r.site.runner.cycles > start + 4, "a few control cycles")
                assert vtn.opts == []  # available: nothing to say
                unplugged = time.monotonic()
                plug(r, connected=False)
                await r.until(lambda: len(created(r)) == 2, "two optOut schedules")
                assert time.monotonic() - unplugged >= DEBOUNCE_S
                by_context = {o.market_context: o for o in created(r)}
                assert set(by_context) == {ISLAND, V2H}
                for o in by_context.values():
                    assert (o.ven_id, o.opt_type, o.reason) == (
                        ven_id,
                        "optOut",
                        "notParticipating",
                    )
                    assert o.event_id is None
                    [(start, duration)] = o.vavailability
                    assert duration.total_seconds() == 0  # open-ended (P1_2015)
                    assert abs((start - now()).total_seconds()) < 5
                assert len({o.opt_id for o in created(r)}) == 2
                assert r.relay() is RelayPosition.CLOSED  # reporting only: nothing moved
                start = r.site.runner.cycles
                await r.until(lambda: r.site.runner.cycles > start + 5, "more control cycles")
                assert len(vtn.opts) == 2  # said once

    run(body)


def test_P1_2020_a_replugged_ev_cancels_the_schedule_and_a_plug_jiggle_says_nothing(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
) -> None:
    availability = Availability({ISLAND: "island"}, debounce_s=0.8)

    async def body() -> None:
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, availability=availability)
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=config) as r:
                await r.registered()
                plug(r, connected=False)
                await r.until(lambda: bool(island_refused(r)), "the engine sees the EV away")
                plug(r, connected=True)  # back at once: a jiggle
                await r.until(lambda: not island_refused(r), "the engine sees it back")
                start = r.site.runner.cycles
                await r.until(lambda: r.site.runner.cycles > start + 8, "1.6 s of cycles")
                assert vtn.opts == []
                plug(r, connected=False)
                await r.until(lambda: len(created(r)) == 1, "optOut schedule")
                plug(r, connected=True)
                await r.until(lambda: len(cancelled(r)) == 1, "oadrCancelOpt")
                [cancel] = cancelled(r)
                assert cancel.opt_id == created(r)[0].opt_id
                assert cancel.known
                assert vtn.open_opts == {}
                # The VTN records the cancel before its answer reaches the VEN: wait for it.
                await r.until(lambda: r.gateway.opts.open == {}, "the VEN's record settled")

    run(body)


def test_P1_2040_a_bounded_schedule_is_revised_under_the_same_opt_id_then_cancelled(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
) -> None:
    availability = Availability({ISLAND: "island"}, debounce_s=0.2, horizon_s=1.0)

    async def body() -> None:
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, availability=availability)
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=config) as r:
                await r.registered()
                plug(r, connected=False)
                await r.until(lambda: len(created(r)) == 2, "the schedule and its revision")
                first, revised = created(r)
                assert revised.opt_id == first.opt_id
                [(s1, d1)] = first.vavailability
                [(s2, d2)] = revised.vavailability
                assert d1.total_seconds() == d2.total_seconds() == 1.0
                assert (s2 - s1).total_seconds() >= 1.0
                plug(r, connected=True)
                await r.until(lambda: len(cancelled(r)) == 1, "oadrCancelOpt")
                assert cancelled(r)[0].opt_id == first.opt_id

    run(body)


def test_E1_1060_an_opted_in_island_event_the_ev_can_no_longer_carry_gets_a_create_opt(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, availability=Availability(debounce_s=DEBOUNCE_S))
            async with oadr2_rig(tmp_path / "gw.db", vtn=vtn, config=config) as r:
                ven_id = await r.registered()
                eid = vtn.add_event(ven_id, *CAPACITY, [(soon(8), minutes(5), 0.0)])
                r.poll()
                await r.until(lambda: r.opts(eid) == [(0, "optIn", 200)], "optIn")
                assert vtn.opts == []  # the site can carry it: nothing more to say
                plug(r, connected=False)
                await r.until(lambda: len(vtn.opts) == 1, "oadrCreateOpt for the event")
                [opt] = vtn.opts
                assert (opt.opt_type, opt.reason) == ("optOut", "notParticipating")
                assert (opt.event_id, opt.modification_number) == (eid, 0)
                assert opt.vavailability == ()
                assert opt.market_context is None
                # Reporting only: the core keeps the event (it decides what runs at the start).
                mrids = r.gateway.tracker.known[eid].mrids
                for mrid in mrids:
                    record = r.site.engine.schedule.get(mrid)
                    assert record is not None
                    assert record.cancel_status is None
                # A modification is decided afresh: the EV is away, so the oadrCreatedEvent
                # itself says optOut, and no second oadrCreateOpt is needed.
                vtn.modify_event(eid, [(soon(9), minutes(4), 0.0)])
                r.poll()
                await r.until(lambda: (1, "optOut", 200) in r.opts(eid), "optOut of mod 1")
                start = r.site.runner.cycles
                await r.until(lambda: r.site.runner.cycles > start + 5, "1 s of cycles")
                assert len(vtn.opts) == 1

    with caplog.at_level(logging.WARNING, logger="gateway.north.openadr2.adapter"):
        run(body)
    assert any("no EV connected" in m and "event:" in m for m in caplog.messages)


def test_restart_with_an_open_opt_sends_no_second_opt_out_and_cancels_it_later(
    tmp_path: Path,
    oadr2_pki: Oadr2Pki,  # noqa: F811
) -> None:
    availability = Availability({ISLAND: "island"}, debounce_s=0.5)

    async def body() -> None:
        db = tmp_path / "gw.db"
        async with scripted_vtn(oadr2_pki) as vtn:
            config = ven_config(vtn, oadr2_pki, availability=availability)
            async with oadr2_rig(db, vtn=vtn, config=config) as r:
                await r.registered()
                plug(r, connected=False)
                await r.until(lambda: len(created(r)) == 1, "optOut schedule")
                [opt] = created(r)
                # The VTN records it before its answer reaches the VEN, which stores it then.
                await r.until(lambda: ISLAND in r.gateway.opts.open, "the VEN's record")
            # Restart: a new gateway on the same store; the EV is still away.
            async with oadr2_rig(db, vtn=vtn, config=config) as r2:
                plug(r2, connected=False)
                await r2.until(lambda: len(vtn.registrations) == 2, "registered again")
                assert r2.gateway.opts.open[ISLAND].opt_id == opt.opt_id
                start = r2.site.runner.cycles
                await r2.until(lambda: r2.site.runner.cycles > start + 8, "1.6 s of cycles")
                assert created(r2) == [opt]  # no second optOut
                plug(r2, connected=True)
                await r2.until(lambda: len(cancelled(r2)) == 1, "oadrCancelOpt after restart")
                [cancel] = cancelled(r2)
                assert (cancel.opt_id, cancel.known) == (opt.opt_id, True)
                await r2.until(lambda: r2.store.get_state("openadr2.opts") == {}, "stored")

    run(body)
