"""rampTms: a new limit is reached over the ramp time, from where the site was measured."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.backfeed import Limits
from gateway.core.ramp import Ramps

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
