"""``Event.modes`` is worked out once at construction: it must follow ``controls`` through
``replace`` and a round trip through the store, or the schedule would rank stale modes."""

from __future__ import annotations

from dataclasses import replace

from gateway.core.controls import ControlSet, Mode
from gateway.core.schedule import Event
from gateway.core.units import MRID


def test_modes_follow_the_controls_through_replace_and_the_store() -> None:
    e = Event(MRID("A" * 32), "P", 1, 0.0, 10.0, 60.0, ControlSet(export_limit_w=0.0))
    assert e.modes == frozenset({Mode.EXPORT_LIMIT_W})
    swapped = replace(e, controls=ControlSet(connect=False, import_limit_w=100.0))
    assert swapped.modes == frozenset({Mode.CONNECT, Mode.IMPORT_LIMIT_W})
    assert Event.from_dict(swapped.to_dict()).modes == swapped.modes
    assert "modes" not in e.to_dict()  # derived, never stored
    assert e == replace(e, status=e.status)  # and not part of equality's inputs
