"""The SQLite implementation of :class:`~gateway.store.api.Store` (stdlib ``sqlite3``, no ORM).

Opening is the dangerous moment for a persistence layer: a wrong path, a newer file or a damaged
one must never turn into "start with an empty schedule" and then be overwritten. So:

1. A missing file is created in a side file (``<name>.creating``), migrated, closed and then
   hard-linked into place: the real path either does not exist or holds a complete store, and a
   crash during creation leaves nothing half-made at that path.
2. An existing file is inspected read-only before anything may write to it: the SQLite magic,
   the application id, the schema version and ``PRAGMA quick_check``. Anything wrong raises and
   leaves the file's bytes as they were.
3. Only then is it opened read-write, switched to WAL and migrated step by step.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

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
from gateway.store._errors import corrupt_message, map_sqlite_error
from gateway.store.api import (
    AuditEntry,
    AuditRecord,
    JsonDoc,
    OutboxItem,
    Request,
    StoreClosedError,
    StoreCorruptError,
    StoreForeignError,
    StoreKeyError,
    StoreNotFoundError,
    StoreUnavailableError,
)
from gateway.store.migrations import APPLICATION_ID, LATEST_VERSION, migrate, version_error

__all__ = ["SqliteStore"]

_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_SIZE: Final = 100
_CREATING_SUFFIX: Final = ".creating"
# How many quick_check complaints to quote in the error; the rest only lengthen the log line.
_MAX_PROBLEMS: Final = 5


class SqliteStore:
    """A :class:`~gateway.store.api.Store` in one SQLite file, with one connection.

    ``create=False`` makes a missing file an error (:class:`StoreNotFoundError`) for a runtime
    that must not start from an empty state. ``busy_timeout_s`` bounds how long a write waits
    for a lock held by another process (a backup tool, the CLI).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, busy_timeout_s: float = 5.0
    ) -> None:
        self._path = os.path.abspath(os.fspath(path))
        self._depth = 0  # nesting of transaction(); 0 = autocommit
        self._closed = False
        self._conn = _open(self._path, create=create, timeout=busy_timeout_s)

    @property
    def path(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r}{', closed' if self._closed else ''})"

    # -- schedule ---------------------------------------------------------------------------
    def put_events(self, docs: Mapping[str, JsonDoc]) -> None:
        rows = prepare_events(docs, self._path)
        if not rows:
            self._live()  # a closed store refuses even an empty batch, like the twin
            return
        with self.transaction():
            self._executemany(
                "put events",
                "INSERT INTO event (mrid, doc) VALUES (?, ?) "
                "ON CONFLICT (mrid) DO UPDATE SET doc = excluded.doc",
                rows,
            )

    def delete_events(self, event_ids: Iterable[str]) -> int:
        keys = [(check_key(k, "event id", self._path),) for k in event_ids]
        if not keys:
            self._live()
            return 0
        with self.transaction():
            return self._executemany("delete events", "DELETE FROM event WHERE mrid = ?", keys)

    def events(self) -> dict[str, JsonDoc]:
        rows = self._fetch("read events", "SELECT mrid, doc FROM event ORDER BY mrid")
        return {mrid: decode_doc(doc, self._path) for mrid, doc in rows}

    def put_state(self, key: str, doc: JsonDoc) -> None:
        key = check_key(key, "state key", self._path)
        text = encode_doc(doc, f"state {key!r}", self._path)
        self._execute(
            f"put state {key!r}",
            "INSERT INTO state (key, doc) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET doc = excluded.doc",
            (key, text),
        )

    def get_state(self, key: str) -> JsonDoc | None:
        key = check_key(key, "state key", self._path)
        rows = self._fetch(f"get state {key!r}", "SELECT doc FROM state WHERE key = ?", (key,))
        return decode_doc(rows[0][0], self._path) if rows else None

    def delete_state(self, key: str) -> bool:
        key = check_key(key, "state key", self._path)
        return self._execute(f"delete state {key!r}", "DELETE FROM state WHERE key = ?", (key,)) > 0

    # -- outbox -----------------------------------------------------------------------------
    def enqueue(self, key: str, doc: JsonDoc, now: float) -> bool:
        key = check_key(key, "outbox key", self._path)
        text = encode_doc(doc, f"outbox {key!r}", self._path)
        at = check_time(now, "now", self._path)
        # One statement, so the check and the insert cannot be separated; the UNIQUE index
        # backs it up. Not ON CONFLICT DO NOTHING: that burns an AUTOINCREMENT id per refusal.
        inserted = self._execute(
            f"enqueue {key!r}",
            "INSERT INTO outbox (key, doc, created_at) SELECT ?, ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE key = ?)",
            (key, text, at, key),
        )
        return inserted == 1

    def pending(self, limit: int | None = None) -> list[OutboxItem]:
        n = check_limit(limit, "limit", self._path)
        rows = self._fetch(
            "read pending outbox",
            "SELECT id, key, doc, created_at, attempts, last_error, last_attempt_at FROM outbox "
            "WHERE acked_at IS NULL ORDER BY id LIMIT ?",
            (-1 if n is None else n,),
        )
        return [
            OutboxItem(
                id=row[0],
                key=row[1],
                doc=decode_doc(row[2], self._path),
                created_at=row[3],
                attempts=row[4],
                last_error=row[5],
                last_attempt_at=row[6],
            )
            for row in rows
        ]

    def mark_attempt(self, key: str, now: float, error: str | None = None) -> None:
        key = check_key(key, "outbox key", self._path)
        at = check_time(now, "now", self._path)
        if error is not None:
            check_text(error, "error", self._path)
        changed = self._execute(
            f"mark attempt {key!r}",
            "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, last_error = ? "
            "WHERE key = ?",
            (at, error, key),
        )
        if changed == 0:
            raise self._unknown(key)

    def ack(self, key: str, now: float) -> bool:
        key = check_key(key, "outbox key", self._path)
        at = check_time(now, "now", self._path)
        with self.transaction():
            changed = self._execute(
                f"ack {key!r}",
                "UPDATE outbox SET acked_at = ? WHERE key = ? AND acked_at IS NULL",
                (at, key),
            )
            if changed:
                return True
            if self._fetch(f"ack {key!r}", "SELECT 1 FROM outbox WHERE key = ?", (key,)):
                return False
            raise self._unknown(key)

    def prune_acked(self, older_than: float) -> int:
        before = check_time(older_than, "older_than", self._path)
        return self._execute(
            "prune acknowledged outbox items",
            "DELETE FROM outbox WHERE acked_at IS NOT NULL AND acked_at < ?",
            (before,),
        )

    # -- audit ------------------------------------------------------------------------------
    def append_audit(self, entry: AuditEntry) -> int:
        row = prepare_audit(entry, self._path)
        cur = self._cursor(
            "append audit entry",
            "INSERT INTO audit (at, device, point, value, reason, outcome, correlation_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(cur.lastrowid or 0)

    def audit(self, since_id: int = 0, limit: int | None = None) -> list[AuditRecord]:
        since = check_since(since_id, self._path)
        n = check_limit(limit, "limit", self._path)
        rows = self._fetch(
            "read audit log",
            "SELECT id, at, device, point, value, reason, outcome, correlation_id FROM audit "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (since, -1 if n is None else n),
        )
        return [
            AuditRecord(
                id=row[0],
                at=row[1],
                device=row[2],
                point=row[3],
                value=decode_value(row[4], self._path),
                reason=row[5],
                outcome=row[6],
                correlation_id=row[7],
            )
            for row in rows
        ]

    # -- local requests ---------------------------------------------------------------------
    def add_request(self, kind: str, by: str, at: float, expires_at: float | None = None) -> int:
        row = prepare_request(kind, by, at, expires_at, self._path)
        cur = self._cursor(
            "add a request",
            "INSERT INTO request (kind, asked_by, asked_at, expires_at) VALUES (?, ?, ?, ?)",
            row,
        )
        return int(cur.lastrowid or 0)

    def take_requests(self, now: float) -> list[Request]:
        at = check_time(now, "now", self._path)
        # Called every control cycle: with nothing pending (nearly always) a read on the partial
        # index, without taking the write lock or committing.
        if not self._fetch(
            "look for requests", "SELECT 1 FROM request WHERE status = 'pending' LIMIT 1"
        ):
            return []
        with self.transaction():  # BEGIN IMMEDIATE: no other taker between the read and the mark
            self._execute(
                "expire requests",
                "UPDATE request SET status = 'expired', answered_at = ?, reason = ? "
                "WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?",
                (at, EXPIRED_REASON, at),
            )
            rows = self._fetch(
                "take requests",
                "SELECT id, kind, asked_by, asked_at, expires_at, status, reason, answered_at "
                "FROM request WHERE status = 'pending' ORDER BY id",
            )
            self._execute(
                "take requests", "UPDATE request SET status = 'taken' WHERE status = 'pending'"
            )
        return [replace(_request(row), status="taken") for row in rows]

    def answer_request(self, request_id: int, *, accepted: bool, reason: str, now: float) -> bool:
        rid = check_id(request_id, self._path)
        text = check_key(reason, "request reason", self._path)
        at = check_time(now, "now", self._path)
        with self.transaction():
            changed = self._execute(
                f"answer request {rid}",
                "UPDATE request SET status = ?, reason = ?, answered_at = ? "
                "WHERE id = ? AND status = 'taken'",
                ("accepted" if accepted else "refused", text, at, rid),
            )
            return bool(changed) or self._known_request(rid)

    def withdraw_request(self, request_id: int, now: float) -> bool:
        rid = check_id(request_id, self._path)
        at = check_time(now, "now", self._path)
        with self.transaction():
            changed = self._execute(
                f"withdraw request {rid}",
                "UPDATE request SET status = 'withdrawn', answered_at = ?, reason = ? "
                "WHERE id = ? AND status = 'pending'",
                (at, WITHDRAWN_REASON, rid),
            )
            return bool(changed) or self._known_request(rid)

    def request(self, request_id: int) -> Request | None:
        rid = check_id(request_id, self._path)
        rows = self._fetch(
            f"read request {rid}",
            "SELECT id, kind, asked_by, asked_at, expires_at, status, reason, answered_at "
            "FROM request WHERE id = ?",
            (rid,),
        )
        return _request(rows[0]) if rows else None

    def _known_request(self, rid: int) -> bool:
        """False for a request that exists (nothing changed); raises for one never added."""
        if self._fetch(f"read request {rid}", "SELECT 1 FROM request WHERE id = ?", (rid,)):
            return False
        raise unknown_request(rid, self._path)

    # -- maintenance ------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one SQL statement and return its rows: for diagnostics and maintenance tools.

        Not part of :class:`Store`. Errors are mapped like every other call, so the audit log's
        append-only triggers surface as :class:`StoreIntegrityError`. Documents written this
        way bypass the JSON-safety checks (the schema still requires valid JSON objects).
        """
        return self._fetch("execute SQL", sql, params)

    # -- transactions and lifecycle ---------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing block. Nested blocks are savepoints: an inner block that raises is
        undone alone, and the outer one may carry on."""
        level = self._depth
        self._execute(
            "begin a transaction", "BEGIN IMMEDIATE" if level == 0 else f"SAVEPOINT sp{level}"
        )
        self._depth = level + 1
        try:
            yield
        except BaseException as exc:
            self._depth = level
            self._undo(level, exc)
            raise
        self._depth = level
        self._finish(level)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._depth = 0
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.close()
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, self._path, "close") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _live(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"{self._path}: the store is closed", path=self._path)
        if self._depth and not self._conn.in_transaction:
            # SQLite rolls the whole transaction back by itself after some errors (disk full,
            # I/O error). Carrying on would autocommit the rest of the batch piecemeal.
            raise StoreUnavailableError(
                f"{self._path}: the transaction was rolled back by SQLite after an earlier error",
                path=self._path,
            )
        return self._conn

    def _cursor(self, doing: str, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        conn = self._live()
        try:
            return conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, self._path, doing) from exc

    def _execute(self, doing: str, sql: str, params: Sequence[Any] = ()) -> int:
        return self._cursor(doing, sql, params).rowcount

    def _executemany(self, doing: str, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        conn = self._live()
        try:
            return conn.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, self._path, doing) from exc

    def _fetch(self, doing: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._live()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, self._path, doing) from exc

    def _finish(self, level: int) -> None:
        if self._closed:
            raise StoreClosedError(
                f"{self._path}: closed inside a transaction, which was rolled back",
                path=self._path,
            )
        if not self._conn.in_transaction:
            raise StoreUnavailableError(
                f"{self._path}: the transaction was rolled back by SQLite after an earlier error",
                path=self._path,
            )
        sql = "COMMIT" if level == 0 else f"RELEASE sp{level}"
        try:
            self._conn.execute(sql)
        except sqlite3.Error as exc:
            error = map_sqlite_error(exc, self._path, "commit")
            self._undo(level, error)
            raise error from exc

    def _undo(self, level: int, exc: BaseException) -> None:
        if self._closed or not self._conn.in_transaction:
            return  # nothing left to undo: closed, or SQLite already rolled everything back
        try:
            if level == 0:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO sp{level}")
                self._conn.execute(f"RELEASE sp{level}")
        except sqlite3.Error as undo_exc:
            exc.add_note(f"{self._path}: rollback failed too: {undo_exc}")

    def _unknown(self, key: str) -> StoreKeyError:
        return StoreKeyError(
            f"{self._path}: outbox key {key!r} was never enqueued (or was pruned)", path=self._path
        )


