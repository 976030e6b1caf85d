"""SqliteStore on real files: durability settings, append-only triggers, migrations, and the
refusal to open anything it should not (newer, corrupt, foreign) without touching it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gateway.store import (
    LATEST_VERSION,
    AuditEntry,
    SqliteStore,
    StoreCorruptError,
    StoreError,
    StoreForeignError,
    StoreIntegrityError,
    StoreNotFoundError,
    StoreUnavailableError,
    StoreVersionError,
)
from gateway.store.migrations import (
    APPLICATION_ID,
    MIGRATIONS,
    Migration,
    check_sequence,
    migrate,
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db) as s:
        yield s


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _fill(s: SqliteStore, n: int = 3) -> None:
    for i in range(n):
        with s.transaction():
            s.put_events({f"ev{i}": {"i": i, "pad": "x" * 2000}})
            s.put_state("island", {"i": i})
            s.enqueue(f"k{i}", {"i": i}, float(i))
            s.append_audit(AuditEntry(float(i), "relay", "position", "open", "outage", "commanded"))


def _fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    """Bytes, mtime and the directory listing: refusing must not even leave -wal/-shm files."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


# ---------------------------------------------------------------------------------------------
# A fresh file


def test_fresh_file_settings(store: SqliteStore, db: Path) -> None:
    assert store.path == str(db)
    assert store.execute("PRAGMA journal_mode") == [("wal",)]
    assert store.execute("PRAGMA synchronous") == [(2,)]  # FULL
    assert store.execute("PRAGMA foreign_keys") == [(1,)]
    assert store.execute("PRAGMA user_version") == [(LATEST_VERSION,)]
    assert store.execute("PRAGMA application_id") == [(APPLICATION_ID,)]
    assert not list(db.parent.glob("*.creating*"))


def test_data_survives_reopen_and_ids_continue(db: Path) -> None:
    with SqliteStore(db) as s:
        _fill(s, 2)
        s.ack("k0", 10.0)
    with SqliteStore(db, create=False) as s:
        assert s.get_state("island") == {"i": 1}
        assert sorted(s.events()) == ["ev0", "ev1"]
        assert [p.key for p in s.pending()] == ["k1"]
        assert s.enqueue("k0", {}, 11.0) is False
        assert s.append_audit(AuditEntry(3.0, "relay", "position", "closed", "r", "confirmed")) == 3


def test_missing_file_with_create_false(db: Path) -> None:
    with pytest.raises(StoreNotFoundError, match=str(db)):
        SqliteStore(db, create=False)
    assert not db.exists()


def test_leftover_from_a_crashed_creation_is_replaced(db: Path) -> None:
    (db.parent / (db.name + ".creating")).write_bytes(b"half-made")
    with SqliteStore(db) as s:
        s.put_state("k", {})
    assert not (db.parent / (db.name + ".creating")).exists()


def test_orphaned_wal_without_its_database_is_refused(db: Path) -> None:
    wal = db.parent / (db.name + "-wal")
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    with pytest.raises(StoreCorruptError, match="-wal"):
        SqliteStore(db)
    assert not db.exists()
    assert wal.read_bytes()[:4] == b"\x37\x7f\x06\x82"


def test_empty_sidecars_of_a_missing_database_are_cleared(db: Path) -> None:
    (db.parent / (db.name + "-wal")).write_bytes(b"")
    (db.parent / (db.name + "-shm")).write_bytes(b"\xff" * 32768)
    with SqliteStore(db) as s:
        s.put_state("k", {"v": 1})
    with SqliteStore(db) as s:
        assert s.get_state("k") == {"v": 1}


# ---------------------------------------------------------------------------------------------
# The audit log is append-only in the database itself


def test_audit_update_and_delete_raise_store_integrity_error(store: SqliteStore) -> None:
    _fill(store, 2)
    with pytest.raises(StoreIntegrityError, match="append-only"):
        store.execute("UPDATE audit SET reason = 'rewritten' WHERE id = 1")
    with pytest.raises(StoreIntegrityError, match="append-only"):
        store.execute("DELETE FROM audit WHERE id = 2")
    with pytest.raises(StoreIntegrityError, match="append-only"):
        store.execute("DELETE FROM audit")
    assert [(r.id, r.reason) for r in store.audit()] == [(1, "outage"), (2, "outage")]


def test_audit_triggers_hold_for_any_client(store: SqliteStore, db: Path) -> None:
    _fill(store, 1)
    with closing(_raw(db)) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE audit SET outcome = 'confirmed'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM audit")


def test_integrity_error_inside_a_transaction_rolls_back_the_batch(store: SqliteStore) -> None:
    def batch() -> None:
        with store.transaction():
            store.put_state("island", {"v": 1})
            store.append_audit(AuditEntry(1.0, "relay", "position", "open", "r", "commanded"))
            store.execute("DELETE FROM audit")

    with pytest.raises(StoreIntegrityError):
        batch()
    assert store.get_state("island") is None
    assert store.audit() == []


# ---------------------------------------------------------------------------------------------
# Errors from SQLite are mapped


