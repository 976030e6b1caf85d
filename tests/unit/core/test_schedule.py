"""Example tests for the event schedule: one per rule of sep2.md §5.3/§5.4, named after it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.schedule import (
    Event,
    EventRecord,
    EventStatus,
    Lifecycle,
    ResponseCode,
    ResponseDue,
    Schedule,
    draw_with,
    should_post,
)
from gateway.core.units import MRID

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
EXP = Mode.EXPORT_LIMIT_W
IMP = Mode.IMPORT_LIMIT_W
R = ResponseCode


class Draws:
    """A scripted ``draw``: returns the given values in order and remembers the bounds asked."""

    def __init__(self, values: Iterable[int] = ()) -> None:
        self.values = list(values)
        self.bounds: list[int] = []

    def __call__(self, bound: int) -> int:
        self.bounds.append(bound)
        return self.values.pop(0)


def no_draw(bound: int) -> int:
    raise AssertionError(f"nothing should be drawn (asked for {bound})")


def ev(
    mrid: str,
    start: float,
    duration: float = 100,
    *,
    primacy: int = 1,
    created: float = 0,
    program: str = "P1",
    rs: int = 0,
    rd: int = 0,
    rr: int = 0x03,
    status: EventStatus = EventStatus.SCHEDULED,
    **controls: Any,
) -> Event:
    """An event; times are seconds after T0; default control: export limit 1500 W."""
    return Event(
        mrid=MRID(mrid),
        program=program,
        primacy=primacy,
        creation_time=T0 + created,
        start=T0 + start,
        duration=duration,
        controls=ControlSet(**(controls or {"export_limit_w": 1500.0})),
        randomize_start=rs,
        randomize_duration=rd,
        status=status,
        response_required=rr,
        reply_to="/rsp/1",
        origin="sep2",
    )


def codes(responses: Sequence[ResponseDue]) -> list[tuple[str, int, float]]:
    """(mrid, code, seconds after T0) for easy comparison."""
    return [(r.mrid, int(r.code), r.at - T0) for r in responses]


def owner(s: Schedule, mode: Mode, t: float) -> str | None:
    return s.in_force(mode, T0 + t).mrid


def round_trip(s: Schedule) -> list[EventRecord]:
    """Through JSON, as the store does."""
    docs = json.loads(json.dumps([r.to_dict() for r in s.records()]))
    return [EventRecord.from_dict(d) for d in docs]


# --------------------------------------------------------------------------- intervals


def test_intervals_are_half_open_back_to_back_events_do_not_overlap():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100, primacy=0, export_limit_w=1000.0), T0 - 10)
    # B has the worse primacy: if the intervals overlapped at t=100, B would be superseded.
    s.offer(ev("B", 100, 100, primacy=1, export_limit_w=2000.0), T0 - 10)
    assert owner(s, EXP, 99.999) == "A"
    assert owner(s, EXP, 100) == "B"
    assert s.in_force(EXP, T0 + 100).value == 2000.0
    assert owner(s, EXP, 200) is None
    assert codes(s.advance(T0 + 300)) == [
        ("A", 2, 0),
        ("A", 3, 100),
        ("B", 2, 100),
        ("B", 3, 200),
    ]


def test_start_in_past_end_in_future_runs_from_now_started_at_first_advance():
    s = Schedule(draw=no_draw)
    got = s.offer(ev("A", 0, 100), T0 + 40)
    assert codes(got) == [("A", 1, 40)]  # the 2 is not returned by offer
    assert codes(s.advance(T0 + 40)) == [("A", 2, 40)]
    assert s.in_force(EXP, T0 + 40).since == T0 + 40


def test_expired_event_rejected_254():
    s = Schedule(draw=Draws([-20]))
    # Half-open: an event that ends exactly now has already ended.
    assert codes(s.offer(ev("A", 0, 100), T0 + 100)) == [("A", 254, 100)]
    # The *effective* end counts: nominally it ends at 110, randomisation moved it to 90.
    assert codes(s.offer(ev("B", 10, 100, rd=-30), T0 + 100)) == [("B", 254, 100)]
    assert s.get(MRID("B")) is not None
    assert s.get(MRID("B")).lifecycle is Lifecycle.REJECTED  # type: ignore[union-attr]
    assert owner(s, EXP, 100) is None
    assert s.offer(ev("A", 0, 100), T0 + 200) == []  # a re-poll is not a new rejection
    assert s.advance(T0 + 1000) == []


# --------------------------------------------------------------------------- supersession


def test_lower_primacy_wins_per_mode():
    s = Schedule(draw=no_draw)
    # The loser was created later, so creation time is not what decides here.
    s.offer(ev("LOSE", 0, 100, primacy=2, created=50, export_limit_w=1000.0), T0 - 10)
    s.offer(ev("WIN", 0, 100, primacy=1, created=0, export_limit_w=2000.0), T0 - 10)
    f = s.in_force(EXP, T0 + 50)
    assert (f.mrid, f.value, f.primacy) == ("WIN", 2000.0, 1)


def test_equal_primacy_later_creation_time_wins():
    s = Schedule(draw=no_draw)
    s.offer(ev("NEW", 0, 100, created=20, export_limit_w=1000.0), T0 - 10)
    s.offer(ev("OLD", 0, 100, created=10, export_limit_w=2000.0), T0 - 10)  # arrives later
    assert owner(s, EXP, 50) == "NEW"


def test_equal_primacy_and_creation_time_later_arrival_wins():
    s = Schedule(draw=no_draw)
    s.offer(ev("FIRST", 0, 100, export_limit_w=1000.0), T0 - 20)
    s.offer(ev("SECOND", 0, 100, export_limit_w=2000.0), T0 - 10)
    assert owner(s, EXP, 50) == "SECOND"
    assert s.get(MRID("SECOND")).seq > s.get(MRID("FIRST")).seq  # type: ignore[union-attr]


def test_supersession_is_per_mode_non_shared_modes_stay():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 0, 100, primacy=2, export_limit_w=1000.0, import_limit_w=7000.0), T0 - 10)
    s.offer(ev("W", 20, 30, primacy=1, export_limit_w=0.0), T0 - 10)
    assert owner(s, EXP, 30) == "W"
    assert s.in_force(IMP, T0 + 30).mrid == "L"  # the mode W does not set stays with L
    assert s.in_force(IMP, T0 + 30).value == 7000.0
    # L ran to its end on import, so it completes rather than being superseded.
    assert codes(s.advance(T0 + 200)) == [
        ("L", 2, 0),
        ("W", 2, 20),
        ("W", 3, 50),
        ("L", 3, 100),
    ]


def test_independent_events_on_disjoint_modes_do_not_supersede():
    s = Schedule(draw=no_draw)
    s.offer(ev("E", 0, 100, primacy=2, export_limit_w=1000.0), T0 - 10)
    s.offer(ev("I", 0, 100, primacy=1, import_limit_w=2000.0), T0 - 10)
    act = s.active(T0 + 50)
    assert {m: f.mrid for m, f in act.items()} == {EXP: "E", IMP: "I"}
    got = {(m, c) for m, c, _ in codes(s.advance(T0 + 200))}
    assert ("E", 7) not in got
    assert ("I", 7) not in got


def test_superseded_event_does_not_resume_after_winner_ends():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 0, 300, primacy=2, export_limit_w=1000.0, import_limit_w=7000.0), T0 - 10)
    s.offer(ev("W", 100, 100, primacy=1, export_limit_w=0.0), T0 - 10)
    assert owner(s, EXP, 99) == "L"
    assert owner(s, EXP, 150) == "W"
    assert owner(s, EXP, 250) is None  # W ended; L's export limit stays dead
    assert owner(s, IMP, 250) == "L"  # L itself still runs its other mode


def test_loser_mode_dies_from_later_of_the_two_starts():
    s = Schedule(draw=no_draw)
    s.offer(ev("W", 0, 100, primacy=1, export_limit_w=0.0), T0 - 10)
    s.offer(ev("L", 50, 100, primacy=2, export_limit_w=1000.0, import_limit_w=7000.0), T0 - 10)
    assert owner(s, EXP, 120) is None  # dead from 50 (L's own start), not from 100
    assert owner(s, IMP, 60) == "L"
    assert s.in_force(IMP, T0 + 60).since == T0 + 50


def test_late_winner_supersedes_from_receipt_not_from_its_past_start():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 0, 300, primacy=2), T0 - 10)
    s.advance(T0 + 60)
    # W's start (10) is in the past when it arrives at 60: L ran until 60, and died then.
    s.offer(ev("W", 10, 200, primacy=1, export_limit_w=0.0), T0 + 60)
    assert codes(s.advance(T0 + 60)) == [("L", 7, 60), ("W", 2, 60)]  # same instant: by arrival
    assert s.in_force(EXP, T0 + 60).since == T0 + 60


def test_winner_cancelled_before_start_supersedes_nothing():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 0, 100, primacy=2, export_limit_w=1000.0), T0 - 10)
    s.offer(ev("W", 50, 100, primacy=1, export_limit_w=0.0), T0 - 10)
    assert owner(s, EXP, 60) == "W"
    s.cancel(MRID("W"), T0 + 20)
    assert owner(s, EXP, 60) == "L"
    assert codes(s.advance(T0 + 200)) == [("L", 2, 0), ("L", 3, 100)]


def test_cancellation_truncates_the_winners_interval():
    s = Schedule(draw=no_draw)
    s.offer(ev("W", 0, 100, primacy=1, export_limit_w=0.0), T0 - 10)
    # A second mode keeps L alive (a fully dominated L would get a final 7 at once).
    s.offer(ev("L", 60, 100, primacy=2, export_limit_w=1000.0, import_limit_w=1.0), T0 - 10)
    assert owner(s, EXP, 70) == "W"
    s.advance(T0 + 30)
    s.cancel(MRID("W"), T0 + 40)  # W now ends at 40: it no longer overlaps L
    assert owner(s, EXP, 70) == "L"


def test_emitted_7_is_final_even_if_winner_is_later_cancelled():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 100, 100, primacy=2, export_limit_w=1000.0), T0)
    s.offer(ev("W", 50, 200, primacy=1, export_limit_w=0.0), T0)
    assert codes(s.advance(T0 + 10)) == [("L", 7, 0)]  # L can never run: 7 at once
    s.cancel(MRID("W"), T0 + 20)
    assert owner(s, EXP, 120) is None
    assert s.get(MRID("L")).lifecycle is Lifecycle.SUPERSEDED  # type: ignore[union-attr]
    assert s.advance(T0 + 500) == []


def test_superseded_mode_stays_dead_when_winner_cancelled_at_that_instant():
    s = Schedule(draw=no_draw)
    s.offer(ev("W", 0, 200, primacy=1, export_limit_w=0.0), T0 - 10)
    s.offer(ev("L", 150, 250, primacy=3, export_limit_w=1000.0, import_limit_w=5.0), T0 - 10)
    s.offer(ev("W2", 300, 50, primacy=2, export_limit_w=2.0), T0 - 10)  # would kill it at 300
    s.advance(T0 + 150)
    s.cancel(MRID("W"), T0 + 150)  # W now ends at 150 = L's start: they no longer overlap
    assert owner(s, EXP, 160) is None  # but L's export died at 150, and that is final
    assert owner(s, IMP, 160) == "L"
    assert s.get(MRID("L")).superseded[0][:2] == (EXP, T0 + 150)  # type: ignore[union-attr]


def test_superseded_event_still_supersedes_until_it_is_cancelled():
    s = Schedule(draw=no_draw)
    s.offer(ev("V", 0, 100, primacy=0, export_limit_w=0.0), T0 - 10)
    s.offer(ev("W", 50, 150, primacy=1, export_limit_w=1.0), T0 - 10)  # dead from 50: 7
    s.offer(ev("X", 150, 100, primacy=2, export_limit_w=2.0, import_limit_w=2.0), T0 - 10)
    assert [(m, c) for m, c, _ in codes(s.advance(T0 - 10))] == [("W", 7)]
    # W never runs, yet as published it outranks X on export from 150 (pairwise rule).
    assert owner(s, EXP, 160) is None
    s.cancel(MRID("W"), T0 + 120)  # withdrawn: W's interval ends at 120, before X starts
    assert owner(s, EXP, 160) == "X"
    assert s.get(MRID("W")).lifecycle is Lifecycle.SUPERSEDED  # type: ignore[union-attr]


def test_rejected_events_never_supersede():
    s = Schedule(draw=no_draw, supported_modes=frozenset({EXP}))
    s.offer(ev("L", 0, 100, primacy=2), T0 - 10)
    s.offer(ev("X", 0, 100, primacy=0, export_limit_w=0.0, import_limit_w=0.0), T0 - 10)
    assert owner(s, EXP, 50) == "L"


def test_server_status_superseded_terminates_with_7():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.advance(T0 + 30)
    got = s.offer(ev("A", 0, 100, status=EventStatus.SUPERSEDED), T0 + 40)
    assert codes(got) == [("A", 7, 40)]
    assert owner(s, EXP, 40) is None
    assert s.advance(T0 + 500) == []


# --------------------------------------------------------------------------- randomisation


def test_randomize_start_drawn_once_per_mrid_stable_across_repoll():
    draws = Draws([30, 5])
    s = Schedule(draw=draws)
    e = ev("A", 100, 60, rs=60, rd=10)
    s.offer(e, T0)
    for k in range(5):
        assert s.offer(e, T0 + k) == []
        assert s.offer(ev("A", 100, 60, rs=60, rd=10, status=EventStatus.ACTIVE), T0 + k) == []
    assert draws.bounds == [60, 10]  # start first, then duration; never again
    assert owner(s, EXP, 129) is None
    assert owner(s, EXP, 130) == "A"
    assert owner(s, EXP, 194) == "A"
    assert owner(s, EXP, 195) is None


def test_negative_randomize_start_moves_the_start_earlier():
    s = Schedule(draw=draw_with(random.Random(1)))
    s.offer(ev("A", 1000, 60, rs=-600), T0)
    rec = s.get(MRID("A"))
    assert rec is not None
    assert -600 <= rec.start_offset <= 0
    assert rec.start_offset != 0  # seed 1 draws a non-zero value; a 0 would prove nothing


def test_negative_randomize_duration_never_erases_the_event():
    draws = Draws([-59])
    s = Schedule(draw=draws)
    s.offer(ev("A", 0, 60, rd=-3600), T0 - 10)
    assert draws.bounds == [-59]  # clamped: at least part of a second remains
    assert owner(s, EXP, 0.5) == "A"
    assert owner(s, EXP, 1) is None


def test_randomization_stable_across_restore():
    s = Schedule(draw=Draws([45, -20]))
    s.offer(ev("A", 100, 100, rs=60, rd=-30), T0)
    restored = Schedule(draw=no_draw)  # anything drawn again would fail here
    restored.restore(round_trip(s))
    for t in (144, 145, 224, 225):
        assert restored.in_force(EXP, T0 + t) == s.in_force(EXP, T0 + t)
    assert owner(restored, EXP, 145) == "A"
    assert owner(restored, EXP, 225) is None
    assert restored.offer(ev("A", 100, 100, rs=60, rd=-30), T0 + 1) == []


def test_draw_outside_its_bound_is_a_bug_in_the_injected_rng():
    s = Schedule(draw=lambda bound: bound + 1)
    with pytest.raises(ValueError, match="outside"):
        s.offer(ev("A", 100, 100, rs=60), T0)


# --------------------------------------------------------------------------- cancellation


def test_cancelled_ends_immediately_response_6():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.advance(T0 + 10)
    got = s.cancel(MRID("A"), T0 + 50)
    assert codes(got) == [("A", 6, 50)]
    assert owner(s, EXP, 49.9) == "A"
    assert owner(s, EXP, 50) is None
    assert s.advance(T0 + 500) == []  # no 3 after a cancellation
    assert s.cancel(MRID("A"), T0 + 60) == []  # once


def test_change_at_the_start_instant_comes_after_the_start():
    # What is due at `now` happens before a change that arrives at `now`, whether or not
    # advance(now) ran first: otherwise the outcome would depend on the engine's cycle.
    for call_advance_first in (False, True):
        s = Schedule(draw=no_draw)
        out = s.offer(ev("A", 100, 100), T0)
        if call_advance_first:
            out += s.advance(T0 + 100)
        out += s.cancel(MRID("A"), T0 + 100)
        out += s.advance(T0 + 500)
        assert codes(out) == [("A", 1, 0), ("A", 2, 100), ("A", 6, 100)]
        assert owner(s, EXP, 100) is None


def test_cancelled_before_start_never_starts():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 100, 100, rs=0), T0)
    assert codes(s.cancel(MRID("A"), T0 + 10, randomized=True)) == [("A", 6, 10)]
    assert owner(s, EXP, 150) is None
    assert s.advance(T0 + 500) == []


def test_cancelled_with_randomization_ends_within_bound():
    draws = Draws([5, -10, 90])
    s = Schedule(draw=draws)
    s.offer(ev("A", 0, 1000, rs=60, rd=-120), T0 - 10)
    s.advance(T0 + 100)
    assert s.cancel(MRID("A"), T0 + 200, randomized=True) == []  # takes effect later
    assert draws.bounds[-1] == 120  # max(|randomizeStart|, |randomizeDuration|)
    assert owner(s, EXP, 289) == "A"
    assert owner(s, EXP, 290) is None
    assert codes(s.advance(T0 + 289)) == []
    assert codes(s.advance(T0 + 400)) == [("A", 6, 290)]
    # And for any draw: the end is within [cancel, cancel + bound].
    for seed in range(20):
        s = Schedule(draw=draw_with(random.Random(seed)))
        s.offer(ev("A", 0, 1000, rs=60, rd=-120), T0 - 10)
        s.advance(T0 + 100)
        s.cancel(MRID("A"), T0 + 200, randomized=True)
        (end,) = [r.at for r in s.advance(T0 + 1000) if r.code is R.CANCELLED]
        assert T0 + 200 <= end <= T0 + 320


def test_randomized_cancellation_is_stable_across_restore():
    s = Schedule(draw=Draws([0, 0, 77]))
    s.offer(ev("A", 0, 1000, rs=60, rd=-100), T0 - 10)
    s.advance(T0 + 100)
    s.cancel(MRID("A"), T0 + 200, randomized=True)
    restored = Schedule(draw=no_draw)
    restored.restore(round_trip(s))
    assert codes(restored.advance(T0 + 1000)) == [("A", 6, 277)]


def test_cancellation_by_status_change_on_repoll():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.advance(T0 + 10)
    got = s.offer(ev("A", 0, 100, status=EventStatus.CANCELLED), T0 + 20)
    assert codes(got) == [("A", 6, 20)]
    assert s.offer(ev("A", 0, 100, status=EventStatus.CANCELLED), T0 + 30) == []


def test_a_cancel_that_restamps_creation_time_is_still_a_cancel():
    """The reference CSIP-AUS server serves a cancelled control with a new creationTime:
    creationTime is the server's bookkeeping, so this is the same event, cancelled (6)."""
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.advance(T0 + 10)
    got = s.offer(ev("A", 0, 100, created=20, status=EventStatus.CANCELLED), T0 + 20)
    assert codes(got) == [("A", 6, 20)]
    assert owner(s, EXP, 30) is None
    assert s.offer(ev("A", 0, 100, created=20, status=EventStatus.CANCELLED), T0 + 30) == []


