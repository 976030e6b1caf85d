"""Profiles must be able to confirm what they command, a state may span registers, and the order
of a charger's steps is the profile's: the loader's rules, each refusal with its key and a fix.

Each case changes one thing in a good profile and expects exactly that one problem.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_profiles import BASE, edit, problems_of

from gateway.cli import main
from gateway.south.profile import Binding, Sequences, StateRead
from gateway.south.profiles import load_shipped, parse_profile, shipped

RELAY = shipped()["meter-collar-relay"].read_text(encoding="utf-8")
BACKUP = shipped()["dc-v2h-backup"].read_text(encoding="utf-8")
FORMING_ROLES = (
    'soc = { point = "soc" }',
    (
        'soc = { point = "soc" }\ngrid_forming_on = { point = "mode", value = "REMOTE" }\n'
        'grid_forming_off = { point = "mode", value = "USER" }'
    ),
)
DER = """\
[profile]
name = "test-der"
kind = "der"
vendor = "Acme"
model = "D2"

[points.power]
address = 0
type = "int16"
units = "W"

[points.limit]
address = 1
type = "uint16"
access = "rw"
units = "%"

[roles]
power = { point = "power", positive = "generation" }
limit_pct = { point = "limit" }
"""

CASES: list[tuple[str, str, list[tuple[str, str]], str, str]] = [
    # -- commands that their profile could not confirm ----------------------------------------
    (
        "grid-forming with no forming state",
        BASE,
        [FORMING_ROLES],
        "roles.grid_forming_on",
        (
            "grid_forming_on cannot be confirmed: no register of roles.state reads 'forming'; add "
            "states.forming = [<the symbol the device shows while it forms a grid>] to roles.state"
        ),
    ),
    (
        "stop with no stopped state",
        BASE,
        [('state.states.stopped = ["PAUSED"]\n', "")],
        "roles.stop",
        "stop cannot be confirmed: no register of roles.state reads 'stopped'; add states.stopped",
    ),
    (
        "start with no discharging state",
        BASE,
        [('state.states.discharging = ["DISCHARGING"]\n', "")],
        "roles.start",
        "no register of roles.state reads 'discharging'",
    ),
    (
        "setpoint with no power measure",
        BASE,
        [('power = { point = "power", positive = "charge" }\n', "")],
        "roles.power",
        (
            "power_setpoint cannot be confirmed without a power measure (nor a stop at zero "
            "power): bind power = "
        ),
    ),
    (
        "relay_open with no open state",
        RELAY,
        [('open = ["OPEN"], ', "")],
        "roles.relay_open",
        (
            "relay_open cannot be confirmed: no register of roles.relay_state reads 'open'; add "
            "states.open"
        ),
    ),
    (
        "relay_close with no closed state",
        RELAY,
        [('closed = ["CLOSED"], ', "")],
        "roles.relay_close",
        "no register of roles.relay_state reads 'closed'",
    ),
    (
        "DER limit on a write-only register",
        DER,
        [('access = "rw"\nunits = "%"', 'access = "w"\nunits = "%"')],
        "roles.limit_pct.point",
        "a DER's setpoint is confirmed only by reading it back",
    ),
    (
        "ignore on another role",
        RELAY,
        [
            (
                'grid_voltage = { point = "grid_voltage" }',
                'grid_voltage = { point = "grid_voltage", ignore = [1] }',
            )
        ],
        "roles.grid_voltage.ignore",
        "ignore is only for relay_faults, not grid_voltage: remove it",
    ),
    (
        "ignore of a bit with no name",
        RELAY,
        [('ignore = ["WATCHDOG_EXPIRED"]', 'ignore = ["WATCHDOG"]')],
        "roles.relay_faults.ignore[0]",
        "'WATCHDOG' is not a symbol of point 'relay_faults' (did you mean 'WATCHDOG_EXPIRED'?)",
    ),
    # -- a state in several registers ---------------------------------------------------------
    (
        "several registers on a measure role",
        BASE,
        [
            (
                'soc = { point = "soc" }',
                (
                    'soc = { points = [{ point = "soc", states = {} }, { point = "power", '
                    "states = {} }] }"
                ),
            )
        ],
        "roles.soc.points",
        "soc is a measure role: points (several registers) is only for state roles",
    ),
    (
        "point and points",
        BACKUP,
        [
            (
                '[[roles.state.points]]\npoint = "backup_status"',
                '[roles.state]\npoint = "x"\n[[roles.state.points]]\npoint = "backup_status"',
            )
        ],
        "roles.state",
        "a role names its point: point = '...' (a state role read from several registers",
    ),
    (
        "states next to points",
        BACKUP,
        [
            (
                '[[roles.state.points]]\npoint = "backup_status"',
                (
                    "[roles.state]\n"
                    'states.stopped = ["IDLE"]\n[[roles.state.points]]\npoint = "backup_status"'
                ),
            )
        ],
        "roles.state.states",
        "each register has its own states: move these into the entry of their point",
    ),
    (
        "a register listed twice",
        BACKUP,
        [
            (
                '[[roles.state.points]]\npoint = "charge_state"',
                '[[roles.state.points]]\npoint = "backup_status"',
            )
        ],
        "roles.state.points[1].point",
        "point 'backup_status' is listed twice",
    ),
    (
        "a symbol of the other register",
        BACKUP,
        [('states.forming = ["GRID_FORMING"]', 'states.forming = ["DISCHARGING"]')],
        "roles.state.points[0].states.forming[0]",
        "'DISCHARGING' is not a symbol of point 'backup_status'",
    ),
    # -- sequences ----------------------------------------------------------------------------
    (
        "a sequence that never confirms",
        BACKUP,
        [
            (
                'leave_forming = ["grid_forming_off", "stop", "confirm"]',
                'leave_forming = ["grid_forming_off", "stop"]',
            )
        ],
        "sequences.leave_forming",
        (
            "leave_forming never confirms: add 'confirm' (the state read back as stopped at zero "
            "power) after its last command"
        ),
    ),
    (
        "a stop that starts",
        BACKUP,
        [('stop = ["stop", "confirm"]', 'stop = ["stop", "start", "confirm"]')],
        "sequences.stop[1]",
        "stop must not write start: a stop never starts power flow or grid-forming",
    ),
    (
        "a write after the forming confirmation",
        BACKUP,
        [
            (
                'enter_forming = ["grid_forming_on", "start", "confirm"]',
                'enter_forming = ["grid_forming_on", "confirm", "start"]',
            )
        ],
        "sequences.enter_forming[2]",
        "'start' after the last 'confirm' would go unconfirmed: enter_forming ends with",
    ),
    (
        "a stop after the stop confirmation",
        BACKUP,
        [
            (
                'leave_forming = ["grid_forming_off", "stop", "confirm"]',
                'leave_forming = ["grid_forming_off", "confirm", "stop"]',
            )
        ],
        "sequences.leave_forming[2]",
        "only grid_forming_off (which moves no power) may follow it",
    ),
    (
        "a stop that never stops",
        BACKUP,
        [('stop = ["stop", "confirm"]', 'stop = ["confirm"]')],
        "sequences.stop",
        "stop never writes stop: add it before 'confirm'",
    ),
    (
        "an unknown step",
        BACKUP,
        [('stop = ["stop", "confirm"]', 'stop = ["stopp", "confirm"]')],
        "sequences.stop[0]",
        "'stopp' is not allowed (did you mean 'stop'?)",
    ),
    (
        "a step the profile does not bind",
        BASE,
        [
            (
                "[watchdog]",
                '[sequences]\nstop = ["grid_forming_off", "stop", "confirm"]\n\n[watchdog]',
            )
        ],
        "sequences.stop[0]",
        "step 'grid_forming_off' is a command role this profile does not bind",
    ),
    (
        "forming steps without grid-forming",
        BASE,
        [("[watchdog]", '[sequences]\nenter_forming = ["start", "confirm"]\n\n[watchdog]')],
        "sequences.enter_forming",
        "this profile has no grid-forming mode: remove it",
    ),
    (
        "sequences on a relay",
        RELAY,
        [("[watchdog]", '[sequences]\nstop = ["stop", "confirm"]\n\n[watchdog]')],
        "sequences",
        "sequences are for charger profiles, not meter_relay",
    ),
]


@pytest.mark.parametrize(
    ("base", "changes", "key", "fragment"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_each_rule_refuses_with_the_key_and_how_to_fix_it(
    base: str, changes: list[tuple[str, str]], key: str, fragment: str
) -> None:
    (problem,) = problems_of(edit(base, *changes))
    assert (problem.key, problem.line is not None) == (key, True), problem
    assert fragment in problem.message, problem.message


def test_a_der_with_a_readable_limit_and_a_charger_with_a_forming_state_load() -> None:
    parse_profile(DER, "der.toml")
    parse_profile(
        edit(
            BASE,
            FORMING_ROLES,
            ('"PAUSED"]', '"PAUSED"]\nstate.states.forming = [0]'),
            ('states.no_ev = ["NO_CAR"]', "states.no_ev = [5]"),
        ),
        "t.toml",
    )


def test_validate_exits_1_naming_the_file_line_key_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "no-forming.toml"
    text = BACKUP.replace('states.forming = ["GRID_FORMING"]\n', "")
    bad.write_text(text, encoding="utf-8")
    line = text.splitlines().index('grid_forming_on = { point = "backup_mode", value = "ON" }')
    assert main(["profiles", "validate", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{bad}:{line + 1}: roles.grid_forming_on: grid_forming_on cannot be confirmed: no "
        "register of roles.state reads 'forming'; add states.forming = [<the symbol the device "
        "shows while it forms a grid>] to roles.state\n"
    )


# -- what loads, and what it means --------------------------------------------------------------


def test_the_example_reads_its_state_from_two_registers_backup_status_first() -> None:
    state = load_shipped("dc-v2h-backup").roles["state"]
    assert state.points == ("backup_status", "charge_state")
    assert state.states == {"forming": frozenset({1}), "fault": frozenset({3})}
    assert state.more[0].states["discharging"] == frozenset({3})
    assert load_shipped("dc-v2h-backup").sequences.leave_forming == (
        "grid_forming_off",
        "stop",
        "confirm",
    )


def test_the_default_sequences_are_the_old_order() -> None:
    quasar = load_shipped("wallbox-quasar")
    assert quasar.sequences == Sequences()
    assert Sequences().leave_forming == ("stop", "confirm", "grid_forming_off")
    assert Sequences().enter_forming == ("grid_forming_on", "start", "confirm")


STATE = Binding(
    "state",
    "backup",
    states={"forming": frozenset({1}), "fault": frozenset({3})},
    more=(StateRead("main", {"discharging": frozenset({3}), "fault": frozenset({4})}),),
)


@pytest.mark.parametrize(
    ("backup", "main", "category"),
    [
        (1, 3, "forming"),  # forming from the backup register wins over discharging
        (0, 3, "discharging"),  # NORMAL is in no category: the main register decides
        (1, 4, "fault"),  # a fault in any register wins
        (3, 3, "fault"),
        (0, 9, None),  # nothing the profile knows
        (None, 3, "discharging"),  # not implemented defers too
    ],
)
def test_precedence_of_a_state_in_two_registers(
    backup: int | None, main: int, category: str | None
) -> None:
    assert STATE.decide({"backup": backup, "main": main}) == category
