"""Server time: an offset from the server's ``Time`` resource, never a step of the OS clock.

2030.5 events run on the server's timebase (sep2.md §5.2), and a ``Response.createdDateTime``
must be in it too. The gateway keeps ``offset = server - local`` and schedules in
``local + offset``; the operating system's clock is never touched (a gateway that stepped it
would disturb everything else on the box, and one server with a wrong clock would be enough).

The estimate: ``currentTime`` is whole seconds, read by the server somewhere between our send
and our receipt, so one sample says only that the offset lies in
``[currentTime - received, currentTime + 1 - sent]``; the first guess is the middle of that
(the midpoint of the round trip plus half a second). Each later sample narrows the interval
the offset must lie in (intersected with what earlier samples said, widened by
:data:`DRIFT` for the time since), and the offset is the middle of what is left. So the
estimate closes in on the server's clock instead of jumping by up to a second at every walk
(which made a started event read "not yet" for a moment: found by the AGG-001 tests, where an
aggregator walks once per EndDevice). A sample that agrees with nothing kept (the server's
clock was stepped) starts afresh. A sample taken over a slow round trip (over
:data:`MAX_RTT_S`) is not trusted to move an offset that is already set. ``quality`` is kept
for the status page; 7 ("intentionally uncoordinated") is still followed, as the standard asks:
events are relative to *that* clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.north.sep2.resources import Time

MAX_RTT_S: Final = 5.0  # a round trip slower than this says little about the server's clock
# How far two crystal clocks may drift apart, as a fraction (100 ppm: 8.6 s a day, far more than
# NTP-less hardware drifts): the interval kept from older samples widens at this rate.
DRIFT: Final = 1e-4


@dataclass(frozen=True, slots=True)
class ServerClock:
    """The offset between the server's clock and ours (``server = local + offset_s``)."""

    offset_s: float = 0.0
    quality: int | None = None
    synced_at: float | None = None  # local time of the last accepted sample
    rtt_s: float | None = None
    # What the samples so far allow the offset to be (as of ``synced_at``).
    low_s: float | None = None
    high_s: float | None = None

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    def server(self, local: float) -> float:
        return local + self.offset_s

    def local(self, server: float) -> float:
        return server - self.offset_s

    def update(self, time: Time, *, sent: float, received: float) -> ServerClock:
        """The clock after one ``GET Time`` sent at local ``sent`` and answered at ``received``."""
        rtt = max(0.0, received - sent)
        if self.synced and rtt > MAX_RTT_S:
            return self
        low, high = time.currentTime - received, time.currentTime + 1 - sent
        if self.synced_at is not None and self.low_s is not None and self.high_s is not None:
            grown = DRIFT * max(0.0, received - self.synced_at)
            both = max(low, self.low_s - grown), min(high, self.high_s + grown)
            if both[0] <= both[1]:
                low, high = both
        return ServerClock(
            offset_s=(low + high) / 2,
            quality=time.quality,
            synced_at=received,
            rtt_s=rtt,
            low_s=low,
            high_s=high,
        )