def test_a_supersede_that_restamps_creation_time_is_7_not_253():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 50, 100), T0 - 10)
    got = s.offer(ev("A", 50, 100, created=20, status=EventStatus.SUPERSEDED), T0 + 20)
    assert codes(got) == [("A", 7, 20)]


def test_a_new_creation_time_alone_changes_nothing():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    assert s.offer(ev("A", 0, 100, created=5), T0 + 5) == []
    assert owner(s, EXP, 10) == "A"


def test_new_mrid_arriving_cancelled_gets_1_then_6_and_never_runs():
    s = Schedule(draw=no_draw)
    got = s.offer(ev("A", 0, 100, status=EventStatus.CANCELLED), T0 + 10)
    assert codes(got) == [("A", 1, 10), ("A", 6, 10)]
    assert owner(s, EXP, 10) is None
    assert s.advance(T0 + 500) == []


# --------------------------------------------------------------------------- defaults


def test_defaults_apply_when_no_event_active():
    s = Schedule(draw=no_draw)
    assert s.set_default("P1", 1, ControlSet(export_limit_w=5000.0)) == []
    assert s.set_default("P2", 0, ControlSet(export_limit_w=3000.0, import_limit_w=2000.0)) == []
    f = s.in_force(EXP, T0)
    assert (f.value, f.source, f.program, f.mrid) == (3000.0, Source.UTILITY_DEFAULT, "P2", None)
    s.offer(ev("A", 100, 100, program="P1", export_limit_w=1000.0), T0)
    assert s.in_force(EXP, T0 + 150).source is Source.UTILITY_EVENT
    assert s.in_force(EXP, T0 + 150).value == 1000.0
    after = s.in_force(EXP, T0 + 200)
    assert (after.value, after.since, after.until) == (3000.0, T0 + 200, None)
    assert s.in_force(EXP, T0 + 50).until == T0 + 100
    s.clear_default("P2")
    assert s.in_force(EXP, T0 + 300).value == 5000.0
    assert s.in_force(IMP, T0 + 300).value is None
    assert IMP not in s.active(T0 + 300)


