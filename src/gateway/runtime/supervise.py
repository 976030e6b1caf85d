"""Run a gateway's tasks together: a task that crashes is logged and restarted with back-off;
a stop ends them all within a bounded grace.

Every composed gateway runs the control loop next to its protocol tasks. A crash in one of them
is a bug, not a reason to leave the home unsupervised or the utility unanswered, so the task is
started again after 1 s, doubling to 60 s while it keeps crashing (reset once it has run for a
minute). While the control loop is down the devices' keep-alive stops with it, so each device's
own watchdog takes it to its safe state; while a protocol task is down the control loop keeps
the schedule it has.

A stop (SIGTERM, SIGINT, ``--for``) must end the process quickly in every state, including a
back-off wait or a hung request: each task gets ``grace_s`` to finish by itself, then it is
cancelled. Cancelling lands at an await point, never inside a store transaction (those are
synchronous), so the store stays consistent; a device command cut short leaves its write-ahead
"commanded" record, which is the truth, and the next start re-reads the devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Coroutine[Any, Any, None]]
GRACE_S = 0.5
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
HEALTHY_AFTER_S = 60.0  # a run this long resets the back-off


async def supervise(
    stop: asyncio.Event,
    jobs: Mapping[str, Job],
    *,
    grace_s: float = GRACE_S,
    backoff_min_s: float = BACKOFF_MIN_S,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Run each of ``jobs`` (name -> a function that starts it) until ``stop`` is set, or until
    every job has ended by itself. A job that raises is logged and started again after a
    back-off; ``stop`` is set on the way out either way."""
    tasks = [
        asyncio.create_task(_keep(name, job, stop, backoff_min_s, backoff_max_s), name=name)
        for name, job in jobs.items()
    ]
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        while not stop.is_set() and not all(t.done() for t in tasks):
            await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        waiter.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
        for t in pending:
            log.info("stopping %s: cancelled after %.1f s", t.get_name(), grace_s)
            t.cancel()
        await asyncio.gather(*tasks, waiter, return_exceptions=True)


async def _keep(name: str, job: Job, stop: asyncio.Event, low: float, high: float) -> None:
    delay = low
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await job()
        except Exception as exc:
            if stop.is_set():
                return
            if loop.time() - started >= HEALTHY_AFTER_S:
                delay = low
            log.error(
                "%s crashed (%s: %s); restarting in %.0f s", name, type(exc).__name__, exc, delay
            )
            log.debug("%s crash", name, exc_info=exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(high, delay * 2)
            continue
        return  # it ended by itself (on stop, or its work is done)
