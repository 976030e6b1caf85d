"""The session: what a walk, a poll or a notification changes for the engine, and poll timing."""

from __future__ import annotations

import random
from dataclasses import replace

from gateway.core.messages import (
    DefaultsReceived,
    EventCancelled,
    EventReceived,
    EventRejected,
    ProgramsRanked,
)
from gateway.north.sep2.model import (
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    EventStatus,
)
from gateway.north.sep2.resources import (
    DERProgram,
    DeviceCapability,
    EndDevice,
    Link,
    ListLink,
    Time,
)
from gateway.north.sep2.session import (
    POST,
    TIME,
    WALK,
    FirstWalkRetry,
    Session,
    Task,
    TaskKind,
)
from gateway.north.sep2.timebase import ServerClock
from gateway.north.sep2.walk import Discovery, ProgramView, UnreadableControl

T0 = 1_764_072_000
P1, P2 = f"{11:032X}", f"{12:032X}"


def control(n: int, *, start: int = T0 + 600, limit: int = 5000, status: int = 0) -> DERControl:
    return DERControl(
        mRID=f"{100 + n:032X}",
        creationTime=T0,
        EventStatus=EventStatus(currentStatus=status, dateTime=T0),
        interval=DateTimeInterval(duration=1800, start=start),
        DERControlBase=DERControlBase(opModExpLimW=ActivePower(limit)),
        responseRequired=3,
        replyTo="/rsps/1/rsp",
    )


def program(mrid: str, primacy: int, href: str) -> DERProgram:
    return DERProgram(
        href=href,
        mRID=mrid,
        primacy=primacy,
        DefaultDERControlLink=Link(f"{href}/dderc"),
        DERControlListLink=ListLink(f"{href}/derc"),
    )


DEFAULT = DefaultDERControl(
    mRID=f"{50:032X}", DERControlBase=DERControlBase(opModExpLimW=ActivePower(1500))
)
DCAP = DeviceCapability(
    href="/dcap", pollRate=300, TimeLink=Link("/tm"), EndDeviceListLink=ListLink("/edev")
)
EDEV = EndDevice(
    href="/edev/1",
    sFDI=167261211391,
    changedTime=T0,
    postRate=60,
    FunctionSetAssignmentsListLink=ListLink("/edev/1/fsa"),
)
TM = Time(currentTime=T0, dstEndTime=0, dstOffset=0, dstStartTime=0, quality=4, tzOffset=0)


def discovery(*views: ProgramView, rates: dict[str, int] | None = None) -> Discovery:
    return Discovery(
        dcap=DCAP,
        time=TM,
        end_device=EDEV,
        registration=None,
        fsas=(),
        programs=views,
        poll_rates=rates if rates is not None else {"/dcap": 300, "/edev/1/fsa/1/derp": 60},
    )


def view(prog: DERProgram, *controls: DERControl, default: bool = True) -> ProgramView:
    return ProgramView(prog, DEFAULT if default else None, controls, "/edev/1/fsa/1/derp")


PROG1 = program(P1, 1, "/derp/1")
PROG2 = program(P2, 2, "/derp/2")


def test_first_walk_offers_defaults_and_every_control() -> None:
    s = Session()
    up = s.discovered(discovery(view(PROG1, control(1), control(2))), at=T0, t=0)
    kinds = [type(i) for i in up.inputs]
    assert kinds == [DefaultsReceived, EventReceived, EventReceived]
    first = up.inputs[1]
    assert isinstance(first, EventReceived)
    assert first.event.program == P1
    assert first.event.primacy == 1
    assert first.event.controls.export_limit_w == 5000
    assert first.event.reply_to == "/rsps/1/rsp"
    assert first.event.response_required == 3


def test_unchanged_re_walk_offers_nothing() -> None:
    s = Session()
    d = discovery(view(PROG1, control(1)))
    s.discovered(d, at=T0, t=0)
    assert s.discovered(d, at=T0 + 60, t=60).inputs == []


