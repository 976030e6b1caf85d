"""The one port every north adapter receives: what the site offers a protocol, and nothing more.

A north adapter (2030.5, OpenADR 2.0b, OpenADR 3) needs four things from the site it speaks for,
the shape OpenADR 3's ``Deps`` had first:

* **feed** inputs into the engine, one turn at a time (:meth:`SitePort.feed`);
* **read** the site's state: the last telemetry snapshot, the islanding phase, the controls in
  force, the DERs' ratings, the schedule's record of an event, the site's configuration;
* **assess** a request before anything is in force (``Engine.assess``: why the site would not
  carry out a set of controls);
* **now**, on the clock the engine runs on.

and, to run, the site's control loop next to its own tasks under one supervision
(:meth:`SitePort.run`); on a site that follows several links, the runtime passes every link's
tasks to one ``run``, so the site still has one control loop (``core.schedules`` keeps each
link's events apart). The runtime implements it (``runtime.runner.RunnerPort``); the adapters
never see the runner, the engine or the devices, so an adapter is tested against any object of
this shape and cannot reach past it.

The store access the adapters genuinely need is here too, as Protocols that ``gateway.store``
satisfies structurally (north may not import ``store``): small state documents
(:class:`StateStore`) and, for 2030.5's Responses and LogEvents, the outbox (:class:`Outbox`).

Standard library and core vocabulary only: no engine, no I/O (an import-linter contract).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeAlias, TypeVar

from gateway.core import errors
from gateway.core.controls import ControlSet
from gateway.core.island import Phase
from gateway.core.messages import Input, Observed
from gateway.core.schedule import EventRecord
from gateway.core.site import SiteConfig
from gateway.core.units import MRID, Timestamp

__all__ = [
    "Jobs",
    "Outbox",
    "OutboxEntry",
    "Ratings",
    "SitePort",
    "StateStore",
    "StorageError",
    "Stop",
]

# A JSON-safe document, as the store keeps them (``store.api.JsonDoc``).
Doc: TypeAlias = dict[str, Any]
# Each DER's rating in force, by DER id: (discharge, charge), in W.
Ratings: TypeAlias = tuple[Mapping[str, float], Mapping[str, float]]
# An adapter's own tasks, by name, for :meth:`SitePort.run`: each a function that starts it, so
# that a task that crashed can be started again.
Jobs: TypeAlias = Mapping[str, Callable[[], Coroutine[Any, Any, None]]]


class StorageError(errors.StoreError):
    """What a store behind these Protocols raises when it cannot read or write
    (``gateway.store.StoreError`` is one), so that an adapter can catch it without importing
    the store."""


class Stop(Protocol):
    """The stop signal a task runs until (an ``asyncio.Event``; core may not import asyncio)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    async def wait(self) -> bool: ...


class StateStore(Protocol):
    """Small state documents by key (an adapter's tracker, registration, saved time offset)."""

    def get_state(self, key: str) -> Doc | None: ...

    def put_state(self, key: str, doc: Doc) -> None: ...


class OutboxEntry(Protocol):
    """A report waiting for acknowledgement (``store.OutboxItem``)."""

    @property
    def key(self) -> str: ...

    @property
    def doc(self) -> Doc: ...


EntryT_co = TypeVar("EntryT_co", bound=OutboxEntry, covariant=True)


class Outbox(StateStore, Protocol[EntryT_co]):
    """The reports the engine stored (write-ahead) and the adapter delivers, in order, once.

    Generic in the entry type so that a sender typed for the store's own item type drains it.
    Raises :class:`StorageError` when the store cannot do it."""

    def enqueue(self, key: str, doc: Doc, now: float) -> bool: ...

    def pending(self, limit: int | None = None) -> Sequence[EntryT_co]: ...

    def mark_attempt(self, key: str, now: float, error: str | None = None) -> None: ...

    def ack(self, key: str, now: float) -> bool: ...

    def transaction(self) -> AbstractContextManager[None]: ...


class SitePort(Protocol):
    """What a north adapter receives from the site it speaks for."""

    # -- feed ---------------------------------------------------------------------------------
    async def feed(self, first: Input, *more: Input) -> None:
        """Hand inputs to the engine with the device steps they cause; ``more`` in the same
        turn (no control cycle or other input comes between them)."""
        ...

    # -- read ---------------------------------------------------------------------------------
    def now(self) -> Timestamp:
        """The engine's clock (2030.5: the server's time; OpenADR: the machine's)."""
        ...

    @property
    def config(self) -> SiteConfig:
        """The site's validated configuration (outage window, modes, charger, reserve...)."""
        ...

    def observed(self) -> Observed | None:
        """The last telemetry snapshot a control cycle read; None before the first."""
        ...

    def phase(self) -> Phase | None:
        """The islanding state machine's phase; None before the engine's first cycle."""
        ...

    def controls(self) -> ControlSet:
        """The controls in force at the last cycle, every source resolved."""
        ...

    def ratings(self) -> Ratings:
        """Each DER's rating in force: min(configured, the device's own)."""
        ...

    def scheduled(self, mrid: MRID) -> EventRecord | None:
        """The schedule's record of an event fed earlier (its span, its cancellation)."""
        ...

    @property
    def cycles(self) -> int:
        """Control cycles completed since start."""
        ...

    def on_cycle(self, hook: Callable[[Observed], None]) -> None:
        """Call ``hook`` with each cycle's snapshot once the engine has handled it (alarm
        edges and rating changes are seen at the cycle rate)."""
        ...

    # -- assess -------------------------------------------------------------------------------
    def assess(self, controls: ControlSet, now: Timestamp) -> list[str]:
        """Why the site would not carry out ``controls`` (empty: it would). Read-only."""
        ...

    # -- run ----------------------------------------------------------------------------------
    async def run(self, stop: Stop, jobs: Jobs, *, period_s: float) -> None:
        """Run the site's control loop every ``period_s`` with the adapter's ``jobs``, until
        ``stop``: a job that crashes is logged and started again with back-off, and a stop ends
        every job within a bounded grace (``runtime.supervise``)."""
        ...
