"""One schedule per north link, combined only when the engine resolves what is in force.

A site may follow a 2030.5 server, an OpenADR 2.0b VTN and an OpenADR 3 VTN at once. Each link
keeps its own :class:`~gateway.core.schedule.Schedule` (keyed by the event's ``origin``), so:

* the 2030.5 event rules (primacy, supersession, response codes) act inside one link only: an
  OpenADR event never supersedes a DERControl (no 7 goes to the 2030.5 server because a VTN
  asked for something) and a DERControl never silences an OpenADR event;
* a link's cancel reaches its own events only (:meth:`Schedules.cancel` with the origin);
* every response comes out with its event's origin, so it goes back through the link the event
  came in on;
* each link's DefaultDERControl stands in, inside that link, only where none of its own
  events sets the mode (the 2030.5 rule, unchanged).

Across links, the per-link values are combined by :func:`gateway.core.resolve.pick`, the one
place the composition rules live: limits take the smallest value of any link, booleans whose
``False`` is the safe side are ANDed, and a setpoint comes from the first of :data:`LINKS` that
sets it, events before defaults (a default of one link never overrides another link's active
event on a setpoint; a default *limit* still holds against other links' events, as a limit of
any link always does: docs/architecture.md "Several north links").

mRIDs are unique across links by construction (2030.5 mRIDs are 128-bit hex; the OpenADR
mappers prefix theirs with their link kind); an offer whose mRID another link already holds is
refused 253 without being recorded, since the store keeps events by mRID.

Standard library and core only, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from gateway.core.controls import ControlSet, Mode
from gateway.core.resolve import Claim, pick
from gateway.core.schedule import (
    Event,
    EventRecord,
    InForce,
    ResponseCode,
    ResponseDue,
    Schedule,
    should_post,
)
from gateway.core.units import MRID, Timestamp

#: The north links by setpoint precedence, first wins. 2030.5 first: under CSIP / Rule 21 /
#: CSIP-AUS it is the utility's interconnection control channel (the distribution network's
#: own limits and modes); OpenADR is the market / demand-response channel, and 2.0b before 3
#: only because 2.0b programs are the older, contract-backed DR programs. Limits do not use
#: this order: every link's limit holds.
LINKS: Final = ("sep2", "openadr2", "openadr3")
#: The link whose defaults and re-rankings an input without an origin is about (only 2030.5
#: has DefaultDERControl and program primacy changes).
DEFAULT_LINK: Final = "sep2"


def link_rank(origin: str) -> int:
    """Setpoint precedence of ``origin``: lower wins; unknown links come last."""
    return LINKS.index(origin) if origin in LINKS else len(LINKS)


def _order(origin: str) -> tuple[int, str]:
    return link_rank(origin), origin


class Schedules:
    """Every link's schedule. Pure: time is always passed in."""

    def __init__(
        self,
        *,
        draw: Callable[[int], int],
        supported_modes: frozenset[Mode] = frozenset(Mode),
        inert_after_s: float | None = None,
    ) -> None:
        self._draw = draw
        self._supported = supported_modes
        self._inert_after = inert_after_s
        self._by_link: dict[str, Schedule] = {}

    def _make(self) -> Schedule:
        return Schedule(
            draw=self._draw, supported_modes=self._supported, inert_after_s=self._inert_after
        )

    # ------------------------------------------------------------------ the links

    def of(self, origin: str) -> Schedule:
        """``origin``'s schedule (an empty one on first use)."""
        s = self._by_link.get(origin)
        if s is None:
            s = self._by_link[origin] = self._make()
        return s

    @property
    def links(self) -> tuple[str, ...]:
        """The links that have a schedule, by precedence."""
        return tuple(sorted(self._by_link, key=_order))

    def _holder(self, mrid: MRID) -> str | None:
        return next((o for o, s in self._by_link.items() if s.get(mrid) is not None), None)

    # ------------------------------------------------------------------ inputs

    def offer(self, event: Event, now: Timestamp) -> list[ResponseDue]:
        clash = self._foreign(event, now)
        return clash if clash is not None else self.of(event.origin).offer(event, now)

    def reject(self, event: Event, now: Timestamp, reason: str) -> list[ResponseDue]:
        clash = self._foreign(event, now)
        return clash if clash is not None else self.of(event.origin).reject(event, now, reason)

    def _foreign(self, event: Event, now: Timestamp) -> list[ResponseDue] | None:
        """253 for an mRID another link holds (None: no clash). Not recorded: the store keeps
        events by mRID and the holder's record must stay as it is."""
        holder = self._holder(event.mrid)
        if holder is None or holder == event.origin:
            return None
        code = ResponseCode.INVALID
        why = f"mRID already used by the {holder} link; not taken"
        post = should_post(code, event.response_required)
        return [
            ResponseDue(
                event.mrid, code, now, event.reply_to, event.origin, event.program, why, post
            )
        ]

    def rerank(
        self, primacies: Mapping[str, int], now: Timestamp, origin: str = DEFAULT_LINK
    ) -> list[ResponseDue]:
        return self.of(origin).rerank(primacies, now)

    def cancel(
        self,
        mrid: MRID,
        now: Timestamp,
        *,
        randomized: bool = False,
        origin: str | None = None,
    ) -> list[ResponseDue]:
        """Cancel ``mrid`` in ``origin``'s schedule; with no origin, in the schedule that holds
        it. A link never cancels another link's event: an mRID it does not hold is a no-op."""
        where = origin if origin is not None else self._holder(mrid)
        if where is None or where not in self._by_link:
            return []
        return self._by_link[where].cancel(mrid, now, randomized=randomized)

    def set_default(
        self, program: str, primacy: int, controls: ControlSet, origin: str = DEFAULT_LINK
    ) -> list[str]:
        return self.of(origin).set_default(program, primacy, controls)

    def clear_default(self, program: str, origin: str = DEFAULT_LINK) -> None:
        if origin in self._by_link:
            self._by_link[origin].clear_default(program)

    def advance(self, now: Timestamp) -> list[ResponseDue]:
        """Every link's lifecycle changes due up to ``now``, in time order (stable: each link's
        own order is kept at equal times, links by precedence)."""
        due: list[ResponseDue] = []
        for origin in self.links:
            due += self._by_link[origin].advance(now)
        due.sort(key=lambda r: r.at)
        return due

    # ------------------------------------------------------------------ queries

    def claims(self, now: Timestamp) -> list[tuple[str, Mode, InForce]]:
        """Every link's value on every mode it sets at ``now`` (its events first, then its
        defaults), by link precedence: what the engine resolves with the other sources."""
        out: list[tuple[str, Mode, InForce]] = []
        for origin in self.links:
            out += [(origin, m, f) for m, f in self._by_link[origin].active(now).items()]
        return out

    def active(self, now: Timestamp) -> dict[Mode, InForce]:
        """The combined value on each mode some link sets at ``now``."""
        by_mode: dict[Mode, list[tuple[str, InForce]]] = {}
        for origin, mode, f in self.claims(now):
            by_mode.setdefault(mode, []).append((origin, f))
        return {m: _combine(m, fs) for m, fs in by_mode.items()}

    def in_force(self, mode: Mode, now: Timestamp) -> InForce:
        """The combined value on ``mode`` at ``now`` (one link: exactly its answer)."""
        answers = [(o, self._by_link[o].in_force(mode, now)) for o in self.links]
        set_ = [(o, f) for o, f in answers if f.value is not None]
        if set_:
            return _combine(mode, set_)
        if answers:
            return answers[0][1]
        return self._make().in_force(mode, now)  # nothing anywhere: an empty schedule's answer

    def next_change(self, now: Timestamp) -> Timestamp | None:
        times = [t for s in self._by_link.values() if (t := s.next_change(now)) is not None]
        return min(times, default=None)

    def get(self, mrid: MRID) -> EventRecord | None:
        holder = self._holder(mrid)
        return None if holder is None else self._by_link[holder].get(mrid)

    # ------------------------------------------------------------------ persistence

    def records(self) -> list[EventRecord]:
        return [r for o in self.links for r in self._by_link[o].records()]

    def take_dirty(self) -> list[EventRecord]:
        return [r for o in self.links for r in self._by_link[o].take_dirty()]

    def defaults(self) -> dict[str, Any]:
        """Every link's defaults as one document: 2030.5's at the top (the document of a
        single-link site, unchanged), the other links' under ``links``."""
        own = self._by_link.get(DEFAULT_LINK)
        doc = own.defaults() if own is not None else {"programs": []}
        others = {
            o: d
            for o in self.links
            if o != DEFAULT_LINK and (d := self._by_link[o].defaults())["programs"]
        }
        if others:
            doc["links"] = others
        return doc

    def restore_defaults(self, doc: Mapping[str, Any]) -> None:
        if doc.get("programs") or DEFAULT_LINK in self._by_link:
            self.of(DEFAULT_LINK).restore_defaults({"programs": doc.get("programs", ())})
        for origin, sub in dict(doc.get("links", {})).items():
            self.of(str(origin)).restore_defaults(sub)

    def restore(self, records: Iterable[EventRecord]) -> None:
        by_link: dict[str, list[EventRecord]] = {}
        for r in records:
            by_link.setdefault(r.event.origin, []).append(r)
        for origin, recs in by_link.items():
            self.of(origin).restore(recs)

    def prune(self, now: Timestamp, *, older_than_s: float) -> list[MRID]:
        gone: list[MRID] = []
        for origin in self.links:
            gone += self._by_link[origin].prune(now, older_than_s=older_than_s)
        return gone


def _combine(mode: Mode, answers: list[tuple[str, InForce]]) -> InForce:
    """The links' answers on ``mode`` combined by the resolver's own rule."""
    pairs = [
        (Claim(f.source, f.value, f.why, o, link_rank(o)), f)
        for o, f in answers
        if f.value is not None and f.source is not None
    ]
    if not pairs:
        return answers[0][1]
    win = pick(mode, [c for c, _ in pairs])
    return next(f for c, f in pairs if c is win)


__all__ = ["DEFAULT_LINK", "LINKS", "Schedules", "link_rank"]
