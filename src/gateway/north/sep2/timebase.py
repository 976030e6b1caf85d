"""Server time: an offset from the server's ``Time`` resource, never a step of the OS clock.

2030.5 events run on the server's timebase (sep2.md §5.2), and a ``Response.createdDateTime``
must be in it too. The gateway keeps ``offset = server - local`` and schedules in
``local + offset``; the operating system's clock is never touched (a gateway that stepped it
would disturb everything else on the box, and one server with a wrong clock would be enough).

The estimate: ``currentTime`` is whole seconds, read by the server somewhere between our send
and our receipt, so the best single guess is the midpoint of the round trip plus half a second.
A sample taken over a slow round trip (over :data:`MAX_RTT_S`) is not trusted to move an
offset that is already set. ``quality`` is kept for the status page; 7 ("intentionally
uncoordinated") is still followed, as the standard asks: events are relative to *that* clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.north.sep2.resources import Time

MAX_RTT_S: Final = 5.0  # a round trip slower than this says little about the server's clock


@dataclass(frozen=True, slots=True)
class ServerClock:
    """The offset between the server's clock and ours (``server = local + offset_s``)."""

    offset_s: float = 0.0
    quality: int | None = None
    synced_at: float | None = None  # local time of the last accepted sample
    rtt_s: float | None = None

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
        midpoint = (sent + received) / 2
        offset = time.currentTime + 0.5 - midpoint
        return ServerClock(offset_s=offset, quality=time.quality, synced_at=received, rtt_s=rtt)
