"""The server-time estimate (``timebase.ServerClock``): whole-second ``Time`` samples narrow an
interval the offset must lie in, instead of each one resetting it.

A server is simulated exactly: its clock is ``local + true_offset``, it reads ``currentTime``
(floored to the second) at some instant inside each round trip.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.north.sep2.resources import Time
from gateway.north.sep2.timebase import DRIFT, ServerClock


def sample(true_offset: float, sent: float, rtt: float, at: float) -> tuple[Time, float, float]:
    """A GET Time sent at local ``sent``, answered ``rtt`` later, read at fraction ``at``."""
    read = sent + at * rtt
    t = Time(
        currentTime=math.floor(read + true_offset),
        dstEndTime=0,
        dstOffset=0,
        dstStartTime=0,
        quality=4,
        tzOffset=0,
    )
    return t, sent, sent + rtt


SAMPLES = st.lists(
    st.tuples(
        st.floats(1.0, 600.0),  # seconds since the previous sample
        st.floats(0.0, 0.3),  # round trip
        st.floats(0.0, 1.0),  # where in it the server read its clock
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(true_offset=st.floats(-1e6, 1e9), samples=SAMPLES)
def test_the_true_offset_stays_inside_the_interval_and_the_estimate_never_jumps_past_it(
    true_offset: float, samples: list[tuple[float, float, float]]
) -> None:
    clock, local = ServerClock(), 1000.0
    for gap, rtt, at in samples:
        local += gap
        before = clock
        clock = clock.update(
            *sample(true_offset, local, rtt, at)[:1], sent=local, received=local + rtt
        )
        assert clock.low_s is not None
        assert clock.high_s is not None
        slack = 1e-6 * max(1.0, abs(true_offset))  # float rounding of large times
        assert clock.low_s - slack <= true_offset <= clock.high_s + slack
        # The interval never widens past one sample's (1 s + the round trip) ...
        assert clock.high_s - clock.low_s <= 1 + rtt + 1e-6
        # ... and a sample that agrees with what was kept moves the estimate by less than a
        # whole second (a reset did: up to 1 s backwards at every walk).
        if before.synced:
            assert abs(clock.offset_s - before.offset_s) < 1 + rtt + slack


def test_samples_close_in_on_the_servers_clock() -> None:
    true_offset, clock, local = 12_345.678, ServerClock(), 50.0
    first = None
    for i in range(30):
        local += 37.0 + 0.113 * i  # the sub-second phase of the samples varies
        t, sent, received = sample(true_offset, local, 0.02, 0.5)
        clock = clock.update(t, sent=sent, received=received)
        first = first if first is not None else abs(clock.offset_s - true_offset)
    assert first is not None
    assert first <= 0.5 + 0.02  # one sample: within half a second and half the round trip
    assert abs(clock.offset_s - true_offset) < 0.05  # thirty: within a few hundredths
    assert clock.high_s is not None
    assert clock.low_s is not None
    assert clock.high_s - clock.low_s < 0.2  # what is left: mostly the drift allowance


def test_a_stepped_server_clock_is_followed_at_the_next_sample() -> None:
    clock = ServerClock()
    for i in range(5):
        t, sent, received = sample(100.25, 10.0 + 60 * i, 0.01, 0.3)
        clock = clock.update(t, sent=sent, received=received)
    t, sent, received = sample(110.25, 400.0, 0.01, 0.3)  # the server was set 10 s ahead
    clock = clock.update(t, sent=sent, received=received)
    assert abs(clock.offset_s - 110.25) <= 0.51


def test_kept_bounds_widen_with_the_time_since_for_drift() -> None:
    t, sent, received = sample(0.4, 0.0, 0.0, 0.0)
    clock = ServerClock().update(t, sent=sent, received=received)
    assert (clock.low_s, clock.high_s) == (0.0, 1.0)
    # A day later the server has drifted 0.5 s + a little past what the first sample allowed.
    day = 86_400.0
    t, sent, received = sample(1.0 + 0.5 * DRIFT * day, day, 0.0, 0.0)
    clock = clock.update(t, sent=sent, received=received)
    assert clock.low_s is not None
    assert clock.high_s is not None
    assert clock.low_s <= 1.0 + 0.5 * DRIFT * day <= clock.high_s
