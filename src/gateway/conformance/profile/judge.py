"""Pure judgments of one point: where it lives, whether a reading is in range, and which value
the suite may safely write to it (no I/O, so each rule is easy to read and to test)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.south.codec import Value
from gateway.south.profile import (
    REQUIRED,
    ROLES,
    Point,
    Profile,
    RoleKind,
)
from gateway.south.registers import DataType

#: Engineering ranges a reading must fall in, by unit (a wrong scale or scale factor shows here
#: first): a percentage, a grid frequency (0 on a dead bus), a voltage, a current.
UNIT_RANGES: Mapping[str, tuple[float, float]] = {
    "%": (0.0, 100.0),
    "V": (0.0, 1000.0),
    "A": (-1000.0, 1000.0),
}
FREQUENCY_HZ = (40.0, 70.0)
#: A power reading may exceed the device's rating by this factor (overload, meter tolerance).
RATING_SLACK = 1.5
#: Roles that carry a power in W, judged against the device's rating.
POWER_ROLES = frozenset({"power", "power_setpoint", "charge_limit", "discharge_limit"})
#: Roles whose reading is a rating (W).
RATING_ROLES = ("rated_w", "rated_charge_w", "w_max")
#: Commands that leave a device safer than before: written in PRF-03, never undone.
SAFE_COMMANDS = ("grid_forming_off", "stop")
#: Commands that move power or the relay: never written by PRF-03.
UNSAFE_COMMANDS = frozenset({"start", "grid_forming_on", "relay_open", "relay_close"})
_ENUMS = frozenset({DataType.ENUM16, DataType.ENUM32})
_BITS = frozenset({DataType.BITFIELD16, DataType.BITFIELD32})


def where(p: Point) -> str:
    """The register, as a vendor's map names it: ``holding 260`` or ``input 106-107``."""
    end = f"-{p.address + p.count - 1}" if p.count > 1 else ""
    return f"{p.table.value} {p.address}{end}"


def label(p: Point) -> str:
    return f"{p.name} ({where(p)})"


def roles_of(profile: Profile, point: str) -> list[str]:
    return [r for r, b in profile.roles.items() if point in b.points]


def kind_of(profile: Profile, role: str) -> RoleKind:
    return ROLES[profile.kind][role].kind


def rating(profile: Profile, readings: Mapping[str, Value | None]) -> float | None:
    """The largest power the profile or the device claims (W), or None when neither says."""
    found = [w for w in (profile.max_charge_w, profile.max_discharge_w) if w is not None]
    for role in RATING_ROLES:
        b = profile.role(role)
        v = readings.get(b.point) if b is not None else None
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            found.append(float(v))
    return max(found) if found else None


def show(v: Value | None, p: Point) -> str:
    if v is None:
        return "not implemented"
    if isinstance(v, float):
        v = round(v, 6)
    if p.type in _BITS and isinstance(v, int):  # symbols name bit numbers
        bits = [name for name, bit in p.symbols.items() if v >> bit & 1]
        return f"{v:#06x}" + (f" ({', '.join(bits)})" if bits else "")
    sym = p.symbol(v) if isinstance(v, int) else None
    unit = f" {p.units}" if p.units else ""
    return f"{v}{unit}" + (f" ({sym})" if sym else "")


def reading_problem(
    profile: Profile, p: Point, v: Value | None, rated: float | None
) -> tuple[str, str] | None:
    """(expected, seen) when a decoded reading is not plausible for the point; None if it is."""
    roles = roles_of(profile, p.name)
    if v is None:
        required = REQUIRED[profile.kind] & set(roles)
        if required:
            return f"a value (role {', '.join(sorted(required))} is required)", "not implemented"
        return None
    if isinstance(v, str):
        ok = v.isprintable()
        return None if ok else ("printable ASCII text", repr(v))
    if isinstance(v, float) and not math.isfinite(v):
        return "a finite number", repr(v)
    # A command register reads back the last command, or 0 before the first: not a state, so
    # only the enums the gateway reads must hold a symbol.
    commands = all(kind_of(profile, r) is RoleKind.COMMAND for r in roles) and roles
    enum = p.type in _ENUMS and p.symbols and not commands
    if enum and isinstance(v, int) and v not in p.symbols.values():
        return f"one of {', '.join(f'{k}={n}' for k, n in p.symbols.items())}", f"raw {v}"
    if not p.admits(float(v)):
        return f"{p.range_text()} (the profile's range)", show(v, p)
    if p.units == "Hz" and v != 0 and not FREQUENCY_HZ[0] <= v <= FREQUENCY_HZ[1]:
        return f"0 or {FREQUENCY_HZ[0]:g}..{FREQUENCY_HZ[1]:g} Hz", show(v, p)
    if p.units is not None and p.units in UNIT_RANGES:
        lo, hi = UNIT_RANGES[p.units]
        if not lo <= v <= hi:
            return f"{lo:g}..{hi:g} {p.units} (the unit's plausible range)", show(v, p)
    if rated is not None and POWER_ROLES & set(roles) and abs(v) > RATING_SLACK * rated:
        return f"|power| <= {RATING_SLACK:g} x the rating {rated:g} W", show(v, p)
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """What PRF-03 writes to one point: ``value`` (None: not written, ``why`` says why), and
    whether the original is written back afterwards."""

    value: Value | None
    why: str
    restore: bool = True


def plan(profile: Profile, p: Point, current: Value | None) -> Plan:
    """The safe value for one writable point: 0 W for a setpoint, the lowest limit, a higher
    SoC reserve, the stop command, the init write; else the value it holds, rewritten."""
    roles = roles_of(profile, p.name)
    wd = profile.watchdog
    if wd is not None and wd.point == p.name:
        return Plan(None, "the watchdog point: written by PRF-05")
    safe = [r for r in SAFE_COMMANDS if r in roles]
    if safe:
        b = profile.roles[safe[0]]
        return Plan(b.value, f"{safe[0]}: the safe state, left so", restore=False)
    unsafe = sorted(UNSAFE_COMMANDS & set(roles))
    if unsafe:
        return Plan(None, f"{', '.join(unsafe)}: moves power or the relay (PRF-06, --allow-relay)")
    init = [w.value for w in profile.init if w.point == p.name]
    if init:
        return Plan(init[0], "the profile's init write")
    readable = p.access.readable and current is not None
    num = current if isinstance(current, int | float) and not isinstance(current, bool) else None
    for role in roles:
        if role == "power_setpoint":
            return Plan(0, "0 W: no power flows")
        if role in ("charge_limit", "discharge_limit"):
            low = p.minimum if p.minimum is not None else 0
            return Plan(low, "the lowest limit the profile allows", restore=readable)
        if role == "limit_pct":
            low = p.minimum if p.minimum is not None else 0.0
            value = max(low, num - 10.0) if num is not None else low
            return Plan(value, "a lower generation limit", restore=readable)
        if role == "soc_floor" and num is not None:
            high = p.maximum if p.maximum is not None else 100.0
            return Plan(min(high, num + 5.0), "a higher SoC reserve")
    if readable and p.type is not DataType.STRING:
        return Plan(current, "rewritten unchanged: the suite knows no safer value")
    if not p.access.readable:
        return Plan(None, "write-only with no role the suite knows a safe value for")
    return Plan(None, "reads no value to rewrite")


def tolerance(p: Point, multiplier: float, value: float) -> float:
    """How far a read-back may be from what was written: half a raw step, or float32's
    precision."""
    if p.type in (DataType.FLOAT32, DataType.FLOAT64):
        return max(abs(value) * 1e-6, 1e-9)
    return abs(multiplier) / 2 + 1e-9
