"""The register codec: exact raw round trips for every type and word order, scaling, range
refusals that name the point, symbols, strings, "not implemented" markers; pymodbus's own
converters are the oracle for the register layout."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from gateway.south.codec import CodecError, decode, encode, pack_raw, raw_range, unpack_raw
from gateway.south.profile import WORDS, Point
from gateway.south.registers import DataType, Table, WordOrder

FLOATS = (DataType.FLOAT32, DataType.FLOAT64)
INTEGERS = [t for t in DataType if t not in (*FLOATS, DataType.STRING)]
STRING_REGS = 4
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)  # no NUL, no space


def point(dtype: DataType, order: WordOrder = WordOrder.BIG, **kw: Any) -> Point:
    return Point(
        name=f"p_{dtype}",
        address=0,
        table=Table.COIL if dtype is DataType.BIT else Table.HOLDING,
        type=dtype,
        count=kw.pop("count", WORDS.get(dtype, STRING_REGS)),
        word_order=order,
        **kw,
    )


def raws(dtype: DataType) -> st.SearchStrategy[Any]:
    """Every raw value a point of ``dtype`` can hold."""
    if dtype is DataType.FLOAT32:
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if dtype is DataType.FLOAT64:
        return st.floats(allow_nan=False, allow_infinity=False)
    if dtype is DataType.STRING:
        return st.text(PRINTABLE, max_size=STRING_REGS * 2)
    lo, hi = raw_range(dtype)
    return st.integers(lo, hi)


# -- raw layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("dtype", list(DataType))
@given(data=st.data())
def test_pack_then_unpack_gives_the_raw_value_back(
    dtype: DataType, order: WordOrder, data: st.DataObject
) -> None:
    p = point(dtype, order)
    raw = data.draw(raws(dtype))
    registers = pack_raw(p, raw)
    assert len(registers) == p.count
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert unpack_raw(p, registers) == raw


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("dtype", list(DataType))
@given(data=st.data())
def test_unscaled_encode_then_decode_is_exact(
    dtype: DataType, order: WordOrder, data: st.DataObject
) -> None:
    p = point(dtype, order)
    value = data.draw(raws(dtype))
    assert decode(p, encode(p, value)) == value


_DT = ModbusTcpClient.DATATYPE
ORACLE = {
    DataType.INT16: _DT.INT16,
    DataType.SUNSSF: _DT.INT16,
    DataType.UINT16: _DT.UINT16,
    DataType.ENUM16: _DT.UINT16,
    DataType.BITFIELD16: _DT.UINT16,
    DataType.INT32: _DT.INT32,
    DataType.UINT32: _DT.UINT32,
    DataType.ENUM32: _DT.UINT32,
    DataType.BITFIELD32: _DT.UINT32,
    DataType.ACC32: _DT.UINT32,
    DataType.FLOAT32: _DT.FLOAT32,
    DataType.INT64: _DT.INT64,
    DataType.UINT64: _DT.UINT64,
    DataType.ACC64: _DT.UINT64,
    DataType.FLOAT64: _DT.FLOAT64,
}


def test_the_oracle_covers_every_multi_register_and_16_bit_type() -> None:
    assert set(ORACLE) == set(DataType) - {DataType.STRING, DataType.BIT}


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize(("dtype", "theirs"), list(ORACLE.items()))
@given(data=st.data())
def test_register_layout_matches_pymodbus(
    dtype: DataType, theirs: Any, order: WordOrder, data: st.DataObject
) -> None:
    p = point(dtype, order)
    raw = data.draw(raws(dtype))
    registers = pack_raw(p, raw)
    assert registers == ModbusTcpClient.convert_to_registers(raw, theirs, word_order=order.value)
    assert unpack_raw(p, registers) == ModbusTcpClient.convert_from_registers(
        registers, theirs, word_order=order.value
    )


@given(text=st.text(PRINTABLE, max_size=STRING_REGS * 2))
def test_string_layout_matches_pymodbus_padded_to_the_point(text: str) -> None:
    p = point(DataType.STRING)
    theirs = ModbusTcpClient.convert_to_registers(text, _DT.STRING)
    assert pack_raw(p, text) == theirs + [0] * (STRING_REGS - len(theirs))
    assert ModbusTcpClient.convert_from_registers(pack_raw(p, text), _DT.STRING) == text


def test_word_order_little_puts_the_low_word_first() -> None:
    assert pack_raw(point(DataType.INT32), -7400) == [0xFFFF, 0xE318]
    assert pack_raw(point(DataType.INT32, WordOrder.LITTLE), -7400) == [0xE318, 0xFFFF]
    assert unpack_raw(point(DataType.UINT32, WordOrder.LITTLE), [0x5678, 0x1234]) == 0x12345678


# -- scaling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.1, 0.01, 0.5, 10.0])
@pytest.mark.parametrize("dtype", [t for t in INTEGERS if t is not DataType.BIT])
@given(data=st.data())
def test_scaled_values_encode_to_the_raw_value_they_came_from(
    dtype: DataType, scale: float, data: st.DataObject
) -> None:
    lo, hi = raw_range(dtype)
    raw = data.draw(st.integers(max(lo, -(2**48)), min(hi, 2**48)))
    p = point(dtype, scale=scale)
    value = decode(p, pack_raw(p, raw))
    assert value == pytest.approx(raw * scale)
    assert unpack_raw(p, encode(p, value)) == raw  # type: ignore[arg-type]


@given(value=st.floats(-3276.8, 3276.7))
def test_any_value_in_range_comes_back_within_half_a_step(value: float) -> None:
    p = point(DataType.INT16, scale=0.1)
    back = decode(p, encode(p, value))
    assert isinstance(back, float)
    assert abs(back - value) <= 0.05 + 1e-9


@pytest.mark.parametrize("dtype", FLOATS)
@given(value=st.floats(-1e30, 1e30).map(lambda v: struct.unpack(">f", struct.pack(">f", v))[0]))
def test_scaled_floats_come_back_to_float32_precision(dtype: DataType, value: float) -> None:
    p = point(dtype, scale=0.1)
    assert decode(p, encode(p, value)) == pytest.approx(value, rel=1e-6, abs=1e-30)


def test_a_scale_factor_point_needs_its_factor() -> None:
    p = point(DataType.INT16, scale_factor="W_SF", units="W")
    assert decode(p, [1234], sf=-1) == pytest.approx(123.4)
    assert decode(p, [1234], sf=2) == pytest.approx(123400.0)
    assert encode(p, 123.4, sf=-1) == [1234]
    assert encode(p, -7400, sf=0) == [0x10000 - 7400]
    with pytest.raises(CodecError, match=r"^p_int16: needs scale factor 'W_SF'"):
        decode(p, [1234])
    with pytest.raises(CodecError, match=r"^p_int16: needs scale factor 'W_SF'"):
        encode(p, 1.0)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [t for t in INTEGERS if t is not DataType.BIT])
def test_values_outside_the_type_are_refused_naming_the_point(dtype: DataType) -> None:
    p = point(dtype)
    lo, hi = raw_range(dtype)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(CodecError, match=rf"^p_{dtype}: {bad} .*outside"):
            encode(p, bad)
        with pytest.raises(CodecError, match=rf"^p_{dtype}: {bad} is outside {dtype} range"):
            pack_raw(p, bad)


def test_scaled_range_is_stated_in_engineering_units() -> None:
    p = point(DataType.INT16, scale=0.1, units="V")
    assert encode(p, 3276.7) == [32767]
    with pytest.raises(CodecError, match=r"3276.8 V is outside what the point holds \(-3276.8"):
        encode(p, 3276.8)


@pytest.mark.parametrize("dtype", [DataType.INT16, DataType.UINT32, *FLOATS])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(dtype: DataType, bad: float) -> None:
    with pytest.raises(CodecError, match=rf"^p_{dtype}: {bad} is not a finite number"):
        encode(point(dtype), bad)


def test_a_float32_too_large_is_refused() -> None:
    with pytest.raises(CodecError, match=r"does not fit float32"):
        encode(point(DataType.FLOAT32), 1e39)


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(CodecError, match=r"^p_int32: expected 2 registers, got 1"):
        unpack_raw(point(DataType.INT32), [1])


# -- symbols, strings, bits, not-implemented -----------------------------------------------------


def test_symbols_encode_to_their_values() -> None:
    p = point(DataType.ENUM16, symbols={"START": 1, "STOP": 2})
    assert encode(p, "STOP") == [2]
    assert p.symbol(1) == "START"
    assert p.symbol(3) is None
    with pytest.raises(CodecError, match=r"unknown symbol 'GO' \(known: START, STOP\)"):
        encode(p, "GO")
    with pytest.raises(CodecError, match=r"unknown symbol 'GO' \(known: none\)"):
        encode(point(DataType.UINT16), "GO")


def test_strings_are_ascii_nul_padded_and_bounded() -> None:
    p = point(DataType.STRING, count=2)
    assert encode(p, "AB") == [0x4142, 0]
    assert decode(p, [0x4142, 0x4300]) == "ABC"
    assert decode(p, [0x4120, 0x2000]) == "A"  # trailing spaces and NULs are padding
    with pytest.raises(CodecError, match=r"longer than 4 characters"):
        encode(p, "ABCDE")
    with pytest.raises(CodecError, match=r"is not ASCII"):
        encode(p, "Ä")
    with pytest.raises(CodecError, match=r"needs text"):
        pack_raw(p, 5)
    with pytest.raises(CodecError, match=r"needs a number"):
        pack_raw(point(DataType.UINT16), "5")


def test_bits_are_zero_or_one() -> None:
    p = point(DataType.BIT)
    assert pack_raw(p, 1) == [1]
    assert unpack_raw(p, [5]) == 1
    assert unpack_raw(p, [0]) == 0
    with pytest.raises(CodecError, match=r"outside bit range 0..1"):
        pack_raw(p, 2)


@pytest.mark.parametrize(
    ("dtype", "marker", "registers"),
    [
        (DataType.INT16, 0x8000, [0x8000]),  # the register pattern, not the value -32768
        (DataType.SUNSSF, 0x8000, [0x8000]),
        (DataType.UINT16, 0xFFFF, [0xFFFF]),
        (DataType.ENUM16, 0xFFFF, [0xFFFF]),
        (DataType.INT32, 0x80000000, [0x8000, 0]),
        (DataType.UINT32, 0xFFFFFFFF, [0xFFFF, 0xFFFF]),
        (DataType.ACC64, 0, [0, 0, 0, 0]),
        (DataType.FLOAT32, 0x7FC00000, [0x7FC0, 0]),  # a NaN sentinel
    ],
)
def test_not_implemented_decodes_to_none(
    dtype: DataType, marker: int, registers: list[int]
) -> None:
    p = point(dtype, not_implemented=marker)
    assert decode(p, registers) is None
    assert decode(p, [0] * (p.count - 1) + [0x4000 if dtype in FLOATS else 1]) is not None


def test_a_little_endian_marker_is_the_pattern_on_the_wire() -> None:
    p = point(DataType.INT32, WordOrder.LITTLE, not_implemented=0x80000000)
    assert decode(p, [0, 0x8000]) is None
    assert decode(p, [0x8000, 0]) == 0x8000
