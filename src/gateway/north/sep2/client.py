"""The 2030.5 client shell: drives the walk and the session over aiohttp with mutual TLS.

Everything protocol-shaped lives in the sans-I/O modules (:mod:`walk`, :mod:`session`,
:mod:`responses`, :mod:`telemetry`, :mod:`timebase`); this module only moves bytes, keeps time
and maps aiohttp/ssl/OS errors to :class:`TransportError` (``gateway.core.errors``'s, shared
with the OpenADR 3 client) with a message that says what was wrong: an RSA server certificate,
no answer within the timeout, a refused connection or certificate (:meth:`Http._explain`).
Two classes:

* :class:`Http`: one server, one TLS identity, one connection pool, one back-off gate. It
  resolves the server's hrefs (which may be relative) against the DeviceCapability URL and
  follows redirects. A 429 (with or without ``Retry-After``, P-05/P-06), a 5xx or a transport
  failure closes the gate for ``Retry-After`` seconds when the server said, else for an
  exponential back-off (``base_s`` doubling to ``cap_s``) with jitter, so that a thousand
  EndDevices of an aggregator do not retry in step. Shared by every EndDevice of an aggregator
  (the gate is per server, as a 429 is).
* :class:`EndDeviceClient`: one EndDevice. It walks, hands what is new to the engine
  (``deliver``), polls each program at its rate, re-syncs Time, PUTs DERCapability/DERSettings
  once per walk and DERStatus/DERAvailability at ``postRate``, answers reports from the outbox
  (:meth:`EndDeviceClient.send_report`: Responses, and the alarm edges the runtime stored as
  they happened, each one LogEvent) and takes notifications (:meth:`on_notification`).

Comms loss: when requests fail the engine is told once (``NorthLinkLost``); scheduled events
keep running and the default controls apply when none is active (ALL-23); what was received
stays in force (ALL-30). When a request succeeds again the engine is told ``NorthLinkRestored``.

Time: ``server = monotonic + offset``; before the first ``Time`` the offset makes server time
equal the OS wall clock. The OS clock is never set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, replace
from typing import Final, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from gateway.core.controls import Mode
from gateway.core.errors import TransportError
from gateway.core.messages import Input, NorthLinkLost, NorthLinkRestored
from gateway.core.ports import StateStore, StorageError
from gateway.core.schedule import ResponseCode
from gateway.north.sep2 import averages, codec, metering, telemetry, tls, wellknown
from gateway.north.sep2.alarms import AlarmEdge
from gateway.north.sep2.der_resources import DER
from gateway.north.sep2.mapping import ORIGIN
from gateway.north.sep2.model import DERControlList
from gateway.north.sep2.pubsub import (
    ENCODING_XML,
    ConnectionPoint,
    Notification,
    NotificationStatus,
    Subscription,
)
from gateway.north.sep2.resources import DeviceCapability, EndDevice, Time
from gateway.north.sep2.responses import Outcome, outcome, response_post
from gateway.north.sep2.session import (
    DEFAULT_POST_RATE_S,
    POST,
    TIME,
    WALK,
    Session,
    Task,
    TaskKind,
    Update,
)
from gateway.north.sep2.timebase import ServerClock
from gateway.north.sep2.walk import (
    Discovery,
    DiscoveryError,
    ProgramView,
    Reply,
    Request,
    RetryableWalkError,
    WalkError,
    discover,
    find_der,
    poll_program,
    read,
    retry_after,
    scan_end_devices,
)
from gateway.north.sep2.xml import (
    CSIPAUS_NS,
    CSIPAUS_NS_V13,
    CSIPAUS_NS_V13_BETA,
    MAX_BODY_BYTES,
    with_csipaus_ns,
)

__all__ = ["Backoff", "EndDeviceClient", "Http", "Identity", "ServerTime", "TransportError"]

NO_SNAPSHOT_RETRY_S = 1.0  # telemetry due before the control loop's first snapshot
ALIGN_AFTER_S = 1.0  # CSIP-AUS telemetry runs this long after each interval boundary
ALIGN_MIN_S = 10  # below this post rate, runs are not aligned (test rates of 1-2 s)
MIRROR_PAGE = 25  # MirrorUsagePoints a GET of the list asks for at a time (we own a few)
REFUSALS: Final = frozenset(
    {ResponseCode.NOT_APPLICABLE, ResponseCode.INVALID, ResponseCode.EXPIRED}
)
PROBE_TIMEOUT_S: Final = 5.0  # fetching a server's certificate to say why a handshake failed
MAX_WARNED: Final = 1000  # refusals remembered so that a retried POST is not logged again

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/sep+xml"
MAX_REDIRECTS: Final = 5
# The IANA Private Enterprise Number in our mRIDs' low 32 bits. The gateway has none of its own;
# 32473 is the one RFC 5612 reserves for documentation. Set yours for production.
DOCUMENTATION_PEN: Final = 32473
CSIPAUS_NS_V13_BYTES: Final = CSIPAUS_NS_V13.encode()
# Starts with the 1.3 URI: looked for first, so a 1.3-beta/storage server is not taken for 1.3.
CSIPAUS_NS_V13_BETA_BYTES: Final = CSIPAUS_NS_V13_BETA.encode()
HTTP_OK: Final = 200
HTTP_NOT_FOUND: Final = 404
T = TypeVar("T")

Deliver = Callable[[list[Input]], Awaitable[None]]
SiteSource = Callable[[float], telemetry.SiteState | None]


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 5.0
    cap_s: float = 300.0
    jitter: float = 0.2  # +-20 %


class ServerTime:
    """The server's clock as this process sees it: one per server, shared by its EndDevices."""

    def __init__(self) -> None:
        # Until the first Time resource, server time is the OS wall clock.
        self.clock = ServerClock(offset_s=time.time() - time.monotonic())

    def now(self) -> float:
        return self.clock.server(time.monotonic())

    def update(self, resource: Time, *, sent: float, received: float) -> None:
        self.clock = self.clock.update(resource, sent=sent, received=received)

    @property
    def wall_offset_s(self) -> float:
        """Server time minus the OS wall clock: what survives a restart (monotonic does not)."""
        return self.now() - time.time()

    def restore(self, wall_offset_s: float) -> None:
        """Start from an offset saved before a restart, until the server can be asked again."""
        self.clock = ServerClock(offset_s=time.time() + wall_offset_s - time.monotonic())


