"""Subscriptions and Notifications of the utility simulator.

When a :class:`~gateway.sim.utility.state.Change` names a resource that an EndDevice subscribed
to (a subscription to a list also covers its members, so ``/derp/1/derc`` is told about
``/derp/1/derc/3``), the server POSTs a ``Notification`` carrying the resource as it is now to
the subscription's ``notificationURI``, over mutual TLS with the server's own certificate, and
records the outcome as a ``NOTIFY`` exchange.

The pubsub codec (``gateway.north.sep2.pubsub`` + ``codec``) is used when it reads and writes
Subscription and Notification; until it does (it is being added concurrently), a small reader
and writer here do the same job. TODO(pubsub): drop ``_fallback_*`` once codec.encode /
codec.decode support Subscription and Notification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2 import codec
from gateway.north.sep2.pubsub import Notification, Subscription
from gateway.north.sep2.xml import NS, Sep2ParseError, parse

XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    subscribedResource: str  # noqa: N815 - the element's name
    notificationURI: str  # noqa: N815
    limit: int


def read_subscription(body: bytes) -> SubscriptionRequest:
    """The fields the simulator needs from a POSTed Subscription; Sep2ParseError if bad."""
    try:
        sub: Any = codec.decode(body)
    except Sep2ParseError as exc:
        if "unsupported resource" not in str(exc):
            raise
        return _fallback_read(body)
    if not isinstance(sub, Subscription):
        raise Sep2ParseError(f"expected a Subscription, got a {type(sub).__name__}")
    return SubscriptionRequest(sub.subscribedResource, sub.notificationURI, sub.limit)


def _fallback_read(body: bytes) -> SubscriptionRequest:
    root = parse(body)
    if etree.QName(root).localname != "Subscription" or etree.QName(root).namespace != NS:
        raise Sep2ParseError(f"expected a Subscription, got {etree.QName(root).localname}")

    def text(name: str) -> str:
        value = root.findtext(f"{{{NS}}}{name}")
        if value is None or not value.strip():
            raise Sep2ParseError(f"Subscription/{name} is required")
        return str(value).strip()

    resource, uri, limit = text("subscribedResource"), text("notificationURI"), text("limit")
    if not limit.isdigit():
        raise Sep2ParseError(f"Subscription/limit = {limit!r}: not a UInt32")
    if not uri.startswith(("https://", "http://")):
        raise Sep2ParseError(f"Subscription/notificationURI = {uri!r}: not an absolute URI")
    return SubscriptionRequest(resource, uri, int(limit))


def notification_body(
    subscribed: str, subscription_uri: str, resource: codec.AnyResource | None
) -> bytes:
    """A ``Notification`` (status 0) carrying ``resource`` (None: a bare change notice)."""
    note = Notification(subscribed, 0, subscription_uri, Resource=resource)
    encode: Callable[[Any], bytes] = codec.encode
    try:
        return encode(note)
    except TypeError:  # the codec does not know Notification yet
        return _fallback_write(note)


def _fallback_write(note: Notification) -> bytes:
    root = etree.Element(f"{{{NS}}}Notification", nsmap={None: NS, "xsi": XSI})
    etree.SubElement(root, f"{{{NS}}}subscribedResource").text = note.subscribedResource
    if note.Resource is not None:
        inner = parse(codec.encode(note.Resource))
        inner.tag = f"{{{NS}}}Resource"
        inner.set(f"{{{XSI}}}type", type(note.Resource).__name__)
        root.append(inner)
    etree.SubElement(root, f"{{{NS}}}status").text = str(note.status)
    etree.SubElement(root, f"{{{NS}}}subscriptionURI").text = note.subscriptionURI
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def covers(subscribed: str, changed: str) -> bool:
    """A subscription to ``subscribed`` hears about ``changed`` (itself or a list member)."""
    base = subscribed.split("?", 1)[0].rstrip("/")
    return changed == base or changed.startswith(base + "/")
