"""Read and write the resources of :mod:`gateway.north.sep2.model` (sans-I/O: bytes <-> values).

``decode(body)`` parses with the hardened parser of :mod:`gateway.north.sep2.xml` and returns
the resource the root element names; ``encode(resource)`` writes it back with elements in
schema order, 2030.5 elements in the default namespace and CSIP-AUS modes (``csipaus:``) after
every 2030.5 element of ``DERControlBase``, as the CSIP-AUS schema's extension requires.
Encoding runs the decoder's checks on what it built, so both directions accept the same values.
Decoding does not enforce element *order* (the schema does; the tests validate every encoded
body against it): a body in the wrong order is read, not refused.

Decoding checks every range the model documents and raises :class:`Sep2ValueError` naming the
element path and the value: Int16/UInt16/UInt32/UInt8 bounds, multiplier -9..9, PerCent
0..10000, SignedPerCent -10000..10000, randomisation -3600..3600 s, negative CSIP-AUS limits
(the ``ActivePower`` type is signed but a limit is a magnitude), a duration over a year, hex
identifiers. Unknown elements outside ``DERControlBase`` are ignored (the 2023 ``*_r2_3``
extensions); unknown modes inside it are listed in
``DERControlBase.unsupported`` so that they are reported rather than dropped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2.der_resources import DER_RESOURCE_TYPES, DERResource
from gateway.north.sep2.metering import METERING_TYPES, MeteringResource
from gateway.north.sep2.model import (
    INT16_MAX,
    INT16_MIN,
    MULTIPLIER_MAX,
    MULTIPLIER_MIN,
    ONE_HOUR_S,
    ONE_YEAR_S,
    PERCENT_MAX,
    UINT16_MAX,
    UINT32_MAX,
    ActivePower,
    DateTimeInterval,
    DefaultDERControl,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
    Resource,
    Response,
    Sep2ValueError,
)
from gateway.north.sep2.pubsub import PUBSUB_TYPES, PubSubResource
from gateway.north.sep2.resources import RESOURCE_TYPES
from gateway.north.sep2.resources import Resource as WalkResource
from gateway.north.sep2.xml import CSIPAUS_NS, MAX_BODY_BYTES, NS, Sep2ParseError, parse

__all__ = [
    "AnyResource",
    "Sep2ParseError",
    "Sep2ValueError",
    "decode",
    "decode_element",
    "encode",
    "encode_element",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_INT = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_MAX_INT_DIGITS: Final = 20
_MRID_HEX_MAX: Final = 32  # mRIDType = HexBinary128
_LFDI_HEX_MAX: Final = 40  # HexBinary160
_STRING32: Final = 32
_STRING192: Final = 192

# DERControlBase: (local name, namespace, kind) in schema order. 2018 order with the two 2023
# permits at their 2023 positions, then the CSIP-AUS 1.2 extension, then v1.3-beta storage.
_BOOL, _PERCENT, _SIGNED_PERCENT, _POWER, _LIMIT, _UINT16 = range(6)
_BASE_FIELDS: Final[tuple[tuple[str, str, int], ...]] = (
    ("opModConnect", NS, _BOOL),
    ("opModEnergize", NS, _BOOL),
    ("opModFixedW", NS, _SIGNED_PERCENT),
    ("opModGridConnectPermit", NS, _BOOL),
    ("opModIslandPermit", NS, _BOOL),
    ("opModMaxLimW", NS, _PERCENT),
    ("opModTargetW", NS, _POWER),
    ("rampTms", NS, _UINT16),
    ("opModImpLimW", CSIPAUS_NS, _LIMIT),
    ("opModExpLimW", CSIPAUS_NS, _LIMIT),
    ("opModGenLimW", CSIPAUS_NS, _LIMIT),
    ("opModLoadLimW", CSIPAUS_NS, _LIMIT),
    ("opModStorageTargetW", CSIPAUS_NS, _POWER),
)
_DEFAULT_SETTINGS: Final = (
    ("setESDelay", UINT32_MAX),
    ("setESRampTms", UINT32_MAX),
    ("setESRandomDelay", UINT32_MAX),
    ("setGradW", UINT16_MAX),
    ("setSoftGradW", UINT16_MAX),
)

T = TypeVar("T")
# Everything decode/encode take: the DERControl family here, the resources the client walks to
# reach it, reports and subscribes with in :mod:`gateway.north.sep2.resources_codec` (imported
# lazily: it builds on this module).
AnyResource = Resource | WalkResource | DERResource | MeteringResource | PubSubResource
_TABLE_TYPES: Final = (*RESOURCE_TYPES, *DER_RESOURCE_TYPES, *METERING_TYPES, *PUBSUB_TYPES)


def _q(name: str, ns: str = NS) -> str:
    return f"{{{ns}}}{name}"


# ------------------------------------------------------------------------------ decoding


_Conv = Callable[["_Reader", str, str], T]  # (reader, element name, text) -> value
_DUPLICATE: Final = object()  # in a child index: that tag occurs more than once


class _Reader:
    """Typed access to one element's children; errors carry the path and the event's mRID.

    The children are indexed by tag once, on first use: a ``findall()`` per field looked up was
    most of the decode time (a DERControl reads about 40 fields). The path is built only when
    an error needs it.
    """

    __slots__ = ("_index", "_name", "_parent", "el", "mrid")

    def __init__(
        self, el: Any, name: str, mrid: str | None = None, parent: _Reader | None = None
    ) -> None:
        self.el = el
        self._name = name
        self._parent = parent
        self.mrid = mrid
        self._index: dict[Any, Any] | None = None

    @property
    def path(self) -> str:
        return self._name if self._parent is None else f"{self._parent.path}/{self._name}"

    def fail(self, name: str, value: object, reason: str) -> Sep2ValueError:
        return Sep2ValueError(f"{self.path}/{name}", value, reason, self.mrid)

    def _build_index(self) -> dict[Any, Any]:
        index = {child.tag: child for child in self.el}
        if len(index) != len(self.el):  # a repeated tag: only an error if that field is read
            seen: set[Any] = set()
            for child in self.el:
                if child.tag in seen:
                    index[child.tag] = _DUPLICATE
                seen.add(child.tag)
        self._index = index
        return index

    def children(self) -> dict[Any, Any]:
        """The children by tag (a repeated tag maps to ``_DUPLICATE``), in document order."""
        return self._build_index() if self._index is None else self._index

    def tags(self) -> list[Any]:
        """The children's tags in document order, repeats included."""
        index = self.children()
        return list(index) if len(index) == len(self.el) else [child.tag for child in self.el]

    def _repeated(self, name: str, ns: str) -> Sep2ValueError:
        count = len(self.el.findall(_q(name, ns)))
        return self.fail(name, f"{count} elements", "may occur at most once")

    def child(self, name: str, ns: str = NS) -> Any | None:
        index = self._build_index() if self._index is None else self._index
        found = index.get(f"{{{ns}}}{name}")  # _q() inlined, as in text()
        if found is _DUPLICATE:
            raise self._repeated(name, ns)
        return found

    def sub(self, name: str, ns: str = NS) -> _Reader | None:
        el = self.child(name, ns)
        return None if el is None else _Reader(el, name, self.mrid, self)

    def need_sub(self, name: str, ns: str = NS) -> _Reader:
        r = self.sub(name, ns)
        if r is None:
            raise self.fail(name, None, "is required")
        return r

    def text(self, name: str, ns: str = NS) -> str | None:
        # child() inlined: text() runs once per simple field, the hottest path of decoding.
        index = self._build_index() if self._index is None else self._index
        el = index.get(f"{{{ns}}}{name}")
        if el is None:
            return None
        if el is _DUPLICATE:
            raise self._repeated(name, ns)
        if len(el):
            raise self.fail(name, "<element content>", "must be a simple value")
        return (el.text or "").strip()

    def opt(self, name: str, conv: _Conv[T], ns: str = NS) -> T | None:
        raw = self.text(name, ns)
        return None if raw is None else conv(self, name, raw)

    def need(self, name: str, conv: _Conv[T], ns: str = NS) -> T:
        raw = self.text(name, ns)
        if raw is None:
            raise self.fail(name, None, "is required")
        return conv(self, name, raw)

    def attr_int(self, name: str, lo: int, hi: int, what: str) -> int | None:
        raw = self.el.get(name)
        if raw is None:
            return None
        return _integer(lo, hi, what)(self, f"@{name}", raw.strip())


