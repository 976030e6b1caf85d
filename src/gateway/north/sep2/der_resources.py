"""The 2030.5 DER function set a client reports: ``DER`` and the four resources it links to.

``DER`` (in an ``EndDevice``'s ``DERList``) -> ``DERCapability`` (what the device can do),
``DERSettings`` (what it is set to), ``DERStatus`` (what it is doing) and ``DERAvailability``
(what it could still do). Same conventions as :mod:`gateway.north.sep2.resources`: frozen
dataclasses, field names are the XML element (or attribute) names, values in the standard's
units (``ActivePower``, ``ReactivePower``, ``ApparentPower`` with their multiplier,
``PowerFactor`` as displacement x 10^multiplier, ``PerCent`` in hundredths of a percent,
``TimeType`` as POSIX seconds). Bitmaps are held as integers (:class:`ConnectStatus`,
:class:`DOEModes` for the ones with named bits) and written as the schema's hex.
:mod:`gateway.north.sep2.resources_codec` reads and writes them and checks every range named
here.

CSIP-AUS (``https://csipaus.org/ns``) extends ``DERCapability`` with ``doeModesSupported``
(**required** by CSIP-AUS, absent from US CSIP, so optional in the model; after every 2030.5
element) and ``DERSettings`` with ``doeModesEnabled`` (optional, likewise last); both are
``DOEControlType`` = HexBinary8. The 1.3 namespaces (``.../v1.3`` and the storage beta
``.../v1.3-beta/storage``) add, after those, ``vppModesSupported`` (DERCapability) and
``vppModesEnabled`` then ``setMinWh`` (DERSettings): ``VPPControlType`` = HexBinary8 and a
``WattHour``. CSIP-AUS 1.2's schema has none of the three, so they are optional here and the
client writes them only to a server that speaks 1.3.
"""

# ruff: noqa: N815  - the standard's mixedCase element names are the point of this module

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Final, Self

from gateway.north.sep2.model import INT16_MAX, INT16_MIN, MULTIPLIER_MAX, UINT16_MAX, ActivePower
from gateway.north.sep2.resources import Link, ListLink

_Link = Link
_ListLink = ListLink
_ActivePower = ActivePower


class ConnectStatus(IntFlag):
    """``ConnectStatusType`` bits (HexBinary8): ``genConnectStatus`` / ``storConnectStatus``."""

    CONNECTED = 1 << 0
    AVAILABLE = 1 << 1
    OPERATING = 1 << 2
    TEST = 1 << 3
    FAULT = 1 << 4


class DOEModes(IntFlag):
    """CSIP-AUS ``DOEControlType`` bits (HexBinary8): ``doeModesSupported`` / ``doeModesEnabled``.

    The csipaus-ext.xsd annotation swaps the words "Imported"/"Exported" on bits 0 and 1; the
    element names (and the CSIP-AUS guide) are authoritative: bit 0 is ``opModExpLimW``.
    """

    EXP_LIM_W = 1 << 0  # csipaus:opModExpLimW
    IMP_LIM_W = 1 << 1  # csipaus:opModImpLimW
    GEN_LIM_W = 1 << 2  # csipaus:opModGenLimW
    LOAD_LIM_W = 1 << 3  # csipaus:opModLoadLimW


class VPPModes(IntFlag):
    """CSIP-AUS 1.3 ``VPPControlType`` bits (HexBinary8): ``vppModesSupported`` /
    ``vppModesEnabled``. Bit 0 is the only one defined; the others are reserved."""

    STORAGE_TARGET_W = 1 << 0  # csipaus:opModStorageTargetW


class OperationalMode(IntEnum):
    """``OperationalModeStatusType`` values (UInt8); CSIP-AUS adds DRED DRM 0..8 as 100..108."""

    NOT_APPLICABLE = 0
    OFF = 1
    OPERATIONAL = 2
    TEST = 3


class DERTypeCode(IntEnum):
    """A few ``DERType`` (UInt8) values the gateway reports."""

    NOT_APPLICABLE = 0
    ELECTRIC_VEHICLE = 81
    EVSE = 82
    COMBINED_PV_AND_STORAGE = 83


class DeviceCategory(IntFlag):
    """A few ``DeviceCategoryType`` (HexBinary32) bits of ``EndDevice.deviceCategory`` (2030.5:
    bits 0-25 are defined, the rest reserved). A server may aim a control at categories
    (``DERControl.deviceCategory``); CSIP-AUS DRA-01 wants one set."""

    ENERGY_MANAGEMENT_SYSTEM = 1 << 14
    ELECTRIC_VEHICLE = 1 << 16
    EVSE = 1 << 17
    VIRTUAL_OR_MIXED_DER = 1 << 18
    PHOTOVOLTAIC_SYSTEM = 1 << 21
    COMBINED_PV_AND_STORAGE = 1 << 23
    OTHER_STORAGE_SYSTEM = 1 << 25


