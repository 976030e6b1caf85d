"""The engine writes a ramped limit once per step, however often it is asked (issue 16).

Against the reference CSIP-AUS server a ``setGradW`` ramp wrote the PV's limit ~660 times a
second: each write's confirmation is an engine input, a few milliseconds on the line has moved,
and a lower limit is never held back, so every confirmation caused the next write. Here the
engine is fed like that (telemetry every 10 ms, every command confirmed at once) on the pure
home model.
"""

from __future__ import annotations

from collections import deque

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.controls import ControlSet
from gateway.core.engine import Engine
from gateway.core.messages import Action, DefaultsReceived, DerLimit, Input, Note
from gateway.core.ramp import DEFAULT_STEP_S
from gateway.core.site import SiteConfig
from gateway.sim.home import HomeModel

T0 = 1_800_000_000.0 + 2 * 3600  # the simulated PV near its peak
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)
RATE_W_S = 250.0
TARGET_W = 200.0


def _feed(engine: Engine, home: HomeModel, first: Input) -> list[Action]:
    queue: deque[Input] = deque([first])
    out: list[Action] = []
    while queue:
        actions = engine.handle(queue.popleft())
        out += actions
        queue.extend(home.execute(a) for a in actions if isinstance(a, DerLimit))
    return out


def _ramp(intervals: dict[str, float] | None) -> tuple[list[tuple[float, float]], list[str], float]:
    """(time, PV cap) of every PV limit written during a setGradW ramp, the Notes, and the
    export when the ramp began."""
    engine = Engine(CONFIG, draw=lambda _b: 0)
    if intervals is not None:
        engine.pace(intervals)
    home = HomeModel(now=T0, load_w=500.0)
    for _ in range(3):
        home.advance(home.now + 1)
        _feed(engine, home, home.observe())
    start = -home.physics.meter().net_w
    rate = RATE_W_S / (7_000 + 9_600) * 100
    limit = ControlSet(export_limit_w=TARGET_W, ramp_rate_pct_s=rate)
    t0 = home.now
    log = _feed(engine, home, DefaultsReceived(t0, "P", 1, limit))
    while home.now < t0 + (start - TARGET_W) / RATE_W_S + 3:
        home.advance(home.now + 0.01)
        log += _feed(engine, home, home.observe())
    caps = [(home.now, a.max_discharge_w) for a in log if isinstance(a, DerLimit)]
    notes = [a.message for a in log if isinstance(a, Note)]
    assert -home.physics.meter().net_w <= TARGET_W + 1, "the ramp did not reach its limit"
    return caps, notes, start


def test_a_set_grad_w_ramp_writes_the_pv_about_once_a_second() -> None:
    caps, notes, start = _ramp(None)  # no [pacing] anywhere: DEFAULT_STEP_S
    duration = (start - TARGET_W) / RATE_W_S
    assert start > 2000
    # One write per step, and a few for the allocator following the meter; not per input.
    assert len(caps) <= duration / DEFAULT_STEP_S + 4, caps
    ramp_notes = [n for n in notes if n.startswith("ramp of export_limit_w")]
    assert len(ramp_notes) == 2, notes
    assert "one step per 1 s" in ramp_notes[0]
    assert ramp_notes[1] == "ramp of export_limit_w over: 200 W in force"


def test_a_slower_device_interval_slows_the_steps_not_the_ramp() -> None:
    fast, _, start = _ramp({"pv": 1.0, "ev": 1.0})
    slow, _, _ = _ramp({"pv": 3.0})  # the charger at the default: the PV is the slowest
    duration = (start - TARGET_W) / RATE_W_S
    assert len(slow) <= duration / 3.0 + 4, slow
    assert len(slow) < len(fast)


def test_unpaced_the_same_ramp_floods_the_pv() -> None:
    """What pacing prevents: the ramp re-derived on every confirmation (issue 16)."""
    caps, _, _ = _ramp({"pv": 1e-9, "ev": 1e-9})
    assert len(caps) > 500


def test_what_protects_a_limit_never_waits_for_a_ramp_step() -> None:
    """During a paced rising ramp (steps every 5 s): the household load drops, so the PV would
    export past the ramp's line: its limit is lowered at the next reading, not at the next
    step; then opModEnergize = false stops it at once."""
    engine = Engine(CONFIG, draw=lambda _b: 0)
    engine.pace({"pv": 5.0, "ev": 5.0})
    home = HomeModel(now=T0, load_w=1500.0)
    tight = ControlSet(export_limit_w=TARGET_W)
    _feed(engine, home, DefaultsReceived(home.now, "P", 1, tight))
    for _ in range(5):
        home.advance(home.now + 1)
        _feed(engine, home, home.observe())
    rate = 100.0 / (7_000 + 9_600) * 100
    relaxed = ControlSet(export_limit_w=3000.0, ramp_rate_pct_s=rate)
    _feed(engine, home, DefaultsReceived(home.now, "P", 1, relaxed))
    for _ in range(7):  # into the ramp, then 1 s past a step
        home.advance(home.now + 1)
        _feed(engine, home, home.observe())
    assert engine.ramps.ramping() == ["export_limit_w"]
    before = home.pv.limit_w
    home.load_w = 500.0  # 1 kW less load: 1 kW more export
    home.advance(home.now + 0.01)
    acts = _feed(engine, home, home.observe())
    lowered = [a.max_discharge_w for a in acts if isinstance(a, DerLimit)]
    assert lowered, "the PV's limit waited for the ramp's next step"
    assert lowered[0] < before - 500, (before, lowered)
    home.advance(home.now + 0.01)
    off = ControlSet(export_limit_w=3000.0, ramp_rate_pct_s=rate, energize=False)
    acts = _feed(engine, home, DefaultsReceived(home.now, "P", 1, off))
    assert [a.max_discharge_w for a in acts if isinstance(a, DerLimit)] == [0.0]
