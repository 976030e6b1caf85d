"""The evening over real Modbus sockets: the gateway drives the simulated home end to end.

This is the issue's "done when": a vendor profile is validated, served by the simulator and
driven by the gateway, through the same code paths as the shipped profiles.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.demo.modbus_evening import run_modbus_evening
from gateway.store.sqlite import SqliteStore

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "acme-v2h.toml"

STORY = [
    "in force: export_limit_w = 500 W",
    "## the grid fails",
    "grid_connected -> stopping_export",
    "-> charger stopped",
    "-> relay open",
    "opening_relay -> forming: relay read back open",
    "-> charger grid-forming",
    "forming -> islanded: charger read back grid-forming",
    "## the grid returns",
    "reconnect_wait -> stopping_forming: grid in window for 300",
    "stopping_forming -> closing_relay: charger stopped at zero power",
    "-> relay closed",
    "closing_relay -> grid_connected: relay read back closed",
    "response 3 completed",
]


SIGENERGY = (
    Path(__file__).parents[2] / "src" / "gateway" / "south" / "profiles" / "sigenergy-dc.toml"
)


def unpaced(tmp_path: Path, profile: Path) -> str:
    """A copy without the request pacing: the real device sits behind a hybrid inverter and
    needs 50 ms between requests, which over 1,800 accelerated cycles would take minutes;
    the simulator answers at once. Pacing itself is tested in south/test_transport.py."""
    text = profile.read_text(encoding="utf-8")
    assert "delay_ms = 50" in text
    copy = tmp_path / profile.name
    copy.write_text(text.replace("delay_ms = 50", "delay_ms = 0"), encoding="utf-8")
    return str(copy)


def evening(tmp_path: Path, charger: str, framer: str = "socket") -> tuple[int, str, Path]:
    out, db = io.StringIO(), tmp_path / "gateway.db"
    rc = asyncio.run(run_modbus_evening(out, charger=charger, framer=framer, db=db))
    return rc, out.getvalue(), db


@pytest.mark.parametrize(
    ("charger", "framer"),
    [("wallbox-quasar", "socket"), ("sigenergy", "rtu"), (str(EXAMPLE), "socket")],
    ids=["quasar-tcp", "sigenergy-rtu-over-tcp", "vendor-example-tcp"],
)
def test_the_gateway_islands_and_reconnects_the_home_over_modbus(
    tmp_path: Path, charger: str, framer: str
) -> None:
    if charger == "sigenergy":
        charger = unpaced(tmp_path, SIGENERGY)
    rc, text, db = evening(tmp_path, charger, framer)
    assert rc == 0, text
    positions = [text.index(line) for line in STORY]
    assert positions == sorted(positions), text
    assert "violations recorded by the simulated home: 0" in text
    assert "north reports still unacknowledged: 0" in text
    with SqliteStore(db, create=False) as store:
        audit = store.audit()
    # Every relay move was confirmed from the auxiliary contact, and none failed.
    relay_confirmations = [
        r.outcome for r in audit if r.point == "relay_state" and r.outcome.startswith("confirmed")
    ]
    assert relay_confirmations == [
        "confirmed: relay_state reads open",
        "confirmed: relay_state reads closed",
    ]
    assert not [r for r in audit if r.outcome.startswith("failed")]
    if charger == str(EXAMPLE):
        # The site's 20 % backup reserve went to the device as its own SoC floor, read back.
        floor = [(r.value, r.outcome) for r in audit if r.point == "reserve"]
        assert floor == [(20.0, "writing"), (20.0, "confirmed")]
    # Each driver write has its "writing" record before its outcome, with the engine's id.
    # (The engine's own records name the device plainly; the drivers' name the unit.)
    driver = [r for r in audit if " unit " in r.device]
    writing = {(r.device, r.point, r.correlation_id) for r in driver if r.outcome == "writing"}
    done = {
        (r.device, r.point, r.correlation_id)
        for r in driver
        if r.outcome in ("confirmed", "written") and r.correlation_id is not None
    }
    assert done <= writing
    assert writing


def test_a_vendor_profile_is_validated_then_served_then_driven(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "validate", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == "OK acme-v2h (charger)"
    assert main(["demo", "evening", "--modbus", "--charger", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "charger  acme-v2h" in out
    assert "unit 3" in out
    assert "violations recorded by the simulated home: 0" in out
