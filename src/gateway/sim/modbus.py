"""Real Modbus servers for a simulated home, serving device profiles bound to the physics by role.

Each device is a pymodbus ``SimDevice`` (the 3.16 datastore, devices.md §1.2) whose ``action``
hook sees every request with the whole register block. The hook advances the physics to the
clock's now, then:

* **reads** refresh every measured, state and setting role from the physics, encoded with the
  profile's own point (table, type, scale or SunSpec scale factor, word order, sign sense, state
  symbol), so a vendor profile with other addresses and conventions is served by the same code;
* **writes** are routed by the role bound to the point they hit (``relay_open`` → the relay,
  ``power_setpoint`` → the charger, with the profile's sign normalised by ``profile.sign()``);
  a write to a read-only point or role, a value no symbol names, an absurd setpoint or half of a
  multi-register point is refused with exception 3 (ILLEGAL VALUE) and changes nothing (an
  address with no register, or in another table, is exception 2). Writes to writable points
  without a role (init writes such as control mode REMOTE) are stored.

Watchdogs: a write to the profile's watchdog point refreshes that device's revert timer; with
``value = "timeout"`` the value written is the timeout (0 = off), with ``"counter"`` only a
*changed* value counts (SunSpec 715 ControllerHb) and the timeout is the profile's. Only writes
to that point refresh it (the Quasar refreshes on any Modbus message: the simulator is stricter,
so a gateway that forgets its keep-alive is caught). On expiry the relay holds, the charger
stops, a DER reverts to its fallback limit (``physics.py``).

The register image the simulator keeps is the truth; pymodbus's block mirrors it on every read,
so a device that disappears and reappears (a new server on the same port) keeps its settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, Protocol, TypedDict, cast

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from gateway.core.island import RelayPosition
from gateway.core.units import Timestamp
from gateway.sim.clock import DEFAULT_START, SimClock
from gateway.sim.physics import (
    Charger,
    HomeBattery,
    HomePhysics,
    Load,
    Relay,
    Watchdog,
)
from gateway.south import codec, sunspec
from gateway.south.profile import (
    ROLES,
    Binding,
    DeviceKind,
    Point,
    Profile,
    RoleKind,
    WatchdogValue,
    sign,
)
from gateway.south.profiles import find
from gateway.south.registers import Table

#: The evening of the demo: PV fading, load rising. Physics never reads the time of day.

_TABLE_OF_FC: Final = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    22: Table.HOLDING,
    23: Table.HOLDING,
    4: Table.INPUT,
}
_WRITE_FCS: Final = frozenset({5, 6, 15, 16, 22, 23})
_MAX_READ: Final = 125  # registers in one FC03/FC04 request
_READ_ONLY_ROLES: Final = frozenset({RoleKind.MEASURE, RoleKind.STATE})
# A charger state the profile does not list is shown as the nearest one it does.
_NEAREST: Final = {
    "fault": ("stopped",),
    "no_ev": ("stopped",),
    "forming": ("discharging", "stopped"),
}


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


# ---------------------------------------------------------------------------------------------
# Role binders: what each role means to the physics (one per device kind)


class _Revertible(Protocol):
    @property
    def watchdog(self) -> Watchdog: ...

    def heartbeat(self, now: Timestamp) -> None: ...


@dataclass
class _Binder:
    """The roles of one device kind, as physics. The defaults refuse and serve nothing."""

    physics: HomePhysics
    # The profile served (set by DeviceSim): where a binder needs a role's point, e.g. the
    # relay's fault bits.
    profile: Profile | None = field(default=None, kw_only=True)

    def command(self, role: str) -> bool:  # noqa: ARG002 - a default, overridden per kind
        """Carry out a command role; False refuses it (exception 3)."""
        return False

    def release(self, role: str) -> None:
        """Another symbol of a command role's point was written (DISABLED, NONE...)."""

    def check(self, role: str, value: float) -> bool:  # noqa: ARG002 - a default
        """Whether a setpoint/setting value (gateway sign) is sane."""
        return False

    def set(self, role: str, value: float) -> None:
        """Apply a checked setpoint/setting value (gateway sign)."""

    def measure(self, role: str) -> float | tuple[str, ...] | None:  # noqa: ARG002 - a default
        """A number (gateway sign), or state categories in order of preference (the first
        one the profile lists is shown); None: not served."""
        return None

    def revertible(self) -> _Revertible | None:
        """The device whose revert timer the profile's watchdog point refreshes."""
        return None

    def extra_reads(self, points: Mapping[str, Point]) -> dict[str, codec.Value]:  # noqa: ARG002
        """Values (or symbols) of points without a role that this device fills in anyway."""
        return {}

    def extra_write(self, point: Point, raw: int) -> bool | None:  # noqa: ARG002 - a default
        """A write to a point without a role: True handled, False refused, None store it."""
        return None


@dataclass
class _RelayBinder(_Binder):
    def command(self, role: str) -> bool:
        target = RelayPosition.OPEN if role == "relay_open" else RelayPosition.CLOSED
        return self.physics.command_relay(target)

    def measure(self, role: str) -> float | tuple[str, ...] | None:
        p = self.physics
        if role == "relay_state":
            # A map without MOVING or FAULT shows what the aux contact says: the position.
            return (p.relay_category(), p.relay.position.value)
        m = p.meter()
        values: dict[str, float] = {
            "net_power": m.net_w,
            "net_reactive_power": m.net_var,
            "grid_voltage": m.grid_voltage_v,
            "grid_frequency": m.grid_frequency_hz,
            "load_voltage": m.load_voltage_v,
            "load_frequency": m.load_frequency_hz,
            "current_l1": m.current_l1_a,
            "current_l2": m.current_l2_a,
            "current_l3": 0.0,  # split phase: there is no L3
        }
        return values.get(role)

    def revertible(self) -> Relay:
        return self.physics.relay

    def extra_reads(self, points: Mapping[str, Point]) -> dict[str, codec.Value]:
        # The fault bitfield (the reference collar map's relay_faults, or whatever point the
        # relay_faults role names): bits named like RelayFault members.
        role = self.profile.role("relay_faults") if self.profile is not None else None
        faults = points.get(role.point if role is not None else "relay_faults")
        if faults is None:
            return {}
        raw = 0
        for fault in self.physics.relay.faults:
            bit = faults.symbols.get(fault.name)
            if bit is not None:
                raw |= 1 << bit
        return {faults.name: raw}

    def extra_write(self, point: Point, raw: int) -> bool | None:
        # The reference collar map's fault reset and heartbeat timeout (its range is the
        # profile's minimum/maximum, checked before this).
        relay = self.physics.relay
        if point.name == "watchdog_timeout":
            relay.watchdog.arm(raw, self.physics.now)
            return True
        if point.name != "fault_reset":
            return None
        if raw == point.symbols.get("RESET"):
            relay.faults.clear()
            return True
        return raw == point.symbols.get("NONE")


