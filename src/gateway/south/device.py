"""One Modbus device seen through its profile: named points in, engineering values out.

``Device`` knows nothing about relays or chargers (the drivers do); it turns point names into
block reads, scale factors and codec calls, and turns every write into an audit record before
and after it goes out, with a read-back of the registers written whenever the point is readable.
It talks to the bus through the :class:`Link` protocol, which ``transport.Endpoint`` implements,
so that tests of pure logic can use a dictionary instead of a socket.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.south.codec import CodecError, Value, decode, encode, unpack_raw
from gateway.south.errors import DeviceError, DeviceStateError, ReadbackMismatch
from gateway.south.profile import Point, Profile
from gateway.south.registers import Pacing, Table

# Registers one request may span when neighbouring points are merged (FC03 allows 125).
MAX_BLOCK = 120
# Merge two points into one read only when no unused register lies between them: many embedded
# devices answer ILLEGAL DATA ADDRESS for a read that spans a reserved register (the simulated
# home does too), so a gap costs a round trip rather than the whole read.
MAX_GAP = 0


class Link(Protocol):
    """What a device needs from the bus (``transport.Endpoint`` is the real one)."""

    async def read(
        self,
        device_id: int,
        table: Table,
        address: int,
        count: int,
        *,
        pacing: Pacing,
        device: str,
        point: str,
    ) -> list[int]: ...

    async def write(
        self,
        device_id: int,
        table: Table,
        address: int,
        values: Sequence[int],
        *,
        pacing: Pacing,
        device: str,
        point: str,
        single: bool | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One line of the audit trail; the runtime stores it as ``store.AuditEntry``."""

    at: float
    device: str
    point: str
    value: Value
    reason: str
    outcome: str  # "writing", "confirmed", "written" (no read-back possible), "failed: <why>"
    correlation_id: str | None = None


AuditSink = Callable[[WriteRecord], None]


@dataclass(frozen=True, slots=True)
class Block:
    table: Table
    address: int
    count: int
    points: tuple[Point, ...]


def plan_reads(points: Iterable[Point]) -> list[Block]:
    """Group points into as few block reads as the limits allow (pure, so it is unit-tested)."""
    by_table: dict[Table, list[Point]] = {}
    unique = {p.name: p for p in points}  # Points hold mappings, so they are not hashable
    for p in sorted(unique.values(), key=lambda p: (p.table, p.address)):
        by_table.setdefault(p.table, []).append(p)
    blocks: list[Block] = []
    for table, pts in by_table.items():
        start, end, members = pts[0].address, pts[0].address + pts[0].count, [pts[0]]
        for p in pts[1:]:
            p_end = p.address + p.count
            if p.address - end <= MAX_GAP and max(end, p_end) - start <= MAX_BLOCK:
                end = max(end, p_end)
                members.append(p)
                continue
            blocks.append(Block(table, start, end - start, tuple(members)))
            start, end, members = p.address, p_end, [p]
        blocks.append(Block(table, start, end - start, tuple(members)))
    return blocks


