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
from typing import Any, overload

from gateway.conformance.cases import Case, Result
from gateway.conformance.csip_aus import definitions, play, support
from gateway.conformance.target import InProcess, Target

SUITE = "csip-aus"
SPEED_ENV = "CSIP_AUS_SPEED"
#: Every duration of a procedure (rates, waits, control times) divided by this. 30: a 60 s poll
#: is 2 s, a 300 s control 10 s.
DEFAULT_SPEED = 30.0
#: A case whose waits last longer than this at the run's speed is NOT RUN (keep a run bounded).
BOUND_S = 40.0
#: The procedures' IDs in cactus-test-definitions 1.18.2 (client/procedures/), so that without
#: the wheel each is listed, NOT RUN with the reason. Only the names: the procedures themselves
#: are read from the wheel.
_IDS = (
    "ALL-01 ALL-02 ALL-03-REJ ALL-03 ALL-04 ALL-05 ALL-06 ALL-07 ALL-08 ALL-09 ALL-10 ALL-11 "
    "ALL-12 ALL-13 ALL-14 ALL-15 ALL-16 ALL-17 ALL-18 ALL-19 ALL-20 ALL-21 ALL-22 ALL-23 "
    "ALL-24 ALL-25-EXT ALL-25 ALL-26 ALL-27 ALL-28 ALL-29 ALL-30 ALT-ALL-29 ALT-LOA-13 DRA-01 "
    "DRA-02 DRD-01 DRG-01 DRL-01 GEN-01 GEN-02 GEN-03 GEN-04 GEN-05 GEN-06 GEN-07 GEN-08 "
    "GEN-09 GEN-10 GEN-11 GEN-12 GEN-13 LOA-01 LOA-02 LOA-03 LOA-04 LOA-05 LOA-06 LOA-07 "
    "LOA-08 LOA-09 LOA-10 LOA-11 LOA-12 LOA-13 MUL-01 MUL-02 MUL-03 P-01 P-02 P-03 P-04 P-05 "
    "P-06 PRC-01 PRC-02 PRC-03 PRC-04 PRC-05 SDVN-01 STO-01 STO-02 STO-03 STO-04 STO-05 STO-06"
)
KNOWN: tuple[str, ...] = tuple(_IDS.split())
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
    """The cases of the definitions at ``source``; none there, or unreadable: each known
    procedure, NOT RUN with the reason."""
    try:
        if source is None:
            raise definitions.DefinitionsError(MISSING)
        procedures = definitions.read(source)
    except definitions.DefinitionsError as e:
        reason = str(e) if source is None else f"{e}: run make peers"
        title = "(the procedure is read from cactus-test-definitions)"
        return tuple(Case(i, SUITE, title, "-", 0.0, None, reason) for i in KNOWN)
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
    foreign = not_applicable(doc)

    async def run(case: Case, target: Target, folder: Path) -> Result:
        if foreign and isinstance(target, InProcess):
            return play.not_run(case, foreign)
        return await player.run(case, target, folder)

    return Case(p.name, SUITE, title, needs, length + 10.0, run)


def not_applicable(doc: dict[str, Any]) -> str:
    """Why the procedure does not apply to this gateway ('' if it does): its classes are all
    demand-response ones (DR-A, DR-D, DR-G, DR-L: "clients managing demand response devices",
    DREDs and products claiming CSIP-AUS Annex C, AS/NZS 4755 DRMs), and the gateway claims
    none; class A is for the clients that do not. A command target runs it all the same."""
    classes = [str(c) for c in doc.get("Classes") or []]
    if not classes or not all(c.startswith("DR-") for c in classes):
        return ""
    return (
        f"not applicable to this gateway: classes {', '.join(classes)} are for demand-response "
        "devices (CSIP-AUS Annex C, AS/NZS 4755 DRMs), which it does not claim to be; "
        "--target CMD runs it against a client that does"
    )
