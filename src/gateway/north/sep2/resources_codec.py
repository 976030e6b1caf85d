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
/ ``ReactivePower`` (Int16 value, multiplier -9..9; ratings and settings not negative), UInt16
``setGradW``, ``PerCent`` 0..10000, ``DERType`` UInt8, bitmaps (HexBinary32 ``DERControlType``,
HexBinary8 ``ConnectStatusType`` and CSIP-AUS ``DOEControlType``) held as integers, and the
``{dateTime, value}`` status elements of ``DERStatus``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2.codec import (
    _LFDI_HEX_MAX,
    _MRID_HEX_MAX,
    _STRING32,
    _q,
    _Reader,
    _time,
    _to_bytes,
    _Writer,
)
from gateway.north.sep2.der_resources import (
    DER,
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
    ReactivePower,
    StateOfChargeStatusType,
)
from gateway.north.sep2.identity import PIN_MAX, SFDI_MAX
from gateway.north.sep2.model import (
    INT16_MAX,
    INT16_MIN,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    PERCENT_MAX,
    UINT16_MAX,
    UINT32_MAX,
    ActivePower,
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

__all__ = ["decode", "decode_as", "decode_element", "encode"]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
SUBSCRIBABLE_MAX: Final = 3  # SubscribableType 0..3

AnyWalkResource = Resource | DERResource
R = TypeVar("R", bound=AnyWalkResource)

# Element kinds.
(_LINK, _LISTLINK, _TIME, _UINT32, _UINT8, _INT32, _BOOL, _HEX32, _LFDI, _SFDI, _PIN, _MRID) = (
    range(12)
)
_STR32, _VERSION = 12, 13
(_UINT16, _PERCENT, _HEX32_INT, _DOE) = range(14, 18)
# Kinds with element content, read and written by _STRUCT_READERS / _write_struct.
(_RATING, _POWER, _RPOWER, _CONNECT, _OPMODE, _INVERTER, _SOC) = range(18, 25)
_STRUCTS: Final = frozenset(range(18, 25))

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
        ("rtgMaxW", NS, _RATING, True),
        ("type", NS, _UINT8, True),
        ("doeModesSupported", CSIPAUS_NS, _DOE, True),  # CSIP-AUS: required, after 2030.5's
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
        ("setMaxW", NS, _RATING, True),
        ("updatedTime", NS, _TIME, True),
        ("doeModesEnabled", CSIPAUS_NS, _DOE, False),
    ),
)
_DERSTAT = _Spec(
    "DERStatus",
    DERStatus,
    ("href", "subscribable"),
    (
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
)
_BY_ROOT: Final = {s.root: s for s in _SPECS}
_BY_CLS: Final = {s.cls: s for s in _SPECS}
ROOTS: Final = frozenset(_BY_ROOT)

# ------------------------------------------------------------------------------ decoding


def _conv(r: _Reader, kind: int) -> Callable[[str, str], Any]:
    convs: dict[int, Callable[[], Callable[[str, str], Any]]] = {
        _TIME: lambda: _time(r),
        _UINT32: lambda: r.integer(0, UINT32_MAX, "UInt32"),
        _UINT8: lambda: r.integer(0, 255, "UInt8"),
        _INT32: lambda: r.integer(INT32_MIN, INT32_MAX, "Int32 seconds"),
        _BOOL: lambda: r.boolean,
        _HEX32: lambda: r.hexbin(8, "HexBinary32"),
        _LFDI: lambda: r.hexbin(_LFDI_HEX_MAX, "HexBinary160"),
        _SFDI: lambda: r.integer(0, SFDI_MAX, "SFDIType"),
        _PIN: lambda: r.integer(0, PIN_MAX, "PINType"),
        _MRID: lambda: r.hexbin(_MRID_HEX_MAX, "mRIDType (HexBinary128)"),
        _STR32: lambda: r.string(_STRING32),
        _VERSION: lambda: r.integer(0, UINT16_MAX, "VersionType"),
        _UINT16: lambda: r.integer(0, UINT16_MAX, "UInt16"),
        _PERCENT: lambda: r.integer(0, PERCENT_MAX, "PerCent"),
        _HEX32_INT: lambda: _hex_int(r, 8, "HexBinary32", int),
        _DOE: lambda: _hex_int(r, 2, "DOEControlType (HexBinary8)", DOEModes),
    }
    return convs[kind]()


def _hex_int(
    r: _Reader, digits: int, what: str, cls: Callable[[int], Any]
) -> Callable[[str, str], Any]:
    text = r.hexbin(digits, what)
    return lambda name, raw: cls(int(text(name, raw), 16))


def _power(r: _Reader, name: str, ns: str, kind: int) -> ActivePower | ReactivePower | None:
    sub = r.sub(name, ns)
    if sub is None:
        return None
    multiplier = sub.need("multiplier", sub.integer(MULTIPLIER_MIN, MULTIPLIER_MAX, "Int8 -9..9"))
    value = sub.need("value", sub.integer(INT16_MIN, INT16_MAX, "Int16"))
    if kind == _RATING and value < 0:
        raise sub.fail("value", value, "a rating or setting must not be negative")
    if kind == _RPOWER:
        return ReactivePower(value=value, multiplier=multiplier)
    return ActivePower(value=value, multiplier=multiplier)


_StatusCls = (
    type[ConnectStatusType]
    | type[OperationalModeStatusType]
    | type[InverterStatusType]
    | type[StateOfChargeStatusType]
)
_STATUS: Final[dict[int, tuple[_StatusCls, Callable[[_Reader], Callable[[str, str], Any]]]]] = {
    _CONNECT: (ConnectStatusType, lambda r: _hex_int(r, 2, "HexBinary8", ConnectStatus)),
    _OPMODE: (OperationalModeStatusType, lambda r: r.integer(0, 255, "UInt8")),
    _INVERTER: (InverterStatusType, lambda r: r.integer(0, 255, "UInt8")),
    _SOC: (StateOfChargeStatusType, lambda r: r.integer(0, PERCENT_MAX, "PerCent")),
}


def _struct(r: _Reader, name: str, ns: str, kind: int) -> Any:
    if kind in {_RATING, _POWER, _RPOWER}:
        return _power(r, name, ns, kind)
    sub = r.sub(name, ns)
    if sub is None:
        return None
    cls, conv = _STATUS[kind]
    return cls(dateTime=sub.need("dateTime", _time(sub)), value=sub.need("value", conv(sub)))


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
        elif kind in _STRUCTS:
            values[name] = _struct(r, name, ns, kind)
            if required and values[name] is None:
                raise r.fail(name, None, "is required")
        elif required:
            values[name] = r.need(name, _conv(r, kind), ns)
        else:
            values[name] = r.opt(name, _conv(r, kind), ns)
    if spec.item is not None:
        item = spec.item
        if values["all"] is None or values["results"] is None:
            raise r.fail("@all/@results", None, "are required")
        items = tuple(
            _read(_Reader(el, f"{r.path}/{item.root}[{i}]"), item)
            for i, el in enumerate(r.el.findall(_q(item.root)))
        )
        if values["results"] != len(items):
            raise r.fail("@results", values["results"], f"but the list holds {len(items)} items")
        if values["results"] > values["all"]:
            raise r.fail("@results", values["results"], f"is more than @all ({values['all']})")
        values[item.root] = items
    return spec.cls(**values)


def decode_element(root: Any) -> AnyWalkResource:
    """The resource an already parsed (hardened) root element holds."""
    name = etree.QName(root).localname
    spec = _BY_ROOT.get(name)
    if spec is None or etree.QName(root).namespace != NS:
        raise Sep2ParseError(f"unsupported resource {name}; expected one of {', '.join(ROOTS)}")
    result: AnyWalkResource = _read(_Reader(root, name), spec)
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
    if name != spec.root or etree.QName(root).namespace != NS:
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
        elif kind in _STRUCTS:
            _write_struct(w, name, value)
        elif kind == _HEX32_INT:
            w.add(name, _hex(value, 8), ns)
        elif kind == _DOE:
            w.add(name, _hex(value, 2), ns)
        else:
            w.add(name, value, ns)
    if spec.item is not None:
        for item in getattr(resource, spec.item.root):
            _write(w.node(spec.item.root), item, spec.item)


def _hex(value: int, digits: int) -> str:
    # Out of range stays visible (and is refused by the decoder's check): no silent truncation.
    return f"{int(value):0{digits}X}" if int(value) >= 0 else str(int(value))


def _write_struct(w: _Writer, name: str, value: Any) -> None:
    sub = w.node(name)
    if isinstance(value, ActivePower | ReactivePower):
        sub.add("multiplier", value.multiplier)
        sub.add("value", value.value)
    else:
        sub.add("dateTime", value.dateTime)
        is_hex = isinstance(value, ConnectStatusType)
        sub.add("value", _hex(value.value, 2) if is_hex else int(value.value))


def encode(resource: AnyWalkResource) -> bytes:
    """The XML body of ``resource`` (UTF-8, with an XML declaration).

    Raises :class:`Sep2ValueError` for a value the decoder would refuse.
    """
    spec = _BY_CLS.get(type(resource))
    if spec is None:
        raise TypeError(f"cannot encode {type(resource).__name__}")
    csip = _uses_csipaus(resource, spec)
    nsmap = {None: NS, "csipaus": CSIPAUS_NS} if csip else {None: NS}
    w = _Writer(etree.Element(_q(spec.root), nsmap=nsmap))
    _write(w, resource, spec)
    # The same checks as on the way in: the gateway never writes what it would refuse to read.
    decode_element(w.el)
    return _to_bytes(w)
