"""SunSpec: definitions from pysunspec2's JSON, the chain walk, binding, and the image builder.

pysunspec2's own (pure-Python, no I/O) ``sunspec2.device.Model`` is the oracle for the layout of
every shipped model; the register-level interop with its Modbus client is in
tests/integration/south/test_sunspec_oracle.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.south import codec
from gateway.south.profile import Access
from gateway.south.registers import DataType, Table
from gateway.south.sunspec import (
    Chain,
    ModelInstance,
    ReadRequest,
    SunSpecError,
    Walk,
    bind,
    image,
    known_models,
    model,
    symbol_value,
    walk,
)


def pump(gen: Walk, regs: Mapping[int, int]) -> tuple[Chain, list[ReadRequest]]:
    """Answer the walk from a register map; a read touching an undefined address gets a
    Modbus exception (None), as a pymodbus SimDevice answers."""
    requests: list[ReadRequest] = []
    try:
        request = next(gen)
        while True:
            requests.append(request)
            span = range(request.address, request.address + request.count)
            reply = [regs[a] for a in span] if all(a in regs for a in span) else None
            request = gen.send(reply)
    except StopIteration as stop:
        return stop.value, requests


CHARGER = [
    (1, {"Mn": "Acme", "Md": "BiDi-7", "SN": "0042", "Vr": "1.2.3"}),
    (701, {"W": -7400, "W_SF": 0, "InvSt": "RUNNING", "DERMode": "GRID_FORMING"}),
    (702, {"WMaxRtg": 7400, "W_SF": 0}),
    (704, {"WSetEna": "ENABLED", "WSetMod": "WATTS", "WSet": -3200, "WSet_SF": 0}),
    (713, {"SoC": 65.4, "Pct_SF": -1, "WHRtg": 60000, "WH_SF": 1}),
    (715, {"OpCtl": "START", "ControllerHb": 7}),
]


# ---------------------------------------------------------------------------------------------
# Definitions


# (model, point, offset from ID, type, registers, sf) from shared/domain/devices.md §2.2.
DEVICES_MD = [
    (1, "Mn", 2, DataType.STRING, 16, None),
    (1, "Md", 18, DataType.STRING, 16, None),
    (1, "Vr", 42, DataType.STRING, 8, None),
    (1, "SN", 50, DataType.STRING, 16, None),
    (123, "Conn_WinTms", 2, DataType.UINT16, 1, None),
    (123, "Conn_RvrtTms", 3, DataType.UINT16, 1, None),
    (123, "Conn", 4, DataType.ENUM16, 1, None),
    (123, "WMaxLimPct", 5, DataType.UINT16, 1, "WMaxLimPct_SF"),
    (123, "WMaxLim_Ena", 9, DataType.ENUM16, 1, None),
    (123, "WMaxLimPct_SF", 23, DataType.SUNSSF, 1, None),
    (124, "WChaMax", 2, DataType.UINT16, 1, "WChaMax_SF"),
    (124, "StorCtl_Mod", 5, DataType.BITFIELD16, 1, None),
    (124, "ChaState", 8, DataType.UINT16, 1, "ChaState_SF"),
    (124, "ChaSt", 11, DataType.ENUM16, 1, None),
    (124, "OutWRte", 12, DataType.INT16, 1, "InOutWRte_SF"),
    (124, "InWRte", 13, DataType.INT16, 1, "InOutWRte_SF"),
    (124, "ChaState_SF", 22, DataType.SUNSSF, 1, None),
    (124, "InOutWRte_SF", 25, DataType.SUNSSF, 1, None),
    (701, "St", 3, DataType.ENUM16, 1, None),
    (701, "InvSt", 4, DataType.ENUM16, 1, None),
    (701, "ConnSt", 5, DataType.ENUM16, 1, None),
    (701, "DERMode", 8, DataType.BITFIELD32, 2, None),
    (701, "W", 10, DataType.INT16, 1, "W_SF"),
    (701, "LLV", 15, DataType.UINT16, 1, "V_SF"),
    (701, "LNV", 16, DataType.UINT16, 1, "V_SF"),
    (701, "Hz", 17, DataType.UINT32, 2, "Hz_SF"),
    (701, "V_SF", 114, DataType.SUNSSF, 1, None),
    (701, "Hz_SF", 115, DataType.SUNSSF, 1, None),
    (701, "W_SF", 116, DataType.SUNSSF, 1, None),
    (702, "WMaxRtg", 2, DataType.UINT16, 1, "W_SF"),
    (702, "WChaRteMaxRtg", 10, DataType.UINT16, 1, "W_SF"),
    (702, "WDisChaRteMaxRtg", 11, DataType.UINT16, 1, "W_SF"),
    (702, "IntIslandCatRtg", 25, DataType.BITFIELD16, 1, None),
    (702, "WMax", 26, DataType.UINT16, 1, "W_SF"),
    (702, "WChaRteMax", 34, DataType.UINT16, 1, "W_SF"),
    (702, "WDisChaRteMax", 35, DataType.UINT16, 1, "W_SF"),
    (702, "IntIslandCat", 44, DataType.BITFIELD16, 1, None),
    (702, "W_SF", 45, DataType.SUNSSF, 1, None),
    (703, "ES", 2, DataType.ENUM16, 1, None),
    (703, "ESVHi", 3, DataType.UINT16, 1, "V_SF"),
    (703, "ESVLo", 4, DataType.UINT16, 1, "V_SF"),
    (703, "ESHzHi", 5, DataType.UINT32, 2, "Hz_SF"),
    (703, "ESHzLo", 7, DataType.UINT32, 2, "Hz_SF"),
    (703, "ESDlyTms", 9, DataType.UINT32, 2, None),
    (703, "ESRndTms", 11, DataType.UINT32, 2, None),
    (703, "ESRmpTms", 13, DataType.UINT32, 2, None),
    (703, "ESDlyRemTms", 15, DataType.UINT32, 2, None),
    (703, "V_SF", 17, DataType.SUNSSF, 1, None),
    (703, "Hz_SF", 18, DataType.SUNSSF, 1, None),
    (704, "WMaxLimPctEna", 14, DataType.ENUM16, 1, None),
    (704, "WMaxLimPct", 15, DataType.UINT16, 1, "WMaxLimPct_SF"),
    (704, "WMaxLimPctRvrt", 16, DataType.UINT16, 1, "WMaxLimPct_SF"),
    (704, "WMaxLimPctEnaRvrt", 17, DataType.ENUM16, 1, None),
    (704, "WMaxLimPctRvrtTms", 18, DataType.UINT32, 2, None),
    (704, "WSetEna", 22, DataType.ENUM16, 1, None),
    (704, "WSetMod", 23, DataType.ENUM16, 1, None),
    (704, "WSet", 24, DataType.INT32, 2, "WSet_SF"),
    (704, "WSetRvrt", 26, DataType.INT32, 2, "WSet_SF"),
    (704, "WSetPct", 28, DataType.INT16, 1, "WSetPct_SF"),
    (704, "WSetEnaRvrt", 30, DataType.ENUM16, 1, None),
    (704, "WSetRvrtTms", 31, DataType.UINT32, 2, None),
    (704, "WSetRvrtRem", 33, DataType.UINT32, 2, None),
    (704, "WRmp", 49, DataType.UINT16, 1, None),
    (704, "WRmpRef", 50, DataType.ENUM16, 1, None),
    (704, "AntiIslEna", 52, DataType.ENUM16, 1, None),
    (704, "WMaxLimPct_SF", 54, DataType.SUNSSF, 1, None),
    (704, "WSet_SF", 55, DataType.SUNSSF, 1, None),
    (704, "WSetPct_SF", 56, DataType.SUNSSF, 1, None),
    (713, "WHRtg", 2, DataType.UINT16, 1, "WH_SF"),
    (713, "WHAvail", 3, DataType.UINT16, 1, "WH_SF"),
    (713, "SoC", 4, DataType.UINT16, 1, "Pct_SF"),
    (713, "SoH", 5, DataType.UINT16, 1, "Pct_SF"),
    (713, "Sta", 6, DataType.ENUM16, 1, None),
    (713, "WH_SF", 7, DataType.SUNSSF, 1, None),
    (713, "Pct_SF", 8, DataType.SUNSSF, 1, None),
    (715, "LocRemCtl", 2, DataType.ENUM16, 1, None),
    (715, "DERHb", 3, DataType.UINT32, 2, None),
    (715, "ControllerHb", 5, DataType.UINT32, 2, None),
    (715, "AlarmReset", 7, DataType.UINT16, 1, None),
    (715, "OpCtl", 8, DataType.ENUM16, 1, None),
    (203, "PhV", 7, DataType.INT16, 1, "V_SF"),
    (203, "Hz", 16, DataType.INT16, 1, "Hz_SF"),
    (203, "W", 18, DataType.INT16, 1, "W_SF"),
    (203, "W_SF", 22, DataType.SUNSSF, 1, None),
    (203, "TotWhExp", 38, DataType.ACC32, 2, "TotWh_SF"),
    (203, "TotWhImp", 46, DataType.ACC32, 2, "TotWh_SF"),
    (203, "TotWh_SF", 54, DataType.SUNSSF, 1, None),
]


@pytest.mark.parametrize(("mid", "name", "offset", "dtype", "size", "sf"), DEVICES_MD)
def test_offsets_and_types_match_devices_md(
    mid: int, name: str, offset: int, dtype: DataType, size: int, sf: str | None
) -> None:
    p = model(mid).point(name)
    assert (p.offset, p.type, p.size, p.sf) == (offset, dtype, size, sf)


@pytest.mark.parametrize(
    ("mid", "name", "access", "units", "symbols"),
    [
        (123, "Conn", Access.RW, None, {"DISCONNECT": 0, "CONNECT": 1}),
        (701, "ConnSt", Access.R, None, {"DISCONNECTED": 0, "CONNECTED": 1}),
        (
            701,
            "InvSt",
            Access.R,
            None,
            {
                "OFF": 0,
                "SLEEPING": 1,
                "STARTING": 2,
                "RUNNING": 3,
                "THROTTLED": 4,
                "SHUTTING_DOWN": 5,
                "FAULT": 6,
                "STANDBY": 7,
            },
        ),
        # bitfield symbols are bit numbers in the JSON
        (701, "DERMode", Access.R, None, {"GRID_FOLLOWING": 0, "GRID_FORMING": 1, "PV_CLIPPED": 2}),
        (704, "WSetMod", Access.RW, None, {"W_MAX_PCT": 0, "WATTS": 1}),
        (704, "WSet", Access.RW, "W", {}),
        (713, "SoC", Access.R, "Pct", {}),
        (715, "LocRemCtl", Access.R, None, {"REMOTE": 0, "LOCAL": 1}),
        (715, "ControllerHb", Access.RW, None, {}),
        (
            715,
            "OpCtl",
            Access.RW,
            None,
            {"STOP": 0, "START": 1, "ENTER_STANDBY": 2, "EXIT_STANDBY": 3},
        ),
    ],
)
def test_access_units_and_symbols(
    mid: int, name: str, access: Access, units: str | None, symbols: dict[str, int]
) -> None:
    p = model(mid).point(name)
    assert (p.access, p.units, dict(p.symbols)) == (access, units, symbols)


def test_model_header_labels_and_lengths() -> None:
    m = model(701)
    assert (m.id, m.name, m.label) == (701, "DERMeasureAC", "DER AC Measurement")
    assert [p.name for p in m.points[:3]] == ["ID", "L", "ACType"]
    assert m.point("W").desc.startswith("Total active power")
    # The L of the fixed part: what a device reports for models without repeating groups.
    assert {i: model(i).length for i in (1, 701, 702, 703, 704, 713, 715)} == {
        1: 66,
        701: 153,
        702: 50,
        703: 17,
        704: 65,
        713: 7,
        715: 7,
    }
    assert model(1).point("Mn").mandatory
    assert not model(1).point("Opt").mandatory


def test_fixed_groups_are_flattened_with_dotted_names() -> None:
    m = model(704)
    assert (m.point("PFWInj.PF").offset, m.point("PFWInj.PF").sf) == (59, "PF_SF")
    assert m.point("PFWAbsRvrt.Ext").offset == 66
    assert m.point("PFWAbsRvrt.Ext").symbols["UNDER_EXCITED"] == 1


def test_repeating_groups_expose_the_first_repetition_until_a_count_matters() -> None:
    m = model(705)
    assert [(g.path, g.count) for g in m.repeating_groups] == [("Crv", "NCrv"), ("Crv.Pt", "NPt")]
    names = [p.name for p in m.points]
    assert "Crv[1].ActPt" in names
    assert m.point("Crv[1].Pt[1].V").offset == 25
    assert "Crv[2].ActPt" not in names
    assert not any(n.startswith("Crv[1].Pt[2]") for n in names)
    # 707: MayTrip follows the repeating Pt group, so its place depends on NPt.
    assert "Crv[1].MustTrip.Pt[1].V" in {p.name for p in model(707).points}
    assert not any("MayTrip" in p.name for p in model(707).points)
    full = {p.name: p.offset for p in model(707).layout({"NPt": 2, "NCrvSet": 2})}
    # Crv = ReadOnly + 3 x (ActPt + 2 x (V + Tms)) = 1 + 3 * 7 = 22 registers
    assert full["Crv[1].MayTrip.ActPt"] == 9 + 1 + 7
    assert full["Crv[2].ReadOnly"] == 9 + 22
    assert full["Crv[2].MomCess.Pt[2].Tms"] == 9 + 22 + 1 + 14 + 1 + 3 + 1
    # No curves: the top-level points only.
    assert [p.name for p in model(707).layout({"NPt": 0, "NCrvSet": 0})][-3:] == [
        "NCrvSet",
        "V_SF",
        "Tms_SF",
    ]


def test_scale_factors_resolve_in_the_group_first_then_the_model() -> None:
    # model 705: curve points are scaled by the model's V_SF
    assert model(705).point("Crv[1].Pt[1].V").sf == "V_SF"
    inner = [
        (mid, p.name, p.sf)
        for mid in known_models()
        for p in model(mid).points
        if isinstance(p.sf, str) and "." in p.sf
    ]
    assert inner  # some models keep their sf inside the group ...
    for mid, name, sf in inner:  # ... and then it is the group's own point
        assert isinstance(sf, str)
        assert sf.rsplit(".", 1)[0] == name.rsplit(".", 1)[0], (mid, name, sf)


def test_constant_scale_factors_are_kept_as_exponents() -> None:
    assert model(307).point("TmpAmb").sf == -1
    assert model(305).point("Lat").sf == -7


def test_symbol_value_resolves_enum_values_and_bitfield_masks() -> None:
    assert symbol_value(704, "WSetEna", "ENABLED") == 1
    assert symbol_value(715, "OpCtl", "ENTER_STANDBY") == 2
    assert symbol_value(701, "DERMode", "GRID_FORMING") == 0b10
    assert symbol_value(702, "IntIslandCat", "ISOCH_CAPABLE") == 0b1000
    with pytest.raises(SunSpecError, match=r"OpCtl has no symbol 'RUN' \(known: STOP, START"):
        symbol_value(715, "OpCtl", "RUN")
    with pytest.raises(SunSpecError, match="did you mean OpCtl"):
        symbol_value(715, "OpCt", "STOP")


def test_unknown_model() -> None:
    with pytest.raises(SunSpecError, match="no SunSpec definition for model 64999"):
        model(64999)
    assert {1, 123, 124, 201, 202, 203, 204, 701, 702, 703, 704, 713, 715} <= set(known_models())


def _json(mid: int) -> dict[str, Any]:
    path = resources.files("sunspec2") / "models" / "json" / f"model_{mid}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _oracle_offsets(mid: int, length: int, data: bytes) -> dict[str, int]:
    """pysunspec2's layout of a model instance, with our naming (repetitions from 1)."""
    import sunspec2.device as ss_device

    m = ss_device.Model(model_id=mid, model_addr=0, model_len=length, data=data)
    assert not m.error_info, m.error_info

    def flat(group: Any, prefix: str) -> Iterator[tuple[str, int]]:
        for name, point in group.points.items():
            yield prefix + name, point.offset
        for name, sub in group.groups.items():
            if isinstance(sub, list):
                for i, rep in enumerate(sub, 1):
                    yield from flat(rep, f"{prefix}{name}[{i}].")
            else:
                yield from flat(sub, f"{prefix}{name}.")

    return dict(flat(m, ""))


