"""SunSpec CSIP BASIC-016 ... BASIC-026 (the precedence scenarios) against the event schedule.

The CSIP test procedures PDF is not redistributable; the scenarios follow their titles as
transcribed in ``shared/domain/sep2.md`` §2.2 (DERP = DERProgram, DDERC = DefaultDERControl,
DERC = DERControl). The mode is opModMaxLimW (``max_generation_pct``), the US CSIP limit; the
"independent" scenarios pair it with opModFixedW (``fixed_w_pct``), which it shares no mode with.
The *System* program has the worse primacy (2) and the *Service Point* program the better one (1),
as in CSIP's topology where the more specific group outranks the system-wide one.

Where a rule is not spelled out by the titles the schedule's documented rules apply (module
docstring of ``gateway.core.schedule``): a superseded control is dead on the contested mode from
the later of the two starts and never resumes (unless a primacy swap reinstates it, MAINT-005);
a late winner supersedes from its receipt.

The aggregator versions (AGG-002 ... AGG-012) are the same scenarios per EndDevice; each of the
aggregator's sites has its own ``Schedule``, so these tests stand for them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.schedule import Event, EventRecord, EventStatus, ResponseDue, Schedule
from gateway.core.units import MRID

T0 = 1_700_000_000.0
MAX = Mode.MAX_GENERATION_PCT
FIX = Mode.FIXED_W_PCT
SYSTEM, SERVICE_POINT = "system", "service-point"
PRIMACY = {SERVICE_POINT: 1, SYSTEM: 2}


def no_draw(bound: int) -> int:
    raise AssertionError(f"nothing should be drawn (asked for {bound})")


def derc(mrid: str, program: str, start: float, duration: float, **controls: Any) -> Event:
    """A DERControl of ``program``; times in seconds after T0; default control 50 % max W."""
    return Event(
        mrid=MRID(mrid),
        program=program,
        primacy=PRIMACY[program],
        creation_time=T0 - 1000,
        start=T0 + start,
        duration=duration,
        controls=ControlSet(**(controls or {"max_generation_pct": 50.0})),
        randomize_start=0,
        randomize_duration=0,
        status=EventStatus.SCHEDULED,
        response_required=0x03,
        reply_to="/rsp/1",
        origin="sep2",
    )


def codes(responses: Sequence[ResponseDue]) -> list[tuple[str, int, float]]:
    return [(r.mrid, int(r.code), r.at - T0) for r in responses]


def timeline(s: Schedule, mode: Mode, *ts: float) -> list[tuple[float | bool | None, str | None]]:
    """(value, the event's mRID or ``default:<program>`` or None) at each time."""
    out: list[tuple[float | bool | None, str | None]] = []
    for t in ts:
        f = s.in_force(mode, T0 + t)
        who: str | None = f.mrid if f.source is Source.UTILITY_EVENT else None
        if f.source is Source.UTILITY_DEFAULT:
            who = f"default:{f.program}"
        out.append((f.value, who))
    return out


def two_defaults(s: Schedule) -> None:
    assert s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0)) == []
    assert (
        s.set_default(SERVICE_POINT, PRIMACY[SERVICE_POINT], ControlSet(max_generation_pct=60.0))
        == []
    )


def test_BASIC_016_two_programs_two_defaults_no_control_the_higher_priority_default_holds() -> None:
    s = Schedule(draw=no_draw)
    two_defaults(s)
    assert timeline(s, MAX, 0, 10_000) == [(60.0, "default:service-point")] * 2
    s.clear_default(SERVICE_POINT)  # the better default withdrawn: the other one takes over
    assert timeline(s, MAX, 0) == [(80.0, "default:system")]
    assert s.advance(T0 + 10_000) == []  # defaults are never answered


