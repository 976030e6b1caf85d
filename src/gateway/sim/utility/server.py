"""The utility simulator's HTTP shell: aiohttp over 2030.5 mutual TLS (:mod:`.tls`).

The client is identified by the LFDI of its TLS certificate (``tls.peer_lfdi``): a device
certificate sees only its own EndDevice, an aggregator's (``UtilityState.add_aggregator``) the
EndDevices registered under it; another one's answers 403. URL layout: :mod:`.paths`. Bodies are
``application/sep+xml``; an unknown path answers 404, a wrong method 405 with ``Allow``. Before
routing, a scripted fault (``UtilityState.fail``) may answer instead, and while communications
are cut (``UtilityState.cut``) the server stops listening and drops connections. Every request
and every Notification attempt is recorded in :class:`~gateway.sim.utility.recorder.Recorder`.
A state change (:class:`~gateway.sim.utility.records.Change`) is notified to every subscription
that covers it (:mod:`.notifier`: delivery retried ``notify_retries`` times, backing off from
``notify_backoff`` seconds), presenting the server's certificate, or none with
``notify_with_certificate=False`` (the reference server's default).

Use it as ``async with UtilityServer(state, pki) as server: ... server.url("/dcap")``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.north.sep2 import identity, tls
from gateway.sim.utility import paths, wire
from gateway.sim.utility.handlers import Handlers
from gateway.sim.utility.notifier import Deliverer, covers, notification_body, resource_at
from gateway.sim.utility.recorder import Exchange, Recorder
from gateway.sim.utility.records import Change, Tamper
from gateway.sim.utility.state import UtilityState

SEP_XML: Final = "application/sep+xml"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UtilityServer:
    """One simulated utility server on ``host:port`` (0: the OS chooses; kept across a cut)."""

    def __init__(
        self,
        state: UtilityState,
        *,
        cert: Path,
        key: Path,
        chain: Path | None,
        serca: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        recorder: Recorder | None = None,
        notify_timeout: float = 5.0,
        notify_retries: int = 3,
        notify_backoff: float = 1.0,
        notify_with_certificate: bool = True,
    ) -> None:
        self.state = state
        self.recorder = recorder if recorder is not None else Recorder()
        self.host = host
        self.port = port
        self._ssl = tls.server_context(cert, key, chain, serca)
        # Notifications go out with the server's own certificate (2030.5: mutual TLS both ways),
        # or, playing the reference server's default (envoy's notifications_with_mtls off),
        # with none: TLS that checks the client's listener, but no client certificate.
        if notify_with_certificate:
            notify_ssl = tls.client_context(cert, key, chain, serca, check_hostname=False)
        else:
            notify_ssl = tls.anonymous_client_context(serca)
        self.deliverer = Deliverer(
            self.recorder,
            notify_ssl,
            state.clock,
            timeout=notify_timeout,
            retries=notify_retries,
            backoff=notify_backoff,
        )
        self.lfdi = identity.Identity.from_certificate(cert.read_bytes()).lfdi
        self.app = web.Application(middlewares=[self._middleware])
        Handlers(state, self.recorder).register(self.app.router)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        state.listen(self._on_change)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        if self._runner is None:
            raise RuntimeError("UtilityServer.start() first")
        self._site = web.TCPSite(
            self._runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True
        )
        await self._site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving: pending Notifications get ``grace`` seconds (default: the notify
        timeout) to finish their attempts, then are cancelled."""
        if self._tasks:
            timeout = self.deliverer.timeout if grace is None else grace
            await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.deliverer.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> UtilityServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, path: str = paths.DCAP) -> str:
        return f"https://{self.host}:{self.port}{path}"

    async def drain(self) -> None:
        """Wait until every pending Notification and comms change is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ requests
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        lfdi = _client_lfdi(request)
        at = self.state.clock()

        def record(status: int, location: str | None = None, error: str | None = None) -> None:
            self.recorder.record(
                Exchange(
                    at,
                    request.method,
                    request.path,
                    request.query_string,
                    lfdi,
                    status,
                    body,
                    location,
                    error,
                )
            )

        if not self.state.comms_up:
            record(0, error="communications cut: connection dropped")
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable  # never sent: the connection is gone
        if self.state.on_request is not None:
            self.state.on_request(request.method, request.path)
        moved = self.state.redirects.get(request.path)
        if moved is not None:
            to, status = moved
            record(status, to)
            return web.Response(status=status, headers={"Location": to})
        fault = self.state.take_fault(request.method, request.path)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            record(fault.status, error="scripted fault")
            return web.Response(status=fault.status, headers=headers)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record(exc.status, error=exc.text if exc.status >= 400 else None)
            raise
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            sent = wire.bare(response.body)
            response.body = Tamper.apply(self.state.tampers, request.path, sent)
        record(response.status, response.headers.get("Location"))
        return response

    # ------------------------------------------------------------------ changes
    def _on_change(self, change: Change) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # scripted outside the loop (a unit test): nothing to send
            return
        if change.kind == "comms":
            self._spawn(loop, self._comms())
            return
        for edev in self.state.end_devices:
            for sub in edev.subscriptions:
                wanted = sub.resource
                if not any(covers(wanted.subscribedResource, href) for href in change.hrefs):
                    continue
                resource = resource_at(self.state, wanted.subscribedResource, wanted.limit, edev)
                uri = self.url(paths.sub(edev.number, sub.number))
                body = wire.bare(notification_body(wanted.subscribedResource, uri, resource))
                # What polls see, notifications carry.
                body = Tamper.apply(self.state.tampers, wanted.subscribedResource, body)
                self._spawn(loop, self._deliver(wanted.notificationURI, body, edev.lfdi))

    async def _deliver(self, uri: str, body: bytes, lfdi: str) -> None:
        await self.deliverer.deliver(uri, body, lfdi)

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _comms(self) -> None:
        if self._runner is None:
            return
        if not self.state.comms_up and self._site is not None:
            site, self._site = self._site, None
            await site.stop()
        elif self.state.comms_up and self._site is None:
            await self._listen()


def _client_lfdi(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    try:
        return tls.peer_lfdi(ssl_object)
    except ssl.SSLError:
        return None


__all__ = ["SEP_XML", "UtilityServer"]
