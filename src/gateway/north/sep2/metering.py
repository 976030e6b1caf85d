"""The 2030.5 metering mirror a client POSTs: ``MirrorUsagePoint`` and the readings it carries.

A client that is the measuring device (the gateway reads the site meter and the charger) cannot
host a ``UsagePoint`` the server could GET, so it *mirrors* one on the server:
``POST /mup`` a ``MirrorUsagePoint`` (one ``MirrorMeterReading`` per measured quantity, each
with its ``ReadingType``), then ``POST /mup/{id}`` a ``MirrorMeterReading`` (or a
``MirrorMeterReadingList``) with a fresh ``Reading`` every ``postRate`` seconds. CSIP-AUS splits
the site (connection point: ``roleFlags`` isMirror + isPremisesAggregationPoint) from the DER
(isMirror + isDER + isSubmeter); :func:`site_mirror_usage_point` and
:func:`der_mirror_usage_point` build those two.

Same conventions as :mod:`gateway.north.sep2.resources`: frozen dataclasses, field names are
the XML element (or attribute) names, in schema order; values in the standard's units
(``Reading.value`` is Int48 in units of ``uom`` x 10^``powerOfTenMultiplier``, ``TimeType`` as
POSIX seconds). Enumerations are UInt8 codes (the named ones below are the XSD's); bitmaps
(``roleFlags``, ``qualityFlags``) are integers written as HexBinary16.
:mod:`gateway.north.sep2.resources_codec` reads and writes them and checks every range.
"""

# ruff: noqa: N815  - the standard's mixedCase element names are the point of this module

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from gateway.north.sep2.model import MULTIPLIER_MAX, MULTIPLIER_MIN, DateTimeInterval

_DateTimeInterval = DateTimeInterval

INT48_MIN: Final = -(2**47)  # the XSD's own bounds: -2^47..2^47 (sic, not 2^47-1)
INT48_MAX: Final = 2**47
UINT48_MAX: Final = 2**48 - 1


class RoleFlags(IntFlag):
    """``RoleFlagsType`` bits (HexBinary16) of a (Mirror)UsagePoint."""

    IS_MIRROR = 1 << 0  # SHALL be set if the server is not the measurement device
    IS_PREMISES_AGGREGATION_POINT = 1 << 1  # the point of delivery for a premises
    IS_PEV = 1 << 2
    IS_DER = 1 << 3
    IS_REVENUE_QUALITY = 1 << 4
    IS_DC = 1 << 5
    IS_SUBMETER = 1 << 6  # not a premises aggregation point


# CSIP-AUS: the site mirror is the connection point; the DER mirror a sub-meter of it.
SITE_ROLE: Final = RoleFlags.IS_MIRROR | RoleFlags.IS_PREMISES_AGGREGATION_POINT
DER_ROLE: Final = RoleFlags.IS_MIRROR | RoleFlags.IS_DER | RoleFlags.IS_SUBMETER


class ServiceKind(IntEnum):
    ELECTRICITY = 0
    GAS = 1
    WATER = 2


class Uom(IntEnum):
    """``UomType`` (UInt8, IEC 61968-9 codes): the ones a DER site reports."""

    NOT_APPLICABLE = 0
    A = 5
    V = 29
    HZ = 33
    W = 38
    VA = 61
    VAR = 63
    COS_THETA = 65  # displacement power factor
    VAH = 71
    WH = 72
    VARH = 73


class Kind(IntEnum):
    """``KindType`` (UInt8). Note 37 is *power*; "instantaneous" is an accumulationBehaviour."""

    NOT_APPLICABLE = 0
    CURRENCY = 3
    DEMAND = 8
    ENERGY = 12
    POWER = 37


class AccumulationBehaviour(IntEnum):
    NOT_APPLICABLE = 0
    CUMULATIVE = 3
    DELTA_DATA = 4
    INDICATING = 6
    SUMMATION = 9
    INSTANTANEOUS = 12


class FlowDirection(IntEnum):
    NOT_APPLICABLE = 0
    FORWARD = 1  # delivered to the customer (import)
    REVERSE = 19  # received from the customer (export)


