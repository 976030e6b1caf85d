"""What the API sees of the site: a few of the north adapters' port's members (core.ports), and a
little more for people."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.core.backfeed import Allocation
from gateway.core.controls import ControlSet
from gateway.core.island import Phase
from gateway.core.messages import Input, Observed
from gateway.core.resolve import Resolved
from gateway.core.schedule import EventRecord
from gateway.core.site import SiteConfig
from gateway.core.units import Timestamp


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device of the site file, and whether it answers."""

    name: str
    role: str
    profile: str
    url: str
    error: str | None  # the last failure while it does not answer; None: it answers
    # Which part of the telemetry snapshot is this device's: "meter_relay", "meter",
    # "charger" (the one that forms the island), or a DER's id (a PV, a following charger).
    part: str


class ApiSite(Protocol):
    """The site as the local API shows it (``runtime.api_site`` implements it). The members
    shared with ``core.ports.SitePort`` mean what they mean there."""

    @property
    def name(self) -> str: ...

    def feed(self, first: Input, *more: Input) -> Awaitable[None]: ...

    def now(self) -> Timestamp: ...

    @property
    def config(self) -> SiteConfig: ...

    def observed(self) -> Observed | None: ...

    def phase(self) -> Phase | None: ...

    @property
    def cycles(self) -> int: ...

    def on_cycle(self, hook: Callable[[Observed], None]) -> None: ...

    def assess(self, controls: ControlSet, now: Timestamp) -> list[str]: ...

    def resolved(self) -> Resolved:
        """Every mode's decision in force: value, source and why."""
        ...

    def allocation(self) -> Allocation | None:
        """The last cycle's backfeed allocation: the allowance in force, and what bound it."""
        ...

    def devices(self) -> Sequence[DeviceState]: ...

    def events(self) -> Sequence[EventRecord]:
        """The utility events the schedule holds."""
        ...

    def links(self) -> dict[str, str | None]:
        """Each north link by kind: None while it is up, else its last error."""
        ...

    def take_timings(self) -> tuple[list[float], list[float]]:
        """The cycles' device-read times and the commands' write times (s) since the last
        call."""
        ...

    def write_failures(self) -> int:
        """Device commands that failed, since start."""
        ...