async def _read_capped(content: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body, or its first ``cap + 1`` bytes (the decoder refuses those as too big).
    ``StreamReader.read(n)`` returns what has arrived, up to n: one call can stop at the first
    chunk of a large list."""
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await content.read(cap + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def discover_dcap(http: Http) -> tuple[str, str]:
    """SDVN-01: the DeviceCapability URL, from the server's ``/.well-known/csipaus``.

    Tries the newest supported version's paths first; one that does not answer a
    DeviceCapability (404, another resource, garbage) is skipped with its reason. Sets
    ``http.dcap_url`` and returns ``(version, url)``; raises :class:`WellKnownError` when no
    advertised path works, naming each one tried."""
    reply = await http.request(Request("GET", wellknown.PATH))
    if reply.status != HTTP_OK:
        why = f"GET {wellknown.PATH}: {reply.status}"
        raise wellknown.WellKnownError(f"{why}; configure [sep2] dcap instead of server")
    tried: list[str] = []
    for version, path in wellknown.candidates(reply.body):
        answer = await http.request(Request("GET", path))
        try:
            read(path, answer, DeviceCapability)
        except WalkError as e:
            tried.append(f"{path} (CSIP-AUS {version}): {e.reason}")
            continue
        http.dcap_url = http.resolve(path)
        return version, http.dcap_url
    raise wellknown.WellKnownError("no advertised DeviceCapability answered: " + "; ".join(tried))


class Http:
    """One 2030.5 server as seen through one client certificate."""

    def __init__(
        self,
        dcap_url: str,
        ssl_context: ssl.SSLContext,
        *,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        lfdi: str | None = None,
    ) -> None:
        self.dcap_url = dcap_url
        # The LFDI of the certificate this connection presents: in aggregator mode it is not
        # any site's, and the server may link the SubscriptionList only from the EndDevice
        # that carries it (the aggregator's own, ALL-14).
        self.lfdi = None if lfdi is None else lfdi.upper()
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None
        self._closed_until = 0.0  # monotonic
        # Consecutive failures per resource path ("" = the server itself, for transport errors).
        # Per path, because a success elsewhere (the DefaultDERControl read just before a 429
        # on the DERControlList) says nothing about the resource that is refusing us (P-05).
        self._failures: dict[str, int] = {}
        self.requests = 0
        self.time = ServerTime()
        # Why the server's certificate cannot be used, from one probe after a failed handshake;
        # probed again after the next answer (the server may have been fixed).
        self._probed = False
        self._certificate_problem: str | None = None
        # Shared by the EndDevices of an aggregator on this connection: lFDI -> EndDevice href,
        # from one scan of the EndDeviceList (walk.scan_end_devices), under the lock.
        self.end_devices: dict[str, str] = {}
        self.end_devices_lock = asyncio.Lock()
        self.users = 0  # EndDeviceClients on this connection
        # The CSIP-AUS namespace our bodies declare: 1.2's until the server speaks 1.3 (or
        # 1.3-beta/storage).
        self.csipaus_ns = CSIPAUS_NS

    async def __aenter__(self) -> Http:
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=32)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def resolve(self, href: str) -> str:
        return urljoin(self.dcap_url, href)

    @property
    def backing_off_for(self) -> float:
        return max(0.0, self._closed_until - time.monotonic())

    async def request(self, req: Request) -> Reply:
        """Perform ``req`` once the back-off gate is open; raise :class:`TransportError`."""
        assert self._session is not None, "use 'async with Http(...)'"
        wait = self.backing_off_for
        if wait > 0:
            await asyncio.sleep(wait)
        headers = {"Accept": CONTENT_TYPE}
        if req.body is not None:
            headers["Content-Type"] = CONTENT_TYPE
        url = self.resolve(req.href)
        data = None if req.body is None else with_csipaus_ns(req.body, self.csipaus_ns)
        self.requests += 1
        try:
            async with self._session.request(
                req.method, url, data=data, headers=headers, max_redirects=MAX_REDIRECTS
            ) as resp:
                body = await _read_capped(resp.content, MAX_BODY_BYTES)
                reply = Reply(resp.status, body, dict(resp.headers))
        except (aiohttp.ClientError, ssl.SSLError, OSError, TimeoutError) as e:
            self._fail("", None)
            raise TransportError(f"{req.method} {url}: {await self._explain(url, e)}") from e
        self._probed = False
        if CSIPAUS_NS_V13_BETA_BYTES in body:
            self.csipaus_ns = CSIPAUS_NS_V13_BETA
        elif CSIPAUS_NS_V13_BYTES in body:
            self.csipaus_ns = CSIPAUS_NS_V13
        path = urlsplit(url).path
        if outcome(reply.status) is Outcome.RETRY:
            self._fail(path, retry_after(reply.headers))
        else:
            self._failures.pop(path, None)
            self._failures.pop("", None)
        return reply

    async def _explain(self, url: str, e: BaseException) -> str:
        """What went wrong, for a person: aiohttp says "Cannot connect to host ... [None]"
        for a handshake the server broke off, and nothing at all for a timeout."""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{host}:{port}"
        if isinstance(e, aiohttp.ClientConnectorCertificateError):
            return _certificate_refused(where, e.certificate_error)
        if isinstance(e, TimeoutError):  # aiohttp's ServerTimeoutError is one too
            return f"no answer from {where} within {self._timeout.total:g} s"
        if isinstance(e, aiohttp.ClientConnectorError):
            cause = e.os_error
            if isinstance(cause, ConnectionRefusedError):
                return f"{where} refused the connection (is the server running on port {port}?)"
            if parts.scheme == "https" and isinstance(cause, ConnectionResetError | ssl.SSLError):
                return await self._handshake_failed(host, port, cause)
            return f"cannot connect to {where}: {cause.strerror or type(cause).__name__}"
        if isinstance(e, aiohttp.ServerDisconnectedError):
            return f"{where} closed the connection without answering"
        text = str(e)
        return f"{type(e).__name__}: {text}" if text else f"{type(e).__name__} from {where}"

    async def _handshake_failed(self, host: str, port: int, cause: OSError) -> str:
        where = f"{host}:{port}"
        if not self._probed:
            # Once per outage: an aggregator's EndDevices all fail together when the gate opens.
            self._probed = True
            timeout = min(self._timeout.total or PROBE_TIMEOUT_S, PROBE_TIMEOUT_S)
            der = await _peer_certificate(host, port, timeout)
            self._certificate_problem = None if der is None else tls.certificate_problem(der)
        problem = self._certificate_problem
        if problem is not None:
            return f"the TLS handshake with {where} failed: {problem}"
        said = getattr(cause, "reason", None) or "the server closed the connection"
        return (
            f"the TLS handshake with {where} failed ({said}): the server must offer TLS 1.2 "
            f"with {tls.TLS_CIPHER} and a P-256 certificate, and accept our certificate chain"
        )

    def _fail(self, path: str, retry_after_s: float | None) -> None:
        failures = self._failures[path] = self._failures.get(path, 0) + 1
        if retry_after_s is not None:
            delay = retry_after_s
        else:
            b = self._backoff
            delay = min(b.cap_s, b.base_s * 2 ** (failures - 1))
            delay *= 1 + self._rng.uniform(-b.jitter, b.jitter)
        self._closed_until = max(self._closed_until, time.monotonic() + delay)

    async def drive(
        self,
        gen: Generator[Request, Reply, T],
        timings: dict[str, tuple[float, float]] | None = None,
    ) -> T:
        """Run a sans-I/O generator (a walk, a poll) to its result; ``timings`` (when given)
        gets the monotonic (sent, answered) of each href, for the Time offset."""
        req = next(gen)
        while True:
            sent = time.monotonic()
            reply = await self.request(req)
            if timings is not None:
                timings[req.href] = (sent, time.monotonic())
            try:
                req = gen.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result


@dataclass(frozen=True, slots=True)
class Identity:
    lfdi: str
    sfdi: int
    pin: int | None = None  # the registration PIN with its check digit; None: not checked
    register: bool = False  # in-band registration when the server does not know us
    device_category: str | None = None  # HexBinary32 for the in-band EndDevice
    connection_point_id: str | None = None  # CSIP-AUS: the site's NMI, PUT to ConnectionPoint


DER_STATUS: Final = "DERStatus"  # the key of DERStatus + DERAvailability in ``_posted``
# The store key (suffix: our LFDI) saying our EndDevice was registered in band by us.
IN_BAND_KEY: Final = "sep2.registered_in_band"


class EndDeviceClient:
    """One EndDevice's loop: walk, poll, report."""

    def __init__(
        self,
        http: Http,
        identity: Identity,
        *,
        deliver: Deliver,
        site: SiteSource | None = None,
        ratings: telemetry.SiteRatings | None = None,
        modes: Iterable[Mode] = tuple(Mode),
        page_size: int = 32,
        name: str | None = None,
        pen: int = DOCUMENTATION_PEN,
        csipaus: bool = True,
        state: StateStore | None = None,
    ) -> None:
        self.http = http
        self.identity = identity
        self._state = state  # remembers an in-band registration across restarts
        self._said_pin: int | None = None  # the assigned PIN last reported (once each)
        self.name = name or identity.lfdi[:12]
        self.session = Session(name=self.name)
        self._deliver = deliver
        self._site = site
        self._ratings = ratings
        self._modes = tuple(modes)
        self._page = page_size
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[Notification, bool]] = asyncio.Queue()
        # Unverified notifications waiting, by subscribed resource: one each at most, so a
        # sender without a certificate cannot queue more than one GET per subscription.
        self._pending_unverified: set[str] = set()
        # One thing at a time talks to the session: a walk that read a list before a
        # notification changed it must not be applied after the notification (it would cancel
        # the control the notification just brought).
        self._busy = asyncio.Lock()
        self._edev_href: str | None = None  # a hint for the next walk, verified by it
        self._subscriber_href: str | None = None  # the aggregator's own EndDevice: a hint too
        http.users += 1
        self._sent_grad: int | None = None  # the setGradW our last DERSettings carried
        self._sent_ratings: telemetry.SiteRatings | None = None  # what the last PUTs carried
        self._link_down: str | None = None
        self._der: DER | None = None
        self._mups: dict[str, str] = {}  # MirrorUsagePoint mRID -> its href (Location)
        self._mup_rates: dict[str, int] = {}  # MirrorUsagePoint mRID -> the postRate it carries
        self._posted: dict[str, float] = {}  # what was posted last (mRID, DER_STATUS), monotonic
        self._averages = averages.Averager()  # CSIP-AUS readings are interval averages
        self._intervals: dict[str, int | None] = {}  # mirror mRID -> intervalLength it has
        self._ended: dict[str, int] = {}  # mirror mRID -> end of the last interval posted
        self._subscriptions: dict[str, str] = {}  # subscribed href -> the Subscription's href
        self._subscribed_at: str | None = None  # the SubscriptionList they were POSTed to
        self._said_unsubscribable: set[str] = set()  # logged once each
        self.notify_uri: str | None = None  # the listener's URL; None: poll only
        self._connection_point_sent: str | None = None
        self.pen = pen
        self.csipaus = csipaus  # False: US CSIP, no CSIP-AUS elements in what we write
        self.errors: list[str] = []  # the last problems, for status pages and tests
        self._warned: dict[tuple[object, int], None] = {}  # refusals logged (ordered, bounded)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Server time now (the engine's clock)."""
        return self.http.time.now()

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        inbox = asyncio.create_task(self._notifications(), name=f"{self.name}-notifications")
        try:
            await self._loop(stop)
        finally:
            inbox.cancel()
            await asyncio.gather(inbox, return_exceptions=True)

    def enqueue(self, n: Notification, *, verified: bool = True) -> None:
        """Take a notification without waiting for what it causes: the listener answers the
        server at once, and the devices are driven from this client's own task.
        ``verified=False``: from a sender without a certificate (see :meth:`on_notification`);
        one already waiting for the same resource is enough."""
        if not verified:
            # What it is about is what *our* subscription named, not what the sender says:
            # so at most one look per subscription of ours, whatever it puts in the body.
            ours = self._subscription_of(n)
            if ours is None or ours in self._pending_unverified:
                return
            self._pending_unverified.add(ours)
            n = replace(n, subscribedResource=ours, Resource=None)
        self._inbox.put_nowait((n, verified))

    def _subscription_of(self, n: Notification) -> str | None:
        """The resource of our subscription that ``n``'s ``subscriptionURI`` names (by path)."""
        uri = urlsplit(n.subscriptionURI).path
        if not uri:
            return None
        return next(
            (h for h, loc in self._subscriptions.items() if urlsplit(loc).path == uri), None
        )

    async def _notifications(self) -> None:
        while True:
            n, verified = await self._inbox.get()
            if not verified:
                self._pending_unverified.discard(n.subscribedResource)
            try:
                async with self._busy:
                    await self.on_notification(n, verified=verified)
            except (TransportError, DiscoveryError) as e:
                self._problem(f"notification for {n.subscribedResource}: {e}")

    async def _loop(self, stop: asyncio.Event) -> None:
        self.session.start(time.monotonic())
        while not stop.is_set():
            for task in self.session.due(time.monotonic()):
                if stop.is_set():
                    return
                if task not in self.session.due(time.monotonic()):
                    continue  # the walk before it in this round read it and rescheduled it
                async with self._busy:
                    await self._run_task(task)
            nxt = self.session.next_due()
            wait = 1.0 if nxt is None else max(0.0, nxt - time.monotonic())
            self._wake.clear()
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({stopping, woken}, timeout=wait, return_when="FIRST_COMPLETED")
            finally:
                stopping.cancel()
                woken.cancel()

    async def _run_task(self, task: Task, *, reschedule: bool = True) -> None:
        t = time.monotonic()
        try:
            if task == WALK:
                await self._walk()
            elif task == TIME:
                await self._sync_time()
            elif task == POST:
                if not await self._post_telemetry():
                    # No snapshot of the site yet (the control loop's first cycle is still
                    # reading the devices): post as soon as there is one, not a postRate later.
                    self.session.retry(task, time.monotonic(), NO_SNAPSHOT_RETRY_S)
                    return
                realign = self._realign_s()
                if realign is not None:
                    self.session.retry(task, time.monotonic(), realign)
                    return
            elif task.kind is TaskKind.PROGRAM:
                await self._poll(task.key)
        except (TransportError, RetryableWalkError) as e:
            await self._down(str(e))
            return  # stays due: runs again once the back-off gate opens
        except WalkError as e:
            if task != WALK:
                self._problem(f"{e}; walking again from DeviceCapability")
                self.session.lost(time.monotonic())
                return
            wait = self.session.walk_failed(time.monotonic())
            self._problem(f"{e}; walking again from DeviceCapability in {wait:.1f} s")
            return
        except DiscoveryError as e:  # registration problems: a person must act
            self._problem(str(e))
            await self._down(str(e))
        if reschedule:
            self.session.done(task, t)

    async def walk(self) -> None:
        """One discovery walk now, outside the schedule (tools, benchmarks)."""
        async with self._busy:
            await self._walk()

    async def poll(self, program_mrid: str) -> None:
        """One poll of a program now, outside the schedule (tools, benchmarks)."""
        async with self._busy:
            await self._poll(program_mrid)

    async def _walk(self) -> None:
        register = None
        if self.identity.register:
            register = EndDevice(
                sFDI=self.identity.sfdi,
                changedTime=int(self.now()),
                lFDI=self.identity.lfdi,
                deviceCategory=self.identity.device_category,
            )
        timings: dict[str, tuple[float, float]] = {}
        aggregator = self.http.lfdi
        if aggregator == self.identity.lfdi.upper():
            aggregator = None  # a device certificate: its EndDevice is ours
        gen = discover(
            self.http.dcap_url,
            lfdi=self.identity.lfdi,
            pin=self.identity.pin,
            page_size=self._page,
            register=register,
            hint=self._edev_href or await self._shared_hint(),
            aggregator=aggregator,
            aggregator_hint=self._subscriber_href or self.http.end_devices.get(aggregator or ""),
            registered_in_band=self._registered_in_band(),
            on_registered=self._remember_in_band,
        )
        found: Discovery = await self.http.drive(gen, timings)
        if found.registered_in_band:
            self._remember_in_band(found.end_device)
        if found.assigned_pin is not None and found.assigned_pin != self._said_pin:
            self._said_pin = found.assigned_pin
            self._report_assigned_pin(found)
        self._edev_href = found.end_device.href
        self._subscriber_href = found.subscriber
        if found.time is not None and found.dcap.TimeLink is not None:
            sent, received = timings[found.dcap.TimeLink.href]
            self.http.time.update(found.time, sent=sent, received=received)
        await self._up()
        update = self.session.discovered(found, self.now(), time.monotonic())
        await self._apply(update)
        self._der = None
        await self._put_der_settings()
        await self._connection_point()
        await self._subscribe()
        await self._read_mirrors()

    def _in_band_key(self) -> str:
        return f"{IN_BAND_KEY}.{self.identity.lfdi.upper()}"

    def _registered_in_band(self) -> str | None:
        """The href of the EndDevice this gateway POSTed (now or before a restart): while ours
        is that one, its PIN is the server's, not an out-of-band check (``walk.discover``)."""
        if self._state is None:
            return None
        try:
            doc = self._state.get_state(self._in_band_key())
        except StorageError as e:
            self._problem(f"cannot read whether we registered in band: {e}")
            return None
        href = None if doc is None else doc.get("href")
        return href if isinstance(href, str) else None

    def _remember_in_band(self, end_device: EndDevice) -> None:
        if self._state is None or end_device.href is None:
            return
        if self._registered_in_band() == end_device.href:
            return
        doc = {"href": end_device.href, "at": int(self.now())}
        try:
            self._state.put_state(self._in_band_key(), doc)
        except StorageError as e:
            self._problem(f"cannot remember the in-band registration: {e}")

    def _report_assigned_pin(self, found: Discovery) -> None:
        """After our own POST /edev the server's Registration holds the PIN it assigned; the
        installer must learn it (and who to give it to), so it is said loudly, once."""
        link = found.end_device.RegistrationLink
        where = link.href if link is not None else "its Registration"
        configured = self.identity.pin
        text = (
            f"registered in band: the server assigned registration PIN {found.assigned_pin:06d} "
            f"({where}), not the configured pin = {configured or 0:06d}. The gateway carries "
            "on: the PIN is an out-of-band check, and this Registration was made by our own "
            "POST. Give the assigned PIN to the utility (or the installer's portal) if they "
            "ask for it, and set [sep2] pin to it (or remove pin) to silence this message"
        )
        log.error("%s: %s", self.name, text)
        self.errors = [*self.errors[-19:], text]

    async def _shared_hint(self) -> str | None:
        """An aggregator's EndDevices share one scan of the EndDeviceList: the first walk
        without a hint scans it (under the connection's lock) for all of them."""
        if self.http.users < 2:
            return None
        ours = self.identity.lfdi.upper()
        async with self.http.end_devices_lock:
            if ours not in self.http.end_devices:
                scan = scan_end_devices(self.http.dcap_url, self._page)
                self.http.end_devices.update(await self.http.drive(scan))
            return self.http.end_devices.get(ours)

    async def sync_time(self, timeout_s: float = 5.0) -> bool:
        """Learn the server's time before the engine starts (DeviceCapability -> Time).

        The engine's timeouts are measured on the clock it is given; starting it on the OS
        clock and then stepping to a server hours away would expire every command in flight.
        False (logged) when the server cannot be reached: the site then starts on the OS clock,
        local control first, and the first walk corrects the time.
        """
        try:
            async with asyncio.timeout(timeout_s):
                url = self.http.dcap_url
                reply = await self.http.request(Request("GET", url))
                dcap = read(url, reply, DeviceCapability)
                if dcap.TimeLink is None:
                    return False
                await self._get_time(dcap.TimeLink.href)
        except TimeoutError:  # asyncio.timeout's own: no message of its own
            where = urlsplit(self.http.dcap_url).netloc
            why = f"no answer from {where} within {timeout_s:g} s"
            self._problem(f"no server time at start-up ({why}); starting on this machine's clock")
            return False
        except (TransportError, WalkError) as e:
            self._problem(f"no server time at start-up ({e}); starting on this machine's clock")
            return False
        return True

    async def _sync_time(self) -> None:
        found = self.session.discovery
        if found is None or found.dcap.TimeLink is None:
            return
        await self._get_time(found.dcap.TimeLink.href)

    async def _get_time(self, href: str) -> None:
        sent = time.monotonic()
        reply = await self.http.request(Request("GET", href))
        received = time.monotonic()
        resource = read(href, reply, Time)
        self.http.time.update(resource, sent=sent, received=received)

    async def _poll(self, program_mrid: str) -> None:
        view = self.session.view(program_mrid)
        if view is None:
            return
        fresh = await self.http.drive(poll_program(view.program, self._page))
        await self._up()
        update = self.session.program_polled(fresh, self.now())
        await self._apply(update)
        if self._default_grad() != self._sent_grad or self._ratings != self._sent_ratings:
            # A default's setGradW changed (ALL-13, ALL-17), or a DER's rating (MUL-03 step d).
            await self._put_der_settings()

    async def _apply(self, update: Update) -> None:
        for note in update.notes:
            log.info("%s", note)
        for warning in update.warnings:
            log.warning("%s", warning)
        if update.inputs:
            await self._deliver(update.inputs)

    # ------------------------------------------------------------------ notifications

    def subscribed(self, n: Notification) -> bool:
        """True when ``n`` names one of this EndDevice's subscriptions: the one sure owner when
        several EndDevices subscribe to one resource (a program shared by an aggregator's
        EndDevices, AGG-001). Compared by path: the server sends ``subscriptionURI`` absolute,
        while the Location it answered the POST with may be relative."""
        uri = urlsplit(n.subscriptionURI).path
        return bool(uri) and any(
            urlsplit(location).path == uri for location in self._subscriptions.values()
        )

    def follows(self, n: Notification) -> bool:
        """True when ``n`` is about a resource this EndDevice subscribed to (the fallback for a
        server whose ``subscriptionURI`` names none of our subscriptions)."""
        return n.subscribedResource in self._subscriptions

    async def on_notification(self, n: Notification, *, verified: bool = True) -> None:
        """A Notification for one of our subscriptions: act on it now, not at the next poll.

        ``verified=False`` (a sender without a certificate): nothing it carries is used. Its
        resource is GETted from the server over our own mutual-TLS connection (as for a
        notification that carries less than the whole list), and a "subscription ended"
        status is believed only if the server no longer has the subscription.

        A complete DERControlList goes straight to the session (no request at all); anything
        else it names (a partial list, a default) is polled at once, outside the regular poll
        schedule. A cancelled subscription (status 1-4: moved, deleted, ...) is forgotten and
        everything is re-discovered, which subscribes again where the server still offers it.
        """
        subscribed, resource = n.subscribedResource, n.Resource if verified else None
        if not verified and n.status != NotificationStatus.DEFAULT:
            await self._subscription_still_held(n)
            return
        if n.status != NotificationStatus.DEFAULT:
            self._subscriptions.pop(subscribed, None)
            self._problem(f"subscription to {subscribed} ended (status {n.status}); re-walking")
            self.session.lost(time.monotonic())
            self._wake.set()
            return
        if isinstance(resource, DERControlList) and resource.results == resource.all:
            await self._apply(self.session.notified(subscribed, resource.DERControl, self.now()))
            return
        if subscribed in _walked_lists(self.session.discovery):
            # The FSA list or a DERProgramList changed: programs come or go, which only a
            # walk applies (the session is built from whole walks). Walk now.
            await self._run_task(WALK, reschedule=False)
            return
        for view in self.session.programs:
            links = (view.program.DERControlListLink, view.program.DefaultDERControlLink)
            if any(link is not None and link.href == subscribed for link in links):
                await self._run_task(Task(TaskKind.PROGRAM, view.program.mRID), reschedule=False)
                return
        self.session.lost(time.monotonic())
        self._wake.set()

    async def _subscription_still_held(self, n: Notification) -> None:
        """An unverified "subscription ended": ask the server for that subscription (at the
        Location it gave us, never at a URI the notification names)."""
        href = self._subscription_of(n)
        if href is None:
            return
        location = self._subscriptions[href]
        reply = await self.http.request(Request("GET", location))
        if reply.status == HTTP_NOT_FOUND:
            self._subscriptions.pop(href, None)
            self._problem(f"subscription to {href} is gone from the server; re-walking")
            self.session.lost(time.monotonic())
            self._wake.set()
            return
        self._check("GET", location, reply)
        log.info(
            "%s: an unverified notification says the subscription to %s ended (status %d); "
            "the server still holds it: ignored",
            self.name,
            href,
            n.status,
        )

    async def _connection_point(self) -> None:
        """CSIP-AUS ALL-03: tell the server which connection point (NMI) the site is."""
        found = self.session.discovery
        link = None if found is None else found.end_device.ConnectionPointLink
        wanted = self.identity.connection_point_id
        if link is None or wanted is None or self._connection_point_sent == link.href:
            return
        reply = await self.http.request(Request("GET", link.href))
        if reply.status == HTTP_OK:
            held = codec.decode(reply.body)
            if isinstance(held, ConnectionPoint) and held.connectionPointId == wanted:
                self._connection_point_sent = link.href
                return
        body = codec.encode(ConnectionPoint(connectionPointId=wanted))
        reply = await self.http.request(Request("PUT", link.href, body))
        self._check("PUT", link.href, reply)
        if reply.status < 300:
            self._connection_point_sent = link.href

    async def _subscribe(self) -> None:
        """Subscribe where the walk found the SubscriptionList (ALL-14): our EndDevice's, or
        the aggregator's own EndDevice's when the server links it only there. Subscribed:
        the FSA list, each DERProgramList, and each program's DERControlList and
        DefaultDERControl, each only if it says it takes a non-conditional subscription
        (``subscribable`` 1 or 3; absent is the XSD's 0: it does not).

        Polling goes on at the server's rates regardless: a notification that never comes
        costs at most one poll period, so the subscription is a latency gain, never a risk.
        """
        found = self.session.discovery
        if self.notify_uri is None or found is None:
            return
        link = found.subscription_list
        if link is None:
            self._once("", "the server links no SubscriptionList: polling only")
            return
        if link != self._subscribed_at:
            # Another list (the aggregator's EndDevice moved, say): what we hold is elsewhere.
            self._subscriptions.clear()
            self._subscribed_at = link
        wanted: set[str] = set()
        for href in _subscribable_hrefs(found, self.session.programs):
            if href in found.subscribable:
                wanted.add(href)
            else:
                self._once(href, f"{href} does not take subscriptions (subscribable): polled")
        for href in sorted(wanted - set(self._subscriptions)):
            sub = Subscription(
                subscribedResource=href,
                encoding=ENCODING_XML,
                level="+S1",
                limit=self._page,
                notificationURI=self.notify_uri,
            )
            reply = await self.http.request(Request("POST", link, codec.encode(sub)))
            self._check("POST", link, reply)
            location = reply.headers.get("Location")
            if reply.status < 300 and location:
                self._subscriptions[href] = location
        for href in sorted(set(self._subscriptions) - wanted):
            location = self._subscriptions.pop(href)
            await self.http.request(Request("DELETE", location))

    def _once(self, key: str, text: str) -> None:
        """An INFO line, once per ``key`` for the life of this client."""
        if key not in self._said_unsubscribable:
            self._said_unsubscribable.add(key)
            log.info("%s: %s", self.name, text)

    def poke(self) -> None:
        """Wake the loop (a new report to send, a notification)."""
        self._wake.set()

    # ------------------------------------------------------------------ reports

    async def send_report(self, doc: dict[str, object]) -> Outcome:
        """POST one outbox report as a Response, or an alarm edge as a LogEvent; the outcome
        settles it (see responses.py)."""
        edge = AlarmEdge.from_doc(doc)
        if edge is not None:
            return await self._post_log_event(edge)
        self._warn_refusal(doc)
        post = response_post(doc, lfdi=self.identity.lfdi)
        if post is None:
            log.warning("%s: report %s has no replyTo: nothing to send", self.name, doc)
            return Outcome.REFUSED
        reply = await self.http.request(Request("POST", post.href, post.body))
        result = outcome(reply.status)
        if result is Outcome.REFUSED:
            self._problem(
                f"Response {doc.get('code')} for {doc.get('subject')} refused by the server "
                f"({reply.status} at {post.href}); not retried"
            )
        elif result is Outcome.RETRY:
            raise TransportError(f"POST {post.href}: {reply.status}; will retry")
        return result

    def _warn_refusal(self, doc: dict[str, object]) -> None:
        """A control the engine refused (252 not applicable, 253 invalid, 254 expired) is a
        utility instruction not followed: WARNING, with its mRID and the engine's reason, once
        per report (the engine's own note of it is INFO, with every other decision)."""
        code, subject = doc.get("code"), doc.get("subject")
        if not isinstance(code, int) or code not in REFUSALS or (subject, code) in self._warned:
            return
        self._warned[(subject, code)] = None
        while len(self._warned) > MAX_WARNED:
            del self._warned[next(iter(self._warned))]
        name = ResponseCode(code).name.lower().replace("_", " ")
        log.warning(
            "%s: control %s refused (%d %s): %s; answering the server",
            self.name,
            subject,
            code,
            name,
            doc.get("reason") or "no reason given",
        )

    # ------------------------------------------------------------------ telemetry

    async def _der_links(self) -> DER | None:
        if self._der is not None:
            return self._der
        found = self.session.discovery
        if found is None or found.end_device.DERListLink is None:
            return None
        self._der = await self.http.drive(find_der(found.end_device.DERListLink.href))
        return self._der

    async def _put(self, href: str | None, resource: codec.AnyResource) -> None:
        if href is None:
            return
        reply = await self.http.request(Request("PUT", href, codec.encode(resource)))
        self._check("PUT", href, reply)

    def update_ratings(self, ratings: telemetry.SiteRatings) -> None:
        """The ratings in force now (a DER's own rating changed: MUL-03 step d).
        DERCapability and DERSettings are PUT again at the next telemetry post or program poll,
        whichever comes first, once per change (a walk PUTs them anyway)."""
        self._ratings = ratings

    async def _put_der_settings(self) -> None:
        rated = self._ratings  # one snapshot for both, so setMaxW <= rtgMaxW holds in the pair
        if rated is None:
            return
        der = await self._der_links()
        if der is None:
            return
        # vppModes* and setMinWh exist in the 1.3 namespaces only (not in 1.2's schema).
        storage = self.csipaus and self.http.csipaus_ns != CSIPAUS_NS
        cap = telemetry.der_capability(rated, self._modes, csipaus=self.csipaus, storage=storage)
        self._sent_grad = self._default_grad()
        ratings = replace(rated, set_grad_w=self._sent_grad)
        settings = telemetry.der_settings(
            ratings, self._modes, at=self.now(), csipaus=self.csipaus, storage=storage
        )
        puts: list[tuple[str | None, codec.AnyResource]] = [
            (_href(der.DERCapabilityLink), cap),
            (_href(der.DERSettingsLink), settings),
        ]
        # Each settings value is bounded by its rating (setMaxW <= rtgMaxW, ...): when a
        # rating went down, the lower settings go first, so the server never holds a setting
        # above the rating it has (after a rise, the capability goes first for the same reason).
        if telemetry.lowers(rated, self._sent_ratings):
            puts.reverse()
        for href, body in puts:
            await self._put(href, body)
        self._sent_ratings = rated

    def _default_grad(self) -> int:
        """``setGradW`` of the highest-priority program's default that sets one (ALL-13)."""
        views = sorted(self.session.programs, key=lambda v: v.program.primacy)
        for view in views:
            if view.default is not None and view.default.setGradW is not None:
                return view.default.setGradW
        return 0

    async def _post_telemetry(self) -> bool:
        """DERStatus, DERAvailability and the mirrors' readings; False while the site has no
        snapshot yet (nothing true to say), True otherwise."""
        if self._site is None or self._ratings is None:
            return True
        if self._ratings != self._sent_ratings:
            await self._put_der_settings()  # a DER's rating changed (MUL-03 step d)
        state = self._site(self.now())
        if state is None:
            return False
        der = await self._der_links()
        if der is None:
            return True
        edev_rate, _ = self.session.post_rates()
        if self._due_now(DER_STATUS, edev_rate):
            await self._put(_href(der.DERStatusLink), telemetry.der_status(state))
            avail = telemetry.der_availability(state, self._ratings)
            await self._put(_href(der.DERAvailabilityLink), avail)
            self._posted[DER_STATUS] = time.monotonic()
        self._sample(state)  # at least this one, when no control cycle samples the site
        await self._post_readings(state)
        return True

    def _realign_s(self) -> float | None:
        """CSIP-AUS readings average whole intervals aligned on the clock: telemetry runs just
        after each boundary (``ALIGN_AFTER_S``), so that no run falls on one, where a little
        latency would decide whether the interval just ended is posted now or a period later.
        The delay to the next such moment when this run was not one; None when it was (runs
        then keep their phase: each is due one period after the last due time)."""
        every = self.session.rate(POST)
        if not self.csipaus or every is None or every < ALIGN_MIN_S:
            return None
        phase = self.now() % every
        if ALIGN_AFTER_S / 2 <= phase <= 3 * ALIGN_AFTER_S:
            return None
        return every - phase + ALIGN_AFTER_S

    def _due_now(self, what: str, rate: int | None) -> bool:
        """Whether ``what`` (a mirror's mRID, DER_STATUS) is due at this telemetry run: the run
        comes at the smallest post rate, each thing at its own (None: at every run). Half a
        run's period of slack, so that a run a little early does not skip a whole period."""
        last = self._posted.get(what)
        every = self.session.rate(POST)
        if last is None or rate is None or every is None:
            return True
        return time.monotonic() - last >= rate - every / 2

    async def _post_log_event(self, edge: AlarmEdge) -> Outcome:
        """One alarm raised or returned to normal (BASIC-027, CSIP §5.2.5.3), with the time it
        happened: the runtime stored the edge when a control cycle saw it, so one that came and
        went while the server was unreachable is reported too, in order, once."""
        found = self.session.discovery
        if found is None:
            raise TransportError(f"LogEvent {edge}: waiting for the walk")
        link = found.end_device.LogEventListLink
        if link is None:
            self._problem(f"alarm {edge} not reported: the EndDevice has no LogEventListLink")
            return Outcome.REFUSED
        body = codec.encode(edge.log_event())
        reply = await self.http.request(Request("POST", link.href, body))
        self._check("POST", link.href, reply)
        return outcome(reply.status)

    async def _post_readings(self, state: telemetry.SiteState) -> None:
        """Site and DER readings to their MirrorUsagePoints (ALL-06, ALL-10, ALL-29).

        The first post creates the mirror (POST to the MirrorUsagePointList, 201 + Location)
        with its first readings; later posts send a MirrorMeterReadingList to that href. A 404
        there means the server lost the mirror: it is created again at once. Each mirror is
        posted at its own postRate (``_due_now``). CSIP-AUS: the values are averages over the
        last whole interval of that rate, aligned on the clock, each posted once as soon as it
        is over (so an interval, not the time since the last post, decides); a mirror whose
        interval changed is POSTed to the list again (its ReadingTypes carry
        ``intervalLength``).
        """
        found = self.session.discovery
        link = None if found is None else found.dcap.MirrorUsagePointListLink
        if link is None:
            return
        edev_rate, _ = self.session.post_rates()
        for part in ("site", "der"):
            mrid = metering.derive_mrid(
                self.pen, self.identity.lfdi, part, decimal_pen=self.csipaus
            )
            rate = self._mup_rates.get(mrid, edev_rate)
            if not self.csipaus and not self._due_now(mrid, rate):
                continue
            built = self._mirror(part, state, rate or DEFAULT_POST_RATE_S)
            if built is None:
                continue
            self._posted[mrid] = time.monotonic()
            await self._send_mirror(link.href, *built)

    def _mirror(
        self, part: str, state: telemetry.SiteState, interval: int
    ) -> tuple[metering.MirrorUsagePoint, int | None] | None:
        """The ``part`` mirror with its readings, and the end of the interval they average
        (None: no average to send, the mirror only carries its ReadingTypes); None when there
        is nothing new to post (no such measurement, that interval already posted)."""
        lfdi = self.identity.lfdi
        values = {
            "site_w": state.site_w,
            "site_var": state.site_var,
            "der_w": state.der_w,
            "der_var": state.der_var,
            "voltage_v": state.voltage_v,
            "frequency_hz": state.frequency_hz,
        }
        at, every, ended = int(state.at), None, None
        if self.csipaus:
            every = interval
            start, end = averages.last_interval(self.now(), interval)
            means = {k: self._averages.mean(k, start, end) for k in values}
            main = "site_w" if part == "site" else "der_w"
            if means[main] is not None:
                values, at, ended = means, end, end
            else:
                at = end  # no sample in that interval (just started): ReadingTypes only
            mrid = metering.derive_mrid(self.pen, lfdi, part, decimal_pen=True)
            known = self._mups.get(mrid) is not None and self._intervals.get(mrid) == interval
            if known and (ended is None or ended <= self._ended.get(mrid, -1)):
                return None
        if part == "site":
            if values["site_w"] is None:
                return None
            mup = metering.site_mirror_usage_point(
                lfdi,
                self.pen,
                at=at,
                site_w=values["site_w"],
                volts=values["voltage_v"],
                site_var=values["site_var"],
                hz=values["frequency_hz"],
                interval=every,
                decimal_pen=self.csipaus,
            )
            return mup, ended
        if values["der_w"] is None:
            return None
        stored = None
        if self._ratings is not None and state.ev_connected:
            stored = self._ratings.stored_wh(state.soc_pct)
        mup = metering.der_mirror_usage_point(
            lfdi,
            self.pen,
            at=at,
            der_w=values["der_w"],
            der_var=values["der_var"],
            volts=values["voltage_v"],
            stored_wh=stored,
            interval=every,
            decimal_pen=self.csipaus,
        )
        return mup, ended

    async def _send_mirror(
        self, list_href: str, mup: metering.MirrorUsagePoint, ended: int | None
    ) -> None:
        mrid = mup.mRID
        interval = _interval_of(mup)
        if ended is None and self.csipaus:
            # Nothing averaged yet: the mirror and its ReadingTypes, no Reading.
            mmrs = tuple(replace(m, Reading=None) for m in mup.MirrorMeterReading)
            mup = replace(mup, MirrorMeterReading=mmrs)
        href = self._mups.get(mrid)
        if href is not None and self._intervals.get(mrid) == interval:
            readings = metering.MirrorMeterReadingList(
                all=len(mup.MirrorMeterReading),
                results=len(mup.MirrorMeterReading),
                MirrorMeterReading=mup.MirrorMeterReading,
            )
            reply = await self.http.request(Request("POST", href, codec.encode(readings)))
            if reply.status != HTTP_NOT_FOUND:
                self._check("POST", href, reply)
                if ended is not None:
                    self._ended[mrid] = ended
                return
            self._problem(f"{href}: the server lost our MirrorUsagePoint; creating it again")
            del self._mups[mrid]
        reply = await self.http.request(Request("POST", list_href, codec.encode(mup)))
        self._check("POST", list_href, reply)
        self._intervals[mrid] = interval
        if ended is not None:
            self._ended[mrid] = ended
        location = reply.headers.get("Location")
        if location:
            self._mups[mrid] = location
            await self._read_mirror(mrid, location)

    def sample(self) -> None:
        """One sample of the site for the averages (each control cycle, by the adapter)."""
        if self._site is None:
            return
        state = self._site(self.now())
        if state is not None:
            self._sample(state)

    def _sample(self, state: telemetry.SiteState) -> None:
        self._averages.add(
            state.at,
            {
                "site_w": state.site_w,
                "site_var": state.site_var,
                "der_w": state.der_w,
                "der_var": state.der_var,
                "voltage_v": state.voltage_v,
                "frequency_hz": state.frequency_hz,
            },
        )

    async def _read_mirrors(self) -> None:
        """Our mirrors again (with the walk): the server may change their postRate. From the
        MirrorUsagePointList, where the reference runner looks for it (its ALL-10 waits for a
        GET of the list, twice, before and after it changes the rate); each mirror by its own
        href only when the server names no list."""
        if not self._mups:
            return
        found = self.session.discovery
        link = None if found is None else found.dcap.MirrorUsagePointListLink
        if link is None:
            for mrid, href in list(self._mups.items()):
                await self._read_mirror(mrid, href)
            return
        listed = await self._mirror_list(link.href)
        if listed is None:
            return
        for mrid in list(self._mups):
            mup = listed.get(mrid)
            # Not listed: lost; the next post of its readings meets the 404 and creates it.
            self._rate_of(mrid, None if mup is None else mup.postRate, link.href)
        self.session.mirrors_rated(self._mup_rates, time.monotonic())

    async def _mirror_list(self, href: str) -> dict[str, metering.MirrorUsagePoint] | None:
        """Every MirrorUsagePoint the server lists for us, by mRID, page by page (None: the
        list could not be read; the rates in force stay)."""
        listed: dict[str, metering.MirrorUsagePoint] = {}
        start = 0
        while True:
            page_href = f"{href}{'&' if '?' in href else '?'}s={start}&l={MIRROR_PAGE}"
            reply = await self.http.request(Request("GET", page_href))
            try:
                page = read(page_href, reply, metering.MirrorUsagePointList)
            except RetryableWalkError as e:
                raise TransportError(str(e)) from e
            except WalkError as e:
                self._problem(f"{e}; keeping the post rates in force")
                return None
            for mup in page.MirrorUsagePoint:
                listed[mup.mRID] = mup
            start += len(page.MirrorUsagePoint)
            if not page.MirrorUsagePoint or start >= page.all:
                return listed

    def _rate_of(self, mrid: str, rate: int | None, where: str) -> None:
        if rate is None:
            self._mup_rates.pop(mrid, None)
        elif self._mup_rates.get(mrid) != rate:
            log.info("%s: %s asks for readings of %s every %d s", self.name, where, mrid, rate)
            self._mup_rates[mrid] = rate

    async def _read_mirror(self, mrid: str, href: str) -> None:
        """GET our MirrorUsagePoint for the postRate the server set on it (ALL-10: the
        reference server sets it there, not on the EndDevice) and follow it for its readings."""
        reply = await self.http.request(Request("GET", href))
        if reply.status == HTTP_NOT_FOUND:
            # Lost: the next post of its readings meets the 404 and creates it again.
            self._mup_rates.pop(mrid, None)
        else:
            try:
                rate = read(href, reply, metering.MirrorUsagePoint).postRate
            except RetryableWalkError as e:
                raise TransportError(str(e)) from e
            except WalkError as e:
                self._problem(f"{e}; keeping the post rate in force")
                return
            self._rate_of(mrid, rate, href)
        self.session.mirrors_rated(self._mup_rates, time.monotonic())

    def _check(self, method: str, href: str, reply: Reply) -> None:
        """Retry later (raise) or log a refusal, as for Responses (``responses.outcome``)."""
        result = outcome(reply.status)
        if result is Outcome.RETRY:
            raise TransportError(f"{method} {href}: {reply.status}")
        if result is Outcome.REFUSED:
            self._problem(f"{method} {href} refused: {reply.status} {reply.body[:200]!r}")

    # ------------------------------------------------------------------ link state

    async def _down(self, why: str) -> None:
        self._problem(why)
        if self._link_down is None:
            self._link_down = why
            await self._deliver([NorthLinkLost(self.now(), ORIGIN, why)])

    async def _up(self) -> None:
        if self._link_down is not None:
            self._link_down = None
            await self._deliver([NorthLinkRestored(self.now(), ORIGIN)])

    def _problem(self, text: str) -> None:
        log.warning("%s: %s", self.name, text)
        self.errors = [*self.errors[-19:], text]


