"""Which OpenADR 3 events the gateway knows, and what changed: new, modified, deleted.

Pure: the shell hands in each program's event list (a poll) or one event (a webhook
notification) and gets back the core inputs to feed and the lines to log. The known set is a
JSON document the shell keeps in the site's store, so a restart resumes without feeding
anything twice.

Rules (docs/openadr3.md):

* new event id -> mapped (``mapping.map_event``); each core event the site would carry out
  (``assess`` empty) is fed as ``EventReceived``; the others are logged and not put in force;
* same id, new digest (the VTN changed anything) -> the new version is mapped as new, then the
  old mRIDs are cancelled (make before break: never a moment with neither). A version the
  codec cannot read is *not* a modification: the old one stays in force and the error is
  logged once per digest of bad text;
* an id that vanishes from its program's list, or is DELETEd by notification, ends: its mRIDs
  are cancelled;
* "not put in force" is final for that version, like an opt-out (OpenADR 3.0 has no opt), so a
  re-poll does not log it again; a new version is judged afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.core.controls import ControlSet
from gateway.core.messages import EventCancelled, EventReceived, Input
from gateway.core.units import MRID, Timestamp
from gateway.north.openadr3.mapping import ORIGIN, Mapped
from gateway.north.openadr3.model import Event

Mapper = Callable[[Event, Timestamp], Mapped]
Assess = Callable[[ControlSet, Timestamp], list[str]]


@dataclass(frozen=True, slots=True)
class Known:
    program_id: str
    digest: str
    mrids: tuple[str, ...]
    start: float | None = None  # span of the intervals put in force (for reports)
    end: float | None = None


@dataclass
class Changes:
    inputs: list[Input] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # one line each, for a person
    followed: list[str] = field(default_factory=list)  # event ids newly put in force

    def extend(self, other: Changes) -> None:
        self.inputs += other.inputs
        self.log += other.log
        self.followed += other.followed


class Tracker:
    def __init__(
        self, mapper: Mapper, assess: Assess, known: dict[str, Known] | None = None
    ) -> None:
        self.mapper = mapper
        self.assess = assess
        self.known: dict[str, Known] = dict(known or {})

    # -----------------------------------------------------------------------------------------

    def sync(
        self,
        program_id: str,
        events: Iterable[Event],
        unreadable: Iterable[str],
        now: Timestamp,
    ) -> Changes:
        """One program's full event list (a poll). ``unreadable``: ids present but not decodable."""
        out = Changes()
        present = set(unreadable)
        for ev in events:
            if ev.program_id != program_id:
                out.log.append(
                    f"event {ev.id} lists program {ev.program_id!r}, polled for {program_id!r}:"
                    " ignored"
                )
                continue
            present.add(ev.id)
            out.extend(self.upsert(ev, now))
        for event_id, k in list(self.known.items()):
            if k.program_id == program_id and event_id not in present:
                out.extend(self.remove(event_id, now, why="is no longer listed by the VTN"))
        return out

    def upsert(self, ev: Event, now: Timestamp) -> Changes:
        """A new or possibly modified event (a poll's item or a POST/PUT notification)."""
        out = Changes()
        old = self.known.get(ev.id)
        if old is not None and old.digest == ev.digest:
            return out
        # Make before break: the new version goes in before the old one is cancelled. The
        # runner carries out each input's device steps before the next input, so cancelling
        # first lifted the limit on the devices until the new version came (found by the
        # conformance suite, OA3-08: the home exported 4.5 kW for 0.2 s between the old 1 kW
        # and the new 2.5 kW limit). Both in force for a moment is the stricter of the two.
        cancels: list[Input] = []
        if old is not None:
            cancels = [EventCancelled(now, MRID(m), origin=ORIGIN) for m in old.mrids]
            out.log.append(f"event {ev.id} modified: {len(old.mrids)} old interval(s) cancelled")
        mapped = self.mapper(ev, now)
        mrids: list[str] = []
        span: list[float] = []
        for reason in mapped.reasons:
            out.log.append(f"event {ev.id}: {reason}")
        for core in mapped.events:
            refusal = self.assess(core.controls, now)
            if refusal:
                out.log.append(
                    f"event {ev.id}: not followed ({core.controls}): " + "; ".join(refusal)
                )
                continue
            out.inputs.append(EventReceived(now, core))
            mrids.append(core.mrid)
            span += [core.start, core.start + core.duration]
        out.inputs += cancels
        if mrids:
            out.followed.append(ev.id)
        else:
            out.log.append(f"event {ev.id}: nothing put in force")
        self.known[ev.id] = Known(
            ev.program_id,
            ev.digest,
            tuple(mrids),
            min(span) if span else None,
            max(span) if span else None,
        )
        return out

    def remove(self, event_id: str, now: Timestamp, *, why: str = "was deleted") -> Changes:
        out = Changes()
        old = self.known.pop(event_id, None)
        if old is None:
            return out
        out.inputs += [EventCancelled(now, MRID(m), origin=ORIGIN) for m in old.mrids]
        out.log.append(f"event {event_id} {why}: {len(old.mrids)} interval(s) cancelled")
        return out

    def event_ids(self, program_id: str | None = None) -> list[str]:
        return [e for e, k in self.known.items() if program_id in (None, k.program_id)]

    # -----------------------------------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        return {
            "events": {
                e: {
                    "program": k.program_id,
                    "digest": k.digest,
                    "mrids": list(k.mrids),
                    "start": k.start,
                    "end": k.end,
                }
                for e, k in self.known.items()
            }
        }

    @staticmethod
    def known_from_doc(doc: dict[str, Any] | None) -> dict[str, Known]:
        """The known set saved by :meth:`to_doc`; entries that do not read are dropped."""
        out: dict[str, Known] = {}
        events = (doc or {}).get("events")
        if not isinstance(events, dict):
            return out
        for e, k in events.items():
            if not isinstance(k, dict):
                continue
            program, digest, mrids = k.get("program"), k.get("digest"), k.get("mrids")
            if (
                isinstance(program, str)
                and isinstance(digest, str)
                and isinstance(mrids, list)
                and all(isinstance(m, str) for m in mrids)
            ):
                start, end = k.get("start"), k.get("end")
                out[str(e)] = Known(
                    program,
                    digest,
                    tuple(mrids),
                    float(start) if isinstance(start, int | float) else None,
                    float(end) if isinstance(end, int | float) else None,
                )
        return out