#: The highest DeviceCategoryType value with only defined bits (0-25) set.
DEVICE_CATEGORY_MAX: Final = (1 << 26) - 1


# DERControlType (HexBinary32) bits the gateway may advertise in modesSupported/modesEnabled.
MODE_CHARGE: Final = 1 << 0
MODE_DISCHARGE: Final = 1 << 1
MODE_CONNECT: Final = 1 << 2  # opModConnect
MODE_ENERGIZE: Final = 1 << 3  # opModEnergize
MODE_FIXED_W: Final = 1 << 7  # opModFixedW
MODE_MAX_LIM_W: Final = 1 << 20  # opModMaxLimW
MODE_TARGET_W: Final = 1 << 22  # opModTargetW


class _PowerOfTen:
    """A quantity as value x 10^multiplier, the value within the subclass's ``_RANGE``."""

    __slots__ = ()
    _RANGE: ClassVar[tuple[int, int]]
    value: int
    multiplier: int

    @classmethod
    def from_amount(cls, amount: float) -> Self:
        """Whole units while the value fits, one digit fewer per decade above (as
        ``ActivePower.from_watts``)."""
        if not math.isfinite(amount):
            raise ValueError(f"cannot encode {amount!r} as {cls.__name__}")
        low, high = cls._RANGE
        for m in range(MULTIPLIER_MAX + 1):
            value = round(amount / 10**m)
            if low <= value <= high:
                return cls(value=value, multiplier=m)  # type: ignore[call-arg]
        raise ValueError(f"{amount:g} does not fit {cls.__name__}")

    @property
    def amount(self) -> float:
        return float(self.value * 10.0**self.multiplier)


@dataclass(frozen=True, slots=True)
class ReactivePower(_PowerOfTen):
    """``ReactivePower``: var = value x 10^multiplier; value is Int16, multiplier -9..9."""

    _RANGE: ClassVar = (INT16_MIN, INT16_MAX)
    value: int
    multiplier: int = 0


@dataclass(frozen=True, slots=True)
class ApparentPower(_PowerOfTen):
    """``ApparentPower``: VA = value x 10^multiplier; value is **UInt16**, multiplier -9..9."""

    _RANGE: ClassVar = (0, UINT16_MAX)
    value: int
    multiplier: int = 0


@dataclass(frozen=True, slots=True)
class PowerFactor:
    """``PowerFactor``: cos(theta) = displacement x 10^multiplier; displacement is UInt16,
    multiplier -9..9 (0.95 is 950 x 10^-3). A DER's minimum PF is in (0, 1]."""

    displacement: int
    multiplier: int

    @classmethod
    def from_ratio(cls, pf: float) -> PowerFactor:
        """Thousandths: 0.95 -> 950 x 10^-3, unity -> 1000 x 10^-3."""
        if not (math.isfinite(pf) and 0.0 < pf <= 1.0):
            raise ValueError(f"a power factor is in (0, 1], got {pf!r}")
        return cls(displacement=round(pf * 1000), multiplier=-3)

    @property
    def ratio(self) -> float:
        return float(self.displacement * 10.0**self.multiplier)


_ReactivePower = ReactivePower
_ApparentPower = ApparentPower
_PowerFactor = PowerFactor


@dataclass(frozen=True, slots=True)
class ConnectStatusType:
    """``{dateTime, value}``: the :class:`ConnectStatus` bits and when they last changed."""

    dateTime: int  # TimeType
    value: ConnectStatus  # HexBinary8


@dataclass(frozen=True, slots=True)
class OperationalModeStatusType:
    dateTime: int  # TimeType
    value: int  # UInt8, see OperationalMode


@dataclass(frozen=True, slots=True)
class InverterStatusType:
    dateTime: int  # TimeType
    value: int  # UInt8: 0 n/a, 1 off, 2 sleeping, 3 starting, 4 MPPT, 5 throttled, ...


@dataclass(frozen=True, slots=True)
class StateOfChargeStatusType:
    dateTime: int  # TimeType
    value: int  # PerCent: hundredths of a percent, 0..10000


_ConnectStatusType = ConnectStatusType
_OperationalModeStatusType = OperationalModeStatusType
_InverterStatusType = InverterStatusType
_StateOfChargeStatusType = StateOfChargeStatusType


