"""The NMI check of the utility simulator's ConnectionPoint (AEMO's NMI procedure checksum)."""

from __future__ import annotations

import pytest

from gateway.sim.utility.nmi import checksum, problem


@pytest.mark.parametrize(
    ("nmi", "digit"),
    [("4123456789", 6), ("4103738516", 8), ("4102030716", 2), ("QFFF0000LV", 7)],
)
def test_checksum_of_published_examples(nmi: str, digit: int) -> None:
    assert checksum(nmi) == digit


@pytest.mark.parametrize("nmi", ["4123456789", "41234567896", "QFFF0000LV", "QFFF0000LV7"])
def test_valid_nmis(nmi: str) -> None:
    assert problem(nmi) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("412345678", "9 characters"),
        ("412345678961", "12 characters"),
        ("", "0 characters"),
        ("41234567891", "checksum of 4123456789 is 6"),
        ("qfff0000lv", "not allowed"),
        ("4123 56789", "not allowed"),
        ("41234567X9A", "checksum of 41234567X9"),  # an 11th that is no digit is no checksum
    ],
)
def test_invalid_nmis_say_why(value: str, reason: str) -> None:
    found = problem(value)
    assert found is not None
    assert reason in found
