"""supervise: the first failing task stops the others and is raised; stop is set either way."""

from __future__ import annotations

import asyncio

import pytest

from gateway.runtime.supervise import supervise


def test_a_failing_task_cancels_the_others_sets_stop_and_is_raised() -> None:
    cancelled: list[str] = []

    async def forever(stop: asyncio.Event) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append("loop")
            raise

    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("the utility link died")

    async def main() -> asyncio.Event:
        stop = asyncio.Event()
        with pytest.raises(RuntimeError, match="link died"):
            await supervise(stop, {"loop": forever(stop), "link": fails()})
        return stop

    stop = asyncio.run(main())
    assert stop.is_set()
    assert cancelled == ["loop"]


def test_tasks_that_end_on_stop_end_the_supervision_quietly() -> None:
    async def until_stopped(stop: asyncio.Event) -> None:
        await stop.wait()

    async def main() -> bool:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, stop.set)
        await supervise(stop, {"a": until_stopped(stop), "b": until_stopped(stop)})
        return stop.is_set()

    assert asyncio.run(main())
