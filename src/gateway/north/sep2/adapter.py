"""The 2030.5 north adapter: a client that follows a server, plugged into the site's port.

One :class:`Sep2Gateway` per EndDevice (aggregator mode runs several over one :class:`Http`).
It receives the site as a :class:`~gateway.core.ports.SitePort` (the runtime's runner) and the
site's store as an :class:`~gateway.core.ports.Outbox`; three tasks run under the site's
supervision (``SitePort.run``):

* the control loop (the site's): observe the devices, decide, act, every ``period_s``;
* the 2030.5 client (``EndDeviceClient.run``): walks and polls, feeding what is new into the
  same site, so a control that starts now reaches the devices within the feed;
* the outbox: every report the engine stored is POSTed as a ``Response`` in order, and
  acknowledged in the store only when the server took it (``north.sep2.outbox.drain``). A
  refused report (4xx) is settled and logged; a busy or unreachable server keeps it for later.
  Each alarm edge joins the same outbox when a control cycle sees it and goes out as a
  ``LogEvent`` (BASIC-027, ``north.sep2.alarm_journal``).

The engine runs on server time (``client.now``): the events and every ``createdDateTime`` are
in the server's timebase, as 2030.5 requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from gateway.core.controls import ControlSet, Mode
from gateway.core.island import Phase, RelayPosition
from gateway.core.messages import Input, MeterTelemetry, Observed
from gateway.core.ports import Jobs, Outbox, OutboxEntry, SitePort
from gateway.core.site import SiteConfig
from gateway.north.sep2.alarm_journal import AlarmRecorder
from gateway.north.sep2.client import (
    DOCUMENTATION_PEN,
    EndDeviceClient,
    Http,
    Identity,
    TransportError,
)
from gateway.north.sep2.outbox import DeliveryError, drain
from gateway.north.sep2.pubsub import Notification
from gateway.north.sep2.responses import Outcome
from gateway.north.sep2.telemetry import DerAlarm, SiteRatings, SiteState

log = logging.getLogger(__name__)

DRAIN_PERIOD_S = 0.5
TIME_KEY = "sep2.time"  # the server's offset from the wall clock, for a restart without comms
TIME_SAVE_DELTA_S = 0.5
ORIGIN = "sep2"  # the core events' origin for this link (its reports carry it)


class SiteStateSource:
    """Builds the north side's :class:`SiteState` from the site's last snapshot."""

    def __init__(self, site: SitePort) -> None:
        self.site = site
        self._last: tuple[bool, bool, bool] | None = None
        self._changed_at = 0.0

    def __call__(self, at: float) -> SiteState | None:
        obs = self.site.observed()
        if obs is None:
            return None
        fault = _fault(self.site)
        connected = obs.relay is not None and obs.relay.position is RelayPosition.CLOSED
        available = _der_available(obs)
        if self._last != (connected, fault, available):
            self._last = (connected, fault, available)
            self._changed_at = obs.at
        charger, meter = obs.charger, obs.meter
        controls = self.site.controls()
        der_w = sum(d.power_w for d in obs.ders) + (charger.power_w if charger else 0.0)
        return SiteState(
            at=at,
            grid_connected=connected,
            connect_changed_at=self._changed_at,
            fault=fault,
            der_w=der_w,
            soc_pct=charger.soc_pct if charger else None,
            ev_connected=charger.ev_connected if charger else None,
            site_w=meter.net_w if meter else None,
            site_var=meter.net_var if meter else None,
            der_var=_der_var(obs),
            voltage_v=meter.grid_voltage_v if meter else None,
            frequency_hz=meter.grid_frequency_hz if meter else None,
            energized=controls.energize is not False,
            alarms=_alarms(self.site.config, meter, fault=fault),
            der_available=available,
            dispatched=dispatched(controls, self.site.config.site_policy),
        )


#: The modes that set the DER's output: its limits and setpoints (not connect/energize, ramps or
#: the enter-service settings, which say how, not how much).
DISPATCH_MODES: Final = (
    Mode.EXPORT_LIMIT_W,
    Mode.IMPORT_LIMIT_W,
    Mode.GENERATION_LIMIT_W,
    Mode.LOAD_LIMIT_W,
    Mode.MAX_GENERATION_PCT,
    Mode.FIXED_W_PCT,
    Mode.TARGET_W,
    Mode.STORAGE_TARGET_W,
    Mode.SOC_TARGET_PCT,
)


def dispatched(controls: ControlSet, policy: ControlSet) -> bool:
    """Whether a control sets the DER's output now (DERStatus Operating, ``telemetry``): a limit
    or setpoint in force that is not just the site's own standing policy (the connection
    agreement's limits are no control the DER is carrying out)."""
    return any(
        (value := controls.get(m)) is not None and value != policy.get(m) for m in DISPATCH_MODES
    )


