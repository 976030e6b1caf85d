"""The utility simulator's runtime admin interface: JSON over plain HTTP, on loopback only.

What a test harness (cactus-client's admin plugin, ``conformance/cactus_admin``) changes on a
running ``gateway simulate utility --admin-port N``, each request one
:class:`~gateway.sim.utility.state.UtilityState` mutator (the same ones the csip-aus conformance
interpreter plays), so clients hear of it as of any scripted change (Notifications, new
``version``). Reference: docs/utility-admin.md. Every answer is JSON; an error is
``{"error": "one line"}`` with 400 (bad input), 404 (no such thing) or 409 (already there).

===========================================  =================================================
``GET  /admin/state``                        a summary: EndDevices, aggregators, programs
``POST /admin/reset``                        forget every client, program, mirror and rate
``PUT  /admin/settings``                     ``{empty_defaults?, hide_ended_controls?}``
``POST /admin/end-devices``                  register ``{lfdi, sfdi?, pin?, aggregator?, fsa?}``
``DELETE /admin/end-devices/{lfdi}``         unregister it
``POST /admin/aggregators``                  ``{lfdi, end_device?}``: may see its sites
``DELETE /admin/aggregators/{lfdi}``         revoke that (its own ``/edev/0`` goes too)
``POST /admin/end-devices/{lfdi}/fsas``      a FunctionSetAssignments ``{description?}``
``POST /admin/programs``                     a DERProgram ``{primacy, lfdi?, fsa?, ...}``
                                             (no lfdi: every EndDevice's; no fsa: the first)
``PUT|DELETE /admin/programs/{key}/default`` its DefaultDERControl ``{modes..., setGradW?}``
``POST /admin/programs/{key}/controls``      a DERControl ``{duration, start|start_offset,..}``
``POST /admin/controls/{mrid}/cancel``       EventStatus cancelled ``{randomized?}``
``POST /admin/controls/{mrid}/supersede``    superseded, with its replacement
``POST /admin/controls/cancel-active``       ``{all?}``: the latest (or every) live control
``PUT  /admin/poll-rates``                   ``{"derp": 60, "dcap": null, ...}``
``PUT  /admin/post-rate``                    ``{seconds, lfdi?}`` (MirrorUsagePoint postRate)
``DELETE /admin/mups``                       every MirrorUsagePoint (``?lfdi=`` one device's)
===========================================  =================================================
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from gateway.core import errors
from gateway.north.sep2 import identity
from gateway.north.sep2.model import DefaultDERControl, DERControlBase
from gateway.sim.utility import modes, paths
from gateway.sim.utility.records import Control, EndDeviceRecord, Program
from gateway.sim.utility.state import POLL_RESOURCES, UtilityState

JSON: Final = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What a reset forgets; the server's own settings (PEN, clock, registration policy) stay, and
# mRID serials keep counting so no mRID is served twice in one run.
_RESET: Final = (
    "end_devices",
    "aggregators",
    "programs",
    "global_programs",
    "mups",
    "faults",
    "tampers",
    "poll_rates",
)


class AdminError(errors.ProtocolError):
    """An admin request the simulator refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def reset(state: UtilityState) -> None:
    """Back to an empty server: no EndDevices, aggregators, programs, mirrors, faults, rates."""
    for name in _RESET:
        getattr(state, name).clear()
    state.redirects.clear()
    state.mup_post_rate = None
    if not state.comms_up:
        state.restore()
    state.notify(paths.EDEV, kind="end-device")


def live(state: UtilityState, c: Control) -> bool:
    """Not cancelled or superseded, and not yet over (scheduled or active)."""
    return c.forced_status is None and c.start + c.duration > state.now()


