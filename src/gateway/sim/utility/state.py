"""The utility simulator's state and scripting API: pure, no I/O, one clock that can be injected.

:class:`UtilityState` holds what a 2030.5 utility server knows: EndDevices (each with its LFDI,
SFDI, registration PIN, FunctionSetAssignments, DERs with the last DERCapability / DERSettings /
DERStatus / DERAvailability the client PUT, its subscriptions and ConnectionPoint), DERPrograms
(primacy, a DefaultDERControl or none, DERControls), MirrorUsagePoints and their readings, poll
and post rates, and scripted faults (HTTP errors, a cut link). The HTTP shell
(:mod:`gateway.sim.utility.server`) reads it; tests and the conformance runner change it with
the methods below, each one a scenario step::

    state = UtilityState(clock=lambda: 2_000_000_000.0)
    state.add_end_device(lfdi, pin=111115)
    feeder = state.add_program("feeder 7", primacy=1, default=DERControlBase(opModExpLimW=...))
    mrid = state.add_control(feeder, start=state.now() + 60, duration=600, base=...)
    state.cancel(mrid)

mRIDs are HexBinary128 with the IANA PEN in the low 32 bits (sep2.md §5.1; default 32473, which
RFC 5612 reserves for documentation); each modification bumps ``version``. Cancelled and
superseded events stay listed with their status (2030.5 §10.2.3.3) unless deleted by script.

What clients PUT and POST is kept decoded; :mod:`gateway.sim.utility.reports` queries it
(``state.der_status(lfdi)``, ``state.readings(lfdi)``, ``state.subscriptions(lfdi)``, ...).

Changes go to the listeners (:meth:`UtilityState.listen`) as a :class:`Change` naming the hrefs
(:mod:`gateway.sim.utility.paths`) that changed; the server turns those into Notifications.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from gateway.north.sep2 import identity
from gateway.north.sep2.model import DefaultDERControl, DERControlBase
from gateway.sim.utility import paths
from gateway.sim.utility.records import (
    Change,
    Control,
    EndDeviceRecord,
    Fault,
    Fsa,
    Mup,
    Program,
    Tamper,
)
from gateway.sim.utility.reports import ClientReports

DOC_PEN: Final = 32473  # RFC 5612: the IANA Private Enterprise Number for documentation
DEFAULT_PIN: Final = 111115  # CSIP-AUS ALL-01: 11111 with its check digit
RESPONSE_REQUIRED: Final = 0x03  # bit 0 "received" + bit 1 "specific response" (1, 2, 3, 6, 7)
PollResource = Literal["dcap", "tm", "edev", "reg", "fsa", "derp", "der", "mup"]
POLL_RESOURCES: Final = ("dcap", "tm", "edev", "reg", "fsa", "derp", "der", "mup")


@dataclass
class UtilityState(ClientReports):
    """The simulated utility server's state; see the module docstring (what clients reported
    is queried with the :class:`~gateway.sim.utility.reports.ClientReports` methods)."""

    clock: Callable[[], float] = time.time
    pen: int = DOC_PEN
    allow_registration: bool = True  # in-band registration: POST EndDevice to /edev
    registration_pin: int | None = DEFAULT_PIN  # given to EndDevices registered in band
    # The reference CSIP-AUS server's habit (envoy): each in-band registration gets a random
    # PIN (with its check digit) instead of ``registration_pin``.
    random_registration_pin: bool = False
    # The reference server's habit (envoy serves a control's row change time as creationTime):
    # a cancel or supersede gives the control a new creationTime. The standard's creationTime
    # is when the event was created, so it is off by default.
    restamp_on_cancel: bool = False
    # The reference server's habit (ALL-10): the post rate is set on each MirrorUsagePoint (a
    # GET of it shows this postRate, whatever the client posted), not on the EndDevice.
    mup_post_rate: int | None = None
    # The reference server's habit (cactus S-ALL-41): a DERControlList leaves out the controls
    # whose end has passed. Off by default: 2030.5 lets a server keep them listed.
    hide_ended_controls: bool = False
    tz_offset: int = 0
    dst_offset: int = 0
    time_quality: int = 7  # "intentionally uncoordinated": the server's clock is its own
    poll_rates: dict[str, int] = field(default_factory=dict)
    end_devices: list[EndDeviceRecord] = field(default_factory=list)
    aggregators: set[str] = field(default_factory=set)
    programs: list[Program] = field(default_factory=list)
    global_programs: list[int] = field(default_factory=list)  # put in every first FSA
    mups: list[Mup] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # (path globs, rewrite): bodies the server sends are rewritten on the way out, so a test
    # can serve what the codec would refuse to write (a negative limit, an overflow, garbage).
    tampers: list[Tamper] = field(default_factory=list)
    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (to, status)
    comms_up: bool = True
    # Called with (method, path) as each request arrives, before it is served (a test
    # harness that changes the server on a request, as cactus' steps without
    # serve_request_first do: the client's answer already reflects the change).
    on_request: Callable[[str, str], None] | None = None
    # CSIP-AUS 1.3 /.well-known/csipaus (SDVN-01): schema version (namespace URI) -> the
    # DeviceCapability paths serving it. None: 404, as a 1.2 server answers.
    well_known: dict[str, list[str]] | None = field(
        default_factory=lambda: {"https://csipaus.org/ns": ["/dcap"]}
    )
    _serial: int = 0
    _listeners: list[Callable[[Change], None]] = field(default_factory=list)

    # ------------------------------------------------------------------ clock, ids, listeners
    def now(self) -> int:
        """Server time (TimeType: whole POSIX seconds), from the injected clock."""
        return int(self.clock())

    def new_mrid(self) -> str:
        """A fresh mRID: 96 bits of serial, then the PEN (HexBinary128, upper case)."""
        self._serial += 1
        return f"{self._serial:024X}{self.pen:08X}"

    def listen(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def notify(self, *hrefs: str, kind: str = "script") -> Change:
        """Announce that ``hrefs`` changed (the server notifies their subscribers)."""
        change = Change(kind, tuple(hrefs), self.clock())
        for listener in list(self._listeners):
            listener(change)
        return change

    # ------------------------------------------------------------------ end devices
    def add_aggregator(self, lfdi: str, *, end_device: bool = False) -> str:
        """Let the client certificate ``lfdi`` see every EndDevice added with ``aggregator=``.

        ``end_device``: the reference CSIP-AUS server's habit (bsgip/envoy, cactus ALL-14's
        ``/edev/0/sub``): the aggregator has an EndDevice of its own, ``/edev/0``, first in its
        EndDeviceList, and the SubscriptionListLink is there only; its sites' EndDevices have
        none, so every subscription for them goes to ``/edev/0/sub``.
        """
        key = identity.parse_lfdi(lfdi)
        self.aggregators.add(key)
        if end_device and self.aggregator_end_device(key) is None:
            now = self.now()
            own = EndDeviceRecord(
                number=0,
                lfdi=key,
                sfdi=identity.sfdi_from_lfdi(key),
                pin=None,
                registered_at=now,
                changed_time=now,
                virtual=True,
            )
            self.end_devices.insert(0, own)
            for edev in self.end_devices:
                if edev.aggregator == key:
                    edev.subscription_list = False
            self.notify(paths.EDEV, kind="end-device")
        return key

    def aggregator_end_device(self, lfdi: str) -> EndDeviceRecord | None:
        """The aggregator's own EndDevice (``add_aggregator(end_device=True)``), if it has one."""
        key = lfdi.upper()
        return next((e for e in self.end_devices if e.virtual and e.lfdi == key), None)

    def add_end_device(
        self,
        lfdi: str,
        *,
        pin: int | None = DEFAULT_PIN,
        sfdi: int | None = None,
        aggregator: str | None = None,
        ders: int = 1,
        post_rate: int | None = None,
        device_category: str | None = None,
    ) -> EndDeviceRecord:
        """Register an EndDevice out of band. ``pin`` None: no RegistrationLink (ALL-05).

        ``sfdi`` defaults to the LFDI's; ``aggregator`` (an LFDI) may also see it. It gets one
        FSA holding every program added without ``end_devices=`` and ``ders`` DERs.
        """
        key = identity.parse_lfdi(lfdi)
        if self.find_end_device(key) is not None:
            raise ValueError(f"EndDevice {key} is already registered")
        if pin is not None and not identity.pin_valid(pin):
            raise ValueError(f"PIN {pin} fails its check digit (use identity.pin_with_check)")
        number = max((e.number for e in self.end_devices), default=0) + 1
        now = self.now()
        edev = EndDeviceRecord(
            number=number,
            lfdi=key,
            sfdi=identity.sfdi_from_lfdi(key) if sfdi is None else identity.parse_sfdi(sfdi),
            pin=pin,
            registered_at=now,
            changed_time=now,
            aggregator=None if aggregator is None else self.add_aggregator(aggregator),
            post_rate=post_rate,
            device_category=device_category,
        )
        if edev.aggregator is not None and self.aggregator_end_device(edev.aggregator):
            edev.subscription_list = False  # subscriptions go through the aggregator's own
        edev.fsas.append(Fsa(1, self.new_mrid(), "default", list(self.global_programs)))
        for _ in range(ders):
            edev.add_der()
        self.end_devices.append(edev)
        self.notify(paths.EDEV, kind="end-device")
        return edev

    def in_band_pin(self) -> int | None:
        """The PIN an EndDevice registered in band gets (see ``random_registration_pin``)."""
        if not self.random_registration_pin:
            return self.registration_pin
        return identity.pin_with_check(secrets.randbelow(100_000))

    def remove_end_device(self, lfdi: str) -> None:
        edev = self.end_device(lfdi)
        self.end_devices.remove(edev)
        self.notify(paths.EDEV, kind="end-device")

    def find_end_device(self, lfdi: str) -> EndDeviceRecord | None:
        key = lfdi.upper()
        return next((e for e in self.end_devices if e.lfdi == key), None)

    def end_device(self, ref: str | int) -> EndDeviceRecord:
        """An EndDevice by LFDI or by number (its ``/edev/{n}``); KeyError if none."""
        for e in self.end_devices:
            if e.number == ref or (isinstance(ref, str) and e.lfdi == ref.upper()):
                return e
        raise KeyError(f"no EndDevice {ref!r}")

    def visible_to(self, client_lfdi: str | None) -> list[EndDeviceRecord]:
        """What a client certificate may see: its own EndDevice, or an aggregator's devices."""
        if client_lfdi is None:
            return []
        key = client_lfdi.upper()
        return [e for e in self.end_devices if key in (e.lfdi, e.aggregator)]

    def add_fsa(self, lfdi: str, programs: Iterable[Program | int], description: str = "") -> Fsa:
        edev = self.end_device(lfdi)
        number = max((f.number for f in edev.fsas), default=0) + 1
        fsa = Fsa(number, self.new_mrid(), description, [self.program(p).number for p in programs])
        edev.fsas.append(fsa)
        self.notify(paths.fsa_list(edev.number), kind="fsa")
        return fsa

    def remove_fsa(self, lfdi: str, number: int) -> None:
        """Drop an FSA (CSIP-AUS P-02): its programs disappear from the device's walk."""
        edev = self.end_device(lfdi)
        edev.fsas = [f for f in edev.fsas if f.number != number]
        self.notify(paths.fsa_list(edev.number), kind="fsa")

    def set_post_rate(self, seconds: int | None, lfdi: str | None = None) -> None:
        for edev in self.end_devices if lfdi is None else [self.end_device(lfdi)]:
            edev.post_rate = seconds
            edev.changed_time = self.now()
            self.notify(paths.edev(edev.number), kind="end-device")

    # ------------------------------------------------------------------ programs
    def add_program(
        self,
        description: str = "",
        *,
        primacy: int = 1,
        default: DERControlBase | DefaultDERControl | None = None,
        end_devices: Iterable[str] | None = None,
    ) -> Program:
        """A DERProgram, put in the first FSA of ``end_devices`` (LFDIs); None: of every
        EndDevice, present and future."""
        if not 0 <= primacy <= 255:
            raise ValueError(f"primacy is a UInt8; got {primacy}")
        number = max((p.number for p in self.programs), default=0) + 1
        program = Program(number, str(number), self.new_mrid(), primacy, description)
        self.programs.append(program)
        if end_devices is None:
            self.global_programs.append(number)
            targets = [e for e in self.end_devices if not e.virtual]
        else:
            targets = [self.end_device(lfdi) for lfdi in end_devices]
        for edev in targets:
            if not edev.fsas:
                edev.fsas.append(Fsa(1, self.new_mrid(), "default", []))
            edev.fsas[0].programs.append(number)
            self.notify(paths.derp_list(edev.number, edev.fsas[0].number), kind="program")
        if default is not None:
            self.set_default(program, default)
        return program

    def program(self, ref: Program | int | str) -> Program:
        """A program by object, number or mRID; KeyError if none."""
        if isinstance(ref, Program):
            return ref
        for p in self.programs:
            if ref in (p.number, p.mrid):
                return p
        raise KeyError(f"no DERProgram {ref!r}")

    def program_at(self, key: str) -> Program | None:
        """The program now served under ``/derp/{key}`` (None if moved or unknown)."""
        return next((p for p in self.programs if p.key == key), None)

    def set_default(
        self, program: Program | int | str, base: DERControlBase | DefaultDERControl | None
    ) -> None:
        """Replace the program's DefaultDERControl (None: it has none: ``dderc`` is 404 and the
        DERProgram no longer links it)."""
        p = self.program(program)
        had = p.default is not None
        if base is None:
            p.default = None
        else:
            dflt = base if isinstance(base, DefaultDERControl) else DefaultDERControl("0", base)
            version = 0 if p.default is None else (p.default.version or 0) + 1
            p.default = replace(dflt, mRID=self.new_mrid(), version=version, href=None)
        self.notify(paths.dderc(p.key), kind="default")
        if had != (p.default is not None):  # the DERProgram gains or loses its link
            p.version += 1
            self._program_changed(p)

    def relocate_program(self, program: Program | int | str) -> str:
        """Serve the program (and its controls) under a new ``/derp/{key}``; the old hrefs
        answer 404, so a client that cached them must rediscover (CSIP-AUS P-04)."""
        p = self.program(program)
        old = p.key
        p.retired_keys.append(old)
        p.key = f"{p.number}r{len(p.retired_keys)}"
        self._program_changed(p)
        return p.key

    def _program_changed(self, p: Program) -> None:
        for edev in self.end_devices:
            for fsa in edev.fsas:
                if p.number in fsa.programs:
                    self.notify(paths.derp_list(edev.number, fsa.number), kind="program")

    # ------------------------------------------------------------------ controls
    def add_control(
        self,
        program: Program | int | str,
        *,
        start: int | None = None,
        duration: int,
        base: DERControlBase,
        randomize_start: int | None = None,
        randomize_duration: int | None = None,
        response_required: int | None = RESPONSE_REQUIRED,
        description: str | None = None,
        device_category: str | None = None,
        reply_to: bool = True,
    ) -> str:
        """Schedule a DERControl (``start`` None: now); returns its mRID."""
        p = self.program(program)
        now = self.now()
        if duration < 0:
            raise ValueError(f"duration must be >= 0; got {duration}")
        for r in (randomize_start, randomize_duration):
            if r is not None and not -3600 <= r <= 3600:
                raise ValueError(f"randomisation is -3600..3600 s; got {r}")
        control = Control(
            number=max((c.number for c in p.controls), default=0) + 1,
            mrid=self.new_mrid(),
            start=now if start is None else int(start),
            duration=int(duration),
            base=base,
            creation_time=now,
            status_time=now,
            randomize_start=randomize_start,
            randomize_duration=randomize_duration,
            response_required=response_required,
            description=description,
            device_category=device_category,
            reply_to=paths.response_list(p.number) if reply_to else None,
        )
        p.controls.append(control)
        self.notify(paths.derc_list(p.key), kind="control")
        return control.mrid

    def find_control(self, mrid: str) -> tuple[Program, Control]:
        for p in self.programs:
            for c in p.controls:
                if c.mrid == mrid.upper():
                    return p, c
        raise KeyError(f"no DERControl {mrid}")

    def control(self, mrid: str) -> Control:
        return self.find_control(mrid)[1]

    def cancel(self, mrid: str, *, randomized: bool = False) -> None:
        """EventStatus 2 (3 with ``randomized``: the client randomises its end)."""
        p, c = self.find_control(mrid)
        c.forced_status = 3 if randomized else 2
        self._restamp(c)
        self._modified(p, c)

    def supersede(
        self,
        mrid: str,
        *,
        start: int | None = None,
        duration: int | None = None,
        base: DERControlBase | None = None,
        program: Program | int | str | None = None,
    ) -> str:
        """Mark ``mrid`` superseded (status 4) and add its replacement (by default same program,
        start, duration and modes); returns the new mRID."""
        p, old = self.find_control(mrid)
        self.mark_superseded(old.mrid)
        return self.add_control(
            p if program is None else program,
            start=old.start if start is None else start,
            duration=old.duration if duration is None else duration,
            base=old.base if base is None else base,
            randomize_start=old.randomize_start,
            randomize_duration=old.randomize_duration,
            response_required=old.response_required,
        )

    def mark_superseded(self, mrid: str) -> None:
        """EventStatus 4, without a replacement (another control already overlaps it)."""
        p, c = self.find_control(mrid)
        c.forced_status = 4
        self._restamp(c)
        self._modified(p, c)

    def delete_control(self, mrid: str) -> None:
        """Remove an event from its list without cancelling it (a misbehaving server)."""
        p, c = self.find_control(mrid)
        p.controls.remove(c)
        self.notify(paths.derc_list(p.key), kind="control")

    def _restamp(self, c: Control) -> None:
        if self.restamp_on_cancel:  # a new creationTime, even within the same second
            c.creation_time = max(self.now(), c.creation_time + 1)

    def _modified(self, p: Program, c: Control) -> None:
        c.version += 1
        c.status_time = self.now()
        self.notify(paths.derc_list(p.key), paths.derc(p.key, c.number), kind="control")

    # ------------------------------------------------------------------ rates, faults, comms
    def set_poll_rate(self, resource: PollResource, seconds: int | None) -> None:
        """``pollRate`` of a resource kind (None: attribute left out, the client's 900 s)."""
        if resource not in POLL_RESOURCES:
            raise ValueError(f"pollRate is on one of {', '.join(POLL_RESOURCES)}")
        if seconds is None:
            self.poll_rates.pop(resource, None)
        else:
            self.poll_rates[resource] = int(seconds)

    def poll_rate(self, resource: PollResource) -> int | None:
        return self.poll_rates.get(resource)

    def fail(
        self,
        status: int = 500,
        *,
        retry_after: int | None = None,
        count: int | None = None,
        paths: Iterable[str] = (),
        methods: Iterable[str] = (),
    ) -> Fault:
        """Answer ``status`` to matching requests: the next ``count`` (None: until
        :meth:`clear_faults`). ``paths`` are globs on the path (``/derp/*/derc``; empty: all)."""
        if not 400 <= status <= 599:
            raise ValueError(f"a fault is a 4xx or 5xx status; got {status}")
        methods = tuple(m.upper() for m in methods)
        fault = Fault(status, retry_after, count, tuple(paths), methods)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()
        self.tampers.clear()
        self.redirects.clear()

    def redirect(self, path: str, to: str, status: int = 307) -> None:
        """Answer requests for ``path`` with a redirect to ``to`` (ERR-001)."""
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"a redirect is 301/302/303/307/308; got {status}")
        self.redirects[path] = (to, status)

    def tamper(
        self, paths: Iterable[str], rewrite: Callable[[bytes], bytes], *, count: int | None = None
    ) -> Tamper:
        """Rewrite every response body served on ``paths`` (globs) until :meth:`clear_faults`,
        or only the next ``count`` of them (a bad body served once: ``count=1``)."""
        if count is not None and count < 1:
            raise ValueError(f"a tamper's count is at least 1; got {count}")
        tamper = Tamper(tuple(paths), rewrite, count)
        self.tampers.append(tamper)
        return tamper

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The fault that answers this request (consuming one of its count), if any."""
        return Fault.take(self.faults, method, path)

    def cut(self) -> None:
        """Communications down: the server closes connections and refuses new ones."""
        self.comms_up = False
        self.notify(kind="comms")

    def restore(self) -> None:
        self.comms_up = True
        self.notify(kind="comms")
