"""The suites by name, and running one: cases in order, a progress line each, a report."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from gateway.conformance import csip, csip_aus, openadr2, openadr3, profile, sep2_server, v2h
from gateway.conformance.cases import PROGRESS, Case, Outcome, Result
from gateway.conformance.target import Target

SUITES: Mapping[str, Sequence[Case]] = MappingProxyType(
    {
        "v2h": v2h.CASES,
        csip_aus.SUITE: csip_aus.CASES,
        csip.SUITE: csip.CASES,
        openadr2.SUITE: openadr2.CASES,
        openadr3.SUITE: openadr3.CASES,
        profile.SUITE: profile.CASES,
        sep2_server.SUITE: sep2_server.CASES,
    }
)


def select(suite: str, ids: Sequence[str]) -> tuple[Case, ...]:
    """The suite's cases, or those named; an unknown suite or ID is a ValueError that says
    what there is."""
    if suite not in SUITES:
        raise ValueError(f"no suite {suite!r}; there is: {', '.join(SUITES)}")
    cases = SUITES[suite]
    known = {c.case_id for c in cases}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(
            f"suite {suite} has no case {', '.join(unknown)}; it has {', '.join(sorted(known))}"
        )
    return tuple(c for c in cases if not ids or c.case_id in ids)


async def run(
    cases: Sequence[Case],
    target: Target,
    work: Path,
    progress: Callable[[str], None] = print,
) -> list[Result]:
    results: list[Result] = []
    for n, case in enumerate(cases, 1):
        head = f"[{n}/{len(cases)}] {case.case_id} {case.title}"
        if case.run is None:
            results.append(Result(case.case_id, case.title, Outcome.NOT_RUN, reason=case.not_run))
            progress(f"{head}: NOT RUN ({case.not_run})")
            continue
        progress(f"{head}: running (about {case.expected_s:.0f} s)")
        folder = work / case.case_id
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.monotonic()

        def step(text: str, case: Case = case, t0: float = t0) -> None:
            took = time.monotonic() - t0
            progress(f"    {case.case_id} {text} ({took:.1f} of ~{case.expected_s:.0f} s)")

        token = PROGRESS.set(step)
        try:
            result = await case.run(case, target, folder)
        finally:
            PROGRESS.reset(token)
        result.elapsed_s = time.monotonic() - t0
        results.append(result)
        why = f": {result.reason}" if result.reason else ""
        progress(f"{head}: {result.outcome.value} in {result.elapsed_s:.1f} s{why}")
    return results
