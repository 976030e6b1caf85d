"""Local requests to the running gateway: the control loop's side of the store's queue.

A local command (``gateway fault-reset``, :mod:`gateway.runtime.cli_fault`) adds a request to
the store the gateway runs on. Every control cycle the runner calls :func:`answer_requests`,
which takes the pending requests (each becomes ``taken`` before anything is done about it),
feeds each to the engine and writes the engine's answer back to the request's row, where the
command is waiting for it. SQLite in WAL mode lets the two processes share the file.

The engine decides and audits (``Engine._reset``: the audit entry's correlation id is
``request-<id>``); this module only carries the question in and the answer out. A request still
pending after its ``expires_at`` is never acted on (the store marks it ``expired``), so a reset
asked while no gateway was running cannot fire hours later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from gateway.core.engine import Engine
from gateway.core.messages import FaultReset, Input
from gateway.store.api import FAULT_RESET, Request, Store, StoreError

log = logging.getLogger(__name__)

__all__ = ["FAULT_RESET", "KINDS", "answer_requests", "correlation_id"]
KINDS: Final = frozenset({FAULT_RESET})


def correlation_id(request_id: int) -> str:
    """The id under which the engine audits what it did with a request."""
    return f"request-{request_id}"


async def answer_requests(
    store: Store,
    engine: Engine,
    feed: Callable[[Input], Awaitable[None]],
    now: Callable[[], float],
    *,
    wall: Callable[[], float] = time.time,
) -> int:
    """Take the pending requests, feed each to the engine, store each answer; how many taken.

    ``now`` is the engine's clock (the utility's time base); ``wall`` is this machine's, the
    one the asking command stamps and bounds its request with. A store that fails here is
    logged and the cycle goes on: the request stays where it was (pending, or taken without
    an answer), and the command that asked says so when it stops waiting.
    """
    try:
        taken = store.take_requests(wall())
    except StoreError as e:
        log.warning("local requests could not be taken: %s", e)
        return 0
    for request in taken:
        accepted, reason = await _decide(request, engine, feed, now)
        verdict = "accepted" if accepted else "refused"
        log.info(
            "request %d (%s by %s) %s: %s", request.id, request.kind, request.by, verdict, reason
        )
        try:
            store.answer_request(request.id, accepted=accepted, reason=reason, now=wall())
        except StoreError as e:
            log.warning("the answer to request %d could not be stored: %s", request.id, e)
    return len(taken)


async def _decide(
    request: Request,
    engine: Engine,
    feed: Callable[[Input], Awaitable[None]],
    now: Callable[[], float],
) -> tuple[bool, str]:
    if request.kind != FAULT_RESET:
        known = ", ".join(sorted(KINDS))
        return False, f"this gateway does not know requests of kind {request.kind!r} ({known})"
    cid = correlation_id(request.id)
    await feed(FaultReset(now(), request.by, request=cid))
    outcome = engine.last_reset
    if outcome is None or outcome.request != cid:  # pragma: no cover - feed always answers
        return False, "the engine gave no answer to this reset; nothing was done"
    return outcome.accepted, outcome.reason