# Converters are built once (cached; the common ones at import), not per field read as they
# were: they take the reader to report errors with.
@functools.cache
def _integer(lo: int, hi: int, what: str) -> _Conv[int]:
    def conv(r: _Reader, name: str, raw: str) -> int:
        # Plain ASCII digits that fit are what servers send: skip the regex for them (the same
        # values pass both ways: str.isdigit alone would take other scripts' digits).
        if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_INT_DIGITS):
            if not _INT.fullmatch(raw):
                raise r.fail(name, raw, f"must be an integer ({what})")
            # Every 2030.5 integer fits 20 digits; CPython refuses int() of >4300 digits.
            if len(raw.lstrip("+-").lstrip("0")) > _MAX_INT_DIGITS:
                raise r.fail(name, raw[:40] + "...", f"is outside {what} ({lo}..{hi})")
        v = int(raw)
        if not lo <= v <= hi:
            raise r.fail(name, raw, f"is outside {what} ({lo}..{hi})")
        return v

    return conv


def _as_boolean(r: _Reader, name: str, raw: str) -> bool:
    if raw in {"true", "1"}:
        return True
    if raw in {"false", "0"}:
        return False
    raise r.fail(name, raw, "must be true or false")


@functools.cache
def _hexbin(max_digits: int, what: str) -> _Conv[str]:
    def conv(r: _Reader, name: str, raw: str) -> str:
        if not _HEX.fullmatch(raw) or len(raw) % 2 or len(raw) > max_digits:
            raise r.fail(name, raw, f"must be {what} (even count of hex digits)")
        return raw.upper()

    return conv


