"""The image, the compose file and the runtime lock, checked without a Docker engine: the
compose file against the Compose Specification's schema, each container's command against the
CLI, the compose home's site file against check-config, and the runtime lock against the lock
CI tested. (hadolint checks the Dockerfile in make lint.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.cli import build_parser
from gateway.north.sep2.pki import init_pki
from gateway.runtime.run_config import load

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
SCHEMA = json.loads((ROOT / "tests/data/compose/compose-spec.json").read_text("utf-8"))


def _compose_errors(doc: object) -> list[str]:
    # The schema names draft 2019-09 in a form jsonschema does not recognise: say it plainly.
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_compose_file_meets_the_compose_specification() -> None:
    doc = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert _compose_errors(doc) == []
    typo = {**doc, "services": {**doc["services"], "gateway": {**doc["services"]["gateway"]}}}
    typo["services"]["gateway"]["restrat"] = "always"
    assert any("restrat" in e for e in _compose_errors(typo))


def test_every_container_runs_a_command_the_cli_takes() -> None:
    doc = yaml.safe_load(COMPOSE.read_text("utf-8"))
    parser = build_parser()
    for name, service in doc["services"].items():
        args = parser.parse_args(service["command"])
        assert args.command in {"run", "simulate", "certs"}, name


def test_the_compose_home_passes_check_config(tmp_path: Path) -> None:
    shutil.copy(ROOT / "docker" / "site.toml", tmp_path / "site.toml")
    init_pki(tmp_path / "pki", devices=("gateway",))
    (tmp_path / "api-token").write_text("x" * 32 + "\n", encoding="utf-8")
    config = load(tmp_path / "site.toml")
    assert config.sep2 is not None
    assert config.api is not None
    assert config.api.listen == "0.0.0.0"
    assert {d.url for d in config.devices} == {f"tcp://home:{p}" for p in (15050, 15051, 15052)}


def _pins(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", lock.read_text("utf-8"), re.MULTILINE)
    return {name.lower(): version for name, version in pins}


def test_the_runtime_lock_pins_only_what_ci_tested() -> None:
    # The image installs requirements-runtime.lock: the same versions as requirements.lock,
    # without the test tools.
    runtime, tested = _pins(ROOT / "requirements-runtime.lock"), _pins(ROOT / "requirements.lock")
    assert runtime
    assert {k: tested.get(k) for k in runtime} == runtime
    assert "pytest" not in runtime
    assert "playwright" not in runtime


def test_the_dockerfile_copies_what_exists_and_runs_as_a_numeric_user() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text("utf-8")
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for source in line.split():
            assert (ROOT / source).exists(), source
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert "/healthz" in text


@pytest.mark.skipif(not Path(sys.executable).with_name("hadolint").exists(), reason="no hadolint")
def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    # make lint runs hadolint on docker/Dockerfile; here, that it would notice.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install lxml\nUSER root\n", encoding="utf-8")
    hadolint = str(Path(sys.executable).with_name("hadolint"))
    done = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest tag