class DataQualifier(IntEnum):
    NOT_APPLICABLE = 0
    AVERAGE = 2
    MAXIMUM = 8
    MINIMUM = 9
    NORMAL = 12
    STD_DEV_POPULATION = 29
    STD_DEV_SAMPLE = 30


class Commodity(IntEnum):
    NOT_APPLICABLE = 0
    ELECTRICITY_SECONDARY = 1  # a premises meter (low-voltage side of the transformer)
    ELECTRICITY_PRIMARY = 2


class PhaseCode(IntEnum):
    NOT_APPLICABLE = 0
    C = 32
    CN = 33
    CA = 40
    B = 64
    BN = 65
    BC = 66
    A = 128
    AN = 129
    AB = 132
    ABC = 224


@dataclass(frozen=True, slots=True)
class UnitValueType:
    """``{multiplier, unit, value}``: ``calorificValue`` / ``conversionFactor``."""

    multiplier: int  # PowerOfTenMultiplierType -9..9
    unit: int  # UomType
    value: int  # Int32


_UnitValueType = UnitValueType


@dataclass(frozen=True, slots=True)
class ReadingType:
    """``ReadingType``: what a reading measures (every element optional, in schema order)."""

    href: str | None = None
    accumulationBehaviour: int | None = None  # AccumulationBehaviour
    calorificValue: _UnitValueType | None = None
    commodity: int | None = None  # Commodity
    conversionFactor: _UnitValueType | None = None
    dataQualifier: int | None = None  # DataQualifier
    flowDirection: int | None = None  # FlowDirection
    intervalLength: int | None = None  # UInt32 seconds
    kind: int | None = None  # Kind
    maxNumberOfIntervals: int | None = None  # UInt8
    numberOfConsumptionBlocks: int | None = None  # UInt8
    numberOfTouTiers: int | None = None  # UInt8
    phase: int | None = None  # PhaseCode
    powerOfTenMultiplier: int | None = None  # -9..9
    subIntervalLength: int | None = None  # UInt32 seconds
    supplyLimit: int | None = None  # UInt48
    tieredConsumptionBlocks: bool | None = None
    uom: int | None = None  # Uom


_ReadingType = ReadingType


@dataclass(frozen=True, slots=True)
class Reading:
    """``Reading``: one value, in ``uom`` x 10^``powerOfTenMultiplier`` of its ReadingType."""

    href: str | None = None
    subscribable: int | None = None
    consumptionBlock: int | None = None  # UInt8
    qualityFlags: int | None = None  # HexBinary16 bitmap (bit 0 valid, 1 manually edited, ...)
    timePeriod: _DateTimeInterval | None = None
    touTier: int | None = None  # UInt8
    value: int | None = None  # Int48
    localID: int | None = None  # HexBinary16


_Reading = Reading


@dataclass(frozen=True, slots=True)
class MirrorReadingSet:
    """``MirrorReadingSet``: readings taken during ``timePeriod`` (required)."""

    mRID: str  # mRIDType (HexBinary128), upper case
    timePeriod: _DateTimeInterval
    href: str | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType
    Reading: tuple[_Reading, ...] = ()


_MirrorReadingSet = MirrorReadingSet


@dataclass(frozen=True, slots=True)
class MirrorMeterReading:
    """``MirrorMeterReading``: one measured quantity of a mirror (its type, its last value)."""

    mRID: str  # mRIDType (HexBinary128), upper case
    href: str | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType
    lastUpdateTime: int | None = None  # TimeType
    MirrorReadingSet: tuple[_MirrorReadingSet, ...] = ()
    nextUpdateTime: int | None = None  # TimeType
    Reading: _Reading | None = None
    ReadingType: _ReadingType | None = None


_MirrorMeterReading = MirrorMeterReading


@dataclass(frozen=True, slots=True)
class MirrorMeterReadingList:
    """``MirrorMeterReadingList``: what a client POSTs to ``/mup/{id}`` to update several."""

    all: int
    results: int
    MirrorMeterReading: tuple[_MirrorMeterReading, ...] = ()
    href: str | None = None


