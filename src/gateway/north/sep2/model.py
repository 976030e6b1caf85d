"""2030.5 / CSIP-AUS resources the gateway reads and writes, with the standard's element names.

Frozen dataclasses, one per complex type; the field names are the XML element (or attribute)
names, so that a reader can hold this file next to the schema. Values are kept in the
standard's units (hundredths of a percent, hundredths of a second, ``ActivePower`` with its
power-of-ten multiplier, ``TimeType`` as POSIX seconds); :mod:`gateway.north.sep2.mapping`
converts them to the core's plain-English units. :mod:`gateway.north.sep2.codec` reads and
writes them and checks every range named here.
"""

# ruff: noqa: N815  - the standard's mixedCase element names are the point of this module

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from gateway.north.sep2.xml import Sep2ParseError

INT16_MIN: Final = -32768
INT16_MAX: Final = 32767
UINT16_MAX: Final = 65535
UINT32_MAX: Final = 2**32 - 1
MULTIPLIER_MIN: Final = -9  # PowerOfTenMultiplierType
MULTIPLIER_MAX: Final = 9
PERCENT_MAX: Final = 10000  # PerCent: hundredths of a percent
ONE_HOUR_S: Final = 3600  # OneHourRangeType
ONE_YEAR_S: Final = 366 * 24 * 3600  # a longer DERControl is a unit error, not a schedule


class Sep2ValueError(Sep2ParseError):
    """A well-formed 2030.5 body with a value outside what its element allows.

    A :class:`Sep2ParseError` (hence a ``ValueError``), so one ``except`` catches every bad body.

    ``element`` is the path of the offending element (``DERControl/DERControlBase/...``),
    ``value`` the text found, and ``mrid`` the event's mRID when it was readable (so that the
    caller can still answer 253 "invalid event" to the right subject).
    """

    def __init__(self, element: str, value: object, reason: str, mrid: str | None = None) -> None:
        self.element = element
        self.value = value
        self.reason = reason
        self.mrid = mrid
        where = f" (event {mrid})" if mrid else ""
        super().__init__(f"{element} = {value!r}: {reason}{where}")


@dataclass(frozen=True, slots=True)
class ActivePower:
    """``ActivePower``: watts = value x 10^multiplier; value is Int16, multiplier -9..9."""

    value: int
    multiplier: int = 0

    @property
    def watts(self) -> float:
        scale: int = 10 ** abs(self.multiplier)
        if self.multiplier >= 0:
            return float(self.value * scale)
        return self.value / scale

    @classmethod
    def from_watts(cls, watts: float, *, min_multiplier: int = 0) -> ActivePower:
        """The encoding with the smallest multiplier >= ``min_multiplier`` whose value fits Int16.

        The default keeps whole watts (multiplier 0) up to 32767 W and gives up one digit per
        decade above it; the error is at most half a unit of the chosen multiplier. Pass a
        negative ``min_multiplier`` to keep fractions of a watt.
        """
        if not math.isfinite(watts):
            raise ValueError(f"cannot encode {watts!r} W as ActivePower")
        if not MULTIPLIER_MIN <= min_multiplier <= MULTIPLIER_MAX:
            raise ValueError(f"min_multiplier must be {MULTIPLIER_MIN}..{MULTIPLIER_MAX}")
        for m in range(min_multiplier, MULTIPLIER_MAX + 1):
            scale: int = 10 ** abs(m)
            scaled = watts * scale if m < 0 else watts / scale
            value = round(scaled)
            if INT16_MIN <= value <= INT16_MAX:
                return cls(value=value, multiplier=m)
        raise ValueError(f"{watts:g} W does not fit ActivePower (|W| <= 32767e9)")


@dataclass(frozen=True, slots=True)
class DERControlBase:
    """The modes the gateway understands, in schema order; CSIP-AUS modes come last.

    ``opModIslandPermit`` and ``opModGridConnectPermit`` are 2030.5-2023 elements (not in the
    2018 schema that CSIP-AUS 1.2 extends). ``opModStorageTargetW`` is a CSIP-AUS v1.3-beta
    element. ``unsupported`` lists the local names of modes that were present but that this
    model does not carry (curves, var and PF modes, ...), so the mapper can report them.
    """

    opModConnect: bool | None = None
    opModEnergize: bool | None = None
    opModFixedW: int | None = None  # SignedPerCent: hundredths of a percent, -10000..10000
    opModGridConnectPermit: bool | None = None  # 2023
    opModIslandPermit: bool | None = None  # 2023
    opModMaxLimW: int | None = None  # PerCent: hundredths of a percent of setMaxW, 0..10000
    opModTargetW: ActivePower | None = None
    rampTms: int | None = None  # UInt16, hundredths of a second
    # CSIP-AUS (https://csipaus.org/ns), after every 2030.5 element, in the extension's order.
    opModImpLimW: ActivePower | None = None
    opModExpLimW: ActivePower | None = None
    opModGenLimW: ActivePower | None = None
    opModLoadLimW: ActivePower | None = None
    opModStorageTargetW: ActivePower | None = None
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventStatus:
    currentStatus: int  # 0 scheduled, 1 active, 2 cancelled, 3 cancelled w/ random., 4 superseded
    dateTime: int
    potentiallySuperseded: bool = False
    potentiallySupersededTime: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DateTimeInterval:
    duration: int  # UInt32 seconds
    start: int  # TimeType: POSIX seconds


# Aliases: a field named like its type would shadow the type inside the class body for mypy.
_EventStatus = EventStatus
_DateTimeInterval = DateTimeInterval
_DERControlBase = DERControlBase


@dataclass(frozen=True, slots=True)
class DERControl:
    mRID: str
    creationTime: int
    EventStatus: _EventStatus
    interval: _DateTimeInterval
    DERControlBase: _DERControlBase
    description: str | None = None
    version: int | None = None
    randomizeDuration: int | None = None
    randomizeStart: int | None = None
    deviceCategory: str | None = None  # HexBinary32, kept as the hex text
    href: str | None = None
    replyTo: str | None = None
    responseRequired: int | None = None  # HexBinary8, as an int


_DERControl = DERControl


@dataclass(frozen=True, slots=True)
class DERControlList:
    all: int
    results: int
    DERControl: tuple[_DERControl, ...] = ()
    href: str | None = None
    subscribable: int | None = None  # SubscribableType 0..3; absent means 0 (the XSD default)


@dataclass(frozen=True, slots=True)
class DefaultDERControl:
    mRID: str
    DERControlBase: _DERControlBase = field(default_factory=_DERControlBase)
    description: str | None = None
    version: int | None = None
    setESDelay: int | None = None  # UInt32, hundredths of a second
    setESRampTms: int | None = None  # UInt32, hundredths of a second
    setESRandomDelay: int | None = None  # UInt32, hundredths of a second
    setGradW: int | None = None  # UInt16, hundredths of %setMaxW per second
    setSoftGradW: int | None = None  # UInt16
    href: str | None = None
    subscribable: int | None = None  # SubscribableType 0..3; absent means 0 (the XSD default)


@dataclass(frozen=True, slots=True)
class Response:
    endDeviceLFDI: str  # HexBinary160
    subject: str  # mRID of the event answered
    status: int | None = None  # UInt8 response code
    createdDateTime: int | None = None
    href: str | None = None


Resource = DERControl | DERControlList | DefaultDERControl | Response
