"""The local API's test rig: a V2H conformance home's site file with [api], the URL the run
prints, and waiting for the simulated devices."""

from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path

from gateway.conformance import v2h
from gateway.sim.modbus import SimulatedHome

TOKEN = "correct-horse-battery-staple-42"


def site_file(folder: Path) -> Path:
    site = v2h.write_site(folder, v2h.Script(duration_s=0.0))
    (folder / "api-token").write_text(TOKEN + "\n", encoding="utf-8")
    with site.open("a", encoding="utf-8") as f:
        f.write('\n[api]\nport = 0\ntoken_file = "api-token"\n')
    return site


async def api_url(out: io.StringIO) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if m := re.search(r"local API and dashboard: (http://\S+)/ ", out.getvalue()):
            return m.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no API URL printed: {out.getvalue()}")


async def until(home: SimulatedHome, what: str, want: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        home.sync()
        got = home.physics.relay_category() if what == "relay" else home.physics.charger_category()
        if got == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the simulated {what} never read {want}")