@dataclass(frozen=True, slots=True)
class MirrorUsagePoint:
    """``MirrorUsagePoint`` (UsagePointBase elements, then the mirror's)."""

    mRID: str  # mRIDType (HexBinary128), upper case
    roleFlags: int  # RoleFlagsType (HexBinary16), see RoleFlags
    serviceCategoryKind: int  # ServiceKind (UInt8)
    status: int  # UInt8: 0 off, 1 on
    deviceLFDI: str  # HexBinary160: the device being mirrored
    href: str | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType
    MirrorMeterReading: tuple[_MirrorMeterReading, ...] = ()
    postRate: int | None = None  # UInt32 seconds; the server MAY change it


_MirrorUsagePoint = MirrorUsagePoint


@dataclass(frozen=True, slots=True)
class MirrorUsagePointList:
    all: int
    results: int
    MirrorUsagePoint: tuple[_MirrorUsagePoint, ...] = ()
    href: str | None = None
    pollRate: int | None = None


MeteringResource = (
    ReadingType
    | Reading
    | MirrorReadingSet
    | MirrorMeterReading
    | MirrorMeterReadingList
    | MirrorUsagePoint
    | MirrorUsagePointList
)
METERING_TYPES: Final = (
    ReadingType,
    Reading,
    MirrorReadingSet,
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorUsagePoint,
    MirrorUsagePointList,
)

# ------------------------------------------------------------------------------ helpers


DECIMAL_PEN_MAX: Final = 99_999_999  # eight decimal digits


