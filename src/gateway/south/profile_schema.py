"""The JSON Schema (draft 2020-12) of the TOML device-profile format: the single source.

``schemas/device-profile.schema.json`` is rendered from ``SCHEMA`` (a test keeps it current;
``gateway profiles schema`` prints it), so editors (taplo / Even Better TOML: put
``#:schema path/to/device-profile.schema.json`` on the first line of a profile) and the loader
check the same thing. The schema checks shape and types; ``gateway.south.profiles`` then checks
what a schema cannot say (role bindings against points and symbols, overlapping registers, ...).

Enumerations and defaults are taken from the model (``profile.py``, ``registers.py``), so that
a value added there is a value the schema accepts.
"""

from __future__ import annotations

import json
from typing import Any, Final

from gateway.south.profile import (
    CONFIRM,
    ROLES,
    SEQUENCE_COMMANDS,
    Access,
    DeviceKind,
    Profile,
    Sense,
    Sequences,
    SunSpecDiscovery,
    WatchdogValue,
)
from gateway.south.registers import DataType, Pacing, Table, WordOrder

#: A profile's name: also the file name of a shipped profile.
PROFILE_NAME: Final = r"^[a-z0-9][a-z0-9-]*$"
#: Point, symbol and category names.
IDENTIFIER: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: A SunSpec point, bound by model number and point name ("704.WSet").
SUNSPEC_POINT: Final = r"^[0-9]+\.[A-Za-z_][A-Za-z0-9_]*$"
_POINT_REF: Final = r"^([A-Za-z_][A-Za-z0-9_]*|[0-9]+\.[A-Za-z_][A-Za-z0-9_]*)$"

_PACING = Pacing()
_SUNSPEC = SunSpecDiscovery()
_SEQUENCES = Sequences()
_SEQUENCE_TEXT: Final = {
    "enter_forming": (
        "Grid-forming (backup / V2H) on, after the relay is confirmed open; 'confirm' waits "
        "for the state to read forming, and must be last."
    ),
    "leave_forming": (
        "A stop while grid-forming may be on (after connect, or once asked for); 'confirm' "
        "waits for stopped (or no_ev) at zero power; only grid_forming_off may follow the "
        "last 'confirm'; never start or grid_forming_on."
    ),
    "stop": "A stop with grid-forming known to be off; the same rules as leave_forming.",
}


def _names(values: type[Any]) -> list[str]:
    return [str(v.value) for v in values]


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _forbidden(reason: str) -> dict[str, Any]:
    # "not {}" fails for any value; the loader reports ``description`` as the message.
    return {"not": {}, "description": reason}


def _role_descriptions() -> dict[str, str]:
    """Role name -> "kind: what it means", over every kind (a role may exist for several)."""
    out: dict[str, list[str]] = {}
    for kind, specs in ROLES.items():
        for name, spec in specs.items():
            senses = f"; positive = {' | '.join(spec.senses)}" if spec.senses else ""
            cats = f"; states: {', '.join(spec.categories)}" if spec.categories else ""
            out.setdefault(name, []).append(
                f"{kind.value}: {spec.kind.value} role, {spec.description}{senses}{cats}"
            )
    return {name: ". ".join(texts) + "." for name, texts in out.items()}