def test_BASIC_017_one_control_no_default_applies_only_in_its_interval() -> None:
    s = Schedule(draw=no_draw)
    assert codes(s.offer(derc("A", SYSTEM, 100, 100), T0)) == [("A", 1, 0)]
    assert timeline(s, MAX, 99, 100, 199, 200) == [
        (None, None), (50.0, "A"), (50.0, "A"), (None, None),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 300)) == [("A", 2, 100), ("A", 3, 200)]


def test_BASIC_018_one_default_one_control_the_control_wins_while_active() -> None:
    s = Schedule(draw=no_draw)
    s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0))
    s.offer(derc("A", SYSTEM, 100, 100), T0)
    assert timeline(s, MAX, 50, 150, 250) == [
        (80.0, "default:system"), (50.0, "A"), (80.0, "default:system"),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 300)) == [("A", 2, 100), ("A", 3, 200)]


def test_BASIC_019_one_default_two_non_overlapping_similar_controls_each_in_turn() -> None:
    s = Schedule(draw=no_draw)
    s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0))
    s.offer(derc("A", SYSTEM, 100, 100, max_generation_pct=50.0), T0)
    s.offer(derc("B", SYSTEM, 300, 100, max_generation_pct=20.0), T0)
    assert timeline(s, MAX, 50, 150, 250, 350, 450) == [
        (80.0, "default:system"), (50.0, "A"), (80.0, "default:system"), (20.0, "B"),
        (80.0, "default:system"),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 500)) == [
        ("A", 2, 100), ("A", 3, 200), ("B", 2, 300), ("B", 3, 400),
    ]  # fmt: skip


def test_BASIC_020_two_programs_two_defaults_two_non_overlapping_controls() -> None:
    s = Schedule(draw=no_draw)
    two_defaults(s)
    # The control of the worse program still beats the better program's default.
    s.offer(derc("SY", SYSTEM, 100, 100, max_generation_pct=50.0), T0)
    s.offer(derc("SP", SERVICE_POINT, 300, 100, max_generation_pct=20.0), T0)
    assert timeline(s, MAX, 50, 150, 250, 350, 450) == [
        (60.0, "default:service-point"), (50.0, "SY"), (60.0, "default:service-point"),
        (20.0, "SP"), (60.0, "default:service-point"),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 500)) == [
        ("SY", 2, 100), ("SY", 3, 200), ("SP", 2, 300), ("SP", 3, 400),
    ]  # fmt: skip


def _overlapping_similar(first: Event, second: Event) -> Schedule:
    s = Schedule(draw=no_draw)
    s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0))
    assert codes(s.offer(first, T0)) == [(first.mrid, 1, 0)]
    assert codes(s.offer(second, T0)) == [(second.mrid, 1, 0)]
    return s


SY_WIDE = derc("SY", SYSTEM, 100, 300, max_generation_pct=50.0)  # 100 .. 400
SP_INSIDE = derc("SP", SERVICE_POINT, 200, 100, max_generation_pct=20.0)  # 200 .. 300
OVERLAP_TIMELINE = [
    (80.0, "default:system"),  # 50
    (50.0, "SY"),  # 150: the System control runs until the better one starts
    (20.0, "SP"),  # 250
    (80.0, "default:system"),  # 350: SY was superseded and does not resume
]
# At one instant, responses come out in the arrival order of their events (SY first here).
OVERLAP_CODES = [("SY", 2, 100), ("SY", 7, 200), ("SP", 2, 200), ("SP", 3, 300)]


def test_BASIC_021_overlapping_similar_system_then_service_point_before_start() -> None:
    s = _overlapping_similar(SY_WIDE, SP_INSIDE)
    assert timeline(s, MAX, 50, 150, 250, 350) == OVERLAP_TIMELINE
    assert codes(s.advance(T0 + 500)) == OVERLAP_CODES


