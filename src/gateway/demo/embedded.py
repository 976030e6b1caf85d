"""``gateway demo`` (``make demo``): the whole installation on loopback, playing an evening.

In one process and a temporary folder, through the paths a user takes: a test PKI
(``gateway certs init``'s), the simulated 2030.5 utility over mutual TLS (``gateway simulate
utility``'s server), an OpenADR 3 VTN (``gateway simulate vtn``'s), the simulated home a site
file describes (``gateway simulate home SITE.toml``'s) on an accelerated clock, and the gateway
run on that site file exactly as ``gateway run SITE.toml`` runs it, with its local API and
dashboard. A script (:mod:`gateway.demo.scenario`) then plays the evening on the utility side and
at the grid, while a live timeline says what the gateway did and why (its commands, phase
changes and register writes, from its listener and its audit log), and a summary checks, on the
devices themselves, that every request was followed and nothing unsafe happened. Exit status 1
when a check failed, 2 for a bad scenario or option.

The home's physics runs ``PHYSICS_SPEED`` times the wall clock (times ``--speed``), so the sun
and the EV's state of charge move visibly; the gateway's own timing (its control period, the
enter-service delay, the controls' durations) stays real.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, TextIO

from rich.console import Console
from rich.markup import escape

from gateway.core.island import RelayPosition
from gateway.core.messages import (
    Action,
    Alarm,
    ChargerCommand,
    DerLimit,
    NorthReport,
    Note,
    RelayCommand,
)
from gateway.demo.scenario import Step
from gateway.demo.site_home import free_ports, home_for
from gateway.demo.two_terminals import SITE
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import init_pki
from gateway.runtime.cli_run import run
from gateway.runtime.run_config import load
from gateway.sim.modbus import SimulatedHome
from gateway.sim.physics import GridStep
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.utility.records import Program
from gateway.sim.vtn2.pki import init_pki as init_vtn_pki
from gateway.sim.vtn3 import Vtn3Server, VtnState

#: Simulated seconds per wall second at --speed 1: an evening hour in a minute.
PHYSICS_SPEED = 60.0
#: --speed max: the script's waits this much shorter (each step still waits for the one before
#: to show on the devices, and the controls keep their real durations), the physics this fast.
MAX_SCRIPT_SPEED = 3.0
MAX_PHYSICS_SPEED = 120.0
#: The physics starts at 15:30 (simulated UTC, the sun's clock): the sun still high enough
#: for the export limit to bite, and setting while the evening plays.
START = datetime(2026, 11, 25, 15, 30, tzinfo=UTC).timestamp()
DELAY_S = 3.0  # the enter-service delay (IEEE 1547: 0-600 s), short so the demo ends soon
EV_SOC_PCT = 80.0
PIN = 111115
SECRET = "demo-secret"  # noqa: S105 - the simulated VTN's test client, on loopback only
PROGRAM = "evening-flex"
#: What the devices may lag behind a new limit (the read-to-act loop and the ramp), and by how
#: much the meter may pass it while they follow.
SETTLE_S = 3.0
CLOCK_SLACK_S = 1.0
TOLERANCE_W = 300.0
EFFECT_TIMEOUT_S = 30.0
SAMPLE_S = 0.05
PREFIX = "gateway-demo-"

TABLES = """
[sep2]
dcap = "{dcap}"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
chain = "pki/gateway-chain.pem"
serca = "pki/serca.pem"
pin = {pin}
register = true
check_hostname = false

[openadr3]
vtn = "{vtn}"
client_id = "gateway"
client_secret = "{secret}"
ven_name = "demo-home"
ca_file = "vtn-pki/ca.pem"
poll_s = 0.5
report_period_s = 5

[[openadr3.program]]
name = "{program}"