_POINT: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One value in the device's register map.",
    "additionalProperties": False,
    "required": ["address", "type"],
    "properties": {
        "address": {
            "type": "integer",
            "minimum": 0,
            "maximum": 65535,
            "description": "Zero-based register (or coil) address, as on the wire.",
        },
        "table": _string(
            "Modbus table: holding (FC03/06/16), input (FC04, read only), coil (FC01/05/15), "
            "discrete (FC02, read only). Coils and discrete inputs hold type = bit.",
            enum=_names(Table),
            default=Table.HOLDING.value,
        ),
        "type": _string(
            "Wire type. Fixed sizes: 16-bit types 1 register, 32-bit 2, 64-bit 4; "
            "string needs count.",
            enum=_names(DataType),
        ),
        "count": {
            "type": "integer",
            "minimum": 1,
            "maximum": 125,
            "description": "Registers a string occupies (2 characters each). Only, and "
            "required, for type = string; other types have a fixed size.",
        },
        "access": _string(
            "r: read only; rw: read and write; w: write only (a command register whose effect "
            "is read back through a state role).",
            enum=_names(Access),
            default=Access.R.value,
        ),
        "word_order": _string(
            "Order of the 16-bit words of a 32/64-bit value: big = high word first (the usual "
            "one), little = low word first ('swapped', CDAB). Bytes within a word are always "
            "big-endian.",
            enum=_names(WordOrder),
            default=WordOrder.BIG.value,
        ),
        "scale": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1,
            "description": "Engineering value = raw * scale (* 10^scale_factor), e.g. 0.1 for "
            "a register in tenths. Signs are declared per role (positive = ...), not here.",
        },
        "scale_factor": _string(
            "Name of another point of type sunssf whose value is the power-of-ten exponent "
            "(SunSpec idiom).",
            pattern=IDENTIFIER,
        ),
        "units": _string("Units of the engineering value (W, V, Hz, A, %, s), for people."),
        "symbols": {
            "type": "object",
            "description": "Enum: symbol -> raw value (e.g. { START = 1, STOP = 2 }). "
            "Bitfields: symbol -> bit number (0 = least significant).",
            "propertyNames": {"pattern": IDENTIFIER},
            "additionalProperties": {"type": "integer"},
        },
        "not_implemented": {
            "type": "integer",
            # No "minimum": the loader's message for -32768 names the pattern to write instead.
            "description": "The register pattern (as an unsigned number) meaning 'not "
            "implemented', read as no value: SunSpec uses 65535 for uint16/enum16, 0x8000 for "
            "int16, 0x80000000 for int32; 0x7FC00000 is a float32 NaN.",
        },
        "minimum": {
            "type": "number",
            "description": "The smallest value the device accepts, in engineering units (after "
            "scale), e.g. 500 for a charge limit that must never be 0. Writes below it are "
            "refused before they go on the wire. Only for numbers: not for string, bit, enum, "
            "bitfield or sunssf points, nor points with symbols.",
        },
        "maximum": {
            "type": "number",
            "description": "The largest value the device accepts, in engineering units (after "
            "scale), e.g. the rating of a power setpoint. Writes above it are refused before "
            "they go on the wire. Not below minimum; same points as minimum.",
        },
        "description": _string("What the value means, in the vendor's words."),
    },
}

_STATES: Final[dict[str, Any]] = {
    "type": "object",
    "description": "State roles only: category -> the point's symbols (or raw integers) "
    "that mean it, e.g. { stopped = ['PAUSED'], discharging = ['DISCHARGING'] }.",
    "propertyNames": {"pattern": IDENTIFIER},
    "additionalProperties": {
        "type": "array",
        "minItems": 1,
        "items": {"type": ["string", "integer"]},
    },
}

_STATE_READ: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One register of a state role read from several, with its own categories.",
    "additionalProperties": False,
    "required": ["point", "states"],
    "properties": {
        "point": _string("The point's name.", pattern=IDENTIFIER),
        "states": _STATES,
    },
}

