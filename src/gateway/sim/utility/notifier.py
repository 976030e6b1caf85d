"""Subscriptions and Notifications of the utility simulator.

A POSTed ``Subscription`` is decoded with the codec (:func:`read_subscription`). When a
:class:`~gateway.sim.utility.records.Change` names a resource an EndDevice subscribed to (a
subscription also covers what lies under it, so ``/derp/1/derc`` hears about ``/derp/1/derc/3``
and ``/edev/1/fsa`` about ``/edev/1/fsa/2/derp``), the server POSTs a
``pubsub.Notification`` (status 0) carrying the subscribed resource as it is now
(:func:`resource_at`: DERPrograms, their controls and defaults, the EndDeviceList, an EndDevice,
its FunctionSetAssignments and their DERProgramLists; lists hold at most the subscription's
``limit`` items) to the ``notificationURI``, over mutual TLS with the server's own certificate.

:class:`Deliverer` sends it: an attempt that gets no answer, 429 or a 5xx is retried up to
``retries`` more times after ``backoff`` seconds, doubling each time; every attempt is recorded
as a ``NOTIFY`` exchange (``attempt`` 1, 2, ...; ``status`` 0 and ``error`` when unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Final

import aiohttp

from gateway.north.sep2 import codec
from gateway.north.sep2.pubsub import Notification, NotificationStatus, Subscription
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility import views
from gateway.sim.utility.recorder import Exchange, Recorder
from gateway.sim.utility.records import EndDeviceRecord
from gateway.sim.utility.state import UtilityState

SEP_XML: Final = "application/sep+xml"
_TOO_MANY: Final = 429


def read_subscription(body: bytes) -> Subscription:
    """A POSTed Subscription, decoded; Sep2ParseError if it is not one or is unusable."""
    sub = codec.decode(body)
    if not isinstance(sub, Subscription):
        raise Sep2ParseError(f"expected a Subscription, got a {type(sub).__name__}")
    if not sub.notificationURI.startswith(("https://", "http://")):
        raise Sep2ParseError(f"notificationURI {sub.notificationURI!r} is not an absolute URI")
    return sub


def covers(subscribed: str, changed: str) -> bool:
    """A subscription to ``subscribed`` hears about ``changed`` (itself or under it)."""
    base = subscribed.split("?", 1)[0].rstrip("/")
    return changed == base or changed.startswith(base + "/")


def edev_number(href: str) -> int | None:
    """``e`` of an ``/edev/{e}...`` href (None for other hrefs and ``/edev`` itself)."""
    parts = href.split("?", 1)[0].strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "edev" and parts[1].isdigit():
        return int(parts[1])
    return None


def resource_at(
    state: UtilityState, href: str, limit: int = 1, subscriber: EndDeviceRecord | None = None
) -> codec.AnyResource | None:
    """The resource at ``href`` as ``subscriber`` may see it (what a Notification carries);
    None if there is none (moved, deleted, not visible, or not one the simulator notifies)."""
    parts = href.split("?", 1)[0].strip("/").split("/")
    if parts[0] == "edev":
        return _edev_resource(state, parts[1:], limit, subscriber)
    if len(parts) < 2 or parts[0] != "derp" or (p := state.program_at(parts[1])) is None:
        return None
    if len(parts) == 2:
        return views.program(p)
    if parts[2:] == ["dderc"]:
        return views.default(p)
    if parts[2:] == ["derc"]:
        return views.control_list(state, p, 0, limit)
    if len(parts) == 4 and parts[2] == "derc" and parts[3].isdigit():
        c = next((c for c in p.controls if c.number == int(parts[3])), None)
        return None if c is None else views.control(state, p, c)
    return None


def _edev_resource(
    state: UtilityState, rest: list[str], limit: int, subscriber: EndDeviceRecord | None
) -> codec.AnyResource | None:
    visible = state.visible_to(None if subscriber is None else subscriber.lfdi)
    if not rest:
        return views.end_device_list(state, visible, 0, limit)
    edev = next((e for e in visible if str(e.number) == rest[0]), None)
    if edev is None:
        return None
    if len(rest) == 1:
        return views.end_device(edev)
    if rest[1] != "fsa":
        return None
    if len(rest) == 2:
        return views.fsa_list(state, edev, 0, limit)
    fsa = edev.fsa(int(rest[2])) if rest[2].isdigit() else None
    if fsa is None or len(rest) > 4 or (len(rest) == 4 and rest[3] != "derp"):
        return None
    if len(rest) == 3:
        return views.fsa(state, edev, fsa)
    return views.derp_list(state, edev, fsa, 0, limit)


def notification_body(
    subscribed: str,
    subscription_uri: str,
    resource: codec.AnyResource | None,
    status: int = NotificationStatus.DEFAULT,
) -> bytes:
    """A ``Notification`` carrying ``resource`` (None: a bare notice), encoded by the codec."""
    note = Notification(subscribed, int(status), subscription_uri, Resource=resource)
    return codec.encode(note)


def _retryable(status: int) -> bool:
    return status in (0, _TOO_MANY) or status >= 500


class Deliverer:
    """POSTs Notifications over mutual TLS, retrying with back-off, recording each attempt."""

    def __init__(
        self,
        recorder: Recorder,
        client_ssl: ssl.SSLContext,
        clock: Callable[[], float],
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff are >= 0")
        self.recorder = recorder
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._ssl = client_ssl
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, uri: str, body: bytes, lfdi: str | None) -> int:
        """Send until answered 2xx/4xx or out of retries; the last status (0: unanswered)."""
        status = 0
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 2))
            status = await self._attempt(uri, body, lfdi, attempt)
            if not _retryable(status):
                break
        return status

    async def _attempt(self, uri: str, body: bytes, lfdi: str | None, attempt: int) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        at = self._clock()
        status, error = 0, None
        try:
            async with self._session.post(
                uri,
                data=body,
                headers={"Content-Type": SEP_XML},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as reply:
                status = reply.status
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            cause = getattr(exc, "os_error", None)  # a broken handshake hides in here
            if cause is not None:
                error += f" ({type(cause).__name__}: {cause})"
        if error is None and _retryable(status):
            error = f"answered {status}"
        with contextlib.suppress(ValueError):  # the CLI's record file closed while stopping
            self.recorder.record(
                Exchange(at, "NOTIFY", uri, "", lfdi, status, body, None, error, attempt)
            )
        return status