def test_a_relocated_program_is_the_same_program() -> None:
    """P-04: new hrefs, same mRID: nothing withdrawn, nothing re-offered."""
    s = Session()
    s.discovered(discovery(view(PROG1, control(1))), at=T0, t=0)
    moved = program(P1, 1, "/r2/derp/1")
    assert s.discovered(discovery(view(moved, control(1))), at=T0 + 5, t=5).inputs == []


def test_status_change_is_offered_again_so_the_engine_sees_the_cancellation() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1, control(1))), at=T0, t=0)
    up = s.program_polled(view(PROG1, control(1, status=2)), at=T0 + 30)
    assert len(up.inputs) == 1
    got = up.inputs[0]
    assert isinstance(got, EventReceived)
    assert int(got.event.status) == 2


def test_a_control_dropped_before_its_end_is_cancelled_and_after_its_end_forgotten() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1, control(1), control(2, start=T0 - 3600))), at=T0, t=0)
    up = s.program_polled(view(PROG1), at=T0 + 10)
    assert up.inputs == [EventCancelled(T0 + 10, control(1).mRID)]  # control 2 ended at T0-1800
    assert "no longer listed" in up.notes[0]


def test_a_removed_program_withdraws_its_default_and_cancels_its_events() -> None:
    """P-02: the FSA (and with it the program) is no longer assigned."""
    s = Session()
    s.discovered(discovery(view(PROG1, control(1)), view(PROG2)), at=T0, t=0)
    up = s.discovered(discovery(view(PROG2)), at=T0 + 60, t=60)
    assert DefaultsReceived(T0 + 60, P1, 1, None) in up.inputs
    assert EventCancelled(T0 + 60, control(1).mRID) in up.inputs


def test_default_change_and_withdrawal() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1)), at=T0, t=0)
    other = replace(DEFAULT, DERControlBase=DERControlBase(opModExpLimW=ActivePower(2000)))
    up = s.program_polled(ProgramView(PROG1, other, ()), at=T0 + 1)
    assert len(up.inputs) == 1
    changed = up.inputs[0]
    assert isinstance(changed, DefaultsReceived)
    assert changed.controls is not None
    assert changed.controls.export_limit_w == 2000
    up = s.program_polled(view(PROG1, default=False), at=T0 + 2)
    assert up.inputs == [DefaultsReceived(T0 + 2, P1, 1, None)]


def test_notification_applies_the_carried_list_to_its_program() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1)), at=T0, t=0)
    up = s.notified("/derp/1/derc", (control(7),), at=T0 + 3)
    assert [type(i) for i in up.inputs] == [EventReceived]
    assert s.notified("/elsewhere", (control(8),), at=T0 + 4).inputs == []


def test_poll_plan_follows_the_servers_rates() -> None:
    s = Session()
    rates = {"/dcap": 300, "/edev/1/fsa": 120, "/edev/1/fsa/1/derp": 60, "/tm": 900}
    s.discovered(discovery(view(PROG1), rates=rates), at=T0, t=1000)
    s.done(WALK, 1000)  # as the client does after every task
    program_task = Task(TaskKind.PROGRAM, P1)
    assert s.rate(WALK) == 120  # min over the walk's resources
    assert s.rate(program_task) == 60  # from its DERProgramList
    assert s.rate(TIME) == 900
    assert s.rate(POST) == 60  # EndDevice.postRate
    assert s.due(1000) == [POST]  # telemetry at once; polls after one period
    assert set(s.due(1060)) == {POST, program_task}
    assert WALK not in s.due(1119.9)
    assert WALK in s.due(1120)  # one walk period after the walk, not two


