"""Alarm edges (BASIC-027): the sans-I/O detector and the edge's documents."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.north.sep2.alarms import KEY_PREFIX, KIND, AlarmDetector, AlarmEdge
from gateway.north.sep2.telemetry import DerAlarm, alarm_log_event

T0 = 1_700_000_000.0
UV, UF, LE = DerAlarm.UNDER_VOLTAGE, DerAlarm.UNDER_FREQUENCY, DerAlarm.LOCAL_EMERGENCY
ALL_BITS = (1 << 11) - 1


def test_each_bit_that_moves_is_one_numbered_edge_stamped_with_the_sample_time() -> None:
    d0 = AlarmDetector()
    d1, edges = d0.observe(UV | UF, T0)
    assert edges == [AlarmEdge(1, T0, UV, raised=True), AlarmEdge(2, T0, UF, raised=True)]
    assert d1 == AlarmDetector(UV | UF, 2)
    assert d0 == AlarmDetector()  # the caller keeps the new detector once the edges are safe
    d2, edges = d1.observe(UV | UF, T0 + 1)
    assert (d2, edges) == (d1, [])  # an alarm in force is not an edge again
    d3, edges = d2.observe(UF | LE, T0 + 2)
    assert edges == [AlarmEdge(3, T0 + 2, UV, raised=False), AlarmEdge(4, T0 + 2, LE, raised=True)]
    assert d3 == AlarmDetector(UF | LE, 4)


def test_reserved_bits_are_never_edges() -> None:
    detector, edges = AlarmDetector().observe(1 << 11 | 1 << 15, T0)
    assert (detector, edges) == (AlarmDetector(), [])


def test_an_edge_is_a_log_event_created_when_it_happened_and_its_document_round_trips() -> None:
    edge = AlarmEdge(70_001, T0 + 0.75, LE, raised=False)
    assert edge.log_event() == alarm_log_event(LE, raised=False, at=T0 + 0.75, event_id=70_001)
    assert edge.log_event().createdDateTime == int(T0)
    assert edge.log_event().logEventCode == 15
    assert edge.key == f"{KEY_PREFIX}70001"
    doc = edge.doc()
    assert doc["kind"] == KIND
    assert AlarmEdge.from_doc(doc) == edge
    assert "local_emergency normal" in str(edge)


def test_a_response_document_is_not_an_edge() -> None:
    assert AlarmEdge.from_doc({"at": T0, "code": 2, "subject": "AB", "reply_to": "/rsp"}) is None


def test_the_detector_state_round_trips_and_a_bad_one_is_refused() -> None:
    assert AlarmDetector.from_doc(None) == AlarmDetector()
    detector = AlarmDetector(UV | LE, 41)
    assert AlarmDetector.from_doc(detector.doc()) == detector
    for bad in ({"bits": "1", "seq": 2}, {"bits": 1}, {"bits": 1, "seq": -1}):
        with pytest.raises(ValueError, match="alarm detector"):
            AlarmDetector.from_doc(bad)


@given(st.lists(st.integers(0, ALL_BITS), max_size=30), st.integers(0, ALL_BITS))
def test_edges_replayed_onto_the_first_state_give_the_last(samples: list[int], start: int) -> None:
    """Whatever the samples, the edges are a complete and minimal account: each one flips a
    bit that was the other way, and replaying them from the start reaches the last sample."""
    detector = AlarmDetector(start, 0)
    bits, seqs = start, []
    for at, sample in enumerate(samples):
        detector, edges = detector.observe(sample, T0 + at)
        for edge in edges:
            assert bool(bits & edge.alarm) is not edge.raised
            bits ^= edge.alarm
            seqs.append(edge.seq)
        assert bits == sample
    assert seqs == list(range(1, len(seqs) + 1))