def test_locked_database_is_unavailable(db: Path) -> None:
    with SqliteStore(db, busy_timeout_s=0.05) as s, closing(_raw(db)) as other:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailableError, match=str(db)) as err:
            s.put_state("k", {})
        other.execute("ROLLBACK")
        assert isinstance(err.value.__cause__, sqlite3.OperationalError)
        s.put_state("k", {})  # usable again once the lock is gone
        assert s.get_state("k") == {}


def test_sql_errors_are_store_errors(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="no_such_table"):
        store.execute("SELECT * FROM no_such_table")
    with pytest.raises(StoreIntegrityError):
        store.execute("INSERT INTO state (key, doc) VALUES ('k', 'not json')")


def _fill_disk(store: SqliteStore) -> None:
    """Cap the file a couple of pages above its size: the next big write hits SQLITE_FULL."""
    pages = store.execute("PRAGMA page_count")[0][0]
    store.execute(f"PRAGMA max_page_count = {pages + 2}")


_BIG = AuditEntry(1.0, "charger", "setpoint_w", "x" * 50_000, "r", "commanded")


def test_disk_full_rolls_back_the_batch(store: SqliteStore) -> None:
    store.put_state("island", {"v": 0})
    _fill_disk(store)

    def batch() -> None:
        with store.transaction():
            store.put_state("island", {"v": 1})
            store.append_audit(_BIG)

    with pytest.raises(StoreUnavailableError, match="full"):
        batch()
    assert store.get_state("island") == {"v": 0}
    assert store.audit() == []
    store.execute("PRAGMA max_page_count = 1000000")
    store.append_audit(_BIG)  # usable again once there is room
    assert [r.id for r in store.audit()] == [1]


def test_batch_cannot_continue_after_sqlite_rolled_it_back(store: SqliteStore) -> None:
    """SQLite aborts the whole transaction on a full disk. A caller that catches the error and
    carries on must not get the rest of its batch committed piecemeal."""
    _fill_disk(store)
    caught: list[StoreError] = []

    def batch() -> None:
        with store.transaction():
            store.put_state("island", {"v": 1})
            try:
                store.append_audit(_BIG)
            except StoreUnavailableError as exc:
                caught.append(exc)
            store.put_state("after", {"v": 2})

    with pytest.raises(StoreUnavailableError, match="rolled back"):
        batch()
    assert len(caught) == 1
    assert store.get_state("island") is None
    assert store.get_state("after") is None


# ---------------------------------------------------------------------------------------------
# Migrations


def _v1_file(path: Path) -> None:
    """A database as the first release wrote it, with data in every table."""
    with closing(_raw(path)) as raw:
        assert migrate(raw, path=str(path), target=1) == [1]
        raw.execute("INSERT INTO event VALUES ('e1', '{\"start\": 10}')")
        raw.execute("INSERT INTO state VALUES ('island', '{\"state\": \"GRID\"}')")
        raw.execute("INSERT INTO outbox (key, doc, created_at) VALUES ('sep2|e1|1', '{}', 5.0)")
        raw.execute(
            "INSERT INTO outbox (key, doc, created_at, acked_at) VALUES ('sep2|e0|1', '{}', 1, 2)"
        )
        raw.execute(
            "INSERT INTO audit (at, device, point, value, reason, outcome) "
            "VALUES (3.0, 'relay', 'position', '\"open\"', 'outage', 'confirmed')"
        )
        assert raw.execute("PRAGMA user_version").fetchone() == (1,)


def test_v1_file_is_migrated_with_data_intact(db: Path) -> None:
    _v1_file(db)
    with SqliteStore(db, create=False) as s:
        assert s.execute("PRAGMA user_version") == [(LATEST_VERSION,)]
        assert s.events() == {"e1": {"start": 10}}
        assert s.get_state("island") == {"state": "GRID"}
        [item] = s.pending()
        assert (item.id, item.key, item.created_at, item.attempts, item.last_error) == (
            1,
            "sep2|e1|1",
            5.0,
            0,
            None,
        )
        assert s.enqueue("sep2|e0|1", {}, 9.0) is False  # acked before the upgrade: still known
        s.mark_attempt("sep2|e1|1", 6.0, "HTTP 500")
        assert s.pending()[0].attempts == 1
        [rec] = s.audit()
        assert (rec.id, rec.value, rec.outcome) == (1, "open", "confirmed")
        assert s.append_audit(AuditEntry(4.0, "relay", "position", "closed", "r", "x")) == 2
        indexes = {row[0] for row in s.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"outbox_pending", "outbox_acked"} <= indexes


def test_migrate_is_idempotent(db: Path) -> None:
    with closing(_raw(db)) as raw:
        assert migrate(raw, path=str(db)) == list(range(1, LATEST_VERSION + 1))
        assert migrate(raw, path=str(db)) == []


