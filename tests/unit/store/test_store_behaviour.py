"""The Store contract, run against SqliteStore (a real file) and MemoryStore alike, so that the
twin used by other layers' tests cannot drift from the real thing."""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store import (
    AuditEntry,
    MemoryStore,
    SqliteStore,
    Store,
    StoreClosedError,
    StoreDataError,
    StoreError,
    StoreKeyError,
    StoreUnavailableError,
)

Factory = Callable[[], Store]


def _factories(tmp_path: Path) -> dict[str, Factory]:
    return {"sqlite": lambda: SqliteStore(tmp_path / "state.db"), "memory": MemoryStore}


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = _factories(tmp_path)[request.param]()
    yield s
    s.close()


def _entry(n: int = 0, **over: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "at": 1000.0 + n,
        "device": "charger",
        "point": "setpoint_w",
        "value": -3000 - n,
        "reason": "export limit 0 W (sep2 event e1)",
        "outcome": "commanded",
        "correlation_id": f"cmd-{n}",
    }
    fields.update(over)
    return AuditEntry(**fields)


def _snapshot(s: Store) -> tuple[Any, ...]:
    return (s.events(), s.get_state("island"), s.pending(), s.audit())


# ---------------------------------------------------------------------------------------------
# Schedule and state


def test_events_round_trip_upsert_and_delete(store: Store) -> None:
    assert store.events() == {}
    store.put_events({"b": {"mrid": "b", "start": 10, "limits": [1.5, None]}, "a": {"x": True}})
    store.put_events({"b": {"mrid": "b", "start": 20}})  # upsert replaces the whole document
    assert store.events() == {"a": {"x": True}, "b": {"mrid": "b", "start": 20}}
    assert list(store.events()) == ["a", "b"]
    assert store.delete_events(["a", "missing"]) == 1
    assert store.delete_events([]) == 0
    assert store.events() == {"b": {"mrid": "b", "start": 20}}


def test_documents_are_copies(store: Store) -> None:
    doc: dict[str, Any] = {"nested": {"list": [1, 2]}}
    store.put_state("island", doc)
    doc["nested"]["list"].append(3)
    got = store.get_state("island")
    assert got == {"nested": {"list": [1, 2]}}
    assert got is not None
    got["nested"]["list"].clear()
    assert store.get_state("island") == {"nested": {"list": [1, 2]}}


def test_state_round_trip(store: Store) -> None:
    assert store.get_state("island") is None
    store.put_state("island", {"state": "ISLANDED", "since": 1.5})
    store.put_state("defaults", {"export_limit_w": 5000})
    store.put_state("island", {"state": "GRID"})
    assert store.get_state("island") == {"state": "GRID"}
    assert store.get_state("defaults") == {"export_limit_w": 5000}
    assert store.delete_state("island") is True
    assert store.delete_state("island") is False
    assert store.get_state("island") is None


def test_json_values_round_trip_exactly(store: Store) -> None:
    doc = {
        "int": 2**70,
        "neg_zero": -0.0,
        "float": 0.1,
        "unicode": "Zähler ⚡ 電",
        "empty": {},
        "nested": [[], [None, False, {"k": "v"}]],
        "nul": "a\x00b",
    }
    store.put_events({"ev": doc})
    store.put_state("s", doc)
    store.enqueue("k", doc, 0.0)
    store.append_audit(_entry(value=doc))
    assert store.events()["ev"] == doc
    assert store.get_state("s") == doc
    assert store.pending()[0].doc == doc
    assert store.audit()[0].value == doc
    assert math.copysign(1.0, store.events()["ev"]["neg_zero"]) == -1.0


# ---------------------------------------------------------------------------------------------
# Outbox


def test_enqueue_is_exactly_once(store: Store) -> None:
    assert store.enqueue("sep2|e1|2", {"status": 2}, 10.0) is True
    assert store.enqueue("sep2|e1|2", {"status": 99}, 11.0) is False
    [item] = store.pending()
    assert (item.key, item.doc, item.created_at) == ("sep2|e1|2", {"status": 2}, 10.0)
    assert store.ack("sep2|e1|2", 12.0) is True
    assert store.pending() == []
    # Acked items are remembered: the same report is never queued a second time.
    assert store.enqueue("sep2|e1|2", {"status": 2}, 13.0) is False
    assert store.pending() == []


