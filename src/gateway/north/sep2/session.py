"""One EndDevice's conversation with its 2030.5 server, as a pure object (sans-I/O).

The shell (:mod:`gateway.north.sep2.client`) performs the walk and the polls; this object turns
what they found into the core's inputs and says when to poll next:

* :meth:`Session.discovered` takes a whole :class:`~gateway.north.sep2.walk.Discovery`;
  :meth:`Session.program_polled` one program's re-read; :meth:`Session.notified` the
  DERControlList a Notification carried. Each returns an :class:`Update`: the engine inputs
  (``EventReceived``, ``EventCancelled``, ``DefaultsReceived``) for what is *new*, and log lines.
  Re-offering an unchanged control is never done (the engine would ignore it anyway; this keeps
  a 1,000-EndDevice poll cheap).
* Programs are keyed by ``mRID``, not href: a program the server relocates (P-04) is the same
  program, so its default and events are not withdrawn and re-offered.
* A control that disappears from its program's list before its end, or whose program (or FSA)
  disappears, is treated as cancelled (the engine answers 6 if asked to respond): the server no
  longer publishes it, so continuing to obey it would follow an instruction nobody stands
  behind. A control that disappears after its end is simply forgotten.
* Polls (:meth:`due` / :meth:`done`) run on the shell's monotonic clock, not server time: a
  poll rate is an interval, and an offset correction must not trigger or skip polls.
  - the whole walk every ``min(pollRate)`` of DeviceCapability, EndDeviceList, Registration and
    each FunctionSetAssignmentsList (polling a parent more often than asked is harmless, less
    often is not; only re-walking notices a moved or removed program, P-02/P-04);
  - each program's DefaultDERControl and DERControlList at the pollRate of its DERControlList,
    else of the DERProgramList it was found in, else 900 s;
  - Time at its own pollRate; telemetry at the smallest of the EndDevice's ``postRate`` and
    the ``postRate`` of each of our MirrorUsagePoints (the reference server sets it on the
    mirror only, ALL-10), else 900 s.
  The next poll is the previous due time plus the rate (so polls do not drift), or now plus the
  rate after a poll that ran more than a whole period late. A walk reads Time and every
  program's lists too, so their own polls restart a period after each walk (never a second GET
  in the same period).
* Until a walk completes, the server's rates are unknown: a walk that fails before the first
  one completed (:meth:`Session.walk_failed`: a body that does not decode, a 4xx) is retried
  after :class:`FirstWalkRetry` (1 s doubling to 60 s, +-20 % jitter), not after the schema's
  900 s. Once a walk has completed, a failed walk waits for the walk's own rate.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, unique
from typing import Final

from gateway.core.controls import ControlSet
from gateway.core.messages import (
    DefaultsReceived,
    EventCancelled,
    EventReceived,
    EventRejected,
    Input,
    ProgramsRanked,
)
from gateway.core.schedule import Event
from gateway.core.units import MRID, iso
from gateway.north.sep2 import mapping
from gateway.north.sep2.model import DERControl
from gateway.north.sep2.resources import DEFAULT_POLL_RATE_S
from gateway.north.sep2.walk import Discovery, ProgramView, UnreadableControl

__all__ = ["DEFAULT_POST_RATE_S", "FirstWalkRetry", "Session", "Task", "TaskKind", "Update"]

# EndDevice.postRate has no schema default; CSIP-AUS servers set it. Without it we post as
# often as the schema's default poll rate, the rate a server that says nothing expects traffic.
DEFAULT_POST_RATE_S: Final = DEFAULT_POLL_RATE_S
MIN_RATE_S: Final = 1  # a pollRate of 0 would be a busy loop; 1 s is the finest a server can ask


@unique
class TaskKind(Enum):
    WALK = "walk"  # DeviceCapability down to every DERControlList
    TIME = "time"  # the Time resource
    PROGRAM = "program"  # one program's DefaultDERControl and DERControlList
    POST = "post"  # telemetry: DERStatus, DERAvailability, MirrorUsagePoint readings


@dataclass(frozen=True, slots=True)
class Task:
    kind: TaskKind
    key: str = ""  # the program's mRID for PROGRAM


WALK: Final = Task(TaskKind.WALK)
TIME: Final = Task(TaskKind.TIME)
POST: Final = Task(TaskKind.POST)


@dataclass(slots=True)
class Update:
    inputs: list[Input] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # logged at INFO
    # Logged at WARNING: something the server sent that the gateway will not follow.
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: Update) -> None:
        self.inputs.extend(other.inputs)
        self.notes.extend(other.notes)
        self.warnings.extend(other.warnings)


@dataclass(frozen=True, slots=True)
class FirstWalkRetry:
    """When to try again after a failed walk, until one completes.

    Before the first walk completes there is no server rate to follow, and the schema's 900 s
    would leave a new gateway deaf for a quarter of an hour after one bad body. The cap stays
    well under any poll rate a server would set; the jitter keeps an aggregator's EndDevices
    (or a fleet restarted at once) from retrying in step.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.2  # +-20 %

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after the ``failures``-th failed walk in a row (1, 2, ...)."""
        raw = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        return raw * (1 + rng.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True, slots=True)
class _Offered:
    program: str  # program mRID
    event: Event


def _rate(rates: Iterable[int | None]) -> int:
    given = [r for r in rates if r is not None]
    return max(MIN_RATE_S, min(given)) if given else DEFAULT_POLL_RATE_S


class Session:
    """What one EndDevice has told the engine, and when to ask the server again."""

    def __init__(
        self,
        *,
        name: str = "sep2",
        first_walk: FirstWalkRetry | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name  # for log lines: the EndDevice (aggregator mode has many)
        self._first_walk = first_walk or FirstWalkRetry()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.walked = False  # a walk has completed: the server's rates rule from then on
        self._walk_failures = 0  # failed walks in a row before the first completed
        self.discovery: Discovery | None = None
        self._offered: dict[MRID, _Offered] = {}
        self._rejected: set[MRID] = set()  # unreadable controls already answered
        self._defaults: dict[str, tuple[int, ControlSet]] = {}
        self._views: dict[str, ProgramView] = {}
        self._rates: dict[Task, int] = {}
        self._due: dict[Task, float] = {}
        self._mirror_rates: dict[str, int] = {}  # MirrorUsagePoint -> the postRate it carries

    # ------------------------------------------------------------------ what the server said

    def discovered(self, found: Discovery, at: float, t: float) -> Update:
        """A completed walk, at server time ``at`` and monotonic time ``t``."""
        self.discovery = found
        self.walked = True
        self._walk_failures = 0
        out = Update()
        views = {v.program.mRID: v for v in found.programs}
        ranked = {
            key: view.program.primacy
            for key, view in views.items()
            if key in self._views and self._views[key].program.primacy != view.program.primacy
        }
        if ranked:
            # One input for every change: a swap of two programs is atomic (MAINT-005).
            out.inputs.append(ProgramsRanked(at, ranked))
            out.notes.append(f"{self.name}: program primacy changed: {ranked}")
            for mrid, offered in list(self._offered.items()):
                if offered.program in ranked:
                    event = replace(offered.event, primacy=ranked[offered.program])
                    self._offered[mrid] = _Offered(offered.program, event)
        for gone in [k for k in self._views if k not in views]:
            out.extend(self._withdraw(gone, at, "its program is no longer assigned"))
        for view in views.values():
            out.extend(self._apply(view, view.controls, at))
        self._views = views
        self._plan(found, t)
        return out

    def program_polled(self, view: ProgramView, at: float) -> Update:
        """One program re-read by :func:`~gateway.north.sep2.walk.poll_program`."""
        key = view.program.mRID
        old = self._views.get(key)
        if old is not None and view.list_href is None:
            view = replace(view, list_href=old.list_href)
        self._views[key] = view
        return self._apply(view, view.controls, at)

    def notified(self, list_href: str, controls: tuple[DERControl, ...], at: float) -> Update:
        """A Notification carrying the whole DERControlList at ``list_href``."""
        for key, view in self._views.items():
            link = view.program.DERControlListLink
            if link is not None and link.href == list_href:
                new = replace(view, controls=controls, unreadable=())
                self._views[key] = new
                return self._apply(new, controls, at)
        return Update(notes=[f"{self.name}: notification for {list_href}, not a list we follow"])

    def lost(self, t: float) -> None:
        """Hrefs are no longer trusted (a 404, a relocation): walk again now.

        What was offered to the engine stays offered: comms trouble is not a cancellation.
        """
        self.discovery = None
        self._due = {WALK: t}
        self._rates.setdefault(WALK, DEFAULT_POLL_RATE_S)

    def mirrors_rated(self, rates: Mapping[str, int], t: float) -> None:
        """The postRate each of our MirrorUsagePoints carries (the server sets it there, ALL-10):
        telemetry is posted at the smallest of those and the EndDevice's. A new rate starts a
        fresh period at ``t`` (the read that brought it follows a post)."""
        self._mirror_rates = dict(rates)
        if self.discovery is None or POST not in self._rates:
            return
        rate = self._post_rate(self.discovery)
        if self._rates[POST] != rate:
            self._rates[POST] = rate
            self._due[POST] = t + rate

    def post_rates(self) -> tuple[int | None, Mapping[str, int]]:
        """The EndDevice's postRate (None: not given) and each MirrorUsagePoint's."""
        edev = None if self.discovery is None else self.discovery.end_device.postRate
        return (None if edev is None else max(MIN_RATE_S, edev)), dict(self._mirror_rates)

    def _post_rate(self, found: Discovery) -> int:
        given = [found.end_device.postRate, *self._mirror_rates.values()]
        rates = [max(MIN_RATE_S, r) for r in given if r is not None]
        return min(rates) if rates else DEFAULT_POST_RATE_S

    def view(self, program_mrid: str) -> ProgramView | None:
        return self._views.get(program_mrid)

    @property
    def programs(self) -> list[ProgramView]:
        return list(self._views.values())

    # ------------------------------------------------------------------ when to poll

    def due(self, t: float) -> list[Task]:
        return [task for task, when in self._due.items() if when <= t]

    def next_due(self) -> float | None:
        return min(self._due.values(), default=None)

    def done(self, task: Task, t: float) -> None:
        """``task`` ran at ``t``; schedule its next run."""
        rate = self._rates.get(task)
        if rate is None:
            self._due.pop(task, None)
            return
        previous = self._due.get(task, t)
        nxt = previous + rate
        self._due[task] = nxt if nxt > t else t + rate

    def walk_failed(self, t: float) -> float:
        """The walk failed at ``t`` (not a transport error: those wait for the shell's back-off
        gate). Schedule the next one and return how long until it: the first-walk back-off
        until a walk has completed, the walk's rate after."""
        if self.walked:
            self.done(WALK, t)
            return max(0.0, self._due[WALK] - t)
        self._walk_failures += 1
        delay = self._first_walk.delay(self._walk_failures, self._rng)
        self._due[WALK] = t + delay
        return delay

    def retry(self, task: Task, t: float, after_s: float) -> None:
        """``task`` could not run yet (nothing to send): due again ``after_s`` from ``t``,
        not a whole rate later."""
        self._due[task] = t + after_s

    def rate(self, task: Task) -> int | None:
        return self._rates.get(task)

    def start(self, t: float) -> None:
        """Nothing discovered yet: walk now."""
        self._due[WALK] = t
        self._rates.setdefault(WALK, DEFAULT_POLL_RATE_S)

    # ------------------------------------------------------------------ internals

    def _plan(self, found: Discovery, t: float) -> None:
        rates = found.poll_rates
        walk_hrefs = {found.dcap.href}
        edev = found.dcap.EndDeviceListLink
        if edev is not None:
            walk_hrefs.add(edev.href)
        reg = found.end_device.RegistrationLink
        if reg is not None:
            walk_hrefs.add(reg.href)
        fsa = found.end_device.FunctionSetAssignmentsListLink
        if fsa is not None:
            walk_hrefs.add(fsa.href)
        plan: dict[Task, int] = {WALK: _rate(rates.get(h) for h in walk_hrefs if h)}
        if found.time is not None and found.dcap.TimeLink is not None:
            plan[TIME] = _rate([rates.get(found.dcap.TimeLink.href)])
        plan[POST] = self._post_rate(found)
        for view in found.programs:
            link = view.program.DERControlListLink
            own = rates.get(link.href) if link is not None else None
            parent = rates.get(view.list_href) if view.list_href is not None else None
            plan[Task(TaskKind.PROGRAM, view.program.mRID)] = _rate(
                [own] if own is not None else [parent]
            )
        due: dict[Task, float] = {}
        for task, rate in plan.items():
            old_rate = self._rates.get(task)
            old_due = self._due.get(task)
            # Keep a running schedule when its rate is unchanged; a new or re-rated task
            # starts a fresh period now (the walk itself was this period's poll of it).
            if task == WALK:
                # The walk that got us here was this period's; done() schedules the next.
                due[task] = old_due if old_due is not None else t
                continue
            if task == TIME or task.kind is TaskKind.PROGRAM:
                # The walk just read it (Time, each program's lists): its next read is a
                # period from now, or it would be read twice a period (CSIP-AUS judges the
                # rate of every GET: cactus' all-polls-at-correct-time).
                due[task] = t + rate
                continue
            keep = old_due is not None and old_rate == rate
            due[task] = old_due if keep and old_due is not None else t + rate
        if POST not in self._due:
            due[POST] = t  # post telemetry as soon as the device is known (ALL-02/ALL-09)
        self._rates = plan
        self._due = due

    def _apply(self, view: ProgramView, controls: Iterable[DERControl], at: float) -> Update:
        out = Update()
        key, primacy = view.program.mRID, view.program.primacy
        if view.default is not None:
            mapped = mapping.default_control_set(view.default)
            wanted = (primacy, mapped.controls)
            if self._defaults.get(key) != wanted:
                self._defaults[key] = wanted
                out.inputs.append(DefaultsReceived(at, key, primacy, mapped.controls))
                who = f"{self.name}: program {key}"
                out.notes.append(f"{who}: default control {mapped.controls}")
                out.notes.extend(f"{who} default: {u}" for u in mapped.unmapped)
        elif key in self._defaults:
            del self._defaults[key]
            out.inputs.append(DefaultsReceived(at, key, primacy, None))
            out.notes.append(f"{self.name}: program {key}: default control withdrawn")
        listed: set[MRID] = set()
        for control in controls:
            mapped_event = mapping.event(control, program=key, primacy=primacy)
            ev = mapped_event.event
            listed.add(ev.mrid)
            before = self._offered.get(ev.mrid)
            if before is not None and before.event == ev:
                continue
            self._offered[ev.mrid] = _Offered(key, ev)
            out.inputs.append(EventReceived(at, ev))
            if before is None:
                out.notes.extend(f"{self.name}: {ev.mrid}: {u}" for u in mapped_event.unmapped)
        for mrid, offered in list(self._offered.items()):
            if offered.program == key and mrid not in listed:
                out.extend(self._forget(mrid, offered, at, "no longer listed by the server"))
        for bad in view.unreadable:
            out.extend(self._unreadable(bad, key, primacy, at))
        return out

    def _unreadable(self, bad: UnreadableControl, key: str, primacy: int, at: float) -> Update:
        """A control that did not decode: 253 once, nothing of it in force."""
        if bad.mRID is None:
            note = f"{self.name}: program {key}: a DERControl without a readable mRID: {bad.reason}"
            return Update(warnings=[f"{note}; ignored (no mRID to answer 253 to)"])
        mrid = MRID(bad.mRID)
        if mrid in self._rejected:
            return Update()
        self._rejected.add(mrid)
        placeholder = Event(
            mrid=mrid,
            program=key,
            primacy=primacy,
            creation_time=at,
            start=at,
            duration=0,
            controls=ControlSet(),
            response_required=bad.responseRequired,
            reply_to=bad.replyTo,
            origin=mapping.ORIGIN,
        )
        note = f"{self.name}: control {mrid} refused (253 invalid): {bad.reason}"
        return Update(inputs=[EventRejected(at, placeholder, bad.reason)], warnings=[note])

    def _withdraw(self, key: str, at: float, why: str) -> Update:
        out = Update()
        if key in self._defaults:
            primacy = self._defaults.pop(key)[0]
            out.inputs.append(DefaultsReceived(at, key, primacy, None))
            out.notes.append(f"{self.name}: program {key}: default withdrawn ({why})")
        for mrid, offered in list(self._offered.items()):
            if offered.program == key:
                out.extend(self._forget(mrid, offered, at, why))
        return out

    def _forget(self, mrid: MRID, offered: _Offered, at: float, why: str) -> Update:
        del self._offered[mrid]
        ev = offered.event
        bound = abs(ev.randomize_start) + abs(ev.randomize_duration)
        if ev.start + ev.duration + bound <= at:
            return Update()  # ended: the server tidied its list
        end = iso(ev.start + ev.duration)
        note = f"{self.name}: {mrid}: {why} before its end ({end}): cancelled"
        return Update(inputs=[EventCancelled(at, mrid)], notes=[note])