@functools.cache
def _string(max_len: int) -> _Conv[str]:
    def conv(r: _Reader, name: str, raw: str) -> str:
        if len(raw.encode()) > max_len:
            raise r.fail(name, raw, f"is longer than {max_len} bytes")
        return raw

    return conv


_AS_TIME: Final = _integer(INT64_MIN, INT64_MAX, "TimeType")
_AS_UINT8: Final = _integer(0, 255, "UInt8")
_AS_UINT16: Final = _integer(0, UINT16_MAX, "UInt16")
_AS_VERSION: Final = _integer(0, UINT16_MAX, "VersionType")
_AS_MULTIPLIER: Final = _integer(MULTIPLIER_MIN, MULTIPLIER_MAX, "Int8 -9..9")
_AS_INT16: Final = _integer(INT16_MIN, INT16_MAX, "Int16")
_AS_MRID: Final = _hexbin(_MRID_HEX_MAX, "mRIDType (HexBinary128)")
_AS_LFDI: Final = _hexbin(_LFDI_HEX_MAX, "HexBinary160")
_AS_HEX32: Final = _hexbin(8, "HexBinary32")
_AS_STR32: Final = _string(_STRING32)
_AS_STR192: Final = _string(_STRING192)
_AS_PERCENT: Final = _integer(0, PERCENT_MAX, "PerCent, hundredths")
_AS_SIGNED_PERCENT: Final = _integer(-PERCENT_MAX, PERCENT_MAX, "SignedPerCent, hundredths")
_AS_EVENT_STATUS: Final = _integer(0, 4, "EventStatus 0..4")
_AS_DURATION: Final = _integer(0, UINT32_MAX, "UInt32 seconds")
_AS_ONE_HOUR: Final = _integer(-ONE_HOUR_S, ONE_HOUR_S, "OneHourRangeType")


