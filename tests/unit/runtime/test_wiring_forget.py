"""A Forget action deletes the stored record, in the same transaction as the Persists."""

from __future__ import annotations

from pathlib import Path

from gateway.core.messages import Forget, Persist, Table
from gateway.runtime.wiring import persist
from gateway.store.sqlite import SqliteStore


def test_forget_deletes_the_event_row_with_the_other_write_ahead_records(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        persist(store, [Persist(Table.EVENT, "A", {"x": 1}), Persist(Table.EVENT, "B", {"x": 2})])
        persist(store, [Forget(Table.EVENT, "A"), Persist(Table.STATE, "k", {"v": 1})])
        assert set(store.events()) == {"B"}
        assert store.get_state("k") == {"v": 1}
