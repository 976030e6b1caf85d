"""A fault reset leaves FAULT only when nothing that caused it persists; every one is audited."""

from __future__ import annotations

import pytest

from gateway.core.backfeed import DerRating, PanelRating
from gateway.core.engine import Engine
from gateway.core.island import ChargerMode, Phase, RelayPosition
from gateway.core.messages import (
    REASONS_JOINED_BY,
    Action,
    ChargerCommand,
    ChargerTelemetry,
    DerLimit,
    FaultReset,
    Input,
    MeterTelemetry,
    Note,
    Observed,
    Persist,
    RelayCommand,
    RelayTelemetry,
    Table,
    WriteConfirmed,
    WriteFailed,
)
from gateway.core.site import SiteConfig

T0 = 1_800_000_000.0
CONFIG = SiteConfig(
    panel=PanelRating(busbar_a=200, main_breaker_a=200),
    ders=(
        DerRating("pv", "pv", max_discharge_w=7_000, max_charge_w=0),
        DerRating("ev", "charger", max_discharge_w=9_600, max_charge_w=9_600),
    ),
    charger_id="ev",
)


class Hand:
    """The engine with every input by hand; ``confirm`` answers the commands of the last call."""

    def __init__(self) -> None:
        self.engine = Engine(CONFIG, draw=lambda b: 0)
        self.now = T0
        self.last: list[Action] = []

    def feed(self, inp: Input) -> list[Action]:
        self.last = self.engine.handle(inp)
        return self.last

    def confirm(self) -> None:
        while cmds := [a for a in self.last if isinstance(a, RelayCommand | ChargerCommand)] + [
            a for a in self.last if isinstance(a, DerLimit)
        ]:
            for c in cmds:
                self.feed(WriteConfirmed(self.now, c.id))

    def observe(
        self,
        relay: RelayPosition | None = RelayPosition.CLOSED,
        *,
        load_v: float | None = None,
        mode: ChargerMode = ChargerMode.STOPPED,
        power: float = 0.0,
        fault: bool = False,
        dt: float = 0.5,
    ) -> list[Action]:
        self.now += dt
        meter = MeterTelemetry(self.now, 500.0, 240.0, 60.0)
        r = None if relay is None else RelayTelemetry(self.now, relay, load_v)
        c = ChargerTelemetry(self.now, mode, power, 60.0, fault=fault)
        return self.feed(Observed(self.now, meter=meter, relay=r, charger=c))

    def reset(self, request: str | None = "41", by: str = "installer") -> list[Action]:
        self.now += 0.1
        return self.feed(FaultReset(self.now, by, request))


def faulted() -> Hand:
    """In FAULT (the relay read open while grid-connected), the charger's stop confirmed, and a
    fresh report of a closed relay and a stopped charger: nothing persists."""
    h = Hand()
    h.observe(mode=ChargerMode.GRID_FOLLOWING)
    h.confirm()
    h.observe(RelayPosition.OPEN, mode=ChargerMode.GRID_FOLLOWING)
    assert h.engine.phase is Phase.FAULT
    h.confirm()
    h.observe()
    assert h.engine.reset_blockers(h.now) == []
    return h


def audit_of(actions: list[Action]) -> list[dict[str, object]]:
    return [
        dict(a.doc)
        for a in actions
        if isinstance(a, Persist) and a.table is Table.AUDIT and a.doc["point"] == "fault_reset"
    ]


def refused(h: Hand, *words: str) -> str:
    acts = h.reset()
    assert h.engine.phase is Phase.FAULT
    outcome = h.engine.last_reset
    assert outcome is not None
    assert not outcome.accepted
    for w in words:
        assert w in outcome.reason
    [doc] = audit_of(acts)
    assert doc["outcome"] == f"refused: {outcome.reason}"
    return outcome.reason


def test_a_reset_with_nothing_persisting_is_accepted_and_audited() -> None:
    h = faulted()
    acts = h.reset(request="41", by="installer Ana")
    assert h.engine.phase is Phase.GRID_CONNECTED
    outcome = h.engine.last_reset
    assert outcome is not None
    assert outcome.accepted
    assert (outcome.request, outcome.by) == ("41", "installer Ana")
    assert "fault -> grid_connected" in outcome.reason
    [doc] = audit_of(acts)
    assert doc["device"] == "island"
    assert doc["value"] == "installer Ana"
    assert doc["correlation_id"] == "41"
    assert str(doc["outcome"]).startswith("accepted: relay read back closed")
    assert "relay reads open while grid-connected" in str(doc["reason"])  # the fault it cleared
    assert any(
        isinstance(a, Note) and "fault reset by installer Ana accepted" in a.message for a in acts
    )
    # Write-ahead: the audit entry is stored with the phase change, before anything is acted on.
    persists = [i for i, a in enumerate(acts) if isinstance(a, Persist)]
    assert persists == list(range(len(persists)))


