"""Read and write the resources of :mod:`gateway.north.sep2.resources` (sans-I/O: bytes <-> values).

The same reader, writer and rules as :mod:`gateway.north.sep2.codec` (which dispatches here, so
``codec.decode`` / ``codec.encode`` take these resources too): hardened parsing, elements written
in schema order, every range checked on decode and re-checked on encode, errors as
:class:`Sep2ValueError` naming the element path. Each resource is described by a table of its
elements in schema order, so decoding and encoding cannot disagree on names, kinds or order.

Checked here: UInt32 ``pollRate``/``postRate``/``all``/``results``, ``subscribable`` 0..3,
``sFDI`` 0..687194767359 (the XSD bound; the check digit is the walk's business, like the PIN),
``pIN`` 0..999999, ``lFDI`` HexBinary160, ``mRID`` HexBinary128, Int32 time offsets, UInt8
``quality``/``primacy``, every ``Link`` having an ``href``, and for lists that ``results`` is
the number of items held and at most ``all``. Unknown elements are ignored.

The DER resources of :mod:`gateway.north.sep2.der_resources` use the same tables: ``ActivePower``
/ ``ReactivePower`` (Int16 value, multiplier -9..9; ratings and settings not negative, but
``rtgMaxVarNeg`` / ``setMaxVarNeg`` not positive, as 2030.5 writes var received),
``ApparentPower`` (UInt16 value), ``PowerFactor`` (UInt16 displacement, in (0, 1]), UInt16
``setGradW``, ``PerCent`` 0..10000, ``DERType`` UInt8, bitmaps (HexBinary32 ``DERControlType``,
HexBinary8 ``ConnectStatusType`` and CSIP-AUS ``DOEControlType`` / ``VPPControlType``) held as
integers, and the ``{dateTime, value}`` status elements of ``DERStatus``. CSIP-AUS elements are
written in the 1.2 namespace; the client declares the server's URI for that prefix on the way
out (:func:`gateway.north.sep2.xml.with_csipaus_ns`) and the parser reads 1.3's back as 1.2's.

So do the metering mirror of :mod:`gateway.north.sep2.metering` (Int48 ``value``, UInt48
``supplyLimit``, HexBinary16 ``roleFlags``/``qualityFlags``/``localID`` held as integers,
``powerOfTenMultiplier`` -9..9, ``DateTimeInterval`` and ``UnitValueType`` structures, resources
nested in resources at their schema position) and the resources of
:mod:`gateway.north.sep2.pubsub`. A ``Notification`` carries its resource as
``<Resource xsi:type="DERControlList">``: it is decoded by whichever codec reads that type (the
``xsi:type`` names it, not the element), and a type this package does not read, a missing or
undeclared ``xsi:type``, or a nested ``Notification`` is refused with :class:`Sep2ValueError`
(a :class:`Sep2ParseError`). ``csipaus:ConnectionPoint`` is the one root outside the 2030.5
namespace (embedded, its type is ``csipaus:ConnectionPointType``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2 import codec
from gateway.north.sep2.codec import (
    _AS_HEX32,
    _AS_INT16,
    _AS_LFDI,
    _AS_MRID,
    _AS_MULTIPLIER,
    _AS_STR32,
    _AS_TIME,
    _AS_UINT8,
    _AS_UINT16,
    _AS_VERSION,
    _as_boolean,
    _Conv,
    _hexbin,
    _integer,
    _q,
    _Reader,
    _string,
    _to_bytes,
    _Writer,
)
from gateway.north.sep2.der_resources import (
    DER,
    ApparentPower,
    ConnectStatus,
    ConnectStatusType,
    DERAvailability,
    DERCapability,
    DERList,
    DERResource,
    DERSettings,
    DERStatus,
    DOEModes,
    InverterStatusType,
    OperationalModeStatusType,
    PowerFactor,
    ReactivePower,
    StateOfChargeStatusType,
    VPPModes,
)
from gateway.north.sep2.identity import PIN_MAX, SFDI_MAX
from gateway.north.sep2.metering import (
    INT48_MAX,
    INT48_MIN,
    UINT48_MAX,
    MeteringResource,
    MirrorMeterReading,
    MirrorMeterReadingList,
    MirrorReadingSet,
    MirrorUsagePoint,
    MirrorUsagePointList,
    Reading,
    ReadingType,
    UnitValueType,
)
from gateway.north.sep2.model import (
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    PERCENT_MAX,
    UINT32_MAX,
    ActivePower,
    DateTimeInterval,
    Sep2ValueError,
)
from gateway.north.sep2.pubsub import (
    Condition,
    ConnectionPoint,
    Error,
    LogEvent,
    LogEventList,
    Notification,
    NotificationList,
    PubSubResource,
    ResponseSet,
    ResponseSetList,
    Subscription,
    SubscriptionList,
)
from gateway.north.sep2.resources import (
    DERProgram,
    DERProgramList,
    DeviceCapability,
    EndDevice,
    EndDeviceList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    Link,
    ListLink,
    Registration,
    Resource,
    Time,
)
from gateway.north.sep2.xml import CSIPAUS_NS, MAX_BODY_BYTES, NS, Sep2ParseError, parse

__all__ = ["decode", "decode_as", "decode_element", "encode", "encode_element"]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
SUBSCRIBABLE_MAX: Final = 3  # SubscribableType 0..3

XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE: Final = f"{{{XSI_NS}}}type"

AnyWalkResource = Resource | DERResource | MeteringResource | PubSubResource
R = TypeVar("R", bound=AnyWalkResource)

# Element kinds.
(_LINK, _LISTLINK, _TIME, _UINT32, _UINT8, _INT32, _BOOL, _HEX32, _LFDI, _SFDI, _PIN, _MRID) = (
    range(12)
)
_STR32, _VERSION = 12, 13
(_UINT16, _PERCENT, _HEX32_INT, _DOE) = range(14, 18)
# Kinds with element content, read and written by _STRUCT_READERS / _write_struct.
(_RATING, _POWER, _RPOWER, _CONNECT, _OPMODE, _INVERTER, _SOC) = range(18, 25)
(_INT48, _UINT48, _MULT, _HEX16_INT, _STR16, _URI) = range(25, 31)
(_INTERVAL, _UNITVALUE, _CONDITION) = range(31, 34)
_STRUCTS: Final = frozenset(range(18, 25)) | {_INTERVAL, _UNITVALUE, _CONDITION, *range(38, 42)}
# Resources inside a resource: one (_ONE), any number (_MANY), both read with the spec named in
# _Spec.nested; _EMBEDDED is Notification's <Resource xsi:type="...">.
(_ONE, _MANY, _EMBEDDED) = range(34, 37)
_VPP = 37  # CSIP-AUS 1.3 VPPControlType (HexBinary8)
# DERCapability / DERSettings VA, var and PF ratings: ApparentPower (UInt16 value), ReactivePower
# >= 0 (var delivered) and <= 0 (var received: 2030.5 writes *VarNeg negative), PowerFactor.
(_VA, _VAR, _VAR_NEG, _PF) = range(38, 42)
_POWERS: Final = frozenset({_RATING, _POWER, _RPOWER, _VA, _VAR, _VAR_NEG})

_Field = tuple[str, str, int, bool]  # (element name, namespace, kind, required)

_FSA_BASE: Final[tuple[_Field, ...]] = (
    ("CustomerAccountListLink", NS, _LISTLINK, False),
    ("DemandResponseProgramListLink", NS, _LISTLINK, False),
    ("DERProgramListLink", NS, _LISTLINK, False),
    ("FileListLink", NS, _LISTLINK, False),
    ("MessagingProgramListLink", NS, _LISTLINK, False),
    ("PrepaymentListLink", NS, _LISTLINK, False),
    ("ResponseSetListLink", NS, _LISTLINK, False),
    ("TariffProfileListLink", NS, _LISTLINK, False),
    ("TimeLink", NS, _LINK, False),
    ("UsagePointListLink", NS, _LISTLINK, False),
)


@dataclass(frozen=True)
class _Spec:
    """How one resource is written: attributes, elements in schema order, list items."""

    root: str
    cls: type[Any]
    attrs: tuple[str, ...] = ()  # among href, subscribable, all, results, pollRate
    fields: tuple[_Field, ...] = ()
    item: _Spec | None = None  # for lists: the item's spec (its root is the element name)
    ns: str = NS  # the root element's namespace (CSIP-AUS for ConnectionPoint)
    nested: tuple[tuple[str, _Spec], ...] = ()  # element name -> spec, for _ONE / _MANY

    def child(self, name: str) -> _Spec:
        return dict(self.nested)[name]


_DCAP = _Spec(
    "DeviceCapability",
    DeviceCapability,
    ("href", "pollRate"),
    (
        *_FSA_BASE,
        ("EndDeviceListLink", NS, _LISTLINK, False),
        ("MirrorUsagePointListLink", NS, _LISTLINK, False),
        ("SelfDeviceLink", NS, _LINK, False),
    ),
)
_TIME_SPEC = _Spec(
    "Time",
    Time,
    ("href", "pollRate"),
    (
        ("currentTime", NS, _TIME, True),
        ("dstEndTime", NS, _TIME, True),
        ("dstOffset", NS, _INT32, True),
        ("dstStartTime", NS, _TIME, True),
        ("localTime", NS, _TIME, False),
        ("quality", NS, _UINT8, True),
        ("tzOffset", NS, _INT32, True),
    ),
)
_EDEV = _Spec(
    "EndDevice",
    EndDevice,
    ("href", "subscribable"),
    (
        ("ConfigurationLink", NS, _LINK, False),
        ("DERListLink", NS, _LISTLINK, False),
        ("deviceCategory", NS, _HEX32, False),
        ("DeviceInformationLink", NS, _LINK, False),
        ("DeviceStatusLink", NS, _LINK, False),
        ("FileStatusLink", NS, _LINK, False),
        ("IPInterfaceListLink", NS, _LISTLINK, False),
        ("lFDI", NS, _LFDI, False),
        ("LoadShedAvailabilityListLink", NS, _LISTLINK, False),
        ("LogEventListLink", NS, _LISTLINK, False),
        ("PowerStatusLink", NS, _LINK, False),
        ("sFDI", NS, _SFDI, True),
        ("changedTime", NS, _TIME, True),
        ("enabled", NS, _BOOL, False),
        ("FlowReservationRequestListLink", NS, _LISTLINK, False),
        ("FlowReservationResponseListLink", NS, _LISTLINK, False),
        ("FunctionSetAssignmentsListLink", NS, _LISTLINK, False),
        ("postRate", NS, _UINT32, False),
        ("RegistrationLink", NS, _LINK, False),
        ("SubscriptionListLink", NS, _LISTLINK, False),
        ("ConnectionPointLink", CSIPAUS_NS, _LINK, False),
    ),
)
_REG = _Spec(
    "Registration",
    Registration,
    ("href", "pollRate"),
    (("dateTimeRegistered", NS, _TIME, True), ("pIN", NS, _PIN, True)),
)
_FSA = _Spec(
    "FunctionSetAssignments",
    FunctionSetAssignments,
    ("href", "subscribable"),
    (
        *_FSA_BASE,
        ("mRID", NS, _MRID, True),
        ("description", NS, _STR32, False),
        ("version", NS, _VERSION, False),
    ),
)
_DERP = _Spec(
    "DERProgram",
    DERProgram,
    ("href", "subscribable"),
    (
        ("mRID", NS, _MRID, True),
        ("description", NS, _STR32, False),
        ("version", NS, _VERSION, False),
        ("ActiveDERControlListLink", NS, _LISTLINK, False),
        ("DefaultDERControlLink", NS, _LINK, False),
        ("DERControlListLink", NS, _LISTLINK, False),
        ("DERCurveListLink", NS, _LISTLINK, False),
        ("primacy", NS, _UINT8, True),
    ),
)
_LIST_ATTRS: Final = ("href", "subscribable", "all", "results", "pollRate")
_DER = _Spec(
    "DER",
    DER,
    ("href", "subscribable"),
    (
        ("AssociatedDERProgramListLink", NS, _LISTLINK, False),
        ("AssociatedUsagePointLink", NS, _LINK, False),
        ("CurrentDERProgramLink", NS, _LINK, False),
        ("DERAvailabilityLink", NS, _LINK, False),
        ("DERCapabilityLink", NS, _LINK, False),
        ("DERSettingsLink", NS, _LINK, False),
        ("DERStatusLink", NS, _LINK, False),
    ),
)
_DERCAP = _Spec(
    "DERCapability",
    DERCapability,
    ("href",),
    (
        ("modesSupported", NS, _HEX32_INT, True),
        ("rtgMaxChargeRateW", NS, _RATING, False),
        ("rtgMaxDischargeRateW", NS, _RATING, False),
        ("rtgMaxVA", NS, _VA, False),
        ("rtgMaxVar", NS, _VAR, False),
        ("rtgMaxVarNeg", NS, _VAR_NEG, False),
        ("rtgMaxW", NS, _RATING, True),
        ("rtgMaxWh", NS, _RATING, False),
        ("rtgMinPFOverExcited", NS, _PF, False),
        ("rtgMinPFUnderExcited", NS, _PF, False),
        ("type", NS, _UINT8, True),
        # Required by CSIP-AUS, absent in US CSIP: the client decides which it writes.
        ("doeModesSupported", CSIPAUS_NS, _DOE, False),
        ("vppModesSupported", CSIPAUS_NS, _VPP, False),  # 1.3 only
    ),
)
_DERSET = _Spec(
    "DERSettings",
    DERSettings,
    ("href", "subscribable"),
    (
        ("modesEnabled", NS, _HEX32_INT, False),
        ("setGradW", NS, _UINT16, True),
        ("setMaxChargeRateW", NS, _RATING, False),
        ("setMaxDischargeRateW", NS, _RATING, False),
        ("setMaxVA", NS, _VA, False),
        ("setMaxVar", NS, _VAR, False),
        ("setMaxVarNeg", NS, _VAR_NEG, False),
        ("setMaxW", NS, _RATING, True),
        ("setMaxWh", NS, _RATING, False),
        ("setMinPFOverExcited", NS, _PF, False),
        ("setMinPFUnderExcited", NS, _PF, False),
        ("updatedTime", NS, _TIME, True),
        ("doeModesEnabled", CSIPAUS_NS, _DOE, False),
        ("vppModesEnabled", CSIPAUS_NS, _VPP, False),  # 1.3 only, as is setMinWh
        ("setMinWh", CSIPAUS_NS, _RATING, False),
    ),
)
_DERSTAT = _Spec(
    "DERStatus",
    DERStatus,
    ("href", "subscribable"),
    (
        ("alarmStatus", NS, _HEX32_INT, False),
        ("genConnectStatus", NS, _CONNECT, False),
        ("inverterStatus", NS, _INVERTER, False),
        ("operationalModeStatus", NS, _OPMODE, False),
        ("readingTime", NS, _TIME, True),
        ("stateOfChargeStatus", NS, _SOC, False),
        ("storConnectStatus", NS, _CONNECT, False),
    ),
)
_DERAVAIL = _Spec(
    "DERAvailability",
    DERAvailability,
    ("href", "subscribable"),
    (
        ("availabilityDuration", NS, _UINT32, False),
        ("maxChargeDuration", NS, _UINT32, False),
        ("readingTime", NS, _TIME, True),
        ("reserveChargePercent", NS, _PERCENT, False),
        ("reservePercent", NS, _PERCENT, False),
        ("statVarAvail", NS, _RPOWER, False),
        ("statWAvail", NS, _POWER, False),
    ),
)
_IDENTIFIED: Final[tuple[_Field, ...]] = (
    ("mRID", NS, _MRID, True),
    ("description", NS, _STR32, False),
    ("version", NS, _VERSION, False),
)
_PLAIN_LIST: Final = ("href", "all", "results")
_POLLED_LIST: Final = ("href", "all", "results", "pollRate")
_READING_TYPE = _Spec(
    "ReadingType",
    ReadingType,
    ("href",),
    (
        ("accumulationBehaviour", NS, _UINT8, False),
        ("calorificValue", NS, _UNITVALUE, False),
        ("commodity", NS, _UINT8, False),
        ("conversionFactor", NS, _UNITVALUE, False),
        ("dataQualifier", NS, _UINT8, False),
        ("flowDirection", NS, _UINT8, False),
        ("intervalLength", NS, _UINT32, False),
        ("kind", NS, _UINT8, False),
        ("maxNumberOfIntervals", NS, _UINT8, False),
        ("numberOfConsumptionBlocks", NS, _UINT8, False),
        ("numberOfTouTiers", NS, _UINT8, False),
        ("phase", NS, _UINT8, False),
        ("powerOfTenMultiplier", NS, _MULT, False),
        ("subIntervalLength", NS, _UINT32, False),
        ("supplyLimit", NS, _UINT48, False),
        ("tieredConsumptionBlocks", NS, _BOOL, False),
        ("uom", NS, _UINT8, False),
    ),
)
_READING = _Spec(
    "Reading",
    Reading,
    ("href", "subscribable"),
    (
        ("consumptionBlock", NS, _UINT8, False),
        ("qualityFlags", NS, _HEX16_INT, False),
        ("timePeriod", NS, _INTERVAL, False),
        ("touTier", NS, _UINT8, False),
        ("value", NS, _INT48, False),
        ("localID", NS, _HEX16_INT, False),
    ),
)
_MRS = _Spec(
    "MirrorReadingSet",
    MirrorReadingSet,
    ("href",),
    (*_IDENTIFIED, ("timePeriod", NS, _INTERVAL, True), ("Reading", NS, _MANY, False)),
    nested=(("Reading", _READING),),
)
_MMR = _Spec(
    "MirrorMeterReading",
    MirrorMeterReading,
    ("href",),
    (
        *_IDENTIFIED,
        ("lastUpdateTime", NS, _TIME, False),
        ("MirrorReadingSet", NS, _MANY, False),
        ("nextUpdateTime", NS, _TIME, False),
        ("Reading", NS, _ONE, False),
        ("ReadingType", NS, _ONE, False),
    ),
    nested=(("MirrorReadingSet", _MRS), ("Reading", _READING), ("ReadingType", _READING_TYPE)),
)
_MUP = _Spec(
    "MirrorUsagePoint",
    MirrorUsagePoint,
    ("href",),
    (
        *_IDENTIFIED,
        ("roleFlags", NS, _HEX16_INT, True),
        ("serviceCategoryKind", NS, _UINT8, True),
        ("status", NS, _UINT8, True),
        ("deviceLFDI", NS, _LFDI, True),
        ("MirrorMeterReading", NS, _MANY, False),
        ("postRate", NS, _UINT32, False),
    ),
    nested=(("MirrorMeterReading", _MMR),),
)
_SUB = _Spec(
    "Subscription",
    Subscription,
    ("href",),
    (
        ("subscribedResource", NS, _URI, True),
        ("Condition", NS, _CONDITION, False),
        ("encoding", NS, _UINT8, True),
        ("level", NS, _STR16, True),
        ("limit", NS, _UINT32, True),
        ("notificationURI", NS, _URI, True),
    ),
)
_NOTIF = _Spec(
    "Notification",
    Notification,
    ("href",),
    (
        ("subscribedResource", NS, _URI, True),
        ("newResourceURI", NS, _URI, False),
        ("Resource", NS, _EMBEDDED, False),
        ("status", NS, _UINT8, True),
        ("subscriptionURI", NS, _URI, True),
    ),
)
_RSPS = _Spec(
    "ResponseSet",
    ResponseSet,
    ("href",),
    (*_IDENTIFIED, ("ResponseListLink", NS, _LISTLINK, False)),
)
_LOG = _Spec(
    "LogEvent",
    LogEvent,
    ("href",),
    (
        ("createdDateTime", NS, _TIME, True),
        ("details", NS, _STR32, False),
        ("extendedData", NS, _UINT32, False),
        ("functionSet", NS, _UINT8, True),
        ("logEventCode", NS, _UINT8, True),
        ("logEventID", NS, _UINT16, True),
        ("logEventPEN", NS, _UINT32, True),
        ("profileID", NS, _UINT8, True),
    ),
)
_ERROR = _Spec(
    "Error",
    Error,
    (),  # not a Resource: no href
    (("maxRetryDuration", NS, _UINT16, False), ("reasonCode", NS, _UINT16, True)),
)
_CP = _Spec(
    "ConnectionPoint",
    ConnectionPoint,
    ("href",),
    (("connectionPointId", CSIPAUS_NS, _STR32, True),),
    ns=CSIPAUS_NS,
)
_SPECS: Final[tuple[_Spec, ...]] = (
    _Spec("Link", Link, ("href",)),
    _Spec("ListLink", ListLink, ("href", "all")),
    _DCAP,
    _TIME_SPEC,
    _EDEV,
    _Spec("EndDeviceList", EndDeviceList, _LIST_ATTRS, item=_EDEV),
    _REG,
    _FSA,
    _Spec("FunctionSetAssignmentsList", FunctionSetAssignmentsList, _LIST_ATTRS, item=_FSA),
    _DERP,
    _Spec("DERProgramList", DERProgramList, _LIST_ATTRS, item=_DERP),
    _DER,
    _Spec("DERList", DERList, _LIST_ATTRS, item=_DER),
    _DERCAP,
    _DERSET,
    _DERSTAT,
    _DERAVAIL,
    _READING_TYPE,
    _READING,
    _MRS,
    _MMR,
    _Spec("MirrorMeterReadingList", MirrorMeterReadingList, _PLAIN_LIST, item=_MMR),
    _MUP,
    _Spec("MirrorUsagePointList", MirrorUsagePointList, _POLLED_LIST, item=_MUP),
    _SUB,
    _Spec("SubscriptionList", SubscriptionList, _POLLED_LIST, item=_SUB),
    _NOTIF,
    _Spec("NotificationList", NotificationList, _PLAIN_LIST, item=_NOTIF),
    _RSPS,
    _Spec("ResponseSetList", ResponseSetList, _POLLED_LIST, item=_RSPS),
    _LOG,
    _Spec("LogEventList", LogEventList, _LIST_ATTRS, item=_LOG),
    _ERROR,
    _CP,
)
_BY_QNAME: Final = {(s.ns, s.root): s for s in _SPECS}
_BY_CLS: Final = {s.cls: s for s in _SPECS}
ROOTS: Final = frozenset(s.root for s in _SPECS)
QROOTS: Final = frozenset(_BY_QNAME)  # (namespace, local name) of every root read here

# ------------------------------------------------------------------------------ decoding


_URI_MAX: Final = 2048  # anyURI has no bound; a URI longer than this is not a 2030.5 path


def _hex_int(digits: int, what: str, cls: Callable[[int], Any]) -> _Conv[Any]:
    text = _hexbin(digits, what)
    return lambda r, name, raw: cls(int(text(r, name, raw), 16))


_AS_PERCENT: Final = _integer(0, PERCENT_MAX, "PerCent")
# The converter of each simple kind, built once.
_CONVS: Final[dict[int, _Conv[Any]]] = {
    _TIME: _AS_TIME,
    _UINT32: _integer(0, UINT32_MAX, "UInt32"),
    _UINT8: _AS_UINT8,
    _INT32: _integer(INT32_MIN, INT32_MAX, "Int32 seconds"),
    _BOOL: _as_boolean,
    _HEX32: _AS_HEX32,
    _LFDI: _AS_LFDI,
    _SFDI: _integer(0, SFDI_MAX, "SFDIType"),
    _PIN: _integer(0, PIN_MAX, "PINType"),
    _MRID: _AS_MRID,
    _STR32: _AS_STR32,
    _VERSION: _AS_VERSION,
    _UINT16: _AS_UINT16,
    _PERCENT: _AS_PERCENT,
    _HEX32_INT: _hex_int(8, "HexBinary32", int),
    _DOE: _hex_int(2, "DOEControlType (HexBinary8)", DOEModes),
    _VPP: _hex_int(2, "VPPControlType (HexBinary8)", VPPModes),
    _INT48: _integer(INT48_MIN, INT48_MAX, "Int48"),
    _UINT48: _integer(0, UINT48_MAX, "UInt48"),
    _MULT: _integer(MULTIPLIER_MIN, MULTIPLIER_MAX, "PowerOfTenMultiplierType -9..9"),
    _HEX16_INT: _hex_int(4, "HexBinary16", int),
    _STR16: _string(16),
    _URI: _string(_URI_MAX),
}
_AS_UINT32: Final = _CONVS[_UINT32]
_AS_INT48: Final = _CONVS[_INT48]
# In structures: the same ranges, named as the structure's schema type names them.
_AS_INT32: Final = _integer(INT32_MIN, INT32_MAX, "Int32")
_AS_SECONDS: Final = _integer(0, UINT32_MAX, "UInt32 seconds")
_AS_UNIT_MULTIPLIER: Final = _integer(MULTIPLIER_MIN, MULTIPLIER_MAX, "Int8")
_AS_UOM: Final = _integer(0, 255, "UomType (UInt8)")


def _power(
    r: _Reader, name: str, ns: str, kind: int
) -> ActivePower | ReactivePower | ApparentPower | None:
    sub = r.sub(name, ns)
    if sub is None:
        return None
    multiplier = sub.need("multiplier", _AS_MULTIPLIER)
    value = sub.need("value", _AS_UINT16 if kind == _VA else _AS_INT16)
    if kind in {_RATING, _VAR} and value < 0:
        raise sub.fail("value", value, "a rating or setting must not be negative")
    if kind == _VAR_NEG and value > 0:
        raise sub.fail("value", value, "var received is written negative (or 0)")
    if kind == _VA:
        return ApparentPower(value=value, multiplier=multiplier)
    if kind in {_RPOWER, _VAR, _VAR_NEG}:
        return ReactivePower(value=value, multiplier=multiplier)
    return ActivePower(value=value, multiplier=multiplier)


def _power_factor(sub: _Reader) -> PowerFactor:
    pf = PowerFactor(
        displacement=sub.need("displacement", _AS_UINT16),
        multiplier=sub.need("multiplier", _AS_MULTIPLIER),
    )
    if not 0.0 < pf.ratio <= 1.0:
        raise sub.fail("displacement", pf.displacement, "a power factor is in (0, 1]")
    return pf


_StatusCls = (
    type[ConnectStatusType]
    | type[OperationalModeStatusType]
    | type[InverterStatusType]
    | type[StateOfChargeStatusType]
)
_STATUS: Final[dict[int, tuple[_StatusCls, _Conv[Any]]]] = {
    _CONNECT: (ConnectStatusType, _hex_int(2, "HexBinary8", ConnectStatus)),
    _OPMODE: (OperationalModeStatusType, _AS_UINT8),
    _INVERTER: (InverterStatusType, _AS_UINT8),
    _SOC: (StateOfChargeStatusType, _AS_PERCENT),
}


def _plain_struct(sub: _Reader, kind: int) -> Any:
    if kind == _INTERVAL:
        # Not the DERControl interval of codec.py: a reading set may span more than a year.
        duration = sub.need("duration", _AS_SECONDS)
        return DateTimeInterval(duration=duration, start=sub.need("start", _AS_TIME))
    if kind == _UNITVALUE:
        return UnitValueType(
            multiplier=sub.need("multiplier", _AS_UNIT_MULTIPLIER),
            unit=sub.need("unit", _AS_UOM),
            value=sub.need("value", _AS_INT32),
        )
    return Condition(
        attributeIdentifier=sub.need("attributeIdentifier", _AS_UINT8),
        lowerThreshold=sub.need("lowerThreshold", _AS_INT48),
        upperThreshold=sub.need("upperThreshold", _AS_INT48),
    )


def _struct(r: _Reader, name: str, ns: str, kind: int) -> Any:
    if kind in _POWERS:
        return _power(r, name, ns, kind)
    sub = r.sub(name, ns)
    if sub is None:
        return None
    if kind == _PF:
        return _power_factor(sub)
    if kind in {_INTERVAL, _UNITVALUE, _CONDITION}:
        return _plain_struct(sub, kind)
    cls, conv = _STATUS[kind]
    return cls(dateTime=sub.need("dateTime", _AS_TIME), value=sub.need("value", conv))


def _href(r: _Reader, *, required: bool) -> str | None:
    href: str | None = r.el.get("href")
    if href is None and required:
        raise r.fail("@href", None, "is required")
    return href


def _need_href(r: _Reader) -> str:
    href: str | None = r.el.get("href")
    if href is None:
        raise r.fail("@href", None, "is required")
    return href


def _link(r: _Reader, name: str, ns: str, *, listlink: bool) -> Link | ListLink | None:
    sub = r.sub(name, ns)
    if sub is None:
        return None
    href = _need_href(sub)
    if listlink:
        return ListLink(href=href, all=sub.attr_int("all", 0, UINT32_MAX, "UInt32"))
    return Link(href=href)


def _read(r: _Reader, spec: _Spec) -> Any:
    values: dict[str, Any] = {}
    for attr in spec.attrs:
        if attr == "href":
            values["href"] = _href(r, required=spec.cls in {Link, ListLink})
        elif attr == "subscribable":
            values[attr] = r.attr_int(attr, 0, SUBSCRIBABLE_MAX, "SubscribableType 0..3")
        else:  # all, results, pollRate
            values[attr] = r.attr_int(attr, 0, UINT32_MAX, "UInt32")
    for name, ns, kind, required in spec.fields:
        if kind in {_LINK, _LISTLINK}:
            values[name] = _link(r, name, ns, listlink=kind == _LISTLINK)
        elif kind == _ONE:
            sub = r.sub(name, ns)
            values[name] = None if sub is None else _read(sub, spec.child(name))
        elif kind == _MANY:
            values[name] = tuple(
                _read(_Reader(el, f"{name}[{i}]", parent=r), spec.child(name))
                for i, el in enumerate(r.el.findall(_q(name, ns)))
            )
        elif kind == _EMBEDDED:
            values[name] = _embedded(r, name)
        elif kind in _STRUCTS:
            values[name] = _struct(r, name, ns, kind)
            if required and values[name] is None:
                raise r.fail(name, None, "is required")
        elif required:
            values[name] = r.need(name, _CONVS[kind], ns)
        else:
            values[name] = r.opt(name, _CONVS[kind], ns)
    if spec.item is not None:
        item = spec.item
        if values["all"] is None or values["results"] is None:
            raise r.fail("@all/@results", None, "are required")
        items = tuple(
            _read(_Reader(el, f"{item.root}[{i}]", parent=r), item)
            for i, el in enumerate(r.el.findall(_q(item.root)))
        )
        if values["results"] != len(items):
            raise r.fail("@results", values["results"], f"but the list holds {len(items)} items")
        if values["results"] > values["all"]:
            raise r.fail("@results", values["results"], f"is more than @all ({values['all']})")
        values[item.root] = items
    return spec.cls(**values)


# Types that may not be embedded in a Notification: not Resources, or notifications themselves.
_NOT_EMBEDDABLE: Final = frozenset(
    {"Link", "ListLink", "Error", "Notification", "NotificationList"}
)
_CP_TYPE: Final = (CSIPAUS_NS, "ConnectionPointType")


def _embedded_root(r: _Reader, el: Any, name: str) -> tuple[str, str]:
    """The (namespace, element name) that ``el``'s ``xsi:type`` stands for."""
    raw = el.get(_XSI_TYPE)
    if raw is None:
        raise r.fail(f"{name}/@xsi:type", None, "is required: it names the resource carried")
    prefix, _, local = raw.strip().rpartition(":")
    ns = el.nsmap.get(prefix or None)
    if ns is None:
        raise r.fail(f"{name}/@xsi:type", raw, f"uses the undeclared prefix {prefix!r}")
    if (ns, local) == _CP_TYPE:
        return CSIPAUS_NS, "ConnectionPoint"
    known = (ns == NS and local in codec.DECODED_ROOTS) or (ns, local) in QROOTS
    if ns != NS or not known or local in _NOT_EMBEDDABLE:
        readable = sorted(
            {*codec.DECODED_ROOTS, *(n for q, n in QROOTS if q == NS)} - _NOT_EMBEDDABLE
        )
        raise r.fail(
            f"{name}/@xsi:type",
            raw,
            f"is not a resource this gateway reads in a notification; one of "
            f"{', '.join(readable)} or csipaus:ConnectionPointType",
        )
    return NS, local