class Device:
    def __init__(
        self,
        name: str,
        profile: Profile,
        link: Link,
        *,
        audit: AuditSink,
        now: Callable[[], float],
        unit_id: int | None = None,
    ) -> None:
        self.name = name
        self.profile = profile
        self.link = link
        self.unit_id = profile.unit_id if unit_id is None else unit_id
        self._audit = audit
        self._now = now
        self._points: Mapping[str, Point] = profile.points
        self.label = f"{name} ({profile.name}, unit {self.unit_id})"

    def rebind(self, points: Mapping[str, Point]) -> None:
        """Replace the point table (a SunSpec device's points are found at connect time)."""
        self._points = points

    @property
    def points(self) -> Mapping[str, Point]:
        return self._points

    def point(self, name: str) -> Point:
        try:
            return self._points[name]
        except KeyError:
            raise DeviceStateError(self.label, name, "no such point in the profile") from None

    # -- reads ------------------------------------------------------------------------------

    async def read_raw(self, table: Table, address: int, count: int, what: str) -> list[int]:
        return await self.link.read(
            self.unit_id,
            table,
            address,
            count,
            pacing=self.profile.pacing,
            device=self.label,
            point=what,
        )

    async def read(self, *names: str) -> dict[str, Value | None]:
        """Engineering values of the named points, read in as few requests as possible."""
        wanted = [self.point(n) for n in names]
        sf_points = [self.point(p.scale_factor) for p in wanted if p.scale_factor is not None]
        raw: dict[str, list[int]] = {}
        for block in plan_reads([*wanted, *sf_points]):
            what = ", ".join(p.name for p in block.points)
            regs = await self.read_raw(block.table, block.address, block.count, what)
            for p in block.points:
                off = p.address - block.address
                raw[p.name] = regs[off : off + p.count]
        out: dict[str, Value | None] = {}
        for p in wanted:
            try:
                out[p.name] = decode(p, raw[p.name], self._sf(p, raw))
            except CodecError as exc:
                raise DeviceStateError(self.label, p.name, str(exc)) from exc
        return out

    def _sf(self, p: Point, raw: Mapping[str, Sequence[int]]) -> int | None:
        if p.scale_factor is None:
            return None
        sf_point = self.point(p.scale_factor)
        sf = decode(sf_point, raw[sf_point.name])
        if not isinstance(sf, int) or not -10 <= sf <= 10:
            # 0x8000 (not implemented) or nonsense: scaling by it would invent a value.
            why = f"scale factor {sf_point.name} reads {sf!r}, so {p.name} cannot be scaled"
            raise DeviceStateError(self.label, p.name, why)
        return sf

    async def read_one(self, name: str) -> Value | None:
        return (await self.read(name))[name]

    # -- writes -----------------------------------------------------------------------------

    async def write(
        self,
        name: str,
        value: Value,
        *,
        reason: str,
        correlation_id: str | None = None,
        verify: bool = True,
        audit: bool = True,
    ) -> None:
        """Write one point and, where the point can be read, confirm it by reading it back.

        Every attempt leaves two audit records: "writing" before the request goes out (so a
        crash mid-write still shows what was attempted) and the outcome after. Nothing here is
        ever resent: a failed write is reported, and the engine decides what happens next.
        ``audit=False`` is for watchdog keep-alives, which are not decisions and would flood
        the trail (one every few seconds per device); their failures still raise.

        A value the point's type cannot hold, or outside the profile's ``minimum`` /
        ``maximum`` for the point, is refused before anything goes on the wire (not even the
        scale-factor read): one "failed: ..." record, no "writing".
        """
        sink = self._audit if audit else _discard
        record = self._record(name, value, reason, correlation_id)
        p, registers = await self._encode(name, value, record, sink)
        sink(record("writing"))
        try:
            await self.link.write(
                self.unit_id,
                p.table,
                p.address,
                registers,
                pacing=self.profile.pacing,
                device=self.label,
                point=name,
                single=True if p.count == 1 else None,
            )
            if not (verify and p.access.readable):
                sink(record("written"))
                return
            back = await self.read_raw(p.table, p.address, p.count, name)
            if list(back) != registers:
                raise ReadbackMismatch(self.label, name, _show(p, registers), _show(p, back))
        except DeviceError as exc:
            sink(record("failed: " + exc.why))
            raise
        sink(record("confirmed"))

    async def write_many(
        self,
        values: Sequence[tuple[str, Value]],
        *,
        reason: str,
        correlation_id: str | None = None,
    ) -> None:
        """Write several points, each confirmed by reading it back, as ``write`` does one by
        one, but in one FC16 request and one read-back when they are readable holding
        registers that lie next to each other (SunSpec 704's ``WMaxLimPctEna`` and
        ``WMaxLimPct``): two round trips instead of four on the path to opening the relay.

        The single request carries the registers in address order and a device applies it as
        one write, so the order of ``values`` only matters where the points are not
        contiguous, and then they are written one after another in that order. Each point
        still leaves its own "writing" and outcome records.
        """
        points = [self.point(name) for name, _ in values]
        ordered = sorted(points, key=lambda q: q.address)
        contiguous = all(a.address + a.count == b.address for a, b in itertools.pairwise(ordered))
        holding = all(q.table is Table.HOLDING and q.access.readable for q in points)
        if len(values) < 2 or not contiguous or not holding:
            for name, value in values:
                await self.write(name, value, reason=reason, correlation_id=correlation_id)
            return
        records = {n: self._record(n, v, reason, correlation_id) for n, v in values}
        encoded: dict[str, list[int]] = {}
        for name, value in values:
            _, encoded[name] = await self._encode(name, value, records[name], self._audit)
        registers = [word for q in ordered for word in encoded[q.name]]
        first, what = ordered[0], ", ".join(q.name for q in ordered)
        for name, _ in values:
            self._audit(records[name]("writing"))
        try:
            await self.link.write(
                self.unit_id,
                Table.HOLDING,
                first.address,
                registers,
                pacing=self.profile.pacing,
                device=self.label,
                point=what,
                single=False,
            )
            back = await self.read_raw(Table.HOLDING, first.address, len(registers), what)
        except DeviceError as exc:
            for name, _ in values:
                self._audit(records[name]("failed: " + exc.why))
            raise
        mismatch: ReadbackMismatch | None = None
        for q in points:
            off = q.address - first.address
            got = list(back[off : off + q.count])
            if got == encoded[q.name]:
                self._audit(records[q.name]("confirmed"))
                continue
            err = ReadbackMismatch(self.label, q.name, _show(q, encoded[q.name]), _show(q, got))
            self._audit(records[q.name]("failed: " + err.why))
            mismatch = mismatch or err
        if mismatch is not None:
            raise mismatch

    async def _encode(
        self,
        name: str,
        value: Value,
        record: Callable[[str], WriteRecord],
        sink: AuditSink,
    ) -> tuple[Point, list[int]]:
        """The registers for ``value`` at point ``name``, or DeviceStateError (audited as
        "failed") before anything goes on the wire."""
        p = self.point(name)
        if not p.access.writable or not p.table.writable:
            raise DeviceStateError(self.label, name, "the profile marks this point read-only")
        if isinstance(value, int | float) and not p.admits(value):
            why = (
                f"{value:g}{f' {p.units}' if p.units else ''} is outside the range profile "
                f"{self.profile.name!r} gives point {name!r} ({p.range_text()})"
            )
            sink(record("failed: " + why))
            raise DeviceStateError(self.label, name, why)
        try:
            sf = None
            if p.scale_factor is not None and _is_zero(value):
                sf = 0  # zero is zero at every scale: a stop saves the scale factor's round trip
            elif p.scale_factor is not None:
                sf_point = self.point(p.scale_factor)
                regs = await self.read_raw(sf_point.table, sf_point.address, 1, sf_point.name)
                sf = self._sf(p, {sf_point.name: regs})
            return p, encode(p, value, sf)
        except CodecError as exc:
            # Refused before anything went on the wire: an absurd setpoint never reaches a device.
            sink(record("failed: " + str(exc)))
            raise DeviceStateError(self.label, name, str(exc)) from exc
        except DeviceError as exc:
            sink(record("failed: " + exc.why))
            raise

    def note(
        self, point: str, value: Value, *, reason: str, outcome: str, correlation_id: str | None
    ) -> None:
        """An audit record that is not a register write: a state confirmed (or not) by a
        drivers' independent read-back, such as the relay's auxiliary contact."""
        self._audit(self._record(point, value, reason, correlation_id)(outcome))

    def _record(
        self, name: str, value: Value, reason: str, correlation_id: str | None
    ) -> Callable[[str], WriteRecord]:
        def make(outcome: str) -> WriteRecord:
            at = self._now()
            return WriteRecord(at, self.label, name, value, reason, outcome, correlation_id)

        return make


def _discard(_record: WriteRecord) -> None:
    pass


def _is_zero(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _show(p: Point, registers: Sequence[int]) -> object:
    """A read-back value as a person wants to see it: the symbol if there is one."""
    if len(registers) != p.count:
        return list(registers)
    raw = unpack_raw(p, registers)
    if isinstance(raw, int) and (sym := p.symbol(raw)) is not None:
        return sym
    return raw
