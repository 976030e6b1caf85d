"""``gateway demo utility`` (the second half of ``make demo``) runs clean and tells its story."""

from __future__ import annotations

import asyncio
import io

from gateway.demo.utility import run_utility_demo


def test_the_utility_demo_follows_the_server_and_reports_back() -> None:
    out = io.StringIO()
    code = asyncio.run(asyncio.wait_for(run_utility_demo(out), 90))
    text = out.getvalue()
    assert code == 0, text
    assert "forming -> islanded" in text
    assert "closing_relay -> grid_connected" in text
    assert text.count(": [1, 2, 3]") == 2
    assert ": [253]" in text
    assert "violations recorded by the simulated home: 0" in text
