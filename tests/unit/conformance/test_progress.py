"""A running case's progress: each step it reports reaches the run's progress lines, with the
case, the elapsed and the expected time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.conformance import suites
from gateway.conformance.cases import Case, Outcome, Result, say


async def _steps(case: Case, target: Any, folder: Path) -> Result:
    say("step GET-DCAP (GET-request-received)")
    say("grid fails")
    return Result(case.case_id, case.title, Outcome.PASS)


def test_steps_are_said_with_the_case_and_its_times(tmp_path: Path) -> None:
    case = Case("X-01", "demo", "a case", "-", 12.0, _steps)
    lines: list[str] = []
    (result,) = asyncio.run(suites.run([case], object(), tmp_path, lines.append))  # type: ignore[arg-type]
    assert result.outcome is Outcome.PASS
    said = [x for x in lines if x.startswith("    X-01 ")]
    assert len(said) == 2
    assert said[0].startswith("    X-01 step GET-DCAP (GET-request-received) (")
    assert said[0].endswith(" of ~12 s)")
    say("outside a run")  # no run: nowhere to say it, and no error
