"""The home's islanding state machine, as data.

The table :data:`TRANSITIONS` is the whole machine: :func:`apply` is the only way to move, an
illegal (phase, trigger) pair raises, and ``docs/architecture.md`` draws its diagram from the
same table (:func:`mermaid`). The engine decides *when* a trigger fires (guards need telemetry);
this module decides *where* it leads and what each phase wants from the devices.

The issue's five stages (GRID_CONNECTED → ISLANDING → ISLANDED → RECONNECT_WAIT → RECONNECTING,
plus FAULT) are split into phases, one per safety step, so that every step is a state with its
own confirmation (``shared/domain/devices.md`` §4.2-4.3):

    islanding:    STOPPING_EXPORT → OPENING_RELAY (confirm open by read-back) → FORMING
    reconnecting: STOPPING_FORMING (confirm zero power) → CLOSING_RELAY (confirm closed)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, unique
from typing import Final

from gateway.core import errors
from gateway.core.units import Seconds, Timestamp


@unique
class Stage(Enum):
    GRID_CONNECTED = "grid-connected"
    ISLANDING = "islanding"
    ISLANDED = "islanded"
    RECONNECT_WAIT = "reconnect-wait"
    RECONNECTING = "reconnecting"
    FAULT = "fault"


@unique
class Phase(Enum):
    GRID_CONNECTED = "grid_connected"
    STOPPING_EXPORT = "stopping_export"
    OPENING_RELAY = "opening_relay"
    FORMING = "forming"
    ISLANDED = "islanded"
    RECONNECT_WAIT = "reconnect_wait"
    STOPPING_FORMING = "stopping_forming"
    CLOSING_RELAY = "closing_relay"
    FAULT = "fault"

    @property
    def stage(self) -> Stage:
        return _STAGE[self]


_STAGE: Final = {
    Phase.GRID_CONNECTED: Stage.GRID_CONNECTED,
    Phase.STOPPING_EXPORT: Stage.ISLANDING,
    Phase.OPENING_RELAY: Stage.ISLANDING,
    Phase.FORMING: Stage.ISLANDING,
    Phase.ISLANDED: Stage.ISLANDED,
    Phase.RECONNECT_WAIT: Stage.RECONNECT_WAIT,
    Phase.STOPPING_FORMING: Stage.RECONNECTING,
    Phase.CLOSING_RELAY: Stage.RECONNECTING,
    Phase.FAULT: Stage.FAULT,
}


@unique
class Trigger(Enum):
    ISLAND_NEEDED = "island needed"  # utility disconnect, outage detected, or manual request
    ISLAND_NOT_NEEDED = "island no longer needed"
    EXPORT_STOPPED = "export stop confirmed"
    RELAY_OPEN_CONFIRMED = "relay open confirmed by read-back"
    FORMING_CONFIRMED = "grid-forming confirmed"
    FORMING_SKIPPED = "islanded without grid-forming (EV absent, at reserve, or not permitted)"
    GRID_RESTORED = "grid within enter-service window and reconnection permitted"
    GRID_LOST_AGAIN = "grid left the window or permission withdrawn"
    ENTER_SERVICE_ELAPSED = "enter-service delay elapsed"
    FORMING_STOPPED = "grid-forming stopped and zero power confirmed"
    RELAY_CLOSED_CONFIRMED = "relay closed confirmed by read-back"
    STEP_FAILED = "step failed or timed out"
    INTERLOCK_TRIPPED = "interlock tripped"
    RESET_CLOSED = "fault reset with relay confirmed closed"
    RESET_OPEN = "fault reset with relay not confirmed closed"


P = Phase
T = Trigger
TRANSITIONS: Final[dict[tuple[Phase, Trigger], Phase]] = {
    (P.GRID_CONNECTED, T.ISLAND_NEEDED): P.STOPPING_EXPORT,
    (P.STOPPING_EXPORT, T.EXPORT_STOPPED): P.OPENING_RELAY,
    (P.STOPPING_EXPORT, T.ISLAND_NOT_NEEDED): P.GRID_CONNECTED,
    (P.OPENING_RELAY, T.RELAY_OPEN_CONFIRMED): P.FORMING,
    (P.FORMING, T.FORMING_CONFIRMED): P.ISLANDED,
    (P.FORMING, T.FORMING_SKIPPED): P.ISLANDED,
    (P.ISLANDED, T.GRID_RESTORED): P.RECONNECT_WAIT,
    (P.RECONNECT_WAIT, T.GRID_LOST_AGAIN): P.ISLANDED,
    (P.RECONNECT_WAIT, T.ENTER_SERVICE_ELAPSED): P.STOPPING_FORMING,
    (P.STOPPING_FORMING, T.FORMING_STOPPED): P.CLOSING_RELAY,
    # The grid failed again before the relay was told to close: the relay is still open, so the
    # charger may form again (FORMING re-checks the read-back before commanding it).
    (P.STOPPING_FORMING, T.ISLAND_NEEDED): P.FORMING,
    (P.CLOSING_RELAY, T.RELAY_CLOSED_CONFIRMED): P.GRID_CONNECTED,
    (P.FAULT, T.RESET_CLOSED): P.GRID_CONNECTED,
    # Relay open or unknown: re-run the islanding sequence from the relay step; the normal
    # reconnection path (with its enter-service delay) then brings the home back.
    (P.FAULT, T.RESET_OPEN): P.OPENING_RELAY,
}
for _p in Phase:
    if _p is not Phase.FAULT:
        TRANSITIONS[(_p, T.STEP_FAILED)] = P.FAULT
        TRANSITIONS[(_p, T.INTERLOCK_TRIPPED)] = P.FAULT
del _p, P, T

# Phases that are waiting for a device step to be confirmed (their timeout leads to FAULT).
STEP_PHASES: Final = frozenset(
    {
        Phase.STOPPING_EXPORT,
        Phase.OPENING_RELAY,
        Phase.FORMING,
        Phase.STOPPING_FORMING,
        Phase.CLOSING_RELAY,
    }
)


@unique
class RelayPosition(Enum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # treated as CLOSED for every safety decision (devices.md §4.4)


@unique
class ChargerMode(Enum):
    STOPPED = "stopped"  # not energizing: zero power, contactor open or standby
    GRID_FOLLOWING = "grid_following"  # charge/discharge to a setpoint, anti-islanding active
    GRID_FORMING = "grid_forming"  # V2H backup: the charger makes the home's grid


@dataclass(frozen=True, slots=True)
class PhaseWants:
    """What a phase asks of the devices; ``None`` = leave as it is."""

    relay: RelayPosition | None
    charger: ChargerMode
    export: bool


WANTS: Final[dict[Phase, PhaseWants]] = {
    Phase.GRID_CONNECTED: PhaseWants(RelayPosition.CLOSED, ChargerMode.GRID_FOLLOWING, export=True),
    Phase.STOPPING_EXPORT: PhaseWants(None, ChargerMode.STOPPED, export=False),
    Phase.OPENING_RELAY: PhaseWants(RelayPosition.OPEN, ChargerMode.STOPPED, export=False),
    Phase.FORMING: PhaseWants(RelayPosition.OPEN, ChargerMode.GRID_FORMING, export=False),
    Phase.ISLANDED: PhaseWants(RelayPosition.OPEN, ChargerMode.GRID_FORMING, export=False),
    Phase.RECONNECT_WAIT: PhaseWants(RelayPosition.OPEN, ChargerMode.GRID_FORMING, export=False),
    Phase.STOPPING_FORMING: PhaseWants(RelayPosition.OPEN, ChargerMode.STOPPED, export=False),
    Phase.CLOSING_RELAY: PhaseWants(RelayPosition.CLOSED, ChargerMode.STOPPED, export=False),
    # Safe state: charger stopped, relay left where it is (opening or closing it blind could
    # be the unsafe step), no export.
    Phase.FAULT: PhaseWants(None, ChargerMode.STOPPED, export=False),
}


class IllegalTransition(errors.StateError):
    """A trigger that the table does not allow in the current phase: a bug, never input."""

    def __init__(self, phase: Phase, trigger: Trigger) -> None:
        super().__init__(f"no transition from {phase.value} on '{trigger.value}'")
        self.phase = phase
        self.trigger = trigger


@dataclass(frozen=True, slots=True)
class IslandState:
    phase: Phase = Phase.GRID_CONNECTED
    since: Timestamp = 0.0
    reason: str = "initial state"
    # Start of the continuous in-window period while in RECONNECT_WAIT.
    window_since: Timestamp | None = None
    fault: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase.value,
            "since": self.since,
            "reason": self.reason,
            "window_since": self.window_since,
            "fault": self.fault,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> IslandState:
        ws = d.get("window_since")
        fault = d.get("fault")
        since = d["since"]
        if not isinstance(since, int | float) or not (ws is None or isinstance(ws, int | float)):
            raise ValueError(f"malformed island state: {d!r}")
        return cls(
            phase=Phase(d["phase"]),
            since=float(since),
            reason=str(d.get("reason", "")),
            window_since=None if ws is None else float(ws),
            fault=None if fault is None else str(fault),
        )


def can(phase: Phase, trigger: Trigger) -> bool:
    return (phase, trigger) in TRANSITIONS


def apply(state: IslandState, trigger: Trigger, now: Timestamp, reason: str) -> IslandState:
    """Move along the table or raise :class:`IllegalTransition`."""
    try:
        target = TRANSITIONS[(state.phase, trigger)]
    except KeyError:
        raise IllegalTransition(state.phase, trigger) from None
    return replace(
        state,
        phase=target,
        since=now,
        reason=reason,
        window_since=now if target is Phase.RECONNECT_WAIT else None,
        fault=reason if target is Phase.FAULT else None,
    )


@dataclass(frozen=True, slots=True)
class EnterService:
    """IEEE 1547-2018 enter-service criteria (defaults from 1547.1-2020 Table 11)."""

    v_min_pu: float = 0.917
    v_max_pu: float = 1.05
    f_min_hz: float = 59.5
    f_max_hz: float = 60.1
    # The installer's enter-service delay: a 2030.5 default's setESDelay may lengthen it, never
    # shorten it (the floor; core.engine).
    delay_s: Seconds = 300.0
    nominal_v: float = 240.0

    def contains(self, volts: float | None, hertz: float | None) -> bool:
        if volts is None or hertz is None:
            return False
        pu = volts / self.nominal_v
        return self.v_min_pu <= pu <= self.v_max_pu and self.f_min_hz <= hertz <= self.f_max_hz

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.v_min_pu < self.v_max_pu:
            out.append("enter-service voltage window must satisfy 0 < v_min_pu < v_max_pu")
        if not 0 < self.f_min_hz < self.f_max_hz:
            out.append("enter-service frequency window must satisfy 0 < f_min_hz < f_max_hz")
        if not 0 <= self.delay_s <= 600:
            out.append("enter-service delay must be 0-600 s (IEEE 1547-2018)")
        if self.nominal_v <= 0:
            out.append("nominal voltage must be positive")
        return out


@dataclass(frozen=True, slots=True)
class OutageDetect:
    """When the grid counts as failed (meter, grid side of the relay). Wider than the
    enter-service window on purpose: a grid slightly out of the re-entry window is not an outage.
    """

    v_min_pu: float = 0.5
    v_max_pu: float = 1.2
    f_min_hz: float = 57.0
    f_max_hz: float = 61.8
    nominal_v: float = 240.0

    def failed(self, volts: float | None, hertz: float | None) -> bool:
        if volts is None or hertz is None:
            return False  # no reading is not evidence of an outage; staleness is handled apart
        pu = volts / self.nominal_v
        return not (
            self.v_min_pu <= pu <= self.v_max_pu and self.f_min_hz <= hertz <= self.f_max_hz
        )


def mermaid() -> str:
    """The machine as a Mermaid state diagram, generated from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.GRID_CONNECTED.name}"]
    for (src, trig), dst in TRANSITIONS.items():
        if trig in (Trigger.STEP_FAILED, Trigger.INTERLOCK_TRIPPED):
            continue
        lines.append(f"    {src.name} --> {dst.name}: {trig.value}")
    lines.append("    note right of FAULT")
    lines.append("        every phase goes to FAULT on a failed or timed-out step")
    lines.append("        or a tripped interlock; FAULT stops the charger")
    lines.append("    end note")
    return "\n".join(lines)
