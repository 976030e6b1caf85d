"""The OpenADR 2.0b VEN: openleadr's ``OpenADRClient``, subclassed where it falls short.

The only module of the adapter that touches openleadr, aiohttp and the clock. It registers
(with a pre-allocated venID if configured), registers its telemetry reports, polls at the
configured interval (or when :meth:`GatewayVen.poll_now` is called) and hands every
oadrDistributeEvent, **whole**, to ``on_distribute``, which returns the eventResponses to send.

Workarounds for openleadr 0.5.36 (each has a test in tests/integration/north/
test_oadr2_workarounds.py that shows the stock behaviour next to ours):

1. The stock VEN ignores an oadrDistributeEvent with no events (``_poll``), and never ends an
   event that vanished from the list (issues #61, #92): no implied cancellation. We take the
   distribution in :meth:`poll` / :meth:`sync_events`, before the stock handler sees it.
2. The stock VEN answers 460 (signal not supported) for any signal name outside the 2.0b enum
   even when its handler opted in, and 452 (invalid ID) to any all-lowercase vtnID
   (``_on_event``). We send the code our decision carries (:mod:`.mapping`).
3. ``_perform_request`` returns a bare ``None`` for an empty HTTP 200 body, which every caller
   unpacks as a tuple (TypeError inside the poll job). We return ``(None, {})``.
4. ``create_party_reregistration`` registers the reports again without dropping the report
   jobs of the old registration, so every re-registration adds a duplicate report stream;
   it also starts a second report sender. Ours removes the old jobs first.
5. A DTD with nested entities ("billion laughs") in a VTN answer **crashes the process**
   (segmentation fault in lxml/libxml2 under openleadr's schema-validating parser). Our
   ``_perform_request`` refuses any answer with a DTD, NUL bytes or non-UTF-8 before parsing
   (:func:`screen`); it is otherwise the stock request, with our log lines.
6. Every signed message re-parses the PEM private key twice (~80 ms per message with RSA-2048).
   :mod:`.signing` loads the key once (RSA becomes usable; ECDSA P-256 is still advised).
7. ``on_cancel_party_registration`` (the VTN cancels our registration, N1_0040) sets the report
   list, callbacks and queue to ``None``, so registering again crashes in ``register_reports``.
   Ours keeps the reports (only the VTN's report requests go), and registers again after
   :attr:`GatewayVen.after_cancel_s`.
8. The stock TLS context is Python's default, whose cipher list leaves out the 2.0b profile's
   ``TLS_RSA_WITH_AES_128_CBC_SHA256`` (no forward secrecy): a TLS 1.2 VTN that offers only
   that suite cannot be reached. Ours (:func:`client_context`) offers the profile's two suites
   after the ECDHE AEAD ones, TLS 1.2 or 1.3.
9. One message per poll: the stock ``_poll`` handles one answer and waits a whole interval
   for the next (its immediate re-poll is commented out), so a queued re-registration delays
   the event behind it by a poll interval. :meth:`GatewayVen.poll_all` polls again at once
   while the VTN has something to say (up to :data:`MAX_BURST` messages).
10. ``cancel_opt`` refuses an optID the client object did not create itself (lost on a
    restart); ``create_opt``/``cancel_opt`` pass the VTN's answer to ``logger.info`` as
    format arguments (a logging error); a zero (open-ended) vavailability duration is written
    "P", which is not an RFC 5545 duration. :meth:`GatewayVen.send_opt` sends both messages.

The stock APScheduler poll job is not used: our own loop polls, so a poll can be forced and a
failed registration is retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import aiohttp
from lxml.etree import XMLSyntaxError  # type: ignore[import-untyped]  # no lxml-stubs here
from openleadr import OpenADRClient, errors, objects, utils
from openleadr.messaging import parse_message, validate_xml_schema, validate_xml_signature
from signxml.exceptions import InvalidSignature

from gateway.north.openadr2.config import Oadr2Config, Tls
from gateway.north.openadr2.events import EventResponse
from gateway.north.openadr2.opts import Action, CancelOpt
from gateway.north.openadr2.signing import message_factory

log = logging.getLogger(__name__)

REPORT_SPECIFIER = "gateway-telemetry"
DEFAULT_POLL_S = 10.0
BACKOFF_S = (0.5, 30.0)
MAX_BURST = 8  # messages taken in one go before waiting for the next interval
INVALID_ID = 452  # OpenADR 2.0b status code: the message names an ID we do not know


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The values the VEN reports (None = not known now: the interval is left out)."""

    site_w: float | None = None  # + = import
    der_w: float | None = None  # + = generation/discharge
    relay_closed: bool | None = None
    soc_pct: float | None = None