class Admin:
    """The routes above, on one :class:`UtilityState`; ``app`` serves them.

    ``empty_defaults`` (``PUT /admin/settings``; off by default): the reference server's habit
    (envoy, which cactus S-ALL-35/37/39 are written against): every program made here has a
    DefaultDERControl from the start, with no modes (it constrains nothing, as none does), so
    a client can subscribe to it before the utility sets one; removing one empties it.
    ``hide_ended_controls``: ``UtilityState.hide_ended_controls``. A control POSTed with
    ``supersede_overlapping`` marks the live controls of its program it overlaps superseded.
    """

    def __init__(self, state: UtilityState) -> None:
        self.state = state
        self.empty_defaults = False
        self.app = web.Application(middlewares=[_errors])
        r = self.app.router
        r.add_get("/admin/state", self.summary)
        r.add_post("/admin/reset", self.reset)
        r.add_put("/admin/settings", self.settings)
        r.add_post("/admin/end-devices", self.add_end_device)
        r.add_delete("/admin/end-devices/{lfdi}", self.remove_end_device)
        r.add_post("/admin/aggregators", self.add_aggregator)
        r.add_delete("/admin/aggregators/{lfdi}", self.remove_aggregator)
        r.add_post("/admin/end-devices/{lfdi}/fsas", self.add_fsa)
        r.add_post("/admin/programs", self.add_program)
        r.add_put("/admin/programs/{key}/default", self.set_default)
        r.add_delete("/admin/programs/{key}/default", self.clear_default)
        r.add_post("/admin/programs/{key}/controls", self.add_control)
        r.add_post("/admin/controls/cancel-active", self.cancel_active)
        r.add_post("/admin/controls/{mrid}/cancel", self.cancel)
        r.add_post("/admin/controls/{mrid}/supersede", self.supersede)
        r.add_put("/admin/poll-rates", self.poll_rates)
        r.add_put("/admin/post-rate", self.post_rate)
        r.add_delete("/admin/mups", self.clear_mups)

    # ------------------------------------------------------------------ clients
    async def summary(self, _: web.Request) -> web.Response:
        s = self.state
        return _json(
            {
                "time": s.now(),
                "end_devices": [_edev(e) for e in s.end_devices],
                "aggregators": sorted(s.aggregators),
                "programs": [_program(p, s) for p in s.programs],
                "poll_rates": dict(s.poll_rates),
                "mups": len(s.mups),
            }
        )

    async def reset(self, _: web.Request) -> web.Response:
        reset(self.state)
        return _json({"reset": True})

    async def settings(self, request: web.Request) -> web.Response:
        p = await _body(request)
        for key, v in p.items():
            if key not in ("empty_defaults", "hide_ended_controls") or not isinstance(v, bool):
                raise AdminError(
                    400,
                    f"settings: {key!r} is no setting (empty_defaults, hide_ended_controls: bool)",
                )
        self.empty_defaults = bool(p.get("empty_defaults", self.empty_defaults))
        self.state.hide_ended_controls = bool(
            p.get("hide_ended_controls", self.state.hide_ended_controls)
        )
        return _json(
            {
                "empty_defaults": self.empty_defaults,
                "hide_ended_controls": self.state.hide_ended_controls,
            }
        )

    async def add_end_device(self, request: web.Request) -> web.Response:
        p = await _body(request)
        lfdi = _lfdi(_need(p, "lfdi"))
        if (edev := self.state.find_end_device(lfdi)) is not None:
            raise AdminError(409, f"EndDevice {lfdi} is already registered as /edev/{edev.number}")
        pin = p.get("pin", "default")
        try:
            edev = self.state.add_end_device(
                lfdi,
                pin=self.state.registration_pin if pin == "default" else _opt_int(p, "pin"),
                sfdi=_opt_int(p, "sfdi"),
                aggregator=None if p.get("aggregator") is None else _lfdi(p["aggregator"]),
                ders=int(p.get("ders", 1)),
                post_rate=_opt_int(p, "post_rate") or self.state.mup_post_rate,
            )
        except (TypeError, ValueError) as e:
            raise AdminError(400, str(e)) from None
        if p.get("fsa") is False:  # none yet: the harness adds them (a new one is notified)
            edev.fsas.clear()
        return _json(_edev(edev), status=201)

    async def remove_end_device(self, request: web.Request) -> web.Response:
        lfdi = _lfdi(request.match_info["lfdi"])
        edev = self._edev(lfdi)
        self.state.remove_end_device(edev.lfdi)
        return _json({"removed": edev.lfdi})

    async def add_aggregator(self, request: web.Request) -> web.Response:
        p = await _body(request)
        key = self.state.add_aggregator(
            _lfdi(_need(p, "lfdi")), end_device=bool(p.get("end_device", False))
        )
        own = self.state.aggregator_end_device(key)
        return _json({"lfdi": key, "end_device": None if own is None else paths.edev(0)}, 201)

    async def remove_aggregator(self, request: web.Request) -> web.Response:
        key = _lfdi(request.match_info["lfdi"])
        if key not in self.state.aggregators:
            raise AdminError(404, f"no aggregator {key}")
        self.state.aggregators.discard(key)
        own = self.state.aggregator_end_device(key)
        if own is not None:
            self.state.end_devices.remove(own)
        for edev in self.state.end_devices:
            if edev.aggregator == key:
                edev.aggregator = None
        self.state.notify(paths.EDEV, kind="end-device")
        return _json({"removed": key})

    async def add_fsa(self, request: web.Request) -> web.Response:
        p = await _body(request)
        edev = self._edev(_lfdi(request.match_info["lfdi"]))
        fsa = self.state.add_fsa(edev.lfdi, [], str(p.get("description", "")))
        return _json({"number": fsa.number, "href": paths.fsa(edev.number, fsa.number)}, 201)

    # ------------------------------------------------------------------ programs, controls
    async def add_program(self, request: web.Request) -> web.Response:
        p = await _body(request)
        primacy = _int(p, "primacy", 1)
        description = str(p.get("description", ""))
        lfdi = p.get("lfdi")
        try:
            if lfdi is None:  # every EndDevice's first FSA, now and when registered
                program = self.state.add_program(description, primacy=primacy)
            elif p.get("fsa") is None:  # its first FSA (made if it has none)
                edev = self._edev(_lfdi(lfdi))
                program = self.state.add_program(description, primacy=primacy,
                                                 end_devices=[edev.lfdi])  # fmt: skip
            else:
                edev = self._edev(_lfdi(lfdi))
                number = _int(p, "fsa", 1)
                fsa = next((f for f in edev.fsas if f.number == number), None)
                if fsa is None:
                    raise AdminError(404, f"EndDevice /edev/{edev.number} has no FSA {number}")
                program = self.state.add_program(description, primacy=primacy, end_devices=[])
                fsa.programs.append(program.number)
                self.state.notify(paths.derp_list(edev.number, number), kind="program")
        except ValueError as e:
            raise AdminError(400, str(e)) from None
        if self.empty_defaults:
            self.state.set_default(program, DERControlBase())
        return _json(_program(program, self.state), status=201)

    async def set_default(self, request: web.Request) -> web.Response:
        p = await _body(request)
        program = self._program(request.match_info["key"])
        base = _modes(p)
        self.state.set_default(
            program, DefaultDERControl("0", base, setGradW=_opt_int(p, "setGradW"))
        )
        return _json(_program(program, self.state))

    async def clear_default(self, request: web.Request) -> web.Response:
        program = self._program(request.match_info["key"])
        self.state.set_default(program, DERControlBase() if self.empty_defaults else None)
        return _json(_program(program, self.state))

    async def add_control(self, request: web.Request) -> web.Response:
        p = await _body(request)
        program = self._program(request.match_info["key"])
        now = self.state.now()
        start = _int(p, "start") if "start" in p else now + _int(p, "start_offset", 0)
        try:
            mrid = self.state.add_control(
                program,
                start=start,
                duration=_int(p, "duration"),
                base=_modes(p),
                randomize_start=_opt_int(p, "randomize_start"),
                randomize_duration=_opt_int(p, "randomize_duration"),
                description=None if p.get("description") is None else str(p["description"]),
            )
        except ValueError as e:
            raise AdminError(400, str(e)) from None
        _, c = self.state.find_control(mrid)
        if p.get("supersede_overlapping"):
            # 2030.5 EventStatus 4: the new control supersedes the live ones of its program
            # whose time it overlaps (cactus S-ALL-41 expects the server to mark them).
            for old in list(program.controls):
                ends = old.start + old.duration
                overlaps = old.start < c.start + c.duration and c.start < ends
                if old is not c and overlaps and live(self.state, old):
                    self.state.mark_superseded(old.mrid)
        return _json(_control(program, c), status=201)

    async def cancel(self, request: web.Request) -> web.Response:
        p = await _body(request)
        program, c = self._control(request.match_info["mrid"])
        self.state.cancel(c.mrid, randomized=bool(p.get("randomized", False)))
        return _json(_control(program, c))

    async def supersede(self, request: web.Request) -> web.Response:
        p = await _body(request)
        _, old = self._control(request.match_info["mrid"])
        base = _modes(p) if any(k in p for k in modes.MODES) else None
        mrid = self.state.supersede(
            old.mrid,
            start=_opt_int(p, "start"),
            duration=_opt_int(p, "duration"),
            base=base,
        )
        program, new = self.state.find_control(mrid)
        return _json(_control(program, new), status=201)

    async def cancel_active(self, request: web.Request) -> web.Response:
        p = await _body(request)
        found = [(c.creation_time, c.number, c.mrid) for pr in self.state.programs
                 for c in pr.controls if live(self.state, c)]  # fmt: skip
        chosen = sorted(found) if p.get("all") else sorted(found)[-1:]
        for *_, mrid in chosen:
            self.state.cancel(mrid)
        return _json({"cancelled": [mrid for *_, mrid in chosen]})

    # ------------------------------------------------------------------ rates, mirrors
    async def poll_rates(self, request: web.Request) -> web.Response:
        p = await _body(request)
        for resource, seconds in p.items():
            if resource not in POLL_RESOURCES:
                raise AdminError(400, f"pollRate is on one of {', '.join(POLL_RESOURCES)}")
            if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
                raise AdminError(400, f"{resource}: a poll rate is whole seconds >= 1 or null")
        for resource, seconds in p.items():
            self.state.set_poll_rate(resource, seconds)  # type: ignore[arg-type]  # checked above
        self.state.notify(paths.DCAP, paths.EDEV, kind="rate")
        return _json(dict(self.state.poll_rates))

    async def post_rate(self, request: web.Request) -> web.Response:
        p = await _body(request)
        seconds = _opt_int(p, "seconds")
        lfdi = p.get("lfdi")
        if lfdi is None:
            self.state.mup_post_rate = seconds
        self.state.set_post_rate(seconds, None if lfdi is None else self._edev(_lfdi(lfdi)).lfdi)
        return _json({"seconds": seconds})

    async def clear_mups(self, request: web.Request) -> web.Response:
        lfdi = request.query.get("lfdi")
        key = None if lfdi is None else _lfdi(lfdi)
        before = len(self.state.mups)
        self.state.mups[:] = [m for m in self.state.mups if key not in (None, m.poster)]
        self.state.notify(paths.MUP, kind="mup")
        return _json({"removed": before - len(self.state.mups)})

    # ------------------------------------------------------------------ lookups
    def _edev(self, lfdi: str) -> EndDeviceRecord:
        edev = self.state.find_end_device(lfdi)
        if edev is None:
            raise AdminError(404, f"no EndDevice with LFDI {lfdi}")
        return edev

    def _program(self, key: str) -> Program:
        program = self.state.program_at(key)
        if program is None:
            raise AdminError(404, f"no DERProgram /derp/{key}")
        return program

    def _control(self, mrid: str) -> tuple[Program, Control]:
        try:
            return self.state.find_control(mrid)
        except KeyError:
            raise AdminError(404, f"no DERControl {mrid}") from None


