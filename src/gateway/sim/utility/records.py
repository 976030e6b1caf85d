"""The mutable records :class:`gateway.sim.utility.state.UtilityState` is made of (no I/O)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.north.sep2.der_resources import (
    DERAvailability,
    DERCapability,
    DERSettings,
    DERStatus,
)
from gateway.north.sep2.metering import MirrorMeterReading, MirrorUsagePoint
from gateway.north.sep2.model import DefaultDERControl, DERControlBase
from gateway.north.sep2.pubsub import ConnectionPoint, LogEvent, Subscription

EVENT_SCHEDULED, EVENT_ACTIVE = 0, 1


@dataclass
class Control:
    """One DERControl. ``forced_status`` is 2, 3 or 4 once cancelled or superseded; otherwise
    the status follows the server clock (0 scheduled, 1 active; an ended event stays 1)."""

    number: int
    mrid: str
    start: int
    duration: int
    base: DERControlBase
    creation_time: int
    status_time: int
    randomize_start: int | None = None
    randomize_duration: int | None = None
    response_required: int | None = None
    description: str | None = None
    device_category: str | None = None
    reply_to: str | None = None
    version: int = 0
    forced_status: int | None = None

    def status(self, now: int) -> tuple[int, int]:
        """``(currentStatus, dateTime)`` at server time ``now``."""
        if self.forced_status is not None:
            return self.forced_status, self.status_time
        if now >= self.start:
            return EVENT_ACTIVE, max(self.start, self.creation_time)
        return EVENT_SCHEDULED, self.creation_time


@dataclass
class Program:
    """A DERProgram: ``number`` is for life (its ResponseSet), ``key`` its URL segment."""

    number: int
    key: str
    mrid: str
    primacy: int
    description: str
    default: DefaultDERControl | None = None
    controls: list[Control] = field(default_factory=list)
    retired_keys: list[str] = field(default_factory=list)
    version: int = 0


@dataclass
class Fsa:
    number: int
    mrid: str
    description: str
    programs: list[int]  # Program.number, in order


@dataclass
class DerRecord:
    """One DER of an EndDevice: what the client last PUT (decoded), when, and the raw body."""

    number: int
    capability: DERCapability | None = None
    settings: DERSettings | None = None
    status: DERStatus | None = None
    availability: DERAvailability | None = None
    bodies: dict[str, bytes] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def get(self, part: str) -> DERCapability | DERSettings | DERStatus | DERAvailability | None:
        return {
            "dercap": self.capability,
            "derg": self.settings,
            "ders": self.status,
            "dera": self.availability,
        }[part]


@dataclass
class SubscriptionRecord:
    """A Subscription an EndDevice POSTed (decoded) and its raw body."""

    number: int
    resource: Subscription
    body: bytes
    created: int


@dataclass
class EndDeviceRecord:
    number: int
    lfdi: str
    sfdi: int
    pin: int | None  # None: no RegistrationLink
    registered_at: int
    changed_time: int
    aggregator: str | None = None
    post_rate: int | None = None
    device_category: str | None = None
    fsas: list[Fsa] = field(default_factory=list)
    ders: list[DerRecord] = field(default_factory=list)
    subscriptions: list[SubscriptionRecord] = field(default_factory=list)
    connection_point: ConnectionPoint | None = None  # csipaus: what the client last PUT
    connection_point_updated: int | None = None
    log_events: list[LogEvent] = field(default_factory=list)  # as POSTed, oldest first
    # The aggregator's own EndDevice (the reference server's /edev/0): no FSA, DER or
    # Registration, only the SubscriptionList its certificate subscribes through.
    virtual: bool = False
    # False: no SubscriptionListLink (a site under an aggregator that has its own EndDevice).
    subscription_list: bool = True

    def add_der(self) -> DerRecord:
        der = DerRecord(max((d.number for d in self.ders), default=0) + 1)
        self.ders.append(der)
        return der

    def der(self, number: int) -> DerRecord | None:
        return next((d for d in self.ders if d.number == number), None)

    def fsa(self, number: int) -> Fsa | None:
        return next((f for f in self.fsas if f.number == number), None)


@dataclass(frozen=True, slots=True)
class MirrorReading:
    """One MirrorMeterReading a client POSTed with a value (alone, in a MirrorMeterReadingList
    or inside its MirrorUsagePoint): the MUP's mRID, the reading, server time, the device."""

    mup: str  # MirrorUsagePoint.mRID
    reading: MirrorMeterReading
    at: int  # server time of the POST
    lfdi: str  # MirrorUsagePoint.deviceLFDI: the device mirrored


@dataclass
class Mup:
    """A MirrorUsagePoint as last POSTed (decoded and raw), its MirrorMeterReadings by mRID
    (each the last one POSTed, keeping the first ReadingType) and every reading since."""

    number: int
    poster: str | None  # the client certificate's LFDI: only it may POST to the mirror
    resource: MirrorUsagePoint
    body: bytes
    created: int
    updated: int
    meter_readings: dict[str, MirrorMeterReading] = field(default_factory=dict)
    readings: list[MirrorReading] = field(default_factory=list)

    @property
    def mrid(self) -> str:
        return self.resource.mRID.upper()


@dataclass
class Fault:
    """A scripted HTTP failure; ``remaining`` None: until cleared."""

    status: int
    retry_after: int | None
    remaining: int | None
    paths: tuple[str, ...]
    methods: tuple[str, ...]

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.paths or any(fnmatch.fnmatchcase(path, g) for g in self.paths)

    @staticmethod
    def take(faults: list[Fault], method: str, path: str) -> Fault | None:
        """The first fault matching the request, one of its count used up."""
        fault = next((f for f in faults if f.matches(method, path)), None)
        if fault is not None and fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
        return fault


@dataclass(slots=True)
class Tamper:
    """A scripted rewrite of the bodies served on ``paths`` (globs); ``remaining`` None: until
    cleared, else that many bodies more."""

    paths: tuple[str, ...]
    rewrite: Callable[[bytes], bytes]
    remaining: int | None = None

    @staticmethod
    def apply(tampers: list[Tamper], path: str, body: bytes) -> bytes:
        """``body`` as served on ``path``: rewritten by every tamper that matches, each one of
        its count used up."""
        for tamper in list(tampers):
            if not any(fnmatch.fnmatchcase(path, g) for g in tamper.paths):
                continue
            body = tamper.rewrite(body)
            if tamper.remaining is not None:
                tamper.remaining -= 1
                if tamper.remaining <= 0:
                    tampers.remove(tamper)
        return body


@dataclass(frozen=True, slots=True)
class Change:
    """Resources that changed (``hrefs``) and why (``kind``: ``control``, ``default``, ...)."""

    kind: str
    hrefs: tuple[str, ...]
    at: float
