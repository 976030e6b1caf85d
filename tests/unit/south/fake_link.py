"""The south unit tests' Modbus bus: registers in a dictionary, every request logged in order.

``Device`` talks to the bus through the :class:`gateway.south.device.Link` protocol, so tests of
pure logic (test_device, test_charger_limits, test_charger_stop) drive it through this one fake
rather than a copy each. It keeps a single request log; each test asserts on the view of it that
it cares about (:attr:`RegisterLink.requests`, :attr:`~RegisterLink.writes` or
:attr:`~RegisterLink.round_trips`). The faults a test may set: registers that ignore writes
(``stuck``) and a Modbus exception code that every write is answered with (``reject``). The
drivers are tested against the simulated home over real sockets in tests/integration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.south.errors import DeviceRejected
from gateway.south.profile import Point
from gateway.south.registers import Pacing, Table


@dataclass(frozen=True, slots=True)
class Request:
    """One request as it reached the link: ``values`` is what a write carried (a read: ())."""

    kind: Literal["read", "write"]
    table: Table
    address: int
    count: int
    values: tuple[int, ...] = ()


async def no_sleep(_s: float) -> None:
    """A driver's ``sleep`` that returns at once: the tests' clocks stand still."""


class RegisterLink:
    """Registers in a dict keyed (table, address), a register unset reads 0 (or, ``strict``,
    is refused as a device refuses an address it does not have); optional faults: addresses
    that ignore writes (``stuck``), a Modbus exception code for every write (``reject``). The
    views of ``log`` are new lists: empty the log with :meth:`clear`."""

    def __init__(self, *, strict: bool = False) -> None:
        self.regs: dict[tuple[Table, int], int] = {}
        self.log: list[Request] = []
        self.stuck: set[int] = set()
        self.reject: int | None = None
        self.strict = strict

    @classmethod
    def image(cls, registers: Mapping[int, int]) -> RegisterLink:
        """A device that holds exactly ``registers`` (holding table; ``sunspec.image``'s): a
        read that touches any other address is refused with Modbus exception 2 (illegal data
        address), which is how SunSpec discovery learns that a base holds no map."""
        link = cls(strict=True)
        link.regs = {(Table.HOLDING, a): v for a, v in registers.items()}
        return link

    def holding(self, address: int) -> int:
        return self.regs[(Table.HOLDING, address)]

    def show(self, point: Point, symbol: str) -> None:
        """Make the enum ``point`` read ``symbol`` (a state register, say)."""
        self.regs[(point.table, point.address)] = point.symbols[symbol]

    def clear(self) -> None:
        self.log.clear()

    @property
    def requests(self) -> list[tuple[str, Table, int, int]]:
        """Every request as ("read" | "write", table, address, registers)."""
        return [(r.kind, r.table, r.address, r.count) for r in self.log]

    @property
    def writes(self) -> list[tuple[int, list[int]]]:
        """Every write as (address, the registers written); reads left out."""
        return [(r.address, list(r.values)) for r in self.log if r.kind == "write"]

    @property
    def round_trips(self) -> list[tuple[str, int]]:
        """Every request as ("read" | "write", address)."""
        return [(r.kind, r.address) for r in self.log]

    async def read(
        self,
        device_id: int,
        table: Table,
        address: int,
        count: int,
        *,
        device: str = "device",
        **_: object,
    ) -> list[int]:
        self.log.append(Request("read", table, address, count))
        span = range(address, address + count)
        if self.strict and any((table, a) not in self.regs for a in span):
            raise DeviceRejected(device, "read", 2)
        return [self.regs.get((table, a), 0) for a in span]

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
    ) -> None:
        self.log.append(Request("write", table, address, len(values), tuple(values)))
        if self.reject is not None:
            raise DeviceRejected(device, point, self.reject)
        for i, v in enumerate(values):
            if address + i not in self.stuck:
                self.regs[(table, address + i)] = v
