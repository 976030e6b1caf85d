"""A small OpenADR 3.0.1 VTN on aiohttp, for tests, the demo and ``gateway simulate vtn``.

Endpoints: ``GET /auth/server``, ``POST /oauth/token`` (also ``/auth/token``, the spec's path;
client credentials, form-encoded or HTTP Basic, optional ``scope``), and for each of
``programs``, ``events``, ``reports``, ``subscriptions``, ``vens``: ``GET`` (search, with the
spec's filters and ``skip``/``limit`` paging, at most 50), ``POST`` (201), and
``GET``/``PUT``/``DELETE`` ``/{collection}/{id}``; the same for a VEN's resources under
``/vens/{venID}/resources``. Every call but the token ones needs a bearer
token the VTN issued (401) with the operation's scope (403: ``read_all`` to read, the
collection's ``write_*`` to write, see :mod:`.auth`). Unknown ids answer 404, bodies that are
not a valid object 400, a second program or VEN of the same name 409; every error is an RFC
7807 problem. The server sets ``id``, ``objectType``, ``createdDateTime`` and
``modificationDateTime`` on every object; a PUT keeps ``createdDateTime``.

Scriptable from Python (``Vtn3Server.state`` is a :class:`VtnState`): add programs, add, modify
and delete events (each change, like each change over HTTP, notified at once to every matching
subscription's ``callbackUrl`` with its ``bearerToken``), serve raw bytes as the event list
(hostile JSON), answer the next N requests with 429/500, cut communications (connections
dropped). Every request is recorded (:attr:`VtnState.requests`), every notification attempt too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.core import errors
from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import ProtocolError
from gateway.sim.vtn3 import auth
from gateway.sim.vtn3.objects import KINDS, ConflictError, Kind, body, search
from gateway.sim.vtn3.state import Delivery, Exchange, VtnState

__all__ = ["Delivery", "Exchange", "Vtn3Server", "VtnState", "serve"]

log = logging.getLogger(__name__)

JSON = "application/json"
TOKEN_PATHS = ("/auth/server", "/oauth/token", "/auth/token")


class _RefusedError(errors.ProtocolError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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
        r.add_post("/auth/token", self._token)
        for name, kind in KINDS.items():
            base = "/vens/{ven}/resources" if name == "resources" else f"/{name}"
            r.add_get(base, partial(self._search, kind))
            r.add_post(base, partial(self._create, kind))
            r.add_get(f"{base}/{{id}}", partial(self._get, kind))
            r.add_put(f"{base}/{{id}}", partial(self._put, kind))
            r.add_delete(f"{base}/{{id}}", partial(self._delete, kind))
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
            object_type, operation, doc = await queue.get()
            # A subscription is to one program: a program's own changes, or its objects'.
            program = doc.get("id") if object_type == "PROGRAM" else doc.get("programID")
            for sub in list(self.state.subscriptions.values()):
                if program is not None and sub.get("programID") not in (None, program):
                    continue
                for op in sub.get("objectOperations", []):
                    if object_type in op.get("objects", []) and operation in op.get(
                        "operations", []
                    ):
                        await self._deliver(op, object_type, operation, doc)

    async def _deliver(
        self, op: dict[str, Any], object_type: str, operation: str, doc: dict[str, Any]
    ) -> None:
        assert self._session is not None
        note = {"objectType": object_type, "operation": operation, "object": doc}
        headers = {"Content-Type": JSON}
        if op.get("bearerToken"):
            headers["Authorization"] = f"Bearer {op['bearerToken']}"
        status: int | None = None
        try:
            async with self._session.post(
                op["callbackUrl"], data=codec.dumps(note), headers=headers
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            log.info("vtn3: notification to %s failed: %s", op["callbackUrl"], e)
        self.state.deliveries.append(
            Delivery(
                op["callbackUrl"],
                operation,
                str(doc.get("id")),
                status,
                self.state.clock(),
                object_type,
            )
        )

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        s = self.state
        raw = await request.read()
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
        elif request.path not in TOKEN_PATHS and self._scopes(request) is None:
            response = _problem(401, "missing, unknown or expired bearer token")
        else:
            try:
                response = await handler(request)
            except ProtocolError as e:
                response = _problem(400, str(e))
            except ConflictError as e:
                response = _problem(409, str(e))
            except _RefusedError as e:
                response = _problem(e.status, e.detail)
            except web.HTTPException as e:  # no such route or method: a problem too
                response = _problem(e.status, e.reason)
        s.requests.append(
            Exchange(
                request.method, request.path, dict(request.query), raw, response.status, s.clock()
            )
        )
        return response

    def _scopes(self, request: web.Request) -> frozenset[str] | None:
        auth_header = request.headers.get("Authorization", "")
        if not auth_header.startswith("Bearer "):
            return None
        token = auth_header[7:]
        until = self.state.tokens.get(token)
        if until is None or time.monotonic() >= until:
            return None
        return self.state.scopes.get(token, auth.ROLE_SCOPES["VEN"])

    def _need(self, request: web.Request, scope: str) -> None:
        if scope not in (self._scopes(request) or ()):
            raise _RefusedError(403, f"this token lacks the scope {scope}")

    def _ven(self, request: web.Request) -> dict[str, str]:
        """For a VEN's resources: ``{"venID": id}`` of the VEN in the path (404 if none)."""
        vid = request.match_info.get("ven")
        if vid is None:
            return {}
        if vid not in self.state.vens:
            raise _RefusedError(404, f"no ven {vid[:128]!r}")
        return {"venID": vid}

    def _find(self, kind: Kind, request: web.Request) -> tuple[str, dict[str, Any]]:
        scope = self._ven(request)
        oid = request.match_info["id"]
        doc = self.state.table(kind.collection).get(oid)
        if doc is None or any(doc.get(k) != v for k, v in scope.items()):
            raise _RefusedError(404, f"no {kind.object_type.lower()} {oid[:128]!r}")
        return oid, doc

    # -- handlers --------------------------------------------------------------------------

    async def _auth_server(self, _request: web.Request) -> web.Response:
        return _json({"tokenURL": f"{self.url}/oauth/token"})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth_header = request.headers.get("Authorization", "")
        if auth_header.startswith("Basic "):
            with contextlib.suppress(ValueError):
                cid, _, secret = base64.b64decode(auth_header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        if not isinstance(cid, str) or self.state.clients.get(cid) != secret:
            return _json({"error": "invalid_client", "error_description": "bad credentials"}, 401)
        scope = form.get("scope")
        requested = scope if isinstance(scope, str) else None
        role = self.state.roles.get(cid, "VEN")
        scopes, refused = auth.grant(role, requested)
        if refused:
            detail = f"{cid} is a {role} client: not {' '.join(sorted(refused))}"
            return _json({"error": "invalid_scope", "error_description": detail}, 400)
        token = secrets.token_urlsafe(24)
        self.state.tokens[token] = time.monotonic() + self.state.token_life_s
        self.state.scopes[token] = scopes
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.state.token_life_s,
                "scope": " ".join(sorted(scopes)),
            }
        )

    async def _search(self, kind: Kind, request: web.Request) -> web.Response:
        self._need(request, auth.READ)
        if kind.collection == "events" and self.state.raw_events is not None:
            return web.Response(body=self.state.raw_events, content_type=JSON)
        scope = self._ven(request)
        items = [
            d
            for d in self.state.table(kind.collection).values()
            if all(d.get(k) == v for k, v in scope.items())
        ]
        return _json(search(items, kind, request.query))

    async def _create(self, kind: Kind, request: web.Request) -> web.Response:
        self._need(request, kind.write_scope)
        doc = {**body(await request.read(), kind), **self._ven(request)}
        self.state.check_refs(kind.collection, doc)
        return _json(self.state.create(kind.collection, doc), 201)

    async def _get(self, kind: Kind, request: web.Request) -> web.Response:
        self._need(request, auth.READ)
        return _json(self._find(kind, request)[1])

    async def _put(self, kind: Kind, request: web.Request) -> web.Response:
        self._need(request, kind.write_scope)
        oid, _ = self._find(kind, request)
        doc = {**body(await request.read(), kind), **self._ven(request)}
        self.state.check_refs(kind.collection, doc, oid)
        return _json(self.state.replace(kind.collection, oid, doc))

    async def _delete(self, kind: Kind, request: web.Request) -> web.Response:
        self._need(request, kind.write_scope)
        oid, _ = self._find(kind, request)
        return _json(self.state.remove(kind.collection, oid))


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=codec.dumps(doc), content_type=JSON)


def _problem(status: int, detail: str) -> web.Response:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = detail
    body = codec.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/problem+json")


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
    """Run a VTN until ``stop`` is set (plain HTTP without ``cert``/``key``)."""
    state = VtnState(clients=dict(clients or dict([auth.DEFAULT_VEN])))
    for name in programs:
        state.add_program(name)
    async with Vtn3Server(state, host=host, port=port, cert=cert, key=key) as vtn:
        log.info("OpenADR 3 VTN at %s (programs: %s)", vtn.url, ", ".join(programs))
        await (stop or asyncio.Event()).wait()
