"""The charger driver with two unsigned limits (sigenergy-dc): which values go to which register.

The shipped profile is driven through a dictionary link that plays the device just far enough
for ``_follow`` to complete (the state register answers); what is asserted is the register
writes, in order. The simulated home covers the same driver over real sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import MappingProxyType

import pytest
from fake_link import RegisterLink, no_sleep

from gateway.core.island import ChargerMode
from gateway.core.messages import ChargerCommand, WriteConfirmed, WriteFailed
from gateway.south.device import Device, WriteRecord
from gateway.south.drivers.base import Confirmation
from gateway.south.drivers.charger import Charger
from gateway.south.profile import Profile
from gateway.south.profiles import load_shipped

SIGENERGY = load_shipped("sigenergy-dc")
STATE = SIGENERGY.point_for("state")  # input register 31513


def follow(
    setpoint_w: float, state: str, profile: Profile = SIGENERGY
) -> tuple[WriteConfirmed | WriteFailed, RegisterLink, list[WriteRecord]]:
    link, records = RegisterLink(), list[WriteRecord]()
    link.show(STATE, state)
    device = Device("ev", profile, link, audit=records.append, now=lambda: 1.0)
    charger = Charger(device, now=lambda: 1.0, confirm=Confirmation(0.0, 0.0), sleep=no_sleep)
    cmd = ChargerCommand("c1", ChargerMode.GRID_FOLLOWING, setpoint_w, "test")
    return asyncio.run(charger.execute(cmd)), link, records


CHARGE, DISCHARGE, START = 41002, 41004, 41000


def u32(value: int) -> list[int]:
    return [value >> 16, value & 0xFFFF]


@pytest.mark.parametrize(
    ("setpoint_w", "state", "writes"),
    [
        # Discharging: the charge limit is floored at its 500 W minimum ("never write 0 to
        # 41002"), before the discharge limit carries the setpoint.
        (2_000.0, "DISCHARGING", [(CHARGE, u32(500)), (DISCHARGE, u32(2_000))]),
        (-3_000.0, "CHARGING", [(DISCHARGE, u32(500)), (CHARGE, u32(3_000))]),
        (500.0, "DISCHARGING", [(CHARGE, u32(500)), (DISCHARGE, u32(500))]),
        (0.0, "OCCUPIED", [(DISCHARGE, u32(500)), (CHARGE, u32(500))]),
        (25_000.0, "DISCHARGING", [(CHARGE, u32(500)), (DISCHARGE, u32(25_000))]),
    ],
)
def test_the_inactive_limit_is_written_at_its_minimum_never_zero(
    setpoint_w: float, state: str, writes: list[tuple[int, list[int]]]
) -> None:
    result, link, _ = follow(setpoint_w, state)
    assert isinstance(result, WriteConfirmed), result
    assert link.writes == [*writes, (START, [SIGENERGY.roles["start"].value])]
    assert all(regs != u32(0) for address, regs in link.writes if address == CHARGE)


@pytest.mark.parametrize(
    ("setpoint_w", "fragment"),
    [
        (-30_000.0, "setpoint -30000 W needs charge_limit = 30000 W, outside the 500..25000 W"),
    ],
)
def test_a_setpoint_outside_the_limits_range_is_refused_before_anything_is_written(
    setpoint_w: float, fragment: str
) -> None:
    result, link, records = follow(setpoint_w, "DISCHARGING")
    assert isinstance(result, WriteFailed)
    assert fragment in result.error
    assert "profile 'sigenergy-dc'" in result.error
    assert "refused rather than clamped" in result.error
    assert link.writes == []  # neither limit, and no start
    assert records == []


@pytest.mark.parametrize("setpoint_w", [300.0, -1.0, 499.0])
def test_a_setpoint_below_the_minimum_runs_at_zero_never_at_the_minimum(setpoint_w: float) -> None:
    # Less power than commanded is the safe side; the minimum would exceed the engine's caps.
    result, link, _ = follow(setpoint_w, "OCCUPIED")
    assert isinstance(result, WriteConfirmed), result
    assert link.writes[:2] == [(DISCHARGE, u32(500)), (CHARGE, u32(500))]


def test_without_a_minimum_the_inactive_limit_is_written_zero() -> None:
    points = dict(SIGENERGY.points)
    for name in ("charge_limit", "discharge_limit"):
        points[name] = dataclasses.replace(points[name], minimum=None)
    profile = dataclasses.replace(SIGENERGY, points=MappingProxyType(points))
    result, link, _ = follow(300.0, "DISCHARGING", profile)
    assert isinstance(result, WriteConfirmed), result
    assert link.writes[:2] == [(CHARGE, u32(0)), (DISCHARGE, u32(300))]
