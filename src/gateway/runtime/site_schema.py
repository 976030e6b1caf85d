"""The JSON Schema (draft 2020-12) of the site file: the single source.

``schemas/site.schema.json`` is rendered from ``SCHEMA`` (a test keeps it current;
``gateway check-config --schema`` prints it). Every table is closed (``additionalProperties:
false``): a key the gateway does not know is an error with a "did you mean", never silently
ignored (a ``server_lfid`` typo used to turn off server pinning without a word). The schema
checks shape, types and ranges; ``gateway.runtime.run_config`` then checks what a schema cannot
say (a device's role against its profile's kind, the voltage against the phases, files that
exist, certificates that parse) and the north parsers check their own tables' meaning.
"""

from __future__ import annotations

import json
from typing import Any, Final

#: A device's name: also its DER id in the engine, and its name in logs and the audit trail.
DEVICE_NAME: Final = r"^[a-z][a-z0-9_-]*$"
#: ``tcp://host:port``, ``rtu+tcp://host:port`` or ``rtu:///dev/ttyUSB0``.
TRANSPORT: Final = r"^(tcp|rtu\+tcp)://[^/?#\s]+:[0-9]{1,5}$|^rtu://(/[^?#\s]+)$"
ROLES: Final = ("meter_relay", "meter", "charger", "pv_inverter", "battery_inverter")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _n(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "number", "description": description, **extra}


def _i(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, **extra}