@dataclass
class _MeterBinder(_Binder):
    """A site meter in the panel: on the home side of the relay, so its voltage and frequency
    are the island's once the relay is open (served for the SDM630 map's points, never bound
    to a role: the gateway must not take them for the grid's)."""

    def measure(self, role: str) -> float | tuple[str, ...] | None:
        m = self.physics.meter()
        values: dict[str, float] = {
            "net_power": m.net_w,
            "net_reactive_power": m.net_var,
            "current_l1": m.current_l1_a,
            "current_l2": m.current_l2_a,
            "current_l3": 0.0,
        }
        return values.get(role)

    def extra_reads(self, points: Mapping[str, Point]) -> dict[str, codec.Value]:
        m = self.physics.meter()
        home_side = {"voltage_l1": m.load_voltage_v, "frequency": m.load_frequency_hz}
        return {name: v for name, v in home_side.items() if name in points}


@dataclass
class _ChargerBinder(_Binder):
    limits_only: bool  # no signed setpoint: the direction comes from the two unsigned limits
    one_rating: bool = False  # the profile reads both ratings from one register
    follower: str | None = None  # a charger that does not form: its name in physics.followers

    @property
    def charger(self) -> Charger:
        if self.follower is not None:
            return self.physics.followers[self.follower]
        return self.physics.charger

    def command(self, role: str) -> bool:
        p = self.physics
        if self.follower is not None:
            return p.follower_command(self.follower, role)
        match role:
            case "start":
                # A refused start (it tripped) is still an accepted write: the state says FAULT.
                p.start_charger()
                return True
            case "stop":
                return p.stop_charger()
            case "grid_forming_on":
                p.set_backup(on=True)
                return True
            case "grid_forming_off":
                return p.set_backup(on=False)
        return False

    def check(self, role: str, value: float) -> bool:
        c = self.charger
        rating = max(c.max_charge_w, c.max_discharge_w)
        match role:
            case "power_setpoint":
                return -c.max_charge_w <= value <= c.max_discharge_w
            case "charge_limit" | "discharge_limit":
                return 0.0 <= value <= rating
            case "soc_floor":
                return 0.0 <= value <= 100.0
        return False

    def set(self, role: str, value: float) -> None:
        c = self.charger
        match role:
            case "power_setpoint":
                c.setpoint_w = value
            case "charge_limit":
                c.charge_limit_w = value
            case "discharge_limit":
                c.discharge_limit_w = value
            case "soc_floor":
                c.soc_floor_pct = value
        if self.limits_only and role in ("charge_limit", "discharge_limit"):
            # The limit written last carries the direction: the driver floors the inactive
            # limit first (at its minimum, Sigenergy's 500 W) and then raises the active one.
            discharging = role == "discharge_limit"
            c.setpoint_w = c.discharge_limit_w if discharging else -c.charge_limit_w
        self.physics.settle()

    def measure(self, role: str) -> float | tuple[str, ...] | None:
        c = self.charger
        if role == "state":
            category = self.physics.charger_category(c)
            if category == "forming" and c.power_w < 0:
                # A forming charger that absorbs (PV surplus in the island) shows charging in
                # a main state register that has no word for forming.
                return ("forming", "charging", "stopped")
            return (category, *_NEAREST.get(category, ()))
        # A profile that binds both ratings to one register (the Quasar's max_power) reads
        # the larger: one hardware maximum, whichever role's refresh comes last.
        one = self.one_rating
        values: dict[str, float] = {
            "power": c.power_w,
            "soc": c.soc_pct,
            "soc_floor": c.soc_floor_pct,
            "rated_w": max(c.max_discharge_w, c.max_charge_w) if one else c.max_discharge_w,
            "rated_charge_w": max(c.max_discharge_w, c.max_charge_w) if one else c.max_charge_w,
        }
        return values.get(role)

    def revertible(self) -> Charger:
        return self.charger


