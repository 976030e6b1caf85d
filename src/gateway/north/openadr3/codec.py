"""JSON <-> OpenADR 3 objects (``model.py``), strict on reading.

Everything from the network is hostile: any bytes either decode or raise
:class:`~gateway.north.openadr3.model.ProtocolError` with a message naming the JSON path. The
guards, each tested (tests/unit/north/test_oadr3_codec.py):

* a body cap (``MAX_BODY``, 1 MiB) before parsing, and a nesting cap (``MAX_DEPTH``);
* ``NaN``/``Infinity`` literals are refused, numbers must be finite, integers at most 18 digits;
* every field has its schema type (a string where a number is due is an error, and ``true`` is
  not a number); unknown fields are ignored, as the schema allows extension.

Choices where the schema is loose: durations with years or months count 365 and 30 days
(``P9999Y`` is "open-ended"); a naive date-time (no offset) is refused rather than guessed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from gateway.north.openadr3.model import (
    OPEN_ENDED,
    Event,
    EventPayloadDescriptor,
    Interval,
    IntervalPeriod,
    Notification,
    ObjectOperation,
    Problem,
    Program,
    ProtocolError,
    Report,
    ReportDescriptor,
    ReportPayloadDescriptor,
    ReportResource,
    Subscription,
    Target,
    Token,
    Value,
    ValuesMap,
    Ven,
)

MAX_BODY: Final = 1 << 20
MAX_DEPTH: Final = 32
MAX_INT_DIGITS: Final = 18
MAX_LIST: Final = 10_000

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# JSON with guards


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not a number JSON allows")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError(f"integer with {len(text)} digits is out of range")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"number {text[:40]} is out of range")
    return value


def _depth(doc: Any) -> int:
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def loads(body: bytes | str) -> Any:
    """Parse JSON with the guards above; raises ProtocolError."""
    if len(body) > MAX_BODY:
        raise ProtocolError(f"body of {len(body)} bytes is over the {MAX_BODY}-byte cap")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        doc = json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"not JSON: {e}") from None
    if _depth(doc) > MAX_DEPTH:
        raise ProtocolError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return doc


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def digest(doc: Any) -> str:
    """A stable digest of a JSON document (key order does not matter)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Typed field access with paths


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{where}: expected an object, got {_kind(v)}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise ProtocolError(f"{where}: expected a list, got {_kind(v)}")
    if len(v) > MAX_LIST:
        raise ProtocolError(f"{where}: {len(v)} items is over the {MAX_LIST} cap")
    return v


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise ProtocolError(f"{where}.{key}: missing")
        return None
    if not isinstance(v, str):
        raise ProtocolError(f"{where}.{key}: expected a string, got {_kind(v)}")
    if len(v) > 4096:
        raise ProtocolError(f"{where}.{key}: string of {len(v)} characters is too long")
    return v


def _req(d: dict[str, Any], key: str, where: str) -> str:
    v = _str(d, key, where, required=True)
    assert v is not None
    return v


def _integer(d: dict[str, Any], key: str, where: str) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError(f"{where}.{key}: expected an integer, got {_kind(v)} {v!r:.40}")
    return v


def _items(d: dict[str, Any], key: str, where: str, fn: Callable[[Any, str], T]) -> tuple[T, ...]:
    v = d.get(key)
    if v is None:
        return ()
    return tuple(
        fn(item, f"{where}.{key}[{i}]") for i, item in enumerate(_list(v, f"{where}.{key}"))
    )


_DURATION: Final = re.compile(
    r"P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?"
)
_SECONDS: Final = {
    "y": 365 * 86400,
    "mo": 30 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "mi": 60,
}


def parse_duration(text: str, where: str = "duration") -> float:
    """ISO 8601 duration -> seconds; ``P9999Y`` -> OPEN_ENDED."""
    m = _DURATION.fullmatch(text)
    if m is None or text in ("P", "PT") or text.endswith("T"):
        raise ProtocolError(f"{where}: {text[:40]!r} is not an ISO 8601 duration")
    if m["y"] is not None and int(m["y"]) >= 9999:
        return OPEN_ENDED
    total = 0.0
    for name, value in m.groupdict().items():
        if value is None:
            continue
        if len(value) > 12:
            raise ProtocolError(f"{where}: {text[:40]!r} is out of range")
        total += float(value.replace(",", ".")) * _SECONDS.get(name, 1)
    return total


def format_duration(seconds: float) -> str:
    if seconds == OPEN_ENDED:
        return "P9999Y"
    whole = int(seconds)
    return f"PT{whole}S" if whole == seconds else f"PT{seconds:.3f}S"


