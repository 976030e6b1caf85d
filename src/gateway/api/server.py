"""The local API's HTTP shell (aiohttp): the routes of ``openapi.yaml``, bearer auth on the
writes, and the server-sent event stream the dashboard follows (it never polls).

Reads are open to whoever can reach the port (127.0.0.1 by default). Each write needs
``Authorization: Bearer <token>`` (the ``[api] token_file``); every write that reaches a route,
refused or not, is audited (device ``api``), and a refusal says why in its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from gateway.api import views
from gateway.api.config import ApiConfig
from gateway.api.metrics import Metrics
from gateway.api.site import ApiSite
from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.messages import BackupReserveSet, ManualOverride, Observed
from gateway.store.api import FAULT_RESET, AuditEntry, AuditRecord, Store, StoreError

log = logging.getLogger(__name__)

ISLAND: Final = ControlSet(connect=False)
AUDIT_PAGE_MAX: Final = 500
#: How long a fault reset may take to be answered: the next control cycle takes the request,
#: and the reset's own device steps (a relay confirmed open) can take a step timeout or two.
RESET_WAIT_S: Final = 30.0
STREAM_QUEUE: Final = 256  # events a slow stream may fall behind by before it is dropped
HEARTBEAT_S: Final = 15.0  # a comment line keeps proxies and the browser from timing out
HISTORY_EVERY_S: Final = 1.0  # the chart's resolution
HISTORY_POINTS: Final = 3600  # an hour of it
STATIC: Final = Path(str(resources.files("gateway.api").joinpath("static")))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status, dumps=lambda d: json.dumps(d, default=str))


class Api:
    """The routes, on a site and its store. ``token`` None: the writes are off."""

    def __init__(self, site: ApiSite, store: Store, token: str | None) -> None:
        self.site = site
        self.store = store
        self.token = token
        self._streams: set[asyncio.Queue[tuple[str, Any]]] = set()
        self._last_status: dict[str, Any] | None = None
        self._audit_seen = self._last_audit_id()
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self.metrics = Metrics(site, lambda: len(store.pending()))
        site.on_cycle(self.metrics.cycled)
        site.on_cycle(self._cycled)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes(
            [
                web.get("/api/status", self.status),
                web.get("/api/schedule", self.schedule),
                web.get("/api/devices", self.devices),
                web.get("/api/audit", self.audit),
                web.get("/api/outbox", self.outbox),
                web.get("/api/stream", self.stream),
                web.get("/api/history", self.history),
                web.get("/api/openapi.yaml", self.openapi),
                web.get("/", self.dashboard),
                web.static("/static", STATIC),
                web.get("/healthz", self.health),
                web.get("/metrics", self.prometheus),
                web.post("/api/island", self.island),
                web.post("/api/reconnect", self.reconnect),
                web.post("/api/fault-reset", self.fault_reset),
                web.post("/api/backup-reserve", self.backup_reserve),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except StoreError as e:
            log.warning("api %s %s: the store failed: %s", request.method, request.path, e)
            return _json({"error": f"the store could not be read or written: {e}"}, 503)

    # --- reads -------------------------------------------------------------------------------

    async def status(self, _: web.Request) -> web.Response:
        return _json(views.status(self.site))

    async def schedule(self, _: web.Request) -> web.Response:
        return _json(views.schedule(self.site))

    async def devices(self, _: web.Request) -> web.Response:
        return _json(views.devices(self.site))

    async def dashboard(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def history(self, _: web.Request) -> web.Response:
        """The last hour of site power, export limit and allowance, a point a second."""
        return _json(list(self._history))

    async def audit(self, request: web.Request) -> web.Response:
        if "tail" in request.query:
            return self._tail(request.query["tail"])
        since, limit = request.query.get("since", "0"), request.query.get("limit", "100")
        if not (since.isdigit() and limit.isdigit() and 1 <= int(limit) <= AUDIT_PAGE_MAX):
            why = f"since: an entry id >= 0; limit: 1 to {AUDIT_PAGE_MAX}; got {since!r}, {limit!r}"
            return _json({"error": why}, 400)
        records = self.store.audit(since_id=int(since), limit=int(limit))
        return _json(views.audit_page(records, int(limit)))

    def _tail(self, tail: str) -> web.Response:
        if not (tail.isdigit() and 1 <= int(tail) <= AUDIT_PAGE_MAX):
            return _json({"error": f"tail: 1 to {AUDIT_PAGE_MAX}; got {tail!r}"}, 400)
        # Ids increase without gaps: the last N entries are those after (last - N).
        self._catch_up()
        since = max(0, self._audit_seen - int(tail))
        records = self.store.audit(since_id=since, limit=int(tail))
        return _json(views.audit_page(records, int(tail)))

    async def outbox(self, _: web.Request) -> web.Response:
        return _json(views.outbox(self.store.pending()))

    async def openapi(self, _: web.Request) -> web.Response:
        text = resources.files("gateway.api").joinpath("openapi.yaml").read_text("utf-8")
        return web.Response(text=text, content_type="application/yaml")

    async def prometheus(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.expose(), content_type="text/plain")

    async def health(self, _: web.Request) -> web.Response:
        phase = self.site.phase()
        ok = self.site.cycles > 0
        shown = None if phase is None else phase.value
        doc = {"ok": ok, "cycles": self.site.cycles, "phase": shown}
        return _json(doc, 200 if ok else 503)

    # --- the stream --------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``text/event-stream``: ``status`` now and whenever it changes, ``audit`` for each new
        audit entry (a device write, a request, a fault), as the control cycles find them."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(STREAM_QUEUE)
        self._streams.add(queue)
        try:
            await _send(response, "status", views.status(self.site))
            while True:
                try:
                    kind, doc = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if kind == "closed":
                    break
                await _send(response, kind, doc)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(queue)
        return response

    def _cycled(self, _: Observed) -> None:
        now = self.site.now()
        if not self._history or now - self._history[-1]["t"] >= HISTORY_EVERY_S:
            point = views.point(self.site)
            self._history.append(point)
            self._publish("point", point)
        fresh = self._catch_up()
        if not self._streams:
            return
        doc = views.status(self.site)
        shown = {k: v for k, v in doc.items() if k != "at"}
        if shown != self._last_status:
            self._last_status = shown
            self._publish("status", doc)
        for row in views.audit_page(fresh, len(fresh) + 1)["entries"]:
            self._publish("audit", row)

    def _catch_up(self) -> list[AuditRecord]:
        """The audit entries added since the last look (and remember the newest id)."""
        fresh: list[AuditRecord] = []
        try:
            while page := self.store.audit(since_id=self._audit_seen, limit=AUDIT_PAGE_MAX):
                fresh += page
                self._audit_seen = page[-1].id
        except StoreError as e:
            log.warning("api: the audit log could not be read: %s", e)
        return fresh

    def _publish(self, kind: str, doc: Any) -> None:
        for q in list(self._streams):
            try:
                q.put_nowait((kind, doc))
            except asyncio.QueueFull:
                # A client that does not read is dropped, not waited for: the control loop
                # calls this, and it must not slow down for a browser tab.
                self._streams.discard(q)
                with contextlib.suppress(asyncio.QueueFull):
                    q.get_nowait()
                    q.put_nowait(("closed", None))

    def _last_audit_id(self) -> int:
        try:
            last = 0
            while page := self.store.audit(since_id=last, limit=1000):
                last = page[-1].id
            return last
        except StoreError:
            return 0

    # --- writes ------------------------------------------------------------------------------

    async def island(self, request: web.Request) -> web.Response:
        return await self._write(request, "island", self._island)

    async def reconnect(self, request: web.Request) -> web.Response:
        return await self._write(request, "reconnect", self._reconnect)

    async def fault_reset(self, request: web.Request) -> web.Response:
        return await self._write(request, "fault-reset", self._fault_reset)

    async def backup_reserve(self, request: web.Request) -> web.Response:
        return await self._write(request, "backup-reserve", self._backup_reserve)

    async def _write(
        self,
        request: web.Request,
        what: str,
        act: Callable[[str, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> web.Response:
        by = "homeowner"
        refusal = self._unauthorised(request)
        if refusal is not None:
            status, doc = refusal
        else:
            body, problem = await _body(request)
            if problem is not None:
                status, doc = 400, {"accepted": False, "reasons": [problem]}
            else:
                by = str(body.get("by") or by)
                status, doc = await act(by, body)
        outcome = "accepted" if doc.get("accepted") else "refused"
        reasons = "; ".join(doc.get("reasons", [])) or doc.get("reason", "")
        self.store.append_audit(
            AuditEntry(
                at=self.site.now(),
                device="api",
                point=what,
                value=by,
                reason=f"local API: {what} asked by {by}",
                outcome=f"{outcome}: {reasons}" if reasons else outcome,
            )
        )
        log.info("api %s by %s: %s %s", what, by, outcome, reasons)
        return _json(doc, status)

    def _unauthorised(self, request: web.Request) -> tuple[int, dict[str, Any]] | None:
        if self.token is None:
            why = "writes are off: the site file's [api] has no token_file"
            return 403, {"accepted": False, "reasons": [why]}
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), self.token):
            why = "a write needs 'Authorization: Bearer <token>' with the [api] token_file's token"
            return 401, {"accepted": False, "reasons": [why]}
        return None

    async def _island(self, _by: str, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = self.site.now()
        reasons = self.site.assess(ISLAND, now)
        if reasons:
            return 409, {"accepted": False, "reasons": reasons}
        await self.site.feed(ManualOverride(now, ISLAND))
        reason = "the home islands: export stopped, relay opened, then the EV forms the grid"
        return 202, {"accepted": True, "reason": reason, "status": views.status(self.site)}

    async def _reconnect(self, _by: str, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        decision = self.site.resolved().decisions.get(Mode.CONNECT)
        if decision is None or decision.source is not Source.MANUAL_OVERRIDE:
            held = self.site.resolved().explain(Mode.CONNECT)
            why = f"no homeowner island request is in force ({held})"
            return 409, {"accepted": False, "reasons": [why]}
        await self.site.feed(ManualOverride(self.site.now(), None))
        after = self.site.resolved().decisions.get(Mode.CONNECT)
        if after is not None and after.value is False:
            reason = (
                "the homeowner's island request is cleared, but the home stays islanded: "
                + self.site.resolved().explain(Mode.CONNECT)
            )
        else:
            reason = "the home reconnects once the grid has been in the window for the delay"
        return 202, {"accepted": True, "reason": reason, "status": views.status(self.site)}

    async def _backup_reserve(self, by: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The EV's charge kept for an outage, set by the homeowner (kept across restarts);
        the engine discharges the EV only above it, on the grid and in an island."""
        pct = _reserve_value(body)
        if pct is None:
            got = body.get("soc_pct")
            why = f'soc_pct: a number from 0 to 100 (%), e.g. {{"soc_pct": 40}}; got {got!r}'
            return 400, {"accepted": False, "reasons": [why]}
        before = self.site.config.backup_reserve_soc_pct
        await self.site.feed(BackupReserveSet(self.site.now(), pct, by))
        now_pct = self.site.config.backup_reserve_soc_pct
        if now_pct != pct:  # pragma: no cover - the engine takes every value in 0-100
            return 409, {"accepted": False, "reasons": [f"the reserve stayed at {now_pct:g} %"]}
        reason = f"backup reserve {before:g} % -> {pct:g} %"
        return 200, {"accepted": True, "reason": reason, "status": views.status(self.site)}

    async def _fault_reset(self, by: str, _: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Through the store's request queue, as ``gateway fault-reset`` asks: the control
        loop takes it at its next cycle and the engine decides (and audits why)."""
        asked = time.time()
        rid = self.store.add_request(FAULT_RESET, by, asked, expires_at=asked + RESET_WAIT_S)
        deadline = asked + RESET_WAIT_S
        while time.time() < deadline:
            r = self.store.request(rid)
            if r is not None and r.answered:
                reason = r.reason or ""
                if r.status == "accepted":
                    return 200, {"accepted": True, "reason": reason}
                return 409, {"accepted": False, "reasons": [reason or r.status]}
            await asyncio.sleep(0.1)
        self.store.withdraw_request(rid, time.time())
        why = f"no control cycle took the request within {RESET_WAIT_S:g} s: is the loop running?"
        return 504, {"accepted": False, "reasons": [why]}


def _reserve_value(body: dict[str, Any]) -> float | None:
    v = body.get("soc_pct")
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if 0 <= v <= 100 else None


async def _body(request: web.Request) -> tuple[dict[str, Any], str | None]:
    if not request.can_read_body:
        return {}, None
    try:
        doc = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return {}, f"the body is not JSON: {e}"
    if not isinstance(doc, dict) or not isinstance(doc.get("by", ""), str):
        return {}, 'the body is a JSON object, e.g. {"by": "alex"}'
    return doc, None


async def _send(response: web.StreamResponse, kind: str, doc: Any) -> None:
    data = json.dumps(doc, default=str)
    await response.write(f"event: {kind}\ndata: {data}\n\n".encode())


class ApiServer:
    """``async with ApiServer(site, store, config)``: the API served on its address."""

    def __init__(self, site: ApiSite, store: Store, config: ApiConfig) -> None:
        self.api = Api(site, store, config.token())
        self.config = config
        self._runner: web.AppRunner | None = None
        self.port = config.port

    @property
    def url(self) -> str:
        return f"http://{self.config.listen}:{self.port}"

    async def __aenter__(self) -> ApiServer:
        self._runner = web.AppRunner(self.api.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen, self.config.port)
        await site.start()
        server = site._server  # the bound port, when 0 asked for any
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for q in list(self.api._streams):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(("closed", None))
        if self._runner is not None:
            await self._runner.cleanup()
