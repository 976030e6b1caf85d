"""The profile suite's pure judgments: which readings are out of range, and which value each
kind of point is safely written with (the rules conformance/README.md lists)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.conformance.profile import judge
from gateway.south.codec import Value
from gateway.south.profile import Point, Profile
from gateway.south.profiles import load_shipped
from gateway.south.registers import DataType, Table

QUASAR = load_shipped("wallbox-quasar")
RELAY = load_shipped("meter-collar-relay")
DC = load_shipped("dc-v2h-backup")
SIG = load_shipped("sigenergy-dc")


def _problem(
    profile_name: str, point: str, value: Value | None, rated: float | None = 7400
) -> tuple[str, str] | None:
    profile = load_shipped(profile_name)
    return judge.reading_problem(profile, profile.points[point], value, rated)


@pytest.mark.parametrize(
    ("profile", "point", "value", "ok"),
    [
        ("wallbox-quasar", "soc", 80, True),
        ("wallbox-quasar", "soc", 800, False),  # a scale of 0.1 taken for 1
        ("wallbox-quasar", "power", 7400, True),
        ("wallbox-quasar", "power", 74000, False),  # ten times the rating
        ("wallbox-quasar", "state", 2, True),
        ("wallbox-quasar", "state", 13, False),  # no symbol the profile names
        ("wallbox-quasar", "action", 0, True),  # a command register before its first command
        ("wallbox-quasar", "max_power", 1000, False),  # below the profile's 1380 W
        ("meter-collar-relay", "grid_frequency", 60.0, True),
        ("meter-collar-relay", "grid_frequency", 0, True),  # a dead grid
        ("meter-collar-relay", "grid_frequency", 600.0, False),
        ("meter-collar-relay", "grid_voltage", None, False),  # a required role not implemented
        ("meter-collar-relay", "load_voltage", None, True),
        ("meter-collar-relay", "grid_voltage", 2400.0, False),
    ],
)
def test_a_reading_is_judged_by_type_range_unit_and_rating(
    profile: str, point: str, value: Value | None, ok: bool
) -> None:
    problem = _problem(profile, point, value)
    assert (problem is None) is ok, problem


def test_without_a_rating_power_is_judged_only_by_its_type_and_range() -> None:
    assert _problem("wallbox-quasar", "power", 30000, rated=None) is None


def test_a_rating_comes_from_the_profile_or_the_devices_own_registers() -> None:
    assert judge.rating(QUASAR, {}) == 7400
    assert judge.rating(SIG, {"rated_charge_power": 11000, "rated_discharge_power": 9000}) == 11000
    assert judge.rating(SIG, {}) is None


@pytest.mark.parametrize(
    ("profile", "point", "current", "value", "restore"),
    [
        (QUASAR, "action", 0, 2, False),  # STOP: left stopped
        (QUASAR, "backup_mode", 1, 0, False),  # grid-forming off
        (QUASAR, "power_setpoint", -3000, 0, True),  # 0 W, then the old setpoint back
        (QUASAR, "control_mode", 0, 1, True),  # the init write REMOTE, then USER again
        (QUASAR, "auto_start", 1, 1, True),  # no role: rewritten unchanged
        (DC, "soc_reserve", 20, 25.0, True),  # a higher reserve
        (DC, "soc_reserve", 98, 100, True),  # never above the profile's maximum
        (SIG, "charge_limit", None, 500, False),  # write-only: the lowest limit, left so
    ],
)
def test_each_point_has_a_safe_value(
    profile: Profile, point: str, current: Value | None, value: Value, restore: bool
) -> None:
    plan = judge.plan(profile, profile.points[point], current)
    assert (plan.value, plan.restore) == (value, restore), plan.why


@pytest.mark.parametrize(
    ("profile", "point", "why"),
    [
        (QUASAR, "idle_timeout", "PRF-05"),  # the watchdog
        (RELAY, "relay_command", "--allow-relay"),
        (RELAY, "fault_reset", "write-only"),
    ],
)
def test_what_the_suite_never_writes_says_why(profile: Profile, point: str, why: str) -> None:
    plan = judge.plan(profile, profile.points[point], 0)
    assert plan.value is None
    assert why in plan.why


def test_a_point_is_named_by_its_table_and_registers() -> None:
    p = Point("net_power", 106, Table.INPUT, DataType.INT32, 2)
    assert judge.label(p) == "net_power (input 106-107)"
    assert judge.label(replace(p, count=1, table=Table.HOLDING)) == "net_power (holding 106)"


def test_a_bit_field_shows_its_named_bits() -> None:
    faults = RELAY.points["relay_faults"]
    assert judge.show(0b1001, faults) == "0x0009 (FAIL_TO_OPEN, WATCHDOG_EXPIRED)"
