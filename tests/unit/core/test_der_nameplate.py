"""A DER's VA / var / PF nameplate (reported in DERCapability, never commanded)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.core.backfeed import DerRating, _der_ok
from gateway.demo.evening import demo_site

EV = DerRating("ev", "charger", max_discharge_w=7_400, max_charge_w=11_000)


def test_unconfigured_means_unity_power_factor_at_the_larger_w_rating() -> None:
    assert EV.va_rating == 11_000  # the charge rating is the larger
    assert (EV.var_rating, EV.var_neg_rating) == (0.0, 0.0)
    assert (EV.pf_over_excited_rating, EV.pf_under_excited_rating) == (1.0, 1.0)
    assert EV.nameplate_problems() == []


def test_the_2030_5_defaults_var_received_is_var_delivered_pf_under_is_pf_over() -> None:
    ev = replace(EV, max_va=12_000, max_var=5_000, min_pf_over_excited=0.9)
    assert (ev.va_rating, ev.var_rating, ev.var_neg_rating) == (12_000, 5_000, 5_000)
    assert (ev.pf_over_excited_rating, ev.pf_under_excited_rating) == (0.9, 0.9)
    ev = replace(ev, max_var_neg=2_000, min_pf_under_excited=0.8)
    assert (ev.var_neg_rating, ev.pf_under_excited_rating) == (2_000, 0.8)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"max_va": -1.0}, "max_va must be a number >= 0"),
        ({"max_var": float("inf")}, "max_var must be a number >= 0"),
        ({"max_var_neg": True}, "max_var_neg must be a number >= 0"),
        ({"min_pf_over_excited": 0.0}, "min_pf_over_excited must be in (0, 1]"),
        ({"min_pf_under_excited": 1.0001}, "min_pf_under_excited must be in (0, 1]"),
        ({"min_pf_under_excited": float("nan")}, "min_pf_under_excited must be in (0, 1]"),
        ({"max_va": 10_000.0}, "max_va (10000) is below the W rating (11000)"),
        ({"max_var": 11_001.0}, "max_var (11001) exceeds the VA rating (11000)"),
        ({"max_va": 12_000.0, "max_var_neg": 12_500.0}, "max_var_neg (12500) exceeds"),
    ],
)
def test_an_absurd_nameplate_is_a_site_problem_but_not_a_control_one(
    change: dict[str, float], problem: str
) -> None:
    ev = replace(EV, **change)  # type: ignore[arg-type]
    assert [p for p in ev.nameplate_problems() if problem in p], ev.nameplate_problems()
    site = replace(demo_site(), ders=(demo_site().ders[0], ev))
    assert any(problem in p and p.startswith("DER ev: ") for p in site.problems())
    # Reported-only: the control cycle's validity (problems() / _der_ok) does not change.
    assert ev.problems() == []
    assert _der_ok(ev)


def test_exactly_unity_and_zero_are_fine() -> None:
    ev = replace(
        EV, max_va=11_000, max_var=0, max_var_neg=0, min_pf_over_excited=1, min_pf_under_excited=1
    )
    assert ev.nameplate_problems() == []
