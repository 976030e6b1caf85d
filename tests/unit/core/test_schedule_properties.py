"""Property tests for the event schedule against a brute-force oracle written from the rules.

(a) ``in_force`` equals the oracle for random events without randomisation;
(b) every mRID gets each code at most once, in a legal order, and every accepted event ends;
(c) records -> JSON -> restore gives the same answers and never repeats a code.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.controls import ControlSet, Mode
from gateway.core.schedule import (
    Event,
    EventRecord,
    EventStatus,
    ResponseCode,
    ResponseDue,
    Schedule,
    draw_with,
)
from gateway.core.units import MRID

T0 = 1_700_000_000.0
MODES = (Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W, Mode.CONNECT)
DEFAULT_EXPORT = 77.0  # a default on one mode, so gaps are filled on it and empty on the others
TERMINAL = {3, 6, 7}
REJECTIONS = {252, 253, 254}


@dataclass(frozen=True)
class Spec:
    start: int
    duration: int
    primacy: int
    created: int
    modes: tuple[Mode, ...]
    rs: int = 0
    rd: int = 0

    def event(self, i: int, status: EventStatus = EventStatus.SCHEDULED) -> Event:
        values: dict[str, Any] = {}
        for m in self.modes:
            values[m.value] = (i % 2 == 0) if m.is_boolean else float(100 * (i + 1))
        return Event(
            mrid=MRID(f"E{i}"),
            program="P",
            primacy=self.primacy,
            creation_time=T0 + self.created,
            start=T0 + self.start,
            duration=self.duration,
            controls=ControlSet(**values),
            randomize_start=self.rs,
            randomize_duration=self.rd,
            status=status,
            response_required=3,
        )


def specs(randomized: bool) -> st.SearchStrategy[Spec]:
    offsets = st.integers(-20, 20) if randomized else st.just(0)
    return st.builds(
        Spec,
        # Coarse times on purpose: the edge cases sit on exact coincidences (an end at another
        # event's start, a cancellation at the instant a mode dies).
        start=st.integers(0, 12).map(lambda k: 10 * k),
        duration=st.integers(1, 8).map(lambda k: 10 * k),
        primacy=st.integers(0, 2),
        created=st.integers(0, 2),
        modes=st.lists(st.sampled_from(MODES), min_size=1, max_size=3, unique=True).map(tuple),
        rs=offsets,
        rd=offsets,
    )


KINDS: tuple[str, ...] = (
    "offer",
    "offer",
    "repoll",
    "cancel",
    "cancel_r",
    "status2",
    "status4",
    "reuse",
)
KINDS += ("advance", "advance", "query", "query")
Op = tuple[int, str, int]  # (seconds after the previous op, what, which event)


def scenarios(randomized: bool) -> st.SearchStrategy[tuple[list[Spec], list[Op]]]:
    ops = st.lists(
        st.tuples(
            st.sampled_from([0, 0, 10, 10, 20, 5]), st.sampled_from(KINDS), st.integers(0, 5)
        ),
        min_size=1,
        max_size=30,
    )
    return st.tuples(st.lists(specs(randomized), min_size=1, max_size=6), ops)


def apply(s: Schedule, evs: list[Spec], op: Op, t: float) -> list[ResponseDue]:
    """Run one op on the schedule at absolute time t."""
    _, kind, k = op
    i = k % len(evs)
    e = evs[i].event(i)
    mrid = e.mrid
    match kind:
        case "offer" | "repoll":
            return s.offer(e, t)
        case "cancel":
            return s.cancel(mrid, t)
        case "cancel_r":
            return s.cancel(mrid, t, randomized=True)
        case "status2":
            return s.offer(replace(e, status=EventStatus.CANCELLED), t)
        case "status4":
            return s.offer(replace(e, status=EventStatus.SUPERSEDED), t)
        case "reuse":
            return s.offer(replace(e, primacy=(e.primacy + 1) % 3, duration=e.duration + 5), t)
        case "advance":
            return s.advance(t)
        case _:
            return []


# --------------------------------------------------------------------------- the oracle


class Oracle:
    """The rules of sep2.md §5.3 as the brief states them, by brute force (no randomisation).

    Kept deliberately naive: pairwise comparison of every pair of accepted events on every
    mode, recomputed for every question. Finality: a death that has happened by the time of a
    later change is frozen, and an event that would never run any mode is dead for good.
    """

    def __init__(self, evs: list[Spec], altered: set[int]) -> None:
        self.evs = evs
        self.altered = altered  # first seen with the "reuse" content: status ops differ from it
        self.seq: dict[int, int] = {}
        self.recv: dict[int, float] = {}
        self.cut: dict[int, float] = {}
        self.rejected: set[int] = set()
        self.frozen: dict[tuple[int, Mode], float] = {}
        self.never: set[int] = set()
        self.n = 0

    def span(self, i: int) -> tuple[float, float]:
        es = T0 + self.evs[i].start
        ee = es + self.evs[i].duration
        a = max(es, self.recv[i])
        return a, min(ee, self.cut.get(i, ee))

    def rank(self, i: int) -> tuple[int, int, int]:
        return (self.evs[i].primacy, -self.evs[i].created, -self.seq[i])

    def death(self, i: int, m: Mode) -> float:
        a, e = self.span(i)
        best = float("inf")
        for j in self.recv:
            if j == i or m not in self.evs[j].modes or m not in self.evs[i].modes:
                continue
            b, f = self.span(j)
            if b >= f or a >= e:
                continue  # an empty interval supersedes nothing
            if max(a, b) < min(e, f) and self.rank(j) < self.rank(i):
                best = min(best, max(a, b))
        best = min(best, self.frozen.get((i, m), best))
        return min(best, a) if i in self.never else best

    def change(self, t: float, what: Callable[[], None]) -> None:
        for i in self.recv:  # what happened under the old state is final
            for m in self.evs[i].modes:
                d = self.death(i, m)
                if d <= t:
                    self.frozen[(i, m)] = min(d, self.frozen.get((i, m), d))
        what()
        for i in self.recv:
            a, e = self.span(i)
            if a < e and all(self.death(i, m) <= a for m in self.evs[i].modes):
                self.never.add(i)

    def op(self, op: Op, t: float) -> None:
        _, kind, k = op
        i = k % len(self.evs)
        known = i in self.recv or i in self.rejected

        def receive() -> None:
            self.seq[i] = self.n
            self.n += 1
            if T0 + self.evs[i].start + self.evs[i].duration <= t:
                self.rejected.add(i)
            else:
                self.recv[i] = t

        def cut() -> None:
            if i in self.recv and i not in self.cut:
                self.cut[i] = t

        if kind in ("offer", "repoll", "reuse") and not known:
            self.change(t, receive)  # for "reuse", _fix_reuse made the altered content first
        elif kind in ("status2", "status4") and not known:

            def receive_cut() -> None:
                receive()
                cut()

            self.change(t, receive_cut)
        elif kind in ("cancel", "cancel_r") or (
            kind in ("status2", "status4") and i not in self.altered
        ):
            self.change(t, cut)

    def in_force(self, m: Mode, t: float) -> tuple[object, str | None]:
        for i in self.recv:
            if m not in self.evs[i].modes:
                continue
            a, e = self.span(i)
            if a <= t < min(e, self.death(i, m)):
                return self.evs[i].event(i).controls.get(m), f"E{i}"
        return (DEFAULT_EXPORT if m is Mode.EXPORT_LIMIT_W else None), None


def _fix_reuse(evs: list[Spec], ops: list[Op]) -> tuple[list[Spec], set[int]]:
    """A "reuse" op on an unseen event offers altered content first: make the oracle see it."""
    seen: set[int] = set()
    altered: set[int] = set()
    out = list(evs)
    for _, kind, k in ops:
        i = k % len(evs)
        if kind == "reuse" and i not in seen:
            e = evs[i]
            out[i] = replace(e, primacy=(e.primacy + 1) % 3, duration=e.duration + 5)
            altered.add(i)
        if kind not in ("advance", "query", "cancel", "cancel_r"):
            seen.add(i)
    return out, altered


@settings(max_examples=400, deadline=None)
@given(scenarios(randomized=False), st.booleans())
def test_in_force_matches_the_brute_force_oracle(scenario, with_advance):
    evs, ops = scenario
    s = Schedule(draw=lambda bound: 0)
    s.set_default("P9", 5, ControlSet(export_limit_w=DEFAULT_EXPORT))
    oracle = Oracle(*_fix_reuse(evs, ops))
    t = T0 - 50
    for op in ops:
        t += op[0]
        if op[1] == "advance" and not with_advance:
            continue  # the answer must not depend on how often advance() runs
        apply(s, evs, op, t)
        oracle.op(op, t)
        for dt in (0, 5, 10, 25, 60, 200):
            for m in MODES:
                got = s.in_force(m, t + dt)
                assert (got.value, got.mrid) == oracle.in_force(m, t + dt), (m, t + dt - T0)
        act = s.active(t)
        assert act == {m: s.in_force(m, t) for m in Mode if s.in_force(m, t).value is not None}
    codes_agree_with_in_force(s, t + 10_000)


def codes_agree_with_in_force(s: Schedule, end: float) -> None:
    """The lifecycle codes tell the same story as in_force (which the oracle checks)."""
    s.advance(end)
    eps = 1e-3
    for rec in s.records():
        mine = [m for m in MODES if m in rec.event.controls.modes()]

        def runs(t: float, mine: list[Mode] = mine, mrid: str = rec.mrid) -> bool:
            return any(s.in_force(m, t).mrid == mrid for m in mine)

        ended = [at for c, at, _ in rec.history if int(c) in TERMINAL]
        for code, at, _ in rec.history:
            if code is ResponseCode.STARTED:
                # A change arriving at the very instant of the start ends a zero-length run.
                assert runs(at) or ended == [at], (rec.mrid, "2 but nothing in force")
            elif code is ResponseCode.COMPLETED:
                assert runs(at - eps), (rec.mrid, "3 but it was not running up to its end")
                assert not runs(at), (rec.mrid, "3 but still in force")
            elif code in (ResponseCode.CANCELLED, ResponseCode.SUPERSEDED):
                assert not runs(at), (rec.mrid, f"{int(code)} but still in force")
                if ResponseCode.STARTED not in rec.codes:
                    for k in range(0, 400, 5):  # never started: never in force at all
                        assert not runs(T0 - 50 + k), (rec.mrid, "in force but never started")


# --------------------------------------------------------------------------- legal order


def check_legal(responses: list[ResponseDue]) -> dict[str, list[int]]:
    per: dict[str, list[ResponseDue]] = {}
    for r in responses:
        per.setdefault(r.mrid, []).append(r)
    out: dict[str, list[int]] = {}
    for mrid, rs in per.items():
        seq = [int(r.code) for r in rs]
        out[mrid] = seq
        assert len(seq) == len(set(seq)), (mrid, seq)  # each code at most once
        if seq[0] in REJECTIONS:
            assert len(seq) == 1, (mrid, seq)  # a rejected event is never heard of again
            continue
        assert seq[0] == 1, (mrid, seq)  # 1 first unless rejected
        life = [c for c in seq[1:] if c != 253]  # 253 after 1 = mRID reuse, not a transition
        assert life in ([], [2], [2, 3], [2, 6], [2, 7], [6], [7]), (mrid, seq)
        ats = [r.at for r in rs if r.code != 253]
        assert ats == sorted(ats), (mrid, ats)
    return out


@settings(max_examples=300, deadline=None)
@given(scenarios(randomized=True), st.integers(0, 2**32))
def test_each_code_at_most_once_in_a_legal_order(scenario, seed):
    evs, ops = scenario
    s = Schedule(draw=draw_with(random.Random(seed)))
    t = T0 - 50
    out: list[ResponseDue] = []
    for op in ops:
        t += op[0]
        out += apply(s, evs, op, t)
    out += s.advance(t + 10_000)
    seqs = check_legal(out)
    for rec in s.records():  # every accepted event has ended, one way or another
        seq = seqs[rec.mrid]
        assert seq[0] in REJECTIONS or TERMINAL & set(seq), (rec.mrid, seq)
        assert set(rec.emitted) == {ResponseCode(c) for c in seq}


# --------------------------------------------------------------------------- restore


class SwitchableDraw:
    """A seeded draw whose source the test can swap mid-run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self, bound: int) -> int:
        return draw_with(self.rng)(bound)


