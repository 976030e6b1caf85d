"""``gateway profiles list | show | validate | schema`` through ``gateway.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.south.profile_schema import render_schema
from gateway.south.profiles import shipped

GOOD = shipped()["wallbox-quasar"].read_text(encoding="utf-8")


def test_list_shows_name_kind_vendor_model_and_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "VENDOR", "/", "MODEL", "FILE"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["dc-v2h-backup", "charger"],
        ["eastron-sdm630", "meter"],
        ["meter-collar-relay", "meter_relay"],
        ["sigenergy-dc", "charger"],
        ["sunspec-der", "der"],
        ["sunspec-legacy-der", "der"],
        ["wallbox-quasar", "charger"],
    ]
    assert "Wallbox / Quasar 1" in lines[7]
    assert lines[7].endswith("wallbox-quasar.toml")


def test_show_prints_points_roles_watchdog_init_and_assumptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "show", "wallbox-quasar"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wallbox-quasar: Wallbox / Quasar 1 (charger)\n")
    points = out.split("\npoints\n")[1].split("\nroles\n")[0]
    rows = {line.split()[0]: line.split() for line in points.splitlines()[1:]}
    assert rows["power_setpoint"][:6] == [
        "power_setpoint",
        "260",
        "(0x0104)",
        "holding",
        "int16",
        "1",
    ]
    assert rows["power_setpoint"][6:] == ["W", "rw", "range", "-7400..7400", "W"]
    assert rows["idle_timeout"][6:] == ["s", "rw"]  # no range: nothing shown
    assert rows["action"][-2:] == ["START=1", "STOP=2"]
    assert "  start             action          write START (1)\n" in out
    assert "  power_setpoint    power_setpoint  positive = charge\n" in out
    assert "discharging: DISCHARGING (11)" in out
    assert "  write the timeout (60 s) to idle_timeout every 20 s (device timeout 60 s)\n" in out
    assert "  1. control_mode = REMOTE (1)\n  2. setpoint_type = POWER (1)\n" in out
    assert "assumptions (not from a public register map)\n  - backup_mode (holding 768" in out


def test_show_a_sunspec_profile_says_how_points_are_found(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "show", "sunspec-der"]) == 0
    out = capsys.readouterr().out
    assert "found by SunSpec discovery at bases 40000, 0, 50000: models 1, 701, 702, 704" in out
    assert "704.WMaxLimPctEna  write ENABLED (resolved at discovery)" in out


def test_show_by_path_and_several_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD.replace('name = "wallbox-quasar"', 'name = "mine"'), encoding="utf-8")
    assert main(["profiles", "show", str(path), "meter-collar-relay"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mine: Wallbox / Quasar 1 (charger)\nfile         " + str(path))
    assert "\nmeter-collar-relay: " in out


def test_show_an_unknown_name_fails_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "wallbox-quasr"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "no shipped profile 'wallbox-quasr' (did you mean 'wallbox-quasar'?)" in err


def test_validate_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in shipped().values()]
    assert main(["profiles", "validate", *paths]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "OK dc-v2h-backup (charger)",
        "OK eastron-sdm630 (meter)",
        "OK meter-collar-relay (meter_relay)",
        "OK sigenergy-dc (charger)",
        "OK sunspec-der (der)",
        "OK sunspec-legacy-der (der)",
        "OK wallbox-quasar (charger)",
    ]
    assert err == ""


def test_validate_a_bad_file_prints_file_line_key_message_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    text = GOOD.replace('value = "START"', 'value = "STRAT"').replace(
        "refresh_s = 20", "refresh_s = 90"
    )
    bad.write_text(text, encoding="utf-8")
    start_line = text.splitlines().index('start = { point = "action", value = "STRAT" }') + 1
    refresh_line = text.splitlines().index("refresh_s = 90") + 1
    good = shipped()["sigenergy-dc"]
    assert main(["profiles", "validate", str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out == "OK sigenergy-dc (charger)\n"
    assert err.splitlines() == [
        (
            f"{bad}:{start_line}: roles.start.value: 'STRAT' is not a symbol of point 'action' "
            "(did you mean 'START'?); its symbols: START, STOP"
        ),
        (
            f"{bad}:{refresh_line}: watchdog.refresh_s: refresh_s = 90 is not under "
            "timeout_s = 60: refresh must be well under the timeout; use 30 (timeout / 2) or less"
        ),
    ]


def test_validate_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["profiles", "validate", str(missing)]) == 1
    assert (
        capsys.readouterr().err
        == f"{missing}: (top level): cannot read: No such file or directory\n"
    )


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "schema"]) == 0
    assert capsys.readouterr().out == render_schema()


def test_profiles_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["profiles"])
    assert exit_.value.code == 2
    assert "the following arguments are required: action" in capsys.readouterr().err