def test_defaults_at_equal_primacy_go_to_the_program_name_that_sorts_first():
    s = Schedule(draw=no_draw)
    s.set_default("B", 1, ControlSet(export_limit_w=1.0))
    s.set_default("A", 1, ControlSet(export_limit_w=2.0))
    assert s.in_force(EXP, T0).program == "A"


def test_invalid_default_is_refused_and_changes_nothing():
    s = Schedule(draw=no_draw)
    s.set_default("P1", 1, ControlSet(export_limit_w=5000.0))
    problems = s.set_default("P1", 1, ControlSet(export_limit_w=-1.0))
    assert problems
    assert "export_limit_w" in problems[0]
    assert s.set_default("P1", 300, ControlSet(export_limit_w=1.0)) != []
    assert s.in_force(EXP, T0).value == 5000.0


def test_defaults_round_trip_through_json():
    s = Schedule(draw=no_draw)
    s.set_default("P1", 1, ControlSet(export_limit_w=5000.0, connect=True))
    s.set_default("P2", 0, ControlSet(import_limit_w=2000))
    doc = json.loads(json.dumps(s.defaults()))
    r = Schedule(draw=no_draw)
    r.restore_defaults(doc)
    assert r.defaults() == s.defaults()
    assert r.active(T0) == s.active(T0)
    assert r.in_force(Mode.CONNECT, T0).value is True