def restored_copy(s: Schedule, draw: Callable[[int], int]) -> Schedule:
    docs = json.loads(json.dumps([r.to_dict() for r in s.records()]))
    r = Schedule(draw=draw)
    r.restore([EventRecord.from_dict(d) for d in docs])
    r.restore_defaults(json.loads(json.dumps(s.defaults())))
    return r


@settings(max_examples=200, deadline=None)
@given(scenarios(randomized=True), st.integers(0, 2**32), st.data())
def test_restore_gives_the_same_answers_and_repeats_no_code(scenario, seed, data):
    evs, ops = scenario
    split = data.draw(st.integers(0, len(ops)), label="split")
    draw = SwitchableDraw(seed)
    s = Schedule(draw=draw)
    s.set_default("P9", 5, ControlSet(export_limit_w=DEFAULT_EXPORT))
    t = T0 - 50
    before: list[ResponseDue] = []
    for op in ops[:split]:
        t += op[0]
        before += apply(s, evs, op, t)
    # From here on both draw the same numbers, so they must agree on everything.
    draw.rng = random.Random(seed + 1)
    r = restored_copy(s, draw_with(random.Random(seed + 1)))
    assert r.records() == s.records()
    for dt in (0, 10, 50, 300):
        for m in MODES:
            assert r.in_force(m, t + dt) == s.in_force(m, t + dt)
    after_s: list[ResponseDue] = []
    after_r: list[ResponseDue] = []
    for op in ops[split:]:
        t += op[0]
        after_s += apply(s, evs, op, t)
        after_r += apply(r, evs, op, t)
        for m in MODES:
            assert r.in_force(m, t) == s.in_force(m, t)
    after_s += s.advance(t + 10_000)
    after_r += r.advance(t + 10_000)
    assert after_r == after_s
    check_legal(before + after_r)  # no code handed out twice across the restart
    assert r.records() == s.records()


