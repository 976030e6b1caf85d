"""The client's 2030.5 notification listener: an HTTPS server (mutual TLS) for ``Notification``s.

A ``Subscription``'s ``notificationURI`` points here (:attr:`NotificationListener.url`); the
utility server POSTs a ``Notification`` (or a ``NotificationList``) when a subscribed resource
changes. Each request is handled like this:

- TLS: :func:`gateway.north.sep2.tls.server_context` (TLS 1.2, the 2030.5 suite, a client
  certificate under the SERCA required). With ``pinned_lfdi`` the sender's certificate must also
  have that LFDI (the utility server's), else 403: any device of the same PKI could otherwise
  push controls to the gateway;
- ``require_client_certificate=False`` (``[sep2.notify] require_certificate = false``) also lets
  in a sender without a certificate, as the reference server sends by default (envoy's
  ``notifications_with_mtls`` is off unless set). Such a notification is *unverified*: its
  ``Resource`` is dropped before anyone sees it, and it goes to ``on_unverified`` (default
  ``on_notification``), so it can only say "look again"; what is then acted on is what the
  client GETs from the server over its own mutual-TLS connection. A sender that does present
  a certificate is checked as above;
- only ``POST`` at the configured path: another path is 404, another method 405 with ``Allow``;
- the body is capped (``max_bytes``: aiohttp answers 413 above it) and parsed with the hardened
  codec; a body that is not a well-formed, in-range ``Notification`` / ``NotificationList`` is
  400 with the reason as text, and logged;
- each notification goes to ``on_notification`` (awaited, in order); if it raises, 500 (and a
  log line with the traceback), so the server may retry;
- then ``success_status`` (201 Created by default), empty body.

A listener that cannot listen (the port in use, an address not this machine's) raises
:class:`ListenerError` from :meth:`NotificationListener.start`, and unusable TLS files raise
:class:`~gateway.north.sep2.tls.TlsConfigError` from the constructor: configuration errors
whose message says where and what to change, not OSError tracebacks.

This module and the client are the only ones in ``north/sep2`` that do I/O.
"""

from __future__ import annotations

import errno
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.core import errors
from gateway.north.sep2 import codec, tls
from gateway.north.sep2.pubsub import Notification, NotificationList
from gateway.north.sep2.xml import MAX_BODY_BYTES, Sep2ParseError

log = logging.getLogger(__name__)

SEP_XML: Final = "application/sep+xml"
# What a 2030.5 client answers to a notification. A POST that creates a resource answers 201
# Created, the default here. Deployed peers differ but agree that any 2xx is fine: EPRI's
# IEEE-2030.5-Client answers 204 No Content (epri-dev/IEEE-2030.5-Client, process_notifications:
# `http_respond (conn, 204)`), and bsgip/envoy's notification sender counts any 2xx as delivered
# and gives up without retrying on a 3xx/4xx (envoy.notification, do_transmit_notification).
# Hence configurable, among the 2xx codes.
DEFAULT_SUCCESS_STATUS: Final = 201
_SUCCESS_STATUSES: Final = frozenset({200, 201, 204})

OnNotification = Callable[[Notification], Awaitable[None]]


class ListenerError(errors.ConfigError):
    """The listener cannot listen where it was told (the port is taken, the address is not
    this machine's, the port needs privileges): the message says where and what to change."""