[api]
port = 0
"""


@dataclass(slots=True)
class Sample:
    """The home as its own devices are (the simulator's physics), at wall time ``t``."""

    t: float
    sim_now: float
    relay: RelayPosition
    forming: bool
    live: bool  # the house has power
    grid_up: bool
    net_w: float  # at the meter, + import
    pv_w: float
    pv_available_w: float
    ev_w: float  # + discharge into the home
    soc: float
    load_w: float  # what the house draws
    pv_limit_w: float  # the limit the PV inverter holds (its 704 WMaxLimPct, in W)

    @property
    def curtailed(self) -> bool:
        """The PV gives less than the sun offers."""
        return self.pv_available_w > self.pv_w + 100.0

    def capped(self, limit_w: float) -> bool:
        """On the grid, exporting within ``limit_w``, with the PV inverter holding a limit
        that keeps it there (a low export from PV still ramping up is not a limit obeyed)."""
        return (
            _on_grid(self)
            and -self.net_w <= limit_w + TOLERANCE_W
            and self.pv_limit_w <= limit_w + self.load_w + TOLERANCE_W
        )


@dataclass(slots=True)
class Window:
    """A request the script made, and when it was in force (wall time)."""

    step: Step
    start: float
    end: float
    seen: float | None = None  # when its effect first showed on the devices

    @property
    def judged_until(self) -> float:
        """Its end as the gateway may see it: the server's time reaches the gateway in whole
        seconds (2030.5 TimeType), so its clock may run up to a second ahead."""
        return self.end - CLOCK_SLACK_S

    @property
    def judged_from(self) -> float:
        """Where the devices are held to it: once it showed (the link's poll, the ramp)."""
        return self.seen if self.seen is not None else self.start + SETTLE_S


@dataclass
class Evening:
    """What the script did and what it saw, for the summary."""

    t0: float
    samples: list[Sample] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    grid_fail: list[float] = field(default_factory=list)
    grid_return: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # a step whose effect never showed
    started: dict[str, float] = field(default_factory=dict)  # mRID -> its Response 2 went out
    finished: bool = False

    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def since(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.t >= t]


class _Lines(io.StringIO):
    """The gateway's start-up lines, handed on one by one (the dashboard's URL among them)."""

    def __init__(self, each: Callable[[str], None]) -> None:
        super().__init__()
        self._each = each
        self._part = ""

    def write(self, s: str) -> int:
        self._part += s
        while "\n" in self._part:
            line, self._part = self._part.split("\n", 1)
            self._each(line)
        return len(s)


class Timeline:
    """The live terminal timeline: one line per thing that happened, with why."""

    STYLE: ClassVar[dict[str, str]] = {
        "script": "bold cyan",
        "utility": "bold magenta",
        "vtn": "bold blue",
        "grid": "bold red",
        "gateway": "green",
        "write": "dim",
        "home": "yellow",
        "check": "bold",
    }

    def __init__(self, out: TextIO, t0: float) -> None:
        self.console = Console(file=out, highlight=False, soft_wrap=True)
        self.t0 = t0

    def say(self, who: str, text: str) -> None:
        t = time.monotonic() - self.t0
        style = self.STYLE.get(who, "")
        self.console.print(f"{t:6.2f} s  [{style}]{who:<8}[/]  {escape(text)}")

    def line(self, text: str = "", style: str = "") -> None:
        self.console.print(f"[{style}]{escape(text)}[/]" if style else escape(text))


def _listener(tell: Timeline, evening: Evening) -> Callable[[Action], None]:
    """The engine's actions as the runner carries them out: commands, limits, phase changes."""

    def watch(a: Action) -> None:
        match a:
            case RelayCommand():
                tell.say("gateway", f"relay {a.position.value}, because {a.reason}")
            case ChargerCommand():
                tell.say("gateway", f"charger {a.mode.value}, because {a.reason}")
            case DerLimit():
                tell.say("gateway", f"{a.der_id} limit {_w(a)}, because {a.reason}")
            case NorthReport():
                if a.code == 2:  # 2030.5 Response "event started": the gateway put it in force
                    evening.started.setdefault(a.subject, time.monotonic())
                tell.say("gateway", f"report {a.code} to {a.origin} for {a.subject}: {a.reason}")
            case Alarm():
                tell.say("gateway", f"alarm {a.severity.value}: {a.message}")
            case Note() if "->" in a.message:
                tell.say("gateway", a.message)
            case _:
                pass

    return watch


def _w(a: DerLimit) -> str:
    return f"discharge up to {a.max_discharge_w:.0f} W, charge up to {a.max_charge_w:.0f} W"


def _audit_tail(db: Path, after: int) -> tuple[int, list[tuple[str, str, str, str, str]]]:
    """Register writes the gateway audited since row ``after`` (read-only, beside the writer)."""
    if not db.exists():
        return after, []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)) as c:
            rows = c.execute(
                "SELECT id, device, point, value, reason, outcome FROM audit WHERE id > ? "
                "ORDER BY id",
                (after,),
            ).fetchall()
    except sqlite3.Error:
        return after, []  # not created yet, or busy: the next look gets them
    out = [(str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows]
    return (int(rows[-1][0]) if rows else after), out


def _sample(home: SimulatedHome, t: float) -> Sample:
    home.sync()
    p = home.physics
    return Sample(
        t=t,
        sim_now=p.now,
        relay=p.relay.position,
        forming=p.forming,
        live=p.load_side_live,
        grid_up=p.grid.up,
        net_w=p.meter().net_w,
        pv_w=p.pv.power_w,
        pv_available_w=p.pv.available(p.now),
        ev_w=p.charger.power_w,
        soc=p.charger.soc_pct,
        load_w=p.served_load(),
        pv_limit_w=p.pv.effective_limit_w,
    )


def _pv_first(site: str) -> str:
    """The site file with the PV listed before the EV: the DERs share the export headroom in
    the order listed (docs/site.md), and the sun should keep it while the EV charges."""
    ev = site[site.index('[[device]]\nname = "ev"') : site.index('[[device]]\nname = "pv"')]
    pv = site[site.index('[[device]]\nname = "pv"') : site.index("[store]")]
    return site.replace(ev + pv, pv + ev)


def _clean_stale() -> None:
    """Remove the temporary folders of demos that were killed (their process is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid_file = folder / "pid"
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge (another user's, or being written)


async def run_embedded(
    out: TextIO,
    steps: Sequence[Step],
    *,
    speed: float | None = 1.0,
    duration_s: float | None = None,
) -> int:
    """Play ``steps``; ``speed`` None is --speed max. 0 when every check held, else 1."""
    _clean_stale()
    with tempfile.TemporaryDirectory(prefix=PREFIX) as tmp:
        folder = Path(tmp)
        (folder / "pid").write_text(str(os.getpid()))
        return await _play(out, folder, steps, speed, duration_s)


async def _play(
    out: TextIO,
    folder: Path,
    steps: Sequence[Step],
    speed: float | None,
    duration_s: float | None,
) -> int:
    t0 = time.monotonic()
    tell = Timeline(out, t0)
    stop = asyncio.Event()
    interrupted: list[int] = []
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):

        def on_signal(sig: int = sig) -> None:
            interrupted.append(sig)
            stop.set()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    physics_speed = MAX_PHYSICS_SPEED if speed is None else PHYSICS_SPEED * speed
    tell.line("gateway demo: a V2H home on loopback, its utility and its VTN", "bold")
    tell.line(
        f"  the home's clock runs {physics_speed:g}x (the sun and the EV move); "
        "the gateway's timing is real"
    )
    pki = init_pki(folder / "pki")
    vtn_pki = init_vtn_pki(folder / "vtn-pki")
    state = UtilityState(clock=time.time, registration_pin=PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    program = state.add_program("feeder 7 evening", primacy=1)
    vtn_state = VtnState(clients={"gateway": SECRET})
    pid = vtn_state.add_program(PROGRAM)
    s = pki.server
    utility = UtilityServer(
        state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=Recorder()
    )
    vtn = Vtn3Server(vtn_state, cert=vtn_pki.vtn.cert, key=vtn_pki.vtn.key, notify_ca=vtn_pki.ca)
    async with utility, vtn:
        site = folder / "site.toml"
        text = _pv_first(SITE.format(ports=free_ports(3), delay_s=DELAY_S)).replace(
            "'gateway demo site': the simulated home's devices on loopback, no utility link",
            "'gateway demo': the simulated home, utility and VTN on loopback",
        )
        text += TABLES.format(
            dcap=utility.url("/dcap"), pin=PIN, vtn=vtn.url, secret=SECRET, program=PROGRAM
        )
        site.write_text(text, encoding="utf-8")
        config = load(site)
        home = home_for(config, start=START, speed=physics_speed)
        home.physics.charger.soc_pct = EV_SOC_PCT
        tell.line(f"  site file {site}")
        tell.line(f"  2030.5 utility {utility.url('/dcap')} (mutual TLS), OpenADR 3 VTN {vtn.url}")
        evening = Evening(t0)

        def gateway_line(line: str) -> None:
            if line.startswith("local API and dashboard:"):
                tell.line(
                    f"  dashboard: {line.split(': ', 1)[1].split(' ', maxsplit=1)[0]}", "bold green"
                )
            elif line.strip():
                tell.say("gateway", line.strip())

        async with home:
            gateway = asyncio.create_task(
                run(config, _Lines(gateway_line), listener=_listener(tell, evening), stop=stop)
            )
            watcher = asyncio.create_task(_watch(home, evening, tell, folder / "demo.db"))
            rig = Rig(home, state, program, vtn_state, pid, speed, evening, tell)
            script = asyncio.create_task(_script(steps, rig))
            bound = duration_s if duration_s is not None else None
            done, _ = await asyncio.wait(
                {gateway, script}, timeout=bound, return_when=asyncio.FIRST_COMPLETED
            )
            if script in done and script.exception() is None:
                evening.finished = True
            elif not done:
                tell.say("script", f"--duration {duration_s:g} s is up: stopping")
            stop.set()
            script.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await script
            code = await gateway
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            violations = list(home.violations)
    if interrupted:
        tell.line(f"\ninterrupted by signal {interrupted[0]}: the evening did not finish", "bold")
        return 128 + interrupted[0]
    return _summary(tell, evening, code, violations, config.site.site_policy.export_limit_w)


async def _watch(home: SimulatedHome, evening: Evening, tell: Timeline, db: Path) -> None:
    """Sample the home, narrate what it does, and tail the audit log's register writes."""
    audited = 0
    last_status = -1e9
    prev: Sample | None = None
    while True:
        now = time.monotonic()
        s = _sample(home, now)
        evening.samples.append(s)
        if prev is not None:
            if s.live != prev.live:
                tell.say("home", "the house has power" if s.live else "the house is DARK")
            if s.relay is not prev.relay and s.relay is not RelayPosition.UNKNOWN:
                tell.say("home", f"relay {s.relay.value} (read on the relay)")
            if s.forming != prev.forming:
                tell.say("home", "EV forming the home grid" if s.forming else "EV stopped forming")
        prev = s
        audited, rows = _audit_tail(db, audited)
        for device, point, value, reason, outcome in rows:
            if " (" not in device or outcome == "writing":
                continue  # the engine's own command (narrated above), or a write under way
            name = device.split(" (", 1)[0]  # "pv (sunspec-der, unit 1)": a register
            why = reason if len(reason) <= 90 else reason[:87] + "..."  # the full one: audit
            tell.say("write", f"{name}.{point} = {value} ({outcome}) for: {why}")
        if now - last_status >= 4.0:
            last_status = now
            clock = datetime.fromtimestamp(s.sim_now, UTC).strftime("%H:%M")
            tell.say(
                "home",
                f"{clock} sun {s.pv_available_w / 1000:.1f} kW, PV {s.pv_w / 1000:.1f} kW, "
                f"meter {s.net_w / 1000:+.1f} kW (+ import), EV {s.ev_w / 1000:+.1f} kW "
                f"(+ discharge) at {s.soc:.1f} %",
            )
        await asyncio.sleep(SAMPLE_S)


async def _until(evening: Evening, check: Callable[[Sample], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = evening.last()
        if s is not None and check(s):
            return True
        await asyncio.sleep(SAMPLE_S)
    return False


def _on_grid(s: Sample) -> bool:
    return s.relay is RelayPosition.CLOSED and s.grid_up and not s.forming


@dataclass(frozen=True, slots=True)
class Rig:
    """What the script plays on: the home, the utility and its program, the VTN and its."""

    home: SimulatedHome
    state: UtilityState
    program: Program
    vtn: VtnState
    pid: str
    speed: float | None  # None: --speed max
    evening: Evening
    tell: Timeline


async def _script(steps: Sequence[Step], rig: Rig) -> None:
    """Play the steps at their times (scaled), each after the one before showed its effect."""
    evening, tell, speed, state = rig.evening, rig.tell, rig.speed, rig.state
    tell.say("script", "waiting for the gateway to register and settle on the grid")
    ok = await _until(evening, _on_grid, EFFECT_TIMEOUT_S)
    await _until_registered(state)
    if not ok:
        evening.missed.append("the home never settled on the grid")
    begin = time.monotonic()
    for step in steps:
        at = begin + step.at / _script_speed(speed)
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        tell.say("script", step.describe())
        windows = len(evening.windows)
        effect = _apply(step, rig)
        if effect is None:
            continue
        if await _until(evening, effect, _timeout(step, evening)):
            if len(evening.windows) > windows:
                evening.windows[-1].seen = time.monotonic()
        else:
            evening.missed.append(f"{step.describe()}: its effect was not seen on the devices")
            tell.say("check", f"{step.describe()}: NOT seen on the devices")
    # Every request has run its course before the summary judges it.
    end = max((w.end for w in evening.windows), default=time.monotonic())
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    if evening.grid_fail and not await _until(evening, _on_grid, DELAY_S + EFFECT_TIMEOUT_S):
        evening.missed.append("the home did not end on the grid")


def _script_speed(speed: float | None) -> float:
    """How much shorter the script's waits are: at most MAX_SCRIPT_SPEED, whatever --speed
    says, since the requests keep their real durations and the gateway its real timing."""
    return MAX_SCRIPT_SPEED if speed is None else min(speed, MAX_SCRIPT_SPEED)


async def _until_registered(state: UtilityState) -> None:
    deadline = time.monotonic() + EFFECT_TIMEOUT_S
    while not state.end_devices and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def _timeout(step: Step, evening: Evening) -> float:
    if step.kind == "grid_return":  # the island request may still hold the home off the grid
        left = max((w.end for w in evening.windows), default=0.0) - time.monotonic()
        return max(0.0, left) + DELAY_S + EFFECT_TIMEOUT_S
    return EFFECT_TIMEOUT_S


def _apply(step: Step, rig: Rig) -> Callable[[Sample], bool] | None:
    """Carry out one step; what shows it took effect on the devices (None: nothing to see)."""
    evening, tell, home, state, vtn = rig.evening, rig.tell, rig.home, rig.state, rig.vtn
    now = time.monotonic()
    grid = home.physics.grid
    match step.kind:
        case "export_limit" | "island":
            assert step.for_s is not None
            base = (
                DERControlBase(opModExpLimW=ActivePower(round(step.watts or 0.0)))
                if step.kind == "export_limit"
                else DERControlBase(opModConnect=False)
            )
            start = state.now()  # whole seconds of server time: the control ends on one
            mrid = state.add_control(
                rig.program,
                start=start,
                duration=round(step.for_s),
                base=base,
            )
            tell.say("utility", f"DERControl {mrid}: {step.describe()}")
            end = now + (start + round(step.for_s) - time.time())
            evening.windows.append(Window(step, now, end))
            if step.kind == "island":
                return lambda s: s.relay is RelayPosition.OPEN and s.forming
            limit = step.watts or 0.0

            def capped(s: Sample) -> bool:
                # Held to it a period after the gateway said it started (its Response 2):
                # before, the devices may still show an earlier state (PV ramping up again
                # after a reconnect exports little without any limit).
                started = evening.started.get(mrid)
                return started is not None and s.t >= started + 1.0 and s.capped(limit)

            return capped
        case "charge_limit":
            assert step.for_s is not None
            assert step.watts is not None
            # "Charge the EV full, but import no more than the cap": the cap, not the charger's
            # rating, is then what bounds the charging, so the summary can see it followed.
            event = vtn.add_event(
                rig.pid,
                intervals=[{"CHARGE_STATE_SETPOINT": [100], "IMPORT_CAPACITY_LIMIT": [step.watts]}],
                units={"IMPORT_CAPACITY_LIMIT": "W", "CHARGE_STATE_SETPOINT": "PERCENT"},
                start=time.time(),
                duration_s=step.for_s,
                name="evening charge cap",
            )
            tell.say(
                "vtn",
                f"event {event}: CHARGE_STATE_SETPOINT 100 %, IMPORT_CAPACITY_LIMIT "
                f"{step.watts:g} W",
            )
            evening.windows.append(Window(step, now, now + step.for_s))
            limit = step.watts
            return lambda s: s.ev_w < -500 and s.net_w <= limit + TOLERANCE_W
        case "grid_fail":
            grid.play([GridStep(home.clock.now(), 0.0, 0.0)])
            evening.grid_fail.append(now)
            tell.say("grid", "the feeder is de-energised: grid at 0 V")
            return lambda s: not s.grid_up and s.forming and s.live
        case "grid_return":
            volts = home.physics.charger.island_voltage_v
            hz = home.physics.charger.island_frequency_hz
            grid.play([GridStep(home.clock.now(), volts, hz)])
            evening.grid_return.append(now)
            tell.say("grid", f"the feeder is back: {volts:g} V {hz:g} Hz")
            return _on_grid
        case "wait":
            assert step.for_s is not None
            scale = _script_speed(rig.speed)
            evening.windows.append(Window(step, now, now + step.for_s / scale))
            return None
        case "close_relay":
            home.physics.command_relay(RelayPosition.CLOSED)
            tell.say("home", "someone closes the relay by hand (unsafe on purpose)")
            return None
    return None


# -- the summary --------------------------------------------------------------------------


def _summary(
    tell: Timeline,
    evening: Evening,
    code: int,
    violations: list[str],
    site_export_w: float | None,
) -> int:
    checks: list[tuple[bool, str]] = []
    samples = evening.samples
    tell.line("\nsummary", "bold")
    # Energy served from the EV: its discharge, integrated on the home's own clock.
    wh = sum(
        max(0.0, b.ev_w) * (b.sim_now - a.sim_now) / 3600.0 for a, b in itertools.pairwise(samples)
    )
    tell.line(f"  energy served from the EV: {wh / 1000:.2f} kWh")
    for fail in evening.grid_fail:
        back = min((t for t in evening.grid_return if t > fail), default=None)
        during = [s for s in samples if s.t >= fail and (back is None or s.t < back)]
        dark = _dark_s(during)
        before = next((s for s in samples if s.t >= fail), None)
        already = before is not None and before.forming
        tell.line(
            f"  dark time at the outage: {dark:.2f} s"
            + (" (the home was already on the EV)" if already else "")
        )
        # Rode through: on the EV, and powered from then to the grid's return (an EV that
        # stops forming mid-outage, its watchdog expired say, leaves the house dark).
        on_ev = next((i for i, s in enumerate(during) if s.forming and s.live), None)
        rode = on_ev is not None and all(s.live for s in during[on_ev:])
        checks.append((rode, "the home rode through the outage on the EV's battery"))
        if back is not None:
            ends = [
                w.judged_until
                for w in evening.windows
                if w.step.kind == "island" and w.start < back
            ]
            free = max([back, *ends])
            closed = next((s.t for s in samples if s.t > free and _on_grid(s)), None)
            if closed is not None:
                tell.line(
                    f"  back on the grid {closed - free:.2f} s after the grid returned and no "
                    f"request held it off (enter-service delay {DELAY_S:g} s)"
                )
                held = closed - free >= DELAY_S - 2 * SAMPLE_S
                checks.append((held, "the enter-service delay was held"))
    for start, length, why in _dark_spells(samples):
        tell.line(f"  dark for {length:.2f} s at {start - evening.t0:.2f} s ({why})")
    peak, allowed = _peak_export(evening, site_export_w)
    if peak is not None:
        tell.line(
            f"  peak backfeed at the meter: {peak[0] / 1000:.2f} kW against "
            f"{allowed / 1000:.2f} kW allowed then ({peak[1]})"
        )
        checks.append((peak[0] <= allowed + TOLERANCE_W, "backfeed stayed within its allowance"))
    for w in evening.windows:
        inside = [s for s in samples if w.judged_from <= s.t <= w.judged_until]
        if w.step.kind == "export_limit" and w.step.watts is not None:
            # Judged on the grid (an island exports nothing), from when it first showed.
            on = [s for s in samples if w.judged_from <= s.t <= w.judged_until and _on_grid(s)]
            worst = max((-s.net_w for s in on), default=0.0)
            curtailed = any(s.curtailed for s in on)
            span = on[-1].t - on[0].t if on else 0.0
            checks.append(
                (
                    span >= 1.0 and worst <= w.step.watts + TOLERANCE_W and curtailed,
                    (
                        f"the export limit of {w.step.watts:g} W was followed (export at most "
                        f"{worst:.0f} W over {span:.1f} s on the grid, the PV curtailed)"
                    ),
                )
            )
        if w.step.kind == "charge_limit" and w.step.watts is not None:
            worst = max((s.net_w for s in inside), default=0.0)
            charging = max((-s.ev_w for s in inside), default=0.0)
            checks.append(
                (
                    charging > 500 and worst <= w.step.watts + TOLERANCE_W,
                    (
                        f"the charge limit of {w.step.watts:g} W was followed (the EV charging "
                        f"at up to {charging:.0f} W, import at most {worst:.0f} W)"
                    ),
                )
            )
        if w.step.kind == "island":
            # Off the grid once it showed, until the request ended (a sample's worth of slack).
            off = [s for s in samples if w.start <= s.t <= w.judged_until]
            first = next((s.t for s in off if s.relay is RelayPosition.OPEN and s.forming), None)
            stayed = first is not None and all(
                s.relay is not RelayPosition.CLOSED for s in off if s.t >= first
            )
            after = f"{first - w.start:.2f} s after it arrived" if first is not None else "never"
            kept = "kept open" if stayed else "NOT kept open"
            checks.append((stayed, f"the island request was followed (relay open {after}, {kept})"))
    checks.extend((False, missed) for missed in evening.missed)
    checks.append((not violations, f"interlock violations at the home: {len(violations)}"))
    last = evening.last()
    checks.append((last is not None and _on_grid(last), "the home ended on the grid"))
    checks.append((evening.finished, "the evening played to its end"))
    checks.append((code == 0, f"the gateway stopped cleanly (exit {code})"))
    for ok, what in checks:
        tell.line(f"  {'ok  ' if ok else 'FAIL'}  {what}", "green" if ok else "bold red")
    for v in violations:
        tell.line(f"        {v}", "red")
    good = all(ok for ok, _ in checks)
    tell.line(
        "every check held" if good else "a check FAILED", "bold green" if good else "bold red"
    )
    return 0 if good else 1


def _dark_spells(samples: list[Sample]) -> list[tuple[float, float, str]]:
    """Each time the house lost power: when, for how long (wall time), and why."""
    spells: list[tuple[float, float, str]] = []
    began: tuple[Sample, str] | None = None
    for before, s in itertools.pairwise(samples):
        if not s.live and began is None:
            began = s, _why_dark(before, s)
        elif s.live and began is not None:
            spells.append((began[0].t, s.t - began[0].t, began[1]))
            began = None
    if began is not None:
        spells.append((began[0].t, samples[-1].t - began[0].t, began[1]))
    return spells


def _why_dark(before: Sample, dark: Sample) -> str:
    """What the house was doing as it went dark."""
    if before.forming:
        return "reconnecting: the EV stops forming before the relay closes"
    if not dark.grid_up:
        return "the grid failed: the relay opens, then the EV forms"
    return "islanding: the relay opens before the EV forms"


def _dark_s(samples: list[Sample]) -> float:
    return sum(b.t - a.t for a, b in itertools.pairwise(samples) if not a.live)


def _peak_export(
    evening: Evening, site_export_w: float | None
) -> tuple[tuple[float, str] | None, float]:
    """The largest export at the meter past its settling, and the allowance then in force."""
    worst: tuple[float, str] | None = None
    worst_allowed = 0.0
    for s in evening.samples:
        allowed, why = (site_export_w, "the site's export limit") if site_export_w else (1e9, "")
        for w in evening.windows:
            if w.step.kind == "export_limit" and w.start <= s.t <= w.judged_until:
                if s.t < w.judged_from:
                    allowed = max(allowed, 1e9)  # the devices are still following
                elif w.step.watts is not None and w.step.watts < allowed:
                    allowed, why = w.step.watts, "the utility's export limit"
        export = -s.net_w
        if allowed < 1e9 and (worst is None or export - allowed > worst[0] - worst_allowed):
            worst, worst_allowed = (export, why), allowed
    return worst, worst_allowed
