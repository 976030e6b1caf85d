"""The scripted evening again, but the gateway drives the simulated home over real Modbus.

Same story as ``demo.py`` (export limit, outage, island on the EV, grid back, reconnect), with the
whole south stack in the loop: profiles, transport (TCP or RTU framing), devices, drivers with
read-back confirmation, audit into a real SQLite file. The simulated clock runs in real time
(so relays take their travel time) and is stepped between control cycles, so 150 simulated
minutes take a few seconds. Pass another charger profile to watch the gateway drive it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from gateway.core.controls import ControlSet
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    DerLimit,
    EventReceived,
    NorthReport,
    Note,
    RelayCommand,
)
from gateway.core.schedule import Event
from gateway.core.units import MRID
from gateway.demo.evening import START, _clock, _describe, demo_site
from gateway.demo.modbus_site import Framer, ModbusSite
from gateway.store.sqlite import SqliteStore

# Simulated seconds between control cycles. The pure demo uses 1 s; over sockets 5 s keeps the
# whole evening to a few seconds of wall time while every step still waits for its read-back.
STEP_S = 5.0


async def run_modbus_evening(
    out: TextIO,
    *,
    charger: str = "wallbox-quasar",
    framer: Framer = "socket",
    db: Path | None = None,
    step_s: float = STEP_S,
) -> int:
    """Run the evening; returns 0 when the home ends on the grid with no violation."""
    with tempfile.TemporaryDirectory() as tmp:
        path = db if db is not None else Path(tmp) / "gateway.db"
        with SqliteStore(path) as store:
            return await _evening(out, store, charger, framer, step_s)


async def _evening(
    out: TextIO, store: SqliteStore, charger: str, framer: Framer, step_s: float
) -> int:
    site = ModbusSite(store, demo_site(), start=START, charger=charger, framer=framer)

    def say(text: str) -> None:
        out.write(f"{_clock(site.clock.now())}  {text}\n")

    site.site.listener = _printer(say)  # read when the site starts its runner
    async with site:
        home = site.home
        out.write("The same evening over Modbus: the gateway drives the simulated home\n")
        for d in home.describe():
            out.write(f"  {d.name:8} {d.profile:20} {d.url}  unit {d.unit_id}\n")
        out.write("\n")
        for problem in site.problems:
            say(f"  !! {problem}")
        await site.run_until(START + 5, step_s)
        say("## the utility sends a 500 W export limit for 2 hours (primacy 1)")
        now = site.clock.now()
        event = Event(
            mrid=MRID("DEMO0001"),
            program="utility-feeder-7",
            primacy=1,
            creation_time=now,
            start=now + 60,
            duration=7200,
            controls=ControlSet(export_limit_w=500.0),
            response_required=0x03,
            reply_to="/rsps/1/rsp",
        )
        await site.runner.feed(EventReceived(now, event))
        await site.run_until(START + 60 * 60, step_s)
        say("## the grid fails")
        home.physics.grid.fail()
        await site.run_until(START + 100 * 60, step_s)
        say("## the grid returns")
        home.physics.grid.restore()
        await site.run_until(START + 150 * 60, step_s)
        home.sync()
        out.write("\n")
        out.write(f"control cycles over Modbus: {site.runner.cycles}\n")
        out.write(f"violations recorded by the simulated home: {len(home.violations)}\n")
        for v in home.violations:
            out.write(f"  {v}\n")
        out.write(f"EV state of charge at the end: {home.physics.charger.soc_pct:.1f} %\n")
        audit = store.audit()
        confirmed = sum(1 for r in audit if r.outcome.startswith("confirmed"))
        failed = sum(1 for r in audit if r.outcome.startswith("failed"))
        out.write(f"audit log: {len(audit)} records, {confirmed} confirmed, {failed} failed\n")
        out.write(f"north reports still unacknowledged: {len(store.pending())}\n")
        on_grid = site.engine.phase.value == "grid_connected"
        return 1 if home.violations or not on_grid else 0


def _printer(say: Callable[[str], None]) -> Callable[[Action], None]:
    def show(a: Action) -> None:
        match a:
            case RelayCommand() | ChargerCommand() | DerLimit():
                say(f"  -> {_describe(a)}  because {a.reason}")
            case NorthReport():
                say(f"  => utility: Response {a.code} for {a.subject}")
            case Alarm():
                say(f"  !! {a.severity.value}: {a.message}")
            case Note():
                say(a.message)
            case _:
                pass

    return show
