"""The state machines are tables: illegal moves raise, legal ones land where the table says."""

from __future__ import annotations

import pytest

from gateway.core.island import (
    TRANSITIONS,
    IllegalTransition,
    IslandState,
    Phase,
    Trigger,
    apply,
)
from gateway.core.schedule import (
    LIFECYCLE,
    IllegalLifecycle,
    Lifecycle,
    ResponseCode,
    lifecycle_after,
)


def test_island_table_moves_and_refuses() -> None:
    s = IslandState(Phase.GRID_CONNECTED, since=0.0)
    s = apply(s, Trigger.ISLAND_NEEDED, 1.0, "outage")
    assert (s.phase, s.since, s.reason) == (Phase.STOPPING_EXPORT, 1.0, "outage")
    with pytest.raises(IllegalTransition, match="stopping_export"):
        apply(s, Trigger.RELAY_CLOSED_CONFIRMED, 2.0, "nonsense")


def test_relay_never_closes_straight_from_an_island() -> None:
    # The only way to CLOSING_RELAY is through STOPPING_FORMING (break before make).
    sources = {src for (src, _), dst in TRANSITIONS.items() if dst is Phase.CLOSING_RELAY}
    assert sources == {Phase.STOPPING_FORMING}
    # And the only way to FORMING is with the relay already open.
    sources = {src for (src, _), dst in TRANSITIONS.items() if dst is Phase.FORMING}
    assert sources == {Phase.OPENING_RELAY, Phase.STOPPING_FORMING}


def test_every_phase_can_fail_safe() -> None:
    for phase in Phase:
        if phase is not Phase.FAULT:
            assert TRANSITIONS[(phase, Trigger.STEP_FAILED)] is Phase.FAULT
            assert TRANSITIONS[(phase, Trigger.INTERLOCK_TRIPPED)] is Phase.FAULT


def test_island_state_round_trips() -> None:
    s = IslandState(Phase.RECONNECT_WAIT, 5.0, "grid back", window_since=5.0)
    assert IslandState.from_dict(s.to_dict()) == s


def test_lifecycle_table_moves_and_refuses() -> None:
    assert lifecycle_after(Lifecycle.PENDING, ResponseCode.STARTED, accepted=True) is (
        Lifecycle.ACTIVE
    )
    with pytest.raises(IllegalLifecycle, match="completed"):
        lifecycle_after(Lifecycle.COMPLETED, ResponseCode.STARTED, accepted=True)
    # 253 for a reused mRID is a report about the server, not a transition of the event.
    assert lifecycle_after(Lifecycle.ACTIVE, ResponseCode.INVALID, accepted=True) is (
        Lifecycle.ACTIVE
    )
    assert all(not src.terminal for src, _ in LIFECYCLE)