# --------------------------------------------------------------------------- responses


def test_response_sequence_1_2_3():
    s = Schedule(draw=no_draw)
    got = s.offer(ev("A", 100, 100), T0)
    assert codes(got) == [("A", 1, 0)]
    assert s.advance(T0 + 99) == []
    assert codes(s.advance(T0 + 100)) == [("A", 2, 100)]
    assert s.advance(T0 + 199) == []
    assert codes(s.advance(T0 + 250)) == [("A", 3, 200)]  # at the effective end, not at 250
    assert s.get(MRID("A")).lifecycle is Lifecycle.COMPLETED  # type: ignore[union-attr]


def test_response_sequence_1_2_6():
    s = Schedule(draw=no_draw)
    out = s.offer(ev("A", 100, 100), T0)
    out += s.advance(T0 + 120)
    out += s.cancel(MRID("A"), T0 + 150)
    out += s.advance(T0 + 500)
    assert codes(out) == [("A", 1, 0), ("A", 2, 100), ("A", 6, 150)]


def test_response_sequence_1_7():
    s = Schedule(draw=no_draw)
    out = s.offer(ev("L", 100, 100, primacy=2), T0)
    out += s.offer(ev("W", 0, 300, primacy=1, export_limit_w=0.0), T0 + 10)
    out += s.advance(T0 + 10)
    # L would never run a mode: 7 at once, when that became known; L never starts.
    assert [c for c in codes(out) if c[0] == "L"] == [("L", 1, 0), ("L", 7, 10)]
    assert all(c[0] != "L" for c in codes(s.advance(T0 + 1000)))


