"""Simulated time for the Modbus home: ``start + monotonic elapsed x speed``, plus manual steps.

The physics never reads the wall clock's time of day: the start instant is given (so a test or
a demo is reproducible), and only the *elapsed* monotonic time is scaled. ``speed=60`` turns the
300 s enter-service delay into 5 s; ``speed=0`` freezes time so that a test moves it with
:meth:`SimClock.advance` alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from gateway.core.units import Timestamp

#: The simulated home's default start: a November afternoon, PV still producing.
DEFAULT_START: Final = datetime(2026, 11, 25, 16, 30, tzinfo=UTC).timestamp()


class SimClock:
    def __init__(
        self,
        start: Timestamp,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("a simulated clock cannot run backwards (speed < 0)")
        self._monotonic = monotonic
        self._origin = monotonic()
        self._base = start
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("a simulated clock cannot run backwards (speed < 0)")
        self._rebase()
        self._speed = speed

    def now(self) -> Timestamp:
        return self._base + (self._monotonic() - self._origin) * self._speed

    def advance(self, seconds: float) -> Timestamp:
        """Step simulated time forward by ``seconds`` (on top of any running speed)."""
        if seconds < 0:
            raise ValueError("a simulated clock cannot step backwards")
        self._base += seconds
        return self.now()

    def _rebase(self) -> None:
        now = self.now()
        self._origin, self._base = self._monotonic(), now