class NotificationListener:
    """An aiohttp server over mutual TLS that hands each received ``Notification`` to a callback.

    ``cert``/``key``/``chain`` are the gateway's own (the server side of this connection),
    ``serca`` the trust anchor the utility server's client certificate must chain to.
    ``public_host`` is the name the utility server reaches the gateway by, for :attr:`url`
    (defaults to the host bound).
    """

    def __init__(
        self,
        *,
        cert: Path,
        key: Path,
        chain: Path | None,
        serca: Path,
        on_notification: OnNotification,
        path: str = "/notify",
        pinned_lfdi: str | None = None,
        max_bytes: int = MAX_BODY_BYTES,
        success_status: int = DEFAULT_SUCCESS_STATUS,
        public_host: str | None = None,
        require_client_certificate: bool = True,
        on_unverified: OnNotification | None = None,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"the listener's path must be absolute, not {path!r}")
        if success_status not in _SUCCESS_STATUSES:
            raise ValueError(f"success_status must be one of {sorted(_SUCCESS_STATUSES)}")
        self._context: ssl.SSLContext = tls.server_context(
            cert, key, chain, serca, require_client_certificate=require_client_certificate
        )
        self._on_notification = on_notification
        self._on_unverified = on_unverified or on_notification
        self.unverified = 0  # notifications taken from senders without a certificate
        self._path = path
        self._pinned = None if pinned_lfdi is None else tls.normalise_lfdi(pinned_lfdi)
        self._max_bytes = max_bytes
        self._success = success_status
        self._public_host = public_host
        self._runner: web.AppRunner | None = None
        self._host: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The absolute ``notificationURI`` to put in a ``Subscription``."""
        if self._host is None or self._port is None:
            raise RuntimeError("the listener is not started")
        host = self._public_host or self._host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal
        return f"https://{host}:{self._port}{self._path}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and listen (``port`` 0: any free port); return the port bound."""
        if self._runner is not None:
            raise RuntimeError("the listener is already started")
        # client_max_size: aiohttp refuses a larger body with 413 before it is all read.
        app = web.Application(client_max_size=self._max_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=self._context)
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ListenerError(_cannot_listen(host, port, e)) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        bound = runner.addresses[0]
        self._port = int(bound[1])
        log.info("2030.5 notification listener on %s", self.url)
        return self._port

    async def stop(self) -> None:
        """Close the listening socket and every open connection; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("2030.5 notification listener stopped")
        self._host = self._port = None

    # ------------------------------------------------------------------ one request

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != self._path:
            return web.Response(status=404, text=f"no resource at {request.path}\n")
        if request.method != "POST":
            return web.Response(
                status=405, headers={"Allow": "POST"}, text="notifications are POSTed\n"
            )
        verified = _has_certificate(request)
        refused = self._check_sender(request) if verified else None
        if refused is not None:
            return refused
        body = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge (413)
        try:
            notifications = self._decode(body)
        except Sep2ParseError as e:
            log.warning("refused a notification from %s: %s", request.remote, e)
            return web.Response(status=400, text=f"{e}\n")
        for n in notifications:
            try:
                if verified:
                    await self._on_notification(n)
                else:
                    # Nobody vouches for the content: only that something may have changed.
                    self.unverified += 1
                    await self._on_unverified(replace(n, Resource=None))
            except Exception:
                log.exception("the notification handler failed on %s", n.subscribedResource)
                return web.Response(status=500, text="the notification could not be handled\n")
        return web.Response(status=self._success)

    def _check_sender(self, request: web.Request) -> web.Response | None:
        if self._pinned is None:
            return None
        transport = request.transport
        ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return web.Response(status=403, text="no TLS peer\n")
        sender = tls.peer_lfdi(ssl_object)
        if sender != self._pinned:
            log.warning("refused a notification from LFDI %s (expected %s)", sender, self._pinned)
            return web.Response(status=403, text=f"LFDI {sender} may not notify this client\n")
        return None

    def _decode(self, body: bytes) -> tuple[Notification, ...]:
        resource = codec.decode(body, max_bytes=self._max_bytes)
        if isinstance(resource, Notification):
            return (resource,)
        if isinstance(resource, NotificationList):
            return resource.Notification
        raise Sep2ParseError(
            f"expected a Notification or NotificationList, got {type(resource).__name__}"
        )


def _has_certificate(request: web.Request) -> bool:
    """Whether the sender presented a certificate (then it chained to the SERCA: the handshake
    checked it). Without a TLS connection (never, here), no."""
    transport = request.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    return ssl_object is not None and bool(ssl_object.getpeercert(binary_form=True))


def _cannot_listen(host: str, port: int, e: OSError) -> str:
    where = f"{host}:{port}"
    if e.errno == errno.EADDRINUSE:
        why = (
            "the port is already in use (another gateway, or another program, listens there): "
            "stop it, or set [sep2.notify] port to a free port"
        )
    elif e.errno == errno.EADDRNOTAVAIL:
        why = (
            "the address is not one of this machine's: set [sep2.notify] listen to one of its "
            "addresses (or 0.0.0.0 for all)"
        )
    elif e.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges): choose a port above 1023"
    else:
        why = f"{e.strerror or type(e).__name__}; check [sep2.notify] listen and port"
    return f"cannot listen for 2030.5 notifications on {where}: {why}"
