"""Validate a parsed profile against the JSON Schema; every error becomes a readable Problem.

jsonschema's own messages quote whole sub-documents ("{...} is not valid under ..."); a vendor
engineer needs the key, what was found and what is allowed, so each validator keyword gets its
own message here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from gateway.south.profile import ROLES, DeviceKind
from gateway.south.profile_schema import IDENTIFIER, PROFILE_NAME, SCHEMA
from gateway.south.profiles._report import Report, did_you_mean, listing

# TOML tells integers from floats, so the schema's "integer" must not accept 81.0 (JSON Schema
# counts a float with no fraction as an integer).
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = validators.extend(Draft202012Validator, type_checker=_TYPES)
_VALIDATOR = _Validator(SCHEMA)


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator for another TOML format (the site file) with the same TOML typing and the
    same readable messages (``check_schema(..., validator=...)``)."""
    validator: Draft202012Validator = _Validator(schema)
    return validator


_PATTERN_HINTS = {
    PROFILE_NAME: "lower-case letters, digits and '-', starting with a letter or digit",
    IDENTIFIER: "a letter or '_', then letters, digits or '_'",
}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a table",
    "array": "an array",
    "boolean": "a boolean",
}


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, dt.date | dt.time):
        return "date-time"
    return type(value).__name__


def _shown(value: object) -> str:
    if isinstance(value, dict | list):
        return f"a {toml_type(value)}"
    return f"{toml_type(value)} {value!r}"


def check_schema(
    doc: Mapping[str, Any], report: Report, validator: Draft202012Validator = _VALIDATOR
) -> None:
    """Add a Problem for every schema error, in key-path order."""
    errors = sorted(
        validator.iter_errors(doc), key=lambda e: tuple(str(p) for p in e.absolute_path)
    )
    for error in errors:
        _translate(error, doc, report)


def _translate(error: ValidationError, doc: Mapping[str, Any], report: Report) -> None:
    path: tuple[str | int, ...] = tuple(error.absolute_path)
    keyword = error.validator
    schema: Any = error.schema
    value = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # The error is about a key (``value``), reported under its parent table.
        hint = _PATTERN_HINTS.get(str(error.validator_value), "")
        report.add((*path, str(value)), f"name {value!r} is not allowed: use {hint}")
        return
    if keyword == "additionalProperties":
        known = list(schema.get("properties", {}))
        if path == ("roles",):  # suggest from the roles of this kind, where the kind is known
            kind = doc.get("profile", {}).get("kind")
            if kind in DeviceKind.__members__.values():
                known = list(ROLES[DeviceKind(kind)])
        for key in value:
            if key not in schema.get("properties", {}):
                report.add(
                    (*path, key),
                    f"unknown key {key!r}{did_you_mean(key, known)}; allowed here: "
                    f"{listing(known)}",
                )
        return
    if keyword == "required":
        props = schema.get("properties", {})
        for key in error.validator_value:
            if key not in value:
                what = props.get(key, {}).get("description") or schema.get("description", "")
                report.add((*path, key), f"missing required key {key!r}: {what}".rstrip(": "))
        return
    report.add(path, _message(error))


def _message(error: ValidationError) -> str:
    keyword = error.validator
    limit: Any = error.validator_value
    value = error.instance
    if keyword == "type":
        wanted = [limit] if isinstance(limit, str) else list(limit)
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        return f"expected {expected}, found {_shown(value)}"
    if keyword == "enum":
        hint = did_you_mean(value, limit) if isinstance(value, str) else ""
        return f"{value!r} is not allowed{hint}; allowed: {', '.join(map(str, limit))}"
    if keyword == "pattern":
        hint = _PATTERN_HINTS.get(limit, f"the pattern {limit}")
        return f"{value!r} is not allowed: use {hint}"
    if keyword == "minimum":
        return f"{value!r} is below the minimum {limit}"
    if keyword == "maximum":
        return f"{value!r} is above the maximum {limit}"
    if keyword == "exclusiveMinimum":
        return f"{value!r} must be greater than {limit}"
    if keyword == "minItems":
        return f"needs at least {limit} item{'s' if limit != 1 else ''}"
    if keyword == "uniqueItems":
        return f"has duplicates: {value!r}"
    if keyword in ("not", "oneOf"):
        return str(error.schema.get("description", "not allowed here"))
    return str(error.message)  # pragma: no cover - every keyword the schema uses is handled above