@dataclass
class _DerBinder(_Binder):
    """A SunSpec-style inverter: PV, and a battery next to it when the home has one."""

    limit_pct: float = 100.0
    limit_on: bool = False
    setpoint_w: float = 0.0
    setpoint_on: bool = False

    def command(self, role: str) -> bool:
        return self._enable(role, on=True)

    def release(self, role: str) -> None:
        self._enable(role, on=False)

    def _enable(self, role: str, *, on: bool) -> bool:
        if role == "limit_enable":
            self.limit_on = on
        elif role == "setpoint_enable":
            self.setpoint_on = on
        else:
            return False
        self._apply()
        return True

    def check(self, role: str, value: float) -> bool:
        pv, b = self.physics.pv, self.physics.battery
        if role == "limit_pct":
            return 0.0 <= value <= 100.0
        if role == "power_setpoint":
            absorb = b.max_charge_w if b is not None else 0.0
            inject = pv.peak_w + (b.max_discharge_w if b is not None else 0.0)
            return -absorb <= value <= inject
        return False

    def set(self, role: str, value: float) -> None:
        if role == "limit_pct":
            self.limit_pct = value
        elif role == "power_setpoint":
            self.setpoint_w = value
        self._apply()

    def _apply(self) -> None:
        pv, b = self.physics.pv, self.physics.battery
        pv.limit_w = self.limit_pct / 100.0 * pv.peak_w if self.limit_on else pv.peak_w
        if b is not None:
            b.setpoint_w = self.setpoint_w if self.setpoint_on else 0.0
        elif self.setpoint_on:
            pv.limit_w = min(pv.limit_w, max(0.0, self.setpoint_w))  # PV cannot absorb
        self.physics.settle()

    def measure(self, role: str) -> float | tuple[str, ...] | None:
        p = self.physics
        b = p.battery
        match role:
            case "power":
                return p.pv.power_w + (b.power_w if b is not None else 0.0)
            case "reactive_power":
                return 0.0  # the simulated inverter runs at unity power factor
            case "w_max":
                return p.pv.peak_w
            case "rated_w":
                return p.pv.peak_w if p.pv.rated_w is None else p.pv.rated_w
            case "rated_charge_w":  # a battery's; PV alone absorbs nothing: "not implemented"
                return b.max_charge_w if b is not None else None
            case "soc":
                return b.soc_pct if b is not None else None
            case "connected":
                live = p.load_side_live and p.pv.powered
                return ("connected",) if live else ("disconnected",)
        return None

    def revertible(self) -> _Revertible:
        return self.physics.pv

    def extra_reads(self, points: Mapping[str, Point]) -> dict[str, codec.Value]:
        # Standard SunSpec points a client (or pysunspec2) may look at besides the roles.
        p = self.physics
        m = p.meter()
        running = p.pv.power_w > 0 or (p.battery is not None and p.battery.power_w != 0)
        out: dict[str, codec.Value] = {
            "701.LNV": m.load_voltage_v,
            "701.Hz": m.load_frequency_hz,
            "701.InvSt": "RUNNING" if running else "SLEEPING",
        }
        return {k: v for k, v in out.items() if k in points}


# ---------------------------------------------------------------------------------------------
# One simulated device


WRITE_LOG: Final = 200_000  # write requests a DeviceSim remembers (writes_since)


@dataclass
class Faults:
    """Injected misbehaviour of one device (``DeviceSim.slow`` etc. set these)."""

    slow_s: float = 0.0
    exceptions: dict[str, ExcCodes] = field(default_factory=dict)  # point name or "*"
    lies: dict[str, list[int]] = field(default_factory=dict)  # point name -> registers read
    gone: bool = False  # behind a shared port: the gateway answers "target failed to respond"


