"""OpenADR 3 codec: strict reading, the guards against hostile JSON, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.north.openadr3 import codec
from gateway.north.openadr3.model import (
    OPEN_ENDED,
    Interval,
    IntervalPeriod,
    ProtocolError,
    Report,
    ReportPayloadDescriptor,
    ReportResource,
    ValuesMap,
)

EVENT: dict[str, Any] = {
    "id": "e1",
    "createdDateTime": "2026-11-25T16:00:00Z",
    "modificationDateTime": "2026-11-25T16:05:00.500Z",
    "objectType": "EVENT",
    "programID": "p1",
    "eventName": "evening peak",
    "priority": 3,
    "targets": [{"type": "VEN_NAME", "values": ["gateway-1"]}],
    "payloadDescriptors": [
        {
            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
            "payloadType": "EXPORT_CAPACITY_LIMIT",
            "units": "KW",
        }
    ],
    "reportDescriptors": [{"payloadType": "DEMAND", "readingType": "DIRECT_READ", "frequency": 1}],
    "intervalPeriod": {"start": "2026-11-25T17:00:00+01:00", "duration": "PT1H30M"},
    "intervals": [
        {"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [1.5]}]},
        {
            "id": 1,
            "intervalPeriod": {"start": "2026-11-25T17:30:00Z", "duration": "P9999Y"},
            "payloads": [{"type": "CURVE", "values": [{"x": 1, "y": 2.5}]}],
        },
    ],
}


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_event_reads_every_field_the_gateway_uses() -> None:
    ev = codec.one(codec.event, _body(EVENT), "event")
    assert ev.id == "e1"
    assert ev.program_id == "p1"
    assert ev.priority == 3
    assert ev.modified == codec.parse_time("2026-11-25T16:05:00.500Z")
    # 17:00 at +01:00 is 16:00 UTC.
    start = datetime(2026, 11, 25, 16, 0, tzinfo=UTC).timestamp()
    assert ev.interval_period == IntervalPeriod(start=start, duration_s=5400.0)
    assert ev.payload_descriptors[0].units == "KW"
    assert ev.report_descriptors[0].payload_type == "DEMAND"
    assert ev.targets[0].values == ("gateway-1",)
    first, second = ev.intervals
    assert first.payloads == (ValuesMap("EXPORT_CAPACITY_LIMIT", (1.5,)),)
    assert second.interval_period is not None
    assert second.interval_period.duration_s == OPEN_ENDED
    assert second.payloads[0].values == ((1.0, 2.5),)
    assert len(ev.digest) == 16


def test_digest_changes_with_content_not_key_order() -> None:
    a = codec.event(EVENT, "e")
    b = codec.event(dict(reversed(list(EVENT.items()))), "e")
    c = codec.event({**EVENT, "priority": 4}, "e")
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_31_string_targets_are_read() -> None:
    ev = codec.event({**EVENT, "targets": ["group-a"]}, "e")
    assert ev.targets[0].values == ("group-a",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"priority": "high"}, "event.priority: expected an integer, got a string"),
        ({"priority": True}, "event.priority: expected an integer, got a boolean"),
        ({"programID": 7}, "event.programID: expected a string, got a number"),
        ({"id": None}, "event.id: missing"),
        ({"intervals": {"id": 0}}, "event.intervals: expected a list, got an object"),
        ({"intervals": [{"payloads": []}]}, "event.intervals[0].id: missing"),
        ({"intervals": [{"id": 0, "payloads": [{"type": "X", "values": [[1]]}]}]}, "values[0]"),
        ({"intervalPeriod": {"start": "yesterday"}}, "is not an ISO 8601 date-time"),
        ({"intervalPeriod": {"start": "2026-11-25T17:00:00"}}, "has no UTC offset"),
        ({"intervalPeriod": {"start": "2026-11-25T17:00:00Z", "duration": "1h"}}, "duration"),
        ({"objectType": "REPORT"}, "expected EVENT"),
    ],
)
def test_wrong_types_name_the_path(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.one(codec.event, _body({**EVENT, **change}), "event")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": NaN}', "NaN is not a number JSON allows"),
        (b"[Infinity]", "Infinity is not a number JSON allows"),
        (b"[1e400]", "out of range"),
        (b"[" + b"9" * 40 + b"]", "integer with 40 digits"),
        (b"[" * 40 + b"]" * 40, "nested deeper"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b"\xff\xfe", "not JSON"),
        (b'{"a": 1', "not JSON"),
        (b" " * (codec.MAX_BODY + 1), "over the"),
    ],
)
def test_hostile_json_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.loads(body)
    assert message in str(info.value)


def test_durations() -> None:
    assert codec.parse_duration("PT0S") == 0
    assert codec.parse_duration("PT1H30M") == 5400
    assert codec.parse_duration("P1DT0.5S") == 86400.5
    assert codec.parse_duration("P2W") == 14 * 86400
    assert codec.parse_duration("P9999Y") == OPEN_ENDED
    for bad in ("P", "PT", "-PT1H", "PT1H ", "P1DT", "PT" + "9" * 20 + "S"):
        with pytest.raises(ProtocolError):
            codec.parse_duration(bad)
    assert codec.format_duration(90) == "PT90S"
    assert codec.parse_duration(codec.format_duration(OPEN_ENDED)) == OPEN_ENDED


def test_each_keeps_good_events_and_names_bad_ones() -> None:
    body = _body([EVENT, {**EVENT, "id": "e2", "priority": "x"}, 5, {**EVENT, "id": "e3"}])
    good, bad = codec.each(codec.event, body, "events")
    assert [e.id for e in good] == ["e1", "e3"]
    assert [i for i, _ in bad] == ["e2", None]


def test_notification_decodes_its_event_and_checks_operation() -> None:
    n = codec.one(
        codec.notification,
        _body({"objectType": "EVENT", "operation": "PUT", "object": EVENT}),
        "n",
    )
    assert n.operation == "PUT"
    assert n.object is not None
    assert n.object_id == "e1"
    with pytest.raises(ProtocolError, match="operation"):
        codec.notification({"objectType": "EVENT", "operation": "PATCH", "object": EVENT}, "n")
    with pytest.raises(ProtocolError, match="object: expected an object"):
        codec.notification({"objectType": "EVENT", "operation": "POST"}, "n")


def test_report_round_trip() -> None:
    r = Report(
        program_id="p1",
        event_id="e1",
        client_name="gw",
        resources=(
            ReportResource(
                "site",
                (Interval(3, IntervalPeriod(1764086400.0, 60.0), (ValuesMap("DEMAND", (-1.5,)),)),),
            ),
        ),
        report_name="gw:e1:3",
        payload_descriptors=(ReportPayloadDescriptor("DEMAND", "DIRECT_READ", "KW"),),
    )
    back = codec.one(codec.report, codec.dumps(codec.encode_report(r)), "report")
    assert back == r


def test_token_and_problem() -> None:
    t = codec.one(codec.token, b'{"access_token":"abc","token_type":"Bearer","expires_in":60}', "t")
    assert (t.access_token, t.expires_in_s) == ("abc", 60.0)
    with pytest.raises(ProtocolError, match="expires_in"):
        codec.token({"access_token": "abc", "expires_in": "soon"}, "t")
    p = codec.problem({"status": 404, "title": "Not Found", "detail": "no event"}, "p")
    assert str(p) == "404 Not Found no event"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from([*EVENT, "x", "type", "values"]), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_parse_or_raise_protocol_error(body: bytes) -> None:
    for fn in (codec.event, codec.notification, codec.program, codec.subscription):
        with contextlib.suppress(ProtocolError):
            codec.one(fn, body, "x")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz_any_json_event_reads_or_raises_protocol_error(doc: Any) -> None:
    # Mutations of a real event: every field replaced by arbitrary JSON.
    for key in EVENT:
        mutated = {**EVENT, key: doc}
        with contextlib.suppress(ProtocolError):
            codec.one(codec.event, json.dumps(mutated), "event")
    with contextlib.suppress(ProtocolError):
        codec.one(
            codec.notification,
            json.dumps({"objectType": "EVENT", "operation": "POST", "object": doc}),
            "n",
        )