def test_BASIC_022_overlapping_similar_service_point_then_system_same_outcome() -> None:
    s = _overlapping_similar(SP_INSIDE, SY_WIDE)
    assert timeline(s, MAX, 50, 150, 250, 350) == OVERLAP_TIMELINE
    got = codes(s.advance(T0 + 500))
    assert sorted(got) == sorted(OVERLAP_CODES)  # same codes; ties at 200 in arrival order


def test_BASIC_023_overlapping_similar_after_start_staggered_ends() -> None:
    s = Schedule(draw=no_draw)
    s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0))
    s.offer(derc("SY", SYSTEM, 0, 300, max_generation_pct=50.0), T0 - 10)  # 0 .. 300
    assert codes(s.advance(T0 + 100)) == [("SY", 2, 0)]
    # The Service Point control arrives at 100, its start (50) already past, ending at 250.
    assert codes(
        s.offer(derc("SP", SERVICE_POINT, 50, 200, max_generation_pct=20.0), T0 + 100)
    ) == [("SP", 1, 100)]
    assert timeline(s, MAX, 99, 100, 249, 250, 299) == [
        (50.0, "SY"), (20.0, "SP"), (20.0, "SP"), (80.0, "default:system"),
        (80.0, "default:system"),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 400)) == [("SY", 7, 100), ("SP", 2, 100), ("SP", 3, 250)]


def _independent(a: tuple[float, float], b: tuple[float, float]) -> Schedule:
    s = Schedule(draw=no_draw)
    s.set_default(SYSTEM, PRIMACY[SYSTEM], ControlSet(max_generation_pct=80.0))
    s.offer(derc("SY", SYSTEM, *a, max_generation_pct=50.0), T0)
    s.offer(derc("SP", SERVICE_POINT, *b, fixed_w_pct=30.0), T0)
    return s


def test_BASIC_024_overlapping_independent_controls_before_start_both_run() -> None:
    s = _independent((100, 200), (100, 200))
    act = s.active(T0 + 150)
    assert {m: (f.value, f.mrid) for m, f in act.items()} == {MAX: (50.0, "SY"), FIX: (30.0, "SP")}
    assert codes(s.advance(T0 + 400)) == [
        ("SY", 2, 100), ("SP", 2, 100), ("SY", 3, 300), ("SP", 3, 300),
    ]  # fmt: skip


def test_BASIC_025_overlapping_independent_staggered_starts() -> None:
    s = _independent((100, 200), (200, 200))  # SY 100 .. 300, SP 200 .. 400
    assert timeline(s, MAX, 150, 250, 350) == [
        (50.0, "SY"), (50.0, "SY"), (80.0, "default:system"),
    ]  # fmt: skip
    assert timeline(s, FIX, 150, 250, 350, 450) == [
        (None, None), (30.0, "SP"), (30.0, "SP"), (None, None),
    ]  # fmt: skip
    assert codes(s.advance(T0 + 500)) == [
        ("SY", 2, 100), ("SP", 2, 200), ("SY", 3, 300), ("SP", 3, 400),
    ]  # fmt: skip


def test_BASIC_026_overlapping_independent_staggered_ends() -> None:
    s = _independent((100, 300), (100, 150))  # SY 100 .. 400, SP 100 .. 250
    assert timeline(s, MAX, 300, 399, 400) == [
        (50.0, "SY"), (50.0, "SY"), (80.0, "default:system"),
    ]  # fmt: skip
    assert timeline(s, FIX, 249, 250) == [(30.0, "SP"), (None, None)]
    assert codes(s.advance(T0 + 500)) == [
        ("SY", 2, 100), ("SP", 2, 100), ("SP", 3, 250), ("SY", 3, 400),
    ]  # fmt: skip


