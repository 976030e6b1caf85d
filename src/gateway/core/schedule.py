"""The event schedule: which utility event (or default) is in force on each mode, and when.

Protocol-neutral: the 2030.5 adapter offers DERControls, the OpenADR adapters offer events whose
priority they map to primacy. The rules are those of ``shared/domain/sep2.md`` §5.3/§5.4:

* An event's *effective* interval is half-open, ``[start + s, start + s + duration + d)``, where
  ``s`` and ``d`` are drawn once per mRID at first receipt (start offset first, then duration
  offset) and persisted, so re-polls and restarts never draw again.
* Its *actual* interval starts at ``max(effective start, received_at)``: an event whose start has
  passed runs from receipt, and nothing is ever decided retroactively (a late winner supersedes
  from the moment it arrived, not from a start the gateway could not have acted on).
  Cancellation (status 2/3, :meth:`Schedule.cancel`) and server supersession (status 4) truncate
  the actual interval; an event cancelled before it started gets an empty one.
* Supersession is pairwise and per mode: two events with overlapping actual intervals that both
  set mode M; the loser (higher primacy, else older creationTime, else earlier arrival) is dead on
  M from ``max(winner start, loser start)`` for the rest of its run. A superseded event still
  counts as a winner against lower-ranked events over its own interval (the comparison is between
  instructions as published, so the result does not depend on the order of evaluation); a
  cancelled one only up to its cancellation. Rejected events take no part.

Choices where the rules are silent (each one is tested):

* Tie on primacy *and* creationTime: the later arrival (higher ``seq``) wins, as the newer
  instruction, the same reasoning as "later creationTime wins".
* Finality: a lifecycle code once decided is final, and a mode death that has happened is frozen
  in the record. An event that got 7 stays superseded even if its winner is later cancelled, and a
  superseded mode never resumes, except by a re-ranking (next point). Decisions are made
  *before* applying a change at ``now`` (everything due at or before ``now`` under the old state
  happens first), so the outcome does not depend on how often :meth:`Schedule.advance` runs.
  So a change arriving at the very instant an event starts comes after the start (1, 2, 6 with
  a zero-length run, not 1, 6).
* Primacy change (MAINT-005, :meth:`Schedule.rerank`): the programs' new primacies hold from
  ``now``, all at once. Among events not yet ended, an event superseded by a winner that no
  longer outranks it (not cancelled, not superseded by the server, not outranked by a newer
  control of its own program) is reinstated on those modes from ``now``: scheduled again, it
  gets 2 when it starts and 3 at its end; the 7 already sent is not retracted (2030.5 has no
  code for that) and is never sent again, even if it loses again. An event the new order makes
  lose is superseded from ``now`` (never before: a pair whose order a re-ranking changed kills
  no earlier than that re-ranking): 7 at once if it can no longer run, or as for any event
  superseded while active. Queries about the past are answered from the new plan, so a
  reinstated mode's run before its supersession no longer shows.
* responseRequired: bit 0 (0x01) posts 1 Received; bit 1 (0x02) posts 2, 3, 6 and 7; the
  rejections 252/253/254 are posted if either bit is set. Every lifecycle change is *returned*
  as a :class:`ResponseDue` regardless (the engine logs them all and posts those with ``post``).
* Who returns what: :meth:`Schedule.offer` and :meth:`Schedule.cancel` return the responses about
  the mRID they were given (receipt, rejection, an immediate cancellation or server
  supersession; any of its own earlier changes still owed go first). Everything time-driven or
  caused for *other* events (2 for an event whose start has passed, 7 for an event that will now
  never run, delayed 6) comes from the next :meth:`Schedule.advance`, in time order. Call
  ``advance(now)`` after a batch of offers.
* A cancelled event that has not started never starts and gets 6 at once, also for Cancelled with
  Randomization (the end randomisation spreads the *end* of running events; nothing to spread).
  A randomised cancellation whose drawn end falls after the natural end still answers 6 (at the
  natural end): the server cancelled it, so "completed" would be wrong.
* A new mRID that arrives already cancelled (2/3) or superseded (4) gets 1, then 6 or 7, and
  never runs; re-polls are then no-ops.
* An event that sets no mode at all is rejected 252 (nothing in it applies to this gateway; the
  mapper drops modes the gateway does not handle, so this is the usual cause).
* A negative randomizeDuration is clamped so that the effective duration stays positive (the
  standard does not say what a draw longer than the event means).
* mRID reuse with different content gets 253 once, even after the original finished (it reports
  a server fault and is the one code that is not a lifecycle transition); not for a record that
  was itself rejected (the server already has a rejection for that mRID).
* Defaults: at equal primacy the program whose name sorts first wins, so that the choice
  survives a restart without persisting an order. Responses emitted at the same instant come
  out by arrival order of their events, for the same reason.
* ``now`` that goes backwards is treated as standing still for lifecycle decisions (a server
  clock re-sync must not undo history); queries are answered for the time asked.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum, unique
from typing import Any, Final, Protocol

from gateway.core import errors
from gateway.core.controls import ControlSet, Mode, Source
from gateway.core.units import MRID, Timestamp, iso

RANDOMIZE_BOUND_S: Final = 3600  # OneHourRangeType
PRIMACY_MAX: Final = 255  # PrimacyType is UInt8
_INF: Final = math.inf


@unique
class EventStatus(IntEnum):
    """Server-side ``EventStatus.currentStatus``."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_RANDOMIZED = 3
    SUPERSEDED = 4


@unique
class ResponseCode(IntEnum):
    """2030.5 Response status codes (2018 Table 27) that the schedule emits or knows."""

    RECEIVED = 1
    STARTED = 2
    COMPLETED = 3
    OPT_OUT = 4
    OPT_IN = 5
    CANCELLED = 6
    SUPERSEDED = 7
    NOT_APPLICABLE = 252
    INVALID = 253
    EXPIRED = 254


_REJECTIONS: Final = frozenset(
    {ResponseCode.NOT_APPLICABLE, ResponseCode.INVALID, ResponseCode.EXPIRED}
)
_SPECIFIC: Final = frozenset(
    {
        ResponseCode.STARTED,
        ResponseCode.COMPLETED,
        ResponseCode.CANCELLED,
        ResponseCode.SUPERSEDED,
        ResponseCode.OPT_OUT,
        ResponseCode.OPT_IN,
    }
)


def should_post(code: ResponseCode, response_required: int) -> bool:
    """Whether responseRequired asks for ``code`` to be sent north (see module docstring)."""
    if code is ResponseCode.RECEIVED:
        return bool(response_required & 0x01)
    if code in _SPECIFIC:
        return bool(response_required & 0x02)
    return bool(response_required & 0x03)