def test_response_sequence_1_2_7():
    s = Schedule(draw=no_draw)
    out = s.offer(ev("L", 0, 300, primacy=2), T0 - 10)
    out += s.offer(ev("W", 100, 100, primacy=1, export_limit_w=0.0), T0 - 10)
    out += s.advance(T0 + 1000)
    # 7 at the time its last mode died (W's start), not at W's end.
    assert [c for c in codes(out) if c[0] == "L"] == [("L", 1, -10), ("L", 2, 0), ("L", 7, 100)]


def test_start_and_supersession_at_the_same_instant_come_out_2_then_7():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 100, 100, primacy=2), T0)
    s.offer(ev("W", 100, 200, primacy=1, export_limit_w=0.0), T0 + 100)  # no advance before
    assert codes(s.advance(T0 + 100)) == [("L", 2, 100), ("L", 7, 100), ("W", 2, 100)]


def test_advance_returns_changes_in_time_order():
    s = Schedule(draw=no_draw)
    s.offer(ev("C", 30, 10, import_limit_w=1.0), T0 - 10)
    s.offer(ev("A", 10, 10, connect=True), T0 - 10)
    s.offer(ev("B", 0, 100), T0 - 10)
    ats = [r.at for r in s.advance(T0 + 1000)]
    assert ats == sorted(ats)
    assert len(ats) == 6