def test_pending_in_enqueue_order_with_limit(store: Store) -> None:
    keys = ["z", "a", "m", "b"]
    for i, k in enumerate(keys):
        assert store.enqueue(k, {"i": i}, 100.0 - i)
    assert [p.key for p in store.pending()] == keys
    assert [p.key for p in store.pending(limit=2)] == ["z", "a"]
    assert store.pending(limit=0) == []
    ids = [p.id for p in store.pending()]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    store.ack("a", 200.0)
    assert [p.key for p in store.pending()] == ["z", "m", "b"]


def test_mark_attempt_records_attempts_and_errors(store: Store) -> None:
    store.enqueue("k", {}, 1.0)
    [fresh] = store.pending()
    assert (fresh.attempts, fresh.last_error, fresh.last_attempt_at) == (0, None, None)
    store.mark_attempt("k", 2.0, "HTTP 503")
    store.mark_attempt("k", 3.0, "timeout")
    [item] = store.pending()
    assert (item.attempts, item.last_error, item.last_attempt_at) == (2, "timeout", 3.0)
    store.mark_attempt("k", 4.0)  # an attempt without an error clears the last one
    [item] = store.pending()
    assert (item.attempts, item.last_error, item.last_attempt_at) == (3, None, 4.0)
    assert item.id == fresh.id


def test_ack_is_idempotent_and_unknown_keys_raise(store: Store) -> None:
    store.enqueue("k", {}, 1.0)
    assert store.ack("k", 2.0) is True
    assert store.ack("k", 3.0) is False
    with pytest.raises(StoreKeyError, match="'nope'"):
        store.ack("nope", 1.0)
    with pytest.raises(StoreKeyError):
        store.mark_attempt("nope", 1.0, "x")
    assert isinstance(StoreKeyError("m", path="p"), LookupError)


def test_prune_acked_forgets_only_old_acked_items(store: Store) -> None:
    for k in ("old", "new", "open"):
        store.enqueue(k, {"k": k}, 1.0)
    store.ack("old", 10.0)
    store.ack("new", 50.0)
    assert store.prune_acked(older_than=20.0) == 1
    assert store.prune_acked(older_than=20.0) == 0
    assert [p.key for p in store.pending()] == ["open"]
    assert store.enqueue("new", {}, 60.0) is False  # still remembered
    assert store.enqueue("old", {}, 60.0) is True  # pruned, hence forgotten
    assert [p.key for p in store.pending()] == ["open", "old"]
    # Ids are never reused, even after the newest row was pruned.
    newest = store.pending()[-1].id
    store.ack("old", 70.0)
    assert store.prune_acked(older_than=100.0) == 2
    store.enqueue("later", {}, 101.0)
    assert [(p.key, p.id) for p in store.pending()] == [("open", 3), ("later", newest + 1)]


# ---------------------------------------------------------------------------------------------
# Audit


