"""The command target: a controller started per case, stopped at its case's end or deadline."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.conformance.target import Command


def test_an_earlier_cases_deadline_does_not_stop_the_next_cases_controller(
    tmp_path: Path,
) -> None:
    # Found running the openadr2 suite against `gateway run {site}`: a case that ended before
    # its deadline left the deadline's timer armed, and it stopped the *next* case's process
    # (which then never registered, or stopped polling mid-case).
    site = tmp_path / "site.toml"
    site.write_text("", encoding="utf-8")
    sleeper = f"{sys.executable} -c 'import time; print(\"up\", flush=True); time.sleep(30)'"

    async def main() -> tuple[int | None, list[str]]:
        target = Command(sleeper)
        await target.start(site, seconds=0.5)
        await target.stop()  # the first case ends early
        await target.start(site, seconds=60.0)
        await asyncio.sleep(1.5)  # past the first case's deadline
        proc = target._proc
        assert proc is not None
        alive = proc.returncode
        return alive, await target.stop()

    alive, lines = asyncio.run(asyncio.wait_for(main(), 30))
    assert alive is None, "the second case's controller was stopped by the first's deadline"
    assert lines == ["up"]


def test_a_controller_that_outlives_its_deadline_is_stopped(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("", encoding="utf-8")

    async def main() -> int | None:
        target = Command(f"{sys.executable} -c 'import time; time.sleep(30)'")
        await target.start(site, seconds=0.5)
        proc = target._proc
        assert proc is not None
        await asyncio.wait_for(proc.wait(), 10)
        await target.stop()
        return proc.returncode

    assert asyncio.run(main()) is not None
