"""``make demo`` must tell the whole story and end with the home back on the grid."""

from __future__ import annotations

import io

from gateway.demo.evening import run_evening


def test_scripted_evening_islands_and_reconnects_safely() -> None:
    out = io.StringIO()
    assert run_evening(out) == 0
    text = out.getvalue()
    order = [
        "response 1 received",
        "in force: export_limit_w = 500 W",
        "-> pv limit 2000 W",
        "grid_connected -> stopping_export",
        "-> relay open",
        "opening_relay -> forming: relay read back open",
        "-> charger grid-forming",
        "islanded -> reconnect_wait",
        "reconnect_wait -> stopping_forming: grid in window for 300 s",
        "-> relay closed",
        "closing_relay -> grid_connected",
        "response 3 completed",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions), text
    assert "violations recorded by the simulated home: 0" in text
    assert "north reports still unacknowledged: 0" in text