def _active_power(r: _Reader, name: str, ns: str, *, limit: bool) -> ActivePower | None:
    sub = r.sub(name, ns)
    if sub is None:
        return None
    multiplier = sub.need("multiplier", _AS_MULTIPLIER)
    value = sub.need("value", _AS_INT16)
    if limit and value < 0:
        raise sub.fail("value", value, "a CSIP-AUS limit must not be negative")
    return ActivePower(value=value, multiplier=multiplier)


_MODE_CONVS: Final[dict[int, _Conv[Any]]] = {
    _BOOL: _as_boolean,
    _PERCENT: _AS_PERCENT,
    _SIGNED_PERCENT: _AS_SIGNED_PERCENT,
    _UINT16: _AS_UINT16,
}
_BASE_TAGS: Final = tuple((name, ns, kind, _q(name, ns)) for name, ns, kind in _BASE_FIELDS)
_KNOWN_BASE_TAGS: Final = frozenset(tag for *_, tag in _BASE_TAGS)


def _base(r: _Reader) -> DERControlBase:
    values: dict[str, Any] = {}  # absent modes keep the dataclass default, None
    present = r.children()
    for name, ns, kind, tag in _BASE_TAGS:
        if tag not in present:  # most of the 13 modes are absent: skip the reader's lookups
            continue
        if kind in {_POWER, _LIMIT}:
            values[name] = _active_power(r, name, ns, limit=kind == _LIMIT)
        else:
            values[name] = r.opt(name, _MODE_CONVS[kind], ns)
    unsupported: list[str] = []
    for tag in r.tags():
        if not isinstance(tag, str) or tag in _KNOWN_BASE_TAGS:
            continue
        q = etree.QName(tag)
        prefix = "csipaus:" if q.namespace == CSIPAUS_NS else ""
        if q.namespace not in {NS, CSIPAUS_NS}:
            prefix = f"{{{q.namespace}}}"
        unsupported.append(prefix + q.localname)
    return DERControlBase(**values, unsupported=tuple(unsupported))


def _event_status(r: _Reader) -> EventStatus:
    return EventStatus(
        currentStatus=r.need("currentStatus", _AS_EVENT_STATUS),
        dateTime=r.need("dateTime", _AS_TIME),
        potentiallySuperseded=r.need("potentiallySuperseded", _as_boolean),
        potentiallySupersededTime=r.opt("potentiallySupersededTime", _AS_TIME),
        reason=r.opt("reason", _AS_STR192),
    )


def _interval(r: _Reader) -> DateTimeInterval:
    duration = r.need("duration", _AS_DURATION)
    if duration > ONE_YEAR_S:
        raise r.fail("duration", duration, f"is longer than a year ({ONE_YEAR_S} s)")
    return DateTimeInterval(duration=duration, start=r.need("start", _AS_TIME))


def _der_control(r: _Reader) -> DERControl:
    mrid = r.need("mRID", _AS_MRID)
    r.mrid = mrid
    rr = r.el.get("responseRequired")
    if rr is not None:
        rr = rr.strip()
        if not _HEX.fullmatch(rr) or len(rr) > 2:
            raise r.fail("@responseRequired", rr, "must be HexBinary8")
    return DERControl(
        mRID=mrid,
        description=r.opt("description", _AS_STR32),
        version=r.opt("version", _AS_VERSION),
        creationTime=r.need("creationTime", _AS_TIME),
        EventStatus=_event_status(r.need_sub("EventStatus")),
        interval=_interval(r.need_sub("interval")),
        randomizeDuration=r.opt("randomizeDuration", _AS_ONE_HOUR),
        randomizeStart=r.opt("randomizeStart", _AS_ONE_HOUR),
        DERControlBase=_base(r.need_sub("DERControlBase")),
        deviceCategory=r.opt("deviceCategory", _AS_HEX32),
        href=r.el.get("href"),
        replyTo=r.el.get("replyTo"),
        responseRequired=None if rr is None else int(rr, 16),
    )