def _embedded(r: _Reader, name: str) -> Any:
    el = r.child(name)
    if el is None:
        return None
    ns, root = _embedded_root(r, el, name)
    # Decode a renamed copy with the codec that reads that type (the parse was hardened).
    renamed = copy.deepcopy(el)
    renamed.tag = _q(root, ns)
    del renamed.attrib[_XSI_TYPE]
    try:
        return codec.decode_element(renamed)
    except Sep2ValueError as e:
        raise Sep2ValueError(f"{r.path}/{name}/{e.element}", e.value, e.reason, e.mrid) from None


def decode_element(root: Any) -> AnyWalkResource:
    """The resource an already parsed (hardened) root element holds."""
    q = etree.QName(root)
    spec = _BY_QNAME.get((q.namespace, q.localname))
    if spec is None:
        raise Sep2ParseError(
            f"unsupported resource {q.localname}; expected one of {', '.join(sorted(ROOTS))}"
        )
    result: AnyWalkResource = _read(_Reader(root, q.localname), spec)
    return result


def decode(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> AnyWalkResource:
    """Parse and decode one body holding any resource of :mod:`~gateway.north.sep2.resources`."""
    return decode_element(parse(body, max_bytes=max_bytes))


def decode_as(body: bytes, cls: type[R], *, max_bytes: int = MAX_BODY_BYTES) -> R:
    """Decode a body that must hold a ``cls`` (e.g. what a ``TimeLink`` points at)."""
    root = parse(body, max_bytes=max_bytes)
    spec = _BY_CLS.get(cls)
    if spec is None:
        raise TypeError(f"{cls.__name__} is not a resource of gateway.north.sep2.(der_)resources")
    name = etree.QName(root).localname
    if name != spec.root or etree.QName(root).namespace != spec.ns:
        raise Sep2ParseError(f"expected a {spec.root}, got {name}")
    result = decode_element(root)
    if not isinstance(result, cls):  # pragma: no cover - the root named it
        raise TypeError(f"{spec.root} decoded as {type(result).__name__}")
    return result


# ------------------------------------------------------------------------------ encoding


def _uses_csipaus(resource: Any, spec: _Spec) -> bool:
    if any(ns == CSIPAUS_NS and getattr(resource, n) is not None for n, ns, _, _ in spec.fields):
        return True
    if spec.item is not None:
        return any(_uses_csipaus(i, spec.item) for i in getattr(resource, spec.item.root))
    return False


def _write(w: _Writer, resource: Any, spec: _Spec) -> None:
    for attr in spec.attrs:
        w.attr(attr, getattr(resource, attr))
    for name, ns, kind, _ in spec.fields:
        value = getattr(resource, name)
        if value is None:
            continue
        if kind in {_LINK, _LISTLINK}:
            link = _Writer(etree.SubElement(w.el, _q(name, ns)))
            link.attr("href", value.href)
            if isinstance(value, ListLink):
                link.attr("all", value.all)
        elif kind == _ONE:
            _write(w.node(name), value, spec.child(name))
        elif kind == _MANY:
            for item in value:
                _write(w.node(name), item, spec.child(name))
        elif kind == _EMBEDDED:
            w.el.append(_embed(value))
        elif kind == _HEX16_INT:
            w.add(name, _hex(value, 4), ns)
        elif kind in _STRUCTS:
            _write_struct(w, name, value, ns)
        elif kind == _HEX32_INT:
            w.add(name, _hex(value, 8), ns)
        elif kind in {_DOE, _VPP}:
            w.add(name, _hex(value, 2), ns)
        else:
            w.add(name, value, ns)
    if spec.item is not None:
        for item in getattr(resource, spec.item.root):
            _write(w.node(spec.item.root), item, spec.item)


def _embed(resource: Any) -> Any:
    """``resource`` as ``<Resource xsi:type="...">``: its own element, renamed."""
    el = codec.encode_element(resource)
    q = etree.QName(el)
    # The writers declare the 2030.5 namespace as the default and CSIP-AUS as csipaus:.
    xsi_type = "csipaus:ConnectionPointType" if q.namespace == CSIPAUS_NS else q.localname
    el.tag = _q("Resource")
    el.set(_XSI_TYPE, xsi_type)
    return el


def _hex(value: int, digits: int) -> str:
    # Out of range stays visible (and is refused by the decoder's check): no silent truncation.
    return f"{int(value):0{digits}X}" if int(value) >= 0 else str(int(value))


def _write_struct(w: _Writer, name: str, value: Any, ns: str = NS) -> None:
    # The element in its own namespace (csipaus:setMinWh); its children are 2030.5's.
    sub = _Writer(etree.SubElement(w.el, _q(name, ns)))
    if isinstance(value, ActivePower | ReactivePower | ApparentPower):
        sub.add("multiplier", value.multiplier)
        sub.add("value", value.value)
    elif isinstance(value, DateTimeInterval | UnitValueType | Condition | PowerFactor):
        for f in fields(value):  # declared in schema order
            sub.add(f.name, getattr(value, f.name))
    else:
        sub.add("dateTime", value.dateTime)
        is_hex = isinstance(value, ConnectStatusType)
        sub.add("value", _hex(value.value, 2) if is_hex else int(value.value))


def _embeds(resource: Any, spec: _Spec) -> bool:
    if spec.cls is Notification:
        return resource.Resource is not None
    if spec.cls is NotificationList:
        return any(n.Resource is not None for n in resource.Notification)
    return False


def encode_element(resource: AnyWalkResource) -> Any:
    """``resource`` as an element, checked as :func:`encode` checks it."""
    spec = _BY_CLS.get(type(resource))
    if spec is None:
        raise TypeError(f"cannot encode {type(resource).__name__}")
    csip = _uses_csipaus(resource, spec)
    nsmap: dict[str | None, str] = {None: NS, "csipaus": CSIPAUS_NS} if csip else {None: NS}
    if _embeds(resource, spec):
        nsmap["xsi"] = XSI_NS
    w = _Writer(etree.Element(_q(spec.root, spec.ns), nsmap=nsmap))
    _write(w, resource, spec)
    # The same checks as on the way in: the gateway never writes what it would refuse to read.
    decode_element(w.el)
    return w.el


def encode(resource: AnyWalkResource) -> bytes:
    """The XML body of ``resource`` (UTF-8, with an XML declaration).

    Raises :class:`Sep2ValueError` for a value the decoder would refuse.
    """
    return _to_bytes(_Writer(encode_element(resource)))
