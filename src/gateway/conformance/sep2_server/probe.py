"""The suite's side of the wire: HTTPS requests with the client certificate, each one kept as
an exchange (method, path, status, both bodies), bare TLS attempts, and the notification
listener the server under test POSTs to.

Every request goes through :meth:`Probe.request`, so the evidence holds every exchange and
the schema case can judge every body received.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp import web
from lxml import etree  # type: ignore[import-untyped]  # no lxml-stubs in this environment

from gateway.north.sep2 import tls

SEP_XML: Final = "application/sep+xml"
NS: Final = "urn:ieee:std:2030.5:ns"
TIMEOUT_S: Final = 15.0
_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True)


@dataclass
class Exchange:
    """One request and what came back (``status`` None: no HTTP answer, ``error`` says why)."""

    method: str
    url: str
    status: int | None
    sent: bytes = b""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""
    at: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def seen(self) -> str:
        """What came back, in a few words, for a criterion's ``seen``."""
        if self.status is None:
            return f"no HTTP answer ({self.error})"
        text = self.body[:160].decode("utf-8", "replace").strip()
        return f"{self.status}" + (f" {text!r}" if text else "")

    def xml(self) -> etree._Element | None:
        return parse(self.body)

    def row(self) -> dict[str, Any]:
        return {
            "kind": "exchange",
            "at": round(self.at, 3),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "request_body": self.sent.decode("utf-8", "replace"),
            "body": self.body.decode("utf-8", "replace"),
            "headers": dict(self.headers),
            "error": self.error,
        }


def parse(body: bytes) -> etree._Element | None:
    """The XML document of a body; None if it is not XML."""
    if not body.lstrip().startswith(b"<"):
        return None
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None


def local(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


_KEPT_HEADERS: Final = ("Content-Type", "Location", "Allow")


class Probe:
    """One case's HTTPS client against the server under test (``async with``)."""

    def __init__(self, base_url: str, context: ssl.SSLContext) -> None:
        self.base_url = base_url
        self._context = context
        self._session: aiohttp.ClientSession | None = None
        self.exchanges: list[Exchange] = []
        self.rows: list[dict[str, Any]] = []  # exchanges, and anything else the case saw

    async def __aenter__(self) -> Probe:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._context, limit=4),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, href: str) -> str:
        return urljoin(self.base_url, href)

    async def request(
        self,
        method: str,
        href: str,
        body: bytes | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> Exchange:
        assert self._session is not None, "async with Probe(...) first"
        url = self.url(href)
        if query:
            url += ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in query.items())
        headers = {"Accept": SEP_XML}
        if body is not None:
            headers["Content-Type"] = SEP_XML
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as r:
                got = await r.read()
                kept = {h: r.headers[h] for h in _KEPT_HEADERS if h in r.headers}
                x = Exchange(method, url, r.status, body or b"", got, kept)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            x = Exchange(method, url, None, body or b"", error=f"{type(e).__name__}: {e}")
        self.exchanges.append(x)
        self.rows.append(x.row())
        return x

    async def get(self, href: str, query: Mapping[str, str | int] | None = None) -> Exchange:
        return await self.request("GET", href, query=query)

    def note(self, **row: Any) -> None:
        self.rows.append({"kind": "note", "at": round(time.time(), 3), **row})


@dataclass(frozen=True)
class Attempt:
    """A bare TLS connection that then sends ``GET path``: how far it got."""

    handshake: bool  # the TLS handshake completed
    status: int | None  # the HTTP status that came back, if any
    detail: str  # the TLS error, or the status line
    cipher: str = ""
    version: str = ""

    @property
    def refused_at_tls(self) -> bool:
        return self.status is None


async def tls_attempt(url: str, context: ssl.SSLContext, path: str) -> Attempt:
    """Connect to ``url``'s host and port with ``context`` and ask for ``path``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), TIMEOUT_S
        )
    except ssl.SSLError as e:
        why = f"TLS handshake failed: {e.reason or e}"
        return Attempt(handshake=False, status=None, detail=why)
    except (OSError, TimeoutError) as e:
        why = f"connection failed in the handshake: {type(e).__name__} {e}".strip()
        return Attempt(handshake=False, status=None, detail=why)
    ssl_object = writer.get_extra_info("ssl_object")
    cipher = ssl_object.cipher() if ssl_object is not None else None
    version = (ssl_object.version() or "") if ssl_object is not None else ""

    def done(status: int | None, detail: str) -> Attempt:
        name = cipher[0] if cipher else ""
        return Attempt(handshake=True, status=status, detail=detail, cipher=name, version=version)

    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
    except ssl.SSLError as e:  # TLS 1.3 would refuse here; 2030.5 is TLS 1.2
        return done(None, f"TLS alert after the handshake: {e.reason or e}")
    except (OSError, TimeoutError) as e:
        return done(None, f"connection dropped: {type(e).__name__} {e}".strip())
    finally:
        await _closed(writer)
    text = line.decode("latin-1").strip()
    fields = text.split()
    if len(fields) >= 2 and fields[1].isdigit():
        return done(int(fields[1]), text)
    return done(None, f"closed without an HTTP answer ({text!r})")


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Close and wait for it: a TLS transport left closing when the loop ends is a leaked
    socket (a ResourceWarning in whatever runs next)."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(TIMEOUT_S):
            await writer.wait_closed()


@dataclass
class Notified:
    path: str
    body: bytes
    at: float


class Listener:
    """The HTTPS endpoint given as ``notificationURI``: it presents the suite's client
    certificate (the server checks it against its SERCA) and takes a server that presents a
    certificate or none (the reference server's default is none). Every POST answers 201."""

    def __init__(self, cert: Any, key: Any, ca: Any, host: str = "127.0.0.1") -> None:
        self._context = tls.server_context(cert, key, None, ca, require_client_certificate=False)
        self.host = host
        self.port = 0
        self.received: list[Notified] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        self.received.append(Notified(request.path, await request.read(), time.time()))
        self.arrived.set()
        return web.Response(status=201)

    async def __aenter__(self) -> Listener:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self._context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            # The server under test may still be POSTing (its state changes by itself): the
            # TLS shutdown of a connection cleanup() closed finishes only on a later turn of
            # the loop, and a socket left closing when the loop ends is a ResourceWarning.
            await asyncio.sleep(0.25)

    def uri(self, name: str) -> str:
        return f"https://{self.host}:{self.port}/ntfy/{name}"