_BINDING: Final[dict[str, Any]] = {
    "type": "object",
    "description": "A role bound to a point.",
    "additionalProperties": False,
    "allOf": [
        {
            "oneOf": [{"required": ["point"]}, {"required": ["points"]}],
            "description": "a role names its point: point = '...' (a state role read from "
            "several registers names them in points = [{ point = ..., states = ... }, ...] "
            "instead; not both)",
        }
    ],
    "properties": {
        "point": _string(
            "The point's name, or in a SunSpec profile 'MODEL.Point' (e.g. '704.WSet').",
            pattern=_POINT_REF,
        ),
        "value": {
            "type": ["string", "integer"],
            "description": "Command roles only: the symbol of the point to write (or a raw "
            "integer).",
        },
        "positive": _string(
            "Power roles: what a positive device value means (charge, discharge, generation, "
            "import, export). Required where the role has a sign, refused where it has none.",
            enum=_names(Sense),
        ),
        "states": _STATES,
        "ignore": {
            "type": "array",
            "minItems": 1,
            "items": {"type": ["string", "integer"]},
            "description": "relay_faults only: the bits (symbols or bit numbers) that do not "
            "fail a relay command, e.g. a watchdog flag that the next heartbeat clears.",
        },
        "points": {
            "type": "array",
            "minItems": 2,
            "items": {"$ref": "#/$defs/state_read"},
            "description": "State roles only, instead of point and states: a state shown in "
            "several registers (a charger that shows grid-forming only in a backup-status "
            "register). A fault in any of them wins; otherwise the first register listed "
            "whose value is in one of its categories decides, and a value in none of its "
            "categories defers to the next.",
        },
    },
}

_MODELS: Final[dict[str, Any]] = {
    "type": "array",
    "uniqueItems": True,
    "items": {"type": "integer", "minimum": 1, "maximum": 65534},
}

SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Gateway device profile",
    "description": "A Modbus device's register map and what its points mean to the gateway "
    "(docs/profiles.md). Validated by `gateway profiles validate FILE`.",
    "type": "object",
    "additionalProperties": False,
    "required": ["profile", "roles"],
    "properties": {
        "profile": {
            "type": "object",
            "description": "Identity and ratings of the device.",
            "additionalProperties": False,
            "required": ["name", "kind", "vendor", "model"],
            "properties": {
                "name": _string(
                    "Profile name: lower-case letters, digits and '-' (a shipped profile's "
                    "file name without .toml).",
                    pattern=PROFILE_NAME,
                ),
                "kind": _string(
                    "What the device is: meter_relay (islanding relay with a meter), charger "
                    "(bidirectional EV charger), der (PV / battery inverter).",
                    enum=_names(DeviceKind),
                ),
                "vendor": _string("Manufacturer, for people."),
                "model": _string("Model name, for people."),
                "description": _string("Free text: firmware, quirks, sources of the map."),
                "unit_id": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 247,
                    "default": Profile.__dataclass_fields__["unit_id"].default,
                    "description": "Modbus unit (slave) id.",
                },
                "max_charge_w": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Charge rating (W) when the device does not report one.",
                },
                "max_discharge_w": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Discharge rating (W) when the device does not report one.",
                },
                "assumptions": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Everything in this profile that is NOT from a public "
                    "register map (assumed registers, signs, values).",
                },
            },
        },
        "pacing": {
            "type": "object",
            "description": "How the device wants to be spoken to.",
            "additionalProperties": False,
            "properties": {
                "delay_ms": {
                    "type": "number",
                    "minimum": 0,
                    "default": round(_PACING.delay_s * 1000),
                    "description": "Pause before every request (ms); embedded servers and "
                    "devices behind another device's Modbus often need one.",
                },
                "timeout_ms": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": round(_PACING.timeout_s * 1000),
                    "description": "Per-request timeout (ms).",
                },
                "setpoint_interval_ms": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 60000,
                    "default": round(_PACING.setpoint_interval_s * 1000),
                    "description": "A ramped setpoint (setGradW, rampTms, soft start) is "
                    "written to this device at most this often (ms); the ramp keeps its rate "
                    "on average, in bigger steps. A limit that tightens is never held back.",
                },
            },
        },
        "points": {
            "type": "object",
            "description": "The register map: [points.<name>] tables. Absent in a SunSpec "
            "profile, whose points are found by discovery.",
            "propertyNames": {"pattern": IDENTIFIER},
            "additionalProperties": {"$ref": "#/$defs/point"},
        },
        "roles": {
            "type": "object",
            "description": "What the drivers use: role name -> binding. Which roles exist and "
            "which are required depends on profile.kind (docs/profiles.md).",
            "additionalProperties": False,
            "properties": {
                name: {"$ref": "#/$defs/binding", "description": text}
                for name, text in sorted(_role_descriptions().items())
            },
        },
        "watchdog": {
            "type": "object",
            "description": "The device's own communication-loss timer, which the gateway "
            "keeps alive; a dead gateway lets the device revert by itself.",
            "additionalProperties": False,
            "required": ["point", "timeout_s", "refresh_s", "reverts_to"],
            "properties": {
                "point": _string(
                    "The point written to keep the watchdog alive.", pattern=_POINT_REF
                ),
                "timeout_s": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "The device reverts after this long without a refresh (s).",
                },
                "refresh_s": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "The gateway refreshes this often (s); timeout_s / 2 or less.",
                },
                "value": _string(
                    "What is written: timeout (timeout_s itself, e.g. an idle-timeout "
                    "register), counter (an incrementing heartbeat), constant (always "
                    "`constant`).",
                    enum=_names(WatchdogValue),
                    default=WatchdogValue.TIMEOUT.value,
                ),
                "constant": {
                    "type": "integer",
                    "description": "The raw value written when value = constant.",
                },
                "reverts_to": _string(
                    "What the device does when the watchdog expires, in words (shown by "
                    "`gateway profiles show`)."
                ),
            },
        },
        "init": {
            "type": "array",
            "description": "[[init]] writes, in order, on every connect (e.g. remote control on).",
            "items": {
                "type": "object",
                "description": "One write of a fixed value.",
                "additionalProperties": False,
                "required": ["point", "value"],
                "properties": {
                    "point": _string("The point to write.", pattern=_POINT_REF),
                    "value": {
                        "type": ["string", "integer"],
                        "description": "A symbol of the point or a raw integer (SunSpec "
                        "profiles: integers only).",
                    },
                },
            },
        },
        "sequences": {
            "type": "object",
            "description": "Charger profiles only: the order of the device's steps, each a "
            "command role written or 'confirm' (wait for the goal by read-back). Devices "
            "differ: one must leave backup mode before it accepts a stop, another must be "
            "stopped first.",
            "additionalProperties": False,
            "properties": {
                name: {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "enum": [CONFIRM, *SEQUENCE_COMMANDS]},
                    "default": list(getattr(_SEQUENCES, name)),
                    "description": text,
                }
                for name, text in _SEQUENCE_TEXT.items()
            },
        },
        "sunspec": {
            "type": "object",
            "description": "Only for SunSpec devices: the model chain is walked at connect "
            "time and roles bind 'MODEL.Point'.",
            "additionalProperties": False,
            "required": ["required_models"],
            "properties": {
                "bases": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 0, "maximum": 65535},
                    "default": list(_SUNSPEC.bases),
                    "description": "Addresses where the 'SunS' marker is looked for, in order.",
                },
                "required_models": {
                    **_MODELS,
                    "minItems": 1,
                    "description": "Models the device must have, or it is refused.",
                },
                "optional_models": {
                    **_MODELS,
                    "description": "Models roles may use that the device need not have; "
                    "their roles stay unbound when the model is absent.",
                },
            },
        },
    },
    "if": {"required": ["sunspec"]},
    "then": {
        "properties": {
            "points": _forbidden(
                "a SunSpec profile has no [points]: its points are found by discovery and "
                "roles name them 'MODEL.Point'"
            )
        }
    },
    "else": {
        "required": ["points"],
        "description": "a profile needs [points.<name>] tables (or a [sunspec] table)",
    },
    "$defs": {"point": _POINT, "binding": _BINDING, "state_read": _STATE_READ},
}


def render_schema() -> str:
    """The schema as committed in ``schemas/device-profile.schema.json``."""
    return json.dumps(SCHEMA, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