def test_MAINT_005_a_program_primacy_swap_re_ranks_its_controls_without_a_rejection() -> None:
    """MAINT-005 (aggregator; "program maintenance / primacy swap"): the server swaps the
    primacies of two programs whose controls overlap; the DERControls themselves are unchanged.

    The rule (module docstring of ``gateway.core.schedule``, docs/sep2.md): SY, answered 7 at
    receipt because SP outranked it, is reinstated by the swap and runs as scheduled (2, 3; the
    7 already sent is not retracted), and SP, which now loses before it started, gets 7 at once.
    """
    s = Schedule(draw=no_draw)
    sy = derc("SY", SYSTEM, 100, 100, max_generation_pct=50.0)  # primacy 2
    sp = derc("SP", SERVICE_POINT, 100, 100, max_generation_pct=20.0)  # primacy 1
    got = codes(s.offer(sy, T0) + s.offer(sp, T0) + s.advance(T0))
    assert got == [("SY", 1, 0), ("SP", 1, 0), ("SY", 7, 0)]
    assert timeline(s, MAX, 150) == [(20.0, "SP")]
    # The session sends the swap as one input (ProgramsRanked -> Schedule.rerank) ...
    assert s.rerank({sy.program: 1, sp.program: 2}, T0 + 10) == []
    assert codes(s.advance(T0 + 10)) == [("SP", 7, 10)]
    assert timeline(s, MAX, 50, 150, 250) == [(None, None), (50.0, "SY"), (None, None)]
    # ... after which the controls re-offered with their programs' new primacy are no news.
    got = codes(s.offer(replace(sy, primacy=1), T0 + 11))
    got += codes(s.offer(replace(sp, primacy=2), T0 + 11))
    assert got == []
    assert timeline(s, MAX, 150) == [(50.0, "SY")]
    assert codes(s.advance(T0 + 500)) == [("SY", 2, 100), ("SY", 3, 200)]
    rec = s.get(MRID("SY"))
    assert rec is not None
    assert rec.codes == (1, 7, 2, 3)


def test_a_swap_back_supersedes_the_reinstated_control_again_without_a_second_7() -> None:
    s = Schedule(draw=no_draw)
    sy = derc("SY", SYSTEM, 100, 100, max_generation_pct=50.0)
    sp = derc("SP", SERVICE_POINT, 100, 100, max_generation_pct=20.0)
    out = s.offer(sy, T0) + s.offer(sp, T0) + s.advance(T0)
    out += s.rerank({SYSTEM: 1, SERVICE_POINT: 2}, T0 + 10) + s.advance(T0 + 10)
    out += s.rerank({SYSTEM: 2, SERVICE_POINT: 1}, T0 + 20) + s.advance(T0 + 20)
    assert timeline(s, MAX, 150) == [(20.0, "SP")]
    out += s.advance(T0 + 500)
    assert codes(out) == [
        ("SY", 1, 0), ("SP", 1, 0), ("SY", 7, 0), ("SP", 7, 10), ("SP", 2, 100), ("SP", 3, 200),
    ]  # fmt: skip
    sy_rec = s.get(MRID("SY"))
    assert sy_rec is not None
    assert sy_rec.lifecycle.value == "superseded"
    assert sy_rec.codes == (1, 7)


def test_a_control_superseded_while_active_resumes_from_the_swap() -> None:
    """SY ran from 100; SP (better primacy) arrived at 120 and superseded it; the swap at 150
    makes SY the winner again: it resumes from 150 (not retroactively), SP is superseded while
    active at 150, and SY gets no second 2 and its 3 at its end."""
    s = Schedule(draw=no_draw)
    sy = derc("SY", SYSTEM, 100, 200, max_generation_pct=50.0)  # 100 .. 300
    sp = derc("SP", SERVICE_POINT, 100, 200, max_generation_pct=20.0)
    out = s.offer(sy, T0) + s.advance(T0 + 110)
    assert timeline(s, MAX, 110) == [(50.0, "SY")]
    out += s.offer(sp, T0 + 120) + s.advance(T0 + 120)
    assert timeline(s, MAX, 130) == [(20.0, "SP")]
    out += s.rerank({SYSTEM: 1, SERVICE_POINT: 2}, T0 + 150) + s.advance(T0 + 150)
    # (queries about the past are answered from the new plan: SY before 120 no longer shows)
    assert timeline(s, MAX, 150, 299, 300) == [(50.0, "SY"), (50.0, "SY"), (None, None)]
    out += s.advance(T0 + 500)
    assert codes(out) == [
        ("SY", 1, 0), ("SY", 2, 100), ("SP", 1, 120), ("SY", 7, 120), ("SP", 2, 120),
        ("SP", 7, 150), ("SY", 3, 300),
    ]  # fmt: skip


