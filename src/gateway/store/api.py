"""The store's contract: the :class:`Store` Protocol, its value types and its exception tree.

The store deals in JSON-safe documents keyed by strings, not in core types: the engine converts
its records to and from dicts, so the schema does not have to follow every change of ``core``.
A document is a ``dict`` whose values are ``None``, ``bool``, ``int``, finite ``float``, ``str``,
``list`` or ``dict`` with ``str`` keys, recursively. Anything else (tuples, NaN, bytes, enums that
are not ``int``/``str`` subclasses) is refused with :class:`StoreDataError` rather than silently
changed, so that what is read back always equals what was written.

Exception tree (foreign ``sqlite3``/``OSError`` exceptions never leave the store)::

    StoreError                      every failure; ``.path`` names the file
    ├── StoreNotFoundError          the file is missing and ``create=False``
    ├── StoreVersionError           the file's schema is newer than this code
    ├── StoreCorruptError           not a database, truncated, damaged pages
    │   └── StoreForeignError       a valid file, but not a gateway store
    ├── StoreIntegrityError         a constraint refused the write (audit is append-only)
    ├── StoreDataError (ValueError) a document or argument that is not storable
    ├── StoreKeyError (LookupError) an outbox key never enqueued, a request id never added
    └── StoreUnavailableError       busy, disk full, I/O error, read-only, permissions
        └── StoreClosedError        used after close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, Self, TypeAlias

from gateway.core.ports import StorageError

# A JSON object as Python sees it; the precise recursive type would not help callers, who build
# these from core records anyway.
JsonDoc: TypeAlias = dict[str, Any]

__all__ = [
    "FAULT_RESET",
    "AuditEntry",
    "AuditRecord",
    "JsonDoc",
    "OutboxItem",
    "Request",
    "RequestStatus",
    "Store",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreDataError",
    "StoreError",
    "StoreForeignError",
    "StoreIntegrityError",
    "StoreKeyError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoreVersionError",
]


# ---------------------------------------------------------------------------------------------
# Exceptions


class StoreError(StorageError):
    """Base of every store failure. ``path`` is the database file (``":memory:"`` for the twin).

    A :class:`~gateway.core.ports.StorageError`: the north adapters catch that, never importing
    the store."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class StoreNotFoundError(StoreError):
    """The database file does not exist and the caller asked not to create it."""


class StoreVersionError(StoreError):
    """The file was written by a newer gateway; it is left exactly as it was."""

    def __init__(self, message: str, *, path: str, found: int, supported: int) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.supported = supported


class StoreCorruptError(StoreError):
    """The file cannot be trusted (not SQLite, truncated, damaged). It is never overwritten."""


class StoreForeignError(StoreCorruptError):
    """A readable file that is not a gateway store (another application's database, a directory).

    A subclass of :class:`StoreCorruptError` because the answer is the same: refuse to start and
    let an operator decide, never replace the file with an empty state.
    """


class StoreIntegrityError(StoreError):
    """The database refused a write: a constraint or the audit log's append-only triggers."""


class StoreDataError(StoreError, ValueError):
    """A document or argument that cannot be stored faithfully (not JSON-safe, NaN, empty key)."""


class StoreKeyError(StoreError, LookupError):
    """An outbox key that was never enqueued (or was pruned), or a request id never added."""


class StoreUnavailableError(StoreError):
    """The database cannot be used right now: locked, disk full, I/O error, no permission."""


class StoreClosedError(StoreUnavailableError):
    """The store was used after :meth:`Store.close`."""


# ---------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A north report waiting for acknowledgement, as :meth:`Store.pending` returns it."""

    id: int  # increases with enqueue order, never reused
    key: str  # the dedupe key, e.g. "sep2|<mrid>|2"
    doc: JsonDoc
    created_at: float
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One device write and why it was made; ``value`` is any JSON-safe value."""

    at: float
    device: str
    point: str
    value: Any
    reason: str
    outcome: str  # "commanded", "confirmed", "failed: <why>", ...
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An :class:`AuditEntry` as stored, with its id (strictly increasing, no gaps)."""

    id: int
    at: float
    device: str
    point: str
    value: Any
    reason: str
    outcome: str
    correlation_id: str | None = None

    @property
    def entry(self) -> AuditEntry:
        return AuditEntry(
            at=self.at,
            device=self.device,
            point=self.point,
            value=self.value,
            reason=self.reason,
            outcome=self.outcome,
            correlation_id=self.correlation_id,
        )


# A local request's life: ``pending`` (added by a local command, e.g. ``gateway fault-reset``)
# -> ``taken`` (by the running gateway, before it acts) -> ``accepted`` | ``refused`` (its
# answer, with the reason). A pending request may instead be ``withdrawn`` (by whoever asked,
# when it stops waiting) or ``expired`` (taken after its ``expires_at``: never acted on).
RequestStatus = Literal["pending", "taken", "accepted", "refused", "withdrawn", "expired"]
REQUEST_STATUSES: Final[tuple[RequestStatus, ...]] = (
    "pending",
    "taken",
    "accepted",
    "refused",
    "withdrawn",
    "expired",
)
ANSWERED: Final = frozenset({"accepted", "refused", "withdrawn", "expired"})
#: The kind of request that asks the gateway to leave FAULT (``gateway fault-reset``, the API).
FAULT_RESET: Final = "fault_reset"


