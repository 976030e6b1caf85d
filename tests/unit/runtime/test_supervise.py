"""supervise: a crashed task is logged and restarted with back-off; a stop ends every task within
its grace, whatever it is doing (waiting in a back-off, or hung)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from gateway.runtime.supervise import supervise


def test_a_crashed_task_is_logged_and_restarted_with_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts: list[float] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def flaky() -> None:
            starts.append(loop.time())
            if len(starts) < 3:
                raise RuntimeError("the utility link died")
            stop.set()

        async def steady() -> None:
            await stop.wait()

        await supervise(
            stop, {"link": flaky, "loop": steady}, backoff_min_s=0.05, backoff_max_s=1.0
        )

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(main(), 10))
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1  # doubled
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crashes) == 2
    assert "RuntimeError: the utility link died" in crashes[0].getMessage()


@pytest.mark.parametrize("state", ["back-off", "hung"])
def test_a_stop_ends_every_task_within_the_grace(state: str) -> None:
    async def main() -> float:
        stop = asyncio.Event()

        async def crashes() -> None:
            raise RuntimeError("again")

        async def hangs() -> None:
            await asyncio.sleep(3600)  # a request that never answers, deaf to stop

        job = crashes if state == "back-off" else hangs
        asyncio.get_running_loop().call_later(0.1, stop.set)
        t0 = time.monotonic()
        await supervise(stop, {"job": job}, grace_s=0.3, backoff_min_s=30.0)
        return time.monotonic() - t0

    took = asyncio.run(asyncio.wait_for(main(), 10))
    assert took < 0.1 + 0.3 + 0.2


def test_tasks_that_end_on_stop_end_the_supervision_quietly() -> None:
    async def main() -> bool:
        stop = asyncio.Event()

        async def until_stopped() -> None:
            await stop.wait()

        asyncio.get_running_loop().call_later(0.01, stop.set)
        await supervise(stop, {"a": until_stopped, "b": until_stopped})
        return stop.is_set()

    assert asyncio.run(main())


def test_jobs_that_all_finish_end_the_supervision_and_set_stop() -> None:
    async def main() -> bool:
        stop = asyncio.Event()

        async def done() -> None:
            return

        await supervise(stop, {"a": done})
        return stop.is_set()

    assert asyncio.run(asyncio.wait_for(main(), 5))
