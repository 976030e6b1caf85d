"""runtime/requests.py: the control loop takes local requests, asks the engine, answers."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.engine import Engine
from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import (
    ChargerCommand,
    ChargerTelemetry,
    DerLimit,
    Input,
    MeterTelemetry,
    Observed,
    RelayCommand,
    RelayTelemetry,
    WriteConfirmed,
)
from gateway.core.site import SiteConfig
from gateway.runtime.requests import FAULT_RESET, answer_requests, correlation_id
from gateway.runtime.wiring import persist
from gateway.store import MemoryStore, StoreUnavailableError

T0 = 1_800_000_000.0
WALL = 1_700_000_000.0  # this machine's clock: not the engine's
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


class Site:
    """An engine and a store, every command confirmed at once (a cooperative home)."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.engine = Engine(CONFIG, draw=lambda b: 0)
        self.now = T0
        self.fed: list[Input] = []

    async def feed(self, inp: Input) -> None:
        self.fed.append(inp)
        queue = [inp]
        while queue:
            actions = self.engine.handle(queue.pop(0))
            persist(self.store, actions)
            queue += [
                WriteConfirmed(self.now, a.id)
                for a in actions
                if isinstance(a, RelayCommand | ChargerCommand | DerLimit)
            ]

    def observe(self, relay: RelayPosition, *, fault: bool = False) -> None:
        self.now += 0.5
        faulted = self.engine.island is not None and self.engine.phase is Phase.FAULT
        mode = ChargerMode.STOPPED if faulted else ChargerMode.GRID_FOLLOWING
        obs = Observed(
            self.now,
            meter=MeterTelemetry(self.now, 500.0, 240.0, 60.0),
            relay=RelayTelemetry(self.now, relay),
            charger=ChargerTelemetry(self.now, mode, 0.0, 60.0, fault=fault),
        )
        asyncio.run(self.feed(obs))

    def answer(self, wall: float = WALL) -> int:
        return asyncio.run(
            answer_requests(self.store, self.engine, self.feed, lambda: self.now, wall=lambda: wall)
        )


def faulted_site() -> Site:
    site = Site()
    site.observe(RelayPosition.CLOSED)
    site.observe(RelayPosition.OPEN)  # the relay reads open while grid-connected: FAULT
    assert site.engine.phase is Phase.FAULT
    return site


def test_a_reset_refused_while_the_charger_reports_a_fault_then_accepted() -> None:
    site = faulted_site()
    site.observe(RelayPosition.CLOSED, fault=True)
    rid = site.store.add_request(FAULT_RESET, "installer Ana", WALL - 1, expires_at=WALL + 9)
    assert site.answer() == 1
    r = site.store.request(rid)
    assert r is not None
    assert r.status == "refused"
    assert r.reason is not None
    assert "the charger reports a fault" in r.reason
    assert site.engine.phase is Phase.FAULT
    site.observe(RelayPosition.CLOSED)
    rid = site.store.add_request(FAULT_RESET, "installer Ana", WALL, expires_at=WALL + 10)
    site.answer()
    r = site.store.request(rid)
    assert r is not None
    assert r.status == "accepted"
    assert site.engine.phase is Phase.GRID_CONNECTED
    # Both are in the audit trail, under the request's id, with who asked.
    resets = [e for e in site.store.audit() if e.point == "fault_reset"]
    assert [(e.correlation_id, e.value, e.outcome.split(":")[0]) for e in resets] == [
        (correlation_id(rid - 1), "installer Ana", "refused"),
        (correlation_id(rid), "installer Ana", "accepted"),
    ]


def test_nothing_pending_feeds_nothing() -> None:
    site = faulted_site()
    n = len(site.fed)
    assert site.answer() == 0
    assert len(site.fed) == n


def test_an_expired_request_never_reaches_the_engine() -> None:
    site = faulted_site()
    site.observe(RelayPosition.CLOSED)
    rid = site.store.add_request(FAULT_RESET, "installer", WALL - 20, expires_at=WALL - 10)
    n = len(site.fed)
    assert site.answer() == 0
    assert len(site.fed) == n
    assert site.engine.phase is Phase.FAULT
    r = site.store.request(rid)
    assert r is not None
    assert r.status == "expired"


def test_a_request_of_an_unknown_kind_is_refused_with_the_kinds_known() -> None:
    site = faulted_site()
    rid = site.store.add_request("island_now", "installer", WALL)
    site.answer()
    r = site.store.request(rid)
    assert r is not None
    assert r.status == "refused"
    assert r.reason is not None
    assert "does not know requests of kind 'island_now'" in r.reason
    assert "fault_reset" in r.reason


def test_a_failing_store_is_logged_and_the_cycle_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    site = faulted_site()

    class Broken(MemoryStore):
        def take_requests(self, now: float) -> list[object]:  # type: ignore[override]
            raise StoreUnavailableError("disk I/O error", path="x.db")

    site.store = Broken()
    with caplog.at_level(logging.WARNING):
        assert site.answer() == 0
    assert "local requests could not be taken: disk I/O error" in caplog.text