def parse_time(text: str, where: str = "dateTime") -> float:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"{where}: {text[:40]!r} is not an ISO 8601 date-time") from None
    if t.tzinfo is None:
        raise ProtocolError(f"{where}: {text[:40]!r} has no UTC offset")
    return t.timestamp()


def format_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(d: dict[str, Any], key: str, where: str) -> float | None:
    v = _str(d, key, where)
    return None if v is None else parse_time(v, f"{where}.{key}")


def _duration(d: dict[str, Any], key: str, where: str) -> float | None:
    v = _str(d, key, where)
    return None if v is None else parse_duration(v, f"{where}.{key}")


# ---------------------------------------------------------------------------------------------
# Objects


def interval_period(v: Any, where: str) -> IntervalPeriod:
    d = _obj(v, where)
    return IntervalPeriod(
        start=_time(d, "start", where),
        duration_s=_duration(d, "duration", where),
        randomize_start_s=_duration(d, "randomizeStart", where),
    )


def _value(v: Any, where: str) -> Value:
    if isinstance(v, bool | int | float | str):
        if isinstance(v, str) and len(v) > 4096:
            raise ProtocolError(f"{where}: string too long")
        return v
    if isinstance(v, dict) and set(v) <= {"x", "y"}:
        x, y = v.get("x"), v.get("y")
        if (
            isinstance(x, int | float)
            and isinstance(y, int | float)
            and not (isinstance(x, bool) or isinstance(y, bool))
        ):
            return (float(x), float(y))
    raise ProtocolError(f"{where}: expected a number, string, boolean or point, got {_kind(v)}")


def values_map(v: Any, where: str) -> ValuesMap:
    d = _obj(v, where)
    return ValuesMap(type=_req(d, "type", where), values=_items(d, "values", where, _value))


def interval(v: Any, where: str) -> Interval:
    d = _obj(v, where)
    ident = _integer(d, "id", where)
    if ident is None:
        raise ProtocolError(f"{where}.id: missing")
    period = d.get("intervalPeriod")
    return Interval(
        id=ident,
        interval_period=None
        if period is None
        else interval_period(period, f"{where}.intervalPeriod"),
        payloads=_items(d, "payloads", where, values_map),
    )


def target(v: Any, where: str) -> Target:
    if isinstance(v, str):  # 3.1: targets are plain strings
        return Target("", (v,))
    d = _obj(v, where)
    return Target(_req(d, "type", where), _items(d, "values", where, _text))


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"{where}: expected a string, got {_kind(v)}")
    return v


def payload_descriptor(v: Any, where: str) -> EventPayloadDescriptor:
    d = _obj(v, where)
    return EventPayloadDescriptor(
        payload_type=_req(d, "payloadType", where),
        units=_str(d, "units", where),
        currency=_str(d, "currency", where),
    )


def report_descriptor(v: Any, where: str) -> ReportDescriptor:
    d = _obj(v, where)
    return ReportDescriptor(
        payload_type=_req(d, "payloadType", where),
        reading_type=_str(d, "readingType", where),
        units=_str(d, "units", where),
        frequency=_integer(d, "frequency", where),
        repeat=_integer(d, "repeat", where),
    )


def _check_type(d: dict[str, Any], expected: str, where: str) -> None:
    kind = _str(d, "objectType", where)
    if kind is not None and kind != expected:
        raise ProtocolError(f"{where}.objectType: expected {expected}, got {kind!r:.40}")


def program(v: Any, where: str = "program") -> Program:
    d = _obj(v, where)
    _check_type(d, "PROGRAM", where)
    return Program(
        id=_req(d, "id", where),
        program_name=_req(d, "programName", where),
        created=_time(d, "createdDateTime", where),
        modified=_time(d, "modificationDateTime", where),
        payload_descriptors=_items(d, "payloadDescriptors", where, payload_descriptor),
        targets=_items(d, "targets", where, target),
    )


def event(v: Any, where: str = "event") -> Event:
    d = _obj(v, where)
    _check_type(d, "EVENT", where)
    period = d.get("intervalPeriod")
    return Event(
        id=_req(d, "id", where),
        program_id=_req(d, "programID", where),
        intervals=_items(d, "intervals", where, interval),
        event_name=_str(d, "eventName", where),
        priority=_integer(d, "priority", where),
        created=_time(d, "createdDateTime", where),
        modified=_time(d, "modificationDateTime", where),
        targets=_items(d, "targets", where, target),
        payload_descriptors=_items(d, "payloadDescriptors", where, payload_descriptor),
        report_descriptors=_items(d, "reportDescriptors", where, report_descriptor),
        interval_period=None
        if period is None
        else interval_period(period, f"{where}.intervalPeriod"),
        digest=digest(d),
    )


