"""A command target's overdue timer stops its own case's process, never a later case's
(found by the OpenADR 3 suite run as a command: the first case's timer stopped the
thirteenth case's VEN at its start, and that case saw no poll at all)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from gateway.conformance.target import Command


def test_an_earlier_cases_timer_leaves_the_next_process_alone(tmp_path: Path) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    site = tmp_path / "site.toml"
    site.write_text("", encoding="utf-8")

    async def body() -> int | None:
        target = Command(f"{sh} -c 'exec sleep 30' {{site}}")  # the site file is its $0
        await target.start(site, seconds=0.3)  # this case's process would be stopped at 0.3 s
        await target.stop()  # the case ends first
        await target.start(site, seconds=30.0)  # the next case
        await asyncio.sleep(0.8)  # past the first case's 0.3 s
        proc = target._proc
        assert proc is not None
        code = proc.returncode
        await target.stop()
        return code

    assert asyncio.run(asyncio.wait_for(body(), 20)) is None  # still running
