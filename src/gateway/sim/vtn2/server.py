"""A scripted OpenADR 2.0b VTN: openleadr's own ``OpenADRServer`` with a small Python API.

The server is the real openleadr VTN (registration, signatures, TLS, reports); the script owns
the event list, so it can do what the stock queue cannot:

* every poll after a change answers an oadrDistributeEvent with the **whole** list for that VEN
  (also an empty one, which the stock queue never sends: E1_1010 and implied cancellation);
* ``add_event`` (with a kW itemBase for LOAD_DISPATCH), ``modify_event`` (modificationNumber + 1),
  ``cancel_event`` (status cancelled, modificationNumber + 1), ``drop_event`` (implied
  cancellation: the event just disappears from the list);
* records registrations, every eventResponse of oadrCreatedEvent (with its code and
  modificationNumber, which the stock ``on_created_event`` hook does not pass on) and every
  report value;
* records every oadrCreateOpt / oadrCancelOpt (``opts``; the ones in force in ``open_opts``)
  and acknowledges them (oadrCreatedOpt / oadrCanceledOpt with the optID);
* hostile answers for tests: ``send_raw`` (bytes as the next poll answer), ``tamper_next``
  (break the signature of the next signed poll answer), ``request_reregistration``;
* records every request on the wire (``wire``: when, which service, the message type asked
  and answered, whether it came over TLS with a client certificate and was signed), which is
  what the conformance suite judges a VEN by.

``pre_allocated`` maps venIDs the VTN hands out of band (N1_0025) to their certificate
fingerprints; VENs that register without one get ``VEN_<n>`` and, with TLS, the fingerprint of
the certificate they registered with (trust on first registration: a simulator's choice).

One per process: openleadr keeps the signer and ``ven_lookup`` as class attributes of its
``VTNService``, so a second ``OpenADRServer`` in the same process takes over the first's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import itertools
import logging
import re
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import web
from openleadr import OpenADRServer, enums, objects, utils
from openleadr.service.opt_service import OptService

log = logging.getLogger(__name__)

PATH = "/OpenADR2/Simple/2.0b"


@dataclass(frozen=True, slots=True)
class VtnTls:
    cert: str  # signs messages and serves TLS
    key: str
    ca_file: str  # the CA VEN client certificates must chain to


@dataclass(frozen=True, slots=True)
class Registration:
    ven_name: str
    ven_id: str
    registration_id: str
    fingerprint: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CreatedEvent:
    """One eventResponse the VEN sent in an oadrCreatedEvent."""

    ven_id: str
    event_id: str
    modification_number: int
    opt_type: str
    response_code: int
    at: datetime
    message: int  # which oadrCreatedEvent (1, 2, ...) carried it
    message_code: int  # that message's own eiResponse code (452: the VEN refused our vtnID)


@dataclass(frozen=True, slots=True)
class OptRecord:
    """One oadrCreateOpt (``cancelled``: one oadrCancelOpt; ``known``: whether the VTN had
    that optID from this VEN)."""

    ven_id: str
    opt_id: str
    opt_type: str
    reason: str
    event_id: str | None
    modification_number: int | None
    market_context: str | None
    vavailability: tuple[tuple[datetime, timedelta], ...]
    at: datetime
    cancelled: bool = False
    known: bool = True


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One request a VEN made, and what the VTN answered (the conformance suite's evidence)."""

    at: float  # time.monotonic()
    service: str  # the last path segment: EiRegisterParty, OadrPoll, EiEvent, EiReport, EiOpt
    request: str  # the message type (oadrPoll, oadrCreatedEvent, ...), "" if unreadable
    response: str  # the answer's message type, "" for an empty or non-XML answer
    status: int  # HTTP status of the answer
    tls: bool  # over TLS with a client certificate
    signed: bool  # the request carried an XML signature

    def row(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "request": self.request,
            "response": self.response,
            "status": self.status,
            "tls": self.tls,
            "signed": self.signed,
        }


_TYPE = re.compile(rb"<(?:[\w-]+:)?(oadr\w+)")


