"""The 2030.5 discovery walk as a generator (sans-I/O; ARCHITECTURE.md principle 2).

:func:`discover` yields :class:`Request` values and is sent a :class:`Reply` for each; it returns
a :class:`Discovery`. The shell performs the HTTP (resolving the server's hrefs, which may be
relative, against its base URL, and following redirects); tests drive it with stored bodies::

    walk = discover("/dcap", lfdi=LFDI, pin=111115)
    request = next(walk)
    while True:
        try:
            request = walk.send(perform(request))
        except StopIteration as done:
            discovery = done.value
            break

The walk: ``DeviceCapability`` (and ``Time`` when linked) -> ``EndDeviceList`` (paged) until the
``EndDevice`` whose ``lFDI`` is ours -> its ``Registration`` (PIN check; sep2.md §5.1: ALL-03-REJ
rejects a wrong PIN, ALL-05 proceeds without a ``RegistrationLink``) ->
``FunctionSetAssignmentsList`` (paged) -> each FSA's ``DERProgramList`` (paged) -> each program's
``DefaultDERControl`` (404 means none) and ``DERControlList`` (paged). Lists are read with
``?s=<start>&l=<page_size>`` until ``all`` items are held. Nothing is kept between walks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.core import errors
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import DER, DERList
from gateway.north.sep2.identity import parse_lfdi
from gateway.north.sep2.model import DefaultDERControl, DERControl, DERControlList
from gateway.north.sep2.resources import (
    DERProgram,
    DERProgramList,
    DeviceCapability,
    EndDevice,
    EndDeviceList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
    Registration,
    Time,
)
from gateway.north.sep2.xml import NS, Sep2ParseError, parse

__all__ = [
    "DiscoveryError",
    "Discovery",
    "NotRegisteredError",
    "ProgramView",
    "RegistrationError",
    "Reply",
    "Request",
    "RetryableWalkError",
    "Walk",
    "WalkError",
    "discover",
    "find_der",
    "poll_program",
    "read",
    "retry_after",
]

DEFAULT_PAGE_SIZE: Final = 32
# SubscribableType: 0 none (the XSD's default, so an absent attribute says no), 1
# non-conditional, 2 conditional only, 3 both. The gateway subscribes without a Condition.
NON_CONDITIONAL: Final = frozenset({1, 3})
HTTP_NOT_FOUND: Final = 404
HTTP_CONFLICT: Final = 409
HTTP_TOO_MANY_REQUESTS: Final = 429
_HTTP_OK_MIN, _HTTP_OK_MAX, _HTTP_SERVER_ERROR = 200, 299, 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request for the shell to perform; ``href`` exactly as the server gave it."""

    method: str
    href: str
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The shell's answer to a :class:`Request`."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnreadableControl:
    """A ``DERControl`` in a list that did not decode (a negative limit, an Int16 overflow...):
    what could be read of it, so that it can be answered 253 instead of hiding its list."""

    mRID: str | None  # noqa: N815 - the element's name; None: unreadable, nothing to answer
    replyTo: str | None  # noqa: N815
    responseRequired: int  # noqa: N815
    reason: str


