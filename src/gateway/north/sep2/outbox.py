"""Draining the outbox: every 2030.5 report is delivered, in order, exactly once.

The adapter supplies ``send``: it returns when the utility acknowledged the report (201/204 on
the Response or LogEvent POST) and raises when it did not. Only the 2030.5 adapter drains the
outbox (the core queues no outbox report for OpenADR events), so this lives in ``north.sep2``,
over the core's :class:`~gateway.core.ports.Outbox` (north does not import the store).

Reports go out in enqueue order; the first failure stops the pass so that a later report never
overtakes an earlier one (a 3 Completed must not arrive before its 2 Started). After a restart
the same call re-sends exactly what was never acknowledged.

:func:`trim` bounds one kind of report (by key prefix) while the utility cannot take them: the
oldest beyond the newest ``keep`` are settled unsent, and the caller says so in the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.core import errors
from gateway.core.ports import Outbox, OutboxEntry

E = TypeVar("E", bound=OutboxEntry)

Send = Callable[[E], Awaitable[None]]


class DeliveryError(errors.TransportError):
    """``send`` could not get an acknowledgement; the message says why, for the log."""


async def drain(
    store: Outbox[E],
    send: Send[E],
    now: Callable[[], float],
    only: Callable[[E], bool] | None = None,
) -> int:
    """Send every pending report once, in order; return how many were acknowledged. ``only``:
    the reports this link owns (on a site with several links, another link's are left be)."""
    delivered = 0
    for item in store.pending():
        if only is not None and not only(item):
            continue
        try:
            await send(item)
        except DeliveryError as err:
            store.mark_attempt(item.key, now(), str(err))
            break
        store.ack(item.key, now())
        delivered += 1
    return delivered


def trim(store: Outbox[E], prefix: str, keep: int, now: float) -> list[E]:
    """Settle, unsent, every pending item whose key starts with ``prefix`` but the newest
    ``keep``; return those dropped (oldest first) for the caller's log line."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    waiting = [item for item in store.pending() if item.key.startswith(prefix)]
    dropped = waiting[: max(0, len(waiting) - keep)]
    with store.transaction():
        for item in dropped:
            store.ack(item.key, now)
    return dropped