def test_a_failing_step_leaves_the_previous_version(db: Path) -> None:
    def explode(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    steps = (
        *MIGRATIONS[:1],
        Migration(2, "half", ("CREATE TABLE half_done (x)",), explode),
    )
    with closing(_raw(db)) as raw:
        with pytest.raises(StoreError, match="schema version 2"):
            migrate(raw, path=str(db), migrations=steps)
        assert raw.execute("PRAGMA user_version").fetchone() == (1,)
        assert (
            raw.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []
        )
        assert not raw.in_transaction


def test_migration_sequence_is_checked() -> None:
    check_sequence(MIGRATIONS)
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    with pytest.raises(ValueError, match=r"1\.\.n"):
        check_sequence((MIGRATIONS[1], MIGRATIONS[0]))


def test_newer_schema_is_refused_and_left_untouched(db: Path) -> None:
    with SqliteStore(db) as s:
        _fill(s)
    with closing(_raw(db)) as raw:
        raw.execute("PRAGMA user_version = 7")
    before = _fingerprint(db)
    with pytest.raises(StoreVersionError) as err:
        SqliteStore(db)
    message = str(err.value)
    assert str(db) in message
    assert "schema version 7" in message
    assert f"up to {LATEST_VERSION}" in message
    assert "refusing to start" in message
    assert (err.value.found, err.value.supported, err.value.path) == (7, LATEST_VERSION, str(db))
    assert _fingerprint(db) == before


def test_newer_schema_with_pending_wal_is_not_checkpointed(db: Path) -> None:
    """A newer gateway's last commits may still sit in the WAL; we must not fold them in."""
    with SqliteStore(db) as s:
        _fill(s, 1)
    with closing(_raw(db)) as holder:
        holder.execute("PRAGMA user_version = 9")  # stays in the WAL while `holder` is open
        holder.execute("PRAGMA wal_autocheckpoint = 0")
        holder.execute("INSERT INTO state VALUES ('new', '{}')")
        before = _fingerprint(db)
        with pytest.raises(StoreVersionError, match="version 9"):
            SqliteStore(db)
        assert _fingerprint(db) == before


# ---------------------------------------------------------------------------------------------
# Corrupt and foreign files are refused and left untouched


def _assert_refused(db: Path, kind: type[StoreError], match: str | None = None) -> StoreError:
    before = _fingerprint(db)
    with pytest.raises(kind, match=match) as err:
        SqliteStore(db)
    assert str(db) in str(err.value)
    assert err.value.path == str(db)
    assert "restore a backup" in str(err.value)
    assert _fingerprint(db) == before
    with pytest.raises(kind):
        SqliteStore(db, create=False)
    assert _fingerprint(db) == before
    return err.value


def test_garbage_file(db: Path) -> None:
    db.write_bytes(os.urandom(8192))
    _assert_refused(db, StoreCorruptError, "not a SQLite database")


def test_text_file(db: Path) -> None:
    db.write_text("island_state = GRID\n")
    _assert_refused(db, StoreCorruptError, "not a SQLite database")


def test_empty_file(db: Path) -> None:
    db.write_bytes(b"")
    _assert_refused(db, StoreCorruptError, "empty")


def test_header_only_fragment(db: Path) -> None:
    db.write_bytes(b"SQLite format 3\x00" + bytes(20))
    _assert_refused(db, StoreCorruptError, "truncated")


def test_truncated_database(db: Path) -> None:
    with SqliteStore(db) as s:
        _fill(s, 20)
    data = db.read_bytes()
    assert len(data) > 8 * 4096
    db.write_bytes(data[: len(data) // 2])
    _assert_refused(db, StoreCorruptError)


def test_damaged_page(db: Path) -> None:
    with SqliteStore(db) as s:
        _fill(s, 20)
    page_size = 4096
    data = bytearray(db.read_bytes())
    pages = len(data) // page_size
    assert pages > 6
    # Scribble over a B-tree page in the middle of the file (page 1 holds the header).
    start = (pages // 2) * page_size
    data[start : start + page_size] = bytes([0xA5]) * page_size
    db.write_bytes(bytes(data))
    _assert_refused(db, StoreCorruptError)


def test_damaged_schema_page(db: Path) -> None:
    with SqliteStore(db) as s:
        _fill(s, 2)
    data = bytearray(db.read_bytes())
    data[100:400] = os.urandom(300)  # page 1's B-tree header and cell pointers
    db.write_bytes(bytes(data))
    _assert_refused(db, StoreCorruptError)


def test_another_applications_database(db: Path) -> None:
    with closing(_raw(db)) as raw:
        raw.execute("CREATE TABLE contacts (name TEXT)")
        raw.execute("INSERT INTO contacts VALUES ('x')")
    err = _assert_refused(db, StoreForeignError, "not a gateway store")
    assert isinstance(err, StoreCorruptError)


def test_empty_sqlite_database_is_not_ours(db: Path) -> None:
    with closing(_raw(db)) as raw:
        raw.execute("PRAGMA user_version = 0")
        raw.execute("CREATE TABLE t (x)")
        raw.execute("DROP TABLE t")
    _assert_refused(db, StoreForeignError, "application_id 0x0")


def test_directory_in_the_way(db: Path) -> None:
    db.mkdir()
    with pytest.raises(StoreForeignError, match="not a regular file"):
        SqliteStore(db)
    assert db.is_dir()
    assert list(db.iterdir()) == []