OnDistribute = Callable[[list[dict[str, Any]]], Awaitable[list[EventResponse]]]
OnLink = Callable[[bool, str], Awaitable[None]]


def _value(v: float | bool | None) -> list[tuple[Any, float]] | float:
    """openleadr's report callback result: a number, or no interval at all."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return []
    return float(v)


# OpenADR 2.0b's TLS 1.2 suites (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and the mandatory
# TLS_RSA_WITH_AES_128_CBC_SHA256), after the forward-secret AEAD suites a modern VTN prefers.
# TLS 1.3 suites are not affected by this list.
OPENADR_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-SHA256",
    )
)


def client_context(tls: Tls) -> ssl.SSLContext:
    """Mutual TLS to the VTN: TLS 1.2+ with the 2.0b profile's suites, the VTN's certificate
    checked against ``ca_file`` (and its name, unless ``check_hostname = false``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(OPENADR_CIPHERS)
    context.load_verify_locations(cafile=str(tls.ca_file))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.check_hostname = tls.check_hostname
    return context


def screen(content: bytes) -> str:
    """Why these bytes must not reach lxml (empty = they may). OpenADR messages are UTF-8 and
    never carry a DTD; a DTD with nested entities ("billion laughs") crashes the process inside
    openleadr's schema-validating parser (a segfault, not an exception: workaround 5)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if "\x00" in text:
        return "NUL bytes (UTF-16/32 or binary), not an OpenADR message"
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        return "it carries a DTD/entity declarations, which OpenADR never uses"
    return ""


@dataclass(frozen=True, slots=True)
class _Refused:
    """An eventResponse for an event taken from a message we refuse as a whole (E1_1080)."""

    event_id: str
    modification_number: int
    code: int = INVALID_ID
    description: str = "INVALID_ID"
    opt: str = "optOut"


def _refusal(event: dict[str, Any]) -> _Refused:
    d = event.get("event_descriptor") or {}
    return _Refused(str(d.get("event_id")), int(d.get("modification_number") or 0))


class GatewayVen(OpenADRClient):  # type: ignore[misc] # openleadr is untyped
    # What we use of the base class's state, typed.
    report_requests: list[dict[str, Any]]
    incomplete_reports: dict[str, Any]
    report_queue_task: asyncio.Task[None] | None
    reports: list[Any]
    report_callbacks: dict[tuple[str, str], Any]
    pending_reports: asyncio.Queue[Any]
    client_session: Any
    registration_id: str | None
    poll_frequency: timedelta | None

    def __init__(
        self,
        config: Oadr2Config,
        *,
        on_distribute: OnDistribute,
        telemetry: Callable[[], Telemetry | None],
    ) -> None:
        tls = config.tls
        super().__init__(
            ven_name=config.ven_name,
            vtn_url=config.vtn_url,
            cert=str(tls.cert) if tls else None,
            key=str(tls.key) if tls else None,
            ca_file=str(tls.ca_file) if tls else None,
            vtn_fingerprint=tls.vtn_fingerprint if tls else None,
            check_hostname=tls.check_hostname if tls else True,
            show_fingerprint=False,
            ven_id=config.ven_id,
            allow_jitter=False,
        )
        self.config = config
        if tls is not None:  # workaround 6: the signing key parsed once, not per message
            self._create_message = message_factory(tls.cert, tls.key)
        self.on_distribute = on_distribute
        self.telemetry = telemetry
        self._poll_now = asyncio.Event()
        self._received = 0  # HTTP answers that reached us (tells transport errors apart)
        self.distributions = 0
        self.cancelled_by_vtn = False
        # The vtnID of our registration (oadrCreatedPartyRegistration): every later message
        # must carry exactly it (E1_1080).
        self.registered_vtn_id: str | None = None
        self._last_type: str | None = None
        self.after_cancel_s = BACKOFF_S[1]  # wait before registering again after a VTN cancel
        self.add_hook("after_receive_xml", self._count)
        self._add_reports(config.report_interval_s)

    async def _count(self, _: str) -> None:
        self._received += 1

    def _add_reports(self, interval_s: float) -> None:
        rate = timedelta(seconds=interval_s)

        def reader(attr: str) -> Callable[[], list[tuple[Any, float]] | float]:
            def read() -> list[tuple[Any, float]] | float:
                t = self.telemetry()
                return _value(None if t is None else getattr(t, attr))

            return read

        for r_id, resource, measurement, unit in (
            ("site_w", "site", "REAL_POWER", "W"),
            ("der_w", "der", "REAL_POWER", "W"),
            ("relay_closed", "relay", "relayClosed", "bool"),
            ("soc_pct", "ev", "stateOfCharge", "%"),
        ):
            self.add_report(
                reader(r_id),
                resource_id=resource,
                measurement=measurement,
                unit=unit,
                report_specifier_id=REPORT_SPECIFIER,
                r_id=r_id,
                report_duration=rate,
                sampling_rate=rate,
                power_hertz=60,
                power_voltage=240,
            )

    # ------------------------------------------------------------ workarounds (see docstring)

    async def _perform_request(self, service: str, message: Any) -> tuple[Any, dict[str, Any]]:
        """The stock request, with the received bytes screened before lxml sees them
        (workaround 5) and ``(None, {})`` for an empty body (workaround 3)."""
        await self._ensure_client_session()
        url = f"{self.vtn_url}/{service}"
        try:
            await self._execute_hooks("before_send_xml", utils.ensure_str(message))
            async with self.client_session.post(url, data=message) as response:
                content = await response.read()
                await self._execute_hooks("after_receive_xml", content)
                if response.status != HTTPStatus.OK:
                    log.warning(
                        "OpenADR: the VTN answered HTTP %s to %s: %s",
                        response.status,
                        service,
                        content[:200].decode("utf-8", "replace"),
                    )
                    return None, {}
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("OpenADR: cannot reach the VTN at %s: %s: %s", url, type(e).__name__, e)
            return None, {}
        return self._read(service, content)

    def _read(self, service: str, content: bytes) -> tuple[Any, dict[str, Any]]:
        if not content:
            return None, {}
        refusal = screen(content)
        if refusal:
            log.warning("OpenADR: refused the VTN's answer to %s: %s", service, refusal)
            return None, {}
        try:
            tree = validate_xml_schema(content)
            if self.vtn_fingerprint:
                validate_xml_signature(tree, cert_fingerprint=self.vtn_fingerprint)
            message_type, payload = parse_message(content)
        except XMLSyntaxError as e:
            log.warning(
                "OpenADR: the VTN's answer to %s failed XML schema validation: %s", service, e
            )
            return None, {}
        except errors.FingerprintMismatch as e:
            log.warning("OpenADR: the VTN's answer to %s: %s Ignoring it.", service, e)
            return None, {}
        except InvalidSignature:
            log.warning(
                "OpenADR: the VTN's answer to %s had an invalid signature; ignored", service
            )
            return None, {}
        except Exception as e:  # noqa: BLE001 - openleadr's parser raises anything; none may escape
            log.warning(
                "OpenADR: the VTN's answer to %s could not be parsed or validated: %s: %s",
                service,
                type(e).__name__,
                e,
            )
            return None, {}
        if message_type == "oadrCreatedPartyRegistration" and payload.get("vtn_id"):
            self.registered_vtn_id = str(payload["vtn_id"])
        code = (payload.get("response") or {}).get("response_code", 200)
        if code != 200:
            log.warning(
                "OpenADR: the VTN answered %s with %s %s",
                service,
                code,
                (payload.get("response") or {}).get("response_description"),
            )
        return message_type, payload

    async def _ensure_client_session(self) -> None:
        if self.client_session is None:  # workaround 8: our TLS context
            tls = self.config.tls
            connector = aiohttp.TCPConnector(ssl=client_context(tls)) if tls else None
            self.client_session = aiohttp.ClientSession(
                connector=connector,
                headers={"content-type": "application/xml"},
                timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=10),
            )

    def _took_message(self) -> bool:
        """Whether the last poll brought a message (set by :meth:`poll`)."""
        return self._last_type not in (None, "oadrResponse")

    async def poll_all(self) -> int:
        """Poll until the VTN has nothing more (workaround 9); the number of messages handled."""
        for n in range(MAX_BURST):
            self._last_type = None
            await self._poll()
            if not self._took_message() or not self.registration_id:
                return n
        return MAX_BURST

    async def poll(self) -> tuple[Any, dict[str, Any]]:
        response_type, payload = await super().poll()
        self._last_type = response_type
        if response_type == "oadrDistributeEvent":  # workaround 1: every distribution is ours
            await self._distribute(payload)
            return "oadrResponse", {}
        return response_type, payload

    async def sync_events(self) -> None:
        response_type, payload = await self.request_event()
        if response_type == "oadrDistributeEvent":
            await self._distribute(payload)

    async def create_party_reregistration(self, registration_id: str | None = None) -> None:
        await self.create_party_registration(
            ven_id=self.ven_id, registration_id=registration_id or self.registration_id
        )
        if not self.registration_id:
            log.error("OpenADR re-registration failed: no registrationID from the VTN")
            return
        self._drop_report_jobs()  # workaround 4
        await self.register_reports(self.reports)
        await self.sync_events()

    async def on_cancel_party_registration(self, message: dict[str, Any]) -> None:
        reports, callbacks = self.reports, self.report_callbacks
        requests, incomplete = self.report_requests, self.incomplete_reports
        was = self.registration_id
        await super().on_cancel_party_registration(message)
        self.reports, self.report_callbacks = reports, callbacks  # workaround 7
        if was is None or self.registration_id is not None:
            # Not cancelled (not registered, or another registrationID: answered 452): the
            # VTN's report requests and their jobs stand.
            self.report_requests, self.incomplete_reports = requests, incomplete
            return
        # The stock handler drops the VTN's report requests but leaves their scheduler jobs
        # running: each then raised TypeError every report interval, forever (also after we
        # registered again, whose _drop_report_jobs no longer knew them).
        self.report_requests = requests
        self._drop_report_jobs()
        self.pending_reports = asyncio.Queue()
        if self.report_queue_task is not None:
            self.report_queue_task.cancel()
            self.report_queue_task = None
        self.cancelled_by_vtn = True
        log.warning(
            "OpenADR: the VTN cancelled our registration; registering again in %.1f s",
            self.after_cancel_s,
        )

    def _drop_report_jobs(self) -> None:
        for request in self.report_requests or []:
            job = request.get("job")
            if job is not None:
                with contextlib.suppress(Exception):  # already gone from the scheduler
                    job.remove()
        self.report_requests = []
        self.incomplete_reports = {}

    # ------------------------------------------------------------ events

    async def _distribute(self, payload: dict[str, Any]) -> None:
        self.distributions += 1
        events = payload.get("events") or []
        if isinstance(events, dict):
            events = [events]
        request_id = payload.get("request_id")
        vtn_id = payload.get("vtn_id")
        if self.registered_vtn_id is not None and vtn_id != self.registered_vtn_id:
            # E1_1080: IDs are case-sensitive; a distribution from another vtnID is not our
            # VTN's. Nothing is taken from it (not even an implied cancellation); 452.
            log.warning(
                "OpenADR: an oadrDistributeEvent names vtnID %r, not %r (the VTN we registered "
                "with): answered 452 (invalid ID), events ignored",
                vtn_id,
                self.registered_vtn_id,
            )
            refused = [_refusal(e) for e in events if isinstance(e, dict)]
            await self._created_event(request_id, refused, code=INVALID_ID)
            return
        responses = await self.on_distribute(list(events))
        if not responses:
            return
        await self._created_event(request_id, responses)

    async def _created_event(
        self,
        request_id: Any,
        responses: list[Any],
        *,
        code: int = HTTPStatus.OK.value,
    ) -> None:
        message = self._create_message(
            "oadrCreatedEvent",
            response={
                "response_code": code,
                "response_description": "OK" if code == HTTPStatus.OK.value else "INVALID_ID",
                "request_id": request_id,
            },
            event_responses=[
                {
                    "response_code": r.code,
                    "response_description": r.description,
                    "opt_type": r.opt,
                    "request_id": request_id,
                    "modification_number": r.modification_number,
                    "event_id": r.event_id,
                }
                for r in responses
            ],
            ven_id=self.ven_id,
        )
        await self._perform_request("EiEvent", message)

    # ------------------------------------------------------------ opts, the EiOpt service

    async def send_opt(self, action: Action) -> bool:
        """oadrCreateOpt / oadrCancelOpt; True once the VTN acknowledged it (200, our optID).

        Not the stock ``create_opt``/``cancel_opt`` (workaround 10): ``cancel_opt`` refuses an
        optID this process did not create (so after a restart an opt could never be cancelled),
        and both log the VTN's answer with a broken format call."""
        if not self.registration_id:
            return False
        request_id = utils.generate_id()
        if isinstance(action, CancelOpt):
            message = self._create_message(
                "oadrCancelOpt", request_id=request_id, opt_id=action.opt_id, ven_id=self.ven_id
            )
        else:
            vavailability = None
            if action.start is not None and action.duration_s is not None:
                # Open-ended = duration 0 (P1_2015). openleadr writes timedelta(0) as "P", not
                # an RFC 5545 duration (workaround 10); a string passes its filter unchanged.
                duration: timedelta | str = (
                    timedelta(seconds=action.duration_s) if action.duration_s else "PT0M"
                )
                vavailability = objects.Vavailability(
                    [
                        objects.VavailabilityComponent(
                            datetime.fromtimestamp(action.start, UTC), duration
                        )
                    ]
                )
            message = self._create_message(
                "oadrCreateOpt",
                request_id=request_id,
                opt_id=action.opt_id,
                opt_type=action.opt_type,
                opt_reason=action.opt_reason,
                market_context=action.market_context,
                ven_id=self.ven_id,
                vavailability=vavailability,
                created_date_time=datetime.now(UTC),
                event_id=action.event_id,
                modification_number=action.modification_number,
                targets=[{"ven_id": self.ven_id}],
            )
        response_type, payload = await self._perform_request("EiOpt", message)
        code = (payload.get("response") or {}).get("response_code")
        ok = (
            response_type in ("oadrCreatedOpt", "oadrCanceledOpt")
            and str(code) == "200"
            and payload.get("opt_id") == action.opt_id
        )
        if not ok:
            log.warning(
                "OpenADR: the VTN did not acknowledge %s %s (answer %s, code %s); trying again",
                type(action).__name__,
                action.opt_id,
                response_type,
                code,
            )
        return ok

    # ------------------------------------------------------------ registration and polling

    @property
    def poll_interval_s(self) -> float:
        if self.config.poll_interval_s is not None:
            return self.config.poll_interval_s
        if isinstance(self.poll_frequency, timedelta):
            return max(self.poll_frequency.total_seconds(), 0.1)
        return DEFAULT_POLL_S

    def poll_now(self) -> None:
        """Poll at once instead of at the next interval (tests, benchmarks, an operator)."""
        self._poll_now.set()

    async def register(self) -> bool:
        """oadrQueryRegistration, oadrCreatePartyRegistration, oadrRegisterReport, then the
        first oadrRequestEvent. False when the VTN did not register us (see the log)."""
        self.loop = asyncio.get_running_loop()
        response_type, payload = await self.query_registration()
        if response_type is None:
            return False
        request_id = (payload.get("response") or {}).get("request_id")
        await self.create_party_registration(ven_id=self.ven_id, request_id=request_id)
        if not self.registration_id:
            return False
        if not self.scheduler.running:
            self.scheduler.start()
        self._drop_report_jobs()
        await self.register_reports(self.reports)
        if self.reports and self.report_queue_task is None:
            self.report_queue_task = self.loop.create_task(self._report_queue_worker())
        await self.sync_events()
        return True

    async def follow(self, stop: asyncio.Event, on_link: OnLink) -> None:
        """Register (retrying with back-off), then poll until ``stop``."""
        backoff = BACKOFF_S[0]
        up: bool | None = None
        try:
            while not stop.is_set():
                if not self.registration_id:
                    if self.cancelled_by_vtn:
                        self.cancelled_by_vtn = False
                        if up is not False:
                            up = False
                            await on_link(up, "the VTN cancelled our registration")
                        await self._wait(stop, self.after_cancel_s)
                        continue
                    if await self.register():
                        backoff = BACKOFF_S[0]
                        if up is not True:
                            up = True
                            await on_link(up, "")
                    else:
                        if up is not False:
                            up = False
                            await on_link(up, f"not registered with the VTN {self.vtn_url}")
                        log.warning(
                            "OpenADR registration with %s failed; retrying in %.1f s",
                            self.vtn_url,
                            backoff,
                        )
                        await self._wait(stop, backoff)
                        backoff = min(backoff * 2, BACKOFF_S[1])
                        continue
                before = self._received
                try:
                    await self.poll_all()
                except Exception:  # an openleadr handler's bug must not stop the VEN
                    log.exception("OpenADR: the poll failed; polling again at the next interval")
                reached = self._received > before
                if reached != up:
                    up = reached
                    await on_link(
                        reached, "" if reached else f"the VTN {self.vtn_url} is unreachable"
                    )
                await self._wait(stop, self.poll_interval_s)
        finally:
            await self.close()

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._poll_now.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._poll_now.clear()

    async def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.report_queue_task is not None:
            self.report_queue_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.report_queue_task
            self.report_queue_task = None
        if self.client_session is not None:
            await self.client_session.close()
            self.client_session = None
