"""The V2H safety suite against this gateway, and against broken variants of it.

Our gateway passes every runnable case; a variant that skips the relay read-back (so forms the
island before the relay is confirmed open) fails the outage case, and one that ignores the
site's export limit fails the export case: the suite can fail, and fails where it should.
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
from gateway.core.engine import Engine
from gateway.core.island import RelayPosition

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


def test_a_case_it_cannot_run_is_not_run_with_the_reason(tmp_path: Path) -> None:
    result = _run("V2H-07", tmp_path)
    assert result.outcome is Outcome.NOT_RUN
    assert "cannot freeze" in result.reason


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
    # Any controller, as a command: here our own `gateway run`, started with the case's site.
    report = tmp_path / "report"
    done = subprocess.run(
        [
            GATEWAY, "conformance", "run", "--suite", "v2h", "--case", "V2H-04",
            "--case", "V2H-06", "--target", f"{GATEWAY} run {{site}}", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 1, FAIL 0, PARTIAL 0, NOT RUN 1" in done.stdout, done.stdout
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["outcome"]) for c in summary["cases"]] == [
        ("V2H-04", "PASS"),
        ("V2H-06", "NOT RUN"),
    ]
    suite = ET.parse(report / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
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