def _fault(site: SitePort) -> bool:
    return site.phase() is Phase.FAULT


def _alarms(config: SiteConfig, meter: MeterTelemetry | None, *, fault: bool) -> int:
    """DERStatus alarm bits: the grid outside the outage-detection window (the DER trip
    limits) on the grid side of the relay, and the islanding state machine in FAULT (a local
    emergency: a relay or charger step failed)."""
    bits = DerAlarm(0)
    if fault:
        bits |= DerAlarm.LOCAL_EMERGENCY
    if meter is None:
        return int(bits)
    o = config.outage
    v, hz = meter.grid_voltage_v, meter.grid_frequency_hz
    if v is not None:
        pu = v / o.nominal_v
        bits |= DerAlarm.OVER_VOLTAGE if pu > o.v_max_pu else DerAlarm(0)
        bits |= DerAlarm.UNDER_VOLTAGE if pu < o.v_min_pu else DerAlarm(0)
    if hz is not None:
        bits |= DerAlarm.OVER_FREQUENCY if hz > o.f_max_hz else DerAlarm(0)
        bits |= DerAlarm.UNDER_FREQUENCY if hz < o.f_min_hz else DerAlarm(0)
    return int(bits)


def _der_available(obs: Observed) -> bool:
    """Whether any DER could run: the charger without a fault, or a DER that does not report
    itself disconnected. With no DER telemetry at all, unknown: the relay decides alone."""
    parts = [d.connected is not False for d in obs.ders]
    if obs.charger is not None:
        parts.append(not obs.charger.fault)
    return any(parts) if parts else True


def _der_var(obs: Observed) -> float | None:
    """The DERs' reactive power, when every DER that reports power also reports var (the
    charger does not measure it: it runs at unity power factor, so it adds nothing)."""
    if not obs.ders or any(d.reactive_var is None for d in obs.ders):
        return None
    return sum(d.reactive_var or 0.0 for d in obs.ders)


class NotificationRouter:
    """Hands each Notification to the EndDevice that subscribed (one listener, many devices)."""

    def __init__(self) -> None:
        self.clients: list[EndDeviceClient] = []
        self.unrouted = 0

    async def __call__(self, n: Notification) -> None:
        # The subscription's owner first: an aggregator's EndDevices may all follow one program.
        owner = next((c for c in self.clients if c.subscribed(n)), None)
        owner = owner or next((c for c in self.clients if c.follows(n)), None)
        if owner is not None:
            owner.enqueue(n)  # answered at once; acted on by the client's own task
            return
        self.unrouted += 1
        log.warning("notification for %s matches no subscription of ours", n.subscribedResource)

    async def unverified(self, n: Notification) -> None:
        """A notification from a sender without a certificate (``[sep2.notify]
        require_certificate = false``): only one naming one of our subscriptions (by its
        ``subscriptionURI``) is taken, and only as a reason to GET what it names."""
        owner = next((c for c in self.clients if c.subscribed(n)), None)
        if owner is not None:
            owner.enqueue(n, verified=False)
            return
        self.unrouted += 1
        log.warning(
            "unverified notification for %s names no subscription of ours (%s): ignored",
            n.subscribedResource,
            n.subscriptionURI,
        )


