"""``make demo`` until the full embedded demo exists: a scripted evening on a simulated clock.

An export limit arrives from the utility, the grid fails, the home islands on the EV, the grid
returns and the home reconnects after the enter-service delay. Every decision is printed with
its reason. Nothing sleeps: the clock is simulated, one control cycle per simulated second.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    DerLimit,
    DeviceCommand,
    EventReceived,
    Input,
    NorthReport,
    Note,
    Persist,
    RelayCommand,
    ReportAcked,
)
from gateway.core.schedule import Event
from gateway.core.site import SiteConfig
from gateway.core.units import MRID, Timestamp
from gateway.runtime.wiring import persist, restore_engine
from gateway.sim.home import HomeModel
from gateway.store.api import Store
from gateway.store.memory import MemoryStore

START = datetime(2026, 11, 25, 16, 30, tzinfo=UTC).timestamp()


def demo_site() -> SiteConfig:
    return SiteConfig(
        panel=PanelRating(busbar_a=200, main_breaker_a=200),
        ders=(
            # Allocation order: solar keeps the export headroom first, the EV gets the rest.
            DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
            # 60 kWh: the simulated EV's battery (sim.physics.Storage.capacity_wh).
            DerRating(
                "ev", "charger", max_discharge_w=9_600, max_charge_w=9_600, capacity_wh=60_000
            ),
        ),
        charger_id="ev",
    )


def _clock(t: Timestamp) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


class Demo:
    """Wires the engine to the home model and a store, the way the runtime will."""

    def __init__(
        self,
        out: TextIO,
        *,
        seed: int = 2030,
        store: Store | None = None,
        home: HomeModel | None = None,
        ack_reports: bool = True,
    ) -> None:
        self.out = out
        rng = random.Random(seed)  # noqa: S311 - randomisation offsets, not cryptography
        self.draw: Callable[[int], int] = lambda bound: rng.randint(min(0, bound), max(0, bound))
        self.store: Store = store if store is not None else MemoryStore()
        self.engine = restore_engine(demo_site(), self.store, self.draw)
        self.home = home if home is not None else HomeModel(now=START)
        self.ack_reports = ack_reports
        self.printed = 0

    def say(self, t: Timestamp, text: str) -> None:
        self.out.write(f"{_clock(t)}  {text}\n")
        self.printed += 1

    def feed(self, first: Input) -> None:
        queue: deque[Input] = deque([first])
        while queue:
            actions = self.engine.handle(queue.popleft())
            queue.extend(self._act(actions))

    def _act(self, actions: list[Action]) -> list[Input]:
        persist(self.store, actions)
        follow: list[Input] = []
        for a in actions:
            match a:
                case RelayCommand() | ChargerCommand() | DerLimit():
                    self.say(self.home.now, f"  -> {_describe(a)}  because {a.reason}")
                    follow.append(self.home.execute(a))
                case NorthReport():
                    self.say(a.at, f"  => utility: Response {a.code} for {a.subject}")
                    if self.ack_reports:
                        # The simulated utility answers 201 Created at once.
                        follow.append(ReportAcked(a.at, a.key))
                case Alarm():
                    self.say(a.at, f"  !! {a.severity.value}: {a.message}")
                case Note():
                    self.say(a.at, a.message)
                case Persist():
                    pass
        return follow

    def run_until(self, end: Timestamp, step: float = 1.0) -> None:
        t = self.home.now
        while t < end:
            t += step
            self.home.advance(t)
            self.feed(self.home.observe())


def _describe(cmd: DeviceCommand) -> str:
    match cmd:
        case RelayCommand():
            return f"relay {cmd.position.value}"
        case ChargerCommand():
            if cmd.mode.value == "grid_following":
                return f"charger grid-following {cmd.setpoint_w:+.0f} W"
            return f"charger {cmd.mode.value.replace('_', '-')}"
        case DerLimit():
            return f"{cmd.der_id} limit {cmd.max_discharge_w:.0f} W"


def run_evening(out: TextIO) -> int:
    demo = Demo(out)
    out.write("Scripted evening: 200 A panel, 9.6 kW V2H charger, 7 kW PV, 1.5 kW load\n")
    out.write("Every line is a decision of the engine, with its reason (simulated clock, UTC)\n\n")
    evening(demo)
    h = demo.home
    out.write("\n")
    out.write(f"violations recorded by the simulated home: {len(h.violations)}\n")
    out.write(f"EV state of charge at the end: {h.charger.soc_pct:.1f} %\n")
    out.write(f"device writes in the audit log: {len(demo.store.audit())}\n")
    out.write(f"north reports still unacknowledged: {len(demo.store.pending())}\n")
    return 1 if h.violations or demo.engine.phase.value != "grid_connected" else 0


def evening(demo: Demo) -> None:
    """The script: export limit, outage, island on the EV, grid back, reconnect."""
    h = demo.home
    demo.run_until(START + 5)
    demo.say(h.now, "## the utility sends a 500 W export limit for 2 hours (primacy 1)")
    event = Event(
        mrid=MRID("DEMO0001"),
        program="utility-feeder-7",
        primacy=1,
        creation_time=h.now,
        start=h.now + 60,
        duration=7200,
        controls=ControlSet(export_limit_w=500.0),
        response_required=0x03,
        reply_to="/rsps/1/rsp",
    )
    demo.feed(EventReceived(h.now, event))
    demo.run_until(START + 60 * 60)
    demo.say(h.now, "## the grid fails")
    h.grid.fail()
    demo.run_until(START + 100 * 60)
    demo.say(h.now, "## the grid returns")
    h.grid.restore()
    demo.run_until(START + 150 * 60)