# ---------------------------------------------------------------------------------------------
# Opening


def _open(path: str, *, create: bool, timeout: float) -> sqlite3.Connection:
    if not _exists(path):
        if not create:
            raise StoreNotFoundError(
                f"{path} does not exist and creating it was not allowed; restore the state file "
                "or allow creation to start from an empty state",
                path=path,
            )
        _check_orphans(path)
        _create(path, timeout)
    _inspect(path, timeout)
    conn = _connect(path, path, timeout)
    try:
        _configure(conn, path)
        migrate(conn, path=path)
    except BaseException:
        conn.close()
        raise
    return conn


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _os_error(path, "look for the file", exc) from exc
    return True


def _os_error(path: str, doing: str, exc: OSError) -> StoreUnavailableError:
    return StoreUnavailableError(f"{path}: cannot {doing}: {exc}", path=path)


def _connect(target: str, path: str, timeout: float) -> sqlite3.Connection:
    try:
        return sqlite3.connect(target, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, path, "open the database") from exc


def _connect_read_only(path: str, timeout: float) -> sqlite3.Connection:
    # mode=ro: not even a hot-journal rollback or a WAL checkpoint may write the file. Without
    # a WAL file everything is in the main file, and immutable=1 then also keeps SQLite from
    # creating -wal/-shm files next to a file we may be about to refuse.
    # (A hot rollback journal must not be ignored either, so immutable only without both.)
    sidecar = os.path.exists(f"{path}-wal") or os.path.exists(f"{path}-journal")
    query = "mode=ro" if sidecar else "mode=ro&immutable=1"
    try:
        return sqlite3.connect(
            f"{Path(path).as_uri()}?{query}", uri=True, timeout=timeout, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, path, "open the database") from exc