def _list(r: _Reader) -> DERControlList:
    all_ = r.attr_int("all", 0, UINT32_MAX, "UInt32")
    results = r.attr_int("results", 0, UINT32_MAX, "UInt32")
    if all_ is None or results is None:
        raise r.fail("@all/@results", None, "are required")
    items = tuple(
        _der_control(_Reader(el, f"DERControl[{i}]", parent=r))
        for i, el in enumerate(r.el.findall(_q("DERControl")))
    )
    if results != len(items):
        raise r.fail("@results", results, f"but the list holds {len(items)} DERControl")
    return DERControlList(
        all=all_,
        results=results,
        DERControl=items,
        href=r.el.get("href"),
        subscribable=r.attr_int("subscribable", 0, 3, "SubscribableType"),
    )


_SETTINGS_CONVS: Final = tuple(
    (name, _integer(0, hi, "unsigned")) for name, hi in _DEFAULT_SETTINGS
)


def _default(r: _Reader) -> DefaultDERControl:
    mrid = r.need("mRID", _AS_MRID)
    r.mrid = mrid
    settings = {name: r.opt(name, conv) for name, conv in _SETTINGS_CONVS}
    return DefaultDERControl(
        mRID=mrid,
        description=r.opt("description", _AS_STR32),
        version=r.opt("version", _AS_VERSION),
        DERControlBase=_base(r.need_sub("DERControlBase")),
        href=r.el.get("href"),
        subscribable=r.attr_int("subscribable", 0, 3, "SubscribableType"),
        **settings,
    )


def _response(r: _Reader) -> Response:
    return Response(
        createdDateTime=r.opt("createdDateTime", _AS_TIME),
        endDeviceLFDI=r.need("endDeviceLFDI", _AS_LFDI),
        status=r.opt("status", _AS_UINT8),
        subject=r.need("subject", _AS_MRID),
        href=r.el.get("href"),
    )


_DECODERS: Final[dict[str, Callable[[_Reader], Resource]]] = {
    "DERControl": _der_control,
    "DERControlList": _list,
    "DefaultDERControl": _default,
    "Response": _response,
}
DECODED_ROOTS: Final = frozenset(_DECODERS)  # the roots read here (the rest: resources_codec)


def decode_element(root: Any) -> AnyResource:
    """The resource an already parsed (hardened) root element holds."""
    from gateway.north.sep2 import resources_codec

    name = etree.QName(root).localname
    decoder = _DECODERS.get(name)
    qname = (etree.QName(root).namespace, name)
    if decoder is None and qname in resources_codec.QROOTS:
        return resources_codec.decode_element(root)
    if decoder is None or etree.QName(root).namespace != NS:
        known = ", ".join([*_DECODERS, *sorted(resources_codec.ROOTS)])
        raise Sep2ParseError(f"unsupported resource {name}; expected one of {known}")
    return decoder(_Reader(root, name))


