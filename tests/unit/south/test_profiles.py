"""Device profiles: the shipped ones load and mean what devices.md says; every broken profile is
refused with the line, key path and an actionable message; the schema file is current; the
locator finds the line of any key."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.south.codec import decode, encode, raw_range
from gateway.south.errors import Problem, ProfileError
from gateway.south.profile import (
    REQUIRED,
    ROLES,
    Access,
    DeviceKind,
    Point,
    Profile,
    Sense,
    WatchdogValue,
    sign,
)
from gateway.south.profile_schema import SCHEMA, render_schema
from gateway.south.profiles import find, load_profile, load_shipped, parse_profile, shipped
from gateway.south.profiles._locate import key_lines, locate
from gateway.south.registers import DataType, Table, WordOrder

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = [
    "dc-v2h-backup",
    "eastron-sdm630",
    "meter-collar-relay",
    "sigenergy-dc",
    "sunspec-der",
    "sunspec-legacy-der",
    "wallbox-quasar",
]

# A small valid charger profile; the broken cases below each change one thing in it. Line
# numbers in the cases refer to the changed text (most changes keep the line count).
BASE = """\
[profile]
name = "test-charger"
kind = "charger"
vendor = "Acme"
model = "C1"

[points.mode]
address = 81
type = "enum16"
access = "rw"
symbols = { USER = 0, REMOTE = 1 }

[points.timeout]
address = 88
type = "uint16"
access = "rw"
units = "s"

[points.action]
address = 257
type = "enum16"
access = "rw"
symbols = { START = 1, STOP = 2 }

[points.setpoint]
address = 260
type = "int16"
access = "rw"
units = "W"

[points.power]
address = 526
type = "int16"
units = "W"

[points.state]
address = 537
type = "enum16"
symbols = { NO_CAR = 0, CHARGING = 1, PAUSED = 4, DISCHARGING = 11 }

[points.soc]
address = 538
type = "uint16"
units = "%"

[roles]
start = { point = "action", value = "START" }
stop = { point = "action", value = "STOP" }
power_setpoint = { point = "setpoint", positive = "charge" }
power = { point = "power", positive = "charge" }
soc = { point = "soc" }
state.point = "state"
state.states.no_ev = ["NO_CAR"]
state.states.charging = ["CHARGING"]
state.states.stopped = ["PAUSED"]
state.states.discharging = ["DISCHARGING"]

[watchdog]
point = "timeout"
timeout_s = 60
refresh_s = 20
reverts_to = "stops"

[[init]]
point = "mode"
value = "REMOTE"
"""

SUNSPEC_BASE = """\
[profile]
name = "test-der"
kind = "der"
vendor = "Acme"
model = "D1"

[sunspec]
required_models = [1, 701, 704]
optional_models = [713]

[roles]
power = { point = "701.W", positive = "generation" }
setpoint_enable = { point = "704.WSetEna", value = "ENABLED" }
soc = { point = "713.SoC" }
connected = { point = "701.ConnSt", states = { connected = ["CONNECTED"], disconnected = [0] } }