class DeviceSim:
    """A profile served over a register image, bound to the physics through a role binder."""

    def __init__(
        self,
        name: str,
        profile: Profile,
        binder: _Binder,
        *,
        sync: _Sync,
        unit_id: int,
        image: Mapping[int, int] | None = None,
        statics: Mapping[str, codec.Value] | None = None,
        strict_addresses: bool = True,
    ) -> None:
        self.name = name
        self.profile = profile
        self.binder = binder
        self.unit_id = unit_id
        self.faults = Faults()
        self._sync = sync
        self._release = asyncio.Event()
        self._mem: dict[Table, dict[int, int]] = {t: {} for t in Table}
        self._owner: dict[Table, dict[int, Point]] = {t: {} for t in Table}
        for point in profile.points.values():
            for a in range(point.address, point.address + point.count):
                self._owner[point.table][a] = point
                self._mem[point.table][a] = 0
        if image is not None:
            self._mem[Table.HOLDING].update(image)
        if not strict_addresses:
            _fill_gaps(self._mem)
        self._commands: dict[str, list[Binding]] = {}
        self._setpoints: dict[str, Binding] = {}
        self._reads: list[Binding] = []
        for b in profile.roles.values():
            kind = ROLES[profile.kind][b.role].kind
            if kind is RoleKind.COMMAND:
                self._commands.setdefault(b.point, []).append(b)
            elif kind in (RoleKind.SETPOINT, RoleKind.SETTING):
                self._setpoints[b.point] = b
            if kind in (*_READ_ONLY_ROLES, RoleKind.SETTING):
                self._reads.append(b)
        self._read_only = {
            name for b in self._reads for name in b.points if name not in self._setpoints
        }
        self._last_heartbeat: int | None = None
        # Every write request that reached this device, for tests and benchmarks of the write
        # rate (a ramp must cost a bounded number per second): when (monotonic s) and which
        # points it touched. The log keeps the last WRITE_LOG entries.
        self.writes = 0
        self.writes_by_point: Counter[str] = Counter()
        self.write_log: deque[tuple[float, tuple[str, ...]]] = deque(maxlen=WRITE_LOG)
        binder.profile = profile
        bound = {name for b in profile.roles.values() for name in b.points}
        for point_name, value in (statics or {}).items():
            static = profile.points.get(point_name)
            if static is not None and point_name not in bound:
                self._put(static, value)  # identity, ratings: points no role covers
        for point in profile.points.values():
            if point.name not in bound and (start := _initial(profile, point)) is not None:
                self._put(point, start)
        self._refresh()

    # --- fault injection -----------------------------------------------------------------

    def slow(self, seconds: float) -> None:
        """Answer every request ``seconds`` (real time) late; 0 ends it."""
        self.faults.slow_s = max(0.0, seconds)

    def exception(self, role_or_point: str, code: int | None) -> None:
        """Answer requests touching that role's point (``"*"``: every request) with Modbus
        exception ``code``; None ends it."""
        name = role_or_point if role_or_point == "*" else self._point(role_or_point).name
        if code is None:
            self.faults.exceptions.pop(name, None)
        else:
            self.faults.exceptions[name] = ExcCodes(code)

    def lie(self, role_or_point: str, raw: int | str | None) -> None:
        """Reads of that point return ``raw`` (a raw number or a symbol) whatever the truth is,
        e.g. a relay state of CLOSED after an OPEN command; None ends it."""
        point = self._point(role_or_point)
        if raw is None:
            self.faults.lies.pop(point.name, None)
            return
        value = point.symbols[raw] if isinstance(raw, str) else raw
        self.faults.lies[point.name] = codec.pack_raw(point, value)

    def heal(self) -> None:
        """End every injected fault of this device."""
        self.faults = Faults()
        self._release.set()
        self._release = asyncio.Event()

    def _point(self, role_or_point: str) -> Point:
        binding = self.profile.roles.get(role_or_point)
        name = binding.point if binding is not None else role_or_point
        if name not in self.profile.points:
            msg = f"{self.name}: no role or point {role_or_point!r} in {self.profile.name!r}"
            raise KeyError(msg)
        return self.profile.points[name]

    # --- pymodbus ------------------------------------------------------------------------

    def sim_device(self) -> SimDevice:
        """A fresh pymodbus device over the current image (one per server start)."""
        blocks = {t: self._simdata(t) for t in Table}
        used = [t for t in Table if blocks[t]]
        if len(used) == 1 and not used[0].bits:
            return SimDevice(self.unit_id, simdata=blocks[used[0]], action=self.action)
        # Separate tables (the 4-tuple form): every list must hold something, so an unused
        # table gets a placeholder that the action refuses (it has no point).
        for t in Table:
            if not blocks[t]:
                blocks[t] = [
                    SimData(0, values=[False] * 16, datatype=SimType.BITS)
                    if t.bits
                    else SimData(0, datatype=SimType.REGISTERS)
                ]
        return SimDevice(
            self.unit_id,
            simdata=(
                blocks[Table.COIL],
                blocks[Table.DISCRETE],
                blocks[Table.HOLDING],
                blocks[Table.INPUT],
            ),
            action=self.action,
        )

    def _simdata(self, table: Table) -> list[SimData]:
        mem = self._mem[table]
        if table.bits:
            return [SimData(a, values=[bool(mem[a])], datatype=SimType.BITS) for a in sorted(mem)]
        runs: list[SimData] = []
        for start, words in _runs(mem):
            runs.append(SimData(start, values=words, datatype=SimType.REGISTERS))
        return runs

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code in _WRITE_FCS and set_values is None:
            return None  # pymodbus reading back what was just written, to echo it
        if self.faults.slow_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.faults.slow_s)
        if self.faults.gone:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _TABLE_OF_FC.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is not None:
            span = range(address, address + len(set_values))
        elif table.bits:
            span = range(address, address + 1)  # a bit read's count is not passed on
        else:
            span = range(address, address + count)
        if any(a not in self._mem[table] for a in span):
            return ExcCodes.ILLEGAL_ADDRESS
        touched = {p.name for a in span if (p := self._owner[table].get(a)) is not None}
        if set_values is not None:
            self._count_write(touched)
        for name in (*touched, "*"):
            if name in self.faults.exceptions:
                return self.faults.exceptions[name]
        self._sync()
        if set_values is not None:
            return self._write(table, address, [int(v) for v in set_values])
        if table.bits:  # its span is a guess (the count is not passed on): the whole table
            self._refresh()
            self._mirror(table, start_address, registers)
            return None
        # Only what the request reads: encoding every point per request was a third of the
        # simulated home's CPU (a SunSpec DER has dozens of points, a read wants one or two).
        self._refresh(table, span)
        self._mirror(table, start_address, registers, span)
        return None

    def _count_write(self, points: set[str]) -> None:
        names = tuple(sorted(points))
        self.writes += 1
        self.writes_by_point.update(names)
        self.write_log.append((time.monotonic(), names))

    def writes_since(self, since: float, point: str | None = None) -> int:
        """Write requests received at or after ``since`` (``time.monotonic()``), to ``point``
        only when given (as far back as the log reaches)."""
        return sum(
            1 for at, names in self.write_log if at >= since and (point is None or point in names)
        )

    def _mirror(
        self, table: Table, start: int, registers: list[int], span: range | None = None
    ) -> None:
        """Copy the image (with any lies) into pymodbus's block for this table: the addresses
        in ``span``, or all of them."""
        mem = self._mem[table]
        view = dict(mem) if span is None else {a: mem[a] for a in span}
        for name, words in self.faults.lies.items():
            point = self.profile.points[name]
            if point.table is table:
                lied = range(point.address, point.address + point.count)
                view.update((a, w) for a, w in zip(lied, words, strict=True) if a in view)
        if table.bits:
            for a, bit in view.items():
                i, mask = a // 16 - start, 1 << (a % 16)
                if 0 <= i < len(registers):
                    registers[i] = registers[i] | mask if bit else registers[i] & ~mask
            return
        for a, word in view.items():
            if 0 <= a - start < len(registers):
                registers[a - start] = word

    # --- writes --------------------------------------------------------------------------

    def _write(self, table: Table, address: int, values: list[int]) -> ExcCodes | None:
        """Check every point the write covers, then apply them. Nothing is applied when a check
        fails; a device that refuses a step (a sync-checking relay) stops the rest."""
        new = dict(zip(range(address, address + len(values)), values, strict=True))
        points: list[Point] = []
        for a in new:
            owner = self._owner[table].get(a)
            if owner is None:
                return ExcCodes.ILLEGAL_ADDRESS
            if owner not in points:
                points.append(owner)
        steps = []
        for point in points:
            span = range(point.address, point.address + point.count)
            if any(a not in new for a in span):
                return ExcCodes.ILLEGAL_VALUE  # half of a multi-register value
            step = self._plan(point, [new[a] for a in span])
            if step is None:
                return ExcCodes.ILLEGAL_VALUE
            steps.append(step)
        for step in steps:
            if not step():
                return ExcCodes.ILLEGAL_VALUE
        self._mem[table].update(new)
        return None

    def _plan(self, point: Point, words: list[int]) -> _Step | None:
        """What a write of ``words`` to ``point`` does, or None to refuse it."""
        if not point.access.writable:
            return None
        if point.name in self._read_only:
            # A writable register the gateway only reads (the Quasar's max_power): rewriting
            # what it holds is accepted; the simulator cannot change a rating.
            current = [
                self._mem[point.table][a] for a in range(point.address, point.address + point.count)
            ]
            return (lambda: True) if words == current else None
        raw = codec.unpack_raw(point, words)
        if not point.symbols and not self._admits(point, words):
            return None  # outside the range the profile says the device accepts
        wd = self.profile.watchdog
        if wd is not None and wd.point == point.name:
            return self._plan_watchdog(point, words)
        if point.name in self._commands:
            return self._plan_command(point, raw)
        if point.name in self._setpoints:
            return self._plan_setpoint(point, words)
        if isinstance(raw, int):
            handled = self.binder.extra_write(point, raw)
            if handled is False:
                return None
            if handled:
                return lambda: True
        if point.symbols and raw not in point.symbols.values():
            return None
        return lambda: True  # an init write or a plain setting: stored, nothing moves

    def _admits(self, point: Point, words: list[int]) -> bool:
        try:
            value = codec.decode(point, words, self._sf(point))
        except codec.CodecError:
            return False
        return not isinstance(value, int | float) or point.admits(float(value))

    def _plan_command(self, point: Point, raw: object) -> _Step | None:
        bindings = self._commands[point.name]
        for b in bindings:
            if b.value == raw:
                role = b.role
                return lambda: self.binder.command(role)
        if raw in point.symbols.values():
            roles = [b.role for b in bindings]

            def release() -> bool:
                for role in roles:
                    self.binder.release(role)
                return True

            return release
        return None

    def _plan_setpoint(self, point: Point, words: list[int]) -> _Step | None:
        b = self._setpoints[point.name]
        try:
            value = codec.decode(point, words, self._sf(point))
        except codec.CodecError:
            return None
        if not isinstance(value, int | float):
            return None  # "not implemented" written as a setpoint
        gateway_value = float(value) * (sign(b.positive) if b.positive is not None else 1)
        if not self.binder.check(b.role, gateway_value):
            return None
        role = b.role

        def apply() -> bool:
            self.binder.set(role, gateway_value)
            return True

        return apply

    def _plan_watchdog(self, point: Point, words: list[int]) -> _Step | None:
        wd = self.profile.watchdog
        device = self.binder.revertible()
        raw = codec.unpack_raw(point, words)
        if wd is None or device is None or not isinstance(raw, int):
            return None
        now = self.binder.physics.now
        if wd.value is WatchdogValue.TIMEOUT:
            timeout = codec.decode(point, words, self._sf(point))
            if not isinstance(timeout, int | float):
                return None

            def arm() -> bool:
                device.watchdog.arm(float(timeout), now)
                device.heartbeat(now)
                return True

            return arm
        if wd.value is WatchdogValue.CONSTANT and raw != wd.constant:
            return None

        def beat() -> bool:
            if wd.value is WatchdogValue.COUNTER and raw == self._last_heartbeat:
                return True  # an unchanged counter is not a heartbeat
            self._last_heartbeat = raw
            if device.watchdog.timeout_s is None:
                device.watchdog.arm(wd.timeout_s, now)
            device.heartbeat(now)
            return True

        return beat

    # --- reads ---------------------------------------------------------------------------

    def _refresh(self, table: Table | None = None, span: range | None = None) -> None:
        """Bring the image up to the physics: every read point, or those of ``table`` that
        overlap ``span``."""
        points = self.profile.points
        for b in self._reads:
            point = points[b.point]
            if span is not None and not any(_overlaps(points[n], table, span) for n in b.points):
                continue
            value = self.binder.measure(b.role)
            if value is None:
                continue
            if isinstance(value, tuple):
                for name, raw in _state_raws(b, points, value).items():
                    self._set(points[name], codec.pack_raw(points[name], raw))
                continue
            if b.positive is not None:
                value *= sign(b.positive)
            self._put(point, value)
        for name, extra in self.binder.extra_reads(self.profile.points).items():
            point = self.profile.points[name]
            if span is None or _overlaps(point, table, span):
                self._put(point, extra)

    def _put(self, point: Point, value: codec.Value) -> None:
        """Encode an engineering value, saturating at what the point can hold."""
        sf = self._sf(point)
        try:
            words = codec.encode(point, value, sf)
        except codec.CodecError:
            if isinstance(value, str):
                raise
            lo, hi = codec.raw_range(point.type)
            raw = round(_clamp(value / codec.multiplier(point, sf), lo, hi))
            if raw == point.not_implemented:
                raw -= 1  # saturated, not "not implemented"
            words = codec.pack_raw(point, raw)
        self._set(point, words)

    def _set(self, point: Point, words: Sequence[int]) -> None:
        mem = self._mem[point.table]
        for a, w in zip(range(point.address, point.address + point.count), words, strict=True):
            mem[a] = w

    def _sf(self, point: Point) -> int | None:
        if point.scale_factor is None:
            return None
        sf_point = self.profile.points[point.scale_factor]
        raw = codec.unpack_raw(sf_point, [self._mem[sf_point.table][sf_point.address]])
        return raw if isinstance(raw, int) else None


