"""``gateway demo site``: a site file, its simulated home and ``gateway run``, on the wall clock."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from gateway.demo.two_terminals import _before, run_site_demo


def test_the_site_demo_islands_and_reconnects_through_gateway_run(tmp_path: Path) -> None:
    out = io.StringIO()
    code = asyncio.run(asyncio.wait_for(run_site_demo(out, folder=tmp_path), 60))
    text = out.getvalue()
    assert code == 0, text
    assert f"gateway simulate home {tmp_path / 'site.toml'}" in text
    assert f"gateway run {tmp_path / 'site.toml'} -v" in text
    for line in (
        "opening_relay -> forming: relay read back open",
        "closing_relay -> grid_connected: relay read back closed",
        "relay confirmed open before the charger formed: True",
        "charger confirmed stopped before the relay reclosed: True",
        "violations recorded by the simulated home: 0",
    ):
        assert line in text, text
    dark = float(text.split("dark time at the outage: ")[1].split(" s")[0])
    assert 0 < dark < 2.0, text


def test_the_order_check_fails_when_a_step_comes_first() -> None:
    good = ["opening_relay -> forming", "charger grid_forming"]
    assert _before(good, "opening_relay -> forming", "charger grid_forming")
    assert not _before(good[::-1], "opening_relay -> forming", "charger grid_forming")
    assert not _before([], "opening_relay -> forming", "charger grid_forming")