def _configure(conn: sqlite3.Connection, path: str) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        # FULL, not WAL's usual NORMAL: NORMAL may lose the last commits on a power cut, and a
        # commit here can be an acknowledged safety step (island entered, export limited) that
        # must still be known after the reboot. An fsync per commit is cheap at our write rate.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, path, "configure the connection") from exc
    if str(mode).lower() != "wal":
        raise StoreUnavailableError(
            f"{path}: cannot use WAL journal mode (got {mode!r}); keep the store on a local "
            "file system",
            path=path,
        )


def _sidecars(path: str) -> tuple[str, str, str]:
    return (f"{path}-wal", f"{path}-shm", f"{path}-journal")


def _check_orphans(path: str) -> None:
    """Before creating ``path``: a non-empty WAL or journal left without its database holds
    someone's transactions (the database was deleted or moved); SQLite would replay it into the
    new file. Refuse. Empty ones and a stale shared-memory file carry nothing: remove them."""
    wal, shm, journal = _sidecars(path)
    for leftover in (wal, journal):
        try:
            size = os.stat(leftover).st_size
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _os_error(path, f"inspect {leftover}", exc) from exc
        if size > 0:
            raise StoreCorruptError(
                corrupt_message(path, f"the database file is missing but {leftover} is not"),
                path=path,
            )
    _remove(path, wal, shm, journal)


