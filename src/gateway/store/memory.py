"""An in-memory twin of :class:`~gateway.store.sqlite.SqliteStore` for unit tests of other layers.

Same contract, same refusals, same ids: it keeps documents as JSON text (so callers get copies
and non-JSON-safe values fail here as they would on disk) and implements transactions as a stack
of snapshots. The shared behavioural tests run against both, so the twin cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, Self

from gateway.store._codec import (
    EXPIRED_REASON,
    WITHDRAWN_REASON,
    check_id,
    check_key,
    check_limit,
    check_since,
    check_text,
    check_time,
    decode_doc,
    decode_value,
    encode_doc,
    prepare_audit,
    prepare_events,
    prepare_request,
    unknown_request,
)
from gateway.store.api import (
    AuditEntry,
    AuditRecord,
    JsonDoc,
    OutboxItem,
    Request,
    RequestStatus,
    StoreClosedError,
    StoreKeyError,
)

__all__ = ["MemoryStore"]

_PATH: Final = ":memory:"


@dataclass(frozen=True, slots=True)
class _Outbox:
    id: int
    key: str
    doc: str
    created_at: float
    acked_at: float | None = None
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class _Audit:
    id: int
    at: float
    device: str
    point: str
    value: str
    reason: str
    outcome: str
    correlation_id: str | None


@dataclass(slots=True)
class _Data:
    events: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    outbox: dict[str, _Outbox] = field(default_factory=dict)  # insertion order = id order
    outbox_seq: int = 0  # like sqlite_sequence: the largest id ever handed out
    audit: list[_Audit] = field(default_factory=list)
    audit_seq: int = 0
    requests: dict[int, Request] = field(default_factory=dict)  # id order
    request_seq: int = 0

    def snapshot(self) -> _Data:
        # Shallow copies suffice: every stored value is an immutable str or frozen record.
        return _Data(
            dict(self.events),
            dict(self.state),
            dict(self.outbox),
            self.outbox_seq,
            list(self.audit),
            self.audit_seq,
            dict(self.requests),
            self.request_seq,
        )


class MemoryStore:
    """A :class:`~gateway.store.api.Store` that lives and dies with the object."""

    def __init__(self) -> None:
        self._data = _Data()
        self._snapshots: list[_Data] = []  # one per open transaction level
        self._closed = False

    @property
    def path(self) -> str:
        return _PATH

    def __repr__(self) -> str:
        return f"MemoryStore({'closed' if self._closed else 'open'})"

    # -- schedule ---------------------------------------------------------------------------
    def put_events(self, docs: Mapping[str, JsonDoc]) -> None:
        rows = prepare_events(docs, _PATH)
        self._live().events.update(rows)

    def delete_events(self, event_ids: Iterable[str]) -> int:
        keys = [check_key(k, "event id", _PATH) for k in event_ids]
        events = self._live().events
        return sum(events.pop(k, None) is not None for k in keys)

    def events(self) -> dict[str, JsonDoc]:
        events = self._live().events
        # Sorted like SQLite's ORDER BY: code-point order equals UTF-8 byte order.
        return {k: decode_doc(events[k], _PATH) for k in sorted(events)}

    def put_state(self, key: str, doc: JsonDoc) -> None:
        key = check_key(key, "state key", _PATH)
        text = encode_doc(doc, f"state {key!r}", _PATH)
        self._live().state[key] = text

    def get_state(self, key: str) -> JsonDoc | None:
        key = check_key(key, "state key", _PATH)
        text = self._live().state.get(key)
        return None if text is None else decode_doc(text, _PATH)

    def delete_state(self, key: str) -> bool:
        key = check_key(key, "state key", _PATH)
        return self._live().state.pop(key, None) is not None

    # -- outbox -----------------------------------------------------------------------------
    def enqueue(self, key: str, doc: JsonDoc, now: float) -> bool:
        key = check_key(key, "outbox key", _PATH)
        text = encode_doc(doc, f"outbox {key!r}", _PATH)
        at = check_time(now, "now", _PATH)
        data = self._live()
        if key in data.outbox:
            return False
        data.outbox_seq += 1
        data.outbox[key] = _Outbox(data.outbox_seq, key, text, at)
        return True

    def pending(self, limit: int | None = None) -> list[OutboxItem]:
        n = check_limit(limit, "limit", _PATH)
        items = [
            OutboxItem(
                id=row.id,
                key=row.key,
                doc=decode_doc(row.doc, _PATH),
                created_at=row.created_at,
                attempts=row.attempts,
                last_error=row.last_error,
                last_attempt_at=row.last_attempt_at,
            )
            for row in self._live().outbox.values()
            if row.acked_at is None
        ]
        return items if n is None else items[:n]

    def mark_attempt(self, key: str, now: float, error: str | None = None) -> None:
        key = check_key(key, "outbox key", _PATH)
        at = check_time(now, "now", _PATH)
        if error is not None:
            check_text(error, "error", _PATH)
        outbox = self._live().outbox
        row = self._row(outbox, key)
        outbox[key] = replace(row, attempts=row.attempts + 1, last_attempt_at=at, last_error=error)

    def ack(self, key: str, now: float) -> bool:
        key = check_key(key, "outbox key", _PATH)
        at = check_time(now, "now", _PATH)
        outbox = self._live().outbox
        row = self._row(outbox, key)
        if row.acked_at is not None:
            return False
        outbox[key] = replace(row, acked_at=at)
        return True

    def prune_acked(self, older_than: float) -> int:
        before = check_time(older_than, "older_than", _PATH)
        outbox = self._live().outbox
        doomed = [k for k, r in outbox.items() if r.acked_at is not None and r.acked_at < before]
        for k in doomed:
            del outbox[k]
        return len(doomed)

    # -- audit ------------------------------------------------------------------------------
    def append_audit(self, entry: AuditEntry) -> int:
        at, device, point, value, reason, outcome, correlation_id = prepare_audit(entry, _PATH)
        data = self._live()
        data.audit_seq += 1
        data.audit.append(
            _Audit(data.audit_seq, at, device, point, value, reason, outcome, correlation_id)
        )
        return data.audit_seq

    def audit(self, since_id: int = 0, limit: int | None = None) -> list[AuditRecord]:
        since = check_since(since_id, _PATH)
        n = check_limit(limit, "limit", _PATH)
        rows = [r for r in self._live().audit if r.id > since]
        return [
            AuditRecord(
                id=r.id,
                at=r.at,
                device=r.device,
                point=r.point,
                value=decode_value(r.value, _PATH),
                reason=r.reason,
                outcome=r.outcome,
                correlation_id=r.correlation_id,
            )
            for r in (rows if n is None else rows[:n])
        ]

    # -- local requests ---------------------------------------------------------------------
    def add_request(self, kind: str, by: str, at: float, expires_at: float | None = None) -> int:
        kind, by, at, expires_at = prepare_request(kind, by, at, expires_at, _PATH)
        data = self._live()
        data.request_seq += 1
        data.requests[data.request_seq] = Request(
            data.request_seq, kind, by, at, expires_at, "pending"
        )
        return data.request_seq

    def take_requests(self, now: float) -> list[Request]:
        at = check_time(now, "now", _PATH)
        requests = self._live().requests
        taken = []
        for rid, r in list(requests.items()):
            if r.status != "pending":
                continue
            if r.expires_at is not None and r.expires_at <= at:
                requests[rid] = replace(r, status="expired", reason=EXPIRED_REASON, answered_at=at)
            else:
                requests[rid] = replace(r, status="taken")
                taken.append(requests[rid])
        return taken

    def answer_request(self, request_id: int, *, accepted: bool, reason: str, now: float) -> bool:
        rid = check_id(request_id, _PATH)
        text = check_key(reason, "request reason", _PATH)
        at = check_time(now, "now", _PATH)
        requests = self._live().requests
        r = self._request_row(requests, rid)
        if r.status != "taken":
            return False
        status: RequestStatus = "accepted" if accepted else "refused"
        requests[rid] = replace(r, status=status, reason=text, answered_at=at)
        return True

    def withdraw_request(self, request_id: int, now: float) -> bool:
        rid = check_id(request_id, _PATH)
        at = check_time(now, "now", _PATH)
        requests = self._live().requests
        r = self._request_row(requests, rid)
        if r.status != "pending":
            return False
        requests[rid] = replace(r, status="withdrawn", reason=WITHDRAWN_REASON, answered_at=at)
        return True

    def request(self, request_id: int) -> Request | None:
        rid = check_id(request_id, _PATH)
        return self._live().requests.get(rid)

    @staticmethod
    def _request_row(requests: dict[int, Request], rid: int) -> Request:
        try:
            return requests[rid]
        except KeyError:
            raise unknown_request(rid, _PATH) from None

    # -- transactions and lifecycle ---------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._snapshots.append(self._live().snapshot())
        try:
            yield
        except BaseException:
            saved = self._snapshots.pop()
            if not self._closed:
                self._data = saved
            raise
        self._snapshots.pop()
        if self._closed:
            raise StoreClosedError(
                f"{_PATH}: closed inside a transaction, which was rolled back", path=_PATH
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._snapshots:  # like SQLite: closing rolls back what was not committed
            self._data = self._snapshots[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _live(self) -> _Data:
        if self._closed:
            raise StoreClosedError(f"{_PATH}: the store is closed", path=_PATH)
        return self._data

    @staticmethod
    def _row(outbox: dict[str, _Outbox], key: str) -> _Outbox:
        try:
            return outbox[key]
        except KeyError:
            raise StoreKeyError(
                f"{_PATH}: outbox key {key!r} was never enqueued (or was pruned)", path=_PATH
            ) from None


if TYPE_CHECKING:
    from gateway.store.api import Store

    def _conforms(store: MemoryStore) -> Store:  # mypy proves MemoryStore implements Store
        return store