def _certificate_refused(where: str, error: Exception) -> str:
    if isinstance(error, tls.TlsIdentityError | tls.TlsChainError):
        return f"{where}: {error}"  # the project's own checks: their messages say it all
    detail = getattr(error, "verify_message", None) or str(error)
    return (
        f"{where}: certificate verify failed: {detail}: the server's certificate must chain "
        "to the SERCA the gateway trusts ([sep2] serca) and be valid now"
    )


async def _peer_certificate(host: str, port: int, timeout_s: float) -> bytes | None:
    """The certificate ``host`` presents to a client that accepts any (DER), or None.

    Only to say why a handshake failed: the 2030.5 suite cannot be used with an RSA key, so the
    real handshake fails before its certificate reaches us. Nothing is sent on this
    connection; TLS 1.3 is allowed, whose client is done before a server that wants a client
    certificate can refuse it."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # diagnosis only: nothing is trusted or sent
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port, ssl=probe)
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
        return der or None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout_s):
                await writer.wait_closed()


def _interval_of(mup: metering.MirrorUsagePoint) -> int | None:
    """The intervalLength the mirror's ReadingTypes carry (None: instantaneous readings)."""
    for mmr in mup.MirrorMeterReading:
        if mmr.ReadingType is not None and mmr.ReadingType.intervalLength is not None:
            return mmr.ReadingType.intervalLength
    return None


def _href(link: object) -> str | None:
    return getattr(link, "href", None)


def _walked_lists(found: Discovery | None) -> set[str]:
    """The FSA list and DERProgramLists of a walk: what a notification re-walks for."""
    if found is None:
        return set()
    out = {f.DERProgramListLink.href for f in found.fsas if f.DERProgramListLink is not None}
    fsa_list = found.end_device.FunctionSetAssignmentsListLink
    if fsa_list is not None:
        out.add(fsa_list.href)
    return out


def _subscribable_hrefs(found: Discovery, views: Iterable[ProgramView]) -> list[str]:
    """What ALL-14 subscribes to: the FSA list, each DERProgramList, and each program's
    DERControlList and DefaultDERControl (when it has one: a 404 is no resource)."""
    out = sorted(_walked_lists(found))
    for view in views:
        program = view.program
        if program.DERControlListLink is not None:
            out.append(program.DERControlListLink.href)
        if program.DefaultDERControlLink is not None and view.default is not None:
            out.append(program.DefaultDERControlLink.href)
    return out