class _Sync(Protocol):
    def __call__(self) -> None: ...


class _Step(Protocol):
    def __call__(self) -> bool: ...


def _initial(profile: Profile, point: Point) -> float | None:
    """The value a setting with no role starts at when 0 is outside the profile's range (a
    timeout of at least 10 s): the init write's, else the watchdog's timeout, else the minimum.
    None: 0 is fine."""
    if point.symbols or point.admits(0.0):
        return None
    for w in profile.init:
        if w.point == point.name:
            return float(w.value)
    wd = profile.watchdog
    if wd is not None and wd.point == point.name and wd.value is WatchdogValue.TIMEOUT:
        return wd.timeout_s
    return point.minimum


def _overlaps(point: Point, table: Table | None, span: range) -> bool:
    return (
        point.table is table
        and point.address < span.stop
        and span.start < point.address + point.count
    )


def _state_raws(
    b: Binding, points: Mapping[str, Point], categories: tuple[str, ...]
) -> dict[str, int]:
    """The raw value of each register of a state role, for a device whose state is the first of
    ``categories`` (the rest: the nearest ones, in order).

    Each register shows what that register of a real device would, whatever the profile's
    precedence: the first category of ``categories`` it lists (that category's first symbol in
    the point's order, or its smallest value), else a value in none of its categories (a backup
    register's NORMAL). So a forming charger's backup register reads GRID_FORMING while its
    main register still reads DISCHARGING, and a profile that lists them in the wrong order is
    caught, not served what it expects. A one-register role with no listed category is left as
    it was.
    """
    out: dict[str, int] = {}
    reads = [(b.point, b.states), *((r.point, r.states) for r in b.more)]
    for name, states in reads:
        point = points[name]
        category = next((c for c in categories if states.get(c)), None)
        if category is not None:
            values = states[category]
            ordered = [v for v in point.symbols.values() if v in values]
            out[name] = ordered[0] if ordered else min(values)
        elif b.more:
            out[name] = _neutral(point, states)
    return out


