"""Argument checks and JSON encoding shared by both stores, so that they refuse the same inputs
and return the same values (the twin stores JSON text too, not the caller's objects)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from gateway.store.api import (
    AuditEntry,
    JsonDoc,
    StoreCorruptError,
    StoreDataError,
    StoreKeyError,
)

# Deeper than any real document; a bound keeps a cyclic or runaway structure from recursing
# until RecursionError.
_MAX_DEPTH = 64


def _check_value(value: Any, where: str, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise StoreDataError(f"{where}: nested deeper than {_MAX_DEPTH} levels", path=path)
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreDataError(f"{where}: {value!r} is not JSON-safe", path=path)
        return
    if isinstance(value, str):
        check_text(value, where, path)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", path, depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise StoreDataError(f"{where}: key {k!r} is not a str", path=path)
            check_text(k, where, path)
            _check_value(item, f"{where}[{k!r}]", path, depth + 1)
        return
    # Tuples would come back as lists and sets not at all: refuse rather than change the data.
    raise StoreDataError(f"{where}: {type(value).__name__} is not JSON-safe", path=path)


def check_text(value: Any, where: str, path: str) -> str:
    """A str that SQLite can store as UTF-8 (lone surrogates cannot)."""
    if not isinstance(value, str):
        raise StoreDataError(f"{where}: expected str, got {type(value).__name__}", path=path)
    if value.isascii():  # nearly every key and reason; CPython knows it without a scan
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreDataError(f"{where}: not encodable as UTF-8 ({exc.reason})", path=path) from None
    return value


def check_key(value: Any, where: str, path: str) -> str:
    if not check_text(value, where, path):
        raise StoreDataError(f"{where}: must not be empty", path=path)
    return str(value)


def check_time(value: Any, where: str, path: str) -> float:
    """A finite number of seconds; NaN would break every ordering and comparison."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StoreDataError(f"{where}: expected a finite number, got {value!r}", path=path)
    return float(value)


def check_limit(value: Any, where: str, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreDataError(f"{where}: expected None or an int >= 0, got {value!r}", path=path)
    return value


# json.dumps with any option set builds a new encoder per call; one is enough.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def encode_value(value: Any, where: str, path: str) -> str:
    _check_value(value, where, path, 0)
    return _ENCODER.encode(value)


def encode_doc(doc: Any, where: str, path: str) -> str:
    if not isinstance(doc, dict):
        raise StoreDataError(f"{where}: expected a dict, got {type(doc).__name__}", path=path)
    return encode_value(doc, where, path)


def decode_value(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:  # the schema's json_valid() CHECK should prevent it
        raise StoreCorruptError(
            f"{path}: a stored value is not valid JSON ({exc})", path=path
        ) from None


def decode_doc(text: str, path: str) -> JsonDoc:
    doc = decode_value(text, path)
    if not isinstance(doc, dict):
        raise StoreCorruptError(f"{path}: a stored document is not a JSON object", path=path)
    return doc


def prepare_events(docs: Any, path: str) -> list[tuple[str, str]]:
    """``(mrid, json)`` rows, all validated before anything is written."""
    if not isinstance(docs, Mapping):
        raise StoreDataError(f"events: expected a mapping, got {type(docs).__name__}", path=path)
    return [
        (check_key(mrid, "event id", path), encode_doc(doc, f"event {mrid!r}", path))
        for mrid, doc in docs.items()
    ]


def prepare_audit(entry: Any, path: str) -> tuple[float, str, str, str, str, str, str | None]:
    """``(at, device, point, value_json, reason, outcome, correlation_id)``."""
    if not isinstance(entry, AuditEntry):
        raise StoreDataError(f"audit: expected an AuditEntry, got {entry!r}", path=path)
    correlation_id = entry.correlation_id
    if correlation_id is not None:
        check_text(correlation_id, "audit correlation_id", path)
    return (
        check_time(entry.at, "audit at", path),
        check_key(entry.device, "audit device", path),
        check_key(entry.point, "audit point", path),
        encode_value(entry.value, "audit value", path),
        check_key(entry.reason, "audit reason", path),
        check_key(entry.outcome, "audit outcome", path),
        correlation_id,
    )


def check_since(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreDataError(f"audit: since_id must be an int >= 0, got {value!r}", path=path)
    return value


# The reasons the store itself gives for requests that were never acted on.
EXPIRED_REASON = "expired before a gateway took it (none was running, or it was too slow)"
WITHDRAWN_REASON = "withdrawn by whoever asked: it stopped waiting for an answer"


def check_id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise StoreDataError(f"request id must be an int > 0, got {value!r}", path=path)
    return value


def prepare_request(
    kind: Any, by: Any, at: Any, expires_at: Any, path: str
) -> tuple[str, str, float, float | None]:
    """``(kind, by, at, expires_at)``, validated before anything is written."""
    return (
        check_key(kind, "request kind", path),
        check_key(by, "request by", path),
        check_time(at, "request at", path),
        None if expires_at is None else check_time(expires_at, "request expires_at", path),
    )


def unknown_request(request_id: int, path: str) -> StoreKeyError:
    return StoreKeyError(f"{path}: request {request_id} was never added", path=path)