@unique
class Lifecycle(Enum):
    """The gateway's view of one event. Only moves forward; the last four are terminal, but a
    re-ranking may take SUPERSEDED back to PENDING or ACTIVE (MAINT-005, no response code)."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self not in (Lifecycle.PENDING, Lifecycle.ACTIVE)


_L = Lifecycle
_C = ResponseCode
# The event lifecycle as data: (state, response code) -> next state. The schedule moves an event
# only through this table, except a reinstatement by a re-ranking (MAINT-005), which has no code;
# docs/architecture.md draws its diagram from it.
LIFECYCLE: Final[dict[tuple[Lifecycle, ResponseCode], Lifecycle]] = {
    (_L.PENDING, _C.RECEIVED): _L.PENDING,
    (_L.PENDING, _C.STARTED): _L.ACTIVE,
    (_L.ACTIVE, _C.COMPLETED): _L.COMPLETED,
    (_L.PENDING, _C.CANCELLED): _L.CANCELLED,
    (_L.ACTIVE, _C.CANCELLED): _L.CANCELLED,
    (_L.PENDING, _C.SUPERSEDED): _L.SUPERSEDED,
    (_L.ACTIVE, _C.SUPERSEDED): _L.SUPERSEDED,
    (_L.PENDING, _C.NOT_APPLICABLE): _L.REJECTED,
    (_L.PENDING, _C.INVALID): _L.REJECTED,
    (_L.PENDING, _C.EXPIRED): _L.REJECTED,
}
del _L, _C


class IllegalLifecycle(errors.StateError):
    """A response code the lifecycle table does not allow in the event's state: a bug."""


def lifecycle_after(state: Lifecycle, code: ResponseCode, *, accepted: bool) -> Lifecycle:
    """The state after ``code``. 253 for an mRID reused with new content reports a server fault
    about an event already accepted: it is not a transition of that event."""
    if code is ResponseCode.INVALID and accepted:
        return state
    try:
        return LIFECYCLE[(state, code)]
    except KeyError:
        raise IllegalLifecycle(f"response {int(code)} not allowed in state {state.value}") from None


def lifecycle_mermaid() -> str:
    """The lifecycle as a Mermaid state diagram, generated from :data:`LIFECYCLE`."""
    lines = ["stateDiagram-v2", "    [*] --> PENDING: 1 received"]
    for (src, code), dst in LIFECYCLE.items():
        if code is ResponseCode.RECEIVED:
            continue
        lines.append(f"    {src.name} --> {dst.name}: {int(code)} {code.name.lower()}")
    lines += [f"    {t.name} --> [*]" for t in Lifecycle if t.terminal]
    return "\n".join(lines)


class _RandInt(Protocol):
    def randint(self, a: int, b: int) -> int: ...


def draw_with(rng: _RandInt) -> Callable[[int], int]:
    """A ``draw`` for :class:`Schedule` from an injected RNG (e.g. ``random.Random(seed)``)."""

    def draw(bound: int) -> int:
        return rng.randint(min(0, bound), max(0, bound))

    return draw


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as the north side published it (a DERControl, an OpenADR event)."""

    mrid: MRID
    program: str
    primacy: int
    creation_time: Timestamp
    start: Timestamp
    duration: float  # seconds
    controls: ControlSet
    randomize_start: int = 0
    randomize_duration: int = 0
    status: EventStatus = EventStatus.SCHEDULED
    response_required: int = 0  # 2030.5 HexBinary8 bits
    reply_to: str | None = None
    origin: str = "sep2"  # which north adapter; responses go back through it
    # The modes it sets, worked out once: the schedule reads them for every record at every
    # change, which was half of handling one new event among a few hundred records.
    modes: frozenset[Mode] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", self.controls.modes())

    def problems(self, max_duration_s: float) -> list[str]:
        """Why the event is invalid (253), as sentences; empty = valid."""
        out = list(self.controls.problems())
        if not _finite(self.duration) or self.duration <= 0:
            out.append(f"duration must be a positive number of seconds, got {self.duration!r}")
        elif self.duration > max_duration_s:
            out.append(f"duration {self.duration:g} s is longer than {max_duration_s:g} s")
        if not _finite(self.start):
            out.append(f"start must be a time, got {self.start!r}")
        if not _finite(self.creation_time):
            out.append(f"creationTime must be a time, got {self.creation_time!r}")
        if not _is_int(self.primacy) or not 0 <= self.primacy <= PRIMACY_MAX:
            out.append(f"primacy must be 0..{PRIMACY_MAX}, got {self.primacy!r}")
        for name, v in (
            ("randomizeStart", self.randomize_start),
            ("randomizeDuration", self.randomize_duration),
        ):
            if not _is_int(v) or not -RANDOMIZE_BOUND_S <= v <= RANDOMIZE_BOUND_S:
                out.append(f"{name} must be -3600..3600 s, got {v!r}")
        if not _is_int(self.response_required) or not 0 <= self.response_required <= 0xFF:
            out.append(f"responseRequired must be one byte, got {self.response_required!r}")
        return out

    def same_content(self, other: Event) -> bool:
        """The same event: equal in everything but the server's bookkeeping, its status and
        creationTime. A cancel or supersede is a status change, not new content, and a server
        may restamp creationTime with it (the reference CSIP-AUS server serves its row's
        changed time); what the event *does* (interval, controls, randomisation, primacy,
        program, responses asked for) is what an mRID must keep."""
        same = replace(other, status=self.status, creation_time=self.creation_time)
        return same == self

    def to_dict(self) -> dict[str, Any]:
        return {
            "mrid": str(self.mrid),
            "program": self.program,
            "primacy": self.primacy,
            "creation_time": self.creation_time,
            "start": self.start,
            "duration": self.duration,
            "controls": self.controls.to_dict(),
            "randomize_start": self.randomize_start,
            "randomize_duration": self.randomize_duration,
            "status": int(self.status),
            "response_required": self.response_required,
            "reply_to": self.reply_to,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            mrid=MRID(str(data["mrid"])),
            program=str(data["program"]),
            primacy=data["primacy"],
            creation_time=data["creation_time"],
            start=data["start"],
            duration=data["duration"],
            controls=ControlSet.from_dict(data["controls"]),
            randomize_start=data.get("randomize_start", 0),
            randomize_duration=data.get("randomize_duration", 0),
            status=EventStatus(data.get("status", 0)),
            response_required=data.get("response_required", 0),
            reply_to=data.get("reply_to"),
            origin=str(data.get("origin", "sep2")),
        )


# One lifecycle code decided for an mRID: (code, when it happened in server time, why).
Decision = tuple[ResponseCode, Timestamp, str]
# A frozen per-mode death: (mode, dead from, the winner that killed it).
Death = tuple[Mode, Timestamp, MRID]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Everything that must survive a restart for one mRID (persisted as JSON)."""

    event: Event
    seq: int  # arrival order; breaks ties on primacy and creationTime
    received_at: Timestamp
    start_offset: int = 0  # drawn once from randomizeStart
    duration_offset: int = 0  # drawn once from randomizeDuration
    cancel_status: EventStatus | None = None  # CANCELLED, CANCELLED_RANDOMIZED or SUPERSEDED
    cancelled_at: Timestamp | None = None
    cancel_offset: int = 0  # drawn once for Cancelled with Randomization
    lifecycle: Lifecycle = Lifecycle.PENDING
    history: tuple[Decision, ...] = ()  # every code decided, in order
    emitted: frozenset[ResponseCode] = frozenset()  # the codes already handed to the caller
    superseded: tuple[Death, ...] = ()  # mode deaths that have happened (final but MAINT-005)
    reason: str = ""  # why rejected / superseded / cancelled, for people
    ranked_at: Timestamp | None = None  # when its primacy last changed (MAINT-005)
    revived: tuple[tuple[Mode, Timestamp], ...] = ()  # modes reinstated by a re-ranking, from

    def mode_start(self, mode: Mode) -> Timestamp:
        """Where the event's run on ``mode`` starts: its actual start, or the re-ranking that
        reinstated it on that mode (a reinstated mode is not in force retroactively)."""
        start = max(self.effective_start, self.received_at)
        for m, at in self.revived:
            if m is mode:
                return max(start, at)
        return start

    @property
    def mrid(self) -> MRID:
        return self.event.mrid

    @property
    def codes(self) -> tuple[ResponseCode, ...]:
        return tuple(c for c, _, _ in self.history)

    @property
    def effective_start(self) -> Timestamp:
        return self.event.start + self.start_offset

    @property
    def effective_end(self) -> Timestamp:
        """End before any cancellation."""
        return self.effective_start + self.event.duration + self.duration_offset

    @property
    def span(self) -> tuple[Timestamp, Timestamp]:
        """The actual interval ``[start, end)``: from receipt at the earliest, cut by cancellation.

        Empty (start >= end) for an event cancelled before it started.
        """
        start = max(self.effective_start, self.received_at)
        end = self.effective_end
        if self.cancelled_at is not None:
            end = min(end, self.cancelled_at + self.cancel_offset)
        return start, end

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "seq": self.seq,
            "received_at": self.received_at,
            "start_offset": self.start_offset,
            "duration_offset": self.duration_offset,
            "cancel_status": None if self.cancel_status is None else int(self.cancel_status),
            "cancelled_at": self.cancelled_at,
            "cancel_offset": self.cancel_offset,
            "lifecycle": self.lifecycle.value,
            "history": [[int(c), at, why] for c, at, why in self.history],
            "emitted": sorted(int(c) for c in self.emitted),
            "superseded": [[m.value, at, str(k)] for m, at, k in self.superseded],
            "reason": self.reason,
            "ranked_at": self.ranked_at,
            "revived": [[m.value, at] for m, at in self.revived],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventRecord:
        cancel = data.get("cancel_status")
        return cls(
            event=Event.from_dict(data["event"]),
            seq=int(data["seq"]),
            received_at=data["received_at"],
            start_offset=int(data.get("start_offset", 0)),
            duration_offset=int(data.get("duration_offset", 0)),
            cancel_status=None if cancel is None else EventStatus(cancel),
            cancelled_at=data.get("cancelled_at"),
            cancel_offset=int(data.get("cancel_offset", 0)),
            lifecycle=Lifecycle(data.get("lifecycle", "pending")),
            history=tuple(
                (ResponseCode(c), at, str(why)) for c, at, why in data.get("history", ())
            ),
            emitted=frozenset(ResponseCode(c) for c in data.get("emitted", ())),
            superseded=tuple(
                (Mode(m), at, MRID(str(k))) for m, at, k in data.get("superseded", ())
            ),
            reason=str(data.get("reason", "")),
            ranked_at=data.get("ranked_at"),
            revived=tuple((Mode(m), at) for m, at in data.get("revived", ())),
        )


