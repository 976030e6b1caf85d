"""Versioned schema migrations, tracked in ``PRAGMA user_version``.

Step *n* takes a database from version *n - 1* to *n*. Each step runs in its own
``BEGIN IMMEDIATE`` transaction together with the ``user_version`` bump (SQLite's DDL and header
pragmas are transactional), so a crash or an error leaves the file at the previous version, never
half-migrated. Steps are append-only history: never edit a shipped step, add the next one.

A database newer than :data:`LATEST_VERSION` is refused with :class:`StoreVersionError` and not
touched: a downgrade could silently drop what the newer gateway relies on.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from gateway.store._errors import map_sqlite_error
from gateway.store.api import StoreDataError, StoreVersionError

# PRAGMA application_id ("V2HG"): tells our files from any other SQLite database, so that a
# wrong path is refused instead of being "migrated" into.
APPLICATION_ID: Final = 0x56324847

_OBJECT = "json_valid({0}) AND json_type({0}) = 'object'"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: SQL statements and/or a callable, run inside the step's transaction.

    Statements are a tuple, not a script, because ``executescript`` commits on its own and would
    break the one-transaction-per-step rule.
    """

    version: int
    description: str
    statements: tuple[str, ...] = ()
    # For steps that SQL alone cannot express (rewriting documents); must not commit.
    function: Callable[[sqlite3.Connection], None] | None = None


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "schedule, state, outbox and append-only audit log",
        (
            f"""CREATE TABLE event (
                mrid TEXT PRIMARY KEY NOT NULL,
                doc TEXT NOT NULL CHECK ({_OBJECT.format("doc")})
            ) WITHOUT ROWID""",
            f"""CREATE TABLE state (
                key TEXT PRIMARY KEY NOT NULL,
                doc TEXT NOT NULL CHECK ({_OBJECT.format("doc")})
            ) WITHOUT ROWID""",
            # AUTOINCREMENT: ids are never reused, even after prune_acked removed the newest row.
            f"""CREATE TABLE outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL UNIQUE,
                doc TEXT NOT NULL CHECK ({_OBJECT.format("doc")}),
                created_at REAL NOT NULL,
                acked_at REAL
            )""",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                device TEXT NOT NULL,
                point TEXT NOT NULL,
                value TEXT NOT NULL CHECK (json_valid(value)),
                reason TEXT NOT NULL,
                outcome TEXT NOT NULL,
                correlation_id TEXT
            )""",
            # Append-only is enforced by the database, not by the absence of a method: a
            # maintenance script or a future bug cannot rewrite why a device was commanded.
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused'); END""",
            f"PRAGMA application_id = {APPLICATION_ID}",
        ),
    ),
    Migration(
        2,
        "outbox delivery attempts; partial indexes for pending and pruning",
        (
            "ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE outbox ADD COLUMN last_error TEXT",
            "ALTER TABLE outbox ADD COLUMN last_attempt_at REAL",
            "CREATE INDEX outbox_pending ON outbox (id) WHERE acked_at IS NULL",
            "CREATE INDEX outbox_acked ON outbox (acked_at) WHERE acked_at IS NOT NULL",
        ),
    ),
    Migration(
        3,
        "local requests to the running gateway (gateway fault-reset)",
        (
            """CREATE TABLE request (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL CHECK (kind <> ''),
                asked_by TEXT NOT NULL CHECK (asked_by <> ''),
                asked_at REAL NOT NULL,
                expires_at REAL,
                status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'taken', 'accepted', 'refused', 'withdrawn', 'expired')),
                reason TEXT,
                answered_at REAL
            )""",
            "CREATE INDEX request_pending ON request (id) WHERE status = 'pending'",
        ),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1].version


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions must be exactly 1, 2, ..., n: a gap or a duplicate would skip or repeat a step."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreDataError(
            f"migration versions must be 1..n in order, got {versions}", path="<migrations>"
        )


def version_error(path: str, found: int, supported: int) -> StoreVersionError:
    return StoreVersionError(
        f"{path} has schema version {found} but this gateway understands up to {supported}; "
        "refusing to start (upgrade the gateway or restore a backup)",
        path=path,
        found=found,
        supported=supported,
    )


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back without masking the exception that is already propagating."""
    if conn.in_transaction:
        # If even this fails, SQLite rolls back on its own when the connection closes.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection,
    *,
    path: str,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply the missing steps up to ``target`` (default: the last one); return their versions.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that the transactions here
    are the only ones. ``path`` is only used in error messages.
    """
    check_sequence(migrations)
    latest = len(migrations)
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise StoreDataError(f"target version {goal} is not in 0..{latest}", path=path)
    if conn.isolation_level is not None:
        raise StoreDataError("migrate() needs a connection with isolation_level=None", path=path)
    applied: list[int] = []
    while True:
        doing = "read the schema version"
        try:
            # IMMEDIATE takes the write lock before reading the version, so two processes
            # opening the same file cannot both apply the same step.
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = user_version(conn)
                if current > latest:
                    raise version_error(path, current, latest)
                if current >= goal:
                    conn.execute("ROLLBACK")
                    return applied
                step = migrations[current]
                doing = f"migrate to schema version {step.version} ({step.description})"
                for statement in step.statements:
                    conn.execute(statement)
                if step.function is not None:
                    step.function(conn)
                conn.execute(f"PRAGMA user_version = {step.version:d}")
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, path, doing) from exc
        applied.append(step.version)
