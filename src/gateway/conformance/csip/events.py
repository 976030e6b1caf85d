"""Controls, defaults and precedence: CORE-012/013/022/023, BASIC-009/010 and the precedence
scenarios BASIC-016 ... 026, judged from the simulated devices and the Responses the server
received.

The mode under test is ``opModMaxLimW`` (IEEE 2030.5-2018 §10.10, DERControlBase: the maximum
active power generation, hundredths of a percent of ``setMaxW``): the home's PV inverter (5 kW,
a sunny noon) is a real Modbus device, so what it was held to is what the client did. The
"independent" control of BASIC-024..026 is ``opModFixedW`` (a charge/discharge set-point, % of
the charger's rating), which shares no mode with it (§10.2.3.3, rule t: events that control
different modes do not supersede each other).

Precedence (§10.2.3.3 / §10.10.3.3): of two overlapping events on a mode, the one of the lower
primacy number wins; at equal primacy the later creationTime. A superseded event is answered 7
(Table 27). A DefaultDERControl is in force only while no event of any program sets its mode,
and of several defaults the one of the lower primacy number.

Program names follow the catalogue's titles: "System" and "Service Point" programs, the Service
Point (closer to the DER) the higher priority (primacy 1 against 2).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.conformance.cases import Case, Criterion, Result
from gateway.conformance.csip.session import Session, new_state, result, session
from gateway.conformance.target import Target
from gateway.north.sep2.model import ActivePower, DefaultDERControl, DERControlBase
from gateway.sim.utility import UtilityState
from gateway.sim.utility.records import Program

SETTLE_S = 2.5  # a window's first seconds: the client's poll (2 s) and the device's response
# A window's last half second is not judged: TimeType is whole seconds, so a client's idea of
# the server's time may be off by part of one (a control taking over 0.2 s early is fine).
END_MARGIN_S = 0.5
PV_TOLERANCE_W = 150.0
READY_S = 25.0  # for the client to register and walk once before the scenario starts
SERVICE_POINT, SYSTEM = 1, 2  # primacies


def max_lim(pct: float) -> DERControlBase:
    return DERControlBase(opModMaxLimW=round(pct * 100))


def fixed_w(pct: float) -> DERControlBase:
    return DERControlBase(opModFixedW=round(pct * 100))


@dataclass
class Window:
    """From ``start`` to ``end`` (seconds from the scenario's zero) the PV must be at most
    ``pv_pct`` of its rating (None: unconstrained, it makes what the sun offers)."""

    start: float
    end: float
    pv_pct: float | None
    why: str


@dataclass
class Scenario:
    """What the server holds at zero, what it does on the way, and what the devices must show."""

    setup: Callable[[UtilityState, float], dict[str, str]]  # -> name -> mRID
    windows: Sequence[Window]
    responses: Sequence[tuple[str, int, bool]] = ()  # (control, status, must / must not)
    later: Sequence[tuple[float, Callable[[UtilityState, dict[str, str], float], None]]] = ()
    charger_w: Sequence[tuple[float, float, float]] = ()  # (start, end, watts, + discharge)
    relay: Sequence[tuple[float, float, str]] = ()  # (start, end, "open" | "closed")
    clock_offset_s: float = 0.0  # the server's clock ahead of the wall clock (CORE-005)
    started_within: tuple[str, float, float] | None = None  # control, its 2's createdDateTime


@dataclass
class Sample:
    t: float
    pv_w: float
    available_w: float
    charger_w: float
    relay: str


def _ready(s: Session) -> bool:
    """The client registered and walked to its programs (it GET its DERProgramList)."""
    return any(x.method == "GET" and x.path.endswith("/derp") for x in s.requests())


async def play(case: Case, target: Target, folder: Path, sc: Scenario) -> Result:
    out: list[str] = []
    length = max(
        [w.end for w in sc.windows] + [c[1] for c in sc.charger_w] + [r[1] for r in sc.relay]
    )
    state = new_state(clock=lambda: time.time() + sc.clock_offset_s)
    async with session(folder, target, READY_S + length + 10, state=state, output=out) as s:
        ready = await s.wait(READY_S, lambda: _ready(s))
        zero = float(math.ceil(time.time()) + 1)  # whole seconds: controls start on it
        mrids = sc.setup(s.state, zero + sc.clock_offset_s)  # in the server's time
        s.note("scenario zero", controls=mrids)
        samples: list[Sample] = []
        pending = sorted(sc.later, key=lambda p: p[0])
        while (t := time.time() - zero) < length:
            while pending and t >= pending[0][0]:
                pending.pop(0)[1](s.state, mrids, zero + sc.clock_offset_s)
                s.note(f"server action at {t:.1f} s")
            await s.wait(0.25)
            p, t = s.physics, time.time() - zero
            relay = p.relay.position.name.lower()
            samples.append(Sample(t, p.pv.power_w, p.pv.available(p.now), p.charger.power_w, relay))
        await s.wait(2.0)  # the last Responses
    rated = s.physics.pv.peak_w
    criteria = [
        Criterion("the client was ready before the scenario", ready, "walked to /derp", str(ready))
    ]
    criteria += [_window(w, samples, rated) for w in sc.windows]
    for start, end, watts in sc.charger_w:
        got = [x.charger_w for x in samples if start + SETTLE_S <= x.t < end - END_MARGIN_S]
        worst = max((abs(g - watts) for g in got), default=float("inf"))
        criteria.append(
            Criterion(
                f"the charger holds {watts:+.0f} W from {start + SETTLE_S:.0f} to {end:.0f} s",
                worst <= 300,
                f"{watts:+.0f} W +- 300",
                ", ".join(f"{g:+.0f}" for g in got[:: max(1, len(got) // 6)]) or "no sample",
            )
        )
    for start, end, position in sc.relay:
        got_r = [x.relay for x in samples if start + SETTLE_S <= x.t < end - END_MARGIN_S]
        criteria.append(
            Criterion(
                f"the relay is {position} from {start + SETTLE_S:.0f} to {end:.0f} s",
                bool(got_r) and all(r == position for r in got_r),
                position,
                ", ".join(dict.fromkeys(got_r)) or "no sample",
            )
        )
    if sc.started_within is not None:
        name, lo, hi = sc.started_within
        base = zero + sc.clock_offset_s
        started = [r.createdDateTime for _, r in s.recorder.responses(mrids[name]) if r.status == 2]
        at = [c - base for c in started if c is not None]
        criteria.append(
            Criterion(
                f"control {name} started (Response 2) within its randomisation window",
                bool(at) and lo <= at[0] <= hi,
                f"{lo:.0f}..{hi:.0f} s",
                ", ".join(f"{a:.1f} s" for a in at) or "no Response 2",
            )
        )
    if sc.clock_offset_s:
        stamps = [(x.at, r.createdDateTime) for x, r in s.recorder.responses()]
        off = [c - at for at, c in stamps if c is not None]
        criteria.append(
            Criterion(
                "Responses' createdDateTime in the server's timebase (§11.1: the server's time)",
                bool(off) and all(abs(o) <= 5 for o in off),
                "within 5 s of the server's clock",
                ", ".join(f"{o:+.0f} s" for o in off[:6]) or "no Response",
            )
        )
    for name, status, must in sc.responses:
        codes = [st for st, _ in s.recorder.responses_for(mrids[name])]
        criteria.append(
            Criterion(
                f"control {name} {'is' if must else 'is never'} answered {status}",
                (status in codes) == must,
                f"{'includes' if must else 'excludes'} {status}",
                str(codes),
            )
        )
    s.log += [
        {"sample": round(x.t, 2), "pv_w": round(x.pv_w), "charger_w": round(x.charger_w)}
        for x in samples
    ]
    return result(case, s, criteria, out)


def _window(w: Window, samples: list[Sample], rated: float) -> Criterion:
    got = [x for x in samples if w.start + SETTLE_S <= x.t < w.end - END_MARGIN_S]
    span = f"{w.start + SETTLE_S:.0f}-{w.end:.0f} s"
    seen = ", ".join(f"{x.pv_w:.0f}" for x in got[:: max(1, len(got) // 6)]) or "no sample"
    if w.pv_pct is None:
        short = [x for x in got if x.pv_w < x.available_w - PV_TOLERANCE_W]
        return Criterion(
            f"{span}: the PV is unconstrained ({w.why})",
            bool(got) and not short,
            "what the sun offers",
            seen,
        )
    cap = w.pv_pct / 100 * rated
    over = [x for x in got if x.pv_w > cap + PV_TOLERANCE_W]
    # ... and held at the cap, not below it (a lower control winning would also be "under").
    under = [x for x in got if x.pv_w < min(cap, x.available_w) - 2 * PV_TOLERANCE_W]
    return Criterion(
        f"{span}: the PV is held to {w.pv_pct:.0f} % ({w.why})",
        bool(got) and not over and not under,
        f"{cap:.0f} W (+- {PV_TOLERANCE_W:.0f})",
        seen,
    )


# --- the scenarios ------------------------------------------------------------------------------


def _programs(state: UtilityState, *primacies: int) -> list[Program]:
    names = {SERVICE_POINT: "Service Point", SYSTEM: "System"}
    return [state.add_program(names.get(p, f"primacy {p}"), primacy=p) for p in primacies]


def _default(state: UtilityState, program: Program, pct: float) -> None:
    state.set_default(program, DefaultDERControl("0", max_lim(pct)))


def _at(zero: float, t: float) -> int:
    return round(zero + t)


def basic_016(state: UtilityState, _zero: float) -> dict[str, str]:
    sp, sy = _programs(state, SERVICE_POINT, SYSTEM)
    _default(state, sy, 70)  # the System's default first: arrival order must not decide
    _default(state, sp, 30)
    return {}


def basic_017(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    c = state.add_control(p, start=_at(zero, 6), duration=8, base=max_lim(30))
    return {"A": c}


def basic_018(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    _default(state, p, 70)
    return {"A": state.add_control(p, start=_at(zero, 6), duration=8, base=max_lim(30))}


def basic_019(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    _default(state, p, 70)
    a = state.add_control(p, start=_at(zero, 5), duration=6, base=max_lim(30))
    b = state.add_control(p, start=_at(zero, 11), duration=6, base=max_lim(50))
    return {"A": a, "B": b}


def basic_020(state: UtilityState, zero: float) -> dict[str, str]:
    sp, sy = _programs(state, SERVICE_POINT, SYSTEM)
    _default(state, sy, 80)
    _default(state, sp, 70)
    a = state.add_control(sy, start=_at(zero, 5), duration=6, base=max_lim(30))
    b = state.add_control(sp, start=_at(zero, 11), duration=6, base=max_lim(50))
    return {"A": a, "B": b}


def _overlap(first: int) -> Callable[[UtilityState, float], dict[str, str]]:
    """BASIC-021/022: System 50 % over 4..16 s and Service Point 30 % over 8..14 s, created
    in the order given (``first``'s primacy first), both before either starts."""

    def setup(state: UtilityState, zero: float) -> dict[str, str]:
        sp, sy = _programs(state, SERVICE_POINT, SYSTEM)
        _default(state, sy, 80)
        made = {
            "System": state.add_control(sy, start=_at(zero, 4), duration=12, base=max_lim(50)),
            "Service Point": state.add_control(
                sp, start=_at(zero, 8), duration=6, base=max_lim(30)
            ),
        }
        # The one created first is a second older (creationTime is whole seconds), so the
        # order shows to a client that ranks by creationTime alone.
        older = "System" if first == SYSTEM else "Service Point"
        state.control(made[older]).creation_time -= 2
        return made

    return setup


OVERLAP_WINDOWS = (
    Window(0, 4, 80, "before either: the System's default"),
    Window(4, 8, 50, "the System control alone"),
    Window(8, 14, 30, "both: the Service Point (primacy 1) wins"),
    # The System control was superseded on that mode; it does not resume (§10.2.3.3: a
    # superseded event is terminated), so its program's default holds.
    Window(14, 18, 80, "after the winner: the superseded control does not resume"),
)


def basic_023(state: UtilityState, zero: float) -> dict[str, str]:
    _, sy = _programs(state, SERVICE_POINT, SYSTEM)
    _default(state, sy, 80)
    return {"System": state.add_control(sy, start=_at(zero, 2), duration=16, base=max_lim(50))}


def _023_service_point(state: UtilityState, mrids: dict[str, str], zero: float) -> None:
    sp = next(p for p in state.programs if p.primacy == SERVICE_POINT)
    mrids["Service Point"] = state.add_control(sp, start=_at(zero, 6), duration=5, base=max_lim(30))


def _independent(staggered: str) -> Callable[[UtilityState, float], dict[str, str]]:
    """BASIC-024/025/026: System opModMaxLimW 40 % and Service Point opModFixedW (discharge
    20 % of the charger's 7.4 kW), overlapping; ``staggered`` starts or ends."""

    def setup(state: UtilityState, zero: float) -> dict[str, str]:
        sp, sy = _programs(state, SERVICE_POINT, SYSTEM)
        sy_start, sy_len = 4, 12
        sp_start, sp_len = (
            (4, 12) if staggered == "" else (8, 8) if staggered == "starts" else (4, 7)
        )
        return {
            "System": state.add_control(
                sy, start=_at(zero, sy_start), duration=sy_len, base=max_lim(40)
            ),
            "Service Point": state.add_control(
                sp, start=_at(zero, sp_start), duration=sp_len, base=fixed_w(20)
            ),
        }

    return setup


CLOCK_OFFSET_S = 7200.0
RANDOM_S = 6


def core_021(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    c = state.add_control(
        p, start=_at(zero, 4), duration=12, base=max_lim(30), randomize_start=RANDOM_S
    )
    return {"A": c}


def core_022(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    return {
        "A": state.add_control(p, start=_at(zero, 3), duration=5, base=max_lim(30)),
        "B": state.add_control(p, start=_at(zero, 9), duration=10, base=max_lim(50)),
        "C": state.add_control(p, start=_at(zero, 18), duration=4, base=max_lim(20)),
    }


def _cancel(name: str) -> Callable[[UtilityState, dict[str, str], float], None]:
    def cancel(state: UtilityState, mrids: dict[str, str], _zero: float) -> None:
        state.cancel(mrids[name])

    return cancel


def core_023(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    return {"A": state.add_control(p, start=_at(zero, 4), duration=12, base=max_lim(50))}


def _supersede(state: UtilityState, mrids: dict[str, str], _zero: float) -> None:
    mrids["B"] = state.supersede(mrids["A"], base=max_lim(30))


def basic_009(state: UtilityState, zero: float) -> dict[str, str]:
    (p,) = _programs(state, SYSTEM)
    off = DERControlBase(opModConnect=False)
    return {"A": state.add_control(p, start=_at(zero, 4), duration=8, base=off)}


def _setpoint(base: DERControlBase) -> Callable[[UtilityState, float], dict[str, str]]:
    def setup(state: UtilityState, zero: float) -> dict[str, str]:
        (p,) = _programs(state, SYSTEM)
        return {"A": state.add_control(p, start=_at(zero, 4), duration=8, base=base)}

    return setup


def scenarios() -> dict[str, Scenario]:
    both = (("System", 2, True), ("Service Point", 2, True))
    return {
        "BASIC-016": Scenario(
            basic_016, [Window(0, 8, 30, "the Service Point default (primacy 1) wins")]
        ),
        "BASIC-017": Scenario(
            basic_017,
            [
                Window(0, 6, None, "no default, no control yet"),
                Window(6, 14, 30, "the control"),
                Window(14, 18, None, "after the control: nothing in force"),
            ],
            responses=(("A", 1, True), ("A", 2, True), ("A", 3, True)),
        ),
        "BASIC-018": Scenario(
            basic_018,
            [
                Window(0, 6, 70, "the default"),
                Window(6, 14, 30, "the control wins over the default while active"),
                Window(14, 18, 70, "the default again"),
            ],
            responses=(("A", 2, True), ("A", 3, True)),
        ),
        "BASIC-019": Scenario(
            basic_019,
            [
                Window(0, 5, 70, "the default"),
                Window(5, 11, 30, "control A"),
                Window(11, 17, 50, "control B, back to back (no overlap: half-open intervals)"),
                Window(17, 22, 70, "the default again"),
            ],
            responses=(("A", 3, True), ("B", 3, True), ("A", 7, False), ("B", 7, False)),
        ),
        "BASIC-020": Scenario(
            basic_020,
            [
                Window(0, 5, 70, "the Service Point default (primacy 1)"),
                Window(5, 11, 30, "the System control: an event beats every default"),
                Window(11, 17, 50, "the Service Point control"),
                Window(17, 22, 70, "the Service Point default again"),
            ],
            responses=(("A", 3, True), ("B", 3, True), ("A", 7, False), ("B", 7, False)),
        ),
        "BASIC-021": Scenario(
            _overlap(SYSTEM),
            OVERLAP_WINDOWS,
            responses=(
                ("System", 7, True),
                ("Service Point", 3, True),
                ("Service Point", 7, False),
            ),
        ),
        "BASIC-022": Scenario(
            _overlap(SERVICE_POINT),
            OVERLAP_WINDOWS,
            responses=(
                ("System", 7, True),
                ("Service Point", 3, True),
                ("Service Point", 7, False),
            ),
        ),
        "BASIC-023": Scenario(
            basic_023,
            [
                Window(2, 6, 50, "the System control, started"),
                Window(6, 11, 30, "the Service Point control arrives after: it wins"),
                Window(11, 18, 80, "after it: the superseded System control does not resume"),
            ],
            responses=(("System", 2, True), ("System", 7, True), ("Service Point", 3, True)),
            later=((3.0, _023_service_point),),
        ),
        "BASIC-024": Scenario(
            _independent(""),
            [Window(4, 16, 40, "the System limit, independent of the set-point")],
            responses=(*both, ("System", 7, False), ("Service Point", 7, False)),
            charger_w=((4, 16, 0.2 * 7400),),
        ),
        "BASIC-025": Scenario(
            _independent("starts"),
            [Window(4, 16, 40, "the System limit, kept when the set-point starts")],
            responses=(*both, ("System", 7, False), ("Service Point", 7, False)),
            charger_w=((8, 16, 0.2 * 7400),),
        ),
        "BASIC-026": Scenario(
            _independent("ends"),
            [Window(4, 16, 40, "the System limit, kept after the set-point ends")],
            responses=(*both, ("System", 7, False), ("Service Point", 7, False)),
            charger_w=((4, 11, 0.2 * 7400),),
        ),
        "CORE-005": Scenario(
            basic_017,
            [
                Window(0, 6, None, "before the control, in the server's time"),
                Window(6, 14, 30, "the control, at the server's time (2 h ahead of the wall)"),
                Window(14, 18, None, "after it"),
            ],
            responses=(("A", 2, True), ("A", 3, True)),
            clock_offset_s=CLOCK_OFFSET_S,
        ),
        "CORE-012": Scenario(
            basic_017,
            [
                Window(0, 6, None, "before the control"),
                Window(6, 14, 30, "the control"),
                Window(14, 18, None, "after it"),
            ],
            responses=(("A", 1, True), ("A", 2, True), ("A", 3, True)),
        ),
        "CORE-021": Scenario(
            core_021,
            [
                Window(0, 4, None, "before the earliest start"),
                Window(4 + RANDOM_S, 16, 30, "after the latest randomised start"),
            ],
            responses=(("A", 2, True),),
            started_within=("A", 4, 4 + RANDOM_S + 1),
        ),
        "CORE-022": Scenario(
            core_022,
            [
                Window(3, 8, 30, "control A"),
                Window(9, 15, 50, "control B, until cancelled at 15 s"),
                Window(15, 22, None, "B cancelled; C, cancelled before it started, never runs"),
            ],
            responses=(
                ("A", 1, True),
                ("A", 2, True),
                ("A", 3, True),
                ("B", 1, True),
                ("B", 2, True),
                ("B", 6, True),
                ("B", 3, False),
                ("C", 1, True),
                ("C", 6, True),
                ("C", 2, False),
            ),
            later=((2.0, _cancel("C")), (15.0, _cancel("B"))),
        ),
        "CORE-023": Scenario(
            core_023,
            [
                Window(4, 9, 50, "control A"),
                Window(9, 16, 30, "A superseded by the server at 9 s: its replacement B"),
            ],
            responses=(("A", 7, True), ("A", 3, False), ("B", 2, True), ("B", 3, True)),
            later=((9.0, _supersede),),
        ),
        "BASIC-009": Scenario(
            basic_009,
            [Window(0, 4, None, "connected, before the control")],
            relay=(
                (0, 4, "closed"),
                (4, 12, "open"),  # opModConnect false: disconnected from the grid
                # reconnected after the control, once the enter-service delay (3 s) has passed
                (12 + 3 + 3, 24, "closed"),
            ),
            responses=(("A", 2, True), ("A", 3, True)),
        ),
        "BASIC-013": Scenario(
            _setpoint(fixed_w(-20)),
            [Window(0, 4, None, "before the control")],
            responses=(("A", 2, True), ("A", 3, True)),
            charger_w=((4, 12, -0.2 * 7400),),  # negative: charge, % of setMaxChargeRateW
        ),
        "BASIC-014": Scenario(
            _setpoint(DERControlBase(opModTargetW=ActivePower.from_watts(2000))),
            [Window(0, 4, None, "before the control")],
            responses=(("A", 2, True), ("A", 3, True)),
            charger_w=((4, 12, 2000.0),),
        ),
        "BASIC-010": Scenario(
            basic_017,
            [Window(6, 14, 30, "opModMaxLimW 30 % of setMaxW"), Window(14, 18, None, "after")],
        ),
    }


def case_runner(case_id: str) -> Callable[[Case, Target, Path], Awaitable[Result]]:
    async def run(case: Case, target: Target, folder: Path) -> Result:
        return await play(case, target, folder, scenarios()[case_id])

    return run
