"""EiOpt: when the site tells the VTN it is not available (oadrCreateOpt / oadrCancelOpt).

Pure: the runtime passes in the time, why each configured program's main service is not
available now (:func:`unavailable`), and why each opted-in event could not be carried out
now; :meth:`OptBook.step` answers with the opts to send. The book changes only when the VTN
acknowledged one (:meth:`OptBook.sent`), so a send that failed is simply due again at the next
step.

* **Availability schedule** (per market context): once the site has been unavailable for
  ``debounce_s``, an ``optOut`` with a vavailability from now, open-ended (duration 0, as in
  QualityLogic P1_2015) or for ``horizon_s`` (renewed under the same optID when it runs out
  while the site is still unavailable); once it has been available again for ``debounce_s``,
  an oadrCancelOpt of that opt.
* **Opt tied to an event**: an event we opted in to (not over) that the site could no longer
  carry out, for ``debounce_s``, gets an ``optOut`` with its eventID and modificationNumber,
  once per modification. It is never cancelled by us: an event the VEN left stays left (the
  core, the safety authority, decides what actually runs either way).

The open opts are a document in the site's store, so a restart neither repeats an optOut nor
loses the optID it must cancel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.messages import ChargerTelemetry

STATE_KEY = "openadr2.opts"
OPT_OUT = "optOut"
# openleadr's OPT_REASON enum: the EI reasons are economic, emergency, mustRun,
# notParticipating, outageRunStatus, overrideStatus, participating, x-schedule. An EV that
# left or reached its reserve means the resource is not taking part: notParticipating.
REASON = "notParticipating"


def unavailable(
    service: str,
    *,
    island: Callable[[], list[str]],
    charger: ChargerTelemetry | None,
    reserve_pct: float,
) -> list[str]:
    """Why the site cannot provide ``service`` now (empty = it can).

    ``island``: the core's ``assess(ControlSet(connect=False), now)``. ``discharge`` needs an
    EV that is connected and above its backup reserve (read from the charger's telemetry).
    """
    if service == "island":
        return island()
    if service == "discharge":
        if charger is None:
            return ["cannot discharge: the charger is not reporting"]
        if not charger.ev_connected:
            return ["cannot discharge: no EV connected"]
        if charger.soc_pct is None:
            return ["cannot discharge: the EV's state of charge is not known"]
        if charger.soc_pct <= reserve_pct:
            return [f"cannot discharge: EV at {charger.soc_pct:g} % (reserve {reserve_pct:g} %)"]
        return []
    return [f"unknown service {service!r}"]


@dataclass(frozen=True, slots=True)
class CreateOpt:
    key: str  # market context, or "event:<eventID>"
    opt_id: str
    reason: str  # for the log
    market_context: str | None = None
    start: float | None = None  # vavailability (None: an opt tied to an event)
    duration_s: float | None = None
    event_id: str | None = None
    modification_number: int | None = None
    opt_type: str = OPT_OUT
    opt_reason: str = REASON


@dataclass(frozen=True, slots=True)
class CancelOpt:
    key: str
    opt_id: str
    reason: str


Action = CreateOpt | CancelOpt


@dataclass(frozen=True, slots=True)
class OpenOpt:
    opt_id: str
    until: float | None  # end of the vavailability; None: an event's opt
    modification_number: int | None = None


@dataclass
class OptBook:
    debounce_s: float
    horizon_s: float  # 0: open-ended
    new_id: Callable[[], str]
    open: dict[str, OpenOpt] = field(default_factory=dict)  # acknowledged by the VTN
    # key -> (wanted state, since): a change not yet held for debounce_s (not persisted)
    _pending: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {
            k: {"opt_id": o.opt_id, "until": o.until, "mod": o.modification_number}
            for k, o in self.open.items()
        }

    def load(self, doc: Mapping[str, Any] | None) -> list[str]:
        """Restore the open opts; the problems with the document (skipped entries)."""
        problems: list[str] = []
        for key, o in (doc or {}).items():
            try:
                until = o["until"]
                mod = o.get("mod")
                self.open[str(key)] = OpenOpt(
                    str(o["opt_id"]),
                    None if until is None else float(until),
                    None if mod is None else int(mod),
                )
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                problems.append(f"stored opt {key!r} ignored: {type(e).__name__}: {e}")
        return problems

    def _held(self, key: str, now: float, *, want: bool) -> bool:
        """Whether ``want`` (differing from what the VTN knows) has held for debounce_s."""
        pending = self._pending.get(key)
        if pending is None or pending[0] != want:
            self._pending[key] = (want, now)
            return self.debounce_s <= 0
        return now - pending[1] >= self.debounce_s

    def step(
        self,
        now: float,
        services: Mapping[str, list[str]],
        events: Mapping[tuple[str, int], list[str]],
    ) -> list[Action]:
        """``services``: market context -> why its service is unavailable (empty: available);
        ``events``: (eventID, modificationNumber) of every opted-in event not over -> why the
        site could not carry it out now."""
        out: list[Action] = []
        for context, reasons in services.items():
            current = self.open.get(context)
            if reasons and current is not None:
                self._pending.pop(context, None)
                if current.until is not None and now >= current.until:
                    # The schedule ran out while the site is still unavailable: the same optID
                    # again (a revised schedule, P1_2040), at once.
                    out.append(
                        self._create(
                            context, now, reasons, opt_id=current.opt_id, market_context=context
                        )
                    )
            elif reasons:
                if self._held(context, now, want=True):
                    out.append(self._create(context, now, reasons, market_context=context))
            elif current is not None:
                if self._held(context, now, want=False):
                    out.append(CancelOpt(context, current.opt_id, "available again"))
            else:
                self._pending.pop(context, None)
        live = set()
        for (event_id, mod), reasons in events.items():
            key = f"event:{event_id}"
            live.add(key)
            current = self.open.get(key)
            if current is not None and current.modification_number == mod:
                continue
            if reasons:
                if self._held(key, now, want=True):
                    out.append(
                        self._create(key, now, reasons, event_id=event_id, modification_number=mod)
                    )
            else:
                self._pending.pop(key, None)
        for key in [k for k in self.open if k.startswith("event:") and k not in live]:
            del self.open[key]  # the event is over or gone: nothing left to opt out of
        for key in [k for k in self._pending if k.startswith("event:") and k not in live]:
            del self._pending[key]
        return out

    def _create(
        self, key: str, now: float, reasons: list[str], opt_id: str | None = None, **kw: Any
    ) -> CreateOpt:
        if kw.get("event_id") is None:
            kw.update(start=now, duration_s=self.horizon_s)
        return CreateOpt(key, opt_id or self.new_id(), "; ".join(reasons), **kw)

    def sent(self, action: Action) -> None:
        """The VTN acknowledged ``action``."""
        self._pending.pop(action.key, None)
        if isinstance(action, CancelOpt):
            self.open.pop(action.key, None)
            return
        until = None  # open-ended (duration 0) or an event's opt
        if action.start is not None and action.duration_s:
            until = action.start + action.duration_s
        self.open[action.key] = OpenOpt(action.opt_id, until, action.modification_number)
