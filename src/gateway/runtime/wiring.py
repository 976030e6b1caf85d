"""The composition root's plumbing between the engine and the store.

The engine returns ``Persist`` actions first; :func:`persist` writes them in one transaction
before anything else is acted on (write-ahead). :func:`restore_engine` rebuilds an engine from
what a previous process persisted, including one that was killed with SIGKILL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gateway.core.engine import (
    DEFAULTS_KEY,
    ENGINE_KEY,
    ISLAND_KEY,
    MANUAL_KEY,
    RESERVE_KEY,
    Engine,
)
from gateway.core.messages import Action, Forget, Persist, Table
from gateway.core.site import SiteConfig
from gateway.store.api import AuditEntry, Store

STATE_KEYS = (ISLAND_KEY, ENGINE_KEY, DEFAULTS_KEY, MANUAL_KEY, RESERVE_KEY)


def persist(store: Store, actions: Iterable[Action]) -> None:
    """Store every Persist (and Forget) action of one engine call, all or nothing."""
    with store.transaction():
        for a in actions:
            if isinstance(a, Forget):
                if a.table is Table.EVENT:
                    store.delete_events([a.key])
                elif a.table is Table.OUTBOX and a.before is not None:
                    store.prune_acked(a.before)
                continue
            if not isinstance(a, Persist):
                continue
            doc: dict[str, Any] = dict(a.doc)
            match a.table:
                case Table.EVENT:
                    store.put_events({a.key: doc})
                case Table.STATE:
                    store.put_state(a.key, doc)
                case Table.OUTBOX:
                    store.enqueue(a.key, doc, float(doc["at"]))
                case Table.ACK:
                    store.ack(a.key, float(doc["at"]))
                case Table.AUDIT:
                    store.append_audit(AuditEntry(**doc))


def restore_engine(config: SiteConfig, store: Store, draw: Callable[[int], int]) -> Engine:
    state = {k: doc for k in STATE_KEYS if (doc := store.get_state(k)) is not None}
    return Engine(config, draw=draw, events=list(store.events().values()), state=state)