def message_type(body: bytes) -> str:
    """The OpenADR message type of a payload: the first element that is not the envelope."""
    for m in _TYPE.finditer(body[:16384]):
        name = m.group(1).decode()
        if name not in ("oadrPayload", "oadrSignedObject"):
            return name
    return ""


@dataclass(frozen=True, slots=True)
class ReportValue:
    ven_id: str
    resource_id: str
    measurement: str
    at: datetime
    value: float


Interval = tuple[datetime, timedelta, float]
OnCreated = Callable[[CreatedEvent], Awaitable[None] | None]


@dataclass
class _Ven:
    ven_id: str
    registration_id: str
    ven_name: str
    fingerprint: str | None
    dirty: bool = True
    pending: deque[tuple[str, dict[str, Any]]] = field(default_factory=deque)


def kw() -> objects.Measurement:
    """powerReal in kW (the itemBase LOAD_DISPATCH events carry)."""
    return objects.Measurement(
        name="powerReal",
        description="RealPower",
        unit="W",
        scale="k",
        power_attributes=objects.PowerAttributes(hertz=60, voltage=240, ac=True),
    )


class ScriptedVtn:
    def __init__(
        self,
        *,
        vtn_id: str = "VTN_SIM",
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval_s: float = 1.0,
        tls: VtnTls | None = None,
        pre_allocated: Mapping[str, str | None] | None = None,
        on_created: OnCreated | None = None,
    ) -> None:
        self.vtn_id = vtn_id
        self.host = host
        self.tls = tls
        self.pre_allocated = dict(pre_allocated or {})
        self.on_created = on_created
        self.registrations: list[Registration] = []
        self.created: list[CreatedEvent] = []
        self.reports: list[ReportValue] = []
        # (ven_id, resource_id, measurement, unit, scale) of every report description offered
        self.report_offers: list[tuple[str, str, str, str | None, str | None]] = []
        self.polls = 0  # oadrPoll requests answered by the script
        self.raw_served = 0  # poll answers replaced by send_raw
        self.cancellations: list[tuple[str, int]] = []  # (ven_id, code) of oadrCanceledParty...
        self.opts: list[OptRecord] = []  # every oadrCreateOpt and oadrCancelOpt, in order
        self.open_opts: dict[tuple[str, str], OptRecord] = {}  # (ven_id, opt_id) -> in force
        self.wire: list[WireMessage] = []  # every request, in order
        self._vens: dict[str, _Ven] = {}  # registered now
        self._allocated: dict[str, str | None] = {}  # every venID handed out -> fingerprint
        self._events: dict[str, tuple[str, objects.Event]] = {}  # event_id -> (ven_id, event)
        self._raw: deque[bytes] = deque()
        self._tamper = 0
        self._swap_case = 0
        self._swapped = False  # the poll service answers under the swapped vtnID right now
        self._created_messages = 0
        self._ids = itertools.count(1)
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs = {
                "cert": tls.cert,
                "key": tls.key,
                "http_cert": tls.cert,
                "http_key": tls.key,
                "http_ca_file": tls.ca_file,
            }
        # openleadr prints banners to stdout (fingerprint, URL); keep test output readable. It
        # also stores itself under a plain string key (aiohttp's NotAppKeyWarning).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", web.NotAppKeyWarning)
            self.server = OpenADRServer(
                vtn_id=vtn_id,
                http_host=host,
                http_port=port,
                requested_poll_freq=timedelta(seconds=poll_interval_s),
                ven_lookup=self._ven_lookup,
                show_fingerprint=False,
                **kwargs,
            )
        self.server.add_handler("on_create_party_registration", self._on_register)
        self.server.add_handler("on_poll", self._on_poll)
        self.server.add_handler("on_request_event", self._on_request_event)
        self.server.add_handler("on_register_report", self._on_register_report)
        # The stock on_created_event hook drops the response code and modificationNumber.
        self.server.services["event_service"].handlers["oadrCreatedEvent"] = self._on_created
        self.server.services["registration_service"].handlers["oadrCanceledPartyRegistration"] = (
            self._on_canceled
        )
        # openleadr 0.5.36's VTN mounts no EiOpt endpoint (its OptService is a stub that
        # answers nothing): mount one whose handlers record and acknowledge.
        opt_service = OptService(vtn_id)
        opt_service.handlers["oadrCreateOpt"] = self._on_create_opt
        opt_service.handlers["oadrCancelOpt"] = self._on_cancel_opt
        self.server.services["opt_service"] = opt_service
        self.server.app.add_routes([web.post(f"{PATH}/EiOpt", opt_service.handler)])
        self.server.app.middlewares.append(self._middleware)
        self.port = port

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            await self.server.run()
        addresses = self.server.app_runner.addresses
        self.port = int(addresses[0][1])

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> ScriptedVtn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None and self.host == "127.0.0.1" else self.host
        return f"{scheme}://{host}:{self.port}{PATH}"

    # ---------------------------------------------------------------- script

    def add_event(
        self,
        ven_id: str,
        signal_name: str,
        signal_type: str,
        intervals: Sequence[Interval],
        *,
        event_id: str | None = None,
        market_context: str = "http://sim.example/dr",
        measurement: objects.Measurement | None = None,
        priority: int = 0,
        response_required: str = "always",
    ) -> str:
        event_id = event_id or f"event-{next(self._ids)}"
        event = objects.Event(
            event_descriptor=objects.EventDescriptor(
                event_id=event_id,
                modification_number=0,
                market_context=market_context,
                event_status="far",
                priority=priority,
                created_date_time=datetime.now(UTC),
            ),
            event_signals=[
                objects.EventSignal(
                    intervals=_intervals(intervals),
                    signal_name=signal_name,
                    signal_type=signal_type,
                    signal_id=f"{event_id}-signal",
                    measurement=measurement,
                )
            ],
            targets=[objects.Target(ven_id=ven_id)],
            response_required=response_required,
        )
        self._events[event_id] = (ven_id, event)
        self._touch(ven_id)
        return event_id

    def modify_event(self, event_id: str, intervals: Sequence[Interval]) -> int:
        """New intervals for an event; returns the new modificationNumber."""
        ven_id, event = self._events[event_id]
        signal = event.event_signals[0]
        signal.intervals = _intervals(intervals)
        event.active_period = utils.get_active_period_from_intervals(
            signal.intervals, as_dict=False
        )
        return self._bump(ven_id, event)

    def cancel_event(self, event_id: str) -> int:
        ven_id, event = self._events[event_id]
        event.event_descriptor.event_status = enums.EVENT_STATUS.CANCELLED
        return self._bump(ven_id, event)

    def drop_event(self, event_id: str) -> None:
        """Implied cancellation: the event is simply no longer in the list."""
        ven_id, _ = self._events.pop(event_id)
        self._touch(ven_id)

    def request_reregistration(self, ven_id: str) -> None:
        self._vens[ven_id].pending.append(("oadrRequestReregistration", {"ven_id": ven_id}))

    def queue_distribution(self, ven_id: str) -> None:
        """Queue an oadrDistributeEvent of the list as it is now, as a message of its own
        (a VTN with several messages waiting for one VEN)."""
        snapshot = copy.deepcopy(self._list(ven_id))
        self._vens[ven_id].pending.append(("oadrDistributeEvent", {"events": snapshot}))

    def cancel_registration(self, ven_id: str, registration_id: str | None = None) -> None:
        """oadrCancelPartyRegistration at the VEN's next poll; the VEN is forgotten once it
        answers (oadrCanceledPartyRegistration) with 200. ``registration_id``: another one
        than the VEN's (N1_0070: the VEN must answer 452 and stay registered)."""
        ven = self._vens[ven_id]
        ven.pending.append(
            (
                "oadrCancelPartyRegistration",
                {"ven_id": ven_id, "registration_id": registration_id or ven.registration_id},
            )
        )

    def send_raw(self, body: bytes) -> None:
        """Answer the next poll (of any VEN) with these bytes."""
        self._raw.append(body)

    def swap_vtn_id_case_next(self) -> None:
        """Send the next oadrDistributeEvent under this VTN's ID with its case swapped
        (QualityLogic E1_1080). The message is built (and signed) under that vtnID."""
        self._swap_case += 1

    def tamper_next(self) -> None:
        """Alter one byte of the next signed poll answer: its signature no longer verifies."""
        self._tamper += 1

    def touch(self, ven_id: str) -> None:
        """Re-send the whole list at the next poll (a re-distribution with nothing new)."""
        self._touch(ven_id)

    def responses(self, event_id: str) -> list[CreatedEvent]:
        return [c for c in self.created if c.event_id == event_id]

    def ven_id(self, ven_name: str) -> str | None:
        for r in reversed(self.registrations):
            if r.ven_name == ven_name:
                return r.ven_id
        return None

    # ---------------------------------------------------------------- internals

    def _touch(self, ven_id: str) -> None:
        if ven_id in self._vens:
            self._vens[ven_id].dirty = True

    def _bump(self, ven_id: str, event: objects.Event) -> int:
        d = event.event_descriptor
        d.modification_number += 1
        d.modification_date_time = datetime.now(UTC)
        self._touch(ven_id)
        number: int = d.modification_number
        return number

    def _list(self, ven_id: str) -> list[objects.Event]:
        out = []
        for vid, event in self._events.values():
            if vid != ven_id:
                continue
            d = event.event_descriptor
            if d.event_status != enums.EVENT_STATUS.CANCELLED:
                d.event_status = utils.determine_event_status(event.active_period)
            out.append(event)
        return out

    def _ven_lookup(self, ven_id: str) -> dict[str, Any] | None:  # name required by openleadr
        ven = self._vens.get(ven_id)
        if ven is not None:
            return {
                "ven_id": ven.ven_id,
                "ven_name": ven.ven_name,
                "registration_id": ven.registration_id,
                "fingerprint": ven.fingerprint,
            }
        if ven_id in self.pre_allocated:  # before its registration
            return {"ven_id": ven_id, "fingerprint": self.pre_allocated[ven_id]}
        return None

    async def _on_register(self, info: dict[str, Any]) -> tuple[str, str] | bool:
        name = str(info.get("ven_name"))
        asked = info.get("ven_id")
        fingerprint = info.get("fingerprint")
        if asked:
            ven_id = str(asked)
            if ven_id in self.pre_allocated:
                fingerprint = self.pre_allocated[ven_id] or fingerprint
            elif ven_id in self._allocated:  # ours before: a re-registration
                fingerprint = self._allocated[ven_id] or fingerprint
            else:
                log.warning("VEN %s asked for venID %s, which we never allocated", name, ven_id)
                return False
        else:
            ven_id = f"VEN_{len(self._allocated) + 1}"
        self._allocated[ven_id] = fingerprint
        registration_id = f"REG_{ven_id}_{len(self.registrations) + 1}"
        self._vens[ven_id] = _Ven(ven_id, registration_id, name, fingerprint)
        self.registrations.append(
            Registration(name, ven_id, registration_id, fingerprint, datetime.now(UTC))
        )
        return ven_id, registration_id

    async def _on_canceled(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ven_id = str(payload.get("ven_id"))
        code = int((payload.get("response") or {}).get("response_code", 200))
        self.cancellations.append((ven_id, code))
        if code == 200:
            self._vens.pop(ven_id, None)
        return "oadrResponse", {}

    async def _on_poll(self, ven_id: str) -> tuple[str, dict[str, Any]] | None:
        self.polls += 1
        ven = self._vens.get(ven_id)
        if ven is None:
            return None
        if ven.pending:
            return ven.pending.popleft()
        if ven.dirty:
            ven.dirty = False
            if self._swap_case:
                # openleadr writes its service's vtn_id into the answer; the middleware puts
                # ours back once this answer is built and signed.
                self._swap_case -= 1
                self._swapped = True
                self.server.services["poll_service"].vtn_id = self.vtn_id.swapcase()
            return "oadrDistributeEvent", {"events": self._list(ven_id)}
        return None

    async def _on_request_event(self, ven_id: str) -> list[objects.Event]:
        ven = self._vens.get(ven_id)
        if ven is not None:
            ven.dirty = False
        return self._list(ven_id)

    async def _on_created(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ven_id = str(payload.get("ven_id"))
        self._created_messages += 1
        message_code = int((payload.get("response") or {}).get("response_code", 200))
        for r in payload.get("event_responses", []):
            record = CreatedEvent(
                ven_id,
                str(r.get("event_id")),
                int(r.get("modification_number", 0)),
                str(r.get("opt_type")),
                int(r.get("response_code", 200)),
                datetime.now(UTC),
                self._created_messages,
                message_code,
            )
            self.created.append(record)
            entry = self._events.get(record.event_id)
            if entry is not None and _confirms_cancellation(entry[1], record):
                del self._events[record.event_id]  # the VEN confirmed the cancellation
            if self.on_created is not None:
                result = self.on_created(record)
                if asyncio.iscoroutine(result):
                    await result
        return "oadrResponse", {}

    async def _on_create_opt(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ven_id = str(payload.get("ven_id"))
        qualified = payload.get("qualified_event_id") or {}
        event_id = payload.get("event_id") or qualified.get("event_id")
        mod = payload.get("modification_number", qualified.get("modification_number"))
        # openleadr parses <xcal:available> to {"components": {"available": one or a list}}
        components = (payload.get("vavailability") or {}).get("components") or {}
        available = components.get("available", []) if isinstance(components, dict) else []
        if isinstance(available, dict):
            available = [available]
        periods = tuple(
            (a["dtstart"], a["duration"])
            for a in available
            if isinstance(a, dict)
            and isinstance(a.get("dtstart"), datetime)
            and isinstance(a.get("duration"), timedelta)
        )
        record = OptRecord(
            ven_id,
            str(payload.get("opt_id")),
            str(payload.get("opt_type")),
            str(payload.get("opt_reason")),
            None if event_id is None else str(event_id),
            None if mod is None else int(mod),
            payload.get("market_context"),
            periods,
            datetime.now(UTC),
        )
        self.opts.append(record)
        self.open_opts[(ven_id, record.opt_id)] = record
        return "oadrCreatedOpt", {"opt_id": record.opt_id}

    async def _on_cancel_opt(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ven_id = str(payload.get("ven_id"))
        opt_id = str(payload.get("opt_id"))
        before = self.open_opts.pop((ven_id, opt_id), None)
        if before is None:
            log.warning("VEN %s cancelled opt %s, which it never created here", ven_id, opt_id)
            before = OptRecord(ven_id, opt_id, "", "", None, None, None, (), datetime.now(UTC))
        # openleadr answers 200 whatever the handler says; ``known`` keeps the truth.
        self.opts.append(
            replace(before, at=datetime.now(UTC), cancelled=True, known=before.opt_type != "")
        )
        return "oadrCanceledOpt", {"opt_id": opt_id}

    async def _on_register_report(
        self,
        ven_id: str,
        resource_id: str,
        measurement: str,
        unit: str | None,
        scale: str | None,
        min_sampling_interval: timedelta,
        max_sampling_interval: timedelta,  # noqa: ARG002 - openleadr passes every name
    ) -> tuple[Callable[[list[tuple[datetime, float]]], None], timedelta]:
        self.report_offers.append((ven_id, resource_id, measurement, unit, scale))
        return partial(self._on_report, ven_id, resource_id, measurement), min_sampling_interval

    def _on_report(
        self, ven_id: str, resource_id: str, measurement: str, values: list[tuple[datetime, float]]
    ) -> None:
        for at, value in values:
            self.reports.append(ReportValue(ven_id, resource_id, measurement, at, float(value)))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()  # aiohttp caches it: the handler reads it again
        response = await self._answer(request, handler)
        if self._swapped:
            self._swapped = False
            self.server.services["poll_service"].vtn_id = self.vtn_id
        answer = response.body if isinstance(response, web.Response) else None
        self.wire.append(
            WireMessage(
                at=time.monotonic(),
                service=request.path.rsplit("/", 1)[-1],
                request=message_type(body),
                response=message_type(answer) if isinstance(answer, bytes) else "",
                status=response.status,
                tls=request.secure
                and request.transport is not None
                and request.transport.get_extra_info("peercert") is not None,
                signed=b"SignatureValue" in body,
            )
        )
        return response

    async def _answer(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/OadrPoll") and self._raw:
            self.raw_served += 1
            return web.Response(body=self._raw.popleft(), content_type="application/xml")
        response = await handler(request)
        if (
            self._tamper
            and request.path.endswith("/OadrPoll")
            and isinstance(response, web.Response)
            and response.text is not None
            and "SignatureValue" in response.text
            and self.vtn_id in response.text
        ):
            self._tamper -= 1
            response.text = response.text.replace(
                f"<ei:vtnID>{self.vtn_id}</ei:vtnID>", f"<ei:vtnID>{self.vtn_id}X</ei:vtnID>"
            )
        return response


def _intervals(intervals: Sequence[Interval]) -> list[objects.Interval]:
    return [
        objects.Interval(dtstart=start, duration=duration, signal_payload=payload, uid=i)
        for i, (start, duration, payload) in enumerate(intervals)
    ]


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    poll_interval_s: float = 1.0,
    vtn_id: str = "VTN_SIM",
    tls: VtnTls | None = None,
    pre_allocated: Mapping[str, str | None] | None = None,
    stop: asyncio.Event | None = None,
    demo: bool = True,
    on_ready: Callable[[ScriptedVtn], None] | None = None,
) -> None:
    """Run the scripted VTN until ``stop`` is set (forever without one); ``on_ready`` gets it
    once it listens (its ``url``, its records).

    ``demo``: once a VEN registers, offer it a short script: export limit 2 kW in 10 s for
    60 s, then an island request in 90 s for 60 s (LOAD_CONTROL capacity 0).
    """
    stop = stop or asyncio.Event()
    vtn = ScriptedVtn(
        vtn_id=vtn_id,
        host=host,
        port=port,
        poll_interval_s=poll_interval_s,
        tls=tls,
        pre_allocated=pre_allocated,
    )
    async with vtn:
        log.info("OpenADR 2.0b VTN %s listening on %s", vtn_id, vtn.url)
        if on_ready is not None:
            on_ready(vtn)
        scripted: set[str] = set()
        while not stop.is_set():
            if demo:
                for r in vtn.registrations:
                    if r.ven_id not in scripted:
                        scripted.add(r.ven_id)
                        _demo_script(vtn, r.ven_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


def _demo_script(vtn: ScriptedVtn, ven_id: str) -> None:
    now = datetime.now(UTC)
    minute = timedelta(seconds=60)
    vtn.add_event(
        ven_id,
        "LOAD_DISPATCH",
        "setpoint",
        [(now + timedelta(seconds=10), minute, -2.0)],
        measurement=kw(),
    )
    vtn.add_event(
        ven_id, "LOAD_CONTROL", "x-loadControlCapacity", [(now + timedelta(seconds=90), minute, 0)]
    )
    log.info("demo events queued for %s", ven_id)


def _confirms_cancellation(event: objects.Event, record: CreatedEvent) -> bool:
    """An answer to the cancelled modification itself, not a late one to an earlier version (a
    VEN's answer to modification 0 can arrive after the VTN cancelled: dropping the event then
    turned the cancellation into an implied one, which the VEN never answers). openleadr's own
    VTN matches the modification number the same way (``EventService.created_event``)."""
    d = event.event_descriptor
    current: int = d.modification_number
    return bool(d.event_status == "cancelled") and record.modification_number == current
