"""cactus' all-polls-at-correct-time windows, as the CSIP-AUS suite judges them (checks.py):
a gap over 1.5 intervals is a missed poll, at most one a window of 5 intervals; at most 6
requests a window of 3 intervals."""

from __future__ import annotations

from gateway.conformance.csip_aus.checks import poll_faults


def test_polls_on_time_pass() -> None:
    assert poll_faults([float(t) for t in range(0, 60, 2)], 2.0, 0.0) == []


def test_a_single_missed_poll_in_a_window_is_tolerated() -> None:
    times = [0.0, 2.0, 4.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0]  # 4 -> 8 missed one
    assert poll_faults(times, 2.0, 0.0) == []


def test_two_missed_polls_in_a_window_fail() -> None:
    times = [0.0, 4.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0]  # two gaps of 4 s in 0..10
    (fault,) = poll_faults(times, 2.0, 0.0)
    assert "2 missed polls" in fault
    assert "0..10 s" in fault


def test_the_last_partial_window_may_be_sparse() -> None:
    # Two gaps, but in the window 10..20 that the last request (at 18) leaves incomplete.
    assert poll_faults([0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 14.0, 18.0], 2.0, 0.0) == []


def test_six_requests_a_window_of_three_intervals_pass_seven_fail() -> None:
    assert poll_faults([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5], 2.0, 0.0) == []
    (fault,) = poll_faults([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0], 2.0, 0.0)
    assert "7 requests > 6 in 0..6 s" in fault