@dataclass(frozen=True, slots=True)
class Request:
    """A request from a local command to the running gateway, and what became of it.

    Times are the asker's and the answerer's wall clocks (seconds since the epoch), not the
    engine's time base: both processes run on the same machine.
    """

    id: int  # increases with the order requests were added, never reused
    kind: str  # "fault_reset"
    by: str  # who asked (a person's name or role, as they gave it)
    at: float  # when it was asked
    expires_at: float | None  # a request still pending then is never acted on
    status: RequestStatus
    reason: str | None = None  # why it was accepted, refused or not acted on
    answered_at: float | None = None

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED


# ---------------------------------------------------------------------------------------------
# The Protocol


class Store(Protocol):
    """Persistence for the schedule, small state documents, the north outbox and the audit log.

    Every method is atomic on its own. Inside :meth:`transaction` the calls join one transaction
    that commits when the block exits normally and rolls back entirely when it raises.
    Single-threaded: use it from the event-loop thread only, and do not ``await`` inside a
    transaction (another task's writes would join it).
    """

    # -- schedule ---------------------------------------------------------------------------
    def put_events(self, docs: Mapping[str, JsonDoc]) -> None:
        """Insert or replace event records keyed by event id (mRID)."""
        ...

    def delete_events(self, event_ids: Iterable[str]) -> int:
        """Remove event records; unknown ids are ignored. Returns how many were removed."""
        ...

    def events(self) -> dict[str, JsonDoc]:
        """All event records, by event id in ascending order."""
        ...

    def put_state(self, key: str, doc: JsonDoc) -> None:
        """Insert or replace one state document (island state, schedule defaults, ...)."""
        ...

    def get_state(self, key: str) -> JsonDoc | None: ...

    def delete_state(self, key: str) -> bool:
        """Remove a state document. Returns whether it existed."""
        ...

    # -- outbox -----------------------------------------------------------------------------
    def enqueue(self, key: str, doc: JsonDoc, now: float) -> bool:
        """Queue a report once. Returns False, changing nothing, if ``key`` was ever enqueued
        (pending or acknowledged, until :meth:`prune_acked` forgets it)."""
        ...

    def pending(self, limit: int | None = None) -> list[OutboxItem]:
        """Unacknowledged items, oldest first."""
        ...

    def mark_attempt(self, key: str, now: float, error: str | None = None) -> None:
        """Count a delivery attempt; ``error`` becomes ``last_error`` (None clears it).

        Raises :class:`StoreKeyError` for a key that was never enqueued.
        """
        ...

    def ack(self, key: str, now: float) -> bool:
        """Mark delivered. Idempotent: returns True only on the call that acknowledged it.

        Raises :class:`StoreKeyError` for a key that was never enqueued.
        """
        ...

    def prune_acked(self, older_than: float) -> int:
        """Delete items acknowledged before ``older_than``; returns how many.

        A pruned key is forgotten, so it could be enqueued again: prune only keys that cannot
        recur (reports of events that are long over).
        """
        ...

    # -- audit ------------------------------------------------------------------------------
    def append_audit(self, entry: AuditEntry) -> int:
        """Append one entry; returns its id."""
        ...

    def audit(self, since_id: int = 0, limit: int | None = None) -> list[AuditRecord]:
        """Entries with ``id > since_id`` in id order."""
        ...

    # -- local requests ---------------------------------------------------------------------
    def add_request(self, kind: str, by: str, at: float, expires_at: float | None = None) -> int:
        """Queue a request for the running gateway (status ``pending``); returns its id."""
        ...

    def take_requests(self, now: float) -> list[Request]:
        """Take every pending request, oldest first: each becomes ``taken`` and is returned,
        except those whose ``expires_at`` is at or before ``now``, which become ``expired``
        and are not returned. Atomic: two takers never get the same request."""
        ...

    def answer_request(self, request_id: int, *, accepted: bool, reason: str, now: float) -> bool:
        """Record a taken request's answer (``accepted`` or ``refused``, with the reason).
        Returns False, changing nothing, if it is not ``taken`` (already answered, withdrawn,
        or never taken). Raises :class:`StoreKeyError` for an id never added."""
        ...

    def withdraw_request(self, request_id: int, now: float) -> bool:
        """Withdraw a request that is still ``pending``: it will never be acted on. Returns
        False, changing nothing, if it was already taken or answered. Raises
        :class:`StoreKeyError` for an id never added."""
        ...

    def request(self, request_id: int) -> Request | None:
        """One request as it stands, or None for an id never added."""
        ...

    # -- lifecycle --------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing block; nests (an inner block that raises undoes only itself)."""
        ...

    def close(self) -> None:
        """Release the database. Idempotent; an open transaction is rolled back."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
