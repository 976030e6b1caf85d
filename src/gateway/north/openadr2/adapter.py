"""The OpenADR 2.0b north adapter: a VEN that follows a VTN, plugged into the site's port.

It receives the site as a :class:`~gateway.core.ports.SitePort` (the runtime's runner) and the
site's store as a :class:`~gateway.core.ports.StateStore`; its tasks run under the site's
supervision (``SitePort.run``), next to the site's control loop:

* the VEN (``GatewayVen.follow``): registers, polls, and hands every oadrDistributeEvent to
  :meth:`Oadr2Gateway.on_distribute`, which decides (``north.openadr2.mapping``, with the
  site's ``assess`` for its own refusals), feeds what changed into the site (so an event
  starting now reaches the devices within the feed), stores the tracker's state, and returns
  the opt answers for the oadrCreatedEvent;
* the opts (``opt_step``): availability and opted-in events the site can no longer carry out.

OpenADR events carry wall-clock times, so the site must run on the wall clock (``now=time.time``
for ``ModbusSite``); there is no server timebase as in 2030.5.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.core.controls import ControlSet
from gateway.core.island import RelayPosition
from gateway.core.messages import EventCancelled, EventReceived, NorthLinkLost, NorthLinkRestored
from gateway.core.ports import Jobs, SitePort, StateStore
from gateway.north.openadr2 import mapping
from gateway.north.openadr2 import opts as eiopt
from gateway.north.openadr2.config import Oadr2Config
from gateway.north.openadr2.events import STATE_KEY, EventResponse, Tracker
from gateway.north.openadr2.ven import GatewayVen, Telemetry

log = logging.getLogger(__name__)

REGISTRATION_KEY = "openadr2.registration"
FIRST_OBSERVATION_S = 10.0


class Oadr2Gateway:
    def __init__(self, site: SitePort, store: StateStore, config: Oadr2Config) -> None:
        self.site = site
        self.store = store
        self.config = config
        self.tracker, problems = Tracker.from_doc(store.get_state(STATE_KEY))
        for p in problems:
            log.warning("OpenADR 2.0b: %s", p)
        if self.tracker.known:
            log.info(
                "OpenADR 2.0b: resuming with %d known event(s) and their opt answers",
                len(self.tracker.known),
            )
        self.ven = GatewayVen(config, on_distribute=self.on_distribute, telemetry=self.telemetry)
        saved = store.get_state(REGISTRATION_KEY) or {}
        if config.ven_id is None and isinstance(saved.get("ven_id"), str):
            # The venID the VTN gave us before a restart: registering again under it keeps
            # its events addressed to us (a VTN may not match a new registration by name).
            self.ven.ven_id = saved["ven_id"]
        self.decided = 0  # events (or modifications) decided: restarts must not add to it
        self.link_up = False  # the VEN's last word on the link (registered and answering)
        availability = config.availability
        self.opts = eiopt.OptBook(
            availability.debounce_s,
            availability.horizon_s,
            new_id=lambda: f"gw-opt-{uuid.uuid4().hex[:16]}",
        )
        for p in self.opts.load(store.get_state(eiopt.STATE_KEY)):
            log.warning("OpenADR 2.0b: %s", p)

    def telemetry(self) -> Telemetry | None:
        obs = self.site.observed()
        if obs is None:
            return None
        charger = obs.charger
        der_w = sum(d.power_w for d in obs.ders) + (charger.power_w if charger else 0.0)
        return Telemetry(
            site_w=obs.meter.net_w if obs.meter else None,
            der_w=der_w,
            relay_closed=obs.relay.position is RelayPosition.CLOSED if obs.relay else None,
            soc_pct=charger.soc_pct if charger else None,
        )

    async def on_distribute(self, events: list[dict[str, Any]]) -> list[EventResponse]:
        now = self.site.now()

        def assess(controls: ControlSet) -> list[str]:
            return self.site.assess(controls, now)

        def decide(event: Mapping[str, Any]) -> mapping.Decision:
            self.decided += 1
            desc = event.get("event_descriptor")
            context = desc.get("market_context") if isinstance(desc, Mapping) else None
            program = self.config.mapping_for(context if isinstance(context, str) else None)
            return mapping.decide(event, program, now=now, assess=assess)

        before = self.tracker.to_doc()
        out = self.tracker.distribute(events, decide)
        for line in out.log:
            level = logging.WARNING if ("opted out" in line or "ignored" in line) else logging.INFO
            log.log(level, "OpenADR 2.0b: %s", line)
        try:
            for mrid in out.cancels:
                await self.site.feed(EventCancelled(now, mrid, origin=mapping.ORIGIN))
            for event in out.offers:
                await self.site.feed(EventReceived(now, event))
        except BaseException:
            # Not all of it reached the core: forget this distribution, so that the next copy
            # of the list is decided again rather than taken as known.
            self.tracker = Tracker.from_doc(before)[0]
            raise
        if out.changed:
            self.store.put_state(STATE_KEY, self.tracker.to_doc())
        return out.responses

    def _opted_in_events(self, now: float) -> dict[tuple[str, int], list[str]]:
        """Every event we opted in to that is not over, with why the site could not carry
        out its intervals now (the core's own ``assess`` of each interval's controls)."""
        out: dict[tuple[str, int], list[str]] = {}
        for known in self.tracker.known.values():
            if known.opt != mapping.OPT_IN or known.cancelled:
                continue
            records = [self.site.scheduled(m) for m in known.mrids]
            live = [
                r for r in records if r is not None and r.cancel_status is None and r.span[1] > now
            ]
            if not live:
                continue
            reasons: list[str] = []
            for r in live:
                reasons += [x for x in self.site.assess(r.event.controls, now) if x not in reasons]
            out[(known.event_id, known.modification_number)] = reasons
        return out

    async def opt_step(self) -> int:
        """Send the opts that are due (:mod:`gateway.north.openadr2.opts`); how many the VTN
        acknowledged. Reporting only: nothing here changes what the core has in force."""
        obs = self.site.observed()
        if obs is None or not self.ven.registration_id or not self.link_up:
            return 0  # due again once the VTN answers (no retry storm while it is away)
        now = self.site.now()

        def island() -> list[str]:
            return self.site.assess(ControlSet(connect=False), now)

        services = {
            context: eiopt.unavailable(
                service,
                island=island,
                charger=obs.charger,
                reserve_pct=self.site.config.backup_reserve_soc_pct,
            )
            for context, service in self.config.availability.services.items()
        }
        before = self.opts.to_doc()
        sent = 0
        for action in self.opts.step(now, services, self._opted_in_events(now)):
            if isinstance(action, eiopt.CancelOpt):
                log.info(
                    "OpenADR 2.0b: cancelling opt %s (%s): %s",
                    action.opt_id,
                    action.key,
                    action.reason,
                )
            else:
                log.warning(
                    "OpenADR 2.0b: opting out (%s, opt %s): %s",
                    action.key,
                    action.opt_id,
                    action.reason,
                )
            if await self.ven.send_opt(action):
                self.opts.sent(action)
                sent += 1
        if self.opts.to_doc() != before:
            self.store.put_state(eiopt.STATE_KEY, self.opts.to_doc())
        return sent

    async def _opt_loop(self, stop: asyncio.Event) -> None:
        period = max(0.05, min(1.0, self.config.availability.debounce_s / 4))
        while not stop.is_set():
            try:
                await self.opt_step()
            except Exception:  # a VTN or openleadr failure must not stop the gateway
                log.exception("OpenADR 2.0b: sending opts failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)

    async def _on_link(self, up: bool, error: str) -> None:
        now = self.site.now()
        self.link_up = up
        if up and self.ven.ven_id:
            self.store.put_state(
                REGISTRATION_KEY,
                {"ven_id": self.ven.ven_id, "registration_id": self.ven.registration_id},
            )
        if up:
            await self.site.feed(NorthLinkRestored(now, mapping.ORIGIN))
        else:
            await self.site.feed(NorthLinkLost(now, mapping.ORIGIN, error))

    def poll_now(self) -> None:
        self.ven.poll_now()

    async def _follow(self, stop: asyncio.Event) -> None:
        # Register once the site has been observed: an event that arrives before the first
        # telemetry would be opted out ("the charger is not reporting") for no good reason.
        deadline = asyncio.get_running_loop().time() + FIRST_OBSERVATION_S
        while self.site.cycles == 0 and not stop.is_set():
            if asyncio.get_running_loop().time() > deadline:
                log.warning("OpenADR 2.0b: no telemetry yet; registering with the VTN anyway")
                break
            await asyncio.sleep(0.02)
        await self.ven.follow(stop, self._on_link)

    @contextlib.asynccontextmanager
    async def tasks(self, stop: asyncio.Event) -> AsyncIterator[Jobs]:
        """This link's own tasks, for the site's one supervision (``SitePort.run``) next to
        the other links' and the one control loop."""
        yield {
            "openadr2-ven": lambda: self._follow(stop),
            "openadr2-opts": lambda: self._opt_loop(stop),
        }

    async def run(self, stop: asyncio.Event, *, period_s: float = 1.0) -> None:
        """The site's control loop with this link alone."""
        async with self.tasks(stop) as jobs:
            await self.site.run(stop, jobs, period_s=period_s)