# --------------------------------------------------------------------------- inert records


@settings(max_examples=300, deadline=None)
@given(
    scenario=scenarios(randomized=True),
    seed=st.integers(0, 2**16),
    after=st.sampled_from([0.0, 10.0]),
)
def test_finished_records_left_out_of_re_planning_change_no_answer_about_now(
    scenario: tuple[list[Spec], list[Op]], seed: int, after: float
) -> None:
    """With ``inert_after_s`` (the engine's setting) a change re-plans without the records
    finished that long ago. Every response, and what is in force at the time of each
    operation and after it, must be what the exact schedule says."""
    evs, ops = scenario
    exact = Schedule(draw=draw_with(random.Random(seed)))
    lean = Schedule(draw=draw_with(random.Random(seed)), inert_after_s=after)
    for s in (exact, lean):
        s.set_default("P", 1, ControlSet(export_limit_w=DEFAULT_EXPORT))
    t = T0 - 30
    for op in ops:
        t += op[0]
        got = [(r.mrid, int(r.code), r.at) for r in apply(lean, evs, op, t)]
        assert got == [(r.mrid, int(r.code), r.at) for r in apply(exact, evs, op, t)], op
        for when in (t, t + 5, t + 50):
            for m in MODES:
                assert lean.in_force(m, when) == exact.in_force(m, when), (op, m, when)