def test_a_post_with_nothing_to_send_yet_is_retried_soon_then_keeps_its_rate() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1), rates={"/dcap": 300}), at=T0, t=1000)
    assert POST in s.due(1000)
    s.retry(POST, 1000, 1.0)  # no site snapshot yet: again in a second, not a postRate later
    assert POST not in s.due(1000.9)
    assert POST in s.due(1001)
    s.done(POST, 1001)
    assert POST not in s.due(1060)
    assert POST in s.due(1061)  # and from then on at the EndDevice's postRate


def test_what_a_walk_read_is_not_polled_again_in_the_same_period() -> None:
    # Every rate 60 s: each walk reads Time and the program's lists, so their own polls fall
    # a period after the walk, never with it (they were GET twice every period, which
    # cactus' all-polls-at-correct-time counts as over-polling).
    s = Session()
    rates = {"/dcap": 60, "/edev/1/fsa": 60, "/edev/1/fsa/1/derp": 60, "/tm": 60}
    program_task = Task(TaskKind.PROGRAM, P1)
    s.discovered(discovery(view(PROG1), rates=rates), at=T0, t=0)
    s.done(WALK, 0)
    for t in (60, 120, 180):
        assert WALK in s.due(t)
        s.discovered(discovery(view(PROG1), rates=rates), at=T0 + t, t=t)  # the walk
        s.done(WALK, t)
        assert program_task not in s.due(t)
        assert TIME not in s.due(t)
        assert program_task not in s.due(t + 59.9)


def test_a_derc_list_poll_rate_wins_over_its_parent() -> None:
    s = Session()
    rates = {"/dcap": 300, "/edev/1/fsa/1/derp": 60, "/derp/1/derc": 15}
    s.discovered(discovery(view(PROG1), rates=rates), at=T0, t=0)
    assert s.rate(Task(TaskKind.PROGRAM, P1)) == 15


def test_polls_do_not_drift_and_a_late_poll_restarts_the_period() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1)), at=T0, t=0)
    task = Task(TaskKind.PROGRAM, P1)
    s.done(task, 61.5)  # ran 1.5 s late
    assert task not in s.due(119.9)
    assert task in s.due(120)
    s.done(task, 120)
    s.done(task, 400)  # ran far too late: next period from now
    assert task not in s.due(459)
    assert task in s.due(460)


def test_lost_forces_a_walk_now_and_keeps_what_was_offered() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1, control(1))), at=T0, t=0)
    s.lost(5)
    assert s.due(5) == [WALK]
    assert s.discovered(discovery(view(PROG1, control(1))), at=T0 + 6, t=6).inputs == []


def test_server_clock_offset_uses_the_round_trip_midpoint() -> None:
    clock = ServerClock().update(replace(TM, currentTime=T0), sent=100.0, received=100.2)
    assert clock.offset_s == T0 + 0.5 - 100.1
    assert clock.server(100.1) == T0 + 0.5
    slow = clock.update(replace(TM, currentTime=T0 + 99), sent=200.0, received=210.0)
    assert slow is clock  # a 10 s round trip does not move a set offset


def test_an_unreadable_control_is_rejected_once_and_its_list_still_counts() -> None:
    bad = UnreadableControl(
        mRID="AB" * 16, replyTo="/rsps/1/rsp", responseRequired=3, reason="opModExpLimW < 0"
    )
    s = Session()
    v = replace(view(PROG1, control(1)), unreadable=(bad,))
    up = s.discovered(discovery(v), at=T0, t=0)
    rejected = [i for i in up.inputs if isinstance(i, EventRejected)]
    assert len(rejected) == 1
    assert rejected[0].event.mrid == "AB" * 16
    assert rejected[0].event.reply_to == "/rsps/1/rsp"
    assert rejected[0].event.controls.is_empty()
    assert any(isinstance(i, EventReceived) for i in up.inputs)  # control 1 still offered
    assert [w for w in up.warnings if "AB" * 16 in w and "253" in w and "opModExpLimW" in w]
    again = s.program_polled(v, at=T0 + 1)
    assert again.inputs == []


