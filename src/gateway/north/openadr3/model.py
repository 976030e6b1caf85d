"""OpenADR 3.0.1 / 3.1 objects the VEN reads and writes, as typed frozen values.

Names follow the OpenADR 3 schema (``programID``, ``intervalPeriod``, ``payloadDescriptors``)
in snake case. Times are POSIX seconds (UTC) and durations seconds, already parsed: the codec
(``codec.py``) is the only place that sees JSON. ``None`` durations mean "open-ended" (the
schema's ``P9999Y``); ``PT0S`` is kept as 0 and the mapper decides what it means for a payload.
Only the fields the gateway uses are kept; the rest of each object is ignored on reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.core import errors

# A payload value: the schema allows numbers, integers, strings, booleans and points.
Value = float | int | str | bool | tuple[float, float]

OBJECT_TYPES: Final = frozenset({"PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"})
OPERATIONS: Final = frozenset({"GET", "POST", "PUT", "DELETE"})


class ProtocolError(errors.ProtocolError):
    """Bytes from the VTN (or a webhook caller) that are not a valid OpenADR 3 object.

    The message says what was wrong and where (a JSON path), so that a log line is actionable.
    """


@dataclass(frozen=True, slots=True)
class IntervalPeriod:
    start: float | None  # POSIX seconds; None only where the schema lets an interval inherit it
    duration_s: float | None = None  # None = not given; OPEN_ENDED for P9999Y
    randomize_start_s: float | None = None


OPEN_ENDED: Final = float("inf")  # duration of P9999Y ("infinity" in the schema)


@dataclass(frozen=True, slots=True)
class ValuesMap:
    type: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Interval:
    id: int
    interval_period: IntervalPeriod | None
    payloads: tuple[ValuesMap, ...]


@dataclass(frozen=True, slots=True)
class EventPayloadDescriptor:
    payload_type: str
    units: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class ReportDescriptor:
    payload_type: str
    reading_type: str | None = None
    units: str | None = None
    frequency: int | None = None
    repeat: int | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """3.0.1 ``{type, values}``; a 3.1 plain-string target has ``type=""``."""

    type: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    program_name: str
    created: float | None = None
    modified: float | None = None
    payload_descriptors: tuple[EventPayloadDescriptor, ...] = ()
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    program_id: str
    intervals: tuple[Interval, ...]
    event_name: str | None = None
    priority: int | None = None  # lower = higher priority; None = lowest
    created: float | None = None
    modified: float | None = None
    targets: tuple[Target, ...] = ()
    payload_descriptors: tuple[EventPayloadDescriptor, ...] = ()
    report_descriptors: tuple[ReportDescriptor, ...] = ()
    interval_period: IntervalPeriod | None = None
    # A digest of the object as received: changes whenever the VTN changes anything in it,
    # also when it forgets to bump modificationDateTime. The tracker keys modifications on it.
    digest: str = ""


@dataclass(frozen=True, slots=True)
class ReportPayloadDescriptor:
    payload_type: str
    reading_type: str | None = None
    units: str | None = None


@dataclass(frozen=True, slots=True)
class ReportResource:
    resource_name: str
    intervals: tuple[Interval, ...]
    interval_period: IntervalPeriod | None = None


@dataclass(frozen=True, slots=True)
class Report:
    program_id: str
    event_id: str
    client_name: str
    resources: tuple[ReportResource, ...]
    report_name: str | None = None
    payload_descriptors: tuple[ReportPayloadDescriptor, ...] = ()
    id: str | None = None
    created: float | None = None


@dataclass(frozen=True, slots=True)
class ObjectOperation:
    objects: tuple[str, ...]
    operations: tuple[str, ...]
    callback_url: str
    bearer_token: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    client_name: str
    program_id: str
    object_operations: tuple[ObjectOperation, ...]
    id: str | None = None
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Ven:
    ven_name: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    resource_name: str
    ven_id: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A webhook callback. ``object`` is decoded for events and programs; other object types
    are kept as their type only (the VEN subscribes to events)."""

    object_type: str
    operation: str
    object: Event | Program | None
    object_id: str | None = None
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """RFC 7807 ``application/problem+json``, as OpenADR 3 VTNs answer errors."""

    status: int | None = None
    title: str | None = None
    detail: str | None = None
    type: str | None = None

    def __str__(self) -> str:
        parts = [str(p) for p in (self.status, self.title, self.detail) if p]
        return " ".join(parts) or "no detail"


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in_s: float | None = None
