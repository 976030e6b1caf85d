"""The local request queue (``gateway fault-reset`` -> the running gateway), against SqliteStore
(a real file) and MemoryStore alike; and two real connections on one file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import (
    MemoryStore,
    SqliteStore,
    Store,
    StoreClosedError,
    StoreDataError,
    StoreKeyError,
)
from gateway.store.migrations import MIGRATIONS, migrate


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = SqliteStore(tmp_path / "state.db") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


def test_a_request_is_pending_until_taken_then_answered(store: Store) -> None:
    rid = store.add_request("fault_reset", "installer Ana", 100.0, expires_at=110.0)
    r = store.request(rid)
    assert r is not None
    assert (r.kind, r.by, r.at, r.expires_at, r.status) == (
        "fault_reset",
        "installer Ana",
        100.0,
        110.0,
        "pending",
    )
    assert not r.answered
    [taken] = store.take_requests(101.0)
    assert (taken.id, taken.status) == (rid, "taken")
    assert store.take_requests(101.5) == []  # taken once, never twice
    assert store.answer_request(
        rid, accepted=False, reason="the charger reports a fault", now=102.0
    )
    r = store.request(rid)
    assert r is not None
    assert (r.status, r.reason, r.answered_at) == ("refused", "the charger reports a fault", 102.0)
    assert r.answered
    # An answer is final.
    assert not store.answer_request(rid, accepted=True, reason="again", now=103.0)
    assert not store.withdraw_request(rid, 103.0)
    r2 = store.request(rid)
    assert r2 is not None
    assert r2.status == "refused"


def test_requests_are_taken_oldest_first_and_ids_increase(store: Store) -> None:
    ids = [store.add_request("fault_reset", f"p{i}", 100.0 + i) for i in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [r.id for r in store.take_requests(200.0)] == ids


def test_accepted_answer(store: Store) -> None:
    rid = store.add_request("fault_reset", "homeowner", 100.0)
    store.take_requests(100.0)
    assert store.answer_request(
        rid, accepted=True, reason="relay read back closed; fault -> grid_connected", now=101.0
    )
    r = store.request(rid)
    assert r is not None
    assert r.status == "accepted"


def test_an_expired_request_is_never_taken(store: Store) -> None:
    old = store.add_request("fault_reset", "installer", 100.0, expires_at=110.0)
    fresh = store.add_request("fault_reset", "installer", 105.0, expires_at=200.0)
    forever = store.add_request("fault_reset", "installer", 105.0)
    assert [r.id for r in store.take_requests(110.0)] == [fresh, forever]
    r = store.request(old)
    assert r is not None
    assert r.status == "expired"
    assert r.answered_at == 110.0
    assert r.reason is not None
    assert "expired" in r.reason
    assert not store.answer_request(old, accepted=True, reason="too late", now=111.0)


def test_only_a_pending_request_can_be_withdrawn(store: Store) -> None:
    rid = store.add_request("fault_reset", "installer", 100.0)
    assert store.withdraw_request(rid, 105.0)
    r = store.request(rid)
    assert r is not None
    assert (r.status, r.answered_at) == ("withdrawn", 105.0)
    assert store.take_requests(106.0) == []
    taken = store.add_request("fault_reset", "installer", 107.0)
    store.take_requests(107.0)
    assert not store.withdraw_request(taken, 108.0)  # the gateway is acting on it: it answers
    r = store.request(taken)
    assert r is not None
    assert r.status == "taken"


def test_unknown_ids_and_bad_arguments_are_refused(store: Store) -> None:
    assert store.request(99) is None
    with pytest.raises(StoreKeyError, match="request 99 was never added"):
        store.answer_request(99, accepted=True, reason="x", now=1.0)
    with pytest.raises(StoreKeyError):
        store.withdraw_request(99, 1.0)
    for bad in (
        lambda: store.add_request("", "me", 1.0),
        lambda: store.add_request("fault_reset", "", 1.0),
        lambda: store.add_request("fault_reset", "me", float("nan")),
        lambda: store.add_request("fault_reset", "me", 1.0, expires_at=float("inf")),
        lambda: store.request(0),
        lambda: store.take_requests(float("nan")),
    ):
        with pytest.raises(StoreDataError):
            bad()
    rid = store.add_request("fault_reset", "me", 1.0)
    store.take_requests(1.0)
    with pytest.raises(StoreDataError):
        store.answer_request(rid, accepted=True, reason="", now=2.0)  # an answer always says why


def test_a_rolled_back_transaction_takes_nothing(store: Store) -> None:
    rid = store.add_request("fault_reset", "me", 1.0)
    taken: list[int] = []

    def crash() -> None:
        with store.transaction():
            taken.extend(r.id for r in store.take_requests(2.0))
            raise RuntimeError("crash before the answer")

    with pytest.raises(RuntimeError):
        crash()
    assert taken == [rid]
    r = store.request(rid)
    assert r is not None
    assert r.status == "pending"


def test_closed_store_refuses_requests(store: Store) -> None:
    store.close()
    with pytest.raises(StoreClosedError):
        store.add_request("fault_reset", "me", 1.0)
    with pytest.raises(StoreClosedError):
        store.take_requests(1.0)


def test_two_connections_on_one_file_one_asks_the_other_answers(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    with SqliteStore(db) as gateway, SqliteStore(db, create=False) as cli:
        rid = cli.add_request("fault_reset", "installer", 100.0, expires_at=110.0)
        [taken] = gateway.take_requests(101.0)
        assert taken.id == rid
        assert not cli.withdraw_request(rid, 101.5)  # taken: the gateway will answer
        assert gateway.answer_request(rid, accepted=True, reason="accepted for the test", now=102.0)
        r = cli.request(rid)
        assert r is not None
        assert r.status == "accepted"


def test_a_version_2_file_gains_the_request_table_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        raw.execute("PRAGMA journal_mode = WAL")
        migrate(raw, path=str(db), target=2, migrations=MIGRATIONS)
        raw.execute("""INSERT INTO state (key, doc) VALUES ('island', '{"phase": "fault"}')""")
    finally:
        raw.close()
    with SqliteStore(db, create=False) as s:
        assert s.get_state("island") == {"phase": "fault"}
        rid = s.add_request("fault_reset", "installer", 1.0)
        assert rid == 1
