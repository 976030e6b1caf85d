"""The 2030.5 resources a client walks to find its controls, with the standard's element names.

``DeviceCapability`` -> ``Time``, ``EndDeviceList`` -> ``EndDevice`` -> ``Registration`` and
``FunctionSetAssignmentsList`` -> ``DERProgramList`` -> the DERControl family of
:mod:`gateway.north.sep2.model`. Same conventions as that module: frozen dataclasses, field names
are the XML element (or attribute) names, values in the standard's units (``TimeType`` as POSIX
seconds, offsets in seconds). :mod:`gateway.north.sep2.resources_codec` reads and writes them.

``pollRate`` is kept as sent (``None`` when absent, so a round trip is exact); use
:func:`poll_rate_s` for the value a client should honour (the schema's default of 900 s).
Decoding only range-checks: the registration PIN check and the LFDI/SFDI consistency with the
client's own certificate belong to the walk (:mod:`gateway.north.sep2.identity`).
"""

# ruff: noqa: N815  - the standard's mixedCase element names are the point of this module

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_POLL_RATE_S: Final = 900  # XSD default of every pollRate attribute


@dataclass(frozen=True, slots=True)
class Link:
    """``Link``: a reference to one resource."""

    href: str


@dataclass(frozen=True, slots=True)
class ListLink:
    """``ListLink``: a reference to a list; ``all`` is the list's size when the server says."""

    href: str
    all: int | None = None  # UInt32


_Link = Link
_ListLink = ListLink


@dataclass(frozen=True, slots=True)
class DeviceCapability:
    """``DeviceCapability`` (``/dcap``): the entry point; links in schema order."""

    href: str | None = None
    pollRate: int | None = None  # UInt32 seconds, default 900
    # FunctionSetAssignmentsBase
    CustomerAccountListLink: _ListLink | None = None
    DemandResponseProgramListLink: _ListLink | None = None
    DERProgramListLink: _ListLink | None = None
    FileListLink: _ListLink | None = None
    MessagingProgramListLink: _ListLink | None = None
    PrepaymentListLink: _ListLink | None = None
    ResponseSetListLink: _ListLink | None = None
    TariffProfileListLink: _ListLink | None = None
    TimeLink: _Link | None = None
    UsagePointListLink: _ListLink | None = None
    # DeviceCapability
    EndDeviceListLink: _ListLink | None = None
    MirrorUsagePointListLink: _ListLink | None = None
    SelfDeviceLink: _Link | None = None


@dataclass(frozen=True, slots=True)
class Time:
    """``Time`` (``/tm``): the server's clock; events run on this timebase (sep2.md §5.2)."""

    currentTime: int  # TimeType
    dstEndTime: int  # TimeType
    dstOffset: int  # TimeOffsetType: Int32 seconds
    dstStartTime: int  # TimeType
    quality: int  # UInt8: 3 authoritative (NTP) .. 7 intentionally uncoordinated
    tzOffset: int  # TimeOffsetType, excludes DST
    localTime: int | None = None  # TimeType: currentTime + tzOffset (+ dstOffset in DST)
    href: str | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class EndDevice:
    """``EndDevice`` (AbstractDevice elements, then EndDevice's, then CSIP-AUS's)."""

    sFDI: int  # SFDIType: with its check digit, 0..687194767359
    changedTime: int  # TimeType
    href: str | None = None
    subscribable: int | None = None  # SubscribableType 0..3
    # AbstractDevice
    ConfigurationLink: _Link | None = None
    DERListLink: _ListLink | None = None
    deviceCategory: str | None = None  # HexBinary32, kept as the hex text
    DeviceInformationLink: _Link | None = None
    DeviceStatusLink: _Link | None = None
    FileStatusLink: _Link | None = None
    IPInterfaceListLink: _ListLink | None = None
    lFDI: str | None = None  # HexBinary160, upper case
    LoadShedAvailabilityListLink: _ListLink | None = None
    LogEventListLink: _ListLink | None = None
    PowerStatusLink: _Link | None = None
    # EndDevice
    enabled: bool | None = None
    FlowReservationRequestListLink: _ListLink | None = None
    FlowReservationResponseListLink: _ListLink | None = None
    FunctionSetAssignmentsListLink: _ListLink | None = None
    postRate: int | None = None  # UInt32 seconds
    RegistrationLink: _Link | None = None
    SubscriptionListLink: _ListLink | None = None
    # CSIP-AUS (https://csipaus.org/ns)
    ConnectionPointLink: _Link | None = None


_EndDevice = EndDevice


@dataclass(frozen=True, slots=True)
class EndDeviceList:
    all: int
    results: int
    EndDevice: tuple[_EndDevice, ...] = ()
    href: str | None = None
    subscribable: int | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    dateTimeRegistered: int  # TimeType
    pIN: int  # PINType 0..999999, with its check digit (checked by the walk, not here)
    href: str | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class FunctionSetAssignments:
    """``FunctionSetAssignments``: the FunctionSetAssignmentsBase links come *before* mRID."""

    mRID: str  # mRIDType (HexBinary128), upper case
    href: str | None = None
    subscribable: int | None = None
    CustomerAccountListLink: _ListLink | None = None
    DemandResponseProgramListLink: _ListLink | None = None
    DERProgramListLink: _ListLink | None = None
    FileListLink: _ListLink | None = None
    MessagingProgramListLink: _ListLink | None = None
    PrepaymentListLink: _ListLink | None = None
    ResponseSetListLink: _ListLink | None = None
    TariffProfileListLink: _ListLink | None = None
    TimeLink: _Link | None = None
    UsagePointListLink: _ListLink | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType (UInt16)


_FunctionSetAssignments = FunctionSetAssignments


@dataclass(frozen=True, slots=True)
class FunctionSetAssignmentsList:
    all: int
    results: int
    FunctionSetAssignments: tuple[_FunctionSetAssignments, ...] = ()
    href: str | None = None
    subscribable: int | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class DERProgram:
    mRID: str  # mRIDType (HexBinary128), upper case
    primacy: int  # PrimacyType (UInt8): lower value = higher priority
    href: str | None = None
    subscribable: int | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType (UInt16)
    ActiveDERControlListLink: _ListLink | None = None
    DefaultDERControlLink: _Link | None = None
    DERControlListLink: _ListLink | None = None
    DERCurveListLink: _ListLink | None = None


_DERProgram = DERProgram


@dataclass(frozen=True, slots=True)
class DERProgramList:
    all: int
    results: int
    DERProgram: tuple[_DERProgram, ...] = ()
    href: str | None = None
    subscribable: int | None = None
    pollRate: int | None = None


Resource = (
    Link
    | ListLink
    | DeviceCapability
    | Time
    | EndDevice
    | EndDeviceList
    | Registration
    | FunctionSetAssignments
    | FunctionSetAssignmentsList
    | DERProgram
    | DERProgramList
)
RESOURCE_TYPES: Final = (
    Link,
    ListLink,
    DeviceCapability,
    Time,
    EndDevice,
    EndDeviceList,
    Registration,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    DERProgram,
    DERProgramList,
)

_Polled = (
    DeviceCapability
    | Time
    | EndDeviceList
    | Registration
    | FunctionSetAssignmentsList
    | DERProgramList
)


def poll_rate_s(resource: _Polled) -> int:
    """The poll interval the server asks for, in seconds (900 when it does not say)."""
    return DEFAULT_POLL_RATE_S if resource.pollRate is None else resource.pollRate
