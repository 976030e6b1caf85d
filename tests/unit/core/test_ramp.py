"""rampTms: a new limit is reached over the ramp time, from where the site was measured."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.backfeed import Limits
from gateway.core.ramp import DEFAULT_STEP_S, Ramps, entry_rate, step_of

T0 = 1_700_000_000.0


def export(r: Ramps, limit: float | None, ramp: float | None, measured: float, t: float) -> float:
    value = r.apply(Limits(export_limit_w=limit), ramp, {"export_limit_w": measured}, T0 + t)
    assert value.export_limit_w is not None
    return value.export_limit_w


def test_a_tightening_limit_ramps_down_from_the_measured_export() -> None:
    r = Ramps()
    export(r, 5000, None, 1700, 0)  # first sight: no ramp
    assert export(r, 200, 6, 1700, 1) == 1700  # starts at what the site exports, not at 5000
    assert export(r, 200, 6, 1500, 4) == 1700 + (200 - 1700) * 3 / 6
    assert export(r, 200, 6, 300, 7) == 200
    assert r.ramping() == []


def test_without_a_ramp_time_the_limit_is_a_step() -> None:
    r = Ramps()
    export(r, 5000, None, 1700, 0)
    assert export(r, 200, None, 1700, 1) == 200
    assert export(r, 200, 0, 1700, 1) == 200


def test_removing_a_limit_is_immediate_and_a_new_one_ramps_from_the_measurement() -> None:
    r = Ramps()
    r.apply(Limits(), None, {}, T0)
    assert r.apply(Limits(), 5, {}, T0 + 1).export_limit_w is None
    assert export(r, 1000, 10, 3000, 2) == 3000
    assert export(r, 1000, 10, 3000, 7) == 2000


@given(
    start=st.floats(0, 20_000),
    target=st.floats(0, 20_000),
    ramp=st.floats(0.1, 600),
    fractions=st.lists(st.floats(0, 2), min_size=1, max_size=20),
)
def test_a_ramped_limit_stays_between_where_it_started_and_the_target(
    start: float, target: float, ramp: float, fractions: list[float]
) -> None:
    r = Ramps()
    export(r, start, None, start, 0)
    lo, hi = min(start, target), max(start, target)
    assert export(r, target, ramp, start, 1) == (start if start != target else target)
    for f in sorted(fractions):
        value = export(r, target, ramp, start, 1 + f * ramp)
        assert lo - 1e-6 <= value <= hi + 1e-6
        if f >= 1:  # done (within float resolution of a POSIX time around 1.7e9 s)
            assert abs(value - target) <= 1e-6 * (hi - lo) + 1e-6


def _export_at_rate(r: Ramps, limit: float, rate: float | None, measured: float, t: float) -> float:
    value = r.apply(Limits(export_limit_w=limit), None, {"export_limit_w": measured}, T0 + t, rate)
    assert value.export_limit_w is not None
    return value.export_limit_w


def test_a_default_ramp_rate_moves_the_limit_at_that_many_watts_per_second() -> None:
    r = Ramps()
    _export_at_rate(r, 5000, 100.0, 3000, 0)
    # 3000 W exported, new limit 0 W at 100 W/s: 30 s, from the measurement.
    assert _export_at_rate(r, 0, 100.0, 3000, 1) == 3000
    assert _export_at_rate(r, 0, 100.0, 2000, 11) == 2000
    assert _export_at_rate(r, 0, 100.0, 200, 31) == 0
    assert r.ramping() == []


def test_ramp_time_wins_over_the_default_rate() -> None:
    r = Ramps()
    r.apply(Limits(export_limit_w=5000), None, {"export_limit_w": 3000}, T0, 100.0)
    got = r.apply(Limits(export_limit_w=0), 10, {"export_limit_w": 3000}, T0 + 1, 100.0)
    assert got.export_limit_w == 3000
    later = r.apply(Limits(export_limit_w=0), 10, {"export_limit_w": 3000}, T0 + 6, 100.0)
    assert later.export_limit_w == 1500  # half of 10 s, not 5 s x 100 W/s


# --------------------------------------------------------------------------- soft start


RATED = 10_000.0


def gen(
    r: Ramps,
    limit: float | None,
    t: float,
    *,
    in_service: bool,
    soft: float | None = 50.0,
    ramp: float | None = None,
) -> float | None:
    """The generation limit the allocator gets; ``soft`` in W/s (setSoftGradW x rating)."""
    value = r.apply(
        Limits(generation_limit_w=limit),
        ramp,
        {"generation_limit_w": 0.0},
        T0 + t,
        in_service=in_service,
        soft_w_per_s=soft,
        rated_w=RATED,
    )
    return value.generation_limit_w


def test_entering_service_soft_starts_the_output_limit_from_zero_at_the_rate() -> None:
    r = Ramps()
    assert gen(r, 4000, 0, in_service=True) == 4000  # first sight: a restart is no entry
    assert gen(r, 4000, 10, in_service=False) == 4000  # islanded: the DER are stopped anyway
    assert gen(r, 4000, 20, in_service=True) == 0  # re-entered service: from 0 W ...
    assert r.soft_starting
    assert gen(r, 4000, 30, in_service=True) == 500  # ... at 50 W/s ...
    assert gen(r, 4000, 99, in_service=True) == 3950
    assert gen(r, 4000, 100, in_service=True) == 4000  # ... up to the limit in force
    assert not r.soft_starting
    assert gen(r, 4000, 200, in_service=True) == 4000


def test_with_no_limit_in_force_the_soft_start_runs_up_to_the_rating() -> None:
    r = Ramps()
    gen(r, None, 0, in_service=False)
    assert gen(r, None, 1, in_service=True) == 0
    assert gen(r, None, 101, in_service=True) == 5000
    assert gen(r, None, 1 + RATED / 50 - 1, in_service=True) == RATED - 50
    assert gen(r, None, 1 + RATED / 50, in_service=True) is None  # over: unlimited again
    assert not r.soft_starting


def test_without_a_soft_start_rate_entering_service_changes_nothing() -> None:
    r = Ramps()
    gen(r, 4000, 0, in_service=False, soft=None)
    assert gen(r, 4000, 1, in_service=True, soft=None) == 4000
    assert gen(r, 4000, 2, in_service=False, soft=0.0)
    assert gen(r, 4000, 3, in_service=True, soft=0.0) == 4000
    assert not r.soft_starting


def test_leaving_service_or_losing_the_rate_ends_the_soft_start() -> None:
    r = Ramps()
    gen(r, 4000, 0, in_service=False)
    assert gen(r, 4000, 1, in_service=True) == 0
    assert gen(r, 4000, 11, in_service=True) == 500
    assert gen(r, 4000, 12, in_service=False) == 4000
    assert not r.soft_starting
    assert gen(r, 4000, 13, in_service=True) == 0  # a new entry starts again from 0
    assert gen(r, 4000, 14, in_service=True, soft=None) == 4000  # default withdrawn: over
    assert not r.soft_starting


def test_only_the_output_limit_soft_starts() -> None:
    r = Ramps()
    limits = Limits(export_limit_w=3000, import_limit_w=2000, load_limit_w=1000)
    kw = {"soft_w_per_s": 50.0, "rated_w": RATED}
    r.apply(limits, None, {}, T0, in_service=False, **kw)
    got = r.apply(limits, None, {}, T0 + 1, in_service=True, **kw)
    assert got.generation_limit_w == 0
    assert (got.export_limit_w, got.import_limit_w, got.load_limit_w) == (3000, 2000, 1000)


def test_a_limit_that_changes_during_the_soft_start_still_ramps_under_its_line() -> None:
    r = Ramps()
    gen(r, 4000, 0, in_service=False)
    assert gen(r, 4000, 1, in_service=True) == 0
    assert gen(r, 4000, 10, in_service=True) == 450
    # The limit drops to 1000 W with a 10 s ramp: it ramps from 450 W, under the line.
    assert gen(r, 1000, 11, in_service=True, ramp=10) == 450  # the line is at 500 W
    assert gen(r, 1000, 16, in_service=True, ramp=10) == 725  # the line is at 750 W
    assert gen(r, 1000, 21, in_service=True, ramp=10) == 1000
    assert not r.soft_starting


@given(
    limit=st.one_of(st.none(), st.floats(0, 20_000)),
    rate=st.floats(0.5, 5_000),
    times=st.lists(st.floats(0, 3_600), min_size=1, max_size=20),
)
def test_a_soft_start_rises_monotonically_along_its_line_and_ends_at_the_limit(
    limit: float | None, rate: float, times: list[float]
) -> None:
    r = Ramps()
    gen(r, limit, 0, in_service=False, soft=rate)
    entered = 1.0
    first = gen(r, limit, entered, in_service=True, soft=rate)
    assert first == (0 if (RATED if limit is None else limit) > 0 else limit)
    previous = 0.0
    ceiling = RATED if limit is None else limit
    for t in sorted(entered + x for x in times):
        value = gen(r, limit, t, in_service=True, soft=rate)
        line = rate * (t - entered)
        if r.soft_starting:
            assert value is not None
            # (within the float resolution of a POSIX time around 1.7e9 s, times the rate)
            assert abs(value - line) <= rate * 1e-6 + 1e-9 * line
            assert value < ceiling
        else:
            assert value == limit  # over: the limit in force, exactly
        got = ceiling if value is None else value
        assert got >= previous - 1e-9
        previous = got


# --------------------------------------------------------------------------- setESRampTms


def test_entry_rate_is_the_enter_service_ramp_or_the_soft_start_whichever_is_slower() -> None:
    assert entry_rate(None, None, RATED) is None
    assert entry_rate(0.0, 0.0, RATED) is None  # 0 = not given, for both
    assert entry_rate(50.0, None, RATED) == 50.0
    assert entry_rate(None, 100.0, RATED) == RATED / 100  # the rating over the ramp time
    assert entry_rate(50.0, 100.0, RATED) == 50.0  # 50 W/s < 100 W/s
    assert entry_rate(500.0, 100.0, RATED) == RATED / 100  # 100 W/s < 500 W/s
    assert entry_rate(None, 100.0, 0.0) is None  # no rating: nothing to ramp towards
    # A ramp time too short for a finite rate is no ramp, never an infinite (NaN) line.
    assert entry_rate(None, 5e-324, RATED) is None
    assert entry_rate(50.0, 5e-324, RATED) == 50.0


def test_the_enter_service_ramp_reaches_the_rating_after_its_ramp_time() -> None:
    r = Ramps()
    rate = entry_rate(None, 100.0, RATED)
    gen(r, None, 0, in_service=False, soft=rate)
    assert gen(r, None, 1, in_service=True, soft=rate) == 0  # from 0 W on entering service
    assert gen(r, None, 51, in_service=True, soft=rate) == RATED / 2  # half way at half time
    assert gen(r, None, 100, in_service=True, soft=rate) == RATED * 99 / 100
    assert gen(r, None, 101, in_service=True, soft=rate) is None  # the rating: over
    assert not r.soft_starting


def test_under_a_lower_limit_the_enter_service_ramp_ends_sooner() -> None:
    r = Ramps()
    rate = entry_rate(None, 100.0, RATED)  # 100 W/s
    gen(r, 4000, 0, in_service=False, soft=rate)
    assert gen(r, 4000, 1, in_service=True, soft=rate) == 0
    assert gen(r, 4000, 21, in_service=True, soft=rate) == 2000
    assert gen(r, 4000, 41, in_service=True, soft=rate) == 4000  # 40 s, not 100 s
    assert not r.soft_starting


@given(
    limit=st.one_of(st.none(), st.floats(0, 20_000)),
    soft=st.one_of(st.none(), st.floats(0, 5_000)),
    ramp_s=st.one_of(st.none(), st.floats(0, 86_400)),
    times=st.lists(st.floats(0, 86_400), min_size=1, max_size=20),
)
def test_output_never_exceeds_either_entry_line_and_ends_at_the_limit(
    limit: float | None,
    soft: float | None,
    ramp_s: float | None,
    times: list[float],
) -> None:
    """Whatever setSoftGradW and setESRampTms say, the output limit stays under both lines
    from the moment of entry, and ends at the limit in force (the rating when none is)."""
    r = Ramps()
    rate = entry_rate(soft, ramp_s, RATED)
    gen(r, limit, 0, in_service=False, soft=rate)
    entered = 1.0
    ceiling = RATED if limit is None else limit
    lines = [s for s in (soft,) if s is not None and s > 0]
    if ramp_s is not None and ramp_s > 0 and math.isfinite(RATED / ramp_s):
        lines.append(RATED / ramp_s)
    for t in [entered, *sorted(entered + x for x in times)]:
        value = gen(r, limit, t, in_service=True, soft=rate)
        got = ceiling if value is None else value
        for line in lines:
            # (within the float resolution of a POSIX time around 1.7e9 s, times the rate)
            assert got <= line * (t - entered) + line * 1e-6 + 1e-6, (t - entered, got, line)
        assert got <= ceiling
        if not r.soft_starting:
            assert value == limit


# --------------------------------------------------------------------------- pacing


def paced(
    r: Ramps,
    limit: float | None,
    t: float,
    *,
    measured: float = 1700.0,
    rate: float | None = 100.0,
    step: float = 1.0,
) -> float | None:
    value = r.apply(
        Limits(export_limit_w=limit),
        None,
        {"export_limit_w": measured},
        T0 + t,
        rate,
        step_s=step,
    )
    return value.export_limit_w


def test_a_falling_ramp_steps_once_a_second_ahead_of_its_line() -> None:
    r = Ramps()
    paced(r, 5000, 0)
    # 1700 W -> 200 W at 100 W/s: 15 s. At once, where the line is one step on.
    assert paced(r, 200, 10) == 1600
    assert paced(r, 200, 10.001) == 1600  # a confirmation a millisecond later: no new value
    assert paced(r, 200, 10.999) == 1600
    assert paced(r, 200, 11) == 1500
    assert paced(r, 200, 13.5) == 1300  # a missed step: as far as the rate allows
    assert paced(r, 200, 24.2) == 200  # ahead: the last step lands on the target
    assert paced(r, 200, 25) == 200
    assert r.ramping() == []


def test_a_rising_ramp_steps_once_a_second_behind_its_line() -> None:
    r = Ramps()
    paced(r, 200, 0, measured=200)
    assert paced(r, 1700, 10, measured=200) == 200  # from where it was, not a step
    assert paced(r, 1700, 10.5, measured=300) == 200
    assert paced(r, 1700, 11, measured=300) == 300
    assert paced(r, 1700, 11.9, measured=300) == 300
    assert paced(r, 1700, 24.99, measured=1500) == 1600
    assert paced(r, 1700, 25, measured=1600) == 1700  # the target, exactly, at the end
    assert r.ramping() == []


def test_a_ramps_end_is_one_of_its_steps() -> None:
    """15 s ramps in 2 s steps: the target comes with a step, never as one more write."""
    r = Ramps()
    paced(r, 200, 0, measured=200)
    assert paced(r, 1700, 10, measured=200, step=2) == 200
    assert paced(r, 1700, 24, measured=1500, step=2) == 1600
    assert paced(r, 1700, 25, measured=1600, step=2) == 1600  # ramp time over, no step yet
    assert paced(r, 1700, 26, measured=1600, step=2) == 1700
    assert r.ramping() == []
    f = Ramps()
    paced(f, 5000, 0)
    assert paced(f, 200, 10, step=2) == 1500  # at once, two seconds' worth ahead
    assert paced(f, 200, 23.9, step=2) == 300
    assert paced(f, 200, 24, step=2) == 200  # the last step, before the ramp time is over
    assert paced(f, 200, 25, step=2) == 200


@given(
    start=st.floats(0, 20_000),
    target=st.floats(0, 20_000),
    rate=st.floats(1, 5_000),
    step=st.floats(0.05, 10),
    times=st.lists(st.floats(0, 100), min_size=1, max_size=40),
)
def test_a_paced_ramp_is_never_above_the_unpaced_one_and_moves_once_per_step(
    start: float, target: float, rate: float, step: float, times: list[float]
) -> None:
    """Pacing only ever holds a limit back on the restrictive side, moves it at most once per
    grid step, and still ends at the target."""
    a, b = Ramps(), Ramps()
    for r in (a, b):
        paced(r, start, 0, measured=start, rate=rate)
    moves = 0
    last: float | None = None
    for t in [1.0, *sorted(1.0 + x for x in times)]:
        got = paced(a, target, t, measured=start, rate=rate, step=step)
        line = paced(b, target, t, measured=start, rate=rate, step=0.0)
        assert got is not None
        assert line is not None
        assert got <= line + 1e-6 * max(start, target) + 1e-6, (t, got, line)
        assert min(start, target) - 1e-6 <= got <= max(start, target) + 1e-6
        moves += last is not None and got != last
        last = got
    duration = abs(target - start) / rate
    assert moves <= duration / step + 1 + 1e-6  # the end is one of the steps, not one more
    # Over at the first step at or past the end (a falling ramp at the last one before it).
    end = 1 + duration + step + 1e-3
    assert paced(a, target, end, measured=start, rate=rate, step=step) == target


def test_a_paced_soft_start_stays_under_its_line_in_steps() -> None:
    r = Ramps()

    def soft(t: float) -> float | None:
        value = r.apply(
            Limits(generation_limit_w=4000),
            None,
            {"generation_limit_w": 0.0},
            T0 + t,
            in_service=t >= 1,
            soft_w_per_s=50.0,
            rated_w=RATED,
            step_s=2.0,
        )
        return value.generation_limit_w

    soft(0)
    assert soft(1) == 0
    assert soft(2.9) == 0  # the line is at 95 W: the next step is at 3 s
    assert soft(3) == 100
    assert soft(4.5) == 100
    assert soft(80.9) == 3900
    assert soft(81) == 4000  # over: the limit in force
    assert not r.soft_starting


def test_a_ramp_says_when_it_starts_and_ends() -> None:
    r = Ramps()
    paced(r, 5000, 0)
    assert r.take_notes() == []
    paced(r, 200, 1)
    (started,) = r.take_notes()
    assert started == (
        "ramp of export_limit_w: 1700 W -> 200 W over 15.0 s (100 W/s), one step per 1 s"
    )
    for t in range(2, 16):
        paced(r, 200, t)
    assert r.take_notes() == []  # nothing per step
    paced(r, 200, 16)
    assert r.take_notes() == ["ramp of export_limit_w over: 200 W in force"]
    paced(r, 1000, 17, measured=200)
    paced(r, 3000, 18, measured=300)
    assert r.take_notes()[-1].endswith("instead of the ramp to 1000 W")
    paced(r, 3000, 19, rate=None)
    paced(r, 2500, 20, rate=None)
    assert r.take_notes() == ["ramp of export_limit_w to 3000 W ended: 2500 W applies at once"]


def test_the_ramp_step_is_the_slowest_der_interval() -> None:
    assert step_of({}, ["pv", "ev"]) == DEFAULT_STEP_S == 1.0
    assert step_of({"pv": 0.2, "ev": 0.5}, ["pv", "ev"]) == 0.5
    assert step_of({"pv": 0.2}, ["pv", "ev"]) == DEFAULT_STEP_S  # ev: the default
    assert step_of({"pv": 3.0, "other": 9.0}, ["pv"]) == 3.0