def _remove(path: str, *names: str) -> None:
    for name in names:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(path, f"remove {name}", exc) from exc


def _create(path: str, timeout: float) -> None:
    tmp = path + _CREATING_SUFFIX
    # A leftover side file is from a creation that crashed; it never held user data.
    _remove(path, tmp, *_sidecars(tmp))
    conn = _connect(tmp, path, timeout)
    try:
        _configure(conn, path)
        migrate(conn, path=path)
    finally:
        conn.close()  # the last close checkpoints the WAL into the file and deletes it
    try:
        if os.path.exists(f"{tmp}-wal"):
            raise StoreUnavailableError(f"{path}: could not checkpoint the new database", path=path)
        _fsync(tmp)
        try:
            # link, unlike rename, never replaces: if a file appeared meanwhile it is kept and
            # inspected like any other existing file.
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            if not os.path.exists(path):  # a file system without hard links
                os.rename(tmp, path)
        _remove(path, tmp)
        _fsync(os.path.dirname(path))  # make the new directory entry itself durable
    except OSError as exc:
        raise _os_error(path, "create the database", exc) from exc


def _fsync(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inspect(path: str, timeout: float) -> None:
    """Refuse, without writing, anything that is not a healthy gateway store we understand."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise StoreForeignError(corrupt_message(path, "it is not a regular file"), path=path)
        with open(path, "rb") as f:
            header = f.read(_HEADER_SIZE)
    except OSError as exc:
        raise _os_error(path, "read the file", exc) from exc
    if not header:
        raise StoreCorruptError(corrupt_message(path, "the file is empty (0 bytes)"), path=path)
    if not header.startswith(_MAGIC):
        raise StoreCorruptError(
            corrupt_message(path, "it is not a SQLite database (wrong header)"), path=path
        )
    if len(header) < _HEADER_SIZE:
        raise StoreCorruptError(
            corrupt_message(path, f"it is truncated ({len(header)} bytes)"), path=path
        )
    conn = _connect_read_only(path, timeout)
    try:
        doing = "read the schema version"
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StoreForeignError(
                corrupt_message(
                    path,
                    f"it is a SQLite database but not a gateway store (application_id "
                    f"{app_id:#x}, expected {APPLICATION_ID:#x})",
                ),
                path=path,
            )
        if version > LATEST_VERSION:
            raise version_error(path, version, LATEST_VERSION)
        doing = "check integrity"
        rows = conn.execute(f"PRAGMA quick_check({_MAX_PROBLEMS})").fetchall()
    except sqlite3.Error as exc:
        raise map_sqlite_error(exc, path, doing) from exc
    finally:
        conn.close()
    if rows != [("ok",)]:
        problems = [
            line
            for (text,) in rows
            for line in str(text).splitlines()
            if line and not line.startswith("***")  # "*** in database main ***" headings
        ]
        raise StoreCorruptError(
            corrupt_message(path, "the integrity check failed: " + "; ".join(problems)), path=path
        )


def _request(row: Sequence[Any]) -> Request:
    return Request(
        id=row[0],
        kind=row[1],
        by=row[2],
        at=row[3],
        expires_at=row[4],
        status=row[5],
        reason=row[6],
        answered_at=row[7],
    )


if TYPE_CHECKING:
    from gateway.store.api import Store

    def _conforms(store: SqliteStore) -> Store:  # mypy proves SqliteStore implements Store
        return store
