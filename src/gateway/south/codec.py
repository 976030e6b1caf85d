"""Values <-> Modbus registers, per point (pure; pymodbus's own converters are the test oracle).

Decoding returns the engineering value: ``raw * scale * 10**sf``. Encoding refuses a value that
does not fit the point's type after scaling, with a message naming the point and the range, so an
absurd setpoint is an error and never a wrapped-around register.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from gateway.core import errors
from gateway.south.profile import Point
from gateway.south.registers import DataType, WordOrder

Value = int | float | str

# struct codes per type (big-endian, as the words will be laid out for WordOrder.BIG).
_STRUCT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.SUNSSF: ">h",
    DataType.UINT16: ">H",
    DataType.ENUM16: ">H",
    DataType.BITFIELD16: ">H",
    DataType.BIT: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.ENUM32: ">I",
    DataType.BITFIELD32: ">I",
    DataType.ACC32: ">I",
    DataType.FLOAT32: ">f",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.ACC64: ">Q",
    DataType.FLOAT64: ">d",
}
_FLOATS = frozenset({DataType.FLOAT32, DataType.FLOAT64})


class CodecError(errors.DeviceError, ValueError):
    """A value that cannot be put into, or taken out of, a point's registers."""

    def __init__(self, point: Point, why: str) -> None:
        super().__init__(f"{point.name}: {why}")
        self.point = point


def raw_range(dtype: DataType) -> tuple[int, int]:
    """The integer range a raw value of ``dtype`` can hold."""
    return _RANGES[dtype]


def _range(dtype: DataType) -> tuple[int, int]:
    if dtype is DataType.BIT:
        return 0, 1
    code = _STRUCT[dtype]
    bits = struct.calcsize(code) * 8
    if code[-1].islower():  # signed
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# Worked out once: every encode asks twice, on the path of each write.
_RANGES: dict[DataType, tuple[int, int]] = {
    t: _range(t) for t in DataType if t is DataType.BIT or t in _STRUCT
}


def _words(data: bytes, order: WordOrder) -> list[int]:
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if order is WordOrder.LITTLE else words


def _bytes(registers: Sequence[int], order: WordOrder) -> bytes:
    words = list(registers)[::-1] if order is WordOrder.LITTLE else list(registers)
    return b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words)


def pack_raw(point: Point, raw: int | float | str) -> list[int]:
    """Registers for an already-scaled raw value."""
    if point.type is DataType.STRING:
        if not isinstance(raw, str):
            raise CodecError(point, f"a string point needs text, not {raw!r}")
        data = raw.encode("ascii", errors="strict") if raw.isascii() else b""
        if not raw.isascii():
            raise CodecError(point, f"{raw!r} is not ASCII")
        if len(data) > point.count * 2:
            raise CodecError(point, f"{raw!r} is longer than {point.count * 2} characters")
        return _words(data.ljust(point.count * 2, b"\0"), WordOrder.BIG)
    if isinstance(raw, str):
        raise CodecError(point, f"a {point.type} point needs a number, not {raw!r}")
    code = _STRUCT[point.type]
    if point.type in _FLOATS:
        try:
            data = struct.pack(code, float(raw))
        except OverflowError as exc:
            raise CodecError(point, f"{raw!r} does not fit {point.type}") from exc
        return _words(data, point.word_order)
    lo, hi = raw_range(point.type)
    if not lo <= raw <= hi:
        raise CodecError(point, f"{raw!r} is outside {point.type} range {lo}..{hi}")
    if point.type is DataType.BIT:
        return [int(raw)]
    return _words(struct.pack(code, int(raw)), point.word_order)


def unpack_raw(point: Point, registers: Sequence[int]) -> int | float | str:
    """The raw value in a point's registers (no scaling, no not-implemented check)."""
    if len(registers) != point.count:
        raise CodecError(point, f"expected {point.count} registers, got {len(registers)}")
    if point.type is DataType.STRING:
        return _bytes(registers, WordOrder.BIG).rstrip(b"\0 ").decode("ascii", errors="replace")
    if point.type is DataType.BIT:
        return 1 if registers[0] else 0
    (value,) = struct.unpack(_STRUCT[point.type], _bytes(registers, point.word_order))
    return value  # type: ignore[no-any-return]


def multiplier(point: Point, sf: int | None) -> float:
    return point.scale * (10.0**sf if sf is not None else 1.0)


def decode(point: Point, registers: Sequence[int], sf: int | None = None) -> Value | None:
    """The engineering value, or None when the device says "not implemented"."""
    raw = unpack_raw(point, registers)
    if isinstance(raw, str):
        return raw
    if point.not_implemented is not None and point.type is not DataType.BIT:
        # Compare the register pattern, not the value: 0x8000 for int16 unpacks as -32768 and
        # a float32 NaN sentinel (0x7FC00000) never equals itself.
        pattern = int.from_bytes(_bytes(registers, point.word_order), "big")
        if pattern == point.not_implemented:
            return None
    if point.scale_factor is not None and sf is None:
        raise CodecError(point, f"needs scale factor {point.scale_factor!r}, which is unknown")
    m = multiplier(point, sf)
    if m == 1.0 and isinstance(raw, int):
        return raw
    return raw * m


def encode(point: Point, value: Value, sf: int | None = None) -> list[int]:
    """Registers for an engineering value; symbols (enum names) are accepted for enum points."""
    if isinstance(value, str) and point.type is not DataType.STRING:
        if value not in point.symbols:
            known = ", ".join(point.symbols) or "none"
            raise CodecError(point, f"unknown symbol {value!r} (known: {known})")
        return pack_raw(point, point.symbols[value])
    if isinstance(value, str):
        return pack_raw(point, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise CodecError(point, f"{value!r} is not a finite number")
    if point.scale_factor is not None and sf is None:
        raise CodecError(point, f"needs scale factor {point.scale_factor!r}, which is unknown")
    m = multiplier(point, sf)
    if point.type in _FLOATS:
        return pack_raw(point, value / m)
    # An int at scale 1 is taken exactly: value / 1.0 would round a 64-bit int through a float.
    raw = value if isinstance(value, int) and m == 1.0 else round(value / m)
    lo, hi = raw_range(point.type)
    if not lo <= raw <= hi:
        raise CodecError(
            point,
            f"{value!r} {point.units or ''} is outside what the point holds "
            f"({lo * m:g}..{hi * m:g})".replace("  ", " "),
        )
    return pack_raw(point, raw)