def _report_payload_descriptor(v: Any, where: str) -> ReportPayloadDescriptor:
    d = _obj(v, where)
    return ReportPayloadDescriptor(
        payload_type=_req(d, "payloadType", where),
        reading_type=_str(d, "readingType", where),
        units=_str(d, "units", where),
    )


def _report_resource(v: Any, where: str) -> ReportResource:
    d = _obj(v, where)
    period = d.get("intervalPeriod")
    return ReportResource(
        resource_name=_req(d, "resourceName", where),
        intervals=_items(d, "intervals", where, interval),
        interval_period=None
        if period is None
        else interval_period(period, f"{where}.intervalPeriod"),
    )


def report(v: Any, where: str = "report") -> Report:
    d = _obj(v, where)
    _check_type(d, "REPORT", where)
    return Report(
        program_id=_req(d, "programID", where),
        event_id=_req(d, "eventID", where),
        client_name=_req(d, "clientName", where),
        resources=_items(d, "resources", where, _report_resource),
        report_name=_str(d, "reportName", where),
        payload_descriptors=_items(d, "payloadDescriptors", where, _report_payload_descriptor),
        id=_str(d, "id", where),
        created=_time(d, "createdDateTime", where),
    )


def _object_operation(v: Any, where: str) -> ObjectOperation:
    d = _obj(v, where)
    return ObjectOperation(
        objects=_items(d, "objects", where, _text),
        operations=_items(d, "operations", where, _text),
        callback_url=_req(d, "callbackUrl", where),
        bearer_token=_str(d, "bearerToken", where),
    )


def subscription(v: Any, where: str = "subscription") -> Subscription:
    d = _obj(v, where)
    _check_type(d, "SUBSCRIPTION", where)
    return Subscription(
        client_name=_req(d, "clientName", where),
        program_id=_req(d, "programID", where),
        object_operations=_items(d, "objectOperations", where, _object_operation),
        id=_str(d, "id", where),
        targets=_items(d, "targets", where, target),
    )


def ven(v: Any, where: str = "ven") -> Ven:
    d = _obj(v, where)
    _check_type(d, "VEN", where)
    return Ven(ven_name=_req(d, "venName", where), id=_str(d, "id", where))


def notification(v: Any, where: str = "notification") -> Notification:
    d = _obj(v, where)
    kind = _req(d, "objectType", where)
    operation = _req(d, "operation", where)
    if operation not in ("GET", "POST", "PUT", "DELETE"):
        raise ProtocolError(f"{where}.operation: {operation!r:.40} is not GET/POST/PUT/DELETE")
    raw = _obj(d.get("object"), f"{where}.object")
    obj: Event | Program | None = None
    if kind == "EVENT":
        obj = event(raw, f"{where}.object")
    elif kind == "PROGRAM":
        obj = program(raw, f"{where}.object")
    return Notification(
        object_type=kind,
        operation=operation,
        object=obj,
        object_id=_str(raw, "id", f"{where}.object"),
        targets=_items(d, "targets", where, target),
    )


def problem(v: Any, where: str = "problem") -> Problem:
    d = _obj(v, where)
    status = _integer(d, "status", where)
    return Problem(
        status=status,
        title=_str(d, "title", where),
        detail=_str(d, "detail", where),
        type=_str(d, "type", where),
    )


def token(v: Any, where: str = "token") -> Token:
    d = _obj(v, where)
    expires = d.get("expires_in")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        raise ProtocolError(f"{where}.expires_in: expected a number, got {_kind(expires)}")
    if expires is not None and expires < 0:
        raise ProtocolError(f"{where}.expires_in: negative")
    return Token(
        access_token=_req(d, "access_token", where),
        token_type=_str(d, "token_type", where) or "Bearer",
        expires_in_s=None if expires is None else float(expires),
    )


def many(fn: Callable[[Any, str], T], body: bytes | str, what: str) -> list[T]:
    """A JSON list of objects, all or nothing."""
    items = _list(loads(body), what)
    return [fn(item, f"{what}[{i}]") for i, item in enumerate(items)]


def each(
    fn: Callable[[Any, str], T], body: bytes | str, what: str
) -> tuple[list[T], list[tuple[str | None, ProtocolError]]]:
    """A JSON list decoded item by item: the good ones, and (id if readable, error) for the rest.

    A list with one bad event must not hide the good ones, nor make the bad one look deleted.
    """
    items = _list(loads(body), what)
    good: list[T] = []
    bad: list[tuple[str | None, ProtocolError]] = []
    for i, item in enumerate(items):
        try:
            good.append(fn(item, f"{what}[{i}]"))
        except ProtocolError as e:
            ident = item.get("id") if isinstance(item, dict) else None
            bad.append((ident if isinstance(ident, str) else None, e))
    return good, bad