class AdminServer:
    """:class:`Admin` on ``http://host:port`` (loopback only: it has no authentication)."""

    def __init__(self, state: UtilityState, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _loopback(host):
            raise ValueError(f"the admin interface listens on loopback only, not {host!r}")
        self.admin = Admin(state)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.admin.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0 and self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, path: str = "/admin") -> str:
        return f"http://{self.host}:{self.port}{path}"


# ---------------------------------------------------------------------- JSON plumbing
@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AdminError as e:
        return _json({"error": str(e)}, status=e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _json({"error": f"{request.method} {request.path}: {e.reason}"}, e.status)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=JSON)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise AdminError(400, f"the body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


def _need(p: dict[str, Any], key: str) -> Any:
    if p.get(key) is None:
        raise AdminError(400, f"{key!r} is required")
    return p[key]


def _int(p: dict[str, Any], key: str, default: int | None = None) -> int:
    v = p.get(key, default)
    if v is None:
        raise AdminError(400, f"{key!r} is required")
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
        raise AdminError(400, f"{key!r} must be a whole number; got {v!r}")
    return int(v)


def _opt_int(p: dict[str, Any], key: str) -> int | None:
    return None if p.get(key) is None else _int(p, key)


def _lfdi(text: object) -> str:
    try:
        return identity.parse_lfdi(str(text))
    except ValueError as e:
        raise AdminError(400, f"LFDI {text!r}: {e}") from None


def _modes(p: dict[str, Any]) -> Any:
    try:
        return modes.control_base(p)
    except ValueError as e:
        raise AdminError(400, str(e)) from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _edev(e: EndDeviceRecord) -> dict[str, Any]:
    return {
        "href": paths.edev(e.number),
        "number": e.number,
        "lfdi": e.lfdi,
        "sfdi": e.sfdi,
        "pin": e.pin,
        "aggregator": e.aggregator,
        "fsas": [{"number": f.number, "programs": list(f.programs)} for f in e.fsas],
    }


def _program(p: Program, state: UtilityState) -> dict[str, Any]:
    return {
        "href": paths.derp(p.key),
        "key": p.key,
        "mrid": p.mrid,
        "primacy": p.primacy,
        "default": p.default is not None,
        "controls": [_control(p, c) | {"live": live(state, c)} for c in p.controls],
    }


def _control(p: Program, c: Control) -> dict[str, Any]:
    return {
        "href": paths.derc(p.key, c.number),
        "mrid": c.mrid,
        "start": c.start,
        "duration": c.duration,
        "status": c.forced_status,
    }


__all__ = ["Admin", "AdminError", "AdminServer", "live", "reset"]
