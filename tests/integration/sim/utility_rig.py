"""The utility simulator on real mutual-TLS sockets, for the tests in this directory.

A PKI is minted into a temporary directory (each test module's ``pki`` fixture); the client
side is aiohttp with ``tls.client_context`` (the gateway's own device certificate), so every
request is identified by its certificate's LFDI exactly as the server will see a real gateway.
Each test runs its own event loop with ``asyncio.run`` (the repository's style).
:func:`listener` is a subscriber's mutual-TLS notification endpoint that can be told to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp
from aiohttp import web

from gateway.north.sep2 import tls, walk
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import DeviceFiles, PkiFiles
from gateway.sim.utility import Recorder, UtilityServer, UtilityState

SERVER_NOW = 4_000_000_000  # 2096: far from the OS clock, so nothing reads time.time()
PIN = 111115


@dataclass
class Rig:
    state: UtilityState
    server: UtilityServer
    recorder: Recorder
    pki: PkiFiles
    session: aiohttp.ClientSession
    _extra: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.server.url("/")

    async def request(
        self, method: str, href: str, body: bytes | None = None, *, as_: DeviceFiles | None = None
    ) -> walk.Reply:
        session = self.session if as_ is None else self._sessions(as_)
        async with session.request(
            method,
            urljoin(self.base, href),
            data=body,
            headers={"Content-Type": "application/sep+xml"} if body is not None else None,
        ) as r:
            return walk.Reply(r.status, await r.read(), dict(r.headers))

    def _sessions(self, leaf: DeviceFiles) -> aiohttp.ClientSession:
        ctx = tls.client_context(leaf.cert, leaf.key, leaf.chain, self.pki.serca)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx))
        self._extra.append(session)
        return session

    async def discover(self, **kwargs: object) -> walk.Discovery:
        lfdi = self.pki.device("gateway").lfdi
        w = walk.discover("/dcap", lfdi=lfdi, pin=PIN, page_size=2, **kwargs)  # type: ignore[arg-type]
        request = next(w)
        while True:
            reply = await self.request(request.method, request.href, request.body)
            try:
                request = w.send(reply)
            except StopIteration as done:
                return done.value


@asynccontextmanager
async def rig(
    pki: PkiFiles, state: UtilityState | None = None, **server: float
) -> AsyncIterator[Rig]:
    """``server``: UtilityServer's keyword settings (``notify_retries``, ``notify_backoff``)."""
    state = state or UtilityState(clock=lambda: float(SERVER_NOW))
    recorder = Recorder()
    s = pki.server
    utility = UtilityServer(
        state,
        cert=s.cert,
        key=s.key,
        chain=s.chain,
        serca=pki.serca,
        recorder=recorder,
        **server,  # type: ignore[arg-type]
    )
    gw = pki.device("gateway")
    ctx = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca)
    async with utility, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        r = Rig(state, utility, recorder, pki, session)
        try:
            yield r
        finally:
            for extra in r._extra:
                await extra.close()


def run(
    pki: PkiFiles,
    body: Callable[[Rig], Awaitable[None]],
    state: UtilityState | None = None,
    **server: float,
) -> None:
    async def main() -> None:
        async with rig(pki, state, **server) as r:
            await asyncio.wait_for(body(r), 20)

    asyncio.run(main())


def export_limit(watts: int) -> DERControlBase:
    return DERControlBase(opModExpLimW=ActivePower.from_watts(watts))


@dataclass
class Listener:
    """What a subscriber's listener saw: ``(client LFDI, body)`` per POST it answered 2xx."""

    url: str
    received: list[tuple[str, bytes]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)  # statuses to answer first, one per POST


@asynccontextmanager
async def listener(leaf: DeviceFiles, serca: object) -> AsyncIterator[Listener]:
    """An mTLS notification endpoint at ``https://127.0.0.1:{port}/note`` with ``leaf``'s
    certificate; it answers each POST with the next of ``fail`` (if any), else 201."""
    app = web.Application()
    seen = Listener("")

    async def note(request: web.Request) -> web.Response:
        body = await request.read()
        if seen.fail:
            return web.Response(status=seen.fail.pop(0))
        obj = request.transport.get_extra_info("ssl_object")  # type: ignore[union-attr]
        seen.received.append((tls.peer_lfdi(obj), body))
        return web.Response(status=201)

    app.router.add_post("/note", note)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = tls.server_context(leaf.cert, leaf.key, leaf.chain, serca)  # type: ignore[arg-type]
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    seen.url = f"https://127.0.0.1:{runner.addresses[0][1]}/note"
    try:
        yield seen
    finally:
        await runner.cleanup()


def subscription(resource: str, uri: str, limit: int = 5) -> bytes:
    return (
        '<Subscription xmlns="urn:ieee:std:2030.5:ns">'
        f"<subscribedResource>{resource}</subscribedResource>"
        f"<encoding>0</encoding><level>+S1</level><limit>{limit}</limit>"
        f"<notificationURI>{uri}</notificationURI>"
        "</Subscription>"
    ).encode()