@dataclass(frozen=True, slots=True)
class DER:
    """``DER``: one DER of an EndDevice; links in schema order."""

    href: str | None = None
    subscribable: int | None = None
    AssociatedDERProgramListLink: _ListLink | None = None
    AssociatedUsagePointLink: _Link | None = None
    CurrentDERProgramLink: _Link | None = None
    DERAvailabilityLink: _Link | None = None
    DERCapabilityLink: _Link | None = None
    DERSettingsLink: _Link | None = None
    DERStatusLink: _Link | None = None


_DER = DER


@dataclass(frozen=True, slots=True)
class DERList:
    all: int
    results: int
    DER: tuple[_DER, ...] = ()
    href: str | None = None
    subscribable: int | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class DERCapability:
    """``DERCapability`` (a ``Resource``: no ``subscribable``), with the CSIP-AUS DOE bits."""

    modesSupported: int  # DERControlType (HexBinary32)
    rtgMaxW: _ActivePower
    type: int  # DERType (UInt8), see DERTypeCode
    # csipaus, DOEControlType (HexBinary8): required by CSIP-AUS, absent in US CSIP (plain
    # sep.xsd has no such element), so optional here; the client writes it for CSIP-AUS.
    doeModesSupported: DOEModes | None = None
    href: str | None = None
    rtgMaxChargeRateW: _ActivePower | None = None
    rtgMaxDischargeRateW: _ActivePower | None = None
    rtgMaxVA: _ApparentPower | None = None
    rtgMaxVar: _ReactivePower | None = None  # var delivered (injected), >= 0
    rtgMaxVarNeg: _ReactivePower | None = None  # var received: 2030.5 writes it negative (<= 0)
    rtgMaxWh: _ActivePower | None = None  # WattHour: the same value x 10^multiplier shape
    rtgMinPFOverExcited: _PowerFactor | None = None
    rtgMinPFUnderExcited: _PowerFactor | None = None
    vppModesSupported: VPPModes | None = None  # csipaus 1.3, VPPControlType (HexBinary8)


@dataclass(frozen=True, slots=True)
class DERSettings:
    setGradW: int  # UInt16: hundredths of a percent of setMaxW per second, 0 = no limit
    setMaxW: _ActivePower
    updatedTime: int  # TimeType
    href: str | None = None
    subscribable: int | None = None
    modesEnabled: int | None = None  # DERControlType (HexBinary32)
    setMaxChargeRateW: _ActivePower | None = None
    setMaxDischargeRateW: _ActivePower | None = None
    setMaxVA: _ApparentPower | None = None  # <= rtgMaxVA
    setMaxVar: _ReactivePower | None = None  # <= rtgMaxVar
    setMaxVarNeg: _ReactivePower | None = None  # negative, >= rtgMaxVarNeg
    setMaxWh: _ActivePower | None = None  # WattHour
    setMinPFOverExcited: _PowerFactor | None = None  # >= rtgMinPFOverExcited
    setMinPFUnderExcited: _PowerFactor | None = None  # >= rtgMinPFUnderExcited
    doeModesEnabled: DOEModes | None = None  # csipaus, DOEControlType (HexBinary8)
    vppModesEnabled: VPPModes | None = None  # csipaus 1.3, VPPControlType (HexBinary8)
    setMinWh: _ActivePower | None = None  # csipaus 1.3, WattHour: the stored energy kept


@dataclass(frozen=True, slots=True)
class DERStatus:
    readingTime: int  # TimeType
    href: str | None = None
    subscribable: int | None = None
    alarmStatus: int | None = None  # HexBinary32: telemetry.DerAlarm bits
    genConnectStatus: _ConnectStatusType | None = None
    inverterStatus: _InverterStatusType | None = None
    operationalModeStatus: _OperationalModeStatusType | None = None
    stateOfChargeStatus: _StateOfChargeStatusType | None = None
    storConnectStatus: _ConnectStatusType | None = None


@dataclass(frozen=True, slots=True)
class DERAvailability:
    readingTime: int  # TimeType
    href: str | None = None
    subscribable: int | None = None
    availabilityDuration: int | None = None  # UInt32 seconds at statWAvail
    maxChargeDuration: int | None = None  # UInt32 seconds at full charge rate
    reserveChargePercent: int | None = None  # PerCent
    reservePercent: int | None = None  # PerCent
    statVarAvail: _ReactivePower | None = None
    statWAvail: _ActivePower | None = None


DERResource = DER | DERList | DERCapability | DERSettings | DERStatus | DERAvailability
DER_RESOURCE_TYPES: Final = (DER, DERList, DERCapability, DERSettings, DERStatus, DERAvailability)
