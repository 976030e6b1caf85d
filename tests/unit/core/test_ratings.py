"""MUL-03 step d, the pure parts: which rating of each DER is in force (min(configured,
device's)), which readings are changes, and the engine's DerRated input."""

from __future__ import annotations

import math

import pytest

from gateway.core.backfeed import DerRating
from gateway.core.engine import Engine
from gateway.core.messages import DerRated, Tick
from gateway.core.ratings import changed, in_force
from gateway.demo.evening import demo_site

DERS = (
    DerRating("pv", "pv", max_discharge_w=7_000),
    DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
)


def test_MUL_03_a_devices_rating_lowers_the_configured_one_and_never_raises_it() -> None:
    assert in_force(DERS, {}) == {"pv": 7_000, "ev": 9_600}
    assert in_force(DERS, {"pv": 5_000, "ev": 7_400}) == {"pv": 5_000, "ev": 7_400}
    # The installer's configuration is the ceiling: a bigger nameplate changes nothing.
    assert in_force(DERS, {"pv": 9_000, "ev": 25_000}) == {"pv": 7_000, "ev": 9_600}


@pytest.mark.parametrize("reading", [0.0, -100.0, math.nan, math.inf, -math.inf])
def test_MUL_03_a_reading_that_is_no_rating_leaves_the_configured_one(reading: float) -> None:
    assert in_force(DERS, {"pv": reading}) == {"pv": 7_000, "ev": 9_600}


def test_MUL_03_a_device_the_configuration_does_not_name_is_ignored() -> None:
    assert in_force(DERS, {"battery": 3_000}) == {"pv": 7_000, "ev": 9_600}


def test_MUL_03_only_a_reading_that_differs_from_the_one_fed_is_a_change() -> None:
    assert changed({}, {"pv": 7_000, "ev": 7_400}) == {"pv": 7_000, "ev": 7_400}
    assert changed({"pv": 7_000, "ev": 7_400}, {"pv": 7_000, "ev": 7_400}) == {}
    assert changed({"pv": 7_000, "ev": 7_400}, {"pv": 5_000, "ev": 7_400}) == {"pv": 5_000}
    # A device that did not answer this time is not a change (its last rating stays).
    assert changed({"pv": 7_000, "ev": 7_400}, {"ev": 7_400}) == {}


def test_MUL_03_der_rated_moves_the_engines_ratings_and_its_ramp_reference() -> None:
    engine = Engine(demo_site(), draw=lambda bound: 0)
    configured = {d.der_id: d.max_discharge_w for d in demo_site().ders}
    assert engine.der_ratings == configured
    assert engine._rated_w == sum(configured.values())
    engine.handle(Tick(1.0))
    engine.handle(DerRated(2.0, "ev", 7_400.0))
    engine.handle(DerRated(3.0, "pv", 5_000.0))
    assert engine.der_ratings == {"pv": 5_000.0, "ev": 7_400.0}
    assert engine._rated_w == 12_400.0  # what setGradW / setSoftGradW are a percentage of
    engine.handle(DerRated(4.0, "pv", 12_000.0))  # above the configured 7 kW
    assert engine.der_ratings["pv"] == configured["pv"]
    engine.handle(DerRated(5.0, "ev", 0.0))  # no rating: the configured one again
    assert engine.der_ratings["ev"] == configured["ev"]
    engine.handle(DerRated(6.0, "heat-pump", 1_000.0))  # not a configured DER
    assert engine.der_ratings == configured
    assert engine._rated_w == sum(configured.values())


def test_MUL_03_the_charge_rating_follows_its_own_reading_and_the_configured_ceiling() -> None:
    assert in_force(DERS, {}, "charge") == {"pv": 0, "ev": 9_600}
    assert in_force(DERS, {"ev": 7_400}, "charge") == {"pv": 0, "ev": 7_400}
    assert in_force(DERS, {"ev": 20_000, "pv": 5_000}, "charge") == {"pv": 0, "ev": 9_600}


def test_MUL_03_a_charge_rating_caps_charging_not_discharging_nor_the_ramp_reference() -> None:
    """DerRated "charge" moves only the charge rating: the allocator's charge cap for that DER
    (what the charger is asked to absorb) and not its discharge rating or setGradW's base."""
    engine = Engine(demo_site(), draw=lambda bound: 0)
    before = engine._rated_w
    engine.handle(Tick(1.0))
    engine.handle(DerRated(2.0, "ev", 6_000.0, "charge"))
    assert engine.der_charge_ratings["ev"] == 6_000.0
    assert engine.der_ratings["ev"] == demo_site().charger.max_discharge_w
    assert engine._rated_w == before
    ev = next(d for d in engine._ders if d.der_id == "ev")
    assert (ev.max_charge_w, ev.max_discharge_w) == (6_000.0, demo_site().charger.max_discharge_w)
    engine.handle(DerRated(3.0, "ev", 0.0, "charge"))  # no rating: the configured one again
    assert engine.der_charge_ratings["ev"] == demo_site().charger.max_charge_w
