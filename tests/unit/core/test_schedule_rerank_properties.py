"""Property tests for program re-ranking (MAINT-005, ``Schedule.rerank``).

(a) For controls that have not started when the programs are re-ranked, the schedule is as if it
    had been built from the final primacies: at every later time the active set equals that of a
    fresh schedule given the same controls with their programs' final primacy.
(b) Whatever the mix of offers, cancellations, re-rankings and restarts, no (mRID, code) pair is
    handed out twice, every accepted control ends with 3, 6 or 7 on record, and a control once
    answered 7 that runs again was reinstated by a re-ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet, Mode
from gateway.core.schedule import (
    Event,
    EventRecord,
    Lifecycle,
    ResponseCode,
    ResponseDue,
    Schedule,
)
from gateway.core.units import MRID

T0 = 1_700_000_000.0
MODES = (Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W, Mode.CONNECT)
PROGRAMS = ("A", "B", "C")
TERMINAL = {ResponseCode.COMPLETED, ResponseCode.CANCELLED, ResponseCode.SUPERSEDED}


def no_draw(bound: int) -> int:
    raise AssertionError(f"nothing should be drawn (asked for {bound})")


@dataclass(frozen=True)
class Spec:
    program: str
    start: int
    duration: int
    created: int
    modes: tuple[Mode, ...]

    def event(self, i: int, primacy: int) -> Event:
        values: dict[str, Any] = {}
        for m in self.modes:
            values[m.value] = (i % 2 == 0) if m.is_boolean else float(100 * (i + 1))
        return Event(
            mrid=MRID(f"E{i}"),
            program=self.program,
            primacy=primacy,
            creation_time=T0 + self.created,
            start=T0 + self.start,
            duration=self.duration,
            controls=ControlSet(**values),
            response_required=3,
        )


def specs(first_start: int) -> st.SearchStrategy[Spec]:
    return st.builds(
        Spec,
        program=st.sampled_from(PROGRAMS),
        start=st.integers(0, 12).map(lambda k: first_start + 10 * k),
        duration=st.integers(1, 8).map(lambda k: 10 * k),
        created=st.integers(0, 2),
        modes=st.lists(st.sampled_from(MODES), min_size=1, max_size=3, unique=True).map(tuple),
    )


primacies = st.fixed_dictionaries({p: st.integers(0, 3) for p in PROGRAMS})
# (seconds after the previous op, what, which control, new primacies for "rerank")
Op = tuple[int, str, int, dict[str, int]]


def ops(kinds: tuple[str, ...], gaps: tuple[int, ...]) -> st.SearchStrategy[list[Op]]:
    return st.lists(
        st.tuples(st.sampled_from(gaps), st.sampled_from(kinds), st.integers(0, 6), primacies),
        min_size=1,
        max_size=25,
    )


def run(s: Schedule, evs: list[Spec], op: Op, t: float, ranks: dict[str, int]) -> list[ResponseDue]:
    _, kind, k, new = op
    i = k % len(evs)
    match kind:
        case "offer":
            return s.offer(evs[i].event(i, ranks[evs[i].program]), t)
        case "rerank":
            ranks.update(new)
            return s.rerank(dict(new), t)
        case "cancel":
            return s.cancel(MRID(f"E{i}"), t)
        case "advance":
            return s.advance(t)
        case _:
            raise AssertionError(kind)


def shown(s: Schedule, t: float) -> dict[Mode, tuple[object, MRID | None]]:
    return {m: (f.value, f.mrid) for m, f in s.active(t).items()}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(specs(first_start=200), min_size=1, max_size=6),
    ops(("offer", "offer", "rerank", "advance"), (0, 0, 5, 10)),
    primacies,
)
def test_controls_not_started_run_as_if_the_final_primacies_had_always_held(evs, script, init):
    s = Schedule(draw=no_draw)
    ranks = dict(init)
    out: list[ResponseDue] = []
    order: list[int] = []
    t = T0
    for op in script:  # at most 25 ops of at most 10 s: all before the first start (200)
        t += op[0]
        out += run(s, evs, op, t, ranks)
        i = op[2] % len(evs)
        if op[1] == "offer" and i not in order:
            order.append(i)
    out += s.advance(t)
    fresh = Schedule(draw=no_draw)
    for i in order:  # same arrival order, so the same tie-breaks
        fresh.offer(evs[i].event(i, ranks[evs[i].program]), T0)
    for k in range(0, 360, 5):
        assert shown(s, T0 + 200 + k) == shown(fresh, T0 + 200 + k), k
    out += s.advance(T0 + 10_000)
    pairs = [(r.mrid, r.code) for r in out]
    assert len(pairs) == len(set(pairs))
    fresh.advance(T0 + 10_000)
    for rec in s.records():  # each ends as it would have: what it did is what was chosen
        twin = fresh.get(rec.mrid)
        assert twin is not None
        assert (ResponseCode.COMPLETED in rec.codes) == (ResponseCode.COMPLETED in twin.codes)
        assert rec.lifecycle is twin.lifecycle, rec.mrid


def restored(s: Schedule) -> Schedule:
    docs = json.loads(json.dumps([r.to_dict() for r in s.records()]))
    r = Schedule(draw=no_draw)
    r.restore([EventRecord.from_dict(d) for d in docs])
    return r


@settings(max_examples=300, deadline=None)
@given(
    st.lists(specs(first_start=0), min_size=1, max_size=6),
    ops(("offer", "offer", "rerank", "rerank", "cancel", "advance", "restart"), (0, 5, 10, 20)),
    primacies,
)
def test_re_rankings_never_hand_out_a_code_twice_and_every_control_ends(evs, script, init):
    s = Schedule(draw=no_draw)
    ranks = dict(init)
    out: list[ResponseDue] = []
    t = T0 - 50
    for op in script:
        t += op[0]
        if op[1] == "restart":
            s = restored(s)
            continue
        out += run(s, evs, op, t, ranks)
        now = s.active(t)
        assert now == {m: s.in_force(m, t) for m in Mode if s.in_force(m, t).value is not None}
    out += s.advance(t + 10_000)
    pairs = [(r.mrid, r.code) for r in out]
    assert len(pairs) == len(set(pairs)), pairs
    for rec in s.records():
        assert set(rec.emitted) == {c for m, c in pairs if m == rec.mrid}
        if rec.lifecycle is Lifecycle.REJECTED:
            continue
        assert TERMINAL & set(rec.codes), (rec.mrid, rec.codes)
        assert rec.lifecycle.terminal
        codes = list(rec.codes)
        if ResponseCode.SUPERSEDED in codes and codes[-1] is not ResponseCode.SUPERSEDED:
            assert rec.ranked_at is not None or rec.revived, rec  # only a re-ranking revives
        if ResponseCode.COMPLETED in codes:
            assert rec.lifecycle is Lifecycle.COMPLETED