@dataclass(frozen=True, slots=True)
class ResponseDue:
    """A lifecycle change to log, and to post north if ``post``."""

    mrid: MRID
    code: ResponseCode
    at: Timestamp  # when the change happened, server time
    reply_to: str | None
    origin: str
    program: str
    reason: str
    post: bool


@dataclass(frozen=True, slots=True)
class DefaultControl:
    """A program's DefaultDERControl (or an OpenADR program's baseline)."""

    program: str
    primacy: int
    controls: ControlSet

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "primacy": self.primacy,
            "controls": self.controls.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefaultControl:
        return cls(
            program=str(data["program"]),
            primacy=int(data["primacy"]),
            controls=ControlSet.from_dict(data["controls"]),
        )


@dataclass(frozen=True, slots=True)
class InForce:
    """What holds on one mode at one time, and why, in words."""

    mode: Mode
    value: bool | float | None
    source: Source | None  # UTILITY_EVENT, UTILITY_DEFAULT or None when nothing
    mrid: MRID | None
    program: str | None
    primacy: int | None
    since: Timestamp | None  # where known
    until: Timestamp | None  # as far as the schedule knows now
    why: str
    supersedes: tuple[MRID, ...] = ()  # events this one superseded on this mode

    def __str__(self) -> str:
        return self.why


_UNITS: Final = {"_w": " W", "_pct": " %", "_s": " s"}


def _fmt_value(mode: Mode, value: bool | float | None) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    unit = next((u for suffix, u in _UNITS.items() if mode.value.endswith(suffix)), "")
    return f"{value:g}{unit}"


def _fmt_span(since: Timestamp | None, until: Timestamp | None) -> str:
    a = "the start of the schedule" if since is None else iso(since)
    b = "further notice" if until is None else iso(until)
    return f"{a} until {b}"


_Rank = tuple[int, float, int]


def _rank(rec: EventRecord) -> _Rank:
    """Lower sorts first = wins: primacy, then later creationTime, then later arrival."""
    return (rec.event.primacy, -rec.event.creation_time, -rec.seq)


# (time, seq, phase, mrid, code, reason); phase orders a start before an end at the same time.
_Transition = tuple[float, int, int, MRID, ResponseCode, str]