def test_a_running_winner_still_names_whom_it_superseded_once_they_are_left_out() -> None:
    long = Spec(start=0, duration=1000, primacy=0, created=0, modes=(Mode.EXPORT_LIMIT_W,))
    short = Spec(start=0, duration=10, primacy=1, created=0, modes=(Mode.EXPORT_LIMIT_W,))
    other = Spec(start=500, duration=10, primacy=2, created=0, modes=(Mode.CONNECT,))
    evs = [long, short, other]
    exact, lean = (Schedule(draw=lambda b: 0, inert_after_s=a) for a in (None, 10.0))
    for s in (exact, lean):
        s.offer(evs[0].event(0), T0 - 5)
        s.offer(evs[1].event(1), T0 - 5)  # superseded at once: never runs
        s.offer(evs[2].event(2), T0 + 100)  # a change 90 s after E1's end: E1 is left out
    got = lean.in_force(Mode.EXPORT_LIMIT_W, T0 + 100)
    assert got.supersedes == (MRID("E1"),)
    assert got == exact.in_force(Mode.EXPORT_LIMIT_W, T0 + 100)


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(randomized=False), cut=st.integers(0, 30))
def test_records_left_out_come_back_after_a_restore_or_a_prune_and_answers_hold(
    scenario: tuple[list[Spec], list[Op]], cut: int
) -> None:
    """A restore (records from the store) and a prune reset what was left out; the next
    change leaves it out again, and answers about now still match the exact schedule."""
    evs, ops = scenario
    exact = Schedule(draw=lambda b: 0)
    lean = Schedule(draw=lambda b: 0, inert_after_s=0.0)
    t = T0 - 30
    for n, op in enumerate(ops):
        t += op[0]
        if n == cut % (len(ops) + 1):
            restored = Schedule(draw=lambda b: 0, inert_after_s=0.0)
            restored.restore(lean.records())
            lean = restored
            assert lean.prune(t, older_than_s=40) == exact.prune(t, older_than_s=40)
        got = [(r.mrid, int(r.code), r.at) for r in apply(lean, evs, op, t)]
        assert got == [(r.mrid, int(r.code), r.at) for r in apply(exact, evs, op, t)], op
        for m in MODES:
            assert lean.in_force(m, t) == exact.in_force(m, t), (op, m)
