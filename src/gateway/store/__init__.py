"""Persistence: the schedule, small state documents, the north outbox, the audit log and the
local requests queue (a local command asking the running gateway, e.g. for a fault reset).

:class:`Store` is the contract; :class:`SqliteStore` keeps it in one SQLite file and
:class:`MemoryStore` is its in-memory twin for tests of other layers. The store deals in
JSON-safe ``dict`` documents keyed by strings; converting core records is the engine's job.
"""

from gateway.store.api import (
    AuditEntry,
    AuditRecord,
    JsonDoc,
    OutboxItem,
    Request,
    Store,
    StoreClosedError,
    StoreCorruptError,
    StoreDataError,
    StoreError,
    StoreForeignError,
    StoreIntegrityError,
    StoreKeyError,
    StoreNotFoundError,
    StoreUnavailableError,
    StoreVersionError,
)
from gateway.store.memory import MemoryStore
from gateway.store.migrations import LATEST_VERSION
from gateway.store.sqlite import SqliteStore

__all__ = [
    "LATEST_VERSION",
    "AuditEntry",
    "AuditRecord",
    "JsonDoc",
    "MemoryStore",
    "OutboxItem",
    "Request",
    "SqliteStore",
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
