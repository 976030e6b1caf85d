"""What every north rig (sep2_rig, oadr2_rig, oadr3_rig) shares: recording the inputs the
adapter feeds the runner, and running an async test body under a hard timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.core.messages import Input, Observed, Tick
from gateway.runtime.runner import Runner


def record_inputs(runner: Runner, into: list[Input]) -> None:
    """Append every input fed to ``runner`` except telemetry and ticks (what the adapter
    sent), then feed it on."""
    feed = runner.feed

    async def recording(item: Input, *more: Input) -> None:
        into.extend(x for x in (item, *more) if not isinstance(x, Observed | Tick))
        await feed(item, *more)

    runner.feed = recording  # type: ignore[method-assign]


def run_with_timeout(coro_fn: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Run one async test body with a hard timeout (the repository's asyncio.run style)."""

    async def main() -> None:
        await asyncio.wait_for(coro_fn(), timeout)

    asyncio.run(main())