def test_each_response_emitted_once_even_after_restore():
    s = Schedule(draw=no_draw)
    seen = s.offer(ev("A", 0, 100), T0 - 10)
    seen += s.advance(T0 + 10)
    assert codes(seen) == [("A", 1, -10), ("A", 2, 0)]
    r = Schedule(draw=no_draw)
    r.restore(round_trip(s))
    assert r.advance(T0 + 20) == []  # 1 and 2 are not handed out again
    assert r.offer(ev("A", 0, 100), T0 + 30) == []
    assert codes(r.advance(T0 + 500)) == [("A", 3, 100)]
    assert r.advance(T0 + 600) == []


def test_codes_decided_but_not_yet_handed_out_survive_restore():
    s = Schedule(draw=no_draw)
    s.offer(ev("L", 50, 100, primacy=2), T0)
    s.offer(ev("W", 0, 300, primacy=1, export_limit_w=0.0), T0 + 10)  # decides L's 7
    r = Schedule(draw=no_draw)
    r.restore(round_trip(s))  # persisted before the engine's advance()
    assert codes(r.advance(T0 + 10)) == [("L", 7, 10), ("W", 2, 10)]
    assert codes(s.advance(T0 + 10)) == [("L", 7, 10), ("W", 2, 10)]


def test_invalid_event_rejected_253():
    cases = [
        ev("A", 0, 100, export_limit_w=-5.0),
        ev("B", 0, 0),
        ev("C", 0, 367 * 86400),
        ev("D", 0, 100, primacy=256),
        ev("E", 0, 100, rs=3601),
        ev("F", 0, 100, rd=-3601),
        ev("G", 0, float("nan")),
    ]
    s = Schedule(draw=no_draw)
    for e in cases:
        got = s.offer(e, T0 - 10)
        assert codes(got) == [(e.mrid, 253, -10)], e
        assert got[0].reason.startswith("invalid event: ")
        assert s.get(e.mrid).lifecycle is Lifecycle.REJECTED  # type: ignore[union-attr]
    assert s.active(T0 + 10) == {}
    assert s.advance(T0 + 1000) == []


def test_unsupported_mode_rejected_252():
    s = Schedule(draw=no_draw, supported_modes=frozenset({EXP, IMP}))
    got = s.offer(ev("A", 0, 100, export_limit_w=1.0, connect=False), T0 - 10)
    assert codes(got) == [("A", 252, -10)]
    assert "connect" in got[0].reason
    assert owner(s, EXP, 10) is None  # the supported part does not run either


def test_event_that_sets_no_mode_rejected_252():
    s = Schedule(draw=no_draw)
    e = Event(MRID("A"), "P1", 1, T0, T0, 100, ControlSet())
    assert codes(s.offer(e, T0 - 10)) == [("A", 252, -10)]


