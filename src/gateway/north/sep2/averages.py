"""Interval averages of the site's measurements, for the readings the mirrors carry (pure).

CSIP-AUS asks for *average* readings (ReadingType ``dataQualifier`` 2, ``kind`` 37,
``intervalLength`` = the post interval; the reference runner finds no other kind for W, var and
V), each over an interval aligned on the clock (a 60 s interval starts on the minute). The
control loop samples the site every cycle (:meth:`Averager.add`); a post takes the mean of the
samples in the last whole interval (:func:`last_interval`, :meth:`Averager.mean`). Times are the
server's (POSIX seconds).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Final

__all__ = ["KEEP_S", "Averager", "last_interval"]

KEEP_S: Final = 3600.0  # samples are kept this long: the longest interval averaged
MAX_SAMPLES: Final = 20_000  # per quantity, whatever the cycle rate (memory bound)


def last_interval(at: float, length: int) -> tuple[int, int]:
    """``(start, end)`` of the last whole ``length``-second interval, aligned on multiples of
    ``length`` (POSIX time), that ended at or before ``at``."""
    if length < 1:
        raise ValueError(f"an interval is at least 1 s; got {length}")
    end = math.floor(at / length) * length
    return end - length, end


class Averager:
    """The samples of each named quantity; ``None`` values (not measured) are not samples."""

    def __init__(self, keep_s: float = KEEP_S) -> None:
        self._keep = keep_s
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def add(self, at: float, values: Mapping[str, float | None]) -> None:
        for name, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            q = self._samples.setdefault(name, deque(maxlen=MAX_SAMPLES))
            if q and at < q[-1][0]:
                q.clear()  # the server clock stepped back: old samples would land in new intervals
            q.append((at, float(value)))
            while q and q[0][0] < at - self._keep:
                q.popleft()

    def mean(self, name: str, start: float, end: float) -> float | None:
        """The mean of ``name``'s samples in ``[start, end)``; None when there are none."""
        got = [v for t, v in self._samples.get(name, ()) if start <= t < end]
        return sum(got) / len(got) if got else None