def one(fn: Callable[[Any, str], T], body: bytes | str, what: str) -> T:
    return fn(loads(body), what)


# ---------------------------------------------------------------------------------------------
# Encoding (what the VEN writes, and what the simulated VTN serves)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != []}


def encode_interval_period(p: IntervalPeriod) -> dict[str, Any]:
    return _drop_none(
        {
            "start": None if p.start is None else format_time(p.start),
            "duration": None if p.duration_s is None else format_duration(p.duration_s),
            "randomizeStart": None
            if p.randomize_start_s is None
            else format_duration(p.randomize_start_s),
        }
    )


def _encode_value(v: Value) -> Any:
    return {"x": v[0], "y": v[1]} if isinstance(v, tuple) else v


def encode_interval(i: Interval) -> dict[str, Any]:
    return _drop_none(
        {
            "id": i.id,
            "intervalPeriod": None
            if i.interval_period is None
            else encode_interval_period(i.interval_period),
            "payloads": [
                {"type": p.type, "values": [_encode_value(v) for v in p.values]} for p in i.payloads
            ],
        }
    )


def encode_targets(targets: tuple[Target, ...]) -> list[Any]:
    return [
        t.values[0] if not t.type else {"type": t.type, "values": list(t.values)} for t in targets
    ]


def encode_report(r: Report) -> dict[str, Any]:
    return _drop_none(
        {
            "id": r.id,
            "createdDateTime": None if r.created is None else format_time(r.created),
            "objectType": "REPORT",
            "programID": r.program_id,
            "eventID": r.event_id,
            "clientName": r.client_name,
            "reportName": r.report_name,
            "payloadDescriptors": [
                _drop_none(
                    {
                        "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                        "payloadType": p.payload_type,
                        "readingType": p.reading_type,
                        "units": p.units,
                    }
                )
                for p in r.payload_descriptors
            ],
            "resources": [
                _drop_none(
                    {
                        "resourceName": res.resource_name,
                        "intervalPeriod": None
                        if res.interval_period is None
                        else encode_interval_period(res.interval_period),
                        "intervals": [encode_interval(i) for i in res.intervals],
                    }
                )
                for res in r.resources
            ],
        }
    )


def encode_subscription(s: Subscription) -> dict[str, Any]:
    return _drop_none(
        {
            "id": s.id,
            "objectType": "SUBSCRIPTION",
            "clientName": s.client_name,
            "programID": s.program_id,
            "objectOperations": [
                _drop_none(
                    {
                        "objects": list(o.objects),
                        "operations": list(o.operations),
                        "callbackUrl": o.callback_url,
                        "bearerToken": o.bearer_token,
                    }
                )
                for o in s.object_operations
            ],
            "targets": encode_targets(s.targets),
        }
    )


def encode_ven(v: Ven) -> dict[str, Any]:
    return _drop_none({"id": v.id, "objectType": "VEN", "venName": v.ven_name})


def encode_program(p: Program) -> dict[str, Any]:
    return _drop_none(
        {
            "id": p.id,
            "createdDateTime": None if p.created is None else format_time(p.created),
            "modificationDateTime": None if p.modified is None else format_time(p.modified),
            "objectType": "PROGRAM",
            "programName": p.program_name,
            "payloadDescriptors": [_encode_descriptor(x) for x in p.payload_descriptors],
            "targets": encode_targets(p.targets),
        }
    )


def _encode_descriptor(p: EventPayloadDescriptor) -> dict[str, Any]:
    return _drop_none(
        {
            "objectType": "EVENT_PAYLOAD_DESCRIPTOR",
            "payloadType": p.payload_type,
            "units": p.units,
            "currency": p.currency,
        }
    )


def encode_event(e: Event) -> dict[str, Any]:
    return _drop_none(
        {
            "id": e.id,
            "createdDateTime": None if e.created is None else format_time(e.created),
            "modificationDateTime": None if e.modified is None else format_time(e.modified),
            "objectType": "EVENT",
            "programID": e.program_id,
            "eventName": e.event_name,
            "priority": e.priority,
            "targets": encode_targets(e.targets),
            "payloadDescriptors": [_encode_descriptor(x) for x in e.payload_descriptors],
            "reportDescriptors": [
                _drop_none(
                    {
                        "payloadType": r.payload_type,
                        "readingType": r.reading_type,
                        "units": r.units,
                        "frequency": r.frequency,
                        "repeat": r.repeat,
                    }
                )
                for r in e.report_descriptors
            ],
            "intervalPeriod": None
            if e.interval_period is None
            else encode_interval_period(e.interval_period),
            "intervals": [encode_interval(i) for i in e.intervals],
        }
    )
