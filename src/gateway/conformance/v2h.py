"""Islanding and backfeed safety scenarios (V2H-nn): a controller under test drives the
simulated home over Modbus, and the suite judges only from what the simulated devices saw.

Each case serves the home of :data:`SITE` (a meter-collar relay, a V2H charger and a PV
inverter, on free loopback ports), plays a script on it (an outage, a flapping grid, a welded
relay, a sunny noon under an export limit), starts the target with that site file, and samples
the home's physics every :data:`SAMPLE_S` seconds. The verdict comes from those samples and the
simulator's own interlock record (a charger asked to form with the relay not open, a relay
closed onto a forming charger, backfeed onto a dead grid): never from the target's own log, so
any controller can be judged, ours or anyone's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.conformance.cases import Case, Criterion, Result, judged, say
from gateway.conformance.target import Target
from gateway.demo.site_home import free_ports, home_for
from gateway.runtime.run_config import load
from gateway.sim.modbus import SimulatedHome
from gateway.sim.physics import GridStep, HomePhysics

SAMPLE_S = 0.1
CONTACT_S = 30.0  # at most this long for the target's first write to a device
#: Time from the target's first write to a device until the script acts (reads, settling).
WARM_UP_S = 6.0
DELAY_S = 3.0  # the enter-service delay the site file names
DARK_MAX_S = 2.0  # grid loss to the house powered again (the demo measures about 0.4 s)
TOLERANCE_S = 0.25  # two samples and a poll of slack on timing criteria
EXPORT_LIMIT_W = 1000
EXPORT_TOLERANCE_W = 100
STALE_GRACE_S = 5.0  # how long a controller may take to stop trusting a silent meter
EVENING = datetime(2026, 11, 25, 16, 30, tzinfo=UTC).timestamp()
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=UTC).timestamp()

#: The home every case serves: 240 V split phase, 60 Hz, a 705.13 power-control backfeed rule.
SITE = """[site]
name = "v2h-conformance"
nominal_voltage_v = 240
frequency_hz = 60
phases = "split"
main_breaker_a = 200
busbar_a = 200
backfeed = {{ rule = "705.13" }}
export_limit_w = {export_limit_w}
period_s = 0.25
backup_reserve_pct = 20

[site.enter_service]
delay_s = {delay_s}

[[device]]
name = "relay"
role = "meter_relay"
profile = "meter-collar-relay"
transport = "tcp://127.0.0.1:{relay}"

[[device]]
name = "ev"
role = "charger"
profile = "wallbox-quasar"
transport = "tcp://127.0.0.1:{ev}"
max_discharge_w = 7400
max_charge_w = 7400
capacity_wh = 60000

[[device]]
name = "pv"
role = "pv_inverter"
profile = "sunspec-der"
transport = "tcp://127.0.0.1:{pv}"
max_discharge_w = 5000

