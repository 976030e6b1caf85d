"""The V2H safety suite against this gateway, and against broken variants of it.

Our gateway passes every case; broken variants fail where they should: one that forms the
island before the relay is confirmed open fails the outage case, one that never reads the
relay back fails the welded relay, one that ignores the site's export limit fails the export
case, and one deaf to the utility's island request fails that case.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gateway.conformance import suites
from gateway.conformance.cases import Outcome, Result
from gateway.conformance.target import InProcess
from gateway.core import backfeed, engine
from gateway.core.controls import Mode, Source
from gateway.core.engine import Engine
from gateway.core.island import RelayPosition
from gateway.core.messages import RelayCommand, WriteConfirmed, WriteFailed
from gateway.south.drivers.meter_relay import MeterRelay

pytestmark = pytest.mark.timeout(180)
GATEWAY = str(Path(sys.executable).with_name("gateway"))


def _run(case_id: str, work: Path) -> Result:
    (case,) = suites.select("v2h", [case_id])
    lines: list[str] = []
    (result,) = asyncio.run(suites.run([case], InProcess(), work, lines.append))
    return result


def _explain(r: Result) -> str:
    return "\n".join(f"{c.ok} {c.name}: expected {c.expected}, saw {c.seen}" for c in r.criteria)


@pytest.mark.parametrize("case_id", [c.case_id for c in suites.SUITES["v2h"] if c.run is not None])
def test_this_gateway_passes_every_runnable_case(case_id: str, tmp_path: Path) -> None:
    result = _run(case_id, tmp_path)
    assert result.outcome is Outcome.PASS, _explain(result)
    assert result.criteria
    assert all(c.ok for c in result.criteria)
    assert any("violations" in row for row in result.evidence)


def test_a_gateway_that_skips_the_relay_read_back_fails_the_welded_relay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant takes the relay to be wherever it last commanded it (the write was
    # acknowledged), never reading the contact back, in the driver or in the engine: a welded
    # contact looks open to it.
    async def unconfirmed(self: MeterRelay, cmd: RelayCommand) -> WriteConfirmed | WriteFailed:
        role = "relay_open" if cmd.position is RelayPosition.OPEN else "relay_close"

        async def step() -> None:
            await self.command(role, reason=cmd.reason, correlation_id=cmd.id)

        return await self.guarded(cmd.id, step)

    def blind(self: Engine, position: RelayPosition, now: float) -> bool:
        cmd = self._confirmed_cmd("relay")
        return isinstance(cmd, RelayCommand) and cmd.position is position

    monkeypatch.setattr(MeterRelay, "execute", unconfirmed)
    monkeypatch.setattr(Engine, "_relay_is", blind)
    result = _run("V2H-05", tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    assert [c.name for c in result.criteria if not c.ok] == ["no interlock violated on the wire"], (
        _explain(result)
    )
    assert any("asked to form a grid with the relay" in c.seen for c in result.criteria)


def test_a_gateway_deaf_to_the_utility_island_request_fails_that_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needed = Engine._island_needed

    def deaf(self: Engine) -> bool:
        decision = self.resolved.decisions.get(Mode.CONNECT)
        if decision is not None and decision.source is Source.UTILITY_EVENT:
            return False
        return needed(self)

    monkeypatch.setattr(Engine, "_island_needed", deaf)
    result = _run("V2H-06", tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    failed = {c.name for c in result.criteria if not c.ok}
    assert "the home islands on the request" in failed, _explain(result)
    # It stays on the grid, which is safe: no interlock is the reason it fails.
    assert "no interlock violated on the wire" not in failed, _explain(result)


def test_a_gateway_that_forms_before_the_relay_is_confirmed_open_fails_the_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant skips the relay's read-back: it takes the relay for open whenever it asks
    # whether it is, so it forms the island while the contact is still travelling.
    moved, blocker = Engine._relay_moved, Engine._forming_blocker

    def trusting(self: Engine, position: RelayPosition, now: float) -> bool:
        return position is RelayPosition.OPEN or moved(self, position, now)

    def unguarded(self: Engine, now: float) -> str | None:
        why = blocker(self, now)
        return None if why == engine._RELAY_NOT_OPEN else why

    monkeypatch.setattr(Engine, "_relay_moved", trusting)
    monkeypatch.setattr(Engine, "_forming_blocker", unguarded)
    result = _run("V2H-01", tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    failed = {c.name for c in result.criteria if not c.ok}
    assert "no interlock violated on the wire" in failed, _explain(result)
    # The simulated charger refuses (it has its own interlock), and the suite names why.
    assert any("asked to form a grid with the relay" in c.seen for c in result.criteria)


def test_a_gateway_that_ignores_the_export_limit_fails_the_export_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deaf(cls: type[backfeed.Limits], cs: object) -> backfeed.Limits:
        return cls()  # no limit at all

    monkeypatch.setattr(backfeed.Limits, "from_controls", classmethod(deaf))
    result = _run("V2H-04", tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    assert [c.name for c in result.criteria if not c.ok] == [
        "export within the site's limit from 6 s on"
    ], _explain(result)


def test_the_cli_runs_an_external_command_and_writes_the_reports(tmp_path: Path) -> None:
    # Any controller, as a command: here our own `gateway run`, started with the case's site
    # (V2H-06's names the suite's 2030.5 utility too: the command finds its north link there).
    report = tmp_path / "report"
    done = subprocess.run(
        [
            GATEWAY, "conformance", "run", "--suite", "v2h", "--case", "V2H-04",
            "--case", "V2H-06", "--target", f"{GATEWAY} run {{site}}", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 2, FAIL 0, PARTIAL 0, NOT RUN 0" in done.stdout, done.stdout
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["outcome"]) for c in summary["cases"]] == [
        ("V2H-04", "PASS"),
        ("V2H-06", "PASS"),
    ]
    suite = ET.parse(report / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "0")
    evidence = (report / "evidence.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in evidence]
    assert any("site v2h-conformance" in r.get("target", "") for r in rows), rows[-5:]
    assert "V2H-04" in (report / "report.html").read_text(encoding="utf-8")


def test_the_cli_names_what_exists_when_asked_for_what_does_not() -> None:
    done = subprocess.run(
        [GATEWAY, "conformance", "run", "--suite", "v2h", "--case", "V2H-99"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no case V2H-99" in done.stderr
    assert "V2H-01" in done.stderr
    assert "Traceback" not in done.stderr
    listed = subprocess.run(
        [GATEWAY, "conformance", "list"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "V2H-05" in listed.stdout
    assert "NOT RUNNABLE" in listed.stdout