def _neutral(point: Point, states: Mapping[str, frozenset[int]]) -> int:
    """A raw value of ``point`` in none of ``states``: an uncategorised symbol if it has one."""
    listed = set().union(*states.values())
    for value in point.symbols.values():
        if value not in listed:
            return value
    return min(set(range(len(listed) + 1)) - listed)


def _fill_gaps(mem: Mapping[Table, dict[int, int]]) -> None:
    """Most devices answer reserved registers between their points with 0 (and gateways merge
    neighbouring points into one read), so a gap of up to one read's worth of registers reads
    as 0; a write there has no point and is refused with exception 2."""
    for words in mem.values():
        for a, b in itertools.pairwise(sorted(words)):
            if 1 < b - a <= _MAX_READ:
                words.update(dict.fromkeys(range(a + 1, b), 0))


def _runs(mem: Mapping[int, int]) -> list[tuple[int, list[int]]]:
    """Contiguous runs of addresses, so gaps stay invalid (exception 2)."""
    runs: list[tuple[int, list[int]]] = []
    for a in sorted(mem):
        if runs and runs[-1][0] + len(runs[-1][1]) == a:
            runs[-1][1].append(mem[a])
        else:
            runs.append((a, [mem[a]]))
    return runs


# ---------------------------------------------------------------------------------------------
# Servers


_HANDLING: set[asyncio.Task[None]] = set()


class _Handler(ServerRequestHandler):
    """pymodbus's request handler, one hop shorter per request.

    pymodbus 3.16 hands each decoded request from ``call_soon`` to
    ``run_coroutine_threadsafe``, from the loop's own thread: a write to the loop's self-pipe,
    a wake-up and read of it, and one more loop pass before the request is looked at. Here
    the request becomes a task at once, which is what that call ends in. On the 2-core bench
    machine the hop was a tenth of the simulated home's CPU (py-spy), and every request of the
    gateway's islanding sequence waits for it. Replies are the same bytes at the same point of
    the request's handling.
    """

    def handle_later(self) -> None:
        task = self.loop.create_task(self.handle_request())  # type: ignore[no-untyped-call]
        _HANDLING.add(task)  # referenced until done, as asyncio asks
        task.add_done_callback(_HANDLING.discard)