@dataclass(slots=True)
class _Track:
    """The disjoint pieces of one mode, sorted by start."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    owners: list[MRID] = field(default_factory=list)


@dataclass(slots=True)
class _Plan:
    """Everything derived from the records; rebuilt on change, read on every control cycle."""

    spans: dict[MRID, tuple[float, float]] = field(default_factory=dict)
    deaths: dict[MRID, dict[Mode, tuple[float, MRID]]] = field(default_factory=dict)
    tracks: dict[Mode, _Track] = field(default_factory=dict)
    transitions: list[_Transition] = field(default_factory=list)
    cursor: int = 0
    never_run: list[MRID] = field(default_factory=list)
    breaks: list[float] = field(default_factory=list)
    victims: dict[tuple[MRID, Mode], list[MRID]] = field(default_factory=dict)


class Schedule:
    """The event schedule with the 2030.5 event rules. Pure: time is always passed in."""

    def __init__(
        self,
        *,
        draw: Callable[[int], int],
        supported_modes: frozenset[Mode] = frozenset(Mode),
        max_duration_s: float = 366 * 86400,
        inert_after_s: float | None = None,
    ) -> None:
        """``inert_after_s``: see ``_rebuild``; None keeps every answer about the past exact
        (the oracle tests ask about the whole history), a number trades the answers about a
        finished record's own past for a change's cost (the engine only asks about now)."""
        self._draw = draw
        self._inert_after = inert_after_s
        self._supported = supported_modes
        self._max_duration = max_duration_s
        self._recs: dict[MRID, EventRecord] = {}
        self._reset_inert()
        self._seq = 0
        self._pending: list[ResponseDue] = []
        self._dirty: set[MRID] = set()
        self._defaults: dict[str, DefaultControl] = {}
        self._default_for: dict[Mode, DefaultControl] = {}
        self._last_now = -_INF
        self._plan = _Plan()
        self._memo: dict[tuple[Mode, int, bool], InForce] = {}
        self._act: dict[Mode, InForce] = {}
        self._act_lo = _INF  # empty cache window
        self._act_hi = -_INF

    # ------------------------------------------------------------------ inputs

    def offer(self, event: Event, now: Timestamp) -> list[ResponseDue]:
        """Receive an event from a poll or a notification; see the module docstring."""
        now = self._clock(now)
        rec = self._recs.get(event.mrid)
        if rec is None:
            return self._receive(event, now)
        if rec.event == event:
            return []  # re-poll: nothing drawn, nothing emitted
        out: list[ResponseDue] = []
        if event.primacy != rec.event.primacy and rec.event.same_content(
            replace(event, primacy=rec.event.primacy)
        ):
            if rec.lifecycle is Lifecycle.REJECTED or ResponseCode.INVALID in rec.codes:
                return []
            # The program's primacy changed (MAINT-005: a primacy swap): the same instruction,
            # re-ranked from now on, as by rerank().
            self._rerank({event.mrid: event.primacy}, now)
            out = self._take_for(event.mrid)
            rec = self._recs[event.mrid]
            if rec.event == event:
                return out
        if not rec.event.same_content(event):
            if rec.lifecycle is Lifecycle.REJECTED or ResponseCode.INVALID in rec.codes:
                return []
            self._settle(now)  # keeps the record's history in time order
            why = "mRID reused with different content; keeping the original"
            self._put(self._decide(self._recs[event.mrid], ResponseCode.INVALID, now, why))
            return self._take_for(event.mrid)
        if event.status in (EventStatus.CANCELLED, EventStatus.CANCELLED_RANDOMIZED):
            return out + self._terminate(event.mrid, now, event.status)
        if event.status is EventStatus.SUPERSEDED:
            return out + self._terminate(event.mrid, now, EventStatus.SUPERSEDED)
        return out  # SCHEDULED <-> ACTIVE is the server's view of time, not news

    def reject(self, event: Event, now: Timestamp, reason: str) -> list[ResponseDue]:
        """An event the north side received but could not read: answered 253, never in force.

        ``event`` carries what could be read (mRID, replyTo, responseRequired, program); its
        modes are empty. A known mRID keeps its original (as for content changed under the same
        mRID, :meth:`offer`) and gets 253 once; an unknown one is recorded as rejected, so
        re-polls of the same bad body are no-ops.
        """
        now = self._clock(now)
        rec = self._recs.get(event.mrid)
        if rec is not None:
            if rec.lifecycle is Lifecycle.REJECTED or ResponseCode.INVALID in rec.codes:
                return []
            self._settle(now)
            why = f"a new version could not be read ({reason}); keeping the original"
            self._put(self._decide(self._recs[event.mrid], ResponseCode.INVALID, now, why))
            return self._take_for(event.mrid)
        why = "invalid event: " + reason
        rec = EventRecord(event=event, seq=self._seq, received_at=now, reason=why)
        self._seq += 1
        self._put(self._decide(rec, ResponseCode.INVALID, now, why))
        return self._take_for(event.mrid)

    def rerank(self, primacies: Mapping[str, int], now: Timestamp) -> list[ResponseDue]:
        """Programs whose primacy changed (MAINT-005), all at once: a swap of two programs must
        never pass through a moment where both rank the same (that moment would decide a 7).
        Their events keep their content and history and are ranked anew from ``now``; see the
        module docstring for the reinstatement of controls superseded under the old ranking.
        The 7s this decides for other events come from the next :meth:`advance`."""
        now = self._clock(now)
        changed = {
            rec.mrid: primacies[rec.event.program]
            for rec in self._recs.values()
            if rec.event.program in primacies
            and rec.event.primacy != primacies[rec.event.program]
            and rec.lifecycle is not Lifecycle.REJECTED
        }
        if changed:
            self._rerank(changed, now)
        return []

    def cancel(self, mrid: MRID, now: Timestamp, *, randomized: bool = False) -> list[ResponseDue]:
        """Cancel an event (2030.5 status 2/3, or an OpenADR implied cancellation).

        Unknown or rejected mRIDs and repeated cancellations are no-ops.
        """
        kind = EventStatus.CANCELLED_RANDOMIZED if randomized else EventStatus.CANCELLED
        return self._terminate(mrid, self._clock(now), kind)

    def set_default(self, program: str, primacy: int, controls: ControlSet) -> list[str]:
        """Set a program's DefaultDERControl.

        Returns why it is not a valid request (then nothing changes); empty = applied. It does
        not raise: a bad default from the server must not stop the control cycle.
        """
        problems = list(controls.problems())
        if not _is_int(primacy) or not 0 <= primacy <= PRIMACY_MAX:
            problems.append(f"primacy must be 0..{PRIMACY_MAX}, got {primacy!r}")
        if problems:
            return problems
        self._defaults[program] = DefaultControl(program, primacy, controls)
        self._defaults_changed()
        return []

    def clear_default(self, program: str) -> None:
        if self._defaults.pop(program, None) is not None:
            self._defaults_changed()

    def advance(self, now: Timestamp) -> list[ResponseDue]:
        """Every lifecycle change due up to ``now`` (inclusive), in time order."""
        plan = self._plan
        if (
            not self._pending
            and not plan.never_run
            and (plan.cursor >= len(plan.transitions) or plan.transitions[plan.cursor][0] > now)
        ):
            self._last_now = max(self._last_now, now)
            return []  # the common case: nothing changed since the last cycle
        self._settle(self._clock(now))
        # By time, then arrival, so a restored schedule answers in the same order; the sort is
        # stable, which keeps each mRID's own order (2 before 7 at the same instant).
        recs = self._recs
        due = sorted(self._pending, key=lambda r: (r.at, recs[r.mrid].seq))
        self._pending = []
        self._mark_emitted(due)
        return due

    # ------------------------------------------------------------------ queries

    def in_force(self, mode: Mode, now: Timestamp) -> InForce:
        track = self._plan.tracks.get(mode)
        gap = -1
        if track is not None:
            i = bisect_right(track.starts, now) - 1
            if i >= 0 and now < track.ends[i]:
                return self._piece(mode, i)
            gap = i
        return self._gap(mode, gap)

    def active(self, now: Timestamp) -> dict[Mode, InForce]:
        """The modes that have a value at ``now`` (events first, then defaults)."""
        if self._act_lo <= now < self._act_hi:
            return dict(self._act)
        breaks = self._plan.breaks
        k = bisect_right(breaks, now)
        self._act_lo = breaks[k - 1] if k else -_INF
        self._act_hi = breaks[k] if k < len(breaks) else _INF
        act: dict[Mode, InForce] = {}
        for mode in Mode:
            if mode in self._plan.tracks or mode in self._default_for:
                f = self.in_force(mode, now)
                if f.value is not None:
                    act[mode] = f
        self._act = act
        return dict(act)

    def next_change(self, now: Timestamp) -> Timestamp | None:
        """When something next happens; ``<= now`` means: call advance() right away."""
        plan = self._plan
        if self._pending or plan.never_run:
            return now
        best = _INF
        if plan.cursor < len(plan.transitions):
            best = plan.transitions[plan.cursor][0]
        k = bisect_right(plan.breaks, now)
        if k < len(plan.breaks):
            best = min(best, plan.breaks[k])
        return None if best == _INF else best

    def get(self, mrid: MRID) -> EventRecord | None:
        return self._recs.get(mrid)

    # ------------------------------------------------------------------ persistence

    def records(self) -> list[EventRecord]:
        return sorted(self._recs.values(), key=lambda r: r.seq)

    def take_dirty(self) -> list[EventRecord]:
        """Records changed since the last call, for the store to persist."""
        out = sorted((self._recs[m] for m in self._dirty if m in self._recs), key=lambda r: r.seq)
        self._dirty.clear()
        return out

    def defaults(self) -> dict[str, Any]:
        """The defaults as a JSON-safe document, for :meth:`restore_defaults`."""
        return {"programs": [d.to_dict() for d in sorted(self._defaults.values(), key=_program)]}

    def restore_defaults(self, doc: Mapping[str, Any]) -> None:
        self._defaults = {}
        for item in doc.get("programs", ()):
            d = DefaultControl.from_dict(item)
            self._defaults[d.program] = d
        self._defaults_changed()

    def restore(self, records: Iterable[EventRecord]) -> None:
        """Replace the event state with persisted records (defaults: :meth:`restore_defaults`).

        Codes decided but not yet handed out come out of the next advance(); codes already
        handed out never again. Nothing is drawn.
        """
        self._recs = {r.mrid: r for r in records}
        self._reset_inert()
        self._seq = max((r.seq + 1 for r in self._recs.values()), default=0)
        self._dirty.clear()
        self._pending = []
        for rec in sorted(self._recs.values(), key=lambda r: r.seq):
            for code, at, why in rec.history:
                if code not in rec.emitted:
                    self._pending.append(self._due(rec, code, at, why))
        seen = [at for r in self._recs.values() for _, at, _ in r.history]
        seen += [r.received_at for r in self._recs.values()]
        seen += [r.cancelled_at for r in self._recs.values() if r.cancelled_at is not None]
        self._last_now = max(seen, default=-_INF)
        self._rebuild()

    def prune(self, now: Timestamp, *, older_than_s: float) -> list[MRID]:
        """Forget finished records older than ``older_than_s``; returns their mRIDs.

        Only for records the server has long dropped: a pruned mRID that is polled again is new
        (and would be rejected 254).
        """
        now = self._clock(now)
        cutoff = now - older_than_s
        self._before_change(now)
        pending = {r.mrid for r in self._pending}
        gone: list[MRID] = []
        for rec in list(self._recs.values()):
            if not rec.lifecycle.terminal or rec.mrid in pending:
                continue
            last = max((at for _, at, _ in rec.history), default=rec.received_at)
            end = rec.received_at if rec.lifecycle is Lifecycle.REJECTED else rec.span[1]
            if max(last, end) <= cutoff:
                del self._recs[rec.mrid]
                self._dirty.discard(rec.mrid)
                gone.append(rec.mrid)
        if gone:
            self._reset_inert()
            self._after_change(now)
        return gone

    # ------------------------------------------------------------------ internals: changes

    def _clock(self, now: Timestamp) -> Timestamp:
        self._last_now = max(self._last_now, float(now))
        return self._last_now

    def _receive(self, event: Event, now: Timestamp) -> list[ResponseDue]:
        rec = EventRecord(event=event, seq=self._seq, received_at=now)
        self._seq += 1
        problems = event.problems(self._max_duration)
        unsupported = sorted(m.value for m in event.modes - self._supported)
        rejection: tuple[ResponseCode, str] | None = None
        if problems:
            rejection = ResponseCode.INVALID, "invalid event: " + "; ".join(problems)
        elif event.controls.is_empty():
            rejection = ResponseCode.NOT_APPLICABLE, "the event sets no mode this gateway handles"
        elif unsupported:
            rejection = (
                ResponseCode.NOT_APPLICABLE,
                f"modes not supported: {', '.join(unsupported)}",
            )
        else:
            rec = self._draw_offsets(rec)
            if rec.effective_end <= now:
                why = f"ended {iso(rec.effective_end)}, before it was received at {iso(now)}"
                rejection = ResponseCode.EXPIRED, why
        if rejection is not None:
            code, why = rejection
            rec = replace(rec, reason=why)
            self._put(self._decide(rec, code, now, why))
            return self._take_for(event.mrid)
        self._before_change(now)
        start, end = rec.span
        why = f"received; runs {_fmt_span(start, end)}" + self._offsets_text(rec)
        self._put(self._decide(rec, ResponseCode.RECEIVED, now, why))
        if event.status in (EventStatus.CANCELLED, EventStatus.CANCELLED_RANDOMIZED):
            self._put(self._cut(self._recs[event.mrid], now, event.status))
        elif event.status is EventStatus.SUPERSEDED:
            self._put(self._cut(self._recs[event.mrid], now, EventStatus.SUPERSEDED))
        out = self._take_for(event.mrid)
        self._after_change(now)
        return out

    def _draw_offsets(self, rec: EventRecord) -> EventRecord:
        ev = rec.event
        start_off = self._draw_in(ev.randomize_start)
        bound = ev.randomize_duration
        if bound < 0:
            # Keep a positive effective duration: never let randomisation erase the event.
            bound = max(bound, 1 - math.ceil(ev.duration))
        dur_off = self._draw_in(bound)
        return replace(rec, start_offset=start_off, duration_offset=dur_off)

    def _draw_in(self, bound: int) -> int:
        if bound == 0:
            return 0  # no call: keeps an injected deterministic draw sequence meaningful
        v = self._draw(bound)
        lo, hi = min(0, bound), max(0, bound)
        if not _is_int(v) or not lo <= v <= hi:
            raise ValueError(f"draw({bound}) returned {v!r}, outside [{lo}, {hi}]")
        return v

    @staticmethod
    def _offsets_text(rec: EventRecord) -> str:
        parts = []
        if rec.start_offset:
            parts.append(f"start {rec.start_offset:+d} s")
        if rec.duration_offset:
            parts.append(f"duration {rec.duration_offset:+d} s")
        return f" (randomised: {', '.join(parts)})" if parts else ""

    def _terminate(self, mrid: MRID, now: Timestamp, kind: EventStatus) -> list[ResponseDue]:
        rec = self._recs.get(mrid)
        if rec is None or rec.lifecycle is Lifecycle.REJECTED or rec.cancel_status is not None:
            return []
        self._before_change(now)
        out = self._take_for(mrid)  # its own earlier changes (e.g. 2) go out before 6/7
        self._put(self._cut(self._recs[mrid], now, kind))
        out += self._take_for(mrid)
        self._after_change(now)
        return out

    def _rerank(self, primacies: Mapping[MRID, int], now: Timestamp) -> None:
        """Give these events their new primacy from ``now`` and reinstate what it frees."""
        self._before_change(now)
        for mrid, primacy in primacies.items():
            rec = self._recs[mrid]
            self._put(replace(rec, event=replace(rec.event, primacy=primacy), ranked_at=now))
        for rec in list(self._recs.values()):
            self._reinstate(rec, now)
        self._after_change(now)

    def _reinstate(self, rec: EventRecord, now: Timestamp) -> None:
        """Drop the frozen deaths of ``rec`` whose winner no longer outranks it (MAINT-005).

        Only for an event not yet ended that the server has not cancelled or superseded: its
        freed modes run again from ``now`` (not retroactively), and if it was superseded on
        every mode it is pending (or active, if it had started) again. The 7 already decided
        stays in its history and is never sent again; nor is it if the event loses again.
        """
        if (
            not rec.superseded
            or rec.cancel_status is not None
            or rec.lifecycle not in (Lifecycle.PENDING, Lifecycle.ACTIVE, Lifecycle.SUPERSEDED)
            or rec.span[1] <= now
        ):
            return
        mine = _rank(rec)
        keep: list[Death] = []
        freed: list[Mode] = []
        for death in rec.superseded:
            winner = self._recs.get(death[2])
            if winner is not None and _rank(winner) > mine:
                freed.append(death[0])
            else:
                keep.append(death)
        if not freed:
            return
        revived = tuple((m, at) for m, at in rec.revived if m not in freed)
        revived += tuple((m, now) for m in sorted(freed, key=lambda m: m.value))
        changes: dict[str, Any] = {"superseded": tuple(keep), "revived": revived}
        if rec.lifecycle is Lifecycle.SUPERSEDED:
            started = ResponseCode.STARTED in rec.codes
            changes["lifecycle"] = Lifecycle.ACTIVE if started else Lifecycle.PENDING
            changes["reason"] = f"reinstated at {iso(now)}: its program now outranks its superseder"
        self._put(replace(rec, **changes))

    def _cut(self, rec: EventRecord, now: Timestamp, kind: EventStatus) -> EventRecord:
        """Record a cancellation or server supersession; decide 6/7 if it takes effect now."""
        offset = 0
        if kind is EventStatus.CANCELLED_RANDOMIZED and rec.lifecycle is Lifecycle.ACTIVE:
            bound = max(abs(rec.event.randomize_start), abs(rec.event.randomize_duration))
            offset = self._draw_in(bound)
        rec = replace(rec, cancel_status=kind, cancelled_at=now, cancel_offset=offset)
        if rec.lifecycle.terminal:
            return rec  # still cut: a withdrawn event stops superseding others
        if kind is EventStatus.SUPERSEDED:
            why = "superseded by the server (status 4)"
            return self._decide(rec, ResponseCode.SUPERSEDED, now, why)
        if offset == 0:
            why = "cancelled by the server" + (
                "" if rec.lifecycle is Lifecycle.ACTIVE else " before it started"
            )
            return self._decide(rec, ResponseCode.CANCELLED, now, why)
        return replace(
            rec, reason=f"cancelled with randomisation: ends {offset} s after {iso(now)}"
        )

    def _before_change(self, now: Timestamp) -> None:
        """Let everything due up to ``now`` happen under the old state, and freeze it."""
        self._settle(now)
        plan = self._plan
        for mrid, deaths in plan.deaths.items():
            rec = self._recs.get(mrid)
            if rec is None or rec.lifecycle is Lifecycle.REJECTED:
                continue
            have = {m for m, _, _ in rec.superseded}
            new = [(m, d, k) for m, (d, k) in deaths.items() if d <= now and m not in have]
            if new:
                self._put(replace(rec, superseded=rec.superseded + tuple(sorted(new, key=_dkey))))

    def _after_change(self, now: Timestamp) -> None:
        self._rebuild(now)
        self._settle(now)

    def _defaults_changed(self) -> None:
        best: dict[Mode, DefaultControl] = {}
        for d in sorted(self._defaults.values(), key=lambda d: (d.primacy, d.program)):
            for m in d.controls.modes():
                best.setdefault(m, d)
        self._default_for = best
        self._invalidate_views()

    def _invalidate_views(self) -> None:
        self._memo.clear()
        self._act_lo, self._act_hi = _INF, -_INF

    # ------------------------------------------------------------------ internals: records

    def _put(self, rec: EventRecord) -> None:
        if rec.mrid not in self._recs:
            self._open[rec.mrid] = None
        self._recs[rec.mrid] = rec
        self._dirty.add(rec.mrid)

    def _reset_inert(self) -> None:
        """Every record takes part in re-planning again (after a restore or a prune); the
        next change with ``inert_after_s`` set leaves the finished ones out once more."""
        self._open: dict[MRID, None] = dict.fromkeys(self._recs)  # in arrival order
        self._inert_before: dict[Mode, float] = {}
        self._inert_victims: dict[tuple[MRID, Mode], list[MRID]] = {}

    def _decide(
        self,
        rec: EventRecord,
        code: ResponseCode,
        at: Timestamp,
        why: str,
        *,
        superseded: tuple[Death, ...] | None = None,
    ) -> EventRecord:
        """Record one code for ``rec`` (at most once, ever) and queue it for the caller.

        A reinstated event (MAINT-005) that is superseded again is superseded without a
        second 7: the one it got is on record and a code is never sent twice."""
        if code in rec.codes:
            if code is ResponseCode.SUPERSEDED and not rec.lifecycle.terminal:
                deaths = rec.superseded if superseded is None else superseded
                return replace(rec, lifecycle=Lifecycle.SUPERSEDED, reason=why, superseded=deaths)
            return rec
        changes: dict[str, Any] = {"history": (*rec.history, (code, at, why))}
        accepted = ResponseCode.RECEIVED in rec.codes
        changes["lifecycle"] = lifecycle_after(rec.lifecycle, code, accepted=accepted)
        if code in (ResponseCode.CANCELLED, ResponseCode.SUPERSEDED):
            changes["reason"] = why
        if superseded is not None:
            changes["superseded"] = superseded
        self._pending.append(self._due(rec, code, at, why))
        return replace(rec, **changes)

    def _due(self, rec: EventRecord, code: ResponseCode, at: Timestamp, why: str) -> ResponseDue:
        ev = rec.event
        return ResponseDue(
            mrid=ev.mrid,
            code=code,
            at=at,
            reply_to=ev.reply_to,
            origin=ev.origin,
            program=ev.program,
            reason=why,
            post=should_post(code, ev.response_required),
        )

    def _take_for(self, mrid: MRID) -> list[ResponseDue]:
        mine = [r for r in self._pending if r.mrid == mrid]
        if mine:
            self._pending = [r for r in self._pending if r.mrid != mrid]
            self._mark_emitted(mine)
        return mine

    def _mark_emitted(self, dues: list[ResponseDue]) -> None:
        for due in dues:
            rec = self._recs.get(due.mrid)
            if rec is not None and due.code not in rec.emitted:
                self._put(replace(rec, emitted=rec.emitted | {due.code}))

    # ------------------------------------------------------------------ internals: plan

    def _settle(self, now: Timestamp) -> None:
        """Apply the transitions of the current plan that are due at or before ``now``."""
        plan = self._plan
        trans = plan.transitions
        while plan.cursor < len(trans) and trans[plan.cursor][0] <= now:
            at, _, _, mrid, code, why = trans[plan.cursor]
            plan.cursor += 1
            rec = self._recs[mrid]
            if code is ResponseCode.SUPERSEDED:
                self._put(self._decide(rec, code, at, why, superseded=self._all_deaths(mrid)))
            else:
                self._put(self._decide(rec, code, at, why))
        for mrid in plan.never_run:
            rec = self._recs[mrid]
            why = "superseded before it could run: " + self._killers_text(
                self._plan.deaths.get(mrid, {})
            )
            deaths = self._all_deaths(mrid)
            self._put(self._decide(rec, ResponseCode.SUPERSEDED, now, why, superseded=deaths))
        plan.never_run = []

    def _all_deaths(self, mrid: MRID) -> tuple[Death, ...]:
        deaths = self._plan.deaths.get(mrid, {})
        return tuple(sorted(((m, d, k) for m, (d, k) in deaths.items()), key=_dkey))

    def _rebuild(self, now: Timestamp | None = None) -> None:
        """Recompute spans, per-mode deaths, pieces and transitions from the records.

        With ``inert_after_s`` set, at a change (``now`` given) a record that is over
        (terminal, its span ended at least that long ago) takes no part: it sends nothing
        more, and it can meet no other record's run after its end. Every run starts no
        earlier than its receipt, so a record offered from now on never overlaps it, and
        whatever it did to older records ended before ``now`` and was frozen into their
        ``superseded`` by ``_before_change``. Only answers about its own past change (the
        plan forgets its pieces); the engine asks about now. This keeps a change's cost to
        the records that can still matter, not the week of history kept for exactly-once
        answers (30-minute CSIP-AUS envelopes: ~340 records).
        """
        plan = _Plan()
        recs = self._recs
        if now is not None and self._inert_after is not None:
            over = now - self._inert_after
            for mrid in [m for m in self._open if self._finished(recs[m], over)]:
                del self._open[mrid]  # for good: nothing brings a finished record back
                self._inert_trace(recs[mrid])
        live = [r for m in self._open if (r := recs[m]).lifecycle is not Lifecycle.REJECTED]
        ranks = {r.mrid: _rank(r) for r in live}
        for r in live:
            plan.spans[r.mrid] = r.span

        # Pairwise, per mode: the earliest max(winner start, loser start) over better overlaps.
        by_mode: dict[Mode, list[EventRecord]] = {}
        for r in live:
            e = plan.spans[r.mrid][1]
            for m in r.event.modes:
                if r.mode_start(m) < e:
                    by_mode.setdefault(m, []).append(r)
        deaths: dict[MRID, dict[Mode, tuple[float, MRID]]] = {}
        for m, rs in by_mode.items():
            rs.sort(key=lambda r: r.mode_start(m))
            starts = [r.mode_start(m) for r in rs]
            if any(r.ranked_at is not None for r in rs):
                self._deaths_reranked(m, rs, starts, ranks, plan, deaths)
                continue
            # Those started no later than the current loser and not ended by its start, in
            # start order. Starts only grow along ``rs``, so a record ended by one loser's start
            # is ended by every later one's: dropped once, not scanned again. (Scanning every
            # earlier record for every loser made a change cost O(n^2) in the records kept:
            # 3 ms at 200, the notification path's engine step.)
            alive: list[int] = []
            added = 0
            for i, loser in enumerate(rs):
                la, le = starts[i], plan.spans[loser.mrid][1]
                lk = ranks[loser.mrid]
                hit: tuple[float, MRID] | None = None
                k = bisect_right(starts, la)
                alive.extend(range(added, k))
                added = max(added, k)
                alive = [j for j in alive if plan.spans[rs[j].mrid][1] > la]
                for j in alive:  # started no later: kills from the loser's own start
                    w = rs[j]
                    if w is not loser and ranks[w.mrid] < lk:
                        hit = (la, w.mrid)
                        break
                if hit is None:
                    for j in range(k, len(rs)):  # starts during the loser: first better one
                        if starts[j] >= le:
                            break
                        if ranks[rs[j].mrid] < lk:
                            hit = (starts[j], rs[j].mrid)
                            break
                if hit is not None:
                    deaths.setdefault(loser.mrid, {})[m] = hit
        for r in live:  # deaths that already happened are final, even if the winner went away
            for m, dead_at, killer in r.superseded:
                cur = deaths.setdefault(r.mrid, {}).get(m)
                if cur is None or dead_at <= cur[0]:
                    deaths[r.mrid][m] = (dead_at, killer)
        plan.deaths = deaths

        # Pieces per mode, and lifecycle transitions still to come.
        pieces: dict[Mode, list[tuple[float, float, MRID]]] = {}
        for r in live:
            a, e = plan.spans[r.mrid]
            dm = deaths.get(r.mrid, {})
            modes = r.event.modes
            first = _INF  # where its first piece starts (later than a if reinstated)
            for m in modes:
                death = dm.get(m)
                end = e if death is None else min(e, death[0])
                am = r.mode_start(m)
                if am < end:
                    first = min(first, am)
                    pieces.setdefault(m, []).append((am, end, r.mrid))
                if death is not None:
                    plan.victims.setdefault((death[1], m), []).append(r.mrid)
            if r.lifecycle.terminal or a >= e:
                continue
            started = r.lifecycle is Lifecycle.ACTIVE
            if not started and first == _INF:
                plan.never_run.append(r.mrid)
                continue
            if not started:
                plan.transitions.append((first, r.seq, 0, r.mrid, ResponseCode.STARTED, "started"))
            last = max((dm[m][0] if m in dm else _INF) for m in modes)
            if last < e:
                why = "superseded on every mode: " + self._killers_text(dm)
                plan.transitions.append((last, r.seq, 1, r.mrid, ResponseCode.SUPERSEDED, why))
            elif r.cancel_status is not None:
                why = "cancelled by the server with randomisation"
                plan.transitions.append((e, r.seq, 1, r.mrid, ResponseCode.CANCELLED, why))
            else:
                plan.transitions.append((e, r.seq, 1, r.mrid, ResponseCode.COMPLETED, "completed"))
        plan.transitions.sort(key=lambda t: (t[0], t[1], t[2]))
        plan.never_run.sort(key=lambda m: self._recs[m].seq)

        breaks: set[float] = set()
        for m, ps in pieces.items():
            ps.sort()
            plan.tracks[m] = _Track(
                starts=[p[0] for p in ps], ends=[p[1] for p in ps], owners=[p[2] for p in ps]
            )
            breaks.update(p[0] for p in ps)
            breaks.update(p[1] for p in ps)
        plan.breaks = sorted(breaks)
        self._plan = plan
        self._invalidate_views()

    @staticmethod
    def _finished(r: EventRecord, over: Timestamp) -> bool:
        if r.lifecycle is Lifecycle.REJECTED:
            return True
        return r.lifecycle.terminal and r.span[1] <= over

    def _inert_trace(self, r: EventRecord) -> None:
        """What a record left out of re-planning still tells about now: by whom it was
        superseded (``InForce.supersedes`` of its winner; its deaths are all frozen) and, per
        mode, when its last run ended (the ``since`` of the gap after it). Kept, not redone:
        a change costs what the open records cost."""
        if r.lifecycle is Lifecycle.REJECTED:
            return
        e = r.span[1]
        dm: dict[Mode, tuple[float, MRID]] = {}
        for m, dead_at, killer in r.superseded:
            if m not in dm or dead_at <= dm[m][0]:
                dm[m] = (dead_at, killer)
        for m in r.event.modes:
            death = dm.get(m)
            end = e if death is None else min(e, death[0])
            if r.mode_start(m) < end:
                self._inert_before[m] = max(self._inert_before.get(m, -_INF), end)
            if death is not None:
                self._inert_victims.setdefault((death[1], m), []).append(r.mrid)

    @staticmethod
    def _deaths_reranked(
        m: Mode,
        rs: list[EventRecord],
        starts: list[float],
        ranks: Mapping[MRID, _Rank],
        plan: _Plan,
        deaths: dict[MRID, dict[Mode, tuple[float, MRID]]],
    ) -> None:
        """The pairwise rule on a mode where some event was re-ranked (MAINT-005), plainly.

        A pair whose order a re-ranking may have changed cannot have killed before it: the
        death is at the latest of the two starts and the two re-rankings (an order that held
        earlier has frozen its deaths, which win over these). Quadratic, and only here.
        """
        for i, loser in enumerate(rs):
            le = plan.spans[loser.mrid][1]
            lk = ranks[loser.mrid]
            lr = -_INF if loser.ranked_at is None else loser.ranked_at
            hit: tuple[float, MRID] | None = None
            for j, w in enumerate(rs):
                if w is loser or ranks[w.mrid] >= lk:
                    continue
                wr = -_INF if w.ranked_at is None else w.ranked_at
                at = max(starts[i], starts[j], lr, wr)
                if at < min(le, plan.spans[w.mrid][1]) and (hit is None or at < hit[0]):
                    hit = (at, w.mrid)
            if hit is not None:
                deaths.setdefault(loser.mrid, {})[m] = hit

    def _killers_text(self, dm: Mapping[Mode, tuple[float, MRID]]) -> str:
        parts = []
        for m, (d, k) in sorted(dm.items(), key=lambda kv: kv[0].value):
            w = self._recs.get(k)
            who = f"event {k}" + ("" if w is None else f" (primacy {w.event.primacy})")
            parts.append(f"{m.value} by {who} from {iso(d)}")
        return "; ".join(parts)

    # ------------------------------------------------------------------ internals: views

    def _piece(self, mode: Mode, i: int) -> InForce:
        key = (mode, i, True)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        track = self._plan.tracks[mode]
        mrid = track.owners[i]
        rec = self._recs[mrid]
        ev = rec.event
        value = ev.controls.get(mode)
        victims = tuple(self._plan.victims.get((mrid, mode), ()))
        if (gone := self._inert_victims.get((mrid, mode))) is not None:  # in arrival order
            victims = tuple(sorted((*victims, *gone), key=lambda v: self._recs[v].seq))
        why = (
            f"{mode.value} = {_fmt_value(mode, value)} from event "
            f"{mrid} (program {ev.program}, primacy {ev.primacy}), "
            f"{_fmt_span(track.starts[i], track.ends[i])}"
        )
        if victims:
            why += f"; supersedes {', '.join(victims)} on this mode"
        out = InForce(
            mode=mode,
            value=value,
            source=Source.UTILITY_EVENT,
            mrid=mrid,
            program=ev.program,
            primacy=ev.primacy,
            since=track.starts[i],
            until=track.ends[i],
            why=why,
            supersedes=victims,
        )
        self._memo[key] = out
        return out

    def _gap(self, mode: Mode, g: int) -> InForce:
        key = (mode, g, False)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        track = self._plan.tracks.get(mode)
        since = track.ends[g] if track is not None and g >= 0 else None
        earlier = self._inert_before.get(mode)  # a run left out of re-planning (in the past)
        if earlier is not None and (since is None or earlier > since):
            since = earlier
        until = track.starts[g + 1] if track is not None and g + 1 < len(track.starts) else None
        nxt = "" if until is None or track is None else f"; next event {track.owners[g + 1]}"
        d = self._default_for.get(mode)
        if d is not None:
            value = d.controls.get(mode)
            why = (
                f"{mode.value} = {_fmt_value(mode, value)} from the "
                f"default control of program {d.program} (primacy {d.primacy}): no event sets "
                f"it, {_fmt_span(since, until)}{nxt}"
            )
            out = InForce(
                mode=mode,
                value=value,
                source=Source.UTILITY_DEFAULT,
                mrid=None,
                program=d.program,
                primacy=d.primacy,
                since=since,
                until=until,
                why=why,
            )
        else:
            why = (
                f"{mode.value}: nothing in force (no event or default sets it), "
                f"{_fmt_span(since, until)}{nxt}"
            )
            out = InForce(
                mode=mode,
                value=None,
                source=None,
                mrid=None,
                program=None,
                primacy=None,
                since=since,
                until=until,
                why=why,
            )
        self._memo[key] = out
        return out


def _dkey(d: Death) -> str:
    return d[0].value


def _program(d: DefaultControl) -> str:
    return d.program
