"""The outbox on a real SQLite file: in order, exactly once, across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.north.sep2.adapter import own_report
from gateway.north.sep2.outbox import DeliveryError, drain
from gateway.store.api import OutboxItem
from gateway.store.sqlite import SqliteStore


def _fill(store: SqliteStore) -> None:
    for code in (1, 2, 3):
        store.enqueue(f"sep2|AB|{code}", {"code": code, "at": float(code)}, float(code))


def test_reports_are_sent_in_order_and_a_failure_stops_the_pass(tmp_path: Path) -> None:
    sent: list[str] = []

    async def flaky(item: OutboxItem) -> None:
        if item.key.endswith("|2") and "sep2|AB|2" not in sent:
            sent.append(item.key)
            raise DeliveryError("HTTP 503 from the utility")
        sent.append(item.key)

    with SqliteStore(tmp_path / "s.db") as store:
        _fill(store)
        assert asyncio.run(drain(store, flaky, lambda: 10.0)) == 1
        # 3 did not overtake the failed 2.
        assert sent == ["sep2|AB|1", "sep2|AB|2"]
        left = store.pending()
        assert [i.key for i in left] == ["sep2|AB|2", "sep2|AB|3"]
        assert left[0].attempts == 1
        assert left[0].last_error == "HTTP 503 from the utility"


def test_after_a_restart_only_unacknowledged_reports_are_sent_again(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first: list[str] = []

    async def dies_after_one(item: OutboxItem) -> None:
        if first:
            raise DeliveryError("connection reset")
        first.append(item.key)

    with SqliteStore(db) as store:
        _fill(store)
        asyncio.run(drain(store, dies_after_one, lambda: 5.0))
    again: list[str] = []

    async def ok(item: OutboxItem) -> None:
        again.append(item.key)

    with SqliteStore(db, create=False) as store:  # the next process
        assert asyncio.run(drain(store, ok, lambda: 6.0)) == 2
        assert again == ["sep2|AB|2", "sep2|AB|3"]
        assert store.pending() == []
        # The engine enqueuing an acknowledged report again changes nothing.
        assert store.enqueue("sep2|AB|1", {"code": 1, "at": 1.0}, 7.0) is False
        assert asyncio.run(drain(store, ok, lambda: 8.0)) == 0
    assert first == ["sep2|AB|1"]


def test_the_2030_5_drain_leaves_another_links_reports_in_the_outbox(tmp_path: Path) -> None:
    """A site with several links has one outbox: the 2030.5 drain sends its Responses and alarm
    edges (no origin) and leaves a report another link's event owes (issue 15)."""
    sent: list[str] = []

    async def ok(item: OutboxItem) -> None:
        sent.append(item.key)

    with SqliteStore(tmp_path / "s.db") as store:
        store.enqueue("openadr3|openadr3:e:d:0|2", {"origin": "openadr3", "code": 2}, 1.0)
        store.enqueue("sep2|AB|1", {"origin": "sep2", "code": 1, "at": 2.0}, 2.0)
        store.enqueue("alarm|1", {"kind": "alarm", "seq": 1}, 3.0)
        assert asyncio.run(drain(store, ok, lambda: 10.0, own_report)) == 2
        assert sent == ["sep2|AB|1", "alarm|1"]
        assert [i.key for i in store.pending()] == ["openadr3|openadr3:e:d:0|2"]