[[init]]
point = "704.WSetMod"
value = 1
"""


def edit(base: str, *changes: tuple[str, str]) -> str:
    text = base
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} must occur exactly once"
        text = text.replace(old, new)
    return text


def problems_of(text: str, source: str = "t.toml") -> list[Problem]:
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, source)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return caught.value.problems


# -- the shipped profiles -----------------------------------------------------------------------


def test_the_shipped_profiles_are_found_by_file_name() -> None:
    files = shipped()
    assert list(files) == SHIPPED
    for name, path in files.items():
        assert path.name == f"{name}.toml"
        assert path.is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads_under_its_file_name(name: str) -> None:
    profile = load_shipped(name)
    assert profile.name == name
    assert REQUIRED[profile.kind] <= set(profile.roles)
    assert profile.source == str(shipped()[name])
    assert find(name) == profile
    assert find(str(shipped()[name])) == profile


def test_wallbox_quasar_follows_the_public_map() -> None:
    q = load_shipped("wallbox-quasar")
    assert q.kind is DeviceKind.CHARGER
    assert (q.points["control_mode"].address, q.points["idle_timeout"].address) == (81, 88)
    setpoint = q.point_for("power_setpoint")
    assert (setpoint.address, setpoint.type, setpoint.access) == (260, DataType.INT16, Access.RW)
    assert q.roles["power_setpoint"].positive is Sense.CHARGE
    assert sign(q.roles["power_setpoint"].positive) == -1  # negative = discharge = into the home
    assert (q.roles["start"].value, q.roles["stop"].value) == (1, 2)
    assert q.roles["start"].symbol == "START"
    state = q.roles["state"]
    assert [state.category(raw) for raw in (0, 1, 4, 7, 11, 12)] == [
        "no_ev",
        "charging",
        "stopped",
        "fault",
        "discharging",
        "forming",
    ]
    assert all(state.category(raw) is not None for raw in range(13))  # every state has a meaning
    assert [(w.point, w.value) for w in q.init] == [("control_mode", 1), ("setpoint_type", 1)]
    assert q.watchdog is not None
    assert (q.watchdog.point, q.watchdog.value) == ("idle_timeout", WatchdogValue.TIMEOUT)
    assert q.watchdog.refresh_s <= q.watchdog.timeout_s / 2
    assert q.points["backup_mode"].address == 0x0300
    assert any("backup_mode" in a and "ASSUMED" in a for a in q.assumptions)
    assert (q.max_charge_w, q.max_discharge_w) == (7400.0, 7400.0)
    assert (setpoint.minimum, setpoint.maximum) == (-7400.0, 7400.0)


def test_sigenergy_uses_input_registers_and_unsigned_limits() -> None:
    s = load_shipped("sigenergy-dc")
    power = s.point_for("power")
    assert (power.address, power.table, power.type) == (31502, Table.INPUT, DataType.INT32)
    assert s.point_for("soc").scale == pytest.approx(0.1)
    assert {r: s.point_for(r).address for r in ("charge_limit", "discharge_limit")} == {
        "charge_limit": 41002,
        "discharge_limit": 41004,
    }
    assert s.point_for("charge_limit").type is DataType.UINT32
    assert (s.roles["start"].value, s.roles["stop"].value) == (0, 1)
    assert "power_setpoint" not in s.roles
    assert s.roles["state"].category(8) == "discharging"
    assert s.pacing.delay_s == pytest.approx(0.05)
    assert "Never write 0 to charge_limit (41002)" in s.description
    # ... which the profile says as a range, so Device.write refuses 0 and the driver floors at it.
    for role in ("charge_limit", "discharge_limit"):
        assert (s.point_for(role).minimum, s.point_for(role).maximum) == (500.0, 25000.0), role
    assert any("41004" in a and "ASSUMED" in a for a in s.assumptions)
    assert s.watchdog is None
    assert any("communication-loss" in a for a in s.assumptions)


def test_sunspec_der_binds_by_point_name_and_leaves_symbols_to_discovery() -> None:
    d = load_shipped("sunspec-der")
    assert d.points == {}
    assert d.sunspec is not None
    assert d.sunspec.required_models == (1, 701, 702, 704)
    assert d.sunspec.optional_models == (713, 715)
    assert d.roles["power"].point == "701.W"
    assert d.roles["power"].positive is Sense.GENERATION
    assert (d.roles["limit_enable"].value, d.roles["limit_enable"].symbol) == (None, "ENABLED")
    assert d.roles["connected"].state_symbols == {
        "connected": frozenset({"CONNECTED"}),
        "disconnected": frozenset({"DISCONNECTED"}),
    }
    assert d.watchdog is not None
    assert (d.watchdog.point, d.watchdog.value) == ("715.ControllerHb", WatchdogValue.COUNTER)
    assert [(w.point, w.value) for w in d.init] == [("704.WSetMod", 1)]


def test_the_sunspec_symbols_named_exist_in_the_model_definitions() -> None:
    models = resources.files("sunspec2") / "models" / "json"

    def symbols(model: int, point: str) -> set[str]:
        def walk(group: dict[str, Any]) -> Iterator[dict[str, Any]]:
            yield from group.get("points", [])
            for sub in group.get("groups", []):
                yield from walk(sub)

        doc = json.loads((models / f"model_{model}.json").read_text(encoding="utf-8"))
        (p,) = [p for p in walk(doc["group"]) if p["name"] == point]
        return {s["name"] for s in p.get("symbols", [])}

    d = load_shipped("sunspec-der")
    for binding in d.roles.values():
        model, point = binding.point.split(".")
        named = {binding.symbol} if binding.symbol else set()
        named |= {s for names in binding.state_symbols.values() for s in names}
        assert named <= symbols(int(model), point), binding.role


def test_the_reference_relay_never_moves_on_zero_and_reports_unknown_as_no_position() -> None:
    r = load_shipped("meter-collar-relay")
    command = r.point_for("relay_open")
    assert command.symbols == {"NONE": 0, "OPEN": 1, "CLOSE": 2}
    assert (r.roles["relay_open"].value, r.roles["relay_close"].value) == (1, 2)
    state = r.point_for("relay_state")
    assert (state.table, state.access) == (Table.INPUT, Access.R)
    assert r.roles["relay_state"].category(0) is None  # UNKNOWN: the core treats it as closed
    assert r.roles["relay_state"].category(2) == "closed"
    assert r.points["relay_faults"].symbols["WATCHDOG_EXPIRED"] == 3
    assert r.roles["net_power"].positive is Sense.IMPORT
    assert r.point_for("net_power").type is DataType.INT32
    assert r.point_for("current_l1").scale == pytest.approx(0.1)
    assert r.point_for("grid_frequency").scale == pytest.approx(0.01)
    assert r.watchdog is not None
    assert r.watchdog.value is WatchdogValue.COUNTER
    assert "HOLDS" in r.watchdog.reverts_to
    assert [(w.point, w.value) for w in r.init] == [("watchdog_timeout", r.watchdog.timeout_s)]
    timeout = r.points["watchdog_timeout"]
    assert (timeout.minimum, timeout.maximum) == (10.0, 3600.0)  # "10-3600 s", as documented


def representative(point: Point) -> Any:
    if point.type is DataType.STRING:
        return "AB"
    if point.symbols:
        return next(iter(point.symbols.values()))
    if point.type in (DataType.FLOAT32, DataType.FLOAT64):
        return 1234.5
    lo, hi = raw_range(point.type)
    return max(lo, min(hi, 100 if lo >= 0 else -100)) * point.scale


@pytest.mark.parametrize("name", SHIPPED)
def test_every_point_of_every_shipped_profile_round_trips_through_the_codec(name: str) -> None:
    profile = load_shipped(name)
    for point in profile.points.values():
        value = representative(point)
        sf = 0 if point.scale_factor else None
        back = decode(point, encode(point, value, sf), sf)
        if isinstance(value, float):
            assert back == pytest.approx(value), point.name
        else:
            assert back == value, point.name


# -- broken profiles ----------------------------------------------------------------------------

# (id, changes, line, key, message fragment): each must be the one and only problem reported.
CASES: list[tuple[str, list[tuple[str, str]], int | None, str, str]] = [
    # roles
    (
        "role of another kind",
        [('soc = { point = "soc" }', 'soc = { point = "soc" }\nw_max = { point = "power" }')],
        52,
        "roles.w_max",
        "'w_max' is a der role, not a charger role",
    ),
    (
        "required role missing",
        [('soc = { point = "soc" }\n', "")],
        46,
        "roles.soc",
        "a charger profile must bind 'soc' (EV state of charge (%))",
    ),
    (
        "no setpoint and no limits",
        [('power_setpoint = { point = "setpoint", positive = "charge" }\n', "")],
        46,
        "roles",
        "needs power_setpoint (signed) or both charge_limit and discharge_limit",
    ),
    (
        "one limit only",
        [
            (
                'power_setpoint = { point = "setpoint", positive = "charge" }',
                'charge_limit = { point = "setpoint" }',
            )
        ],
        46,
        "roles",
        "(it has only charge_limit)",
    ),
    (
        "grid forming without its pair",
        [
            (
                'soc = { point = "soc" }',
                'soc = { point = "soc" }\ngrid_forming_off = { point = "mode", value = "USER" }',
            )
        ],
        46,
        "roles.grid_forming_on",
        "come as a pair: bind 'grid_forming_on' too",
    ),
    (
        "role point missing",
        [('power = { point = "power"', 'power = { point = "pwr"')],
        50,
        "roles.power.point",
        "no point 'pwr' (did you mean 'power'?); points: action, mode, power, setpoint",
    ),
    (
        "sunspec point name without sunspec",
        [('power = { point = "power"', 'power = { point = "701.W"')],
        50,
        "roles.power.point",
        "'701.W' is a SunSpec point name: add a [sunspec] table",
    ),
    (
        "command symbol unknown",
        [('value = "START"', 'value = "STRAT"')],
        47,
        "roles.start.value",
        "'STRAT' is not a symbol of point 'action' (did you mean 'START'?); its symbols: START,",
    ),
    (
        "command number out of range",
        [('value = "STOP" }', "value = 70000 }")],
        48,
        "roles.stop.value",
        "70000 is outside what the point holds (0..65535)",
    ),
    (
        "command value missing",
        [('start = { point = "action", value = "START" }', 'start = { point = "action" }')],
        47,
        "roles.start.value",
        "start is a command role: it needs value",
    ),
    (
        "command on a read-only point",
        [('stop = { point = "action", value = "STOP" }', 'stop = { point = "power", value = 0 }')],
        48,
        "roles.stop.point",
        "stop writes point 'power', which is read only (access = r)",
    ),
    (
        "setpoint on a read-only point",
        [('{ point = "setpoint", positive', '{ point = "power", positive')],
        49,
        "roles.power_setpoint.point",
        "power_setpoint writes point 'power', which is read only",
    ),
    (
        "measure of a write-only point",
        [('units = "%"', 'units = "%"\naccess = "w"')],
        52,
        "roles.soc.point",
        "soc reads point 'soc', which is write only (access = w)",
    ),
    (
        "sign missing",
        [('power = { point = "power", positive = "charge" }', 'power = { point = "power" }')],
        50,
        "roles.power.positive",
        'power needs positive = "charge" or "discharge" or "generation"',
    ),
    (
        "sign of another role kind",
        [
            (
                'power = { point = "power", positive = "charge" }',
                'power = { point = "power", positive = "import" }',
            )
        ],
        50,
        "roles.power.positive",
        'power takes positive = "charge" or "discharge" or "generation", not \'import\'',
    ),
    (
        "sign where there is none",
        [('soc = { point = "soc" }', 'soc = { point = "soc", positive = "charge" }')],
        51,
        "roles.soc.positive",
        "soc has no sign: remove positive",
    ),
    (
        "value on a measure role",
        [('soc = { point = "soc" }', 'soc = { point = "soc", value = 1 }')],
        51,
        "roles.soc.value",
        "soc is a measure role: value is only for command roles",
    ),
    (
        "unknown state category",
        [("states.stopped", "states.stoped")],
        55,
        "roles.state.states.stoped",
        "unknown category 'stoped' (did you mean 'stopped'?); state categories: stopped, charging",
    ),
    (
        "unknown state symbol",
        [('["NO_CAR"]', '["NOCAR"]')],
        53,
        "roles.state.states.no_ev[0]",
        "'NOCAR' is not a symbol of point 'state' (did you mean 'NO_CAR'?)",
    ),
    (
        "state symbol in two categories",
        [('["PAUSED"]', '["PAUSED", "CHARGING"]')],
        55,
        "roles.state.states.stopped[1]",
        "'CHARGING' is listed also in 'charging': a state means one category",
    ),
    (
        "state role without states",
        [("\n".join(BASE.splitlines()[52:56]) + "\n", "")],
        52,
        "roles.state.states",
        "state is a state role: it needs states",
    ),
    # points
    (
        "scale factor point missing",
        [('units = "W"\n\n[points.state]', 'scale_factor = "W_SF"\n\n[points.state]')],
        34,
        "points.power.scale_factor",
        "no point 'W_SF'; scale_factor names a point of type sunssf",
    ),
    (
        "scale factor of the wrong type",
        [('units = "W"\n\n[points.state]', 'scale_factor = "soc"\n\n[points.state]')],
        34,
        "points.power.scale_factor",
        "point 'soc' is uint16, but a scale factor must be type sunssf",
    ),
    (
        "count on a number",
        [('units = "W"\n\n[points.power]', "count = 2\n\n[points.power]")],
        29,
        "points.setpoint.count",
        "count is only for strings; type int16 always occupies 1 register: remove count",
    ),
    (
        "string without count",
        [
            (
                'value = "REMOTE"\n',
                'value = "REMOTE"\n\n[points.serial]\naddress = 2\ntype = "string"\n',
            )
        ],
        68,
        "points.serial.count",
        "a string point needs count = <registers> (2 characters each)",
    ),
    (
        "overlapping registers",
        [
            ('type = "int16"\naccess = "rw"', 'type = "int32"\naccess = "rw"'),
            ("address = 526", "address = 261"),
        ],
        32,
        "points.power.address",
        "'power' (holding register 261) overlaps 'setpoint' (registers 260..261)",
    ),
    (
        "past the last address",
        [('address = 88\ntype = "uint16"', 'address = 65535\ntype = "uint32"')],
        14,
        "points.timeout.address",
        "registers 65535..65536 run past the last address 65535",
    ),
    (
        "coil that is not a bit",
        [
            (
                'value = "REMOTE"\n',
                'value = "REMOTE"\n\n[points.flag]\naddress = 0\ntable = "coil"\ntype = "uint16"\n',
            )
        ],
        71,
        "points.flag.type",
        'a coil point holds one bit: use type = "bit"',
    ),
    (
        "bit in a holding register",
        [('value = "REMOTE"\n', 'value = "REMOTE"\n\n[points.flag]\naddress = 0\ntype = "bit"\n')],
        68,
        "points.flag.table",
        'type = "bit" is for coil or discrete points, not holding',
    ),
    (
        "writable input register",
        [("address = 526\n", 'address = 526\ntable = "input"\naccess = "rw"\n')],
        34,
        "points.power.access",
        'input points are read only: use access = "r"',
    ),
    (
        "symbol value out of range",
        [("STOP = 2 }", "STOP = 70000 }")],
        23,
        "points.action.symbols.STOP",
        "value 70000 of 'STOP' is outside 0..65535 (type enum16)",
    ),
    (
        "signed not-implemented marker",
        [('units = "W"\n\n[points.state]', "not_implemented = -32768\n\n[points.state]")],
        34,
        "points.power.not_implemented",
        "-32768 is not a int16 register pattern (0..65535); write the register pattern 32768",
    ),
    (
        "scaled symbols",
        [('address = 81\ntype = "enum16"', 'address = 81\ntype = "uint16"\nscale = 0.1')],
        10,
        "points.mode.scale",
        "a point with symbols holds raw codes and cannot be scaled",
    ),
    # ranges
    (
        "range upside down",
        [
            (
                'access = "rw"\nunits = "W"',
                'access = "rw"\nunits = "W"\nminimum = 100\nmaximum = -100',
            )
        ],
        30,
        "points.setpoint.minimum",
        "minimum = 100 is above maximum = -100: no value would be accepted",
    ),
    (
        "minimum the type cannot hold",
        [('units = "s"', 'units = "s"\nminimum = -1')],
        18,
        "points.timeout.minimum",
        "does not fit point 'timeout': timeout: -1 s is outside what the point holds (0..65535)",
    ),
    (
        "maximum the type cannot hold after scaling",
        [('units = "%"', 'units = "%"\nscale = 0.1\nmaximum = 7000')],
        46,
        "points.soc.maximum",
        "soc: 7000 % is outside what the point holds (0..6553.5)",
    ),
    (
        "non-finite minimum",
        [('access = "rw"\nunits = "W"', 'access = "rw"\nunits = "W"\nminimum = -inf')],
        30,
        "points.setpoint.minimum",
        "minimum = -inf is not a finite number",
    ),
    (
        "range on a string",
        [
            (
                'value = "REMOTE"\n',
                (
                    'value = "REMOTE"\n\n[points.serial]\naddress = 2\ntype = "string"\n'
                    "count = 4\nminimum = 0\n"
                ),
            )
        ],
        72,
        "points.serial.minimum",
        "type string is not a number and has no range: remove minimum",
    ),
    (
        "range on a bit",
        [
            (
                'value = "REMOTE"\n',
                (
                    'value = "REMOTE"\n\n[points.flag]\naddress = 0\ntable = "coil"\n'
                    'type = "bit"\nmaximum = 1\n'
                ),
            )
        ],
        72,
        "points.flag.maximum",
        "type bit is not a number and has no range: remove maximum",
    ),
    (
        "range on a point with symbols",
        [('address = 81\ntype = "enum16"', 'address = 81\ntype = "uint16"\nmaximum = 1')],
        10,
        "points.mode.maximum",
        "a point with symbols holds raw codes and has no range: remove maximum",
    ),
    (
        "watchdog timeout outside the range",
        [('units = "s"', 'units = "s"\nmaximum = 30')],
        61,
        "watchdog.timeout_s",
        "60 is outside the range of point 'timeout' (at most 30 s, its minimum / maximum)",
    ),
    (
        "watchdog counter outside the range",
        [
            ('units = "s"', 'units = "s"\nmaximum = 3600'),
            ("refresh_s = 20", 'refresh_s = 20\nvalue = "counter"'),
        ],
        63,
        "watchdog.value",
        "a counter runs through 0..65535, but point 'timeout' only takes at most 3600 s",
    ),
    (
        "init number outside the range",
        [
            ('units = "s"', 'units = "s"\nminimum = 10'),
            ('value = "REMOTE"\n', 'value = "REMOTE"\n\n[[init]]\npoint = "timeout"\nvalue = 5\n'),
        ],
        71,
        "init[1].value",
        "5 is outside the range of point 'timeout' (at least 10 s, its minimum / maximum)",
    ),
    # watchdog
    (
        "watchdog point missing",
        [('point = "timeout"', 'point = "timout"')],
        59,
        "watchdog.point",
        "no point 'timout' (did you mean 'timeout'?)",
    ),
    (
        "watchdog on a read-only point",
        [('point = "timeout"', 'point = "soc"')],
        59,
        "watchdog.point",
        "the watchdog writes point 'soc', which is read only (access = r)",
    ),
    (
        "refresh not under the timeout",
        [("refresh_s = 20", "refresh_s = 60")],
        61,
        "watchdog.refresh_s",
        (
            "refresh_s = 60 is not under timeout_s = 60: refresh must be well under the timeout; "
            "use 30 (timeout / 2) or less"
        ),
    ),
    (
        "constant without value = constant",
        [('reverts_to = "stops"', 'reverts_to = "stops"\nconstant = 1')],
        63,
        "watchdog.constant",
        'constant is only used with value = "constant" (value is "timeout"): remove it',
    ),
    (
        "value = constant without constant",
        [("refresh_s = 20", 'refresh_s = 20\nvalue = "constant"')],
        58,
        "watchdog.constant",
        'value = "constant" needs constant = <raw value>',
    ),
    (
        "timeout that does not fit its register",
        [("timeout_s = 60", "timeout_s = 70000")],
        60,
        "watchdog.timeout_s",
        "does not fit point 'timeout': timeout: 70000.0 s is outside what the point holds",
    ),
    # init
    (
        "init point missing",
        [('point = "mode"', 'point = "mod"')],
        65,
        "init[0].point",
        "no point 'mod' (did you mean 'mode'?)",
    ),
    (
        "init of a read-only point",
        [('point = "mode"\nvalue = "REMOTE"', 'point = "soc"\nvalue = 1')],
        65,
        "init[0].point",
        "init writes point 'soc', which is read only (access = r)",
    ),
    (
        "init symbol unknown",
        [('value = "REMOTE"', 'value = "REMOT"')],
        66,
        "init[0].value",
        "'REMOT' is not a symbol of point 'mode' (did you mean 'REMOTE'?); its symbols: REMOTE,",
    ),
    (
        "init number out of range",
        [('value = "REMOTE"', "value = 70000")],
        66,
        "init[0].value",
        "mode: 70000 is outside what the point holds (0..65535)",
    ),
    (
        "second init write",
        [('value = "REMOTE"\n', 'value = "REMOTE"\n\n[[init]]\npoint = "nope"\nvalue = 1\n')],
        69,
        "init[1].point",
        "no point 'nope'",
    ),
    # schema
    (
        "unknown key",
        [('units = "s"', 'unit = "s"')],
        17,
        "points.timeout.unit",
        "unknown key 'unit' (did you mean 'units'?); allowed here: access, address, count",
    ),
    (
        "unknown role name",
        [("start = {", "strat = {")],
        47,
        "roles.strat",
        "unknown key 'strat' (did you mean 'start'?); allowed here: charge_limit, discharge_limit",
    ),
    (
        "string for an integer",
        [("address = 81", 'address = "81"')],
        8,
        "points.mode.address",
        "expected an integer, found string '81'",
    ),
    (
        "float for an integer",
        [("address = 257", "address = 257.0")],
        20,
        "points.action.address",
        "expected an integer, found float 257.0",
    ),
    (
        "bad kind",
        [('kind = "charger"', 'kind = "chargr"')],
        3,
        "profile.kind",
        (
            "'chargr' is not allowed (did you mean 'charger'?); "
            "allowed: meter_relay, meter, charger, der"
        ),
    ),
    (
        "bad access",
        [('access = "rw"\nunits = "W"', 'access = "rws"\nunits = "W"')],
        28,
        "points.setpoint.access",
        "'rws' is not allowed (did you mean 'rw'?); allowed: r, rw, w",
    ),
    (
        "missing vendor",
        [('vendor = "Acme"\n', "")],
        1,
        "profile.vendor",
        "missing required key 'vendor': Manufacturer, for people.",
    ),
    (
        "bad point name",
        [("[points.soc]", '[points."so c"]')],
        41,
        'points."so c"',
        "name 'so c' is not allowed: use a letter or '_', then letters, digits or '_'",
    ),
    (
        "unit id out of range",
        [('model = "C1"', 'model = "C1"\nunit_id = 248')],
        6,
        "profile.unit_id",
        "248 is above the maximum 247",
    ),
    (
        "zero refresh",
        [("refresh_s = 20", "refresh_s = 0")],
        61,
        "watchdog.refresh_s",
        "0 must be greater than 0",
    ),
    (
        "points in a sunspec profile",
        [('value = "REMOTE"\n', 'value = "REMOTE"\n\n[sunspec]\nrequired_models = [1]\n')],
        7,
        "points",
        "a SunSpec profile has no [points]: its points are found by discovery",
    ),
    (
        "init without value",
        [('value = "REMOTE"\n', "")],
        64,
        "init[0].value",
        "missing required key 'value'",
    ),
]


@pytest.mark.parametrize(
    ("changes", "line", "key", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_broken_profile_is_refused_with_line_key_and_message(
    changes: list[tuple[str, str]], line: int, key: str, fragment: str
) -> None:
    (problem,) = problems_of(edit(BASE, *changes))
    assert (problem.source, problem.line, problem.key) == ("t.toml", line, key)
    assert fragment in problem.message


SUNSPEC_CASES: list[tuple[str, list[tuple[str, str]], int, str, str]] = [
    (
        "plain point name",
        [('"701.W"', '"W"')],
        12,
        "roles.power.point",
        "a SunSpec profile names points 'MODEL.Point' (e.g. '704.WSet'), not 'W'",
    ),
    (
        "model not listed",
        [('"713.SoC"', '"802.SoC"')],
        14,
        "roles.soc.point",
        (
            "model 802 is in neither sunspec.required_models (1, 701, 704) nor "
            "sunspec.optional_models (713): add it to one of them"
        ),
    ),
    (
        "model both required and optional",
        [("optional_models = [713]", "optional_models = [713, 704]")],
        9,
        "sunspec.optional_models[1]",
        "model 704 is also in required_models",
    ),
    (
        "symbol in init",
        [("value = 1", 'value = "WATTS"')],
        19,
        "init[0].value",
        "a SunSpec profile writes raw integers in init",
    ),
    (
        "state in two categories",
        [("disconnected = [0]", 'disconnected = ["CONNECTED"]')],
        15,
        "roles.connected.states.disconnected[0]",
        "'CONNECTED' is listed also in 'connected'",
    ),
]


def test_a_profile_sets_how_often_a_ramp_writes_it() -> None:
    text = edit(BASE, ("[watchdog]", "[pacing]\nsetpoint_interval_ms = 250\n\n[watchdog]"))
    assert parse_profile(text, "t.toml").pacing.setpoint_interval_s == pytest.approx(0.25)
    for bad in ("0", "-5", "60001", '"fast"'):
        line = f"[pacing]\nsetpoint_interval_ms = {bad}\n\n[watchdog]"
        (problem,) = problems_of(edit(BASE, ("[watchdog]", line)))
        assert problem.key == "pacing.setpoint_interval_ms", (bad, problem)


@pytest.mark.parametrize(
    ("changes", "line", "key", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in SUNSPEC_CASES],
)
def test_a_broken_sunspec_profile_is_refused(
    changes: list[tuple[str, str]], line: int, key: str, fragment: str
) -> None:
    (problem,) = problems_of(edit(SUNSPEC_BASE, *changes))
    assert (problem.line, problem.key) == (line, key)
    assert fragment in problem.message


def test_the_bases_load() -> None:
    charger = parse_profile(BASE, "t.toml")
    assert charger.roles["state"].states == {
        "no_ev": frozenset({0}),
        "charging": frozenset({1}),
        "stopped": frozenset({4}),
        "discharging": frozenset({11}),
    }
    der = parse_profile(SUNSPEC_BASE, "d.toml")
    connected = der.roles["connected"]
    assert connected.states == {"disconnected": frozenset({0})}
    assert connected.state_symbols == {"connected": frozenset({"CONNECTED"})}
    assert (der.roles["setpoint_enable"].value, der.roles["setpoint_enable"].symbol) == (
        None,
        "ENABLED",
    )


def test_a_range_loads_in_engineering_units() -> None:
    text = edit(BASE, ('units = "%"', 'units = "%"\nscale = 0.1\nminimum = 5\nmaximum = 100.5'))
    soc = parse_profile(text, "t.toml").points["soc"]
    assert (soc.minimum, soc.maximum) == (5.0, 100.5)
    assert isinstance(soc.minimum, float)
    assert soc.range_text() == "5..100.5 %"
    assert [soc.admits(v) for v in (4.9, 5, 100.5, 100.6)] == [False, True, True, False]
    plain = parse_profile(BASE, "t.toml").points["soc"]
    assert (plain.minimum, plain.maximum, plain.range_text()) == (None, None, "any")
    assert plain.admits(-1e9)


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = edit(
        BASE,
        ("refresh_s = 20", "refresh_s = 60"),
        ('value = "REMOTE"', 'value = "REMOT"'),
        ('value = "START"', 'value = "STRAT"'),
        ('units = "W"\n\n[points.power]', "count = 2\n\n[points.power]"),
    )
    assert [(p.line, p.key) for p in problems_of(text)] == [
        (29, "points.setpoint.count"),
        (47, "roles.start.value"),
        (61, "watchdog.refresh_s"),
        (66, "init[0].value"),
    ]


def test_every_schema_problem_is_reported_at_once() -> None:
    text = edit(BASE, ('units = "s"', 'unit = "s"'), ('kind = "charger"', 'kind = "chargr"'))
    assert [(p.line, p.key) for p in problems_of(text)] == [
        (3, "profile.kind"),
        (17, "points.timeout.unit"),
    ]


def test_a_toml_syntax_error_has_tomllibs_line() -> None:
    (problem,) = problems_of('[profile]\nname = "x"\nkind = "charger\n')
    assert (problem.line, problem.key) == (3, "")
    assert problem.message.startswith("not valid TOML: ")
    assert str(problem) == f"t.toml:3: (top level): {problem.message}"


def test_garbage_is_refused_not_crashed_on() -> None:
    (problem,) = problems_of("\x00\x01 this is not TOML")
    assert problem.line == 1
    assert problem.message.startswith("not valid TOML")
    unterminated = problems_of('[profile]\nname = "x')
    assert unterminated[0].line == 2


def test_an_empty_profile_lists_what_is_missing() -> None:
    assert [(p.line, p.key) for p in problems_of("")] == [
        (None, "points"),
        (None, "profile"),
        (None, "roles"),
    ]


def test_a_wrong_shape_is_a_problem_not_an_exception() -> None:
    problems = problems_of("profile = 5\nroles = []\npoints = {}\n")
    assert [(p.line, p.key, p.message) for p in problems] == [
        (1, "profile", "expected a table, found integer 5"),
        (2, "roles", "expected a table, found a array"),
    ]


def test_files_that_cannot_be_read_are_problems(tmp_path: Path) -> None:
    with pytest.raises(
        ProfileError, match=r"missing.toml: \(top level\): cannot read: No such file"
    ):
        load_profile(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "\xe9"')
    with pytest.raises(ProfileError, match=r"not UTF-8 text \(byte 8\)"):
        load_profile(latin)


def test_an_unknown_shipped_name_suggests_the_closest() -> None:
    with pytest.raises(
        ProfileError,
        match=r"no shipped profile 'wallbox-quasr' \(did you mean 'wallbox-quasar'\?\)",
    ):
        find("wallbox-quasr")


def test_a_profile_file_is_found_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(BASE, encoding="utf-8")
    assert find(str(path)).name == "test-charger"
    assert find(path).source == str(path)


def test_defaults_are_the_schema_defaults() -> None:
    text = edit(
        BASE,
        (
            '[points.soc]\naddress = 538\ntype = "uint16"\nunits = "%"',
            '[points.soc]\naddress = 538\ntype = "uint16"',
        ),
    )
    profile = parse_profile(text, "t.toml")
    soc = profile.points["soc"]
    point = SCHEMA["$defs"]["point"]["properties"]
    assert soc.table.value == point["table"]["default"] == "holding"
    assert soc.access.value == point["access"]["default"] == "r"
    assert soc.word_order.value == point["word_order"]["default"] == WordOrder.BIG.value
    assert soc.scale == point["scale"]["default"] == 1
    meta = SCHEMA["properties"]["profile"]["properties"]
    assert profile.unit_id == meta["unit_id"]["default"] == 1
    pacing = SCHEMA["properties"]["pacing"]["properties"]
    assert profile.pacing.delay_s * 1000 == pacing["delay_ms"]["default"] == 0
    assert profile.pacing.timeout_s * 1000 == pacing["timeout_ms"]["default"] == 1000
    assert profile.pacing.setpoint_interval_s * 1000 == pacing["setpoint_interval_ms"]["default"]
    assert profile.pacing.setpoint_interval_s == 1.0
    watchdog = SCHEMA["properties"]["watchdog"]["properties"]
    assert profile.watchdog is not None
    assert profile.watchdog.value.value == watchdog["value"]["default"] == "timeout"
    bases = SCHEMA["properties"]["sunspec"]["properties"]["bases"]["default"]
    assert parse_profile(SUNSPEC_BASE, "d").sunspec.bases == tuple(bases) == (40000, 0, 50000)  # type: ignore[union-attr]


def test_a_profile_is_frozen() -> None:
    profile = parse_profile(BASE, "t.toml")
    assert isinstance(profile, Profile)
    with pytest.raises(TypeError):
        profile.points["x"] = profile.points["soc"]  # type: ignore[index]
    with pytest.raises(TypeError):
        profile.points["soc"].symbols["X"] = 1  # type: ignore[index]


# -- the schema ---------------------------------------------------------------------------------


def test_the_committed_schema_file_is_current() -> None:
    committed = (ROOT / "schemas" / "device-profile.schema.json").read_text(encoding="utf-8")
    assert committed == render_schema()
    assert committed.endswith("}\n")


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _objects(value, f"{path}/{n}")


def test_every_table_refuses_unknown_keys_and_every_property_is_described() -> None:
    objects = list(_objects(SCHEMA))
    assert len(objects) >= 9
    for path, obj in objects:
        assert obj.get("additionalProperties") is not True, path
        if "properties" in obj:
            assert obj["additionalProperties"] is False, path
        for name, prop in obj.get("properties", {}).items():
            assert prop.get("description"), f"{path}/properties/{name}"


def test_the_shipped_profiles_pass_the_schema_file_as_editors_see_it() -> None:
    schema = json.loads((ROOT / "schemas" / "device-profile.schema.json").read_text("utf-8"))
    for path in shipped().values():
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        assert list(Draft202012Validator(schema).iter_errors(doc)) == [], path.name


# -- the locator ---------------------------------------------------------------------------------

TRICKY = '''\
# [not.a.header]
title = "x = [y]"   # comment [z]
[a]
b = 1
c.d = 2
"quoted.key" = 3
e = { f = 1, g = { h = "}" } }
arr = [
  "one",  # [fake]
  { k = 1 },
]
ml = """
[b]
x = 1 \\""" still in the string
"""
[[t]]
n = 1
[[t]]
n = 2
[t.sub]
m = 3
[ a . z ]
y = 'lit'
when = 1979-05-27 07:32:00Z
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("title",), 2),
        (("a",), 3),
        (("a", "b"), 4),
        (("a", "c"), 5),
        (("a", "c", "d"), 5),
        (("a", "quoted.key"), 6),
        (("a", "e", "g", "h"), 7),
        (("a", "arr"), 8),
        (("a", "arr", 0), 9),
        (("a", "arr", 1, "k"), 10),
        (("a", "ml"), 12),
        (("t", 0, "n"), 17),
        (("t", 1), 18),
        (("t", 1, "n"), 19),
        (("t", 1, "sub", "m"), 21),
        (("a", "z", "y"), 23),
        (("a", "z", "when"), 24),
        # fallbacks: the nearest enclosing key that is written
        (("a", "missing"), 3),
        (("t", 1, "nope"), 18),
        (("a", "e", "zzz"), 7),
        (("b", "x"), None),  # inside a string, not a table
        (("not",), None),  # inside a comment
        ((), None),
    ],
)
def test_locate_finds_the_line_of_a_key_path(path: tuple[str | int, ...], line: int | None) -> None:
    assert tomllib.loads(TRICKY)["t"][1]["sub"]["m"] == 3  # the text is valid TOML
    assert locate(TRICKY, path) == line


def _leaves(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _leaves(value, (*path, n))
    else:
        yield path


@pytest.mark.parametrize(
    "text", [TRICKY, BASE, SUNSPEC_BASE, *(p.read_text("utf-8") for p in shipped().values())]
)
def test_the_locator_finds_every_value_tomllib_finds(text: str) -> None:
    lines = key_lines(text)
    rows = text.splitlines()
    leaves = list(_leaves(tomllib.loads(text)))
    assert leaves
    for path in leaves:
        assert path in lines, path
        last = path[-1]
        if isinstance(last, str) and last.isidentifier():
            assert last in rows[lines[path] - 1], (path, rows[lines[path] - 1])


def test_the_locator_survives_text_that_is_not_toml() -> None:
    assert locate("[[[\n= = =", ("a",)) is None
    assert locate('a = "unterminated', ("a",)) == 1


def test_the_profile_docs_name_every_role_type_and_shipped_profile() -> None:
    doc = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    for kind, roles in ROLES.items():
        assert f"| {kind.value} |" in doc
        for role in roles:
            assert role in doc, role
    for dtype in DataType:
        assert dtype.value in doc, dtype
    for name in SHIPPED:
        assert f"**{name}**" in doc or f"`{name}.toml`" in doc, name
