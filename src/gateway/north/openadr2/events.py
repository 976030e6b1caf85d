"""Which events of an oadrDistributeEvent are new, modified, cancelled or gone (pure).

An oadrDistributeEvent (and the answer to oadrRequestEvent) carries **every** event the VTN
holds for this VEN, so the list is compared with what the gateway already knows:

* new event id -> decide (see :mod:`.mapping`), offer its interval events to the core;
* known id, higher modificationNumber -> cancel the old per-interval mRIDs, decide again,
  offer the new ones (the mRIDs carry the modificationNumber);
* known id, same modificationNumber -> nothing; the stored opt is answered again (never
  re-decided, so a restart or a re-poll does not re-opt);
* ``event_status`` ``cancelled`` -> cancel its mRIDs;
* a known id **absent** from the list -> implied cancellation: cancel its mRIDs and forget it
  (2.0b: the VTN's list is complete; openleadr's VEN does not do this, issues #61/#92);
* an id that comes back after that (same modificationNumber or not) is decided again as a new
  event: the list is the VTN's whole truth. Its interval mRIDs get a ``:g<n>`` suffix, since the
  core's schedule never revives a cancelled mRID.

The tracker's state is a JSON document (:meth:`Tracker.to_doc`) that the shell stores after
every distribution, so a restart mid-event resumes without re-opting or re-sending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.core.schedule import Event
from gateway.core.units import MRID
from gateway.north.openadr2.mapping import OK, OPT_IN, Decision

STATE_KEY = "openadr2.events"


@dataclass(frozen=True, slots=True)
class Known:
    """What the gateway decided for one event (at one modificationNumber)."""

    event_id: str
    modification_number: int
    opt: str
    code: int
    reason: str
    mrids: tuple[MRID, ...]
    cancelled: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "mod": self.modification_number,
            "opt": self.opt,
            "code": self.code,
            "reason": self.reason,
            "mrids": list(self.mrids),
            "cancelled": self.cancelled,
        }

    @staticmethod
    def from_doc(event_id: str, doc: Mapping[str, Any]) -> Known:
        mrids = doc["mrids"]
        if not isinstance(mrids, list) or not all(isinstance(m, str) for m in mrids):
            raise ValueError(f"mrids is not a list of strings: {mrids!r}")
        return Known(
            event_id,
            int(doc["mod"]),
            str(doc["opt"]),
            int(doc["code"]),
            str(doc["reason"]),
            tuple(MRID(m) for m in mrids),
            bool(doc.get("cancelled", False)),
        )


@dataclass(frozen=True, slots=True)
class EventResponse:
    """One eventResponse of the oadrCreatedEvent we owe the VTN."""

    event_id: str
    modification_number: int
    opt: str
    code: int = OK
    description: str = "OK"


@dataclass
class Outcome:
    offers: list[Event] = field(default_factory=list)
    cancels: list[MRID] = field(default_factory=list)
    responses: list[EventResponse] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # one line per change, for a person to read
    changed: bool = False  # whether the state document must be stored again


def _descriptor(event: Any) -> tuple[str, int, str, bool]:
    """(event id, modificationNumber, status, response required) or ValueError."""
    if not isinstance(event, Mapping):
        raise ValueError(f"not an event: {event!r}")
    desc = event.get("event_descriptor")
    if not isinstance(desc, Mapping) or not isinstance(desc.get("event_id"), str):
        raise ValueError("no eventDescriptor/eventID")
    mod = desc.get("modification_number", 0)
    if isinstance(mod, bool) or not isinstance(mod, int) or mod < 0:
        raise ValueError(f"event {desc['event_id']}: bad modificationNumber {mod!r}")
    status = str(desc.get("event_status", "far"))
    return desc["event_id"], mod, status, event.get("response_required", "always") == "always"


GONE_KEPT = 256  # ids remembered after an implied cancellation (for their next mRIDs)


class Tracker:
    def __init__(
        self, known: Mapping[str, Known] | None = None, gone: Mapping[str, int] | None = None
    ) -> None:
        self.known: dict[str, Known] = dict(known or {})
        self.gone: dict[str, int] = dict(gone or {})  # event id -> times it left the list

    def to_doc(self) -> dict[str, Any]:
        return {
            "events": {k: v.to_doc() for k, v in self.known.items()},
            "gone": dict(self.gone),
        }

    @staticmethod
    def from_doc(doc: Mapping[str, Any] | None) -> tuple[Tracker, list[str]]:
        """The tracker a stored document describes, and a line per entry it had to drop."""
        known: dict[str, Known] = {}
        problems: list[str] = []
        events = (doc or {}).get("events", {})
        if not isinstance(events, Mapping):
            return Tracker(), [f"stored OpenADR 2.0b event state is not readable: {events!r}"]
        for event_id, entry in events.items():
            try:
                known[str(event_id)] = Known.from_doc(str(event_id), entry)
            except (KeyError, TypeError, ValueError) as e:
                problems.append(f"stored state of event {event_id} dropped: {e}")
        raw_gone = (doc or {}).get("gone", {})
        gone: dict[str, int] = {}
        if isinstance(raw_gone, Mapping):
            gone = {str(k): v for k, v in raw_gone.items() if isinstance(v, int)}
        return Tracker(known, gone), problems

    def distribute(
        self, events: Sequence[Any], decide: Callable[[Mapping[str, Any]], Decision]
    ) -> Outcome:
        """Compare a full event list with what is known; ``decide`` is called once per new
        event or new modificationNumber."""
        out = Outcome()
        seen: set[str] = set()
        for raw in events:
            try:
                event_id, mod, status, respond = _descriptor(raw)
            except ValueError as e:
                out.log.append(f"ignored an event we cannot identify ({e})")
                continue
            seen.add(event_id)
            known = self.known.get(event_id)
            if known is not None and mod < known.modification_number:
                out.log.append(
                    f"event {event_id}: modificationNumber {mod} is older than the "
                    f"{known.modification_number} we hold; kept ours"
                )
            elif status == "cancelled":
                self._cancel(event_id, mod, known, out)
            elif known is not None and mod == known.modification_number:
                pass  # unchanged: answer the stored opt again, decide nothing
            elif status == "completed" and known is None:
                continue  # over before we saw it: nothing to do, no response owed
            else:
                self._decide(raw, event_id, mod, known, decide, out)
            k = self.known.get(event_id)
            if respond and status != "completed" and k is not None:
                out.responses.append(
                    EventResponse(event_id, mod, k.opt, k.code, "OK" if k.code == OK else "ERROR")
                )
        for event_id in [e for e in self.known if e not in seen]:
            k = self.known.pop(event_id)
            out.changed = True
            self.gone[event_id] = self.gone.pop(event_id, 0) + 1
            while len(self.gone) > GONE_KEPT:
                del self.gone[next(iter(self.gone))]
            if not k.cancelled and k.mrids:
                out.cancels.extend(k.mrids)
                out.log.append(f"event {event_id} is no longer listed: implied cancellation")
        return out

    def _cancel(self, event_id: str, mod: int, known: Known | None, out: Outcome) -> None:
        if known is not None and known.cancelled:
            return
        out.changed = True
        if known is None:
            self.known[event_id] = Known(event_id, mod, OPT_IN, OK, "", (), cancelled=True)
            out.log.append(f"event {event_id} arrived already cancelled: nothing to do")
            return
        out.cancels.extend(known.mrids)
        self.known[event_id] = replace(known, modification_number=mod, cancelled=True)
        out.log.append(f"event {event_id} cancelled by the VTN (modificationNumber {mod})")

    def _decide(
        self,
        raw: Mapping[str, Any],
        event_id: str,
        mod: int,
        known: Known | None,
        decide: Callable[[Mapping[str, Any]], Decision],
        out: Outcome,
    ) -> None:
        out.changed = True
        if known is not None and not known.cancelled:
            out.cancels.extend(known.mrids)
        d = decide(raw)
        generation = self.gone.get(event_id, 0)
        if generation:
            out.log.append(f"event {event_id} is listed again after it left the list")
            d = replace(
                d, events=tuple(replace(e, mrid=MRID(f"{e.mrid}:g{generation}")) for e in d.events)
            )
        out.offers.extend(d.events)
        self.known[event_id] = Known(
            event_id, mod, d.opt, d.code, d.reason, tuple(e.mrid for e in d.events)
        )
        what = "modified" if known is not None else "new"
        for note in d.notes:
            out.log.append(f"event {event_id}: {note}")
        if d.opted_in:
            out.log.append(
                f"{what} event {event_id} (modificationNumber {mod}): opted in, "
                f"{len(d.events)} interval(s) to the schedule"
            )
        else:
            out.log.append(
                f"{what} event {event_id} (modificationNumber {mod}): opted out: {d.reason}"
            )