def test_a_swap_reinstates_neither_a_cancelled_control_nor_one_outranked_in_its_program() -> None:
    """Only primacy is re-judged: a control the server cancelled stays cancelled, and a control
    superseded by a newer one of the same program (same primacy, later creationTime) stays
    superseded, since the swap changes nothing between the two."""
    s = Schedule(draw=no_draw)
    old = derc("OLD", SYSTEM, 100, 100)
    new = replace(derc("NEW", SYSTEM, 100, 100, max_generation_pct=30.0), creation_time=T0 - 10)
    gone = derc("GONE", SERVICE_POINT, 300, 100)
    out = s.offer(old, T0) + s.offer(new, T0) + s.offer(gone, T0) + s.cancel(MRID("GONE"), T0)
    out += s.advance(T0)
    out += s.rerank({SYSTEM: 1, SERVICE_POINT: 2}, T0 + 10) + s.advance(T0 + 500)
    assert codes(out) == [
        ("OLD", 1, 0), ("NEW", 1, 0), ("GONE", 1, 0), ("GONE", 6, 0), ("OLD", 7, 0),
        ("NEW", 2, 100), ("NEW", 3, 200),
    ]  # fmt: skip


def test_a_reinstatement_survives_a_restart() -> None:
    s = Schedule(draw=no_draw)
    sy = derc("SY", SYSTEM, 100, 200, max_generation_pct=50.0)
    sp = derc("SP", SERVICE_POINT, 100, 200, max_generation_pct=20.0)
    first = s.offer(sy, T0) + s.advance(T0 + 110) + s.offer(sp, T0 + 120) + s.advance(T0 + 120)
    first += s.rerank({SYSTEM: 1, SERVICE_POINT: 2}, T0 + 150)
    r = Schedule(draw=no_draw)
    r.restore([EventRecord.from_dict(x.to_dict()) for x in s.records()])
    assert r.records() == s.records()
    assert timeline(r, MAX, 130, 160) == timeline(s, MAX, 130, 160) == [
        (20.0, "SP"), (50.0, "SY"),
    ]  # fmt: skip
    assert codes(r.advance(T0 + 500)) == codes(s.advance(T0 + 500))


def test_a_primacy_swap_is_one_atomic_re_ranking_with_no_rejection() -> None:
    """What does hold for MAINT-005: controls not yet decided are re-ranked, at once, with no
    253 and no 7 decided in between (the session sends the swap as one ProgramsRanked)."""
    s = Schedule(draw=no_draw)
    a = derc("A", SYSTEM, 100, 100, max_generation_pct=50.0)  # primacy 2
    b = derc("B", SERVICE_POINT, 300, 100, max_generation_pct=20.0)  # primacy 1, no overlap
    s.offer(a, T0)
    s.offer(b, T0)
    assert s.rerank({SYSTEM: 1, SERVICE_POINT: 2}, T0 + 10) == []
    assert s.get(MRID("A")).event.primacy == 1  # type: ignore[union-attr]
    assert s.get(MRID("B")).event.primacy == 2  # type: ignore[union-attr]
    assert codes(s.offer(replace(a, primacy=1), T0 + 11)) == []
    assert codes(s.advance(T0 + 500)) == [
        ("A", 2, 100), ("A", 3, 200), ("B", 2, 300), ("B", 3, 400),
    ]  # fmt: skip
