"""The alarm journal (BASIC-027): edges stored in the outbox when seen, delivered when possible.

The property: for any alarm bits sampled cycle by cycle, any pattern of server up and down and
any restarts of the gateway in between, the LogEvents the server receives are exactly the
edges between consecutive samples, in order, each once, with the time of the sample that saw
it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.north.sep2.alarm_journal import STATE_KEY, AlarmRecorder
from gateway.north.sep2.alarms import KEY_PREFIX, AlarmEdge
from gateway.north.sep2.outbox import DeliveryError, drain, trim
from gateway.north.sep2.pubsub import LogEvent
from gateway.north.sep2.telemetry import DerAlarm, alarm_changes
from gateway.store import MemoryStore, OutboxItem, SqliteStore, StoreUnavailableError
from gateway.store.api import JsonDoc

T0 = 1_700_000_000.0
UV, OV, LE = DerAlarm.UNDER_VOLTAGE, DerAlarm.OVER_VOLTAGE, DerAlarm.LOCAL_EMERGENCY
RESPONSE: JsonDoc = {"at": T0, "code": 2, "subject": "AB", "reply_to": "/rsp/1"}


@dataclass
class Server:
    """Takes a LogEvent (or a Response) while up; refuses the connection while down."""

    up: bool = True
    events: list[LogEvent] = field(default_factory=list)
    responses: list[JsonDoc] = field(default_factory=list)

    async def send(self, item: OutboxItem) -> None:
        if not self.up:
            raise DeliveryError("connection refused")
        edge = AlarmEdge.from_doc(item.doc)
        if edge is None:
            self.responses.append(item.doc)
        else:
            self.events.append(edge.log_event())


def deliver(store: MemoryStore | SqliteStore, server: Server, now: float) -> int:
    return asyncio.run(drain(store, server.send, lambda: now))


def codes(events: list[LogEvent]) -> list[tuple[int, int]]:
    return [(e.logEventCode, e.createdDateTime) for e in events]


def expected(samples: list[int]) -> list[tuple[int, int]]:
    """Every edge between consecutive samples (from no alarm), as (logEventCode, time)."""
    out, before = [], 0
    for n, bits in enumerate(samples):
        for alarm, raised in alarm_changes(before, bits):
            out.append((2 * (alarm.bit_length() - 1) + (0 if raised else 1), int(T0) + n))
        before = bits
    return out


# A cycle: the alarm bits the site shows, whether the server is up, and whether the gateway
# restarts (a new recorder over the same store) before the cycle.
cycles = st.lists(
    st.tuples(st.sampled_from([0, UV, OV, LE, UV | LE, OV | LE]), st.booleans(), st.booleans()),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(cycles)
def test_log_events_delivered_are_exactly_the_edges_in_order_once(
    run: list[tuple[int, bool, bool]],
) -> None:
    store, server = MemoryStore(), Server()
    recorder = AlarmRecorder(store)
    for n, (bits, up, restart) in enumerate(run):
        if restart:
            recorder = AlarmRecorder(store)
        recorder.record(bits, T0 + n)
        server.up = up
        deliver(store, server, T0 + n)
    server.up = True
    deliver(store, server, T0 + len(run))
    assert codes(server.events) == expected([bits for bits, _, _ in run])
    ids = [e.logEventID for e in server.events]
    assert ids == list(range(1, len(ids) + 1))
    assert store.pending() == []


def test_an_alarm_that_came_and_went_during_an_outage_goes_out_after_in_order_with_responses() -> (
    None
):
    store, server = MemoryStore(), Server(up=False)
    recorder = AlarmRecorder(store)
    recorder.record(0, T0)
    store.enqueue("sep2|m1|2", RESPONSE, T0 + 0.5)
    assert [e.key for e in recorder.record(OV, T0 + 1)] == [f"{KEY_PREFIX}1"]
    recorder.record(0, T0 + 2)
    assert deliver(store, server, T0 + 3) == 0
    server.up = True
    assert deliver(store, server, T0 + 4) == 3
    assert codes(server.events) == [(2, int(T0) + 1), (3, int(T0) + 2)]
    assert server.responses == [RESPONSE]


def test_a_restart_neither_repeats_an_alarm_in_force_nor_misses_one_that_cleared(
    tmp_path: Path,
) -> None:
    db, server = tmp_path / "gw.db", Server(up=False)
    with SqliteStore(db) as store:
        recorder = AlarmRecorder(store)
        recorder.record(UV | LE, T0)
        assert store.get_state(STATE_KEY) == {"bits": UV | LE, "seq": 2}
    with SqliteStore(db) as store:
        recorder = AlarmRecorder(store)  # power cycle: the site still has the under-voltage
        assert recorder.bits == UV | LE
        assert recorder.record(UV, T0 + 60) == [AlarmEdge(3, T0 + 60, LE, raised=False)]
        server.up = True
        assert deliver(store, server, T0 + 61) == 3
    assert codes(server.events) == [(4, int(T0)), (14, int(T0)), (15, int(T0) + 60)]
    assert [e.logEventID for e in server.events] == [1, 2, 3]


def test_the_backlog_keeps_the_newest_and_says_what_it_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, server = MemoryStore(), Server(up=False)
    store.enqueue("sep2|m1|2", RESPONSE, T0)
    recorder = AlarmRecorder(store, keep=3)
    with caplog.at_level(logging.WARNING, "gateway.north.sep2.alarm_journal"):
        for n in range(6):
            recorder.record(OV if n % 2 == 0 else 0, T0 + n)
    assert recorder.dropped == 3
    dropped = [r.getMessage() for r in caplog.records]
    assert len(dropped) == 3
    assert "dropped the 1 oldest" in dropped[0]
    assert "#1 over_voltage raised" in dropped[0]
    assert "keep the newest 3" in dropped[0]
    server.up = True
    assert deliver(store, server, T0 + 9) == 4  # the Response is never dropped
    assert codes(server.events) == [(3, int(T0) + 3), (2, int(T0) + 4), (3, int(T0) + 5)]


def test_a_store_that_fails_loses_no_edge_it_is_found_again_next_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Flaky(MemoryStore):
        failing = True

        def enqueue(self, key: str, doc: JsonDoc, now: float) -> bool:
            if self.failing:
                raise StoreUnavailableError("disk full", path=":memory:")
            return super().enqueue(key, doc, now)

    store = Flaky()
    recorder = AlarmRecorder(store)
    with caplog.at_level(logging.ERROR, "gateway.north.sep2.alarm_journal"):
        assert recorder.record(LE, T0) == []
        assert recorder.record(LE, T0 + 1) == []
    assert len(caplog.records) == 1  # said once, not every cycle
    assert store.get_state(STATE_KEY) is None
    store.failing = False
    assert recorder.record(LE, T0 + 2) == [AlarmEdge(1, T0 + 2, LE, raised=True)]
    assert [item.key for item in store.pending()] == [f"{KEY_PREFIX}1"]


def test_a_damaged_state_starts_afresh_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    store.put_state(STATE_KEY, {"bits": "x"})
    with caplog.at_level(logging.ERROR, "gateway.north.sep2.alarm_journal"):
        recorder = AlarmRecorder(store)
    assert recorder.bits == 0
    assert "not an alarm detector's state" in caplog.text


def test_trim_settles_only_the_oldest_of_its_prefix() -> None:
    store = MemoryStore()
    for n in range(4):
        store.enqueue(f"a|{n}", {"n": n}, T0 + n)
        store.enqueue(f"b|{n}", {"n": n}, T0 + n)
    assert [item.key for item in trim(store, "a|", 1, T0 + 9)] == ["a|0", "a|1", "a|2"]
    assert [item.key for item in store.pending()] == ["b|0", "b|1", "b|2", "a|3", "b|3"]
    assert trim(store, "a|", 1, T0 + 9) == []
    with pytest.raises(ValueError, match="keep"):
        trim(store, "a|", -1, T0)