class Sep2Gateway:
    def __init__(
        self,
        site: SitePort,
        store: Outbox[OutboxEntry],
        http: Http,
        identity: Identity,
        *,
        ratings: SiteRatings | None = None,
        page_size: int = 32,
        notify: tuple[NotificationRouter, str] | None = None,
        pen: int = DOCUMENTATION_PEN,
        csipaus: bool = True,
    ) -> None:
        self.site = site
        self.store = store
        self._drain_now = asyncio.Event()
        self.client = EndDeviceClient(
            http,
            identity,
            deliver=self._deliver,
            site=SiteStateSource(site),
            ratings=ratings,
            modes=site.config.supported_modes,
            page_size=page_size,
            pen=pen,
            csipaus=csipaus,
            state=store,
        )
        if notify is not None:
            router, uri = notify
            router.clients.append(self.client)
            self.client.notify_uri = uri
        self._saved_offset: float | None = None
        self.alarms = AlarmRecorder(store)
        site.on_cycle(self._alarm_edges)
        site.on_cycle(lambda _obs: self.client.sample())  # for the readings' averages
        self._configured = ratings
        # The engine's DER ratings (discharge, charge) last passed on.
        self._rated: tuple[dict[str, float], dict[str, float]] | None = None
        site.on_cycle(self._follow_ratings)
        self._follow_ratings()  # the ratings read at connect, before the first walk's PUTs
        self.delivered = 0  # reports the server acknowledged (or refused for good)

    async def _deliver(self, inputs: list[Input]) -> None:
        for item in inputs:
            await self.site.feed(item)
        self._drain_now.set()

    def _alarm_edges(self, obs: Observed) -> None:
        config, fault = self.site.config, _fault(self.site)
        if self.alarms.record(_alarms(config, obs.meter, fault=fault), obs.at):
            self._drain_now.set()

    def _follow_ratings(self, _obs: Observed | None = None) -> None:
        """Each DER's rating in force (the engine's: min(configured, the device's own), read
        rarely) reaches the client's ratings when it changes, which PUTs DERCapability and
        DERSettings again (MUL-03 step d)."""
        rated = self.site.ratings()
        if self._configured is None or rated == self._rated:
            return
        self._rated = (dict(rated[0]), dict(rated[1]))
        charger = self.site.config.charger_id
        ratings = self._configured.with_rated(self._rated[0], charger, charge=self._rated[1])
        self.client.update_ratings(ratings)

    async def _send(self, item: OutboxEntry) -> None:
        try:
            result = await self.client.send_report(dict(item.doc))
        except TransportError as e:
            raise DeliveryError(str(e)) from e
        if result is Outcome.REFUSED:
            log.warning("report %s settled without acknowledgement (see above)", item.key)

    async def drain_once(self) -> int:
        n = await drain(self.store, self._send, self.client.now, own_report)
        self.delivered += n
        return n

    async def _drain_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.client.session.discovery is not None:
                self._save_time()
                await self.drain_once()
            self._drain_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_now.wait(), DRAIN_PERIOD_S)

    def _save_time(self) -> None:
        offset = self.client.http.time.wall_offset_s
        if self._saved_offset is None or abs(offset - self._saved_offset) > TIME_SAVE_DELTA_S:
            self.store.put_state(TIME_KEY, {"wall_offset_s": offset})
            self._saved_offset = offset

    async def _start_time(self) -> None:
        """The server's time before the first cycle; the last one known if it cannot answer
        (a restart during a comms loss must not put a server hours away back on OS time)."""
        if await self.client.sync_time():
            self._save_time()
            return
        saved = self.store.get_state(TIME_KEY)
        if saved is not None and isinstance(saved.get("wall_offset_s"), int | float):
            self.client.http.time.restore(float(saved["wall_offset_s"]))
            self._saved_offset = float(saved["wall_offset_s"])
            log.warning("using the server time offset saved before the restart")

    @contextlib.asynccontextmanager
    async def tasks(self, stop: asyncio.Event) -> AsyncIterator[Jobs]:
        """This link's own tasks, for the site's one supervision (``SitePort.run``) next to
        the other links' and the one control loop; the server's time is taken first."""
        await self._start_time()
        yield {
            "sep2-client": lambda: self.client.run(stop),
            "sep2-outbox": lambda: self._drain_loop(stop),
        }

    async def run(self, stop: asyncio.Event, *, period_s: float = 1.0) -> None:
        """The site's control loop with this link alone."""
        async with self.tasks(stop) as jobs:
            await self.site.run(stop, jobs, period_s=period_s)


def own_report(item: OutboxEntry) -> bool:
    """A report for the 2030.5 server: a Response to one of its controls, or an alarm edge
    (no origin). Another link's reports stay in the outbox for that link."""
    return bool(item.doc.get("origin", ORIGIN) == ORIGIN)