def _b(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _table(description: str, props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": props,
        **extra,
    }


_WATTS = {"minimum": 0, "maximum": 1_000_000}

_ENTER_SERVICE = _table(
    "Enter-service (reconnection) criteria. Defaults: IEEE 1547-2018 at 60 Hz (0.917-1.05 pu, "
    "59.5-60.1 Hz, 300 s); AS/NZS 4777.2:2020 at 50 Hz (216-253 V at 230 V, 47.5-50.15 Hz, 60 s).",
    {
        "delay_s": _n("Seconds the grid must stay in the window before reconnecting.", minimum=0),
        "v_min_pu": _n("Lowest grid voltage, per unit of the nominal voltage.", minimum=0),
        "v_max_pu": _n("Highest grid voltage, per unit of the nominal voltage.", minimum=0),
        "f_min_hz": _n("Lowest grid frequency (Hz).", minimum=0),
        "f_max_hz": _n("Highest grid frequency (Hz).", minimum=0),
    },
)

_BACKFEED = _table(
    "How much DER may backfeed the panel: the NEC 705.12(B)(3)(2) 120 % rule (static: 120 % of "
    "the busbar minus the main breaker), or a 705.13 power control system that the gateway is "
    "(dynamic: the busbar's sources within the limit, from the meter).",
    {
        "rule": _s(
            "705.12: the static 120 % rule; 705.13: a power-control limit.",
            enum=["705.12", "705.13"],
        ),
        "static_allowance_a": _n(
            "705.12: the installer's own static allowance (A), instead of the 120 % rule.",
            minimum=0,
        ),
        "power_control_limit_a": _n(
            "705.13: the busbar current the gateway keeps the sources within (A); default "
            "120 % of the busbar rating.",
            exclusiveMinimum=0,
        ),
    },
    required=["rule"],
)

_SITE = _table(
    "The home: its supply, its panel, its connection agreement and its backup reserve.",
    {
        "name": _s("The site's name, on every log line.", pattern=r"^[A-Za-z0-9_.-]+$"),
        "nominal_voltage_v": _n(
            "What the meter's grid voltage reads nominally: 240 (120/240 V split phase, line to "
            "line) or 230 (230 V single phase, or 230/400 V three phase, line to neutral).",
            enum=[240, 230],
        ),
        "frequency_hz": _i("Nominal frequency: 60 (split phase) or 50.", enum=[50, 60]),
        "phases": _s(
            "split (120/240 V), single (230 V) or three (230/400 V).",
            enum=["split", "single", "three"],
        ),
        "main_breaker_a": _n("The main breaker's rating (A).", exclusiveMinimum=0),
        "busbar_a": _n("The panel busbar's rating (A).", exclusiveMinimum=0),
        "backfeed": _BACKFEED,
        "export_limit_w": _n(
            "The connection agreement's export limit at the meter (W), always in force.", **_WATTS
        ),
        "import_limit_w": _n(
            "The connection agreement's import limit at the meter (W), always in force.", **_WATTS
        ),
        "backup_reserve_pct": _n(
            "State of charge the EV keeps for driving: no V2H below it (%).",
            minimum=0,
            maximum=100,
        ),
        "period_s": _n("Control-loop period (s).", minimum=0.05, maximum=60),
        "enter_service": _ENTER_SERVICE,
    },
    required=["nominal_voltage_v", "frequency_hz", "phases", "main_breaker_a", "busbar_a"],
)

_DEVICE = _table(
    "One device on Modbus: its role, its profile, where it is, and ratings it does not report.",
    {
        "name": _s(
            "Its name (also its DER id): lower-case letters, digits, '_' and '-'.",
            pattern=DEVICE_NAME,
        ),
        "role": _s("What it is to the home.", enum=list(ROLES)),
        "profile": _s(
            "A shipped profile's name (gateway profiles list) or a profile file, "
            "relative to this file."
        ),
        "transport": _s(
            "tcp://host:port, rtu+tcp://host:port (RTU frames over TCP) or "
            "rtu:///dev/ttyUSB0 (a serial port).",
            pattern=TRANSPORT,
        ),
        "unit_id": _i("Modbus unit id; default: the profile's.", minimum=0, maximum=247),
        "forms_island": _b(
            "A charger: true for the one that forms the home's grid in an island (needed when "
            "there are two or more); false for one that only charges, as a DER."
        ),
        "baudrate": _i(
            "rtu://: the serial line's speed.",
            enum=[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200],
        ),
        "parity": _s("rtu://: N (none), E (even) or O (odd).", enum=["N", "E", "O"]),
        "stopbits": _i("rtu://: 1 or 2.", enum=[1, 2]),
        "max_discharge_w": _n("Rated power into the home (W): discharge or generation.", **_WATTS),
        "max_charge_w": _n("Rated charging power (W).", **_WATTS),
        "capacity_wh": _n("Usable storage (Wh): the EV's or the battery's.", exclusiveMinimum=0),
        "max_va": _n("Nameplate apparent power (VA), reported north only.", exclusiveMinimum=0),
        "max_var": _n("Nameplate var delivered, reported north only.", minimum=0),
        "max_var_neg": _n("Nameplate var received (a magnitude), reported north only.", minimum=0),
        "min_pf_over_excited": _n(
            "Minimum power factor injecting var, in (0, 1].", exclusiveMinimum=0, maximum=1
        ),
        "min_pf_under_excited": _n(
            "Minimum power factor absorbing var, in (0, 1].", exclusiveMinimum=0, maximum=1
        ),
    },
    required=["name", "role", "profile", "transport"],
)

_FILE = "A file, relative to this file."

_SEP2_END_DEVICE = _table(
    "Aggregator mode: one per EndDevice (site).",
    {
        "lfdi": _s("The EndDevice's LFDI (40 hex digits)."),
        "sfdi": _i("Its SFDI; default: from the LFDI.", minimum=0),
        "pin": _i("Its registration PIN, with the check digit.", minimum=0),
        "connection_point": _s("CSIP-AUS: the site's NMI."),
    },
    required=["lfdi"],
)

_SEP2 = _table(
    "An IEEE 2030.5 utility server (CSIP, CSIP-AUS), over mutual TLS.",
    {
        "dcap": _s("The DeviceCapability URL (https://...)."),
        "server": _s("CSIP-AUS 1.3: the server to ask at /.well-known/csipaus (https://...)."),
        "cert": _s("Our certificate (PEM). " + _FILE),
        "key": _s("Our private key (PEM). " + _FILE),
        "chain": _s("Our certificate with its intermediates, to present. " + _FILE),
        "serca": _s("The only trust anchor for the server's chain. " + _FILE),
        "pin": _i("Registration PIN with its check digit (ALL-04).", minimum=0),
        "server_lfdi": _s("Accept only the server certificate with this LFDI."),
        "check_hostname": _b("false for a server addressed by IP in a test PKI."),
        "register": _b("true: POST our EndDevice when the server does not know it."),
        "connection_point": _s("CSIP-AUS: the site's NMI (PUT to ConnectionPoint)."),
        "pen": _i("Your IANA Private Enterprise Number, in our mRIDs.", minimum=1),
        "device_category": _s(
            "EndDevice deviceCategory (2030.5 DeviceCategoryType, hex, bits 0-25) in an in-band "
            "registration; default: one bit per kind of DER in the site."
        ),
        "profile": _s(
            "csip-aus, or csip (US: no CSIP-AUS elements written).", enum=["csip-aus", "csip"]
        ),
        "notify": _table(
            "Subscribe, and listen for notifications (mutual TLS).",
            {
                "listen": _s("Address to bind."),
                "port": _i("Port (0: any free one).", minimum=0, maximum=65535),
                "host": _s("The name the utility reaches us by (in the notificationURI)."),
                "require_certificate": _b(
                    "true (default): only a utility presenting a client certificate under the "
                    "SERCA may notify (mutual TLS). false: a sender without one is let in too "
                    "(TLS still), and what it sends only makes the gateway GET the resource "
                    "from the server; its content is never used."
                ),
            },
        ),
        "end_device": {
            "type": "array",
            "items": _SEP2_END_DEVICE,
            "description": "Aggregator mode: the EndDevices, one per site.",
        },
    },
)

_OADR2 = _table(
    "An OpenADR 2.0b VTN (through openleadr).",
    {
        "vtn_url": _s("The VTN's URL (https://...)."),
        "ven_name": _s("Our VEN name."),
        "ven_id": _s("Our VEN id, when the VTN assigned one beforehand."),
        "poll_interval_s": _n("Seconds between polls.", exclusiveMinimum=0),
        "report_interval_s": _n("Seconds between telemetry reports.", exclusiveMinimum=0),
        "cert": _s("Our certificate (PEM). " + _FILE),
        "key": _s("Our private key (PEM). " + _FILE),
        "ca_file": _s("The VTN's CA (PEM). " + _FILE),
        "vtn_fingerprint": _s("The VTN certificate's fingerprint, pinned."),
        "check_hostname": _b("false for a VTN addressed by IP in a test PKI."),
        "mapping": {"type": "object", "description": "Signal mapping (docs/openadr2.md)."},
        "programs": {"type": "object", "description": "Per market context (docs/openadr2.md)."},
        "availability": {"type": "object", "description": "Opt schedules (docs/openadr2.md)."},
    },
)

_OADR3 = _table(
    "An OpenADR 3 VTN (REST/JSON).",
    {
        "vtn": _s("The VTN's base URL."),
        "token_url": _s("The OAuth token URL; default: asked of the VTN."),
        "client_id": _s("Our client id."),
        "client_secret_file": _s("A file holding our client secret. " + _FILE),
        "client_secret_env": _s("An environment variable holding our client secret."),
        "client_secret": _s("Our client secret, inline (prefer client_secret_file or _env)."),
        "ven_name": _s("Our VEN name; default: the client id."),
        "ca_file": _s("The VTN's CA (PEM); default: the system's trust store. " + _FILE),
        "poll_s": _n("Seconds between polls.", exclusiveMinimum=0),
        "report_period_s": _n("Seconds between reports.", exclusiveMinimum=0),
        "timeout_s": _n("Seconds a request may take.", exclusiveMinimum=0),
        "webhook": {
            "type": "object",
            "description": "Subscriptions + callback (docs/openadr3.md).",
        },
        "program": {
            "type": "array",
            "items": {"type": "object"},
            "description": "The programs followed (docs/openadr3.md).",
        },
    },
)

SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "V2H gateway site file",
    "description": "One home: [site], its [[device]]s, and any of [sep2], [openadr2], "
    "[openadr3] (or none), [store], [log], [api]. docs/site.md.",
    "type": "object",
    "additionalProperties": False,
    "required": ["site", "device"],
    "properties": {
        "site": _SITE,
        "device": {
            "type": "array",
            "items": _DEVICE,
            "minItems": 1,
            "description": "The devices, in backfeed allocation order.",
        },
        "sep2": _SEP2,
        "openadr2": _OADR2,
        "openadr3": _OADR3,
        "store": _table("The SQLite store.", {"path": _s("The database file. " + _FILE)}),
        "log": _table(
            "What the gateway logs.",
            {
                "format": _s(
                    "human: one line per thing that happened; json: JSON lines.",
                    enum=["human", "json"],
                ),
                "level": _s("The least severe level logged.", enum=list(LOG_LEVELS)),
            },
        ),
        "api": _table(
            "The local API and dashboard (docs/api.md): served by gateway run when named.",
            {
                "listen": _s("Address to bind (default 127.0.0.1: this machine only)."),
                "port": _i("TCP port (default 8780; 0: any free port).", minimum=0, maximum=65535),
                "token_file": _s(
                    "The bearer token the writes need (island, reconnect, backup reserve, fault "
                    "reset), at "
                    "least 16 characters. Without it the API is read-only. " + _FILE
                ),
            },
        ),
    },
}


def render_schema() -> str:
    return json.dumps(SCHEMA, indent=2) + "\n"