def test_reused_mrid_with_changed_content_rejected_and_original_kept():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100, export_limit_w=1500.0), T0 - 10)
    changed = ev("A", 0, 100, export_limit_w=0.0)
    got = s.offer(changed, T0 + 10)
    assert [(m, c) for m, c, _ in codes(got)] == [("A", 2), ("A", 253)]
    assert "mRID reused with different content" in got[-1].reason
    assert s.in_force(EXP, T0 + 20).value == 1500.0
    assert s.offer(changed, T0 + 30) == []  # once
    assert codes(s.advance(T0 + 500)) == [("A", 3, 100)]  # the original still completes


def test_status_scheduled_to_active_is_not_news():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    assert s.offer(ev("A", 0, 100, status=EventStatus.ACTIVE), T0 + 10) == []
    assert s.take_dirty()[0].event.status is EventStatus.SCHEDULED


@pytest.mark.parametrize(
    ("rr", "posted"),
    [
        (0x00, set()),
        (0x01, {1, 252, 253, 254}),
        (0x02, {2, 3, 6, 7, 252, 253, 254}),
        (0x03, {1, 2, 3, 6, 7, 252, 253, 254}),
        (0x04, set()),  # bit 2 (end-user response) is not the gateway's to give
    ],
)
def test_response_required_bits_gate_posting(rr: int, posted: set[int]):
    s = Schedule(draw=no_draw, supported_modes=frozenset({EXP}))
    out = s.offer(ev("A", 0, 100, rr=rr), T0 - 10)
    out += s.offer(ev("B", 0, 100, rr=rr), T0 - 10)
    out += s.advance(T0 + 50)
    out += s.cancel(MRID("B"), T0 + 60)
    out += s.offer(ev("C", 100, 100, rr=rr, primacy=9), T0 + 60)
    out += s.offer(ev("D", 0, 300, rr=rr, export_limit_w=0.0, primacy=0), T0 + 70)
    out += s.advance(T0 + 1000)
    out += s.offer(ev("E", 0, 10, rr=rr), T0 + 1000)
    out += s.offer(ev("F", 0, 10, rr=rr, rs=5000), T0 + 1000)
    out += s.offer(ev("G", 2000, 10, rr=rr, connect=True), T0 + 1000)
    emitted = {int(r.code) for r in out}
    assert emitted == {1, 2, 3, 6, 7, 252, 253, 254}  # every change is returned...
    assert {int(r.code) for r in out if r.post} == posted  # ...only these are to be sent
    assert all(r.reply_to == "/rsp/1" and r.origin == "sep2" for r in out)
    assert all(r.post == should_post(r.code, rr) for r in out)


# --------------------------------------------------------------------------- explanations


def test_in_force_explains_why():
    s = Schedule(draw=no_draw)
    s.offer(ev("1B", 0, 7200, primacy=2, export_limit_w=3000.0), T0 - 10)
    s.offer(ev("1A", 3600, 3600, primacy=1, export_limit_w=1500.0), T0 - 10)
    f = s.in_force(EXP, T0 + 4000)
    assert str(f) == f.why
    assert f.why == (
        "export_limit_w = 1500 W from event 1A (program P1, primacy 1), "
        "2023-11-14T23:13:20Z until 2023-11-15T00:13:20Z; supersedes 1B on this mode"
    )
    assert f.supersedes == ("1B",)
    assert (f.since, f.until) == (T0 + 3600, T0 + 7200)
    s.set_default("P9", 5, ControlSet(export_limit_w=9000.0))
    d = s.in_force(EXP, T0 + 8000)
    assert "default control of program P9" in d.why
    assert "9000 W" in d.why
    assert "nothing in force" in s.in_force(IMP, T0).why
    assert s.in_force(IMP, T0).source is None


def test_active_lists_only_modes_with_a_value_and_matches_in_force():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100, export_limit_w=1.0, connect=False), T0 - 10)
    s.set_default("P", 1, ControlSet(import_limit_w=5.0))
    act = s.active(T0 + 10)
    assert set(act) == {EXP, Mode.CONNECT, IMP}
    for m, f in act.items():
        assert f == s.in_force(m, T0 + 10)
    act[EXP] = act[IMP]  # the caller's copy: must not corrupt the cache
    assert s.active(T0 + 11)[EXP].mrid == "A"
    assert set(s.active(T0 + 100)) == {IMP}


# --------------------------------------------------------------------------- shell support


