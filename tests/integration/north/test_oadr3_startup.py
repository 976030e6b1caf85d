"""An event already running at the VTN when the gateway starts is judged on the site as read,
not before the first read (found by the conformance suite, OA3-07).

The VEN used to poll as soon as it had a token; when the VTN answered before the site's first
device read, ``assess`` found no charger reporting and refused the ALERT_BLACK_START island
request, for good (a refusal is final for that version of an event). Here the VEN runs against
the real simulated VTN, over TLS, with a site whose first read comes 0.5 s after the start.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from oadr3_rig import config, make_pki, vtn_server

from gateway.core.controls import ControlSet
from gateway.core.messages import EventReceived, Input, Observed
from gateway.core.units import Timestamp
from gateway.north.openadr3.client import Deps, Http, VenClient
from gateway.store.memory import MemoryStore


def test_an_island_request_running_at_start_waits_for_the_first_read(tmp_path: Path) -> None:
    async def body() -> list[Input]:
        async with vtn_server(make_pki(tmp_path / "pki")) as vtn:
            vtn.state.add_event(
                vtn.program_id,
                intervals=[{"ALERT_BLACK_START": ["restoring the feeder"]}],
                start=time.time() - 1,
                duration_s=60,
            )
            seen: Observed | None = None
            fed: list[Input] = []

            async def deliver(inputs: list[Input]) -> None:
                fed.extend(inputs)

            def assess(_c: ControlSet, _now: Timestamp) -> list[str]:
                return [] if seen is not None else ["cannot island: the charger is not reporting"]

            cfg = config(vtn, webhook=False, poll_s=0.2)
            deps = Deps(deliver, lambda: seen, assess, time.time, MemoryStore())
            stop = asyncio.Event()
            async with Http(cfg) as http:
                ven = VenClient(http, cfg, deps)
                task = asyncio.create_task(ven.run(stop))
                await asyncio.sleep(0.5)
                seen = Observed(time.time())  # the site's first read
                deadline = time.monotonic() + 5
                while not fed and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                stop.set()
                await asyncio.wait_for(task, 5)
            return fed

    fed = asyncio.run(asyncio.wait_for(body(), 30))
    assert [type(i) for i in fed] == [EventReceived], fed
    assert fed[0].event.controls.connect is False  # type: ignore[attr-defined]