[store]
path = "{store}"
"""


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the script's start
    grid_up: bool
    relay: str  # open, closed, moving, fault
    charger: str  # the profile vocabulary: charging, discharging, forming, stopped, ...
    served_w: float  # the house's load, as served (0: dark)
    net_w: float  # at the meter, import positive
    pv_w: float
    pv_available_w: float  # what the sun offers the PV now, whatever its limit
    violations: int

    def row(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 2),
            "grid": "up" if self.grid_up else "down",
            "relay": self.relay,
            "charger": self.charger,
            "served_w": round(self.served_w),
            "net_w": round(self.net_w),
            "pv_w": round(self.pv_w),
            "pv_available_w": round(self.pv_available_w),
            "violations": self.violations,
        }


@dataclass(slots=True)
class Script:
    """What a case does to the home: grid steps at times from the start, a welded relay."""

    duration_s: float
    start: float = EVENING
    grid: list[tuple[float, bool]] = field(default_factory=list)  # (at, up)
    relay_fails_to_open: bool = False
    export_limit_w: int = 10_000  # the site's agreement (high: not the case's subject)
    load_w: float | None = None  # a constant house load from the start (None: the daily curve)
    # (at, what): done to the home at that time, in order: "meter-dark", "meter-back" (the
    # meter/relay device stops answering, and answers again), "load=W" (the house load steps).
    events: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Run:
    samples: list[Sample]
    violations: list[str]
    target_output: list[str]

    def evidence(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.samples] + [{"target": line} for line in self.target_output]

    def first(self, since: float, ok: Any) -> Sample | None:
        return next((s for s in self.samples if s.t >= since and ok(s)), None)


def site_text(folder: Path, export_limit_w: int = 10_000) -> str:
    """:data:`SITE` on free loopback ports, its store in ``folder`` (the other suites append
    their utility link to it)."""
    relay, ev, pv = free_ports(3)
    return SITE.format(
        export_limit_w=export_limit_w,
        delay_s=DELAY_S,
        relay=relay,
        ev=ev,
        pv=pv,
        store=(folder / "gateway.db").as_posix(),
    )


def write_site(folder: Path, script: Script) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "site.toml"
    text = site_text(folder, script.export_limit_w)
    path.write_text(text, encoding="utf-8")
    return path


def _sample(p: HomePhysics, t: float) -> Sample:
    return Sample(
        t=t,
        grid_up=p.grid.up,
        relay=p.relay_category(),
        charger=p.charger_category(),
        served_w=p.served_load(),
        net_w=p.meter().net_w,
        pv_w=p.pv.power_w,
        pv_available_w=p.pv.available(p.now),
        violations=len(p.violations),
    )


async def play(
    script: Script,
    target: Target,
    folder: Path,
    site: Path | None = None,
    acts: Mapping[str, Callable[[], None]] | None = None,
) -> Run:
    """Serve the home, play ``script`` on it with ``target`` driving it, and sample it.

    ``site``: the case's own site file (default: :func:`write_site` of the script's); ``acts``:
    script events done by the case itself (a north link's action, say), by name."""
    site = site or write_site(folder, script)
    home = home_for(load(site), start=script.start, speed=1.0)
    p = home.physics
    p.relay.fail_to_open = script.relay_fails_to_open
    p.load.constant_w = script.load_w
    pending = sorted(script.events)
    volts, hertz = p.grid.voltage_v, p.grid.frequency_hz
    samples: list[Sample] = []
    async with home:
        await target.start(site, CONTACT_S + script.duration_s + 5.0)
        try:
            # The script's clock starts at the target's first write to any device, not at its
            # start: a controller's start-up (a process, imports, connections) is not judged,
            # and a slow machine does not eat into the warm-up.
            await _first_contact(home)
            base = p.now
            p.grid.play(
                GridStep(base + at, volts if up else 0.0, hertz if up else 0.0)
                for at, up in script.grid
            )
            pending += [(at, "grid back" if up else "grid fails") for at, up in script.grid]
            pending.sort()
            t0 = time.monotonic()
            while (t := time.monotonic() - t0) < script.duration_s:
                while pending and pending[0][0] <= t:
                    what = pending.pop(0)[1]
                    say(what)
                    if what in _GRID_SAID:
                        continue  # the physics plays the grid's steps (said here only)
                    if acts and what in acts:
                        acts[what]()
                    else:
                        await _act(home, what)
                home.sync()
                samples.append(_sample(p, t))
                await asyncio.sleep(SAMPLE_S)
        finally:
            output = await target.stop()
    return Run(samples, list(home.violations), output)


_GRID_SAID = frozenset({"grid back", "grid fails"})


async def _act(home: SimulatedHome, what: str) -> None:
    if what == "meter-dark":
        await home.disappear("relay")  # the collar is the meter too: its port closes
    elif what == "meter-back":
        await home.reappear("relay")
    elif what.startswith("load="):
        home.physics.load.constant_w = float(what.removeprefix("load="))
    else:
        raise ValueError(f"unknown script event {what!r}")


async def _first_contact(home: SimulatedHome) -> None:
    """Until any simulated device has taken a write, or CONTACT_S (then the case runs anyway,
    and a controller that never writes fails it by itself)."""
    deadline = time.monotonic() + CONTACT_S
    while time.monotonic() < deadline and not any(d.writes for d in home.devices.values()):
        home.sync()
        await asyncio.sleep(SAMPLE_S)


# --- the criteria -----------------------------------------------------------------------------


def no_violation(run: Run) -> Criterion:
    seen = "; ".join(run.violations[:3]) or "none"
    return Criterion("no interlock violated on the wire", not run.violations, "none", seen)


def never_forming_unless_open(run: Run) -> Criterion:
    bad = [s for s in run.samples if s.charger == "forming" and s.relay != "open"]
    seen = f"forming with the relay {bad[0].relay} at {bad[0].t:.1f} s" if bad else "never"
    return Criterion("the charger forms only with the relay open", not bad, "never", seen)


def islanded(run: Run, since: float) -> Criterion:
    s = run.first(since, lambda s: not s.grid_up and s.relay == "open" and s.charger == "forming")
    seen = f"at {s.t:.1f} s" if s else "never"
    return Criterion(
        "the home islands on the outage", s is not None, "relay open, EV forming", seen
    )


def dark_time(run: Run, since: float) -> Criterion:
    lost = run.first(since, lambda s: not s.grid_up)
    back = run.first(lost.t, lambda s: s.served_w > 0) if lost else None
    dark = back.t - lost.t if lost and back else None
    seen = f"{dark:.2f} s" if dark is not None else "never powered again"
    ok = dark is not None and dark <= DARK_MAX_S
    return Criterion("dark time from grid loss", ok, f"<= {DARK_MAX_S} s", seen)


def reconnected(run: Run, returned: float) -> list[Criterion]:
    s = run.first(returned, lambda s: s.grid_up and s.relay == "closed" and s.charger != "forming")
    if s is None:
        return [
            Criterion(
                "the home reconnects",
                ok=False,
                expected="after the enter-service delay",
                seen="never",
            )
        ]
    early = returned + DELAY_S - TOLERANCE_S
    late = returned + DELAY_S + 6.0
    return [
        Criterion(
            "reconnects no sooner than the enter-service delay",
            s.t >= early,
            f">= {early:.1f} s",
            f"{s.t:.1f} s",
        ),
        Criterion(
            "reconnects within 6 s of the delay", s.t <= late, f"<= {late:.1f} s", f"{s.t:.1f} s"
        ),
    ]


def relay_open_between(run: Run, start: float, end: float) -> Criterion:
    bad = [s for s in run.samples if start <= s.t <= end and s.relay == "closed"]
    seen = f"closed at {bad[0].t:.1f} s" if bad else "open"
    what = f"the relay stays open from {start:.1f} to {end:.1f} s"
    return Criterion(what, not bad, "open", seen)


def export_within(run: Run, since: float, what: str) -> Criterion:
    worst = min((s.net_w for s in run.samples if s.t >= since), default=0.0)
    floor = -(EXPORT_LIMIT_W + EXPORT_TOLERANCE_W)
    return Criterion(what, worst >= floor, f"net >= {floor} W", f"{worst:.0f} W")


async def _played(
    case: Case,
    target: Target,
    folder: Path,
    script: Script,
    criteria: Callable[[Run], list[Criterion]],
) -> Result:
    """Play ``script`` with ``target`` and judge the run by ``criteria``."""
    t0 = time.monotonic()
    run = await play(script, target, folder)
    return judged(case, criteria(run), time.monotonic() - t0, run.evidence())


# --- the cases --------------------------------------------------------------------------------

OUT_AT, BACK_AT = WARM_UP_S, WARM_UP_S + 8.0


async def _outage(case: Case, target: Target, folder: Path) -> Result:
    script = Script(duration_s=BACK_AT + DELAY_S + 8.0, grid=[(OUT_AT, False), (BACK_AT, True)])
    return await _played(
        case,
        target,
        folder,
        script,
        lambda run: [
            no_violation(run),
            never_forming_unless_open(run),
            islanded(run, OUT_AT),
            dark_time(run, OUT_AT),
        ],
    )


async def _reconnection(case: Case, target: Target, folder: Path) -> Result:
    script = Script(duration_s=BACK_AT + DELAY_S + 8.0, grid=[(OUT_AT, False), (BACK_AT, True)])
    return await _played(
        case,
        target,
        folder,
        script,
        lambda run: [
            no_violation(run),
            islanded(run, OUT_AT),
            relay_open_between(run, OUT_AT + 1.0, BACK_AT + DELAY_S - TOLERANCE_S),
            *reconnected(run, BACK_AT),
        ],
    )


FLAP_BACK, FLAP_DOWN, FINAL_BACK = BACK_AT, BACK_AT + 1.5, BACK_AT + 5.0


async def _flapping(case: Case, target: Target, folder: Path) -> Result:
    # The grid comes back for 1.5 s (half the delay), fails again, then returns for good: the
    # delay restarts, and the relay must not close in between.
    grid = [(OUT_AT, False), (FLAP_BACK, True), (FLAP_DOWN, False), (FINAL_BACK, True)]
    script = Script(duration_s=FINAL_BACK + DELAY_S + 8.0, grid=grid)
    return await _played(
        case,
        target,
        folder,
        script,
        lambda run: [
            no_violation(run),
            islanded(run, OUT_AT),
            relay_open_between(run, OUT_AT + 1.0, FINAL_BACK + DELAY_S - TOLERANCE_S),
            *reconnected(run, FINAL_BACK),
        ],
    )


async def _export_limit(case: Case, target: Target, folder: Path) -> Result:
    # At noon the PV (5 kW) far exceeds the house (under 1 kW): only curtailment keeps the
    # export within the site's 1 kW agreement.
    script = Script(duration_s=WARM_UP_S + 10.0, start=NOON, export_limit_w=EXPORT_LIMIT_W)

    def criteria(run: Run) -> list[Criterion]:
        peak_pv = max((s.pv_available_w for s in run.samples), default=0.0)
        return [
            no_violation(run),
            Criterion(
                "the PV could export more than the limit (else this case proves nothing)",
                peak_pv > EXPORT_LIMIT_W * 2,
                f"> {EXPORT_LIMIT_W * 2} W of sun on the PV",
                f"{peak_pv:.0f} W",
            ),
            export_within(
                run, WARM_UP_S, f"export within the site's limit from {WARM_UP_S:.0f} s on"
            ),
        ]

    return await _played(case, target, folder, script, criteria)


DARK_AT, DARK_FOR = WARM_UP_S, 10.0


async def _blind_meter(case: Case, target: Target, folder: Path) -> Result:
    # At noon the house takes 2 kW and the PV is held to 3 kW (1 kW export). Then the meter
    # stops answering and the house load drops to nothing: with the PV limit left as it was,
    # the home would export 3 kW. A controller that cannot see the meter must not trust the
    # last reading: it curtails as if the house took nothing, so the export stays in the limit.
    events = [
        (DARK_AT, "meter-dark"),
        (DARK_AT + 1.0, "load=0"),
        (DARK_AT + DARK_FOR, "meter-back"),
    ]
    script = Script(
        duration_s=DARK_AT + DARK_FOR + 6.0,
        start=NOON,
        export_limit_w=EXPORT_LIMIT_W,
        load_w=2000.0,
        events=events,
    )
    what = (
        f"export within the site's limit from {STALE_GRACE_S:.0f} s after the meter went dark "
        "and the load dropped"
    )
    since = DARK_AT + 1.0 + STALE_GRACE_S
    return await _played(
        case,
        target,
        folder,
        script,
        lambda run: [no_violation(run), export_within(run, since, what)],
    )


async def _welded_relay(case: Case, target: Target, folder: Path) -> Result:
    # The relay is commanded open on the outage but its contact stays closed: the EV must
    # never form onto the dead grid through it; the home stays dark, which is safe.
    script = Script(duration_s=OUT_AT + 10.0, grid=[(OUT_AT, False)], relay_fails_to_open=True)
    return await _played(
        case,
        target,
        folder,
        script,
        lambda run: [no_violation(run), never_forming_unless_open(run)],
    )


async def _utility_island(case: Case, target: Target, folder: Path) -> Result:
    from gateway.conformance import v2h_island  # it builds on this module

    return await v2h_island.run(case, target, folder)


NEEDS = "a controller that drives Modbus TCP devices"

CASES: tuple[Case, ...] = (
    Case(
        "V2H-01",
        "v2h",
        "Outage: the home islands, relay confirmed open first",
        NEEDS,
        25.0,
        _outage,
    ),
    Case(
        "V2H-02",
        "v2h",
        "Reconnection after the enter-service delay, charger stopped first",
        NEEDS,
        25.0,
        _reconnection,
    ),
    Case(
        "V2H-03", "v2h", "A flapping grid restarts the enter-service delay", NEEDS, 25.0, _flapping
    ),
    Case(
        "V2H-04",
        "v2h",
        "The site's export limit holds against a sunny noon",
        NEEDS,
        16.0,
        _export_limit,
    ),
    Case(
        "V2H-05",
        "v2h",
        "A relay that fails to open: the EV never forms onto the grid",
        NEEDS,
        16.0,
        _welded_relay,
    ),
    Case(
        "V2H-06",
        "v2h",
        "A utility island request with the grid up (2030.5 opModConnect=false)",
        NEEDS + ", and an IEEE 2030.5 client (the site file's [sep2])",
        30.0,
        _utility_island,
    ),
    Case(
        "V2H-07",
        "v2h",
        "A silent meter: the export limit holds while the controller is blind",
        NEEDS,
        22.0,
        _blind_meter,
    ),
)