@pytest.mark.parametrize("mid", known_models())
def test_every_shipped_model_lays_out_as_pysunspec2_does(mid: int) -> None:
    m = model(mid)
    declared = next(p for p in _json(mid)["group"]["points"] if p["name"] == "L").get("value")
    if declared is not None:
        assert m.length == declared
    # Two repetitions of every repeating group: counted ones through their count points,
    # count-0 ones through the model length.
    counts = {g.count: 2 for g in m.repeating_groups if isinstance(g.count, str)}
    zero = {g.path: 2 for g in m.repeating_groups if g.count == 0}
    laid = m.layout(counts | zero)
    length = max(p.offset + p.size for p in laid) - 2
    words = [0] * (length + 2)
    for p in laid:
        if p.name in counts:
            words[p.offset] = 2
    data = b"".join(w.to_bytes(2, "big") for w in words)
    ours = {p.name: p.offset for p in m.layout(counts, length)}
    assert ours == _oracle_offsets(mid, length, data)


def test_definitions_are_read_without_importing_pysunspec2_code() -> None:
    code = (
        "import sys; from gateway.south import sunspec as s; s.model(701); s.known_models(); "
        "print(sorted(m for m in sys.modules if m.startswith('sunspec2')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "['sunspec2']"  # the package's __init__ only sets VERSION


# ---------------------------------------------------------------------------------------------
# The walk


def test_walk_at_40000_reads_two_registers_per_model() -> None:
    img = image(CHARGER)
    chain, requests = pump(walk(), img.registers)
    assert chain == img.chain
    assert [(m.id, m.address, m.length) for m in chain.models] == [
        (1, 40002, 66),
        (701, 40070, 153),
        (702, 40225, 50),
        (704, 40277, 65),
        (713, 40344, 7),
        (715, 40353, 7),
    ]
    assert chain.ended
    assert requests == [ReadRequest(40000, 2)] + [
        ReadRequest(a, 2) for a in (40002, 40070, 40225, 40277, 40344, 40353, 40362)
    ]


def test_walk_at_base_0_after_an_exception_at_40000() -> None:
    img = image(CHARGER, base=0)
    chain, requests = pump(walk(), img.registers)
    assert requests[:2] == [ReadRequest(40000, 2), ReadRequest(0, 2)]
    assert chain.base == 0
    assert chain.models[0] == ModelInstance(1, 2, 66)


def test_walk_at_50000_when_the_others_are_not_sunspec() -> None:
    regs = dict(image(CHARGER, base=50000).registers)
    regs |= {40000: 0, 40001: 0, 0: 0x5375, 1: 0x6E54}  # readable, but not 'SunS'
    chain, _ = pump(walk(), regs)
    assert chain.base == 50000
    assert [m.id for m in chain.models] == [1, 701, 702, 704, 713, 715]


def test_walk_with_no_marker_names_every_base_tried() -> None:
    with pytest.raises(SunSpecError) as err:
        pump(walk(), {40000: 0x5375, 40001: 0x6E52, 0: 1, 1: 2})
    assert str(err.value) == (
        "no SunSpec marker 'SunS' (0x5375 0x6E53) at any base; tried "
        "40000 (read 0x5375 0x6e52), 0 (read 0x0001 0x0002), 50000 (exception)"
    )


def test_walk_custom_bases_and_out_of_range_base() -> None:
    img = image(CHARGER, base=1000)
    chain, _ = pump(walk(bases=(70000, 1000)), img.registers)
    assert chain.base == 1000
    with pytest.raises(SunSpecError, match=r"70000 \(not a register address\)"):
        pump(walk(bases=(70000,)), img.registers)


def test_end_marker_without_length_register() -> None:
    img = image(CHARGER)
    regs = dict(img.registers)
    end = img.chain.models[-1].end
    del regs[end + 1]  # the device implements 0xFFFF but not the 0 after it
    chain, requests = pump(walk(), regs)
    assert chain == img.chain
    assert chain.ended
    assert requests[-2:] == [ReadRequest(end, 2), ReadRequest(end, 1)]


def test_truncated_chain_keeps_the_models_found() -> None:
    img = image(CHARGER)
    regs = dict(img.registers)
    end = img.chain.models[-1].end
    del regs[end], regs[end + 1]
    chain, _ = pump(walk(), regs)
    assert chain.models == img.chain.models
    assert not chain.ended


def test_zero_registers_after_the_last_model_end_the_chain() -> None:
    img = image(CHARGER)
    regs = dict(img.registers)
    end = img.chain.models[-1].end
    regs[end] = regs[end + 1] = 0
    chain, _ = pump(walk(), regs)
    assert (chain.models, chain.ended) == (img.chain.models, False)


def test_model_whose_length_register_is_unreadable_is_refused() -> None:
    regs = {40000: 0x5375, 40001: 0x6E53, 40002: 1}
    with pytest.raises(SunSpecError, match="model 1 at 40002: its length register cannot be read"):
        pump(walk(), regs)


def test_chain_running_past_65535_is_refused() -> None:
    regs = {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 66, 40070: 701, 40071: 30000}
    with pytest.raises(SunSpecError, match=r"model 701 at 40070 with L=30000 runs past register"):
        pump(walk(), regs)


def test_a_length_that_would_wrap_back_into_the_chain_is_refused() -> None:
    # 40002 + 2 + 65534 = 105538 = 40002 mod 65536: a naive walker loops forever.
    regs = {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 65534}
    with pytest.raises(SunSpecError, match="runs past register 65535"):
        pump(walk(), regs)


def test_chain_ending_exactly_at_65535_has_no_room_for_a_marker() -> None:
    regs = {65500: 0x5375, 65501: 0x6E53, 65502: 713, 65503: 32}
    chain, _ = pump(walk(bases=(65500,)), regs)
    assert (chain.models, chain.ended) == ((ModelInstance(713, 65502, 32),), False)
    # one register more and its last register would be 65536
    with pytest.raises(SunSpecError, match="L=33 runs past register 65535"):
        pump(walk(bases=(65500,)), regs | {65503: 33})


def test_too_many_models_are_refused() -> None:
    img = image([(713, {})] * 4)
    assert len(pump(walk(max_models=4), img.registers)[0].models) == 4
    with pytest.raises(SunSpecError, match="more than 3 models from base 40000"):
        pump(walk(max_models=3), img.registers)


def test_zero_length_model_is_refused() -> None:
    regs = {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 0}
    with pytest.raises(SunSpecError, match="model 1 at 40002 has length 0"):
        pump(walk(), regs)


def test_a_short_reply_is_refused() -> None:
    gen = walk()
    assert next(gen) == ReadRequest(40000, 2)
    assert gen.send([0x5375, 0x6E53]) == ReadRequest(40002, 2)
    with pytest.raises(SunSpecError, match="read of 2 registers at 40002 returned 1"):
        gen.send([1])


def test_unknown_models_are_kept_in_the_chain_but_not_bound() -> None:
    regs = dict(image([(1, {}), (713, {})]).registers)
    # splice an undefined vendor model (3 registers) between 1 and 713
    regs = {a: v for a, v in regs.items() if a < 40070}
    regs |= {40070: 64999, 40071: 3, 40072: 1, 40073: 2, 40074: 3}
    regs |= {40075: 713, 40076: 7} | {40077 + i: 0 for i in range(7)} | {40084: 0xFFFF, 40085: 0}
    chain, _ = pump(walk(), regs)
    assert [(m.id, m.address) for m in chain.models] == [(1, 40002), (64999, 40070), (713, 40075)]
    points = bind(chain)
    assert points["713.SoC"].address == 40079
    assert not any(n.startswith("64999") for n in points)


# ---------------------------------------------------------------------------------------------
# Binding


def test_bind_names_addresses_and_scale_factors() -> None:
    chain = image(CHARGER).chain
    points = bind(chain)
    w = points["701.W"]
    assert (w.address, w.table, w.type, w.count, w.access) == (
        40080,
        Table.HOLDING,
        DataType.INT16,
        1,
        Access.R,
    )
    assert (w.scale_factor, w.units, w.not_implemented, w.description) == (
        "701.W_SF",
        "W",
        0x8000,
        "Active Power",
    )
    assert points["701.W_SF"].address == 40070 + 116
    assert points["701.W_SF"].not_implemented == 0x8000
    wset = points["704.WSet"]
    assert (wset.address, wset.type, wset.count, wset.access, wset.scale_factor) == (
        40301,
        DataType.INT32,
        2,
        Access.RW,
        "704.WSet_SF",
    )
    assert wset.not_implemented == 0x8000_0000
    assert points["713.SoC"].address == 40348
    assert points["715.OpCtl"].address == 40361
    assert dict(points["715.OpCtl"].symbols) == {
        "STOP": 0,
        "START": 1,
        "ENTER_STANDBY": 2,
        "EXIT_STANDBY": 3,
    }
    assert points["715.OpCtl"].not_implemented == 0xFFFF
    assert points["1.Mn"].type is DataType.STRING
    assert (points["1.Mn"].address, points["1.Mn"].count) == (40004, 16)
    assert points["1.Mn"].not_implemented is None
    assert points["701.Hz"].not_implemented == 0xFFFF_FFFF
    assert points["701.ID"].address == 40070


def test_bitfield_symbols_are_masks_on_bound_points() -> None:
    p = bind(image(CHARGER).chain)["701.DERMode"]
    assert dict(p.symbols) == {"GRID_FOLLOWING": 1, "GRID_FORMING": 2, "PV_CLIPPED": 4}
    assert p.symbol(2) == "GRID_FORMING"
    assert codec.encode(p, "GRID_FORMING") == [0, 2]


def test_accumulators_and_constant_scale_factors() -> None:
    points = bind(image([(203, {}), (307, {})]).chain)
    assert (points["203.TotWhExp"].type, points["203.TotWhExp"].not_implemented) == (
        DataType.ACC32,
        0,
    )
    tmp = points["307.TmpAmb"]
    assert (tmp.scale, tmp.scale_factor) == (pytest.approx(0.1), None)


def test_a_second_instance_of_a_model_gets_a_numbered_key() -> None:
    chain = image([(701, {}), (713, {}), (701, {})]).chain
    assert list(chain.named()) == ["701", "713", "701#2"]
    points = bind(chain, ["701.W", "701#2.W"])
    assert points["701.W"].address == 40002 + 10
    assert points["701#2.W"].address == chain.models[2].address + 10
    assert points["701#2.W"].scale_factor == "701#2.W_SF"
    assert set(points) == {"701.W", "701.W_SF", "701#2.W", "701#2.W_SF"}


def test_wanted_restricts_to_those_names_and_their_scale_factors() -> None:
    points = bind(image(CHARGER).chain, ["701.W", "704.WSet", "715.OpCtl", "1.Mn"])
    assert list(points) == [
        "701.W",
        "701.W_SF",
        "704.WSet",
        "704.WSet_SF",
        "715.OpCtl",
        "1.Mn",
    ]


def test_unknown_names_say_what_the_device_has_and_suggest() -> None:
    chain = image(CHARGER).chain
    with pytest.raises(SunSpecError) as err:
        bind(chain, ["701.W", "704.Wset", "705.Ena"])
    msg = str(err.value)
    assert "no point '704.Wset'; did you mean 704.WSet" in msg
    assert "no point '705.Ena': the device has no model 705" in msg
    assert msg.endswith(
        "(the device has 1@40002, 701@40070, 702@40225, 704@40277, 713@40344, 715@40353)"
    )


def test_a_device_model_shorter_than_the_definition_drops_the_tail() -> None:
    # pysunspec2 accepts model 1 with L = 65 (no Pad).
    chain = Chain(40000, (ModelInstance(1, 40002, 65),))
    points = bind(chain)
    assert "1.DA" in points
    assert "1.Pad" not in points
    with pytest.raises(SunSpecError, match=r"past the end of the device's model \(L=65\)"):
        bind(chain, ["1.Pad"])
    # A point whose scale factor lies past L cannot be decoded, so it is not bound either.
    short = bind(Chain(40000, (ModelInstance(713, 40002, 5),)))
    assert "713.SoC" not in short
    assert "713.Sta" in short


def test_repeating_groups_need_counts_beyond_the_first_repetition() -> None:
    img = image([(705, {"NCrv": 3, "NPt": 4, "V_SF": -1})])
    first = bind(img.chain)
    assert "705.Crv[1].Pt[1].V" in first
    assert "705.Crv[1].Pt[2].V" not in first
    with pytest.raises(SunSpecError, match="pass the repeating-group counts"):
        bind(img.chain, ["705.Crv[3].Pt[4].V"])
    full = bind(img.chain, ["705.Crv[3].Pt[4].V"], counts={"705.NCrv": 3, "705.NPt": 4})
    # Crv = 10 registers + 4 points x 2 = 18; Crv[3].Pt[4] = 15 + 2 * 18 + 10 + 3 * 2
    assert full["705.Crv[3].Pt[4].V"].address == 40002 + 15 + 36 + 10 + 6
    assert full["705.Crv[3].Pt[4].V"].scale_factor == "705.V_SF"
    assert img.points == bind(img.chain, counts={"705.NCrv": 3, "705.NPt": 4})


def test_a_count_larger_than_the_model_stops_at_its_end() -> None:
    chain = Chain(40000, (ModelInstance(705, 40002, 13 + 18),))  # room for one curve of 4 points
    points = bind(chain, counts={"705.NCrv": 1000, "705.NPt": 4})
    assert "705.Crv[1].Pt[4].Var" in points
    assert not any(n.startswith("705.Crv[2]") for n in points)


def test_count_zero_groups_are_sized_from_the_model_length() -> None:
    one = model(160).layout({"module": 1})
    size = max(p.offset + p.size for p in one) - 2 - model(160).length
    chain = Chain(40000, (ModelInstance(160, 40002, model(160).length + 3 * size),))
    points = bind(chain)
    assert "160.module[3].DCW" in points
    assert "160.module[4].DCW" not in points


# ---------------------------------------------------------------------------------------------
# Images


def _decode(img_registers: Mapping[int, int], chain: Chain, name: str) -> codec.Value | None:
    points = bind(chain, [name])
    p = points[name]
    sf = None
    if p.scale_factor is not None:
        sfp = points[p.scale_factor]
        raw = codec.decode(sfp, [img_registers[a] for a in range(sfp.address, sfp.address + 1)])
        assert isinstance(raw, int)
        sf = raw
    return codec.decode(p, [img_registers[p.address + i] for i in range(p.count)], sf)


def test_image_values_survive_walk_bind_and_decode() -> None:
    img = image(CHARGER)
    chain, _ = pump(walk(), img.registers)
    assert bind(chain) == img.points
    got = {
        n: _decode(img.registers, chain, n)
        for n in ("1.Mn", "1.Vr", "701.W", "701.InvSt", "701.DERMode", "704.WSet", "713.SoC")
    }
    assert got == {
        "1.Mn": "Acme",
        "1.Vr": "1.2.3",
        "701.W": -7400,
        "701.InvSt": 3,
        "701.DERMode": 2,
        "704.WSet": -3200,
        "713.SoC": pytest.approx(65.4),
    }
    assert _decode(img.registers, chain, "713.WHRtg") == pytest.approx(60000)
    assert img.registers[img.points["713.WHRtg"].address] == 6000


def test_unspecified_points_read_not_implemented_and_sf_points_zero() -> None:
    img = image([(701, {}), (704, {}), (203, {})])
    regs = img.registers
    for name in ("701.W", "701.Hz", "701.InvSt", "701.DERMode", "701.TotWhInj", "704.WSet"):
        assert _decode(regs, img.chain, name) is None, name
    assert _decode(regs, img.chain, "701.W_SF") == 0
    assert _decode(regs, img.chain, "203.TotWhExp") is None  # accumulators: 0
    assert regs[img.points["704.WSet"].address] == 0x8000
    assert regs[img.points["701.DERMode"].address] == 0xFFFF
    assert regs[img.chain.models[-1].end] == 0xFFFF
    assert regs[img.chain.models[-1].end + 1] == 0
    assert len(regs) == 2 + sum(m.length + 2 for m in img.chain.models) + 2


def test_image_uses_constant_scale_factors() -> None:
    img = image([(307, {"TmpAmb": 21.5})])
    assert img.registers[img.points["307.TmpAmb"].address] == 215


def test_image_rejects_bad_values() -> None:
    with pytest.raises(SunSpecError, match="model 701 has no point 'W_Sf'; did you mean W_SF"):
        image([(701, {"W_Sf": 1})])
    with pytest.raises(SunSpecError, match="L is set by the layout"):
        image([(701, {"L": 1})])
    with pytest.raises(SunSpecError, match=r"701\.W: -40000"):
        image([(701, {"W": -40000})])
    with pytest.raises(SunSpecError, match=r"701\.W_SF: a scale factor is an integer exponent"):
        image([(701, {"W": 1, "W_SF": 0.5})])
    with pytest.raises(SunSpecError, match="unknown symbol 'RUN'"):
        image([(715, {"OpCtl": "RUN"})])
    with pytest.raises(SunSpecError, match="no SunSpec definition for model 64999"):
        image([(64999, {})])
    with pytest.raises(SunSpecError, match="runs past register 65535"):
        image([(701, {})], base=65500)
    with pytest.raises(SunSpecError, match="count point NCrv needs a count, not -1"):
        image([(705, {"NCrv": -1})])


@settings(max_examples=60, deadline=None)
@given(
    w_sf=st.integers(-2, 2),
    w=st.integers(-32767, 32767),
    soc_tenths=st.integers(0, 1000),
    wset=st.integers(-2_000_000, 2_000_000),
    mn=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=32),
    op=st.sampled_from(["STOP", "START", "ENTER_STANDBY", "EXIT_STANDBY"]),
    base=st.sampled_from([40000, 0, 50000]),
)
def test_round_trip_property(
    w_sf: int, w: int, soc_tenths: int, wset: int, mn: str, op: str, base: int
) -> None:
    watts = w * 10.0**w_sf
    img = image(
        [
            (1, {"Mn": mn}),
            (701, {"W": watts, "W_SF": w_sf}),
            (704, {"WSet": wset}),
            (713, {"SoC": soc_tenths / 10, "Pct_SF": -1}),
            (715, {"OpCtl": op}),
        ],
        base=base,
    )
    chain, _ = pump(walk(), img.registers)
    assert chain == img.chain
    assert _decode(img.registers, chain, "1.Mn") == mn
    assert _decode(img.registers, chain, "701.W") == pytest.approx(watts)
    assert _decode(img.registers, chain, "704.WSet") == wset
    assert _decode(img.registers, chain, "713.SoC") == pytest.approx(soc_tenths / 10)
    assert _decode(img.registers, chain, "715.OpCtl") == symbol_value(715, "OpCtl", op)
