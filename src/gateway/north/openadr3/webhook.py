"""The webhook listener: the VTN POSTs subscription notifications here.

It checks the bearer token the VEN gave the VTN in its subscription (constant-time compare),
decodes the notification strictly (``codec.notification``), answers at once (200 on success,
400 with an RFC 7807 problem for bad JSON, 401 for a missing or wrong token) and hands the
notification to ``on_notification``, which only queues it: the VEN acts from its own task, so a
slow device step never makes the VTN's callback time out.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Callable
from typing import Final

from aiohttp import web

from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import Notification, ProtocolError

log = logging.getLogger(__name__)

PATH: Final = "/openadr3/notify"


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = codec.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/problem+json")


class WebhookListener:
    def __init__(
        self,
        on_notification: Callable[[Notification], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.on_notification = on_notification
        self.host = host
        self.port = port
        self.public_url = public_url
        self.ssl_context = ssl_context
        self.bearer: str | None = None  # set by the VEN before it subscribes
        self.received = 0
        self.refused = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if self.public_url is not None:
            return self.public_url
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{PATH}"

    async def start(self) -> None:
        app = web.Application(client_max_size=codec.MAX_BODY)
        app.router.add_post(PATH, self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        expected = f"Bearer {self.bearer}" if self.bearer else None
        if expected is None or not hmac.compare_digest(auth.encode(), expected.encode()):
            self.refused += 1
            log.warning(
                "openadr3 webhook: refused a call from %s without our bearer token", request.remote
            )
            return _problem(401, "Unauthorized", "missing or wrong bearer token")
        try:
            # Whole body; over client_max_size (the codec's cap) aiohttp answers 413 itself.
            body = await request.read()
            n = codec.one(codec.notification, body, "notification")
        except ProtocolError as e:
            self.refused += 1
            log.warning("openadr3 webhook: bad notification, nothing changed: %s", e)
            return _problem(400, "Bad Request", str(e))
        self.received += 1
        self.on_notification(n)
        return web.Response(status=200)
