"""The drivers' audit sink: immediate outside a runner step, one commit per step inside one."""

from __future__ import annotations

from pathlib import Path

from gateway.runtime.runner import AuditTrail
from gateway.south.device import WriteRecord
from gateway.store.sqlite import SqliteStore


def _record(outcome: str, at: float = 1.0) -> WriteRecord:
    return WriteRecord(at, "relay", "relay_command", 1, "islanding", outcome, "c-1")


def test_records_are_stored_at_once_outside_a_step_and_deferred_inside_one(
    tmp_path: Path,
) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        trail = AuditTrail(store)
        trail(_record("writing"))
        assert [r.outcome for r in store.audit()] == ["writing"]
        trail.deferring = True
        trail(_record("writing", 2.0))
        trail(_record("confirmed", 3.0))
        assert trail.pending == 2
        assert len(store.audit()) == 1  # not yet: they join the next write-ahead commit
        with store.transaction():
            trail.flush()
        assert trail.pending == 0
        assert [(r.at, r.outcome) for r in store.audit()] == [
            (1.0, "writing"),
            (2.0, "writing"),
            (3.0, "confirmed"),
        ]


def test_deferred_records_are_lost_only_with_their_transaction(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        trail = AuditTrail(store)
        trail.deferring = True
        trail(_record("writing"))
        try:
            with store.transaction():
                trail.flush()
                raise RuntimeError("crash before the commit")
        except RuntimeError:
            pass
        assert store.audit() == []
