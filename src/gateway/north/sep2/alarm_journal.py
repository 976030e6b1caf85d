"""The alarm journal (BASIC-027): every alarm edge is stored the moment a control cycle sees it.

:class:`AlarmRecorder` runs the sans-I/O :class:`~gateway.north.sep2.alarms.AlarmDetector` on
each cycle's alarm bits. The edges it finds go into the store's outbox, with the detector's new
state, in one transaction: the Responses' outbox, so they are drained by the same
:func:`~gateway.north.sep2.outbox.drain`, in order with the reports around them, each acknowledged
only when the server took its LogEvent, and what was not taken survives a restart. The stored
state makes a restart neither repeat an alarm that is still in force nor miss one that cleared
while the gateway was down (it is reported at the first cycle after, stamped then).

The backlog is bounded: past ``keep`` LogEvents waiting for the server, the oldest are dropped
with a warning that says how many, from when to when, and what to do.
"""

from __future__ import annotations

import logging
import time

from gateway.core.ports import Outbox, OutboxEntry, StorageError
from gateway.north.sep2.alarms import KEY_PREFIX, AlarmDetector, AlarmEdge
from gateway.north.sep2.outbox import trim

__all__ = ["MAX_BACKLOG", "STATE_KEY", "AlarmRecorder"]

log = logging.getLogger(__name__)

STATE_KEY = "sep2.alarms"  # the detector: the alarm bits last seen and the last edge's number
MAX_BACKLOG = 1000  # LogEvents kept for the server; an alarm flapping for hours stays bounded


class AlarmRecorder:
    """Stores each alarm edge of a site as an outbox report, once, when it is seen."""

    def __init__(self, store: Outbox[OutboxEntry], *, keep: int = MAX_BACKLOG) -> None:
        self.store = store
        self.keep = keep
        self.dropped = 0  # edges dropped unsent to keep the backlog bounded
        self._failing = False
        try:
            self._detector = AlarmDetector.from_doc(store.get_state(STATE_KEY))
        except ValueError as e:
            log.error("%s; alarm numbering starts again and alarms in force are re-raised", e)
            self._detector = AlarmDetector()

    @property
    def bits(self) -> int:
        """The alarm bits of the last cycle (as stored)."""
        return self._detector.bits

    def record(self, bits: int, at: float) -> list[AlarmEdge]:
        """The edges since the last cycle, stored; none when nothing moved. A store that cannot
        take them is logged and the same edges are found again at the next cycle (stamped then):
        a control cycle never fails over an alarm report."""
        detector, edges = self._detector.observe(bits, at)
        if not edges:
            return []
        try:
            with self.store.transaction():
                for edge in edges:
                    if not self.store.enqueue(edge.key, edge.doc(), at):
                        log.error("alarm %s: key %s was already used; not reported", edge, edge.key)
                self.store.put_state(STATE_KEY, detector.doc())
        except StorageError as e:
            if not self._failing:
                log.error("alarm edges not stored, retried next cycle: %s", e)
            self._failing = True
            return []
        self._failing = False
        self._detector = detector
        self._trim(at)
        return edges

    def _trim(self, now: float) -> None:
        try:
            dropped = trim(self.store, KEY_PREFIX, self.keep, now)
        except StorageError as e:
            log.error("alarm backlog not trimmed: %s", e)
            return
        if not dropped:
            return
        self.dropped += len(dropped)
        first, last = (AlarmEdge.from_doc(item.doc) for item in (dropped[0], dropped[-1]))
        log.warning(
            "alarm LogEvents waiting for the utility server: dropped the %d oldest (%s .. %s; "
            "%d dropped since start) to keep the newest %d, so the utility will never see "
            "those. Check the link to the server (the errors above) and its LogEventList",
            len(dropped),
            _when(first),
            _when(last),
            self.dropped,
            self.keep,
        )


def _when(edge: AlarmEdge | None) -> str:
    if edge is None:
        return "?"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(edge.at))
    return f"{edge} ({stamp} UTC)"
