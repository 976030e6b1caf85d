"""2030.5 publish/subscribe, responses, logs and errors, and the CSIP-AUS ``ConnectionPoint``.

``Subscription`` (a client POSTs it to an EndDevice's ``SubscriptionListLink``) asks the server
to POST a ``Notification`` to ``notificationURI`` when ``subscribedResource`` changes; the
notification carries the changed resource inline as ``<Resource xsi:type="DERControlList">``
(:attr:`Notification.Resource` holds it decoded, with the codecs of this package, or ``None``
for a bare status notice such as "subscription cancelled"). :mod:`gateway.north.sep2.notify`
is the listener.

Same conventions as :mod:`gateway.north.sep2.resources`: frozen dataclasses, field names are
the XML element (or attribute) names, in schema order. ``Error`` is what a server answers with
a 4xx; ``ConnectionPoint`` (``https://csipaus.org/ns``, linked from EndDevice by
``csipaus:ConnectionPointLink``) names the site's connection point, typically its NMI.
:mod:`gateway.north.sep2.resources_codec` reads and writes them and checks every range.
"""

# ruff: noqa: N815  - the standard's mixedCase element names are the point of this module

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from gateway.north.sep2.resources import ListLink

if TYPE_CHECKING:
    from gateway.north.sep2.codec import AnyResource

_ListLink = ListLink


class NotificationStatus(IntEnum):
    """``Notification.status`` (UInt8)."""

    DEFAULT = 0  # the resource changed (and is carried in ``Resource`` when the limit allows)
    CANCELLED = 1  # subscription cancelled, no additional information
    CANCELLED_MOVED = 2  # ... resource moved: see ``newResourceURI``
    CANCELLED_DEFINITION_CHANGED = 3  # ... e.g. a new version of 2030.5
    CANCELLED_DELETED = 4  # ... resource deleted


class ErrorReason(IntEnum):
    """``Error.reasonCode`` (UInt16)."""

    INVALID_REQUEST_FORMAT = 0
    INVALID_REQUEST_VALUES = 1
    RESOURCE_LIMIT_REACHED = 2
    CONDITIONAL_SUBSCRIPTION_NOT_SUPPORTED = 3
    MAX_REQUEST_FREQUENCY_EXCEEDED = 4


ENCODING_XML: Final = 0  # Subscription.encoding: application/sep+xml (1 is EXI)


@dataclass(frozen=True, slots=True)
class Condition:
    """``Condition``: notify only when an attribute leaves [lower, upper] (Int48 thresholds)."""

    attributeIdentifier: int  # UInt8: 0 = Reading value
    lowerThreshold: int  # Int48
    upperThreshold: int  # Int48


_Condition = Condition


@dataclass(frozen=True, slots=True)
class Subscription:
    subscribedResource: str  # anyURI: the resource to watch (a path on the server)
    encoding: int  # UInt8, ENCODING_XML
    level: str  # String16: schema and extensibility level, e.g. "+S1"
    limit: int  # UInt32: most list items a notification carries (0 = change notice only)
    notificationURI: str  # anyURI, absolute: where the server POSTs (the gateway's listener)
    href: str | None = None
    Condition: _Condition | None = None


_Subscription = Subscription


@dataclass(frozen=True, slots=True)
class SubscriptionList:
    all: int
    results: int
    Subscription: tuple[_Subscription, ...] = ()
    href: str | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """``Notification``: ``Resource`` is the changed resource decoded (``None`` if absent)."""

    subscribedResource: str  # anyURI
    status: int  # UInt8, NotificationStatus
    subscriptionURI: str  # anyURI, absolute: the subscription that triggered this
    href: str | None = None
    newResourceURI: str | None = None  # anyURI, absolute: with status 2
    Resource: AnyResource | None = None  # written as <Resource xsi:type="...">


_Notification = Notification


@dataclass(frozen=True, slots=True)
class NotificationList:
    """``NotificationList``: several notifications in one POST (a server MAY batch them)."""

    all: int
    results: int
    Notification: tuple[_Notification, ...] = ()
    href: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseSet:
    mRID: str  # mRIDType (HexBinary128), upper case
    href: str | None = None
    description: str | None = None  # String32
    version: int | None = None  # VersionType
    ResponseListLink: _ListLink | None = None  # where Responses to this set's events go


_ResponseSet = ResponseSet


@dataclass(frozen=True, slots=True)
class ResponseSetList:
    all: int
    results: int
    ResponseSet: tuple[_ResponseSet, ...] = ()
    href: str | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class LogEvent:
    """``LogEvent``: a time-stamped event the device reports (elements in schema order)."""

    createdDateTime: int  # TimeType
    functionSet: int  # UInt8: 11 = DER, 0 = general, ...
    logEventCode: int  # UInt8, scoped to profileID and functionSet
    logEventID: int  # UInt16
    logEventPEN: int  # PENType (UInt32): who defined the code
    profileID: int  # UInt8: 1 vendor defined, 2 IEEE 2030.5
    href: str | None = None
    details: str | None = None  # String32
    extendedData: int | None = None  # UInt32


_LogEvent = LogEvent


@dataclass(frozen=True, slots=True)
class LogEventList:
    all: int
    results: int
    LogEvent: tuple[_LogEvent, ...] = ()
    href: str | None = None
    subscribable: int | None = None
    pollRate: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """``Error`` (not a Resource: no href): why a request failed."""

    reasonCode: int  # UInt16, ErrorReason
    maxRetryDuration: int | None = None  # UInt16 seconds to wait before retrying


@dataclass(frozen=True, slots=True)
class ConnectionPoint:
    """CSIP-AUS ``csipaus:ConnectionPoint``: the site's connection point id (usually the NMI)."""

    connectionPointId: str  # String32
    href: str | None = None


PubSubResource = (
    Subscription
    | SubscriptionList
    | Notification
    | NotificationList
    | ResponseSet
    | ResponseSetList
    | LogEvent
    | LogEventList
    | Error
    | ConnectionPoint
)
PUBSUB_TYPES: Final = (
    Subscription,
    SubscriptionList,
    Notification,
    NotificationList,
    ResponseSet,
    ResponseSetList,
    LogEvent,
    LogEventList,
    Error,
    ConnectionPoint,
)
