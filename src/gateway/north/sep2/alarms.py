"""Alarm edges (BASIC-027): each alarm raised or returned to normal, when it happened.

Sans-I/O. :class:`AlarmDetector` compares the ``DERStatus.alarmStatus`` bits of one control
cycle with the previous cycle's and names every bit that moved as an :class:`AlarmEdge`,
numbered and stamped with the cycle's server time. The runtime stores each edge in the outbox
(with the detector's state, in one transaction) the moment it is seen, and the client POSTs it
as one ``LogEvent`` when the server can take it: an alarm that is raised and clears while the
server is unreachable, or between two telemetry posts, is still reported, in order, with the
time it happened, once.

Both travel as JSON-safe documents (the store's currency): :meth:`AlarmEdge.doc` is an outbox
document told apart from a Response by its ``kind``; :meth:`AlarmDetector.doc` is the state
that makes a restart neither repeat an alarm in force nor miss one that cleared meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.north.sep2.pubsub import LogEvent
from gateway.north.sep2.telemetry import DerAlarm, alarm_changes, alarm_log_event

__all__ = ["KEY_PREFIX", "KIND", "AlarmDetector", "AlarmEdge"]

KIND: Final = "sep2.alarm"  # the outbox documents that are LogEvents, not Responses
KEY_PREFIX: Final = "sep2-alarm|"  # their outbox keys: the prefix and the edge's number
_KNOWN: Final = sum(int(a) for a in DerAlarm)  # bits 11 and up are reserved: never an edge


@dataclass(frozen=True, slots=True)
class AlarmEdge:
    """One alarm raised (or returned to normal) at ``at``, server time."""

    seq: int  # 1, 2, ... over the EndDevice's life; its LogEvent's logEventID (mod 2**16)
    at: float
    alarm: DerAlarm
    raised: bool

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.seq}"

    def doc(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "seq": self.seq,
            "at": self.at,
            "alarm": int(self.alarm),
            "raised": self.raised,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AlarmEdge | None:
        """The edge an outbox document holds; None for any other report (a Response)."""
        if doc.get("kind") != KIND:
            return None
        return cls(
            int(doc["seq"]), float(doc["at"]), DerAlarm(int(doc["alarm"])), bool(doc["raised"])
        )

    def log_event(self) -> LogEvent:
        """The LogEvent, created when the alarm moved (not when it is sent)."""
        return alarm_log_event(self.alarm, self.raised, at=self.at, event_id=self.seq)

    def __str__(self) -> str:
        name = (self.alarm.name or "alarm").lower()
        return f"#{self.seq} {name} {'raised' if self.raised else 'normal'} at {self.at:.0f}"


@dataclass(frozen=True, slots=True)
class AlarmDetector:
    """The alarm bits seen at the last sample and the number of the last edge."""

    bits: int = 0
    seq: int = 0

    def observe(self, bits: int, at: float) -> tuple[AlarmDetector, list[AlarmEdge]]:
        """The edges between the last sample and ``bits`` (lowest bit first), and the detector
        that has seen them. The caller keeps the new detector only once the edges are safe."""
        bits &= _KNOWN
        edges = [
            AlarmEdge(self.seq + n, at, alarm, raised)
            for n, (alarm, raised) in enumerate(alarm_changes(self.bits, bits), start=1)
        ]
        return AlarmDetector(bits, self.seq + len(edges)), edges

    def doc(self) -> dict[str, Any]:
        return {"bits": self.bits, "seq": self.seq}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> AlarmDetector:
        """The detector as stored; a fresh one (no alarm in force, no edge yet) without."""
        if doc is None:
            return cls()
        bits, seq = doc.get("bits"), doc.get("seq")
        if not isinstance(bits, int) or not isinstance(seq, int) or bits < 0 or seq < 0:
            raise ValueError(f"not an alarm detector's state: {dict(doc)!r}")
        return cls(bits & _KNOWN, seq)
