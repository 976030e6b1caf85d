"""What the simulated VTN knows: its five collections as JSON documents (so that tests can serve
anything), its clients and tokens, and what it recorded. Every write, from HTTP or from Python,
goes through :meth:`VtnState.create` / :meth:`replace` / :meth:`remove`, which set the
server-provisioned fields and queue the notification."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import ProtocolError
from gateway.sim.vtn3.objects import KINDS, ConflictError


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Delivery:
    url: str
    operation: str
    event_id: str  # the id of the object notified (an event's, mostly)
    status: int | None  # None: could not connect
    at: float
    object_type: str = "EVENT"


Change = tuple[str, str, dict[str, Any]]  # objectType, operation, object


@dataclass
class VtnState:
    clock: Callable[[], float] = time.time
    clients: dict[str, str] = field(default_factory=lambda: {"gateway": "secret"})
    roles: dict[str, str] = field(default_factory=dict)  # client id -> "BL"; default "VEN"
    token_life_s: float = 3600.0
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    vens: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # each with its venID
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)  # token -> its scopes
    requests: list[Exchange] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    raw_events: bytes | None = None  # served as the body of GET /events when set
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    retry_after_s: int | None = None
    cut: bool = False
    notify: bool = True  # send notifications to subscriptions
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _last_stamp: float = 0.0
    _changes: asyncio.Queue[Change] | None = None

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def stamp(self) -> str:
        """Now, strictly later than the last stamp (ms resolution): a PUT right after a POST
        still moves ``modificationDateTime``."""
        t = max(self.clock(), self._last_stamp + 0.001)
        self._last_stamp = t
        return codec.format_time(t)

    def table(self, collection: str) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = getattr(self, collection)
        return table

    # -- the writes ---------------------------------------------------------------------

    def check_refs(self, collection: str, doc: Mapping[str, Any], oid: str | None = None) -> None:
        """What the spec leaves to the implementation: an event's program must exist
        (ProtocolError: 400); programName and venName are unique (ConflictError: 409)."""
        if collection == "events" and doc.get("programID") not in self.programs:
            raise ProtocolError(f"programID: no program {str(doc.get('programID'))[:128]!r}")
        unique = {"programs": "programName", "vens": "venName", "resources": "resourceName"}.get(
            collection
        )
        if unique is not None:
            for other_id, other in self.table(collection).items():
                if (
                    other_id != oid
                    and other.get(unique) == doc.get(unique)
                    and other.get("venID") == doc.get("venID")  # resources: per VEN
                ):
                    raise ConflictError(f"{unique} {doc.get(unique)!r} exists ({other_id})")

    def create(
        self, collection: str, doc: Mapping[str, Any], *, oid: str | None = None
    ) -> dict[str, Any]:
        kind = KINDS[collection]
        oid = oid or self.new_id(kind.prefix)
        now = self.stamp()
        body = {
            **doc,
            "id": oid,
            "createdDateTime": now,
            "modificationDateTime": now,
            "objectType": kind.object_type,
        }
        self.table(collection)[oid] = body
        self._changed(kind.object_type, "POST", body)
        return body

    def replace(self, collection: str, oid: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        kind = KINDS[collection]
        old = self.table(collection)[oid]
        body = {
            **doc,
            "id": oid,
            "createdDateTime": old.get("createdDateTime") or self.stamp(),
            "modificationDateTime": self.stamp(),
            "objectType": kind.object_type,
        }
        self.table(collection)[oid] = body
        self._changed(kind.object_type, "PUT", body)
        return body

    def remove(self, collection: str, oid: str, *, notify: bool = True) -> dict[str, Any]:
        body = self.table(collection).pop(oid)
        if collection == "vens":  # a VEN's resources go with it
            for rid in [r for r, d in self.resources.items() if d.get("venID") == oid]:
                self.remove("resources", rid, notify=notify)
        if notify:
            self._changed(KINDS[collection].object_type, "DELETE", body)
        return body

    # -- programs and events (the Python API) ---------------------------------------------

    def add_program(self, name: str, **extra: Any) -> str:
        return str(self.create("programs", {"programName": name, **extra})["id"])

    def event_doc(
        self,
        program_id: str,
        intervals: list[Mapping[str, list[Any]]],
        *,
        start: float,
        duration_s: float,
        priority: int | None = None,
        units: Mapping[str, str] | None = None,
        report: Iterable[str] = (),
        name: str | None = None,
    ) -> dict[str, Any]:
        """An event document: consecutive intervals of ``duration_s`` from ``start``, each
        ``{payloadType: values}``; ``units`` gives payloadDescriptors; ``report`` the
        payloadTypes of its reportDescriptors."""
        doc: dict[str, Any] = {
            "objectType": "EVENT",
            "programID": program_id,
            "eventName": name,
            "priority": priority,
            "intervalPeriod": {
                "start": codec.format_time(start),
                "duration": codec.format_duration(duration_s),
            },
            "payloadDescriptors": [
                {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": u}
                for t, u in (units or {}).items()
            ],
            "reportDescriptors": [{"payloadType": t, "readingType": "DIRECT_READ"} for t in report],
            "intervals": [
                {"id": i, "payloads": [{"type": t, "values": list(v)} for t, v in p.items()]}
                for i, p in enumerate(intervals)
            ],
        }
        return {k: v for k, v in doc.items() if v is not None}

    def add_event(self, program_id: str, doc: dict[str, Any] | None = None, **kw: Any) -> str:
        """Add an event (``doc`` as is, or built by :meth:`event_doc` from ``kw``)."""
        body = dict(doc) if doc is not None else self.event_doc(program_id, **kw)
        body.setdefault("programID", program_id)
        oid = str(body["id"]) if body.get("id") else None
        return str(self.create("events", body, oid=oid)["id"])

    def modify_event(self, event_id: str, doc: dict[str, Any] | None = None, **kw: Any) -> None:
        old = self.events[event_id]
        body = dict(doc) if doc is not None else self.event_doc(old["programID"], **kw)
        body.setdefault("programID", old["programID"])
        self.replace("events", event_id, body)

    def delete_event(self, event_id: str, *, notify: bool = True) -> None:
        self.remove("events", event_id, notify=notify)

    def fail(self, status: int, count: int = 1, *, retry_after_s: int | None = None) -> None:
        self.failures += [status] * count
        self.retry_after_s = retry_after_s

    def reports_for(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in self.reports.values() if r.get("eventID") == event_id]

    def requests_to(self, method: str, path: str) -> list[Exchange]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def _changed(self, object_type: str, operation: str, body: dict[str, Any]) -> None:
        if self._changes is not None and self.notify:
            self._changes.put_nowait((object_type, operation, body))
