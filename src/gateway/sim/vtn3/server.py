"""A small OpenADR 3.0.1 VTN on aiohttp, for tests, the demo and ``gateway simulate vtn``.

Endpoints (the ones a VEN uses): ``GET /auth/server``, ``POST /oauth/token`` (client
credentials, form-encoded or HTTP Basic), ``GET /programs`` (``skip``, ``limit``: pages of at
most 50, as the reference VTN), ``GET /events`` (``programID``, ``skip``, ``limit``),
``GET/POST /reports``, ``GET/POST /subscriptions``, ``PUT/DELETE /subscriptions/{id}``,
``GET/POST /vens`` (``venName``). Every call but the token ones needs a bearer token it issued.
Errors are RFC 7807 problems.

Scriptable from Python (``Vtn3Server.state`` is a :class:`VtnState`): add programs, add, modify
and delete events (each change notified at once to every matching subscription's
``callbackUrl`` with its ``bearerToken``), serve raw bytes as the event list (hostile JSON),
answer the next N requests with 429/500, cut communications (connections dropped). Every
request is recorded (:attr:`VtnState.requests`), every notification attempt too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import ProtocolError

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Delivery:
    url: str
    operation: str
    event_id: str
    status: int | None  # None: could not connect
    at: float


@dataclass
class VtnState:
    """Everything the VTN knows, as JSON documents (so that tests can serve anything)."""

    clock: Callable[[], float] = time.time
    clients: dict[str, str] = field(default_factory=lambda: {"gateway": "secret"})
    token_life_s: float = 3600.0
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    vens: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    requests: list[Exchange] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    raw_events: bytes | None = None  # served as the body of GET /events when set
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    retry_after_s: int | None = None
    cut: bool = False
    notify: bool = True  # send notifications to subscriptions
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _changes: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def stamp(self) -> str:
        return codec.format_time(self.clock())

    # -- programs and events (the Python API) ---------------------------------------------

    def add_program(self, name: str, **extra: Any) -> str:
        pid = self.new_id("program")
        now = self.stamp()
        self.programs[pid] = {
            "id": pid,
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": "PROGRAM",
            "programName": name,
            **extra,
        }
        return pid

    def event_doc(
        self,
        program_id: str,
        intervals: list[Mapping[str, list[Any]]],
        *,
        start: float,
        duration_s: float,
        priority: int | None = None,
        units: Mapping[str, str] | None = None,
        report: Iterable[str] = (),
        name: str | None = None,
    ) -> dict[str, Any]:
        """An event document: consecutive intervals of ``duration_s`` from ``start``, each
        ``{payloadType: values}``; ``units`` gives payloadDescriptors; ``report`` the
        payloadTypes of its reportDescriptors."""
        doc: dict[str, Any] = {
            "objectType": "EVENT",
            "programID": program_id,
            "eventName": name,
            "priority": priority,
            "intervalPeriod": {
                "start": codec.format_time(start),
                "duration": codec.format_duration(duration_s),
            },
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": u}
                for t, u in (units or {}).items()
            ],
            "reportDescriptors": [{"payloadType": t, "readingType": "DIRECT_READ"} for t in report],
            "intervals": [
                {"id": i, "payloads": [{"type": t, "values": list(v)} for t, v in p.items()]}
                for i, p in enumerate(intervals)
            ],
        }
        return {k: v for k, v in doc.items() if v is not None}

    def add_event(self, program_id: str, doc: dict[str, Any] | None = None, **kw: Any) -> str:
        """Add an event (``doc`` as is, or built by :meth:`event_doc` from ``kw``)."""
        body = dict(doc) if doc is not None else self.event_doc(program_id, **kw)
        eid = str(body.get("id") or self.new_id("event"))
        now = self.stamp()
        body.update(id=eid, createdDateTime=now, modificationDateTime=now)
        body.setdefault("programID", program_id)
        self.events[eid] = body
        self._changed("POST", body)
        return eid

    def modify_event(self, event_id: str, doc: dict[str, Any] | None = None, **kw: Any) -> None:
        old = self.events[event_id]
        body = dict(doc) if doc is not None else self.event_doc(old["programID"], **kw)
        body.update(
            id=event_id,
            createdDateTime=old.get("createdDateTime"),
            modificationDateTime=self.stamp(),
        )
        body.setdefault("programID", old["programID"])
        self.events[event_id] = body
        self._changed("PUT", body)

    def delete_event(self, event_id: str, *, notify: bool = True) -> None:
        body = self.events.pop(event_id)
        if notify:
            self._changed("DELETE", body)

    def fail(self, status: int, count: int = 1, *, retry_after_s: int | None = None) -> None:
        self.failures += [status] * count
        self.retry_after_s = retry_after_s

    def reports_for(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("eventID") == event_id]

    def requests_to(self, method: str, path: str) -> list[Exchange]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def _changed(self, operation: str, body: dict[str, Any]) -> None:
        if self._changes is not None and self.notify:
            self._changes.put_nowait((operation, body))


class Vtn3Server:
    """``async with Vtn3Server(state, cert=..., key=...) as vtn: vtn.url``."""

    def __init__(
        self,
        state: VtnState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cert: Path | None = None,
        key: Path | None = None,
        notify_ca: Path | None = None,
        notify_timeout_s: float = 5.0,
    ) -> None:
        self.state = state or VtnState()
        self.host = host
        self.port = port
        self.ssl: ssl.SSLContext | None = None
        if cert is not None and key is not None:
            self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl.load_cert_chain(cert, key)
        self.notify_ca = notify_ca
        self.notify_timeout_s = notify_timeout_s
        self._runner: web.AppRunner | None = None
        self._notifier: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def __aenter__(self) -> Vtn3Server:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * codec.MAX_BODY)
        r = app.router
        r.add_get("/auth/server", self._auth_server)
        r.add_post("/oauth/token", self._token)
        r.add_get("/programs", self._programs)
        r.add_get("/events", self._events)
        r.add_get("/reports", self._reports)
        r.add_post("/reports", self._post_report)
        r.add_get("/subscriptions", self._subscriptions)
        r.add_post("/subscriptions", self._post_subscription)
        r.add_put("/subscriptions/{id}", self._put_subscription)
        r.add_delete("/subscriptions/{id}", self._delete_subscription)
        r.add_get("/vens", self._vens)
        r.add_post("/vens", self._post_ven)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        notify_ssl = (
            ssl.create_default_context(cafile=str(self.notify_ca)) if self.notify_ca else None
        )
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.notify_timeout_s),
            connector=aiohttp.TCPConnector(ssl=notify_ssl if notify_ssl is not None else True),
        )
        self.state._changes = asyncio.Queue()
        self._notifier = asyncio.create_task(self._notify_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
        self.state._changes = None
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- notifications ----------------------------------------------------------------------

    async def _notify_loop(self) -> None:
        queue = self.state._changes
        assert queue is not None
        while True:
            operation, body = await queue.get()
            for sub in list(self.state.subscriptions.values()):
                if sub.get("programID") not in (None, body.get("programID")):
                    continue
                for op in sub.get("objectOperations", []):
                    if "EVENT" in op.get("objects", []) and operation in op.get("operations", []):
                        await self._deliver(op, operation, body)

    async def _deliver(self, op: dict[str, Any], operation: str, body: dict[str, Any]) -> None:
        assert self._session is not None
        doc = {"objectType": "EVENT", "operation": operation, "object": body}
        headers = {"Content-Type": JSON}
        if op.get("bearerToken"):
            headers["Authorization"] = f"Bearer {op['bearerToken']}"
        status: int | None = None
        try:
            async with self._session.post(
                op["callbackUrl"], data=codec.dumps(doc), headers=headers
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.info("vtn3: notification to %s failed: %s", op["callbackUrl"], e)
        self.state.deliveries.append(
            Delivery(op["callbackUrl"], operation, str(body.get("id")), status, self.state.clock())
        )

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        s = self.state
        body = await request.read()
        if s.cut:
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable()
        response: web.StreamResponse
        if s.failures:
            status = s.failures.pop(0)
            response = _problem(status, "scripted failure")
            if s.retry_after_s is not None:
                response.headers["Retry-After"] = str(s.retry_after_s)
        elif request.path not in ("/auth/server", "/oauth/token") and not self._authorized(request):
            response = _problem(401, "missing, unknown or expired bearer token")
        else:
            try:
                response = await handler(request)
            except ProtocolError as e:
                response = _problem(400, str(e))
        s.requests.append(
            Exchange(
                request.method, request.path, dict(request.query), body, response.status, s.clock()
            )
        )
        return response

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        until = self.state.tokens.get(auth[7:])
        return until is not None and time.monotonic() < until

    # -- handlers --------------------------------------------------------------------------

    async def _auth_server(self, _request: web.Request) -> web.Response:
        return _json({"tokenURL": f"{self.url}/oauth/token"})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError):
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        if not isinstance(cid, str) or self.state.clients.get(cid) != secret:
            return _json({"error": "invalid_client", "error_description": "bad credentials"}, 401)
        token = secrets.token_urlsafe(24)
        self.state.tokens[token] = time.monotonic() + self.state.token_life_s
        return _json(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.state.token_life_s}
        )

    async def _programs(self, request: web.Request) -> web.Response:
        skip, limit = _paging(request)
        return _json(list(self.state.programs.values())[skip : skip + limit])

    async def _events(self, request: web.Request) -> web.Response:
        if self.state.raw_events is not None:
            return web.Response(body=self.state.raw_events, content_type=JSON)
        pid = request.query.get("programID")
        items = [e for e in self.state.events.values() if pid in (None, e.get("programID"))]
        skip, limit = _paging(request)
        return _json(items[skip : skip + limit])

    async def _reports(self, _request: web.Request) -> web.Response:
        return _json(self.state.reports)

    async def _post_report(self, request: web.Request) -> web.Response:
        doc = codec.loads(await request.read())
        codec.report(doc)  # validated as a VTN would
        doc.update(id=self.state.new_id("report"), createdDateTime=self.state.stamp())
        self.state.reports.append(doc)
        return _json(doc, 201)

    async def _subscriptions(self, request: web.Request) -> web.Response:
        q = request.query
        items = [
            s
            for s in self.state.subscriptions.values()
            if q.get("programID") in (None, s.get("programID"))
            and q.get("clientName") in (None, s.get("clientName"))
        ]
        return _json(items)

    async def _post_subscription(self, request: web.Request) -> web.Response:
        doc = codec.loads(await request.read())
        codec.subscription(doc)
        sid = self.state.new_id("subscription")
        doc.update(id=sid, createdDateTime=self.state.stamp())
        self.state.subscriptions[sid] = doc
        return _json(doc, 201)

    async def _put_subscription(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        if sid not in self.state.subscriptions:
            return _problem(404, f"no subscription {sid}")
        doc = codec.loads(await request.read())
        codec.subscription(doc)
        doc["id"] = sid
        self.state.subscriptions[sid] = doc
        return _json(doc)

    async def _delete_subscription(self, request: web.Request) -> web.Response:
        doc = self.state.subscriptions.pop(request.match_info["id"], None)
        return _problem(404, "no such subscription") if doc is None else _json(doc)

    async def _vens(self, request: web.Request) -> web.Response:
        name = request.query.get("venName")
        return _json([v for v in self.state.vens.values() if name in (None, v.get("venName"))])

    async def _post_ven(self, request: web.Request) -> web.Response:
        doc = codec.loads(await request.read())
        ven = codec.ven(doc)
        if any(v.get("venName") == ven.ven_name for v in self.state.vens.values()):
            return _problem(409, f"VEN {ven.ven_name!r} exists")
        vid = self.state.new_id("ven")
        doc.update(id=vid, createdDateTime=self.state.stamp())
        self.state.vens[vid] = doc
        return _json(doc, 201)


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=codec.dumps(doc), content_type=JSON)


def _problem(status: int, detail: str) -> web.Response:
    body = codec.dumps({"type": "about:blank", "title": detail, "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/problem+json")


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        skip = max(0, int(request.query.get("skip", "0")))
        limit = max(1, min(int(request.query.get("limit", "50")), 50))
    except ValueError:
        raise ProtocolError("skip and limit must be integers") from None
    return skip, limit


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    clients: Mapping[str, str] | None = None,
    programs: Iterable[str] = ("demo",),
    stop: asyncio.Event | None = None,
) -> None:
    """Run a VTN until ``stop`` is set (for ``gateway simulate vtn --openadr 3``)."""
    state = VtnState(clients=dict(clients or {"gateway": "secret"}))
    for name in programs:
        state.add_program(name)
    async with Vtn3Server(state, host=host, port=port, cert=cert, key=key) as vtn:
        log.info("OpenADR 3 VTN at %s (programs: %s)", vtn.url, ", ".join(programs))
        await (stop or asyncio.Event()).wait()