def test_next_change_points_at_the_next_transition():
    s = Schedule(draw=no_draw)
    assert s.next_change(T0) is None
    s.offer(ev("A", 100, 100), T0)
    s.offer(ev("B", 150, 100, primacy=0, export_limit_w=0.0), T0)
    assert s.next_change(T0) == T0 + 100
    s.advance(T0 + 100)
    assert s.next_change(T0 + 100) == T0 + 150  # A's export dies when B starts
    assert s.next_change(T0 + 120) == T0 + 150
    s.advance(T0 + 150)
    assert s.next_change(T0 + 150) == T0 + 250
    s.advance(T0 + 250)
    assert s.next_change(T0 + 250) is None


def test_next_change_is_now_when_something_is_owed():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 + 10)  # the 2 is owed now
    assert s.next_change(T0 + 10) == T0 + 10


def test_take_dirty_returns_changed_records_once():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.offer(ev("B", 500, 100), T0 - 10)
    assert [r.mrid for r in s.take_dirty()] == ["A", "B"]
    assert s.take_dirty() == []
    s.advance(T0 + 10)
    dirty = s.take_dirty()
    assert [r.mrid for r in dirty] == ["A"]
    assert dirty[0].lifecycle is Lifecycle.ACTIVE
    assert dirty[0].emitted == {R.RECEIVED, R.STARTED}


def test_event_record_dict_round_trip_is_exact():
    s = Schedule(draw=Draws([17, -3, 40]))
    s.offer(ev("A", 0.25, 100.5, rs=60, rd=-30, export_limit_w=1500, connect=False), T0 - 10)
    s.offer(ev("B", 10, 50, primacy=0, export_limit_w=0.0), T0 - 10)
    s.advance(T0 + 30)
    s.cancel(MRID("A"), T0 + 35, randomized=True)
    s.offer(ev("C", 0, 1), T0 + 40)
    for rec in s.records():
        doc = rec.to_dict()
        back = EventRecord.from_dict(json.loads(json.dumps(doc)))
        assert back == rec
        assert back.to_dict() == doc
    a = s.get(MRID("A"))
    assert a is not None
    assert (a.start_offset, a.duration_offset, a.cancel_offset) == (17, -3, 40)
    assert a.superseded  # its export died under B; that is persisted


def test_prune_forgets_finished_records():
    s = Schedule(draw=no_draw)
    s.offer(ev("OLD", 0, 100), T0 - 10)
    s.offer(ev("LATE", 0, 100), T0 + 500)  # rejected 254
    s.offer(ev("NEW", 1000, 100), T0 + 500)
    s.advance(T0 + 600)
    assert s.prune(T0 + 600, older_than_s=300) == ["OLD"]
    assert s.prune(T0 + 900, older_than_s=300) == ["LATE"]
    assert [r.mrid for r in s.records()] == ["NEW"]
    assert owner(s, EXP, 1050) == "NEW"


def test_time_going_backwards_does_not_undo_history():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    s.advance(T0 + 50)
    got = s.cancel(MRID("A"), T0 + 20)  # a clock re-sync stepped back 30 s
    assert codes(got) == [("A", 6, 50)]
    assert owner(s, EXP, 49) == "A"


# --------------------------------------------------------------------------- unreadable events


def unreadable(mrid: str, rr: int = 0x03) -> Event:
    """What a north adapter can read of a malformed event: its mRID, replyTo, responseRequired."""
    return Event(
        mrid=MRID(mrid),
        program="P1",
        primacy=255,
        creation_time=T0,
        start=T0,
        duration=0,
        controls=ControlSet(),
        response_required=rr,
        reply_to="/rsp/1",
    )


def test_an_unreadable_event_is_answered_253_once_and_never_runs():
    s = Schedule(draw=no_draw)
    assert codes(s.reject(unreadable("BAD"), T0 + 1, "opModExpLimW = -5")) == [("BAD", 253, 1)]
    assert s.reject(unreadable("BAD"), T0 + 2, "opModExpLimW = -5") == []  # re-poll
    assert s.offer(ev("BAD", 0, 100), T0 + 3) == []  # a readable copy does not revive it
    assert owner(s, EXP, 50) is None
    record = s.get(MRID("BAD"))
    assert record is not None
    assert "opModExpLimW = -5" in record.reason
    assert [r.mrid for r in round_trip(s)] == ["BAD"]


def test_an_unreadable_new_version_keeps_the_original_running():
    s = Schedule(draw=no_draw)
    s.offer(ev("A", 0, 100), T0 - 10)
    got = codes(s.reject(unreadable("A"), T0 + 10, "Int16 overflow"))
    assert got == [("A", 2, 0), ("A", 253, 10)]  # its own start, owed first
    assert owner(s, EXP, 50) == "A"
    assert s.reject(unreadable("A"), T0 + 20, "Int16 overflow") == []


def test_an_unreadable_event_without_response_required_is_not_posted():
    s = Schedule(draw=no_draw)
    (due,) = s.reject(unreadable("Q", rr=0), T0, "bad")
    assert due.code is R.INVALID
    assert not due.post
