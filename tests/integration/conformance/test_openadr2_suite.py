"""The OpenADR 2.0b VEN suite (QualityLogic IDs) against this gateway and broken variants of it.

Our gateway passes the cases run here; a VEN that polls far more often than the VTN asked
fails N1_0015, one that opts in to a limit but never applies it fails E1_1025's applied-limit
criterion, one that never sends oadrCreatedEvent fails E1_1025's answer criterion while still
applying the limit: each mutant fails exactly its case's criterion, and passes a case it
should pass.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.conformance import openadr2, suites
from gateway.conformance.cases import Outcome, Result
from gateway.conformance.target import InProcess
from gateway.core import backfeed
from gateway.north.openadr2.ven import GatewayVen

pytestmark = pytest.mark.timeout(180)
GATEWAY = str(Path(sys.executable).with_name("gateway"))
#: The harness's pull-mode VEN catalogue (testcases/pull/*/ven/*_TH_VTN_1.java).
PULL = (
    [f"N1_00{n}" for n in ("10", "15", "20", "25", "30", "40", "50", "60", "65", "70", "80")]
    + [f"E1_10{n}" for n in ("10", "20", "25", "27", "30", "40", "50", "60", "65", "70", "80")]
    + [f"P1_20{n}" for n in ("10", "15", "20", "30", "40", "50")]
    + [f"R1_3{n:03d}" for n in (10, 20, 25, 27, 30, 40, 45, 50, 60, 70, 80, 90, 100, 120, 130,
                                140, 150, 160, 170, 180, 190)]
    + ["G1_4010", "G1_4011", "G1_4015"]
)  # fmt: skip


def _run(ids: list[str], work: Path) -> dict[str, Result]:
    cases = suites.select(openadr2.SUITE, ids)
    results = asyncio.run(suites.run(cases, InProcess(), work, lambda _: None))
    return {r.case_id: r for r in results}


def _explain(results: dict[str, Result]) -> str:
    lines = []
    for r in results.values():
        lines.append(f"{r.case_id} {r.outcome.value}: {r.reason}")
        lines += [f"  {c.ok} {c.name}: expected {c.expected}, saw {c.seen}" for c in r.criteria]
    return "\n".join(lines)


def _failed(r: Result) -> list[str]:
    return [c.name for c in r.criteria if not c.ok]


def test_the_whole_pull_catalogue_is_listed_and_what_is_not_played_says_why() -> None:
    cases = {c.case_id: c for c in suites.SUITES[openadr2.SUITE]}
    assert set(PULL) <= set(cases)
    assert {"E0_6010", "N0_5010", "P0_7010", "R0_8010", "G0_9010", "A_E1_0020"} <= set(cases)
    for c in cases.values():
        assert c.run is not None or c.not_run, c.case_id
    assert "push mode" in (cases["E0_6010"].not_run or "")
    played = {c.case_id for c in cases.values() if c.run is not None}
    assert {"N1_0015", "E1_1020", "E1_1025", "E1_1030", "E1_1070", "E1_1080", "R1_3020"} <= played


def test_this_gateway_passes(tmp_path: Path) -> None:
    results = _run(["N1_0015", "N1_0070", "E1_1025", "E1_1040"], tmp_path)
    assert all(r.outcome is Outcome.PASS for r in results.values()), _explain(results)
    # Judged from the wire: the VTN's record of every request, and the home's samples.
    evidence = results["E1_1025"].evidence
    assert any(row.get("request") == "oadrCreatedEvent" for row in evidence)
    assert any("net_w" in row for row in evidence)


def test_a_ven_that_polls_too_often_fails_n1_0015_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant ignores the VTN's oadrRequestedOadrPollFreq (2 s) and polls every 0.2 s.
    monkeypatch.setattr(GatewayVen, "poll_interval_s", property(lambda _: 0.2))
    results = _run(["N1_0015", "E1_1040"], tmp_path)
    assert results["N1_0015"].outcome is Outcome.FAIL, _explain(results)
    assert results["E1_1040"].outcome is Outcome.PASS, _explain(results)
    assert _failed(results["N1_0015"]) == [
        "no poll sooner than half the requested 2 s after an empty answer",
        "the mean poll interval is the requested one",
    ], _explain(results)


def test_a_ven_that_opts_in_but_ignores_the_limit_fails_the_applied_limit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deaf(cls: type[backfeed.Limits], cs: object) -> backfeed.Limits:
        return cls()  # no limit at all

    monkeypatch.setattr(backfeed.Limits, "from_controls", classmethod(deaf))
    results = _run(["E1_1025", "E1_1040"], tmp_path)
    assert results["E1_1025"].outcome is Outcome.FAIL, _explain(results)
    assert results["E1_1040"].outcome is Outcome.PASS, _explain(results)
    (failed,) = _failed(results["E1_1025"])
    assert failed.startswith("the event's 1 kW export limit holds at the meter"), _explain(results)


def test_a_ven_that_never_sends_created_event_fails_the_answer_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(self: GatewayVen, *args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(GatewayVen, "_created_event", silent)
    results = _run(["E1_1025", "N1_0020"], tmp_path)
    assert results["E1_1025"].outcome is Outcome.FAIL, _explain(results)
    assert results["N1_0020"].outcome is Outcome.PASS, _explain(results)
    # The limit is still carried out: only the missing answer fails.
    assert _failed(results["E1_1025"]) == ["oadrCreatedEvent for export-limit-1 modification 0"], (
        _explain(results)
    )


def test_the_cli_runs_an_external_ven_and_tells_it_the_vtn(tmp_path: Path) -> None:
    # Any VEN, as a command: here our own `gateway run`, started with the case's site file.
    report = tmp_path / "report"
    done = subprocess.run(
        [
            GATEWAY, "conformance", "run", "--suite", "openadr2", "--case", "N1_0020",
            "--case", "E0_6010", "--target", f"{GATEWAY} run {{site}}", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 1, FAIL 0, PARTIAL 0, NOT RUN 1" in done.stdout, done.stdout
    assert "OADR2_VTN_URL=https://localhost:" in done.stdout
    assert "OADR2_VTN_FINGERPRINT=" in done.stdout
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["outcome"]) for c in summary["cases"]] == [
        ("N1_0020", "PASS"),
        ("E0_6010", "NOT RUN"),
    ]
