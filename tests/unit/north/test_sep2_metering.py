"""2030.5 metering mirror: round trips checked against the XSD, range errors, CSIP-AUS helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.north.sep2 import codec, resources_codec
from gateway.north.sep2.metering import (
    DER_ROLE,
    INT48_MAX,
    INT48_MIN,
    SITE_ROLE,
    AccumulationBehaviour,
    Commodity,
    DataQualifier,
    FlowDirection,
    Kind,
    Measurement,
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorReadingSet,
    MirrorUsagePoint,
    MirrorUsagePointList,
    PhaseCode,
    Reading,
    ReadingType,
    RoleFlags,
    ServiceKind,
    UnitValueType,
    Uom,
    der_mirror_usage_point,
    derive_mrid,
    mirror_usage_point,
    site_mirror_usage_point,
)
from gateway.north.sep2.model import DateTimeInterval, Sep2ValueError

if TYPE_CHECKING:
    from conftest import SepSchemas

NSDECL = 'xmlns="urn:ieee:std:2030.5:ns"'
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
PEN = 37244
AT = 1764072000
MRID = "0123456789ABCDEF0123456789ABCDEF"

FULL_TYPE = ReadingType(
    href="/mup/1/mr/1/rt",
    accumulationBehaviour=AccumulationBehaviour.INSTANTANEOUS,
    calorificValue=UnitValueType(multiplier=-3, unit=31, value=38000),
    commodity=Commodity.ELECTRICITY_SECONDARY,
    conversionFactor=UnitValueType(multiplier=0, unit=0, value=-1),
    dataQualifier=DataQualifier.AVERAGE,
    flowDirection=FlowDirection.REVERSE,
    intervalLength=300,
    kind=Kind.POWER,
    maxNumberOfIntervals=12,
    numberOfConsumptionBlocks=0,
    numberOfTouTiers=0,
    phase=PhaseCode.ABC,
    powerOfTenMultiplier=-9,
    subIntervalLength=60,
    supplyLimit=2**48 - 1,
    tieredConsumptionBlocks=False,
    uom=Uom.W,
)
FULL_READING = Reading(
    href="/mup/1/mr/1/r",
    subscribable=0,
    consumptionBlock=0,
    qualityFlags=0x0001,
    timePeriod=DateTimeInterval(duration=300, start=AT),
    touTier=0,
    value=INT48_MIN,
    localID=0x00FF,
)
READING_SET = MirrorReadingSet(
    mRID=MRID,
    description="five minutes",
    version=1,
    timePeriod=DateTimeInterval(duration=3600 * 24 * 400, start=AT),  # longer than a year is fine
    Reading=(Reading(value=1), Reading(value=INT48_MAX, qualityFlags=0)),
)
BAD_SET = MirrorReadingSet("zz", READING_SET.timePeriod)
MMR = MirrorMeterReading(
    mRID=MRID,
    href="/mup/1/mr/1",
    description="Site active power",
    version=2,
    lastUpdateTime=AT,
    MirrorReadingSet=(READING_SET, READING_SET),
    nextUpdateTime=AT + 300,
    Reading=FULL_READING,
    ReadingType=FULL_TYPE,
)
MUP = MirrorUsagePoint(
    mRID=MRID,
    href="/mup/1",
    description="Site",
    version=0,
    roleFlags=SITE_ROLE,
    serviceCategoryKind=ServiceKind.ELECTRICITY,
    status=1,
    deviceLFDI=LFDI,
    MirrorMeterReading=(MMR, MirrorMeterReading(mRID="00" * 16)),
    postRate=60,
)
SITE = site_mirror_usage_point(
    LFDI, PEN, at=AT, site_w=-2500.4, volts=241.27, site_var=310.6, hz=50.013, post_rate=60
)
DER = der_mirror_usage_point(
    LFDI, PEN, at=AT, der_w=7000, der_var=-150, volts=240.0, stored_wh=36_512.5
)

RESOURCES = [
    pytest.param(FULL_TYPE, id="ReadingType-full"),
    pytest.param(ReadingType(), id="ReadingType-empty"),
    pytest.param(FULL_READING, id="Reading-full"),
    pytest.param(Reading(), id="Reading-empty"),
    pytest.param(READING_SET, id="MirrorReadingSet"),
    pytest.param(MMR, id="MirrorMeterReading-full"),
    pytest.param(MirrorMeterReading(mRID=MRID), id="MirrorMeterReading-minimal"),
    pytest.param(
        MirrorMeterReadingList(all=2, results=2, MirrorMeterReading=(MMR, MMR), href="/mup/1"),
        id="MirrorMeterReadingList",
    ),
    pytest.param(MUP, id="MirrorUsagePoint-full"),
    pytest.param(MirrorUsagePoint(MRID, 0, 0, 0, LFDI), id="MirrorUsagePoint-minimal"),
    pytest.param(
        MirrorUsagePointList(all=3, results=2, MirrorUsagePoint=(MUP, SITE), pollRate=900),
        id="MirrorUsagePointList",
    ),
    pytest.param(MirrorUsagePointList(all=0, results=0), id="MirrorUsagePointList-empty"),
    pytest.param(SITE, id="site-helper"),
    pytest.param(DER, id="der-helper"),
]


@pytest.mark.parametrize("resource", RESOURCES)
def test_round_trip_valid_against_schema(resource: object, sep_schema: SepSchemas) -> None:
    body = codec.encode(resource)  # type: ignore[arg-type]
    sep_schema.assert_valid(body)
    assert codec.decode(body) == resource
    assert resources_codec.encode(resource) == body  # type: ignore[arg-type]
    assert resources_codec.decode_as(body, type(resource)) == resource  # type: ignore[arg-type]


def test_elements_are_written_in_schema_order() -> None:
    body = codec.encode(MUP).decode()
    order = "mRID description version roleFlags serviceCategoryKind status deviceLFDI"
    order += " MirrorMeterReading postRate"
    positions = [body.index(f"<{tag}>") for tag in order.split()]
    assert positions == sorted(positions)
    # postRate comes after every MirrorMeterReading, not before the nested items.
    assert body.rindex("</MirrorMeterReading>") < body.index("<postRate>")


def test_bitmaps_are_hexbinary16() -> None:
    body = codec.encode(MUP).decode()
    assert "<roleFlags>0003</roleFlags>" in body
    assert "<qualityFlags>0001</qualityFlags>" in body
    assert "<localID>00FF</localID>" in body


def test_reference_bodies_read_short_hex_and_skip_unknown_elements() -> None:
    body = (
        f"<MirrorUsagePoint {NSDECL}><mRID>{MRID}</mRID><roleFlags>49</roleFlags>"
        "<serviceCategoryKind>0</serviceCategoryKind><status>1</status>"
        f"<deviceLFDI>{LFDI.lower()}</deviceLFDI><futureThing>1</futureThing>"
        "</MirrorUsagePoint>"
    ).encode()
    mup = resources_codec.decode_as(body, MirrorUsagePoint)
    assert mup.roleFlags == DER_ROLE
    assert mup.deviceLFDI == LFDI


# ------------------------------------------------------------------------------ range errors


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (Reading(value=INT48_MAX + 1), "Reading/value"),
        (Reading(value=INT48_MIN - 1), "Reading/value"),
        (Reading(qualityFlags=0x10000), "Reading/qualityFlags"),
        (Reading(qualityFlags=-1), "Reading/qualityFlags"),
        (Reading(subscribable=4), "Reading/@subscribable"),
        (Reading(timePeriod=DateTimeInterval(-1, 0)), "Reading/timePeriod/duration"),
        (ReadingType(powerOfTenMultiplier=10), "ReadingType/powerOfTenMultiplier"),
        (ReadingType(uom=256), "ReadingType/uom"),
        (ReadingType(supplyLimit=2**48), "ReadingType/supplyLimit"),
        (ReadingType(intervalLength=-1), "ReadingType/intervalLength"),
        (
            ReadingType(calorificValue=UnitValueType(0, 0, 2**31)),
            "ReadingType/calorificValue/value",
        ),
        (MirrorUsagePoint(MRID, 0x10000, 0, 0, LFDI), "MirrorUsagePoint/roleFlags"),
        (MirrorUsagePoint(MRID, 0, 256, 0, LFDI), "MirrorUsagePoint/serviceCategoryKind"),
        (MirrorUsagePoint(MRID, 0, 0, 0, LFDI + "00"), "MirrorUsagePoint/deviceLFDI"),
        (MirrorUsagePoint(MRID + "00", 0, 0, 0, LFDI), "MirrorUsagePoint/mRID"),
        (MirrorUsagePoint(MRID, 0, 0, 0, LFDI, postRate=2**32), "MirrorUsagePoint/postRate"),
        (
            MirrorUsagePoint(MRID, 0, 0, 0, LFDI, description="x" * 33),
            "MirrorUsagePoint/description",
        ),
        (
            MirrorUsagePoint(
                MRID, 0, 0, 0, LFDI, MirrorMeterReading=(MirrorMeterReading(MRID, version=-1),)
            ),
            "MirrorUsagePoint/MirrorMeterReading[0]/version",
        ),
        (
            MirrorMeterReading(MRID, Reading=Reading(value=2**50)),
            "MirrorMeterReading/Reading/value",
        ),
        (
            MirrorMeterReading(MRID, MirrorReadingSet=(READING_SET, BAD_SET)),
            "MirrorMeterReading/MirrorReadingSet[1]/mRID",
        ),
        (MirrorMeterReadingList(all=1, results=2), "MirrorMeterReadingList/@results"),
    ],
)
def test_encoding_refuses_what_decoding_would(resource: object, element: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        codec.encode(resource)  # type: ignore[arg-type]
    assert e.value.element == element


@pytest.mark.parametrize(
    ("body", "element"),
    [
        (
            (
                f"<MirrorUsagePoint {NSDECL}><mRID>{MRID}</mRID><roleFlags>01</roleFlags>"
                "<serviceCategoryKind>0</serviceCategoryKind><status>1</status></MirrorUsagePoint>"
            ),
            "MirrorUsagePoint/deviceLFDI",
        ),
        (
            f"<MirrorReadingSet {NSDECL}><mRID>{MRID}</mRID></MirrorReadingSet>",
            "MirrorReadingSet/timePeriod",
        ),
        (
            (
                f"<MirrorMeterReading {NSDECL}><mRID>{MRID}</mRID><Reading/><Reading/>"
                "</MirrorMeterReading>"
            ),
            "MirrorMeterReading/Reading",
        ),
        (f"<Reading {NSDECL}><value>1.5</value></Reading>", "Reading/value"),
        (f"<Reading {NSDECL}><qualityFlags>123</qualityFlags></Reading>", "Reading/qualityFlags"),
        (
            (
                f"<ReadingType {NSDECL}><tieredConsumptionBlocks>yes</tieredConsumptionBlocks>"
                "</ReadingType>"
            ),
            "ReadingType/tieredConsumptionBlocks",
        ),
    ],
)
def test_bad_bodies_name_the_element(body: str, element: str) -> None:
    with pytest.raises(Sep2ValueError) as e:
        codec.decode(body.encode())
    assert e.value.element == element


# ------------------------------------------------------------------------------ helpers


def test_derive_mrid_is_stable_and_carries_the_pen() -> None:
    a = derive_mrid(PEN, LFDI, "site", "W")
    assert a == derive_mrid(PEN, LFDI, "site", "W")
    assert a != derive_mrid(PEN, LFDI, "der", "W")
    assert len(a) == 32
    assert a == a.upper()
    assert int(a[-8:], 16) == PEN  # the PEN in the least significant 32 bits
    with pytest.raises(ValueError, match="PEN"):
        derive_mrid(2**32, "x")


def test_measurement_scales_to_int48_with_the_multiplier() -> None:
    v = Measurement.of("00" * 16, "V", Uom.V, 241.27, decimals=1, kind=None)
    assert (v.value, v.multiplier) == (2413, -1)
    big = Measurement.of("00" * 16, "W", Uom.W, 123_456_789, decimals=-3)
    assert (big.value, big.multiplier) == (123_457, 3)
    with pytest.raises(ValueError, match="Int48"):
        Measurement.of("00" * 16, "W", Uom.W, 1e15)
    with pytest.raises(ValueError, match="report"):
        Measurement.of("00" * 16, "W", Uom.W, float("nan"))
    with pytest.raises(ValueError, match="decimals"):
        Measurement.of("00" * 16, "W", Uom.W, 1, decimals=10)


def test_site_mirror_is_csip_aus_shaped() -> None:
    assert SITE.roleFlags == RoleFlags.IS_MIRROR | RoleFlags.IS_PREMISES_AGGREGATION_POINT
    assert SITE.deviceLFDI == LFDI
    assert SITE.postRate == 60
    by_uom = {m.ReadingType.uom: m for m in SITE.MirrorMeterReading if m.ReadingType}
    assert set(by_uom) == {Uom.W, Uom.VAR, Uom.V, Uom.HZ}
    w = by_uom[Uom.W]
    assert w.ReadingType is not None
    assert w.Reading is not None
    assert w.ReadingType.kind == Kind.POWER == 37
    assert w.ReadingType.accumulationBehaviour == AccumulationBehaviour.INSTANTANEOUS == 12
    assert w.ReadingType.flowDirection == FlowDirection.FORWARD == 1
    assert (w.Reading.value, w.ReadingType.powerOfTenMultiplier) == (-2500, 0)
    assert w.Reading.timePeriod == DateTimeInterval(duration=0, start=AT)
    hz = by_uom[Uom.HZ]
    assert hz.Reading is not None
    assert hz.ReadingType is not None
    assert (hz.Reading.value, hz.ReadingType.powerOfTenMultiplier) == (5001, -2)
    assert len({m.mRID for m in SITE.MirrorMeterReading} | {SITE.mRID}) == 5


def test_der_mirror_is_a_der_submeter() -> None:
    assert DER.roleFlags == DER_ROLE == 0x49
    assert DER.mRID != SITE.mRID
    w = DER.MirrorMeterReading[0]
    assert w.ReadingType is not None
    assert w.ReadingType.flowDirection == FlowDirection.REVERSE == 19
    assert w.ReadingType.uom == Uom.W == 38
    assert [m.ReadingType.uom for m in DER.MirrorMeterReading if m.ReadingType] == [38, 63, 29, 72]


def test_der_stored_energy_is_what_csip_aus_storage_counts() -> None:
    """STO-01: uom Wh (72), kind energy (12), dataQualifier 0 ("instantaneous"), a DER mirror."""
    wh = DER.MirrorMeterReading[-1]
    assert wh.ReadingType is not None
    assert (wh.ReadingType.uom, wh.ReadingType.kind, wh.ReadingType.dataQualifier) == (72, 12, 0)
    assert wh.Reading is not None
    assert wh.Reading.value == 36_512  # whole Wh (round half to even)
    assert wh.ReadingType.powerOfTenMultiplier == 0


def test_a_later_update_carries_readings_only(sep_schema: SepSchemas) -> None:
    m = Measurement.of(derive_mrid(PEN, LFDI, "site", "W"), "Site active power", Uom.W, 1200)
    update = MirrorMeterReadingList(
        all=1, results=1, MirrorMeterReading=(m.mirror_meter_reading(AT + 60, with_type=False),)
    )
    body = codec.encode(update)
    sep_schema.assert_valid(body)
    assert b"ReadingType" not in body
    assert codec.decode(body) == update


def test_mirror_usage_point_builder() -> None:
    m = Measurement.of("AB" * 16, "x", Uom.A, 3.25, decimals=2, kind=None, phase=PhaseCode.AN)
    mup = mirror_usage_point("CD" * 16, LFDI.lower(), [m], at=AT, role_flags=RoleFlags.IS_MIRROR)
    assert mup.deviceLFDI == LFDI
    assert mup.status == 1
    assert mup.serviceCategoryKind == ServiceKind.ELECTRICITY
    rt = mup.MirrorMeterReading[0].ReadingType
    assert rt is not None
    assert (rt.phase, rt.kind, rt.commodity) == (
        PhaseCode.AN,
        None,
        Commodity.ELECTRICITY_SECONDARY,
    )


# ------------------------------------------------------------------------------ CSIP-AUS averages


def test_csip_aus_mrids_end_in_the_pens_decimal_digits() -> None:
    """SA TS 5573 §4.2 as the reference runner reads it: 32473 -> ...00032473, not ...00007ED9."""
    a = derive_mrid(32473, LFDI, "site", "W", decimal_pen=True)
    assert a.endswith("00032473")
    assert a[:24] == derive_mrid(32473, LFDI, "site", "W")[:24]  # the same 96 bits above it
    assert derive_mrid(32473, LFDI, "site", "W").endswith("00007ED9")  # US CSIP: as before
    with pytest.raises(ValueError, match="8 decimal digits"):
        derive_mrid(100_000_000, "x", decimal_pen=True)


def test_averaged_mirrors_say_average_power_over_their_interval(sep_schema: SepSchemas) -> None:
    site = site_mirror_usage_point(
        LFDI,
        PEN,
        at=AT,
        site_w=1200,
        volts=241.3,
        site_var=-80,
        hz=50.01,
        interval=60,
        decimal_pen=True,
    )
    der = der_mirror_usage_point(
        LFDI,
        PEN,
        at=AT,
        der_w=-3000,
        der_var=10,
        volts=241.3,
        stored_wh=20_000,
        interval=60,
        decimal_pen=True,
    )
    for mup in (site, der):
        sep_schema.assert_valid(codec.encode(mup))
        assert mup.mRID.endswith(f"{PEN:08d}")
        for mmr in mup.MirrorMeterReading:
            assert mmr.mRID.endswith(f"{PEN:08d}")
            rt, reading = mmr.ReadingType, mmr.Reading
            assert rt is not None
            assert reading is not None
            assert reading.timePeriod is not None
            if rt.uom == Uom.WH:  # stored energy stays an instantaneous reading
                assert (rt.kind, rt.dataQualifier, reading.timePeriod.duration) == (12, 0, 0)
                continue
            assert (rt.kind, rt.dataQualifier, rt.intervalLength) == (37, 2, 60)
            assert (reading.timePeriod.start, reading.timePeriod.duration) == (AT - 60, 60)
    assert {m.ReadingType.uom for m in site.MirrorMeterReading if m.ReadingType} == {38, 63, 29, 33}


def test_last_interval_is_the_last_whole_aligned_one() -> None:
    from gateway.north.sep2.averages import last_interval

    assert last_interval(1_800_000_059.9, 60) == (1_799_999_940, 1_800_000_000)
    assert last_interval(1_800_000_000.0, 60) == (1_799_999_940, 1_800_000_000)
    assert last_interval(1_800_000_001.0, 300) == (1_799_999_700, 1_800_000_000)
    with pytest.raises(ValueError, match="1 s"):
        last_interval(0, 0)


def test_averager_means_the_samples_of_an_interval_and_forgets_old_ones() -> None:
    from gateway.north.sep2.averages import Averager

    a = Averager(keep_s=120)
    for t in range(60):
        a.add(1000 + t, {"w": float(t), "v": None})
    a.add(1060, {"w": 1000.0})
    assert a.mean("w", 1000, 1060) == pytest.approx(29.5)  # 0..59, not the 1000 at 1060
    assert a.mean("v", 1000, 1060) is None  # never measured
    assert a.mean("w", 2000, 2060) is None
    a.add(1200, {"w": 1.0})  # keeps 120 s: everything before 1080 is gone
    assert a.mean("w", 1000, 1100) is None
    a.add(900, {"w": 5.0})  # the server clock stepped back: start again
    assert a.mean("w", 1100, 1300) is None
    assert a.mean("w", 900, 901) == 5.0