def test_accepted_with_the_relay_read_open_and_the_home_side_dead_reruns_from_the_relay() -> None:
    h = faulted()
    h.observe(RelayPosition.OPEN, load_v=0.0)
    assert h.engine.phase is Phase.FAULT
    h.reset()
    assert h.engine.last_reset is not None
    assert h.engine.last_reset.accepted
    assert h.engine.phase is Phase.OPENING_RELAY


def test_refused_when_not_in_fault() -> None:
    h = Hand()
    h.observe()
    acts = h.reset()
    assert h.engine.phase is Phase.GRID_CONNECTED
    assert h.engine.last_reset is not None
    assert not h.engine.last_reset.accepted
    assert "not in fault" in h.engine.last_reset.reason
    assert len(audit_of(acts)) == 1


def test_refused_while_the_charger_reports_a_fault_then_accepted_once_cleared() -> None:
    h = faulted()
    h.observe(fault=True)
    refused(h, "the charger reports a fault", "clear it at the charger")
    h.observe(fault=False)
    h.reset()
    assert h.engine.phase is Phase.GRID_CONNECTED


@pytest.mark.parametrize(
    ("mode", "power"),
    [
        (ChargerMode.GRID_FOLLOWING, 0.0),
        (ChargerMode.STOPPED, 3000.0),
        (ChargerMode.GRID_FORMING, 900.0),
    ],
)
def test_refused_while_the_charger_is_not_stopped_at_zero_power(
    mode: ChargerMode, power: float
) -> None:
    h = faulted()
    h.observe(mode=mode, power=power)
    refused(h, f"the charger reports {mode.value} at {power:g} W", "not stopped")


def test_refused_while_the_charger_is_silent() -> None:
    h = faulted()
    h.now += CONFIG.telemetry_max_age_s + 1
    refused(h, "the charger's last report is", "old")


def test_refused_while_the_stop_command_is_unconfirmed_or_failed() -> None:
    h = Hand()
    h.observe(mode=ChargerMode.GRID_FOLLOWING)
    h.confirm()
    acts = h.observe(RelayPosition.OPEN, mode=ChargerMode.GRID_FOLLOWING)
    assert h.engine.phase is Phase.FAULT
    stop = next(a for a in acts if isinstance(a, ChargerCommand))
    assert stop.mode is ChargerMode.STOPPED
    h.observe()  # the charger says stopped, but the gateway's own stop is not read back yet
    refused(h, "stop command is not confirmed")
    h.feed(WriteFailed(h.now, stop.id, "Modbus exception 4"))
    h.observe()
    refused(h, "stop command failed (Modbus exception 4)")


def test_refused_while_the_relay_reads_open_with_a_live_home_side() -> None:
    # The welded-contact (or lying auxiliary contact) rule: open, but the home side is live and
    # nothing forms a grid on it.
    h = faulted()
    h.observe(RelayPosition.OPEN, load_v=238.0)
    refused(h, "relay reads open but the home side is live (238 V", "welded")
    h.observe(RelayPosition.CLOSED)
    h.reset()
    assert h.engine.phase is Phase.GRID_CONNECTED


def test_refused_while_the_relay_reads_neither_open_nor_closed() -> None:
    h = faulted()
    h.observe(RelayPosition.UNKNOWN)
    refused(h, "neither open nor closed")


def test_refused_while_the_relay_read_back_is_stale_or_missing() -> None:
    h = faulted()
    h.observe(relay=None, dt=CONFIG.telemetry_max_age_s + 1)  # the charger reports, the relay not
    refused(h, "the relay's last read-back is", "old")
    # After a restart the relay is unknown until it is read again.
    state = {"island": h.engine.island.to_dict()} if h.engine.island else {}
    h.engine = Engine(CONFIG, draw=lambda b: 0, state=state)
    h.observe(relay=None)
    h.confirm()
    h.observe(relay=None)
    refused(h, "the relay's position is unknown")


def test_every_reason_is_given_at_once() -> None:
    h = faulted()
    h.observe(RelayPosition.UNKNOWN, fault=True)
    reason = refused(h)
    first, second = reason.split(REASONS_JOINED_BY)  # one sentence each, for the CLI's list
    assert "charger reports a fault" in first
    assert "neither open nor closed" in second


def test_a_reset_without_a_request_id_gets_one_of_its_own() -> None:
    h = faulted()
    acts = h.reset(request=None)
    [doc] = audit_of(acts)
    assert str(doc["correlation_id"]).startswith("reset-")
    assert h.engine.last_reset is not None
    assert h.engine.last_reset.request == doc["correlation_id"]