def test_a_control_without_a_readable_mrid_is_only_logged() -> None:
    bad = UnreadableControl(mRID=None, replyTo=None, responseRequired=0, reason="garbage")
    s = Session()
    up = s.discovered(discovery(replace(view(PROG1), unreadable=(bad,))), at=T0, t=0)
    assert not any(isinstance(i, EventRejected) for i in up.inputs)
    assert any("garbage" in w for w in up.warnings)  # logged at WARNING, not INFO


def test_a_primacy_swap_is_one_input_and_its_controls_are_not_re_offered() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1, control(1)), view(PROG2, control(2))), at=T0, t=0)
    swapped = (
        view(replace(PROG1, primacy=2), control(1)),
        view(replace(PROG2, primacy=1), control(2)),
    )
    up = s.discovered(discovery(*swapped), at=T0 + 5, t=5)
    ranked = [i for i in up.inputs if isinstance(i, ProgramsRanked)]
    assert ranked == [ProgramsRanked(T0 + 5, {P1: 2, P2: 1})]
    assert not any(isinstance(i, EventReceived) for i in up.inputs)


def test_a_failed_first_walk_backs_off_from_one_second_to_a_minute_not_the_poll_rate() -> None:
    s = Session(first_walk=FirstWalkRetry(jitter=0.0))
    s.start(0)
    assert s.due(0) == [WALK]
    waits = [s.walk_failed(t) for t in range(8)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]  # not the schema's 900 s
    assert s.due(7 + 59.9) == []
    assert s.due(7 + 60) == [WALK]


def test_the_first_walk_back_off_has_jitter_within_its_bounds() -> None:
    s = Session(rng=random.Random(1))
    s.start(0)
    waits = [s.walk_failed(0) for _ in range(10)]
    nominal = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert all(0.8 * n <= w <= 1.2 * n for w, n in zip(waits, nominal, strict=True)), waits
    assert len({round(w / n, 6) for w, n in zip(waits, nominal, strict=True)}) > 1


def test_once_a_walk_completed_a_failed_walk_waits_for_the_walk_rate() -> None:
    s = Session(first_walk=FirstWalkRetry(jitter=0.0))
    s.start(0)
    assert s.walk_failed(0) == 1
    assert s.walk_failed(1) == 2
    s.discovered(discovery(view(PROG1), rates={"/dcap": 300}), at=T0, t=3)
    s.done(WALK, 3)
    assert s.walk_failed(303) == 300  # the server's rate rules now
    s.lost(400)  # hrefs no longer trusted: walk now, and a failure still waits the rate
    assert s.walk_failed(400) == 300


def test_telemetry_follows_the_post_rate_of_the_mirrors_when_the_end_device_has_none() -> None:
    """ALL-10 against the reference server: postRate on the MirrorUsagePoints only."""
    s = Session()
    found = replace(discovery(view(PROG1)), end_device=replace(EDEV, postRate=None))
    s.discovered(found, at=T0, t=1000)
    assert s.rate(POST) == 900  # nothing said yet: the schema's default
    s.done(POST, 1000)
    s.mirrors_rated({"site": 60, "der": 120}, 1001)
    assert s.rate(POST) == 60  # the smallest
    assert POST in s.due(1061)  # a fresh period from the read, not 900 s after the last post
    s.discovered(found, at=T0, t=1100)  # a later walk keeps the mirrors' rate
    assert s.rate(POST) == 60
    assert s.post_rates() == (None, {"site": 60, "der": 120})


def test_the_end_device_post_rate_and_the_mirrors_the_smallest_wins() -> None:
    s = Session()
    s.discovered(discovery(view(PROG1)), at=T0, t=1000)  # EndDevice.postRate 60
    s.mirrors_rated({"site": 300}, 1001)
    assert s.rate(POST) == 60
    s.mirrors_rated({"site": 30}, 1002)
    assert s.rate(POST) == 30
