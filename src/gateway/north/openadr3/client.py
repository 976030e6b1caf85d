"""The OpenADR 3 VEN's I/O: HTTP to the VTN (aiohttp), token, polling, reports, notifications.

The only module of the package, with ``webhook.py``, that touches sockets or the clock's
sleeping. Decisions are in the pure modules: ``codec`` (bytes -> objects), ``tracking`` (what
changed -> core inputs), ``mapping`` (payloads -> controls), ``reports`` (telemetry -> report).

* Token: OAuth 2.0 client credentials (RFC 6749 §4.4), form-encoded POST to the token URL (the
  configured one, else the VTN's ``GET /auth/server`` ``tokenURL``), cached until 30 s before
  ``expires_in`` and fetched again on a 401.
* VEN: looked up by ``venName`` (``GET /vens?venName=``), created if absent (``POST /vens``).
* Programs: ``GET /programs``, matched by ``programName`` to the configured ones.
* Events: ``GET /events?programID=`` every ``poll_s`` (paged with skip/limit), and at once on a
  webhook notification (``POST``/``PUT`` upserts the object it carries, ``DELETE`` ends it).
* Subscriptions: one per program for ``EVENT`` ``POST``/``PUT``/``DELETE`` to the listener's
  URL with a fresh random bearer token; earlier event subscriptions under our clientName on
  that program (a previous run's, maybe at another URL) are deleted first.
* What a VTN can lose without telling (``VTN_CHECK_S``, and at once when a poll brings a change
  no notification did): a followed program listed under a new id is followed there (the old
  id's events end), and a subscription the VTN no longer holds is made again.
* Reports: ``POST /reports`` for each followed event that has ``reportDescriptors``, once per
  ``report_period_s`` while it runs; the last period sent is kept in the store.
* 429 / 5xx / connection errors: back off (doubling from ``backoff_min_s`` to
  ``backoff_max_s``, at least the server's Retry-After) and tell the core the link is lost
  (``NorthLinkLost``) until a request succeeds again (``NorthLinkRestored``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from gateway.core import errors
from gateway.core.controls import ControlSet
from gateway.core.errors import TransportError
from gateway.core.messages import Input, NorthLinkLost, NorthLinkRestored, Observed
from gateway.core.ports import StateStore
from gateway.core.units import Timestamp
from gateway.north.openadr3 import codec, reports
from gateway.north.openadr3.config import Oadr3Config
from gateway.north.openadr3.mapping import ORIGIN, Mapped, ProgramMapping, map_event
from gateway.north.openadr3.model import (
    Event,
    Notification,
    ObjectOperation,
    Program,
    ProtocolError,
    Subscription,
    Token,
    Ven,
)
from gateway.north.openadr3.tracking import Changes, Tracker

log = logging.getLogger(__name__)

PAGE: Final = 50
MAX_PAGES: Final = 20
TOKEN_MARGIN_S: Final = 30.0
EVENTS_KEY: Final = "openadr3.events"
# How often the VEN checks what a VTN can lose without telling anyone (restarted without its
# store, or expiring subscriptions): its programs' ids, and our subscriptions. Also checked at
# once when a poll brings a change that no notification did.
VTN_CHECK_S: Final = 300.0
REPORTS_KEY: Final = "openadr3.reports"
FIRST_READ_S: Final = 10.0  # at most this long for the site's first read before the first poll


class AuthError(errors.ConfigError):
    """The token endpoint refused our client credentials: a person must fix the config."""


class VtnError(errors.ProtocolError):
    """The VTN refused a request (4xx other than 401/429)."""


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS to the VTN: the configured CA (or the system store), hostname checked, TLS >= 1.2."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _retry_after(headers: Any) -> float | None:
    v = headers.get("Retry-After")
    try:
        return None if v is None else max(0.0, min(float(v), 3600.0))
    except ValueError:
        return None


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _problem(body: bytes) -> str:
    try:
        return str(codec.one(codec.problem, body, "problem"))
    except ProtocolError:
        return body[:200].decode("utf-8", "replace")


async def _read_capped(stream: aiohttp.StreamReader, url: str) -> bytes:
    """The whole body, refusing it past the codec's cap without reading it all into memory."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in stream.iter_chunked(1 << 16):
        total += len(chunk)
        if total > codec.MAX_BODY:
            raise ProtocolError(f"{url}: answer over the {codec.MAX_BODY}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


class Http:
    """One aiohttp session to the VTN with the bearer token managed."""

    def __init__(self, cfg: Oadr3Config, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.cfg = cfg
        self.base = cfg.vtn
        self.ssl = ssl_context or client_context(None if cfg.ca_file is None else str(cfg.ca_file))
        self._session: aiohttp.ClientSession | None = None
        self._token: Token | None = None
        self._token_until = 0.0
        self._token_url = cfg.token_url
        self.requests = 0

    async def __aenter__(self) -> Http:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            connector=aiohttp.TCPConnector(ssl=self.ssl),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use 'async with Http(...)'"
        return self._session

    async def _raw(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: bytes | dict[str, str] | None = None,
    ) -> tuple[int, bytes, Any]:
        self.requests += 1
        try:
            async with self.session.request(
                method, url, headers=headers, params=params, data=data, allow_redirects=False
            ) as resp:
                return resp.status, await _read_capped(resp.content, url), resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise TransportError(f"{method} {url}: {type(e).__name__}: {e}") from None

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._token_until:
            return self._token.access_token
        if self._token_url is None:
            status, body, _ = await self._raw("GET", f"{self.base}/auth/server")
            if status != 200:
                raise TransportError(f"GET /auth/server answered {status}: {_problem(body)}")
            doc = codec.loads(body)
            url = doc.get("tokenURL") if isinstance(doc, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ProtocolError("GET /auth/server: no tokenURL in the answer")
            self._token_url = url
        form = {
            "grant_type": "client_credentials",
            "client_id": self.cfg.client_id,
            "client_secret": self.cfg.client_secret,
        }
        status, body, headers = await self._raw("POST", self._token_url, data=form)
        if status in (400, 401, 403):
            raise AuthError(
                f"the token endpoint refused client_id {self.cfg.client_id!r} ({status}: "
                f"{_problem(body)}): check client_id and client_secret"
            )
        if status == 429 or status >= 500:
            raise TransportError(
                f"token endpoint answered {status}", retry_after_s=_retry_after(headers)
            )
        if status != 200:
            raise VtnError(f"token endpoint answered {status}: {_problem(body)}")
        tok = codec.one(codec.token, body, "token")
        self._token = tok
        life = tok.expires_in_s if tok.expires_in_s is not None else 3600.0
        self._token_until = time.monotonic() + max(0.0, life - TOKEN_MARGIN_S)
        return tok.access_token

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        doc: Any = None,
    ) -> tuple[int, bytes]:
        """One VTN request with the bearer token (fetched again once on a 401)."""
        for attempt in (0, 1):
            headers = {
                "Authorization": f"Bearer {await self.token()}",
                "Accept": "application/json",
            }
            data = None
            if doc is not None:
                headers["Content-Type"] = "application/json"
                data = codec.dumps(doc)
            status, body, h = await self._raw(
                method, f"{self.base}{path}", headers=headers, params=params, data=data
            )
            if status == 401 and attempt == 0:
                self._token = None
                continue
            if status == 429 or status >= 500:
                raise TransportError(
                    f"{method} {path} answered {status}: {_problem(body)}",
                    retry_after_s=_retry_after(h),
                )
            if status == 401:
                raise AuthError(f"{method} {path}: 401 with a fresh token: {_problem(body)}")
            return status, body
        raise AssertionError("unreachable")


@dataclass
class Deps:
    """What the VEN needs from the site, drawn from the port (``core.ports.SitePort``) by
    ``adapter.Oadr3Gateway``; the first shape of that port, kept as the client's seam."""

    deliver: Callable[[list[Input]], Awaitable[None]]
    observed: Callable[[], Observed | None]
    assess: Callable[[ControlSet, Timestamp], list[str]]
    now: Callable[[], Timestamp]
    store: StateStore


class VenClient:
    def __init__(self, http: Http, cfg: Oadr3Config, deps: Deps) -> None:
        self.http = http
        self.cfg = cfg
        self.deps = deps
        self.ven: Ven | None = None
        self.programs: dict[str, tuple[Program, ProgramMapping]] = {}  # by programID
        self.events: dict[str, Event] = {}  # the latest version of each event, by id
        known = Tracker.known_from_doc(deps.store.get_state(EVENTS_KEY))
        self.tracker = Tracker(self._map, deps.assess, known)
        self._saved: dict[str, Any] | None = None
        saved = deps.store.get_state(REPORTS_KEY) or {}
        self.reported: dict[str, int] = {
            k: v for k, v in saved.items() if isinstance(v, int) and not isinstance(v, bool)
        }
        self.notifications: asyncio.Queue[Notification] = asyncio.Queue()
        self.callback: tuple[str, str] | None = None  # (url, bearer token) of our listener
        self.link_lost = False
        self.poll_now = asyncio.Event()
        self._wake = asyncio.Event()
        self.polls = 0
        self.reports_sent = 0
        self._skipped_logged: set[str] = set()
        self._backoff = cfg.backoff_min_s
        self.resubscribed = 0  # subscriptions made again after the VTN lost them
        self.programs_moved = 0  # followed programs the VTN came to list under a new id
        self._check_at = 0.0  # loop time of the next check of the VTN

    def _map(self, ev: Event, now: Timestamp) -> Mapped:
        entry = self.programs.get(ev.program_id)
        if entry is None:
            return Mapped((), (f"program {ev.program_id!r} is not one this gateway follows",))
        return map_event(ev, entry[1], now, entry[0].payload_descriptors)

    def new_callback(self, url: str) -> str:
        """Give the listener's URL; returns the bearer token the VTN must present to it."""
        token = secrets.token_urlsafe(24)
        self.callback = (url, token)
        return token

    # -----------------------------------------------------------------------------------------
    # Start-up

    async def connect(self) -> None:
        """Token, VEN, programs, subscriptions. Raises AuthError/TransportError/VtnError."""
        await self.http.token()
        await self._ven()
        await self._programs()
        # Events remembered (the store) from a program id the VTN no longer lists a followed
        # program under (it moved while we were down, or the configuration dropped it): no
        # poll will ever list them again, so they end now rather than run on unseen.
        gone = {k.program_id for k in self.tracker.known.values()} - set(self.programs)
        for pid in sorted(gone):
            log.warning(
                "openadr3: events remembered from program id %s, which no followed program "
                "has at the VTN now: they end",
                pid,
            )
            await self._apply(self.tracker.sync(pid, [], [], self.deps.now()))
        if self.callback is not None:
            for pid in self.programs:
                await self._subscribe(pid)
        self._check_at = _loop_time() + VTN_CHECK_S

    async def _ven(self) -> None:
        name = self.cfg.ven_name
        status, body = await self.http.call("GET", "/vens", params={"venName": name})
        if status != 200:
            raise VtnError(f"GET /vens answered {status}: {_problem(body)}")
        found = [v for v in codec.many(codec.ven, body, "vens") if v.ven_name == name]
        if found:
            self.ven = found[0]
            return
        status, body = await self.http.call("POST", "/vens", doc=codec.encode_ven(Ven(name)))
        if status not in (200, 201):
            raise VtnError(f"POST /vens answered {status}: {_problem(body)}")
        self.ven = codec.one(codec.ven, body, "ven")
        log.info("registered as VEN %r (id %s)", name, self.ven.id)

    async def _vtn_programs(self) -> dict[str, Program]:
        """Every program the VTN lists, by name: paged as events are (a VTN answers a page of
        its default ``limit``, 50 in the reference one, when none is given)."""
        out: dict[str, Program] = {}
        for page in range(MAX_PAGES):
            params = {"skip": str(page * PAGE), "limit": str(PAGE)}
            status, body = await self.http.call("GET", "/programs", params=params)
            if status != 200:
                raise VtnError(f"GET /programs answered {status}: {_problem(body)}")
            got = codec.many(codec.program, body, "programs")
            out.update((p.program_name, p) for p in got)
            if len(got) < PAGE:
                break
        return out

    async def _programs(self) -> None:
        by_name = await self._vtn_programs()
        followed = {entry[1].program_name for entry in self.programs.values()}
        for m in self.cfg.programs:
            p = by_name.get(m.program_name)
            if m.program_name in followed:
                continue
            if p is None:
                if m.program_name not in self._skipped_logged:
                    self._skipped_logged.add(m.program_name)
                    log.warning(
                        "openadr3: program %r is not offered by the VTN; its events are not "
                        "followed until it is",
                        m.program_name,
                    )
                continue
            self.programs[p.id] = (p, m)

    async def _ours(self, program_id: str) -> list[Subscription]:
        """Our event subscriptions on the program as the VTN lists them (our clientName)."""
        params = {"programID": program_id, "clientName": self.cfg.ven_name}
        status, body = await self.http.call("GET", "/subscriptions", params=params)
        if status != 200:
            raise VtnError(f"GET /subscriptions answered {status}: {_problem(body)}")
        return [
            s
            for s in codec.many(codec.subscription, body, "subscriptions")
            if s.client_name == self.cfg.ven_name
            and s.program_id == program_id
            and s.id
            and any("EVENT" in o.objects for o in s.object_operations)
        ]

    async def _unsubscribe(self, program_id: str) -> None:
        """Delete our event subscriptions on the program: a callback URL that changed (a new
        port after a restart), or a program id the VTN moved away from, must not leave one
        behind to be called forever. A VTN that will not list them leaves nothing to do."""
        with contextlib.suppress(VtnError):
            for s in await self._ours(program_id):
                await self.http.call("DELETE", f"/subscriptions/{s.id}")

    async def _subscribe(self, program_id: str) -> None:
        assert self.callback is not None
        url, bearer = self.callback
        await self._unsubscribe(program_id)
        sub = Subscription(
            client_name=self.cfg.ven_name,
            program_id=program_id,
            object_operations=(
                ObjectOperation(("EVENT",), ("POST", "PUT", "DELETE"), url, bearer),
            ),
        )
        status, body = await self.http.call(
            "POST", "/subscriptions", doc=codec.encode_subscription(sub)
        )
        if status not in (200, 201):
            raise VtnError(f"POST /subscriptions answered {status}: {_problem(body)}")
        log.info("subscribed to events of program %s at %s", program_id, url)

    async def _has_subscription(self, program_id: str) -> bool:
        """Whether the VTN still holds our event subscription on the program, to our listener."""
        assert self.callback is not None
        url = self.callback[0]
        return any(
            o.callback_url == url for s in await self._ours(program_id) for o in s.object_operations
        )

    async def check_vtn(self) -> None:
        """What the VTN may have lost: a followed program's id, then our subscriptions. A VTN
        that refuses or garbles these requests is logged and checked again at the next check;
        the poll goes on (a lost link still raises, as for any request)."""
        self._check_at = _loop_time() + VTN_CHECK_S
        try:
            await self._follow_moved_programs()
            if self.callback is not None:
                await self.check_subscriptions()
        except (ProtocolError, VtnError) as e:
            log.warning("openadr3: checking the VTN's programs and subscriptions: %s", e)

    async def _follow_moved_programs(self) -> None:
        """A followed program the VTN now lists under another id (restarted without its
        store): follow the new id. The old id's events went with it, so they end now;
        polling the old id would only say so, and would never see the new id's events."""
        by_name = await self._vtn_programs()
        for old_id, (_, m) in list(self.programs.items()):
            p = by_name.get(m.program_name)
            if p is None or p.id == old_id:
                continue
            log.warning(
                "openadr3: the VTN lists program %r under a new id (%s, was %s): following "
                "the new one; the events of the old one are gone from the VTN and end now",
                m.program_name,
                p.id,
                old_id,
            )
            del self.programs[old_id]
            self.programs[p.id] = (p, m)
            self.programs_moved += 1
            for event_id in [e for e, ev in self.events.items() if ev.program_id == old_id]:
                del self.events[event_id]
            await self._apply(self.tracker.sync(old_id, [], [], self.deps.now()))
            if self.callback is not None:
                await self._unsubscribe(old_id)  # if the VTN kept it, or we made it again
                await self._subscribe(p.id)

    async def check_subscriptions(self) -> int:
        """Subscribe again to each program whose subscription the VTN no longer holds; the
        number made again. Until then its events arrive only by polling."""
        again = 0
        for pid in list(self.programs):
            if await self._has_subscription(pid):
                continue
            log.warning(
                "openadr3: the VTN no longer holds our subscription to program %s (its events "
                "came only by polling); subscribing again",
                pid,
            )
            await self._subscribe(pid)
            again += 1
        self.resubscribed += again
        return again

    # -----------------------------------------------------------------------------------------
    # Events

    async def _apply(self, changes: Changes) -> None:
        for line in changes.log:
            log.warning("openadr3: %s", line)
        doc = self.tracker.to_doc()
        if doc != self._saved:  # a poll that changes nothing costs no disk write
            self.deps.store.put_state(EVENTS_KEY, doc)
            self._saved = doc
        if changes.inputs:
            await self.deps.deliver(changes.inputs)

    async def poll_once(self) -> None:
        if _loop_time() >= self._check_at:
            await self.check_vtn()
        if len(self.programs) < len(self.cfg.programs):  # a program the VTN did not offer yet
            before = set(self.programs)
            await self._programs()
            if self.callback is not None:
                for pid in set(self.programs) - before:
                    await self._subscribe(pid)
        missed = False  # a change the poll found: no notification brought it
        for pid in list(self.programs):
            good, bad = await self._events(pid)
            for ident, err in bad:
                log.warning(
                    "openadr3: event %s from the VTN does not read, ignored: %s", ident, err
                )
            for ev in good:
                self.events[ev.id] = ev
            unreadable = [i for i, _ in bad if i is not None]
            changes = self.tracker.sync(pid, good, unreadable, self.deps.now())
            missed = missed or bool(changes.inputs)
            await self._apply(changes)
        self.polls += 1
        if missed and self.callback is not None:
            await self.check_vtn()

    async def _events(self, pid: str) -> tuple[list[Event], list[tuple[str | None, ProtocolError]]]:
        good: list[Event] = []
        bad: list[tuple[str | None, ProtocolError]] = []
        for page in range(MAX_PAGES):
            params = {"programID": pid, "skip": str(page * PAGE), "limit": str(PAGE)}
            status, body = await self.http.call("GET", "/events", params=params)
            if status != 200:
                raise VtnError(f"GET /events answered {status}: {_problem(body)}")
            g, b = codec.each(codec.event, body, "events")
            good += g
            bad += b
            if len(g) + len(b) < PAGE:
                break
        return good, bad

    async def handle(self, n: Notification) -> None:
        """One webhook notification (from this client's own task, never the listener's)."""
        if n.object_type != "EVENT":
            return
        now = self.deps.now()
        if n.operation == "DELETE":
            if n.object_id is not None:
                self.events.pop(n.object_id, None)
                await self._apply(self.tracker.remove(n.object_id, now))
            return
        ev = n.object
        if not isinstance(ev, Event):
            return
        if ev.program_id not in self.programs:
            log.info("openadr3: notification for program %s, not one we follow", ev.program_id)
            return
        self.events[ev.id] = ev
        await self._apply(self.tracker.upsert(ev, now))

    # -----------------------------------------------------------------------------------------
    # Reports

    def _next_report_in(self) -> float:
        """Seconds until the next report period of a known event is due (inf: none is). An
        event that starts between two passes of the loop is reported at its start, not at the
        next poll or report-period tick (up to a poll period late: found by the restart test,
        whose event started a moment after the pass that learnt of it)."""
        now = self.deps.now()
        soonest = math.inf
        for event_id, _, start, end in self._reportable():
            period = self.cfg.report_period_s
            at = reports.next_due_at(self.reported.get(event_id), start, end, period)
            if at is not None:
                soonest = min(soonest, max(0.0, at - now))
        return soonest

    def _reportable(self) -> list[tuple[str, Event, float, float]]:
        """(event id, event, start, end) of each known event that asks for reports."""
        out = []
        for event_id, known in list(self.tracker.known.items()):
            ev = self.events.get(event_id)
            if ev is None or known.start is None or known.end is None or not ev.report_descriptors:
                continue
            out.append((event_id, ev, known.start, known.end))
        return out

    async def report_once(self) -> int:
        sent = 0
        now = self.deps.now()
        for event_id, ev, start, end in self._reportable():
            period = self.cfg.report_period_s
            index = reports.due(self.reported.get(event_id), start, end, now, period)
            if index is None:
                continue
            built = reports.build(
                ev,
                self.deps.observed(),
                client_name=self.cfg.ven_name,
                index=index,
                start=start + index * period,
                period_s=period,
            )
            for kind in built.skipped:
                if kind not in self._skipped_logged:
                    self._skipped_logged.add(kind)
                    log.warning(
                        "openadr3: event %s asks for %s reports, which this gateway "
                        "does not produce",
                        event_id,
                        kind,
                    )
            if built.report is None:
                continue
            status, body = await self.http.call(
                "POST", "/reports", doc=codec.encode_report(built.report)
            )
            # Settled either way: a refused report is not sent again (it would be refused again).
            self.reported[event_id] = index
            self.deps.store.put_state(REPORTS_KEY, dict(self.reported))
            if status not in (200, 201):
                log.warning(
                    "openadr3: POST /reports for event %s refused: %s %s",
                    event_id,
                    status,
                    _problem(body),
                )
                continue
            sent += 1
        self.reports_sent += sent
        # Forget the report counters of events the tracker no longer knows.
        stale = set(self.reported) - set(self.tracker.known)
        if stale:
            for k in stale:
                del self.reported[k]
            self.deps.store.put_state(REPORTS_KEY, dict(self.reported))
        return sent

    # -----------------------------------------------------------------------------------------
    # The loop

    async def _link(self, *, ok: bool, error: str = "") -> None:
        if ok and self.link_lost:
            self.link_lost = False
            log.info("openadr3: VTN reachable again")
            await self.deps.deliver([NorthLinkRestored(self.deps.now(), ORIGIN)])
        elif not ok and not self.link_lost:
            self.link_lost = True
            await self.deps.deliver([NorthLinkLost(self.deps.now(), ORIGIN, error)])

    async def _guarded(self, what: Callable[[], Awaitable[Any]]) -> float | None:
        """Run one step; on failure log it and return how long to wait before the next try."""
        try:
            await what()
        except AuthError as e:
            log.error("openadr3: %s", e)
            await self._link(ok=False, error=str(e))
            return self.cfg.backoff_max_s
        except TransportError as e:
            log.warning("openadr3: %s", e)
            await self._link(ok=False, error=str(e))
            wait = max(self._backoff, e.retry_after_s or 0.0)
            self._backoff = min(self._backoff * 2, self.cfg.backoff_max_s)
            return wait
        except (ProtocolError, VtnError) as e:
            log.warning("openadr3: %s; nothing changed", e)
            return self.cfg.poll_s
        await self._link(ok=True)
        self._backoff = self.cfg.backoff_min_s
        return None

    async def _site_read(self, stop: asyncio.Event) -> None:
        """Until the site has been read once (at most FIRST_READ_S). An event judged before
        that is judged on nothing: ``assess`` finds no charger reporting, and an island
        request (an ALERT_BLACK_START already running when the gateway starts) was refused
        for good (found by the conformance suite, OA3-07, when the VTN answered first)."""
        deadline = _loop_time() + FIRST_READ_S
        while self.deps.observed() is None and not stop.is_set() and _loop_time() < deadline:
            await asyncio.sleep(0.02)

    async def run(self, stop: asyncio.Event) -> None:
        await self._site_read(stop)
        connected = False
        next_poll = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            wait: float | None = None
            if not connected:
                wait = await self._guarded(self.connect)
                connected = wait is None
            if connected:
                while not self.notifications.empty():
                    await self.handle(self.notifications.get_nowait())
                if self.poll_now.is_set() or loop.time() >= next_poll:
                    self.poll_now.clear()
                    wait = await self._guarded(self.poll_once)
                    next_poll = loop.time() + self.cfg.poll_s
                if wait is None:
                    wait = await self._guarded(self.report_once)
            delay = (
                wait
                if wait is not None
                else min(
                    self.cfg.report_period_s,
                    max(0.0, next_poll - loop.time()),
                    self._next_report_in(),
                )
            )
            if wait is not None:
                next_poll = loop.time() + wait
            await self._sleep(stop, delay)

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        """Until the delay passes, a notification arrives, a poll is asked for, or stop."""
        waiters = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.poll_now.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._wake.clear()
            for w in waiters:
                w.cancel()
            for w in waiters:
                with contextlib.suppress(asyncio.CancelledError):
                    await w

    def enqueue(self, n: Notification) -> None:
        """From the webhook listener: queued and acted on by :meth:`run`'s task, in order."""
        self.notifications.put_nowait(n)
        self._wake.set()
