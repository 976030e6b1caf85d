"""Every command's --help: each argument described, an option's default said where it has one,
and no reStructuredText markup leaking from docstrings."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from gateway.cli import build_parser, main


def _parsers(
    parser: argparse.ArgumentParser, name: str = "gateway"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


PARSERS = list(_parsers(build_parser()))


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=[n for n, _ in PARSERS])
def test_every_argument_is_described_without_markup(
    name: str, parser: argparse.ArgumentParser
) -> None:
    text = parser.format_help()
    assert "``" not in text, f"{name} --help shows literal double backticks"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        what = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name}: {what} has no help"
        assert action.help != argparse.SUPPRESS, f"{name}: {what} has no help"
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert "default" in action.help, f"{name}: {what}'s help does not say its default"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("gateway ")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["demo", "--rtu"], "--rtu only works with --modbus"),
        (["demo", "--charger", "x.toml"], "--charger only works with --modbus"),
        (["demo", "utility", "--modbus"], "--modbus is for the evening scenario"),
    ],
)
def test_a_flag_with_no_effect_is_an_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--suite", "v2h", "--speed", "5"], "--speed is for --suite csip-aus, not v2h"),
        (["--suite", "csip", "--definitions", "x"], "--definitions is for --suite csip-aus"),
        (["--suite", "v2h", "--listen", "0.0.0.0"], "--listen is for --suite sep2-server"),
        (["--suite", "openadr2", "--allow-relay"], "--allow-relay is for --suite profile"),
    ],
)
def test_a_conformance_option_of_another_suite_is_an_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["conformance", "run", *argv]) == 2
    assert said in capsys.readouterr().err
