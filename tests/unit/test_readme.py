"""The README is for the people who use the gateway: no internal issue numbers, the picture it
shows exists, and every gateway command it shows is one the CLI takes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_internal_issue_numbers() -> None:
    assert re.findall(r"\bissues? #?\d+", README, re.IGNORECASE) == []


def test_the_pictures_exist() -> None:
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / path).is_file(), path


def test_every_gateway_command_shown_parses() -> None:
    parser = build_parser()
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    commands = [
        line.split("#")[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("gateway ")
    ]
    assert commands
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # SystemExit(2) on a bad one
