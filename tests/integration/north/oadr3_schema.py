"""JSON Schemas (draft 2020-12) of the OpenADR 3.0.1 objects, written from the 3.0.1 OpenAPI
document's ``components/schemas`` (oadr3.0.1.yaml), to check what the simulated VTN answers.

OpenAPI 3.0 ``nullable: true`` is written as a ``null`` type. ``dateTime`` (``format:
date-time``) is checked by an RFC 3339 pattern, since jsonschema checks formats only with extra
packages. ``SERVED`` is the same object as a VTN serves it: the spec says the VTN provisions
``id``, ``createdDateTime``, ``modificationDateTime`` and ``objectType``, so they are required
there (the openadr3-client models refuse objects without them).
"""

from __future__ import annotations

from typing import Any

import jsonschema

_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_DURATION = (
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return _nullable({"type": "array", "items": _ref(name)})


_STR = {"type": "string"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 128}
_INT = {"type": "integer"}

_COMMON = {
    "id": _ref("objectID"),
    "createdDateTime": _ref("dateTime"),
    "modificationDateTime": _ref("dateTime"),
}

DEFS: dict[str, Any] = {
    "objectID": {
        "type": "string",
        "pattern": "^[a-zA-Z0-9_-]*$",
        "minLength": 1,
        "maxLength": 128,
    },
    "dateTime": {"type": "string", "pattern": _RFC3339},
    "duration": {"type": "string", "pattern": _DURATION},
    "point": {
        "type": "object",
        "required": ["x", "y"],
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
    },
    "valuesMap": {
        "type": "object",
        "required": ["type", "values"],
        "properties": {
            "type": _NAME,
            "values": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"type": "number"},
                        {"type": "string"},
                        {"type": "boolean"},
                        _ref("point"),
                    ]
                },
            },
        },
    },
    "intervalPeriod": {
        "type": "object",
        "required": ["start"],
        "properties": {
            "start": _ref("dateTime"),
            "duration": _ref("duration"),
            "randomizeStart": _ref("duration"),
        },
    },
    "interval": {
        "type": "object",
        "required": ["id", "payloads"],
        "properties": {
            "id": _INT,
            "intervalPeriod": _ref("intervalPeriod"),
            "payloads": {"type": "array", "items": _ref("valuesMap")},
        },
    },
    "eventPayloadDescriptor": {
        "type": "object",
        "required": ["payloadType"],
        "properties": {
            "objectType": {"enum": ["EVENT_PAYLOAD_DESCRIPTOR"]},
            "payloadType": _NAME,
            "units": _nullable(_STR),
            "currency": _nullable(_STR),
        },
    },
    "reportPayloadDescriptor": {
        "type": "object",
        "required": ["payloadType"],
        "properties": {
            "objectType": {"enum": ["REPORT_PAYLOAD_DESCRIPTOR"]},
            "payloadType": _NAME,
            "readingType": _nullable(_STR),
            "units": _nullable(_STR),
            "accuracy": _nullable({"type": "number"}),
            "confidence": _nullable({"type": "integer", "minimum": 0, "maximum": 100}),
        },
    },
    "reportDescriptor": {
        "type": "object",
        "required": ["payloadType"],
        "properties": {
            "payloadType": _NAME,
            "readingType": _nullable(_STR),
            "units": _nullable(_STR),
            "targets": _list_of("valuesMap"),
            "aggregate": {"type": "boolean"},
            "startInterval": _INT,
            "numIntervals": _INT,
            "historical": {"type": "boolean"},
            "frequency": _INT,
            "repeat": _INT,
        },
    },
    "program": {
        "type": "object",
        "required": ["programName"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["PROGRAM"]},
            "programName": _NAME,
            "programLongName": _nullable(_STR),
            "retailerName": _nullable(_STR),
            "retailerLongName": _nullable(_STR),
            "programType": _nullable(_STR),
            "country": _nullable(_STR),
            "principalSubdivision": _nullable(_STR),
            "timeZoneOffset": _ref("duration"),
            "intervalPeriod": _ref("intervalPeriod"),
            "programDescriptions": _nullable(
                {
                    "type": "array",
                    "items": {"type": "object", "required": ["URL"], "properties": {"URL": _STR}},
                }
            ),
            "bindingEvents": _nullable({"type": "boolean"}),
            "localPrice": _nullable({"type": "boolean"}),
            "payloadDescriptors": _nullable(
                {
                    "type": "array",
                    "items": {
                        "anyOf": [_ref("eventPayloadDescriptor"), _ref("reportPayloadDescriptor")]
                    },
                }
            ),
            "targets": _list_of("valuesMap"),
        },
    },
    "event": {
        "type": "object",
        "required": ["programID", "intervals"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["EVENT"]},
            "programID": _ref("objectID"),
            "eventName": _nullable(_STR),
            "priority": _nullable({"type": "integer", "minimum": 0}),
            "targets": _list_of("valuesMap"),
            "reportDescriptors": _list_of("reportDescriptor"),
            "payloadDescriptors": _list_of("eventPayloadDescriptor"),
            "intervalPeriod": _ref("intervalPeriod"),
            "intervals": {"type": "array", "items": _ref("interval")},
        },
    },
    "report": {
        "type": "object",
        "required": ["programID", "eventID", "clientName", "resources"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["REPORT"]},
            "programID": _ref("objectID"),
            "eventID": _ref("objectID"),
            "clientName": _NAME,
            "reportName": _nullable(_STR),
            "payloadDescriptors": _list_of("reportPayloadDescriptor"),
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["resourceName", "intervals"],
                    "properties": {
                        "resourceName": _NAME,
                        "intervalPeriod": _ref("intervalPeriod"),
                        "intervals": {"type": "array", "items": _ref("interval")},
                    },
                },
            },
        },
    },
    "subscription": {
        "type": "object",
        "required": ["clientName", "programID", "objectOperations"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["SUBSCRIPTION"]},
            "clientName": _NAME,
            "programID": _ref("objectID"),
            "objectOperations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["objects", "operations", "callbackUrl"],
                    "properties": {
                        "objects": {"type": "array", "items": _ref("objectTypes")},
                        "operations": {
                            "type": "array",
                            "items": {"enum": ["GET", "POST", "PUT", "DELETE"]},
                        },
                        "callbackUrl": _STR,
                        "bearerToken": _nullable(_STR),
                    },
                },
            },
            "targets": _list_of("valuesMap"),
        },
    },
    "resource": {
        "type": "object",
        "required": ["resourceName"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["RESOURCE"]},
            "resourceName": _NAME,
            "venID": _ref("objectID"),
            "attributes": _list_of("valuesMap"),
            "targets": _list_of("valuesMap"),
        },
    },
    "ven": {
        "type": "object",
        "required": ["venName"],
        "properties": {
            **_COMMON,
            "objectType": {"enum": ["VEN"]},
            "venName": _NAME,
            "attributes": _list_of("valuesMap"),
            "targets": _list_of("valuesMap"),
            "resources": _list_of("resource"),
        },
    },
    "objectTypes": {"enum": ["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]},
    "notification": {
        "type": "object",
        "required": ["objectType", "operation", "object"],
        "properties": {
            "objectType": _ref("objectTypes"),
            "operation": {"enum": ["GET", "POST", "PUT", "DELETE"]},
            "object": {"type": "object"},
            "targets": _list_of("valuesMap"),
        },
    },
    "problem": {
        "type": "object",
        "properties": {
            "type": _STR,
            "title": _STR,
            "status": {"type": "integer", "minimum": 100, "exclusiveMaximum": 600},
            "detail": _STR,
            "instance": _STR,
        },
    },
    "clientCredentialResponse": {
        "type": "object",
        "required": ["access_token", "token_type"],
        "properties": {
            "access_token": {"type": "string", "minLength": 1, "maxLength": 4096},
            "token_type": {"enum": ["Bearer"]},
            "expires_in": {"type": "number"},
            "scope": _STR,
        },
    },
}

OBJECT_TYPES = {
    "programs": "program",
    "events": "event",
    "reports": "report",
    "subscriptions": "subscription",
    "vens": "ven",
    "resources": "resource",  # /vens/{venID}/resources
}


def served(name: str) -> dict[str, Any]:
    """``name`` as the VTN serves it: server-provisioned fields required."""
    return {
        "$defs": DEFS,
        "allOf": [
            _ref(name),
            {"required": ["id", "createdDateTime", "modificationDateTime", "objectType"]},
        ],
    }


def schema(name: str) -> dict[str, Any]:
    return {"$defs": DEFS, **_ref(name)}


def check(doc: Any, name: str, *, as_served: bool = True) -> None:
    """Raise ``jsonschema.ValidationError`` (every problem, with its path) unless ``doc`` is a
    valid ``name``."""
    s = served(name) if as_served and name in OBJECT_TYPES.values() else schema(name)
    validator = jsonschema.Draft202012Validator(s)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]
        raise jsonschema.ValidationError(f"not a valid {name}:\n" + "\n".join(lines))


def check_list(doc: Any, collection: str) -> None:
    assert isinstance(doc, list), doc
    for item in doc:
        check(item, OBJECT_TYPES[collection])
