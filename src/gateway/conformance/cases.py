"""The suite's vocabulary: a case, its outcome, and the evidence that decided it.

A case carries the public ID it mirrors (ours, V2H-nn, for the islanding and backfeed
scenarios, which no public catalogue has). An outcome is one of four, and a case the suite
cannot run yet is NOT RUN with the reason, never PASS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum, unique
from pathlib import Path
from typing import Any


@unique
class Outcome(Enum):
    PASS = "PASS"  # noqa: S105 (an outcome, not a password)
    FAIL = "FAIL"
    PARTIAL = "PARTIAL"  # some criteria met, some not judged (a step could not be run)
    NOT_RUN = "NOT RUN"


@dataclass(frozen=True, slots=True)
class Criterion:
    """One thing a case checks, with what was expected and what was seen."""

    name: str
    ok: bool
    expected: str
    seen: str


@dataclass(slots=True)
class Result:
    case_id: str
    title: str
    outcome: Outcome
    criteria: list[Criterion] = field(default_factory=list)
    reason: str = ""  # why NOT RUN, or the first failed criterion
    elapsed_s: float = 0.0
    evidence: list[dict[str, Any]] = field(default_factory=list)  # the timeline, as JSON rows


@dataclass(frozen=True, slots=True)
class Case:
    """A case of a suite: ``run(case, target, folder)`` plays it and judges it; ``folder`` is
    the case's own working directory (site file, store, the target's files)."""

    case_id: str
    suite: str
    title: str
    needs: str  # what the case needs of the target and the machine, for `conformance list`
    expected_s: float  # how long it takes, for the progress line
    run: Callable[[Case, Any, Path], Awaitable[Result]] | None  # None: see not_run
    not_run: str = ""  # why the case cannot be run yet


def judged(
    case: Case, criteria: list[Criterion], elapsed_s: float, evidence: list[dict[str, Any]]
) -> Result:
    """PASS when every criterion holds; FAIL naming the first that does not."""
    failed = [c for c in criteria if not c.ok]
    outcome = Outcome.FAIL if failed else Outcome.PASS
    reason = (
        f"{failed[0].name}: expected {failed[0].expected}, saw {failed[0].seen}" if failed else ""
    )
    return Result(case.case_id, case.title, outcome, criteria, reason, elapsed_s, evidence)


#: Where a running case tells its progress (suites.run sets it for each case).
PROGRESS: ContextVar[Callable[[str], None] | None] = ContextVar("progress", default=None)


def say(text: str) -> None:
    """A progress line of the running case (a step fired, a scripted event played)."""
    out = PROGRESS.get()
    if out is not None:
        out(text)
