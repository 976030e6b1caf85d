"""The utility simulator's request handlers, one per route of :mod:`gateway.sim.utility.paths`.

Access: the EndDevice routes answer 403 unless the client's certificate may see that EndDevice
(``UtilityState.visible_to``); the program routes, unless one of its EndDevices is assigned the
program. A PUT of a DER resource is decoded with the codec and stored (204), as is a PUT of the
CSIP-AUS ConnectionPoint (201 the first time, 204 after); a body that does not decode, or
decodes to the wrong resource, answers 400 with the reason as text. Subscriptions and
Notifications: :mod:`.notifier`; the metering mirror (``/mup``): :mod:`.mirrors`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from aiohttp import web

from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import DERAvailability, DERCapability, DERSettings, DERStatus
from gateway.north.sep2.pubsub import ConnectionPoint, LogEvent
from gateway.north.sep2.resources import EndDevice
from gateway.north.sep2.xml import Sep2ParseError
from gateway.sim.utility import mirrors, nmi, paths, subscribable, views, wire
from gateway.sim.utility.notifier import edev_number, read_subscription
from gateway.sim.utility.recorder import Recorder
from gateway.sim.utility.records import EndDeviceRecord, Program, SubscriptionRecord
from gateway.sim.utility.responses import read_response, response_problem
from gateway.sim.utility.state import UtilityState

SEP_XML: Final = "application/sep+xml"
DER_TYPES: Final[dict[str, type]] = {
    "dercap": DERCapability,
    "derg": DERSettings,
    "ders": DERStatus,
    "dera": DERAvailability,
}
_DER_FIELDS: Final = {
    "dercap": "capability",
    "derg": "settings",
    "ders": "status",
    "dera": "availability",
}


def xml(resource: codec.AnyResource, status: int = 200) -> web.Response:
    return web.Response(body=codec.encode(resource), status=status, content_type=SEP_XML)


def created(location: str) -> web.Response:
    return web.Response(status=201, headers={"Location": location})


def bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=reason)


def paging(request: web.Request) -> tuple[int, int]:
    """``?s=<start>&l=<limit>`` (defaults 0 and 1, as 2030.5 says); 400 if not naturals."""
    try:
        start = int(request.query.get("s", "0"))
        limit = int(request.query.get("l", str(views.DEFAULT_LIMIT)))
    except ValueError:
        raise bad("s and l are natural numbers") from None
    if start < 0 or limit < 0:
        raise bad("s and l are natural numbers")
    return start, limit


def lfdi_of(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    from gateway.north.sep2 import tls

    return tls.peer_lfdi(ssl_object)


class Handlers:
    def __init__(self, state: UtilityState, recorder: Recorder) -> None:
        self.state = state
        self.recorder = recorder

    def register(self, router: web.UrlDispatcher) -> None:
        e, f, d = "/edev/{e:\\d+}", "/fsa/{f:\\d+}", "/der/{d:\\d+}"
        get, post = router.add_get, router.add_post
        get(paths.DCAP, self.dcap, allow_head=False)
        get("/.well-known/csipaus", self.well_known, allow_head=False)
        get(paths.TM, self.time, allow_head=False)
        get(paths.EDEV, self.edev_list, allow_head=False)
        post(paths.EDEV, self.register_edev)
        get(e, self.edev, allow_head=False)
        get(e + "/reg", self.reg, allow_head=False)
        get(e + "/fsa", self.fsa_list, allow_head=False)
        get(e + f, self.fsa, allow_head=False)
        get(e + f + "/derp", self.derp_list, allow_head=False)
        get(e + "/der", self.der_list, allow_head=False)
        get(e + d, self.der, allow_head=False)
        part = e + d + "/{part:dercap|derg|ders|dera}"
        get(part, self.der_part, allow_head=False)
        router.add_put(part, self.put_der_part)
        get(e + "/sub", self.subscription_list, allow_head=False)
        post(e + "/sub", self.subscribe)
        get(e + "/sub/{s:\\d+}", self.subscription, allow_head=False)
        router.add_delete(e + "/sub/{s:\\d+}", self.unsubscribe)
        get(e + "/lel", self.log_event_list, allow_head=False)
        post(e + "/lel", self.post_log_event)
        get(e + "/cp", self.connection_point, allow_head=False)
        router.add_put(e + "/cp", self.put_connection_point)
        get("/derp/{p}", self.derp, allow_head=False)
        get("/derp/{p}/derc", self.derc_list, allow_head=False)
        get("/derp/{p}/derc/{c:\\d+}", self.derc, allow_head=False)
        get("/derp/{p}/dderc", self.dderc, allow_head=False)
        post("/rsps/{x:\\d+}/rsp", self.response)
        get(paths.MUP, self.mup_list, allow_head=False)
        post(paths.MUP, self.post_mup)
        get("/mup/{m:\\d+}", self.mup, allow_head=False)
        post("/mup/{m:\\d+}", self.post_readings)

    # ------------------------------------------------------------------ access
    def _edev(self, request: web.Request) -> EndDeviceRecord:
        number = int(request.match_info["e"])
        edev = next((x for x in self.state.end_devices if x.number == number), None)
        if edev is None:
            raise web.HTTPNotFound(text=f"no EndDevice {number}")
        if edev not in self.state.visible_to(lfdi_of(request)):
            raise web.HTTPForbidden(text="this certificate may not see that EndDevice")
        return edev

    def _program(self, request: web.Request) -> Program:
        p = self.state.program_at(request.match_info["p"])
        if p is None:
            raise web.HTTPNotFound(text="no such DERProgram (moved? rediscover from /dcap)")
        visible = self.state.visible_to(lfdi_of(request))
        if not any(p.number in fsa.programs for e in visible for fsa in e.fsas):
            raise web.HTTPForbidden(text="this DERProgram is not assigned to your EndDevice")
        return p

    # ------------------------------------------------------------------ discovery
    async def dcap(self, _request: web.Request) -> web.Response:
        return xml(views.dcap(self.state))

    async def well_known(self, _request: web.Request) -> web.Response:
        if self.state.well_known is None:
            raise web.HTTPNotFound(text="no /.well-known/csipaus (a CSIP-AUS 1.2 server)")
        doc = {
            "supportedSchemaVersions": {k: {"dcap": v} for k, v in self.state.well_known.items()}
        }
        return web.json_response(doc)

    async def time(self, _request: web.Request) -> web.Response:
        return xml(views.time(self.state))

    async def edev_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        visible = self.state.visible_to(lfdi_of(request))
        return xml(views.end_device_list(self.state, visible, start, limit))

    async def register_edev(self, request: web.Request) -> web.Response:
        """In-band registration: 201 + Location; 409 if that LFDI is registered already."""
        client = lfdi_of(request)
        body = await request.read()
        try:
            device = codec.decode(body)
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        if not isinstance(device, EndDevice):
            raise bad(f"expected an EndDevice, got a {type(device).__name__}")
        lfdi = (device.lFDI or client or "").upper()
        if self.state.find_end_device(lfdi) is not None:
            raise web.HTTPConflict(text=f"EndDevice {lfdi} is already registered")
        if not self.state.allow_registration or client is None:
            raise web.HTTPForbidden(text="in-band registration is disabled")
        is_aggregator = client in self.state.aggregators
        if lfdi != client and not is_aggregator:
            raise web.HTTPForbidden(text="a device certificate registers only its own LFDI")
        try:
            edev = self.state.add_end_device(
                lfdi,
                pin=self.state.in_band_pin(),
                sfdi=device.sFDI,
                aggregator=client if is_aggregator and lfdi != client else None,
                device_category=device.deviceCategory,
            )
        except ValueError as exc:
            raise bad(str(exc)) from exc
        return created(paths.edev(edev.number))

    async def edev(self, request: web.Request) -> web.Response:
        return xml(views.end_device(self._edev(request)))

    async def reg(self, request: web.Request) -> web.Response:
        reg = views.registration(self.state, self._edev(request))
        if reg is None:
            raise web.HTTPNotFound(text="this EndDevice has no Registration")
        return xml(reg)

    async def fsa_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return xml(views.fsa_list(self.state, self._edev(request), start, limit))

    def _fsa(self, request: web.Request) -> tuple[EndDeviceRecord, Any]:
        edev = self._edev(request)
        fsa = edev.fsa(int(request.match_info["f"]))
        if fsa is None:
            raise web.HTTPNotFound(text="no such FunctionSetAssignments")
        return edev, fsa

    async def fsa(self, request: web.Request) -> web.Response:
        edev, fsa = self._fsa(request)
        return xml(views.fsa(self.state, edev, fsa))

    async def derp_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        edev, fsa = self._fsa(request)
        return xml(views.derp_list(self.state, edev, fsa, start, limit))

    async def derp(self, request: web.Request) -> web.Response:
        return xml(views.program(self._program(request)))

    async def derc_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return xml(views.control_list(self.state, self._program(request), start, limit))

    async def derc(self, request: web.Request) -> web.Response:
        p = self._program(request)
        number = int(request.match_info["c"])
        c = next((c for c in p.controls if c.number == number), None)
        if c is None:
            raise web.HTTPNotFound(text="no such DERControl")
        return xml(views.control(self.state, p, c))

    async def dderc(self, request: web.Request) -> web.Response:
        default = views.default(self._program(request))
        if default is None:
            raise web.HTTPNotFound(text="this DERProgram has no DefaultDERControl")
        return xml(default)

    # ------------------------------------------------------------------ DER
    async def der_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return xml(views.der_list(self.state, self._edev(request), start, limit))

    def _der(self, request: web.Request) -> tuple[EndDeviceRecord, Any]:
        edev = self._edev(request)
        der = edev.der(int(request.match_info["d"]))
        if der is None:
            raise web.HTTPNotFound(text="no such DER")
        return edev, der

    async def der(self, request: web.Request) -> web.Response:
        edev, der = self._der(request)
        return xml(views.der(edev, der.number))

    async def der_part(self, request: web.Request) -> web.Response:
        edev, der = self._der(request)
        part = request.match_info["part"]
        resource = der.get(part)
        if resource is None:
            raise web.HTTPNotFound(text="not reported yet")
        # The client PUTs it without an href; what the server serves names where it is. The
        # rest is the client's own body, so its values read back as written (a HexBinary32
        # "03" stays "03": cactus S-ALL-10 compares the text).
        href = paths.der_part(edev.number, der.number, part)
        raw = der.bodies.get(part)
        if raw is not None:
            return web.Response(body=wire.with_href(raw, href), content_type=SEP_XML)
        return xml(replace(resource, href=href))

    async def put_der_part(self, request: web.Request) -> web.Response:
        _, der = self._der(request)
        part = request.match_info["part"]
        body = await request.read()
        try:
            resource = codec.decode(body)
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        expected = DER_TYPES[part]
        if not isinstance(resource, expected):
            raise bad(f"expected a {expected.__name__}, got a {type(resource).__name__}")
        setattr(der, _DER_FIELDS[part], resource)
        der.bodies[part] = body
        der.updated[part] = self.state.now()
        return web.Response(status=204)

    # ------------------------------------------------------------------ responses, pub/sub
    async def response(self, request: web.Request) -> web.Response:
        number = int(request.match_info["x"])
        if not any(p.number == number for p in self.state.programs):
            raise web.HTTPNotFound(text="no such ResponseSet")
        try:
            _, resp = read_response(await request.read())  # Response or any subtype of it
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        if (problem := response_problem(resp, self.state.visible_to(lfdi_of(request)))) is not None:
            raise bad(problem)
        count = len(self.recorder.requests("POST", request.path, status=201))
        return created(f"{request.path}/{count + 1}")

    def _subscriber(self, request: web.Request) -> EndDeviceRecord:
        """The EndDevice of a SubscriptionList route; 404 where none is linked (a site whose
        aggregator subscribes through its own EndDevice)."""
        edev = self._edev(request)
        if not edev.subscription_list and not edev.virtual:
            raise web.HTTPNotFound(text="no SubscriptionList here: see the EndDeviceList")
        return edev

    async def subscription_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return xml(views.subscription_list(self._subscriber(request), start, limit))

    async def subscribe(self, request: web.Request) -> web.Response:
        """201 + Location; 400 if the body is no usable Subscription, names an EndDevice
        this client may not see, or a resource not marked ``subscribable``."""
        edev = self._subscriber(request)
        body = await request.read()
        try:
            wanted = read_subscription(body)
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        target = edev_number(wanted.subscribedResource)
        visible = self.state.visible_to(lfdi_of(request))
        if target is not None and all(e.number != target for e in visible):
            raise bad(f"{wanted.subscribedResource}: not a resource this client may see")
        refused = subscribable.refusal(self.state, wanted, edev)
        if refused is not None:
            raise bad(refused)
        number = max((s.number for s in edev.subscriptions), default=0) + 1
        sub = SubscriptionRecord(number, wanted, body, self.state.now())
        edev.subscriptions.append(sub)
        return created(paths.sub(edev.number, sub.number))

    async def subscription(self, request: web.Request) -> web.Response:
        edev = self._edev(request)
        number = int(request.match_info["s"])
        sub = next((s for s in edev.subscriptions if s.number == number), None)
        if sub is None:
            raise web.HTTPNotFound(text="no such Subscription")
        return xml(views.subscription(edev, sub))

    async def unsubscribe(self, request: web.Request) -> web.Response:
        edev = self._edev(request)
        number = int(request.match_info["s"])
        before = len(edev.subscriptions)
        edev.subscriptions = [s for s in edev.subscriptions if s.number != number]
        if len(edev.subscriptions) == before:
            raise web.HTTPNotFound(text="no such Subscription")
        return web.Response(status=204)

    # ------------------------------------------------------------------ log events (alarms)
    async def log_event_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return xml(views.log_event_list(self._edev(request), start, limit))

    async def post_log_event(self, request: web.Request) -> web.Response:
        edev = self._edev(request)
        try:
            event = codec.decode(await request.read())
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        if not isinstance(event, LogEvent):
            raise bad(f"expected a LogEvent, got a {type(event).__name__}")
        edev.log_events.append(event)
        return created(f"{paths.lel(edev.number)}/{len(edev.log_events)}")

    # ------------------------------------------------------------------ connection point
    async def connection_point(self, request: web.Request) -> web.Response:
        edev = self._edev(request)
        if edev.connection_point is None:
            raise web.HTTPNotFound(text="no ConnectionPoint yet: PUT one")
        return xml(replace(edev.connection_point, href=paths.cp(edev.number)))

    async def put_connection_point(self, request: web.Request) -> web.Response:
        """CSIP-AUS: 201 (+ Location) the first time, 204 when it replaces one; 400 with the
        reason for a connectionPointId that is no NMI (:mod:`.nmi`)."""
        edev = self._edev(request)
        try:
            resource = codec.decode(await request.read())
        except Sep2ParseError as exc:
            raise bad(str(exc)) from exc
        if not isinstance(resource, ConnectionPoint):
            raise bad(f"expected a csipaus:ConnectionPoint, got a {type(resource).__name__}")
        wrong = nmi.problem(resource.connectionPointId)
        if wrong is not None:
            raise bad(wrong)
        first = edev.connection_point is None
        edev.connection_point = replace(resource, href=None)
        edev.connection_point_updated = self.state.now()
        if first:
            return created(paths.cp(edev.number))
        # Location on the 204 too: HTTP allows it, and cactus S-ALL-53 requires it.
        return web.Response(status=204, headers={"Location": paths.cp(edev.number)})

    # ------------------------------------------------------------------ mirror usage points
    async def mup_list(self, request: web.Request) -> web.Response:
        start, limit = paging(request)
        return mirrors.get_mup_list(self.state, lfdi_of(request), start, limit)

    async def post_mup(self, request: web.Request) -> web.Response:
        return mirrors.post_mup(self.state, await request.read(), lfdi_of(request))

    async def mup(self, request: web.Request) -> web.Response:
        number = int(request.match_info["m"])
        return mirrors.get_mup(self.state, number, lfdi_of(request))

    async def post_readings(self, request: web.Request) -> web.Response:
        number = int(request.match_info["m"])
        return mirrors.post_readings(self.state, number, await request.read(), lfdi_of(request))