def test_audit_ids_increase_and_filter(store: Store) -> None:
    ids = [store.append_audit(_entry(n)) for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    records = store.audit()
    assert [r.id for r in records] == ids
    assert records[2].entry == _entry(2)
    assert [r.id for r in store.audit(since_id=3)] == [4, 5]
    assert [r.id for r in store.audit(since_id=1, limit=2)] == [2, 3]
    assert store.audit(since_id=5) == []


def test_audit_values_and_optional_correlation(store: Store) -> None:
    for v in (None, True, 0, -1.5, "open", [1, "two"], {"w": 1}):
        store.append_audit(_entry(value=v, correlation_id=None))
    assert [r.value for r in store.audit()] == [None, True, 0, -1.5, "open", [1, "two"], {"w": 1}]
    assert {r.correlation_id for r in store.audit()} == {None}


@pytest.mark.parametrize(
    "over",
    [
        {"device": ""},
        {"reason": ""},
        {"outcome": ""},
        {"at": math.nan},
        {"at": True},
        {"value": (1, 2)},
        {"value": math.inf},
        {"correlation_id": 5},
    ],
)
def test_audit_refuses_bad_entries(store: Store, over: dict[str, Any]) -> None:
    with pytest.raises(StoreDataError):
        store.append_audit(_entry(**over))
    assert store.audit() == []


# ---------------------------------------------------------------------------------------------
# Refusals leave nothing behind


class _NotJson:
    pass


@pytest.mark.parametrize(
    "doc",
    [
        {"x": math.nan},
        {"x": (1, 2)},
        {"x": {1, 2}},
        {1: "int key"},
        {"x": _NotJson()},
        {"x": b"bytes"},
        {"x": "\ud800"},
        ["not", "a", "dict"],
    ],
)
def test_non_json_safe_documents_are_refused(store: Store, doc: Any) -> None:
    with pytest.raises(StoreDataError) as err:
        store.put_events({"ok": {"fine": 1}, "bad": doc})
    assert isinstance(err.value, ValueError)
    with pytest.raises(StoreDataError):
        store.put_state("s", doc)
    with pytest.raises(StoreDataError):
        store.enqueue("k", doc, 1.0)
    assert store.events() == {}  # validated before anything was written
    assert store.get_state("s") is None
    assert store.pending() == []


def test_deep_nesting_is_refused(store: Store) -> None:
    doc: dict[str, Any] = {}
    inner = doc
    for _ in range(100):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(StoreDataError, match="deeper"):
        store.put_state("s", doc)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.put_state("", {}),
        lambda s: s.get_state(3),
        lambda s: s.put_events({"": {}}),
        lambda s: s.put_events([("a", {})]),
        lambda s: s.enqueue("k", {}, math.nan),
        lambda s: s.enqueue("k", {}, "1"),
        lambda s: s.mark_attempt("k", 1.0, 7),
        lambda s: s.pending(limit=-1),
        lambda s: s.audit(since_id=-1),
        lambda s: s.audit(limit=True),
        lambda s: s.prune_acked(math.inf),
        lambda s: s.append_audit({"at": 1}),
    ],
)
def test_bad_arguments_raise_store_data_error(store: Store, call: Callable[[Any], object]) -> None:
    with pytest.raises(StoreDataError):
        call(store)


# ---------------------------------------------------------------------------------------------
# Transactions


def _write_batch(s: Store, n: int) -> None:
    s.put_events({f"ev{n}": {"n": n}})
    s.put_state("island", {"n": n})
    s.enqueue(f"k{n}", {"n": n}, float(n))
    s.append_audit(_entry(n))


def test_transaction_commits_all_parts(store: Store) -> None:
    with store.transaction():
        _write_batch(store, 1)
        # Reads inside the batch see its own writes.
        assert store.get_state("island") == {"n": 1}
    assert store.events() == {"ev1": {"n": 1}}
    assert [p.key for p in store.pending()] == ["k1"]
    assert [r.id for r in store.audit()] == [1]


@pytest.mark.parametrize(
    "exc", [RuntimeError("boom"), KeyboardInterrupt(), asyncio.CancelledError()]
)
def test_transaction_is_all_or_nothing(store: Store, exc: BaseException) -> None:
    _write_batch(store, 1)
    before = _snapshot(store)

    def batch() -> None:
        with store.transaction():
            _write_batch(store, 2)
            store.ack("k1", 5.0)
            store.mark_attempt("k1", 5.0, "x")
            store.delete_events(["ev1"])
            raise exc

    with pytest.raises(type(exc)):
        batch()
    assert _snapshot(store) == before
    # The rolled-back ids are handed out again: the audit log has no gaps.
    assert store.append_audit(_entry(3)) == 2
    assert store.enqueue("k2", {}, 1.0) is True


def test_failed_write_inside_transaction_rolls_back_the_batch(store: Store) -> None:
    def batch() -> None:
        with store.transaction():
            store.put_state("island", {"n": 1})
            store.enqueue("k", {"bad": math.nan}, 1.0)

    with pytest.raises(StoreDataError):
        batch()
    assert store.get_state("island") is None


def test_nested_transaction_undoes_only_itself(store: Store) -> None:
    def inner() -> None:
        with store.transaction():
            store.put_state("inner", {"v": 2})
            store.append_audit(_entry(1))
            raise RuntimeError

    with store.transaction():
        store.put_state("outer", {"v": 1})
        with pytest.raises(RuntimeError):
            inner()
        with store.transaction():
            store.put_state("inner2", {"v": 3})
        store.append_audit(_entry(2))
    assert store.get_state("outer") == {"v": 1}
    assert store.get_state("inner") is None
    assert store.get_state("inner2") == {"v": 3}
    assert [(r.id, r.correlation_id) for r in store.audit()] == [(1, "cmd-2")]