@dataclass(frozen=True, slots=True)
class ProgramView:
    """A ``DERProgram`` with its default control (None when it has none) and its events."""

    program: DERProgram
    default: DefaultDERControl | None
    controls: tuple[DERControl, ...]
    list_href: str | None = None  # the DERProgramList it was found in (its pollRate applies)
    unreadable: tuple[UnreadableControl, ...] = ()


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one walk found.

    ``poll_rates`` maps the href of each resource that carried a ``pollRate`` to its value in
    seconds (list hrefs without the paging query); a resource absent from it is polled at the
    schema default, :data:`gateway.north.sep2.resources.DEFAULT_POLL_RATE_S`.

    ``subscription_list`` is where this EndDevice's Subscriptions go: its own
    SubscriptionListLink, or the one on the aggregator's own EndDevice (``subscriber``, its
    href) when the server links it only there; None: the server offers none. ``subscribable``
    holds the hrefs of the FSA lists, DERProgramLists, DERControlLists and DefaultDERControls
    whose ``subscribable`` attribute takes a non-conditional subscription (1 or 3).
    """

    dcap: DeviceCapability
    time: Time | None
    end_device: EndDevice
    registration: Registration | None
    fsas: tuple[FunctionSetAssignments, ...]
    programs: tuple[ProgramView, ...]
    poll_rates: Mapping[str, int]
    subscription_list: str | None = None
    subscriber: str | None = None
    subscribable: frozenset[str] = frozenset()
    # Our EndDevice is one we registered in band (this walk or, per the caller, before).
    registered_in_band: bool = False
    # After in-band registration: the PIN the server assigned when it is not the configured
    # one (to be reported to the installer, not held against the server); None: no mismatch.
    assigned_pin: int | None = None


class DiscoveryError(errors.ProtocolError):
    """Any failure of the walk."""


class WalkError(DiscoveryError):
    """A request failed (``status`` is the HTTP status) or its body did not decode (``status`` is
    the reply's, usually 200)."""

    def __init__(self, href: str, status: int, reason: str) -> None:
        self.href = href
        self.status = status
        self.reason = reason
        super().__init__(f"GET {href}: {status} {reason}")


class RetryableWalkError(WalkError):
    """429 or 5xx: try the walk again later (after ``retry_after_s`` when the server said)."""

    def __init__(self, href: str, status: int, reason: str, retry_after_s: int | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(href, status, reason)


class RegistrationError(DiscoveryError):
    """The server's ``Registration`` does not match ours (cactus ALL-03-REJ)."""


class NotRegisteredError(DiscoveryError):
    """No ``EndDevice`` in the server's ``EndDeviceList`` carries our LFDI."""


#: The walk: yields requests, is sent their replies, returns the :class:`Discovery`.
Walk = Generator[Request, Reply, Discovery]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def retry_after(headers: Mapping[str, str]) -> int | None:
    """The delay-seconds form of Retry-After; an HTTP-date needs a clock, so the shell's job."""
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _check_status(href: str, reply: Reply) -> None:
    status = reply.status
    if _HTTP_OK_MIN <= status <= _HTTP_OK_MAX:
        return
    if status == HTTP_TOO_MANY_REQUESTS or status >= _HTTP_SERVER_ERROR:
        reason = "too many requests" if status == HTTP_TOO_MANY_REQUESTS else "server error"
        raise RetryableWalkError(href, status, reason, retry_after(reply.headers))
    raise WalkError(href, status, "not found" if status == HTTP_NOT_FOUND else "request failed")


def _decode(href: str, reply: Reply, cls: type[T]) -> T:
    try:
        resource = codec.decode(reply.body)
    except Sep2ParseError as e:
        raise WalkError(href, reply.status, f"undecodable {cls.__name__} body: {e}") from e
    if not isinstance(resource, cls):
        got = type(resource).__name__
        raise WalkError(href, reply.status, f"expected a {cls.__name__}, got a {got}")
    return resource


def read(href: str, reply: Reply, cls: type[T]) -> T:
    """The ``cls`` a GET of ``href`` answered, or the walk's errors (retryable for 429/5xx)."""
    _check_status(href, reply)
    return _decode(href, reply, cls)


def _get(href: str, cls: type[T]) -> Generator[Request, Reply, T]:
    reply = yield Request("GET", href)
    return read(href, reply, cls)


def _paged_href(href: str, start: int, limit: int) -> str:
    return f"{href}{'&' if '?' in href else '?'}s={start}&l={limit}"


_ListT = TypeVar(
    "_ListT", EndDeviceList, FunctionSetAssignmentsList, DERProgramList, DERControlList
)


def _items(page: _ListT) -> tuple[object, ...]:
    if isinstance(page, EndDeviceList):
        return page.EndDevice
    if isinstance(page, FunctionSetAssignmentsList):
        return page.FunctionSetAssignments
    if isinstance(page, DERProgramList):
        return page.DERProgram
    return page.DERControl


def _pages(
    href: str,
    cls: type[_ListT],
    page_size: int,
    poll_rates: dict[str, int],
    subscribable: set[str] | None = None,
) -> Generator[Request, Reply, list[_ListT]]:
    """Every page of the list at ``href``, until ``all`` items are read (or a page is empty);
    ``href`` joins ``subscribable`` when its first page says it takes subscriptions."""
    pages: list[_ListT] = []
    start = 0
    while True:
        page = yield from _get(_paged_href(href, start, page_size), cls)
        if not pages and subscribable is not None:
            _note_subscribable(subscribable, href, getattr(page, "subscribable", None))
        pages.append(page)
        rate = getattr(page, "pollRate", None)
        if rate is not None:
            poll_rates[href] = rate
        count = len(_items(page))
        start += count
        # An empty page before ``all`` would loop for ever: stop with what was read.
        if count == 0 or start >= page.all:
            return pages


def _note_subscribable(found: set[str], href: str, value: int | None) -> None:
    if value in NON_CONDITIONAL:
        found.add(href)


def discover(
    dcap_href: str,
    *,
    lfdi: str,
    pin: int | None,
    page_size: int = DEFAULT_PAGE_SIZE,
    register: EndDevice | None = None,
    hint: str | None = None,
    aggregator: str | None = None,
    aggregator_hint: str | None = None,
    registered_in_band: bool = False,
    on_registered: Callable[[EndDevice], None] | None = None,
) -> Walk:
    """Walk from ``dcap_href`` to our EndDevice, its Registration, programs and controls.

    ``lfdi`` is ours (any case); ``pin`` the registration PIN with its check digit (None: not
    checked). ``register``: the EndDevice to POST to the EndDeviceList when ours is not there
    (in-band registration, ALL-02); None leaves registration to the utility (out of band, ALL-01).
    ``hint``: where our EndDevice was last time. It is read first and used only if it still
    holds our lFDI; anything else (404, another device, a bad body) falls back to searching the
    list. Without it an aggregator's N EndDevices each page through the list: N^2/2 decodes.
    ``aggregator``: the LFDI of the client certificate when it is not ours (an aggregator's);
    when our EndDevice links no SubscriptionList, the aggregator's own EndDevice (found at
    ``aggregator_hint`` or in the list) is asked for its one, where the reference CSIP-AUS
    server puts it (``Discovery.subscription_list``).
    ``registered_in_band``: our EndDevice is one we POSTed earlier (the caller remembers it);
    ``on_registered`` is called as soon as this walk's POST succeeded (before the rest of the
    walk, which may fail), so that the caller can remember it.
    The PIN is an out-of-band check that the utility registered *this* device (2030.5 §6.11,
    CSIP registration): it is held against a Registration the utility made out of band. A
    Registration the server made in answer to our own POST carries the server's PIN, which is
    reported (``Discovery.assigned_pin``), not compared.
    Raises :class:`WalkError` / :class:`RetryableWalkError` for a failed request or a
    bad body, :class:`NotRegisteredError` and :class:`RegistrationError` as named.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1; got {page_size}")
    ours = parse_lfdi(lfdi)
    poll_rates: dict[str, int] = {}

    def note(href: str, rate: int | None) -> None:
        if rate is not None:
            poll_rates[href] = rate

    dcap = yield from _get(dcap_href, DeviceCapability)
    note(dcap_href, dcap.pollRate)
    time: Time | None = None
    if dcap.TimeLink is not None:
        time = yield from _get(dcap.TimeLink.href, Time)
        note(dcap.TimeLink.href, time.pollRate)

    if dcap.EndDeviceListLink is None:
        raise NotRegisteredError(
            f"{dcap_href} has no EndDeviceListLink, so EndDevice {ours} can be neither "
            "found nor registered"
        )
    edev_href = dcap.EndDeviceListLink.href
    end_device = None
    if hint is not None:
        end_device = yield from _try_hint(hint, ours)
    if end_device is None:
        try:
            end_device = yield from _find_end_device(edev_href, ours, page_size, poll_rates)
        except NotRegisteredError:
            if register is None:
                raise
            end_device = yield from _register(edev_href, register)
            registered_in_band = True
            if on_registered is not None:
                on_registered(end_device)

    registration: Registration | None = None
    assigned_pin: int | None = None
    if end_device.RegistrationLink is not None:
        reg_href = end_device.RegistrationLink.href
        registration = yield from _get(reg_href, Registration)
        note(reg_href, registration.pollRate)
        if pin is not None and registration.pIN != pin and registered_in_band:
            assigned_pin = registration.pIN
        elif pin is not None and registration.pIN != pin:
            raise RegistrationError(
                f"registration PIN differs: expected {pin:06d}, {reg_href} has "
                f"{registration.pIN:06d}; not trusting this server (ALL-03-REJ)"
            )

    subscription_list = None
    subscriber = None
    if end_device.SubscriptionListLink is not None:
        subscription_list = end_device.SubscriptionListLink.href
    elif aggregator is not None and parse_lfdi(aggregator) != ours:
        own = yield from _aggregator_end_device(
            edev_href, parse_lfdi(aggregator), aggregator_hint, page_size, poll_rates
        )
        if own is not None and own.SubscriptionListLink is not None:
            subscription_list = own.SubscriptionListLink.href
            subscriber = own.href

    subscribable: set[str] = set()
    fsas: list[FunctionSetAssignments] = []
    if end_device.FunctionSetAssignmentsListLink is not None:
        fsa_href = end_device.FunctionSetAssignmentsListLink.href
        fsa_pages = yield from _pages(
            fsa_href, FunctionSetAssignmentsList, page_size, poll_rates, subscribable
        )
        for fsa_page in fsa_pages:
            fsas.extend(fsa_page.FunctionSetAssignments)

    found: list[tuple[DERProgram, str]] = []
    walked: set[str] = set()  # FSAs may share a program list: read it once per walk
    for fsa in fsas:
        if fsa.DERProgramListLink is None or fsa.DERProgramListLink.href in walked:
            continue
        derp_href = fsa.DERProgramListLink.href
        walked.add(derp_href)
        derp_pages = yield from _pages(
            derp_href, DERProgramList, page_size, poll_rates, subscribable
        )
        for derp_page in derp_pages:
            found.extend((p, derp_href) for p in derp_page.DERProgram)
    programs: list[ProgramView] = []
    for program, list_href in found:
        view = yield from poll_program(program, page_size, poll_rates, subscribable)
        programs.append(replace(view, list_href=list_href))

    return Discovery(
        dcap=dcap,
        time=time,
        end_device=end_device,
        registration=registration,
        fsas=tuple(fsas),
        programs=tuple(programs),
        poll_rates=dict(poll_rates),
        subscription_list=subscription_list,
        subscriber=subscriber,
        subscribable=frozenset(subscribable),
        registered_in_band=registered_in_band,
        assigned_pin=assigned_pin,
    )


def _aggregator_end_device(
    href: str, lfdi: str, hint: str | None, page_size: int, poll_rates: dict[str, int]
) -> Generator[Request, Reply, EndDevice | None]:
    """The aggregator certificate's own EndDevice (None when the server lists none)."""
    if hint is not None:
        device = yield from _try_hint(hint, lfdi)
        if device is not None:
            return device
    try:
        return (yield from _find_end_device(href, lfdi, page_size, poll_rates))
    except NotRegisteredError:
        return None


def scan_end_devices(
    dcap_href: str, page_size: int = DEFAULT_PAGE_SIZE
) -> Generator[Request, Reply, dict[str, str]]:
    """Every EndDevice the server lists for this client, as ``{lFDI: href}``: one pass over the
    EndDeviceList that an aggregator's EndDevices share, so that each one's first walk starts
    from a hint instead of paging the list again (N pages in all, not N^2/2)."""
    dcap = yield from _get(dcap_href, DeviceCapability)
    if dcap.EndDeviceListLink is None:
        return {}
    href = dcap.EndDeviceListLink.href
    found: dict[str, str] = {}
    start = 0
    while True:
        page = yield from _get(_paged_href(href, start, page_size), EndDeviceList)
        for device in page.EndDevice:
            if device.lFDI is not None and device.href is not None:
                found[device.lFDI.upper()] = device.href
        start += len(page.EndDevice)
        if not page.EndDevice or start >= page.all:
            return found


def _try_hint(href: str, ours: str) -> Generator[Request, Reply, EndDevice | None]:
    reply = yield Request("GET", href)
    if not _HTTP_OK_MIN <= reply.status <= _HTTP_OK_MAX:
        return None
    try:
        device = codec.decode(reply.body)
    except Sep2ParseError:
        return None
    if isinstance(device, EndDevice) and (device.lFDI or "").upper() == ours:
        return device
    return None


def _register(href: str, device: EndDevice) -> Generator[Request, Reply, EndDevice]:
    """POST our EndDevice to the list; 201 names it in Location, 409 means already there."""
    reply = yield Request("POST", href, codec.encode(device))
    if reply.status == HTTP_CONFLICT:
        raise WalkError(
            href,
            reply.status,
            "registration refused as a duplicate (409), yet our "
            "EndDevice is not in the list: ask the utility to check its records",
        )
    _check_status(href, reply)
    location = _header(reply.headers, "Location")
    if location is None:
        raise WalkError(href, reply.status, "registration accepted without a Location header")
    return (yield from _get(location, EndDevice))


def _find_end_device(
    href: str, ours: str, page_size: int, poll_rates: dict[str, int]
) -> Generator[Request, Reply, EndDevice]:
    start = 0
    seen = 0
    while True:
        page = yield from _get(_paged_href(href, start, page_size), EndDeviceList)
        if page.pollRate is not None:
            poll_rates[href] = page.pollRate
        for device in page.EndDevice:
            if device.lFDI is not None and device.lFDI.upper() == ours:
                return device
        seen += len(page.EndDevice)
        start += len(page.EndDevice)
        if not page.EndDevice or start >= page.all:
            raise NotRegisteredError(
                f"no EndDevice with lFDI {ours} among the {seen} of {href}: register the "
                "device with the utility out of band, or enable in-band registration"
            )


def poll_program(
    program: DERProgram,
    page_size: int = DEFAULT_PAGE_SIZE,
    poll_rates: dict[str, int] | None = None,
    subscribable: set[str] | None = None,
) -> Generator[Request, Reply, ProgramView]:
    """Re-read one program's DefaultDERControl and DERControlList (the per-program poll);
    each of them that takes a subscription joins ``subscribable``.

    A 404 on the DERControlList (or any other failure) raises :class:`WalkError`: the program
    moved or went away, and the caller re-discovers from DeviceCapability (P-04).
    """
    poll_rates = {} if poll_rates is None else poll_rates
    default: DefaultDERControl | None = None
    if program.DefaultDERControlLink is not None:
        href = program.DefaultDERControlLink.href
        reply = yield Request("GET", href)
        if reply.status != HTTP_NOT_FOUND:
            _check_status(href, reply)
            default = _decode(href, reply, DefaultDERControl)
            if subscribable is not None:
                _note_subscribable(subscribable, href, default.subscribable)
    controls: list[DERControl] = []
    unreadable: list[UnreadableControl] = []
    if program.DERControlListLink is not None:
        href = program.DERControlListLink.href
        start = 0
        while True:
            page_href = _paged_href(href, start, page_size)
            reply = yield Request("GET", page_href)
            _check_status(page_href, reply)
            page, bad = _control_page(page_href, reply)
            if start == 0 and subscribable is not None:
                _note_subscribable(subscribable, href, page.subscribable)
            controls.extend(page.DERControl)
            unreadable.extend(bad)
            count = len(page.DERControl) + len(bad)
            start += count
            if count == 0 or start >= page.all:
                break
    return ProgramView(
        program=program,
        default=default,
        controls=tuple(controls),
        unreadable=tuple(unreadable),
    )


def _control_page(href: str, reply: Reply) -> tuple[DERControlList, list[UnreadableControl]]:
    """A DERControlList page; a control that does not decode is set aside, not fatal.

    The whole body is decoded first (the common case). Only when that fails is it parsed again
    and decoded control by control, so one bad control costs its own 253, not the whole list.
    A body that is not a well-formed, readable DERControlList at all is still a WalkError.
    """
    try:
        return _decode(href, reply, DERControlList), []
    except WalkError as whole:
        try:
            root = parse(reply.body)
        except Sep2ParseError:
            raise whole from None
        if etree.QName(root).localname != "DERControlList":
            raise
    good: list[DERControl] = []
    bad: list[UnreadableControl] = []
    for child in root:
        if etree.QName(child).localname != "DERControl":
            continue
        try:
            control = codec.decode_element(child)
        except Sep2ParseError as e:
            bad.append(_unreadable(child, str(e)))
            continue
        if isinstance(control, DERControl):
            good.append(control)
    try:
        total = int(root.get("all", len(good) + len(bad)))
    except ValueError:
        total = len(good) + len(bad)
    sub = root.get("subscribable", "").strip()
    page = DERControlList(
        all=total,
        results=len(good),
        DERControl=tuple(good),
        href=root.get("href"),
        subscribable=int(sub) if sub in ("0", "1", "2", "3") else None,
    )
    return page, bad


def _unreadable(el: Any, reason: str) -> UnreadableControl:
    mrid = el.findtext(f"{{{NS}}}mRID")
    if mrid is not None and not re.fullmatch(r"[0-9A-Fa-f]{2,32}", mrid.strip()):
        mrid = None
    rr = el.get("responseRequired", "00")
    required = int(rr, 16) if re.fullmatch(r"[0-9A-Fa-f]{1,2}", rr) else 0
    return UnreadableControl(
        mRID=None if mrid is None else mrid.strip().upper(),
        replyTo=el.get("replyTo"),
        responseRequired=required,
        reason=reason,
    )


def find_der(href: str) -> Generator[Request, Reply, DER | None]:
    """The first ``DER`` of an EndDevice's ``DERList`` (the one the gateway reports for);
    None when the list is empty."""
    page = yield from _get(_paged_href(href, 0, 1), DERList)
    return page.DER[0] if page.DER else None
