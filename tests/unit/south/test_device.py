"""Device: block-read planning, scale factors, and the audit trail around every write.

The bus here is a dictionary (a fake is fine for this pure logic); the drivers are tested
against the simulated home over real sockets in tests/integration.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import pytest
from fake_link import RegisterLink

from gateway.south.device import MAX_BLOCK, Device, WriteRecord, plan_reads
from gateway.south.errors import DeviceRejected, DeviceStateError, ReadbackMismatch
from gateway.south.profile import Access, DeviceKind, Point, Profile
from gateway.south.registers import DataType, Table


def pt(name: str, address: int, dtype: DataType = DataType.UINT16, **kw: object) -> Point:
    from gateway.south.profile import WORDS

    count = kw.pop("count", WORDS.get(dtype, 1))
    return Point(name, address, kw.pop("table", Table.HOLDING), dtype, count, **kw)  # type: ignore[arg-type]


POINTS = {
    p.name: p
    for p in (
        pt("W_SF", 10, DataType.SUNSSF),
        pt("W", 11, DataType.INT16, scale_factor="W_SF", units="W"),
        pt("setpoint", 20, DataType.INT32, access=Access.RW, units="W"),
        pt("command", 30, DataType.ENUM16, access=Access.W, symbols={"OPEN": 1, "CLOSE": 2}),
        pt("far", 500, DataType.UINT16),
        pt("soc", 5, DataType.UINT16, table=Table.INPUT, scale=0.1),
    )
}
PROFILE = Profile(
    "test", DeviceKind.CHARGER, "v", "m", "d", "<test>", points=MappingProxyType(POINTS)
)


def make() -> tuple[Device, RegisterLink, list[WriteRecord]]:
    link, records = RegisterLink(), []
    return Device("ev", PROFILE, link, audit=records.append, now=lambda: 42.0), link, records


def test_plan_reads_merges_neighbours_and_splits_tables_and_far_points() -> None:
    blocks = plan_reads(POINTS.values())
    shape = [(b.table, b.address, b.count) for b in blocks]
    assert shape == [
        (Table.HOLDING, 10, 2),  # W_SF and W are adjacent: one read
        (Table.HOLDING, 20, 2),  # a gap (reserved registers on a strict device) splits
        (Table.HOLDING, 30, 1),
        (Table.HOLDING, 500, 1),
        (Table.INPUT, 5, 1),
    ]
    many = [pt(f"p{i}", i * 10) for i in range(40)]
    assert all(b.count <= MAX_BLOCK for b in plan_reads(many))
    assert sorted(p.name for b in plan_reads(many) for p in b.points) == sorted(
        p.name for p in many
    )


def test_read_applies_the_scale_factor_read_in_the_same_request() -> None:
    dev, link, _ = make()
    link.regs[(Table.HOLDING, 10)] = 0xFFFF  # sf = -1
    link.regs[(Table.HOLDING, 11)] = 1234
    link.regs[(Table.INPUT, 5)] = 655
    got = asyncio.run(dev.read("W", "soc"))
    assert got == {"W": pytest.approx(123.4), "soc": pytest.approx(65.5)}
    assert [r for r in link.requests if r[0] == "read"] == [
        ("read", Table.HOLDING, 10, 2),
        ("read", Table.INPUT, 5, 1),
    ]


def test_a_missing_scale_factor_is_an_error_not_a_guess() -> None:
    dev, link, _ = make()
    link.regs[(Table.HOLDING, 10)] = 0x8000  # SunSpec "not implemented"
    with pytest.raises(DeviceStateError, match="W_SF reads"):
        asyncio.run(dev.read("W"))


def test_a_confirmed_write_leaves_writing_then_confirmed_in_the_audit() -> None:
    dev, link, records = make()
    asyncio.run(dev.write("setpoint", -7400, reason="discharge", correlation_id="c1"))
    assert link.regs[(Table.HOLDING, 20)] == 0xFFFF
    assert link.regs[(Table.HOLDING, 21)] == 0xE318
    assert [(r.point, r.value, r.outcome, r.correlation_id) for r in records] == [
        ("setpoint", -7400, "writing", "c1"),
        ("setpoint", -7400, "confirmed", "c1"),
    ]
    assert records[0].device == "ev (test, unit 1)"
    assert records[0].at == 42.0


def test_a_disagreeing_read_back_fails_and_says_what_was_read() -> None:
    dev, link, records = make()
    link.stuck = {21}
    with pytest.raises(ReadbackMismatch, match=r"wrote 100 but read back 0"):
        asyncio.run(dev.write("setpoint", 100, reason="r"))
    assert records[-1].outcome == "failed: wrote 100 but read back 0"


def test_write_only_commands_are_not_read_back() -> None:
    dev, link, records = make()
    asyncio.run(dev.write("command", "OPEN", reason="island"))
    assert ("read", Table.HOLDING, 30, 1) not in link.requests
    assert [r.outcome for r in records] == ["writing", "written"]


def test_an_absurd_setpoint_never_reaches_the_wire() -> None:
    dev, link, records = make()
    with pytest.raises(DeviceStateError, match="outside what the point holds"):
        asyncio.run(dev.write("setpoint", 1e12, reason="r"))
    assert not [r for r in link.requests if r[0] == "write"]
    assert len(records) == 1
    assert records[0].outcome.startswith("failed: setpoint: 1000000000000.0")


# Points with a profile range (minimum / maximum, engineering units), on their own profile so
# that the block plan above stays as it is.
RANGED = Profile(
    "ranged",
    DeviceKind.CHARGER,
    "v",
    "m",
    "d",
    "<test>",
    points=MappingProxyType(
        {
            p.name: p
            for p in (
                pt("W_SF", 10, DataType.SUNSSF),
                pt("wset", 11, DataType.INT16, access=Access.RW, scale_factor="W_SF", maximum=1e3),
                pt("limit", 20, DataType.UINT32, access=Access.W, units="W", minimum=500.0),
                pt("soc_min", 30, DataType.UINT16, access=Access.RW, scale=0.1, maximum=100.0),
            )
        }
    ),
)


def make_ranged() -> tuple[Device, RegisterLink, list[WriteRecord]]:
    link, records = RegisterLink(), list[WriteRecord]()
    return Device("ev", RANGED, link, audit=records.append, now=lambda: 42.0), link, records


@pytest.mark.parametrize(
    ("point", "value", "shown"),
    [
        (
            "limit",
            0,
            "0 W is outside the range profile 'ranged' gives point 'limit' (at least 500 W)",
        ),
        ("limit", 499.9, "499.9 W is outside"),
        (
            "soc_min",
            100.1,
            "100.1 is outside the range profile 'ranged' gives point 'soc_min' (at most 100)",
        ),
        # A scale-factor point: refused before the scale factor is even read.
        (
            "wset",
            1001,
            "1001 is outside the range profile 'ranged' gives point 'wset' (at most 1000)",
        ),
    ],
)
def test_a_value_outside_the_profiles_range_never_reaches_the_wire(
    point: str, value: float, shown: str
) -> None:
    dev, link, records = make_ranged()
    with pytest.raises(DeviceStateError) as err:
        asyncio.run(dev.write(point, value, reason="r", correlation_id="c9"))
    assert shown in str(err.value)
    assert "profile 'ranged'" in err.value.why
    assert err.value.point == point
    assert link.requests == []  # not a write, not even a scale-factor read
    assert [(r.point, r.value, r.outcome, r.correlation_id) for r in records] == [
        (point, value, "failed: " + err.value.why, "c9")
    ]


def test_the_range_bounds_themselves_are_written() -> None:
    dev, link, records = make_ranged()
    asyncio.run(dev.write("limit", 500, reason="r"))
    asyncio.run(dev.write("soc_min", 100.0, reason="r"))
    link.regs[(Table.HOLDING, 10)] = 0  # sf = 0
    asyncio.run(dev.write("wset", 1000, reason="r"))
    assert [link.regs[(Table.HOLDING, a)] for a in (20, 21, 30, 11)] == [0, 500, 1000, 1000]
    assert [r.outcome for r in records] == ["writing", "written"] + ["writing", "confirmed"] * 2


def test_a_modbus_exception_is_audited_and_raised() -> None:
    dev, link, records = make()
    link.reject = 3
    with pytest.raises(DeviceRejected) as err:
        asyncio.run(dev.write("setpoint", 5, reason="r"))
    assert err.value.code == 3
    assert "ILLEGAL DATA VALUE" in str(err.value)
    assert [r.outcome for r in records] == [
        "writing",
        "failed: device answered Modbus exception 3 (ILLEGAL DATA VALUE)",
    ]


def test_read_only_points_refuse_writes_and_unknown_points_are_named() -> None:
    dev, _, records = make()
    with pytest.raises(DeviceStateError, match="read-only"):
        asyncio.run(dev.write("far", 1, reason="r"))
    with pytest.raises(DeviceStateError, match="nope: no such point"):
        asyncio.run(dev.read("nope"))
    assert records == []


def test_zero_is_written_without_reading_the_scale_factor_and_other_values_read_it() -> None:
    dev, link, records = make_ranged()
    link.regs[(Table.HOLDING, 10)] = 0xFFFF  # sf = -1
    asyncio.run(dev.write("wset", 0, reason="stop"))
    # Zero at any scale is raw 0: no scale-factor round trip on the stop path.
    assert link.requests == [("write", Table.HOLDING, 11, 1), ("read", Table.HOLDING, 11, 1)]
    assert link.regs[(Table.HOLDING, 11)] == 0
    link.clear()
    asyncio.run(dev.write("wset", 50.0, reason="limit"))
    assert link.requests[0] == ("read", Table.HOLDING, 10, 1)  # the scale factor, first
    assert link.regs[(Table.HOLDING, 11)] == 500  # 50 at sf -1
    assert [r.outcome for r in records] == ["writing", "confirmed"] * 2


NEIGHBOURS = {
    p.name: p
    for p in (
        pt("ena", 40, DataType.ENUM16, access=Access.RW, symbols={"OFF": 0, "ON": 1}),
        pt("pct", 41, DataType.UINT16, access=Access.RW, maximum=100.0),
        pt("apart", 44, DataType.UINT16, access=Access.RW),
    )
}


def make_neighbours() -> tuple[Device, RegisterLink, list[WriteRecord]]:
    link, records = RegisterLink(), []
    profile = Profile(
        "test", DeviceKind.DER, "v", "m", "d", "<test>", points=MappingProxyType(NEIGHBOURS)
    )
    return Device("pv", profile, link, audit=records.append, now=lambda: 7.0), link, records


def test_neighbouring_points_are_written_in_one_request_and_confirmed_by_one_read() -> None:
    dev, link, records = make_neighbours()
    asyncio.run(dev.write_many([("pct", 0), ("ena", "ON")], reason="island", correlation_id="c"))
    assert link.requests == [("write", Table.HOLDING, 40, 2), ("read", Table.HOLDING, 40, 2)]
    assert (link.regs[(Table.HOLDING, 40)], link.regs[(Table.HOLDING, 41)]) == (1, 0)
    # Each point keeps its own pair of records, in the order asked for.
    assert [(r.point, r.outcome, r.correlation_id) for r in records] == [
        ("pct", "writing", "c"), ("ena", "writing", "c"),
        ("pct", "confirmed", "c"), ("ena", "confirmed", "c"),
    ]  # fmt: skip


def test_points_apart_are_written_one_after_another_in_the_order_given() -> None:
    dev, link, records = make_neighbours()
    asyncio.run(dev.write_many([("apart", 5), ("ena", "ON")], reason="r"))
    assert link.requests == [
        ("write", Table.HOLDING, 44, 1), ("read", Table.HOLDING, 44, 1),
        ("write", Table.HOLDING, 40, 1), ("read", Table.HOLDING, 40, 1),
    ]  # fmt: skip
    assert [r.outcome for r in records] == ["writing", "confirmed"] * 2


def test_one_neighbour_that_does_not_take_the_write_fails_alone_and_raises() -> None:
    dev, link, records = make_neighbours()
    link.stuck = {41}
    link.regs[(Table.HOLDING, 41)] = 80
    with pytest.raises(ReadbackMismatch, match=r"pct.*wrote 0 but read back 80"):
        asyncio.run(dev.write_many([("pct", 0), ("ena", "ON")], reason="r"))
    assert [(r.point, r.outcome) for r in records][2:] == [
        ("pct", "failed: wrote 0 but read back 80"),
        ("ena", "confirmed"),
    ]


def test_a_refused_block_write_fails_every_point_and_an_absurd_value_sends_nothing() -> None:
    dev, link, records = make_neighbours()
    link.reject = 2
    with pytest.raises(DeviceRejected):
        asyncio.run(dev.write_many([("pct", 0), ("ena", "ON")], reason="r"))
    assert [r.outcome.split(":")[0] for r in records] == ["writing"] * 2 + ["failed"] * 2
    link.clear()
    with pytest.raises(DeviceStateError, match="outside the range"):
        asyncio.run(dev.write_many([("pct", 250), ("ena", "ON")], reason="r"))
    assert link.requests == []
