"""Run a gateway's tasks together: the first failure stops them all, and is raised.

Every composed gateway (2030.5, OpenADR 2.0b, OpenADR 3) runs the control loop next to its
protocol tasks; none may go on alone after another died (a control loop without its utility
link would keep following stale instructions silently, and the reverse leaves devices
unsupervised).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any


async def supervise(stop: asyncio.Event, jobs: Mapping[str, Coroutine[Any, Any, None]]) -> None:
    """Run ``jobs`` (name -> coroutine) as tasks until they end or one raises. Either way
    ``stop`` is set and the others are cancelled and awaited; the first failure is raised."""
    tasks = [asyncio.create_task(job, name=name) for name, job in jobs.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc
    finally:
        stop.set()
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
