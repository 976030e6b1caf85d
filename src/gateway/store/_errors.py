"""Mapping of ``sqlite3`` exceptions to the store's own tree, always naming the file."""

from __future__ import annotations

import sqlite3
from typing import Final

from gateway.store.api import (
    StoreCorruptError,
    StoreDataError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailableError,
)

# Primary result codes (https://sqlite.org/rescode.html); extended codes keep these in the low
# byte, e.g. SQLITE_CONSTRAINT_TRIGGER = 1811 = 19 | 7 << 8.
_CORRUPT: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_INTEGRITY: Final = frozenset({19})  # SQLITE_CONSTRAINT, incl. RAISE(ABORT) in our triggers
_DATA: Final = frozenset({18, 20, 25})  # SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE
_UNAVAILABLE: Final = frozenset(
    # PERM, BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL, NOLFS, AUTH
    {3, 5, 6, 7, 8, 9, 10, 13, 14, 15, 22, 23}
)


def corrupt_message(path: str, what: str) -> str:
    return (
        f"{path} is not a usable gateway store: {what}. Refusing to start rather than run with "
        "an empty schedule, outbox and audit log; the file was left as it is. Move it aside and "
        "restore a backup (or remove it to start from an empty state, losing its contents)"
    )


def map_sqlite_error(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    """The store exception for ``exc``, raised while ``doing`` (e.g. "enqueue 'k'")."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    name: str | None = getattr(exc, "sqlite_errorname", None)
    detail = f"{exc} ({name})" if name else str(exc) or type(exc).__name__
    primary = code & 0xFF if code is not None else None
    if primary in _CORRUPT:
        what = f"SQLite reported damage while trying to {doing}: {detail}"
        return StoreCorruptError(corrupt_message(path, what), path=path)
    message = f"{path}: {doing} failed: {detail}"
    if primary in _INTEGRITY:
        return StoreIntegrityError(message, path=path)
    if primary in _DATA:
        return StoreDataError(message, path=path)
    if primary in _UNAVAILABLE:
        return StoreUnavailableError(message, path=path)
    return StoreError(message, path=path)