def derive_mrid(pen: int, *parts: str, decimal_pen: bool = False) -> str:
    """A stable mRID for ``parts`` (e.g. the LFDI and a quantity's name), owned by ``pen``.

    mRIDType: the IANA Private Enterprise Number in the least significant 32 bits, 96 bits
    unique per owner above it (sep2.md 5.1); here the first 96 bits of SHA-256 over the parts,
    so the same device and quantity keep the same mRID across restarts (a re-POST of the MUP
    then updates the server's mirror instead of creating another). ``decimal_pen``: CSIP-AUS
    (SA TS 5573 §4.2, as the reference runner checks it) writes the PEN's *decimal* digits in
    the last 8 characters (32473 -> ``00032473``), not the PEN as hex (``00007ED9``).
    """
    if not 0 <= pen <= 0xFFFFFFFF:
        raise ValueError(f"a PEN is a UInt32, not {pen}")
    if decimal_pen and pen > DECIMAL_PEN_MAX:
        raise ValueError(f"PEN {pen} has more than 8 decimal digits (CSIP-AUS mRIDs)")
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return (f"{digest}{pen:08d}" if decimal_pen else f"{digest}{pen:08x}").upper()


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured quantity of a mirror: what it is (its ReadingType) and its latest value.

    ``value`` is in ``uom`` x 10^``multiplier``; :meth:`of` picks them from a float.
    The sign convention is the caller's: with ``flowDirection`` FORWARD a positive power is
    delivered to the customer (import). ``description`` names the quantity on the server.
    """

    mRID: str
    description: str
    uom: Uom
    value: int
    multiplier: int = 0
    kind: Kind | None = Kind.POWER
    accumulationBehaviour: AccumulationBehaviour = AccumulationBehaviour.INSTANTANEOUS
    flowDirection: FlowDirection | None = None
    phase: PhaseCode | None = None
    dataQualifier: DataQualifier | None = None
    qualityFlags: int | None = None
    intervalLength: int | None = None  # seconds, for an average over an interval

    @classmethod
    def of(
        cls,
        mrid: str,
        description: str,
        uom: Uom,
        measured: float,
        *,
        decimals: int = 0,
        kind: Kind | None = Kind.POWER,
        flow_direction: FlowDirection | None = None,
        phase: PhaseCode | None = None,
        data_qualifier: DataQualifier | None = None,
        interval_length: int | None = None,
    ) -> Measurement:
        """``measured`` (in ``uom``) kept to ``decimals`` places: value x 10^-decimals."""
        if not math.isfinite(measured):
            raise ValueError(f"cannot report {measured!r} {uom.name}")
        if not -MULTIPLIER_MAX <= decimals <= -MULTIPLIER_MIN:
            raise ValueError(f"decimals must be {-MULTIPLIER_MAX}..{-MULTIPLIER_MIN}")
        value = round(measured * 10**decimals) if decimals >= 0 else round(measured / 10**-decimals)
        if not INT48_MIN <= value <= INT48_MAX:
            raise ValueError(f"{measured:g} {uom.name} does not fit Int48 at {decimals} decimals")
        return cls(
            mRID=mrid,
            description=description,
            uom=uom,
            value=value,
            multiplier=-decimals,
            kind=kind,
            flowDirection=flow_direction,
            phase=phase,
            dataQualifier=data_qualifier,
            intervalLength=interval_length,
        )

    def reading_type(self) -> ReadingType:
        return ReadingType(
            accumulationBehaviour=self.accumulationBehaviour,
            commodity=Commodity.ELECTRICITY_SECONDARY,
            dataQualifier=self.dataQualifier,
            flowDirection=self.flowDirection,
            intervalLength=self.intervalLength,
            kind=self.kind,
            phase=self.phase,
            powerOfTenMultiplier=self.multiplier,
            uom=self.uom,
        )

    def reading(self, at: int, duration: int = 0) -> Reading:
        return Reading(
            qualityFlags=self.qualityFlags,
            timePeriod=DateTimeInterval(duration=duration, start=at),
            value=self.value,
        )

    def mirror_meter_reading(
        self, at: int, *, duration: int = 0, with_type: bool = True, start: int | None = None
    ) -> MirrorMeterReading:
        """The quantity as a ``MirrorMeterReading``: its ``Reading`` at ``at`` (TimeType; over
        ``[start, start + duration)`` for an average) and, unless ``with_type`` is false (a
        later update), its ``ReadingType``."""
        return MirrorMeterReading(
            mRID=self.mRID,
            description=self.description,
            lastUpdateTime=at,
            Reading=self.reading(at if start is None else start, duration),
            ReadingType=self.reading_type() if with_type else None,
        )


def mirror_usage_point(
    mrid: str,
    lfdi: str,
    measurements: Iterable[Measurement],
    *,
    at: int,
    role_flags: int,
    description: str | None = None,
    post_rate: int | None = None,
) -> MirrorUsagePoint:
    """A ``MirrorUsagePoint`` (electricity, status on) with one ``MirrorMeterReading`` per
    measurement, each with its ``ReadingType`` and its reading at ``at`` (an average's over
    its interval, the ``intervalLength`` seconds up to ``at``)."""
    return MirrorUsagePoint(
        mRID=mrid,
        description=description,
        roleFlags=role_flags,
        serviceCategoryKind=ServiceKind.ELECTRICITY,
        status=1,
        deviceLFDI=lfdi.upper(),
        MirrorMeterReading=tuple(_mmr(m, at) for m in measurements),
        postRate=post_rate,
    )


def _mmr(m: Measurement, at: int) -> MirrorMeterReading:
    if m.dataQualifier is DataQualifier.AVERAGE and m.intervalLength:
        return m.mirror_meter_reading(at, start=at - m.intervalLength, duration=m.intervalLength)
    return m.mirror_meter_reading(at)


def _quantity(
    mrid: str,
    description: str,
    uom: Uom,
    value: float,
    interval: int | None,
    *,
    decimals: int = 0,
    flow_direction: FlowDirection | None = None,
    power: bool = True,
) -> Measurement:
    """One quantity of a mirror: with ``interval``, the CSIP-AUS average over that many seconds
    (dataQualifier 2, kind 37 for every one of them, V and Hz too, as the reference runner
    classifies them); without, an instantaneous value (kind 37 for power, none for V / Hz)."""
    if interval is None:
        return Measurement.of(
            mrid,
            description,
            uom,
            value,
            decimals=decimals,
            kind=Kind.POWER if power else None,
            flow_direction=flow_direction,
        )
    return Measurement.of(
        mrid,
        description,
        uom,
        value,
        decimals=decimals,
        kind=Kind.POWER,
        flow_direction=flow_direction,
        data_qualifier=DataQualifier.AVERAGE,
        interval_length=interval,
    )


def site_mirror_usage_point(
    lfdi: str,
    pen: int,
    *,
    at: int,
    site_w: float,
    volts: float | None = None,
    site_var: float | None = None,
    hz: float | None = None,
    post_rate: int | None = None,
    interval: int | None = None,
    decimal_pen: bool = False,
) -> MirrorUsagePoint:
    """The CSIP-AUS *site* mirror (the connection point): active power (W, positive = import,
    flowDirection FORWARD), and optionally voltage (V, 1 decimal), reactive power (var) and
    frequency (Hz, 2 decimals). mRIDs derive from the LFDI, so they are stable.
    ``interval``: the values are averages over the ``interval`` seconds up to ``at``;
    ``decimal_pen``: see :func:`derive_mrid`."""

    def mrid(*parts: str) -> str:
        return derive_mrid(pen, lfdi, "site", *parts, decimal_pen=decimal_pen)

    forward = FlowDirection.FORWARD
    ms = [
        _quantity(mrid("W"), "Site active power", Uom.W, site_w, interval, flow_direction=forward)
    ]
    if site_var is not None:
        ms.append(
            _quantity(
                mrid("VAr"),
                "Site reactive power",
                Uom.VAR,
                site_var,
                interval,
                flow_direction=forward,
            )
        )
    if volts is not None:
        ms.append(
            _quantity(mrid("V"), "Site voltage", Uom.V, volts, interval, decimals=1, power=False)
        )
    if hz is not None:
        ms.append(
            _quantity(mrid("Hz"), "Site frequency", Uom.HZ, hz, interval, decimals=2, power=False)
        )
    return mirror_usage_point(
        mrid(),
        lfdi,
        ms,
        at=at,
        role_flags=SITE_ROLE,
        description="Site",
        post_rate=post_rate,
    )


def der_mirror_usage_point(
    lfdi: str,
    pen: int,
    *,
    at: int,
    der_w: float,
    der_var: float | None = None,
    volts: float | None = None,
    stored_wh: float | None = None,
    post_rate: int | None = None,
    interval: int | None = None,
    decimal_pen: bool = False,
) -> MirrorUsagePoint:
    """The CSIP-AUS *DER* mirror (a sub-meter): the DER's active power (W, positive =
    generation/discharge, flowDirection REVERSE), optionally its reactive power and voltage
    (``interval``, ``decimal_pen``: as for :func:`site_mirror_usage_point`), and the stored
    energy, always an instantaneous reading."""

    def mrid(*parts: str) -> str:
        return derive_mrid(pen, lfdi, "der", *parts, decimal_pen=decimal_pen)

    reverse = FlowDirection.REVERSE
    ms = [_quantity(mrid("W"), "DER active power", Uom.W, der_w, interval, flow_direction=reverse)]
    if der_var is not None:
        ms.append(
            _quantity(
                mrid("VAr"),
                "DER reactive power",
                Uom.VAR,
                der_var,
                interval,
                flow_direction=reverse,
            )
        )
    if volts is not None:
        ms.append(
            _quantity(mrid("V"), "DER voltage", Uom.V, volts, interval, decimals=1, power=False)
        )
    if stored_wh is not None:
        # CSIP-AUS storage (STO-01): energy, Wh, an instantaneous reading (dataQualifier 0).
        ms.append(
            Measurement.of(
                mrid("Wh"),
                "DER stored energy",
                Uom.WH,
                stored_wh,
                kind=Kind.ENERGY,
                data_qualifier=DataQualifier.NOT_APPLICABLE,
            )
        )
    return mirror_usage_point(
        mrid(),
        lfdi,
        ms,
        at=at,
        role_flags=DER_ROLE,
        description="DER",
        post_rate=post_rate,
    )
