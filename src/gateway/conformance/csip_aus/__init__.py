"""``--suite csip-aus``: cactus-test-definitions' CSIP-AUS client procedures, read as data
and interpreted on the simulated 2030.5 utility (conformance/README.md).

Each YAML file is a case (its ID the file's name, its title the Description). What the
interpreter does not implement makes the case NOT RUN, with the exact reason, before it runs;
without the definitions, every case is NOT RUN with "run make peers". The cases are read on
first use, from :func:`configure`'s source (``--definitions``), else ``$CACTUS_TEST_DEFINITIONS``,
else the wheel ``make peers`` put in ``.peers/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

from gateway.conformance.cases import Case, Result
from gateway.conformance.csip_aus import definitions, play, support
from gateway.conformance.target import Target

SUITE = "csip-aus"
SPEED_ENV = "CSIP_AUS_SPEED"
#: Every duration of a procedure (rates, waits, control times) divided by this. 30: a 60 s poll
#: is 2 s, a 300 s control 10 s.
DEFAULT_SPEED = 30.0
#: A case whose waits last longer than this at the run's speed is NOT RUN (keep a run bounded).
BOUND_S = 40.0
#: The procedures in the definitions (client/procedures/ of cactus-test-definitions 1.18.2).
KNOWN = 86
MISSING = "the cactus-test-definitions wheel is not in .peers/: run make peers"


class _Cases(Sequence[Case]):
    """The suite's cases, read on first use (so `gateway conformance list` of another suite
    does not read YAML)."""

    def __init__(self) -> None:
        self._cases: tuple[Case, ...] | None = None
        self.source: Path | None = None
        self.speed = float(os.environ.get(SPEED_ENV, DEFAULT_SPEED))

    def configure(self, source: Path | None = None, speed: float | None = None) -> None:
        if source is not None:
            self.source = source
        if speed is not None:
            if speed <= 0:
                raise ValueError(f"--speed must be > 0; got {speed}")
            self.speed = speed
        self._cases = None

    def _load(self) -> tuple[Case, ...]:
        if self._cases is None:
            self._cases = cases(definitions.locate(self.source), self.speed)
        return self._cases

    @overload
    def __getitem__(self, i: int) -> Case: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Case]: ...
    def __getitem__(self, i: int | slice) -> Case | Sequence[Case]:
        return self._load()[i]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[Case]:
        return iter(self._load())


CASES = _Cases()


def configure(source: Path | None = None, speed: float | None = None) -> None:
    """Read the definitions from ``source`` (a wheel or a directory of YAML files) and run at
    ``speed``; ValueError if the source cannot be read."""
    CASES.configure(source, speed)
    if source is not None:
        definitions.read(source)  # a bad path is said now, not as NOT RUN later


def cases(source: Path | None, speed: float) -> tuple[Case, ...]:
    """The cases of the definitions at ``source``; none there: the procedures' IDs are not
    known, so one placeholder case per known procedure count is NOT RUN with the reason."""
    if source is None:
        return tuple(
            Case(f"CSIP-{n:02d}", SUITE, "a cactus procedure", "-", 0.0, None, MISSING)
            for n in range(1, KNOWN + 1)
        )
    try:
        procedures = definitions.read(source)
    except definitions.DefinitionsError as e:
        reason = f"{e}: run make peers"
        return (Case("CSIP-00", SUITE, "the definitions", "-", 0.0, None, reason),)
    return tuple(_case(p, speed) for p in procedures)


def _case(p: definitions.Procedure, speed: float) -> Case:
    doc = p.doc
    title = " ".join(str(doc.get("Description", p.name)).split())
    needs = (
        f"classes {', '.join(map(str, doc.get('Classes') or []))}; "
        f"CSIP-AUS {', '.join(map(str, doc.get('TargetVersions') or []))}"
    )
    length = play.waits_s(doc) / speed
    why = support.why_not(doc)
    if why is None and length > BOUND_S:
        why = (
            f"its waits total {play.waits_s(doc):.0f} s, {length:.0f} s at speed {speed:g}: "
            f"over the {BOUND_S:.0f} s bound per case (a higher --speed runs it)"
        )
    if why is not None:
        return Case(p.name, SUITE, title, needs, 0.0, None, why)
    player = play.Player(p, speed)

    async def run(case: Case, target: Target, folder: Path) -> Result:
        return await player.run(case, target, folder)

    return Case(p.name, SUITE, title, needs, length + 10.0, run)
