"""How a case of this suite is played: a ``play`` function that returns a :class:`Verdict`
(criteria, or why it cannot be judged), wrapped into a ``Case.run`` that opens the probe,
collects the evidence and every body received, and judges."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.conformance.cases import Case, Criterion, Outcome, Result, judged
from gateway.conformance.sep2_server.probe import Exchange, Probe, local
from gateway.conformance.sep2_server.server import ServerTarget
from gateway.conformance.sep2_server.walk import Walk, walk

NEEDS_URL = (
    "the sep2-server suite judges a 2030.5 server: --target https://HOST:PORT/dcap with "
    "--cert, --key and --ca"
)


@dataclass
class Verdict:
    criteria: list[Criterion] = field(default_factory=list)
    not_run: str = ""  # nothing could be judged, and why
    unjudged: str = ""  # some criteria could not be judged, and why (PARTIAL unless one fails)

    def expect(self, x: Exchange, ok: bool, expected: str, seen: str | None = None) -> bool:
        """A criterion about exchange ``x``, named by its request."""
        self.criteria.append(Criterion(x.label, ok, expected, x.seen if seen is None else seen))
        return ok

    def check(self, name: str, ok: bool, expected: str, seen: str) -> bool:
        self.criteria.append(Criterion(name, ok, expected, seen))
        return ok


@dataclass(frozen=True)
class Created:
    location: str
    got: Exchange  # the GET of Location
    doc: Any  # what it served (lxml element), None if not the resource expected


async def created(v: Verdict, probe: Probe, post: Exchange, kind: str) -> Created | None:
    """Judge a POST that must create a ``kind``: 201, a Location, and a GET of it that
    serves a ``kind``. None when there is no Location to read."""
    location = post.headers.get("Location")
    v.expect(post, post.status == 201, "201 Created")
    if not v.expect(post, location is not None, "a Location header", str(dict(post.headers))):
        return None
    assert location is not None
    got = await probe.get(location)
    doc = got.xml()
    ok = got.status == 200 and doc is not None and local(doc) == kind
    v.expect(got, ok, f"200 with the {kind}")
    return Created(location, got, doc if ok else None)


Play = Callable[[ServerTarget, Probe, Path], Awaitable[Verdict]]


async def walked(target: ServerTarget, probe: Probe) -> Walk:
    """The run's discovery walk (made now if no case made it yet)."""
    if target.walked is None:
        target.walked = await walk(probe, target.dcap)
    return target.walked


def runner(play: Play) -> Callable[[Case, Any, Path], Awaitable[Result]]:
    async def run(case: Case, target: Any, folder: Path) -> Result:
        if not isinstance(target, ServerTarget):
            return Result(case.case_id, case.title, Outcome.NOT_RUN, reason=NEEDS_URL)
        t0 = time.monotonic()
        async with Probe(target.url, target.context()) as probe:
            verdict = await play(target, probe, folder)
        target.received += [(x.label, x.body) for x in probe.exchanges if x.xml() is not None]
        elapsed = time.monotonic() - t0
        if verdict.not_run:
            return Result(
                case.case_id,
                case.title,
                Outcome.NOT_RUN,
                verdict.criteria,
                verdict.not_run,
                elapsed,
                probe.rows,
            )
        result = judged(case, verdict.criteria, elapsed, probe.rows)
        if result.outcome is Outcome.PASS and verdict.unjudged:
            result.outcome, result.reason = Outcome.PARTIAL, verdict.unjudged
        return result

    return run