class _Server(ModbusTcpServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        # pymodbus's own hook for a new connection
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class _OneClientHandler(_Handler):
    """Refuses a second TCP client while one is connected, as many real chargers do: the
    connection is accepted and closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self.listener
        if listener is not None and any(
            c is not self and c.transport is not None for c in listener.active_connections.values()
        ):
            listener.active_connections.pop(self.unique_id, None)
            self.listener = None
            transport.close()
            return
        super().connection_made(transport)


class _OneClientServer(_Server):
    def callback_new_connection(self) -> ServerRequestHandler:
        # pymodbus's own hook for a new connection: hand it a handler that may refuse it.
        return _OneClientHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )


@dataclass
class _Port:
    """One listening socket, serving one device or several unit ids."""

    host: str
    port: int  # 0 until the OS has chosen one
    devices: list[DeviceSim]
    framer: FramerType
    single_client: bool
    server: ModbusTcpServer | None = None

    async def start(self) -> None:
        cls = _OneClientServer if self.single_client else _Server
        sims = [d.sim_device() for d in self.devices]
        self.server = cls(
            sims[0] if len(sims) == 1 else sims,
            framer=self.framer,
            address=(self.host, self.port),
        )
        try:
            await self.server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's word for a bind that failed
            self.server = None
            msg = f"cannot listen on {self.host}:{self.port} (in use?)"
            raise OSError(msg) from exc
        if self.port == 0:
            listener = cast("asyncio.Server", self.server.transport)
            self.port = int(listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        listener = cast("asyncio.Server | None", server.transport)
        await server.shutdown()  # type: ignore[no-untyped-call]
        if listener is not None:
            await listener.wait_closed()
        for _ in range(3):  # let the closed connections run their callbacks
            await asyncio.sleep(0)


# ---------------------------------------------------------------------------------------------
# The home


@dataclass(frozen=True, slots=True)
class ServedDevice:
    name: str  # "relay", "charger", "der"
    profile: str
    url: str  # tcp://127.0.0.1:PORT or rtu+tcp://127.0.0.1:PORT
    unit_id: int


ProfileRef = str | Path | Profile


class _Common(TypedDict):
    sync: _Sync
    unit_id: int
    strict_addresses: bool


_SLOTS: Final = {
    "relay": DeviceKind.METER_RELAY,
    "charger": DeviceKind.CHARGER,
    "der": DeviceKind.DER,
    "meter": DeviceKind.METER,
}


class SimulatedHome:
    """A meter-collar relay, a charger and a SunSpec DER on loopback, over one physics model.

    ::

        async with SimulatedHome(charger="sigenergy-dc", speed=60) as home:
            home.endpoints["charger"]          # "tcp://127.0.0.1:40123"
            home.physics.grid.fail()           # an outage
            home.device("relay").lie("relay_state", "CLOSED")
            await home.disappear("charger")

    Each device listens on its own port (``port_base``, +1, +2; None lets the OS choose), or
    all behind one port with distinct unit ids (``shared_port``). ``framer="rtu"`` serves RTU
    frames over TCP (clients use pyserial ``socket://``). ``single_client`` makes every port
    accept one TCP client at a time. Reserved registers between a device's points read as 0
    unless ``strict_addresses`` (then exception 2, as some devices do). ``start`` is the
    simulated start instant; the physics never
    reads the time of day. The physics moves when a request arrives (or on :meth:`sync`), to
    the clock's now, so a test that steps the clock sees every event at its simulated time.
    """

    def __init__(
        self,
        *,
        relay: ProfileRef | None = "meter-collar-relay",
        meter: ProfileRef | None = None,
        charger: ProfileRef | None = "wallbox-quasar",
        der: ProfileRef | None = "sunspec-der",
        physics: HomePhysics | None = None,
        clock: SimClock | None = None,
        start: Timestamp = DEFAULT_START,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port_base: int | None = None,
        shared_port: bool = False,
        framer: Literal["socket", "rtu"] = "socket",
        single_client: bool = False,
        der_battery: bool = False,
        strict_addresses: bool = True,
        layout: Mapping[str, Address] | None = None,
        followers: Mapping[str, ProfileRef] | None = None,
    ) -> None:
        self.clock = clock if clock is not None else SimClock(start, speed)
        refs = {"relay": relay, "meter": meter, "charger": charger, "der": der}
        self.profiles = {slot: _load(slot, ref) for slot, ref in refs.items() if ref is not None}
        # More chargers, by name: grid-following only (physics.followers), one port each.
        for name, ref in (followers or {}).items():
            if name in _SLOTS:
                raise ValueError(f"a follower charger cannot be named {name!r} (a slot's name)")
            self.profiles[name] = _load("charger", ref)
        self.physics = physics if physics is not None else _default_physics(self)
        for name in followers or {}:
            self.physics.followers.setdefault(name, Charger(ramp_w_per_s=2_000.0))
        if der_battery and self.physics.battery is None:
            self.physics.battery = HomeBattery()
        for watchdog in self.physics.watchdogs():
            watchdog.scale = self.clock.speed or 1.0  # real seconds, however fast the home
        self.host = host
        self.strict_addresses = strict_addresses
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self.devices = self._build_devices(shared_port, layout)
        if layout is not None:
            self._ports = self._plan_layout(layout, single_client)
        else:
            self._ports = self._plan_ports(port_base, shared_port, single_client)
        self._port_of = {d.name: port for port in self._ports for d in port.devices}
        self.shared_port = shared_port

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedHome:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            for port in self._ports:
                await port.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for d in self.devices.values():
            d.heal()  # releases answers held back by slow()
        for port in self._ports:
            await port.stop()

    # --- what a test or the CLI looks at -------------------------------------------------

    @property
    def endpoints(self) -> dict[str, str]:
        return {e.name: e.url for e in self.describe()}

    def describe(self) -> list[ServedDevice]:
        return [
            ServedDevice(
                name,
                d.profile.name,
                f"{_scheme(self._port_of[name].framer)}://{self._port_of[name].host}:"
                f"{self._port_of[name].port}",
                d.unit_id,
            )
            for name, d in self.devices.items()
        ]

    @property
    def violations(self) -> list[str]:
        return self.physics.violations

    def device(self, name: str) -> DeviceSim:
        return self.devices[name]

    def sync(self) -> None:
        """Bring the physics to the clock's now (every request does this first)."""
        self.physics.advance(max(self.clock.now(), self.physics.now))

    # --- faults that need the sockets ----------------------------------------------------

    async def disappear(self, name: str) -> None:
        """Stop serving the device: its port closes with its connections. Behind a shared port
        the other units stay, and this one answers exception 11 (gateway target failed to
        respond), as a TCP-to-RS-485 gateway does for a dead device."""
        if self.shared_port:
            self.devices[name].faults.gone = True
            return
        await self._port_of[name].stop()

    async def reappear(self, name: str) -> None:
        """Serve the device again on the same port, with the settings it had."""
        if self.shared_port:
            self.devices[name].faults.gone = False
            return
        port = self._port_of[name]
        if port.server is None:
            await port.start()

    # --- construction --------------------------------------------------------------------

    def _build_devices(
        self, shared_port: bool, layout: Mapping[str, Address] | None
    ) -> dict[str, DeviceSim]:
        devices: dict[str, DeviceSim] = {}
        used: set[int] = set()
        for slot, profile in self.profiles.items():
            if layout is not None:
                devices[slot] = self._device(slot, profile, layout[slot].unit_id)
                continue
            unit = profile.unit_id
            if shared_port and unit in used:
                unit = min(set(range(1, 248)) - used)
            used.add(unit)
            devices[slot] = self._device(slot, profile, unit)
        return devices

    def _device(self, slot: str, profile: Profile, unit: int) -> DeviceSim:
        p = self.physics
        common = _Common(sync=self.sync, unit_id=unit, strict_addresses=self.strict_addresses)
        if profile.kind is DeviceKind.METER_RELAY:
            statics: dict[str, codec.Value] = {
                "manufacturer": "gateway-sim",
                "model": "collar-relay",
                "serial": "SIM-RELAY-0001",
                "map_version": 1,
            }
            return DeviceSim(slot, profile, _RelayBinder(p), statics=statics, **common)
        if profile.kind is DeviceKind.METER:
            return DeviceSim(slot, profile, _MeterBinder(p), **common)
        if profile.kind is DeviceKind.CHARGER:
            c = p.followers.get(slot, p.charger)
            limits_only = profile.role("power_setpoint") is None
            if limits_only:  # nothing flows until the gateway writes a limit
                c.charge_limit_w = c.discharge_limit_w = 0.0
            statics = {
                "rated_charge_power": c.max_charge_w,
                "rated_discharge_power": c.max_discharge_w,
                "max_power": max(c.max_charge_w, c.max_discharge_w),
                "firmware_version": 1,
            }
            rated, charge = profile.role("rated_w"), profile.role("rated_charge_w")
            one = rated is not None and charge is not None and rated.point == charge.point
            follower = slot if slot in p.followers else None
            binder = _ChargerBinder(p, limits_only, one_rating=one, follower=follower)
            return DeviceSim(slot, profile, binder, statics=statics, **common)
        served, image = _sunspec_image(profile, p)
        return DeviceSim(slot, served, _DerBinder(p), image=image.registers, **common)

    def _plan_ports(
        self, port_base: int | None, shared_port: bool, single_client: bool
    ) -> list[_Port]:
        devices = list(self.devices.values())
        groups = [devices] if shared_port and devices else [[d] for d in devices]
        return [
            _Port(
                self.host,
                0 if port_base is None else port_base + i,
                group,
                self.framer,
                single_client,
            )
            for i, group in enumerate(groups)
        ]

    def _plan_layout(self, layout: Mapping[str, Address], single_client: bool) -> list[_Port]:
        """One port per distinct address; devices at the same address are told apart by unit
        id, as behind a Modbus TCP-to-RS-485 gateway."""
        groups: dict[tuple[str, int], list[DeviceSim]] = {}
        framers: dict[tuple[str, int], str] = {}
        for slot, device in self.devices.items():
            a = layout[slot]
            key = (a.host, a.port)
            if framers.setdefault(key, a.scheme) != a.scheme:
                msg = f"{a.host}:{a.port} cannot serve both {framers[key]}:// and {a.scheme}://"
                raise ValueError(msg)
            units = [d.unit_id for d in groups.get(key, [])]
            if device.unit_id in units:
                msg = f"{a.host}:{a.port} has two devices with unit id {device.unit_id}"
                raise ValueError(msg)
            groups.setdefault(key, []).append(device)
        return [
            _Port(
                host,
                port,
                group,
                FramerType.RTU if framers[(host, port)] == "rtu+tcp" else FramerType.SOCKET,
                single_client,
            )
            for (host, port), group in groups.items()
        ]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a simulated device listens: ``tcp`` or ``rtu+tcp`` at host:port, as unit id."""

    scheme: Literal["tcp", "rtu+tcp"]
    host: str
    port: int
    unit_id: int


def _scheme(framer: FramerType) -> str:
    return "rtu+tcp" if framer == FramerType.RTU else "tcp"


def _load(slot: str, ref: ProfileRef) -> Profile:
    profile = ref if isinstance(ref, Profile) else find(ref)
    if profile.kind is not _SLOTS[slot]:
        msg = f"profile {profile.name!r} is a {profile.kind} profile; {slot} needs {_SLOTS[slot]}"
        raise ValueError(msg)
    return profile


def _default_physics(home: SimulatedHome) -> HomePhysics:
    charger = home.profiles.get("charger")
    physics = HomePhysics(now=home.clock.now(), load=Load())
    physics.charger.ramp_w_per_s = 2_000.0  # a DC charger's few seconds to full power
    if charger is not None:
        if charger.max_charge_w is not None:
            physics.charger.max_charge_w = charger.max_charge_w
        if charger.max_discharge_w is not None:
            physics.charger.max_discharge_w = charger.max_discharge_w
    return physics


# The scale factors of the served SunSpec image (raw exponents): not all 0, so that a client
# that ignores them reads nonsense and is caught.
_SUNSPEC_SF: Final = {
    701: {"W_SF": 0, "Var_SF": 0, "V_SF": -1, "Hz_SF": -2, "A_SF": -1},
    702: {"W_SF": 0},
    120: {"WRtg_SF": 0},
    704: {"WMaxLimPct_SF": -1, "WSet_SF": 0},
    713: {"Pct_SF": -1, "WH_SF": 1},
}


def _sunspec_image(profile: Profile, physics: HomePhysics) -> tuple[Profile, sunspec.Image]:
    """Lay out the profile's SunSpec models and resolve its roles against the image."""
    if profile.sunspec is None:
        msg = f"profile {profile.name!r}: a DER is served as SunSpec; it has no [sunspec] table"
        raise ValueError(msg)
    pv, battery = physics.pv, physics.battery
    values: dict[int, dict[str, codec.Value]] = {
        1: {"Mn": "gateway-sim", "Md": "pv-inverter", "SN": "SIM-DER-0001", "Vr": "1"},
        701: {"ConnSt": "CONNECTED"},
        702: {"WMaxRtg": pv.peak_w, "WMax": pv.peak_w},
        704: {
            "WMaxLimPctEna": "DISABLED",
            "WMaxLimPct": 100,
            "WSetEna": "DISABLED",
            "WSetMod": "WATTS",
            "WSet": 0,
        },
        713: {"WHRtg": battery.capacity_wh if battery else 0, "SoC": 0},
        715: {"LocRemCtl": "REMOTE"},
    }
    wanted = [*profile.sunspec.required_models]
    wanted += [m for m in profile.sunspec.optional_models if m != 713 or battery is not None]
    models = [(m, {**_SUNSPEC_SF.get(m, {}), **values.get(m, {})}) for m in wanted]
    image = sunspec.image(models)
    roles: dict[str, Binding] = {}
    for role, b in profile.roles.items():
        point = image.points.get(b.point)
        if point is None:
            continue  # an optional model this device does not have
        value = b.value
        if value is None and b.symbol is not None:
            value = point.symbols[b.symbol]
        states = dict(b.states)
        for category, symbols in b.state_symbols.items():
            states[category] = frozenset(point.symbols[sym] for sym in symbols)
        roles[role] = replace(b, value=value, states=MappingProxyType(states))
    wd = profile.watchdog
    served = replace(
        profile,
        points=MappingProxyType(dict(image.points)),
        roles=MappingProxyType(roles),
        watchdog=wd if wd is not None and wd.point in image.points else None,
    )
    return served, image
