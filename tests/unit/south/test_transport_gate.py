"""The endpoint's request gate: one at a time, commands first, no read between a command's steps.

Pure asyncio (no sockets): the gate is the one piece of the transport that decides order.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.south.transport import _Gate


async def _take(
    gate: _Gate, name: str, log: list[str], hold: asyncio.Event, *, first: bool = False
) -> None:
    async with gate.held(first=first):
        log.append(name)
        await hold.wait()


def test_urgent_waiters_are_served_before_ordinary_ones_fifo_within_each() -> None:
    async def main() -> list[str]:
        gate, log, go = _Gate(), [], asyncio.Event()
        holder = asyncio.create_task(_take(gate, "holder", log, go, first=False))
        await asyncio.sleep(0)
        tasks = [
            asyncio.create_task(_take(gate, name, log, go, first=first))
            for name, first in (("read1", False), ("cmd1", True), ("read2", False), ("cmd2", True))
        ]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(holder, *tasks)
        return log

    assert asyncio.run(main()) == ["holder", "cmd1", "cmd2", "read1", "read2"]


def test_a_reservation_keeps_ordinary_requests_out_between_a_commands_steps() -> None:
    async def main() -> list[str]:
        gate, log = _Gate(), []
        go = asyncio.Event()
        go.set()

        async def command() -> None:
            with gate.reserved():
                for step in ("write", "read-back"):
                    await _take(gate, step, log, go, first=True)
                    await asyncio.sleep(0)  # a gap between steps, as on a real link
                    await asyncio.sleep(0)

        async def telemetry() -> None:
            await asyncio.sleep(0)
            await _take(gate, "telemetry", log, go, first=False)

        await asyncio.gather(command(), telemetry())
        return log

    assert asyncio.run(main()) == ["write", "read-back", "telemetry"]


@pytest.mark.parametrize("first", [True, False])
def test_a_cancelled_waiter_neither_holds_nor_blocks_the_gate(first: bool) -> None:
    async def main() -> list[str]:
        gate, log, go = _Gate(), [], asyncio.Event()
        holder = asyncio.create_task(_take(gate, "holder", log, go, first=False))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(_take(gate, "doomed", log, go, first=first))
        later = asyncio.create_task(_take(gate, "later", log, go, first=False))
        await asyncio.sleep(0)
        doomed.cancel()
        go.set()
        await asyncio.gather(holder, later)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        async with gate.held(first=False):  # free again
            log.append("after")
        return log

    assert asyncio.run(main()) == ["holder", "later", "after"]


def test_a_waiter_cancelled_just_as_it_is_handed_the_gate_passes_it_on() -> None:
    async def main() -> list[str]:
        gate, log, go = _Gate(), [], asyncio.Event()
        go.set()
        async with gate.held(first=False):
            doomed = asyncio.create_task(_take(gate, "doomed", log, go, first=False))
            later = asyncio.create_task(_take(gate, "later", log, go, first=False))
            await asyncio.sleep(0)
        # Released: "doomed" now owns the gate but has not run yet; cancel it at that instant.
        doomed.cancel()
        await asyncio.gather(doomed, later, return_exceptions=True)
        return log

    assert asyncio.run(main()) == ["later"]