def test_outer_failure_undoes_committed_inner_block(store: Store) -> None:
    def batch() -> None:
        with store.transaction():
            with store.transaction():
                store.put_state("inner", {"v": 1})
            raise RuntimeError

    with pytest.raises(RuntimeError):
        batch()
    assert store.get_state("inner") is None


# ---------------------------------------------------------------------------------------------
# Lifecycle


def test_closed_store_refuses_everything(store: Store) -> None:
    store.put_state("s", {})
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.get_state("s"),
        lambda: store.put_events({}),
        lambda: store.delete_events([]),
        store.events,
        store.pending,
        store.audit,
        lambda: store.enqueue("k", {}, 1.0),
        lambda: store.transaction().__enter__(),
    ):
        with pytest.raises(StoreClosedError) as err:
            call()
        assert isinstance(err.value, StoreUnavailableError)
        assert err.value.path


def test_close_inside_transaction_rolls_back(store: Store) -> None:
    store.put_state("s", {"v": 0})

    def batch() -> None:
        with store.transaction():
            store.put_state("s", {"v": 1})
            store.close()

    with pytest.raises(StoreClosedError):
        batch()


def test_context_manager_closes(tmp_path: Path) -> None:
    for name, factory in _factories(tmp_path).items():
        with factory() as s:
            s.put_state("k", {"name": name})
        with pytest.raises(StoreClosedError):
            s.get_state("k")


def test_every_error_is_a_store_error_with_a_path(store: Store) -> None:
    with pytest.raises(StoreError) as err:
        store.ack("missing", 1.0)
    assert err.value.path in str(err.value)


# ---------------------------------------------------------------------------------------------
# The twin against the real thing, on random operation sequences

_keys = st.sampled_from(["a", "b", "c", "sep2|x|2"])
_docs = st.dictionaries(
    st.text(max_size=3),
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    max_size=3,
)
_times = st.floats(min_value=0, max_value=100, allow_nan=False)
_ops = st.one_of(
    st.tuples(st.just("put_events"), _keys, _docs),
    st.tuples(st.just("delete_events"), _keys),
    st.tuples(st.just("put_state"), _keys, _docs),
    st.tuples(st.just("delete_state"), _keys),
    st.tuples(st.just("enqueue"), _keys, _docs, _times),
    st.tuples(st.just("mark_attempt"), _keys, _times, st.none() | st.text(max_size=3)),
    st.tuples(st.just("ack"), _keys, _times),
    st.tuples(st.just("prune_acked"), _times),
    st.tuples(st.just("append_audit"), _keys, st.integers()),
    st.tuples(st.just("fail_batch"), _keys, _docs),
)


def _apply(s: Store, op: tuple[Any, ...]) -> object:
    match op:
        case ("put_events", k, d):
            return s.put_events({k: d})
        case ("delete_events", k):
            return s.delete_events([k])
        case ("put_state", k, d):
            return s.put_state(k, d)
        case ("delete_state", k):
            return s.delete_state(k)
        case ("enqueue", k, d, t):
            return s.enqueue(k, d, t)
        case ("mark_attempt", k, t, e):
            return s.mark_attempt(k, t, e)
        case ("ack", k, t):
            return s.ack(k, t)
        case ("prune_acked", t):
            return s.prune_acked(t)
        case ("append_audit", k, v):
            return s.append_audit(_entry(value=v, device=k))
        case ("fail_batch", k, d):
            with s.transaction():
                s.put_state(k, d)
                s.enqueue(k, d, 1.0)
                s.append_audit(_entry(device=k))
                raise RuntimeError("rolled back")
    raise AssertionError(op)


def _outcome(s: Store, op: tuple[Any, ...]) -> tuple[str, object]:
    try:
        return ("ok", _apply(s, op))
    except StoreError as exc:
        return ("error", type(exc))
    except RuntimeError as exc:
        return ("runtime", str(exc))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops, max_size=25))
def test_memory_twin_matches_sqlite(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as d, SqliteStore(Path(d) / "s.db") as real:
        with MemoryStore() as twin:
            for op in ops:
                assert _outcome(real, op) == _outcome(twin, op), op
                assert real.pending() == twin.pending()
            assert real.events() == twin.events()
            assert real.audit() == twin.audit()
            for k in ("a", "b", "c", "sep2|x|2"):
                assert real.get_state(k) == twin.get_state(k)