def decode(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> AnyResource:
    """Parse and decode one body.

    Raises :class:`Sep2ParseError` for anything malformed or hostile and its subclass
    :class:`Sep2ValueError` for a value out of range.
    """
    return decode_element(parse(body, max_bytes=max_bytes))


# ------------------------------------------------------------------------------ encoding


class _Writer:
    def __init__(self, el: Any) -> None:
        self.el = el

    def add(self, name: str, value: object, ns: str = NS) -> None:
        if value is None:
            return
        sub = etree.SubElement(self.el, _q(name, ns))
        if isinstance(value, bool):
            sub.text = "true" if value else "false"
        elif isinstance(value, ActivePower):
            etree.SubElement(sub, _q("multiplier")).text = str(value.multiplier)
            etree.SubElement(sub, _q("value")).text = str(value.value)
        else:
            sub.text = str(value)

    def node(self, name: str) -> _Writer:
        return _Writer(etree.SubElement(self.el, _q(name)))

    def attr(self, name: str, value: object) -> None:
        if value is not None:
            self.el.set(name, str(value))


def _new_root(name: str, *, csipaus: bool) -> _Writer:
    nsmap = {None: NS, "csipaus": CSIPAUS_NS} if csipaus else {None: NS}
    return _Writer(etree.Element(_q(name), nsmap=nsmap))


def _uses_csipaus(base: DERControlBase) -> bool:
    return any(getattr(base, n) is not None for n, ns, _ in _BASE_FIELDS if ns == CSIPAUS_NS)


def _write_base(w: _Writer, base: DERControlBase) -> None:
    b = w.node("DERControlBase")
    for name, ns, _ in _BASE_FIELDS:
        b.add(name, getattr(base, name), ns)


def _write_der_control(w: _Writer, c: DERControl) -> None:
    w.attr("href", c.href)
    w.attr("replyTo", c.replyTo)
    if c.responseRequired is not None:
        w.attr("responseRequired", f"{c.responseRequired:02X}")
    w.add("mRID", c.mRID)
    w.add("description", c.description)
    w.add("version", c.version)
    w.add("creationTime", c.creationTime)
    s = w.node("EventStatus")
    s.add("currentStatus", c.EventStatus.currentStatus)
    s.add("dateTime", c.EventStatus.dateTime)
    s.add("potentiallySuperseded", c.EventStatus.potentiallySuperseded)
    s.add("potentiallySupersededTime", c.EventStatus.potentiallySupersededTime)
    s.add("reason", c.EventStatus.reason)
    i = w.node("interval")
    i.add("duration", c.interval.duration)
    i.add("start", c.interval.start)
    w.add("randomizeDuration", c.randomizeDuration)
    w.add("randomizeStart", c.randomizeStart)
    _write_base(w, c.DERControlBase)
    w.add("deviceCategory", c.deviceCategory)


def _to_bytes(w: _Writer) -> bytes:
    out: bytes = etree.tostring(w.el, xml_declaration=True, encoding="UTF-8")
    return out


def encode(resource: AnyResource) -> bytes:
    """The XML body of ``resource`` (UTF-8, with an XML declaration).

    Raises :class:`Sep2ValueError` for a value the decoder would refuse (an Int16 overflow, a
    negative CSIP-AUS limit, an mRID that is not hex, ...). ``DERControlBase.unsupported`` is
    not written (the model does not hold those modes' content).
    """
    return _to_bytes(_Writer(encode_element(resource)))


def encode_element(resource: AnyResource) -> Any:
    """``resource`` as an lxml element (what :func:`encode` serialises), checked the same way."""
    if isinstance(resource, _TABLE_TYPES):
        from gateway.north.sep2 import resources_codec

        return resources_codec.encode_element(resource)
    if isinstance(resource, DERControl):
        w = _new_root("DERControl", csipaus=_uses_csipaus(resource.DERControlBase))
        _write_der_control(w, resource)
    elif isinstance(resource, DERControlList):
        csip = any(_uses_csipaus(c.DERControlBase) for c in resource.DERControl)
        w = _new_root("DERControlList", csipaus=csip)
        w.attr("href", resource.href)
        w.attr("subscribable", resource.subscribable)
        w.attr("all", resource.all)
        w.attr("results", resource.results)
        for c in resource.DERControl:
            _write_der_control(w.node("DERControl"), c)
    elif isinstance(resource, DefaultDERControl):
        w = _new_root("DefaultDERControl", csipaus=_uses_csipaus(resource.DERControlBase))
        w.attr("href", resource.href)
        w.attr("subscribable", resource.subscribable)
        w.add("mRID", resource.mRID)
        w.add("description", resource.description)
        w.add("version", resource.version)
        _write_base(w, resource.DERControlBase)
        for name, _ in _DEFAULT_SETTINGS:
            w.add(name, getattr(resource, name))
    elif isinstance(resource, Response):
        w = _new_root("Response", csipaus=False)
        w.attr("href", resource.href)
        w.add("createdDateTime", resource.createdDateTime)
        w.add("endDeviceLFDI", resource.endDeviceLFDI)
        w.add("status", resource.status)
        w.add("subject", resource.subject)
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(f"cannot encode {type(resource).__name__}")
    # The same checks as on the way in: the gateway never writes what it would refuse to read.
    decode_element(w.el)
    return w.el
