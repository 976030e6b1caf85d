"""``--suite csip``: the SunSpec CSIP (US) client conformance IDs that cactus-test-definitions'
YAML does not cover, written from the public catalogue (``shared/domain/sep2.md`` §2.2) and
IEEE 2030.5-2018, and played on the simulated utility against a 2030.5 client under test
(conformance/README.md, "suite csip").

Every one of the 79 catalogue rows is a case: those this suite implements run; a DER-client
row it does not implement is NOT RUN with the reason; server and aggregator rows are NOT RUN
as not applicable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.conformance.cases import Case, Result
from gateway.conformance.csip import comm, core, events
from gateway.conformance.csip.catalogue import NOT_APPLICABLE, ROWS

SUITE = "csip"
Run = Callable[[Case, Any, Path], Awaitable[Result]]

#: ID -> (what it needs, about how long, the runner)
_RUN: dict[str, tuple[str, float, Any]] = {
    "COMM-002": ("a 2030.5 client configured with the /dcap URI", 8.0, comm.comm_002),
    "COMM-003": ("a 2030.5 client (the tap reads its ClientHello)", 6.0, comm.comm_003),
    "COMM-004": ("a 2030.5 client; two sessions", 12.0, comm.comm_004),
    "COMM-004A": ("a 2030.5 client", 6.0, comm.chain_case("depth-2", accept=True)),
    "COMM-004B": ("a 2030.5 client", 6.0, comm.chain_case("depth-3", accept=True)),
    "COMM-004C": ("a 2030.5 client", 6.0, comm.chain_case("depth-4", accept=True)),
    "COMM-004D": ("a 2030.5 client", 6.0, comm.chain_case("mica-eku", accept=False)),
    "COMM-004E": ("a 2030.5 client", 6.0, comm.chain_case("mica-name", accept=False)),
    "COMM-004F": ("a 2030.5 client", 6.0, comm.chain_case("mica-policy-mapping", accept=False)),
    "COMM-004G": ("a 2030.5 client", 6.0, comm.chain_case("self-signed", accept=False)),
    "CORE-003": ("a 2030.5 client", 45.0, core.core_003),
    "CORE-014": ("a 2030.5 client", 10.0, core.core_014),
    "BASIC-001": ("a 2030.5 client registering in band", 8.0, core.basic_001),
    "BASIC-027": ("a 2030.5 client watching the grid's voltage", 20.0, core.basic_027),
    "BASIC-028": ("a 2030.5 client", 12.0, core.basic_028),
    "BASIC-029": ("a 2030.5 client posting meter readings", 14.0, core.basic_029),
    "ERR-001": ("a 2030.5 client", 20.0, core.err_001),
}
_RUN.update(
    {
        i: ("a 2030.5 client driving the simulated home (PV, charger)", 28.0, events.case_runner(i))
        for i in events.scenarios()
    }
)

#: Why a DER-client (or optional) row is not run yet.
_NOT_YET: dict[str, str] = {
    "COMM-001": "optional for every profile (xmDNS / DNS-SD); the suite serves no DNS-SD",
    "MAINT-002": "optional (errata seq 32) and untitled in the public transcription",
}


def _case(case_id: str, title: str, applies: str) -> Case:
    if case_id in _RUN:
        needs, expected, run = _RUN[case_id]
        return Case(case_id, SUITE, title, needs, expected, run)
    why = NOT_APPLICABLE.get(applies) or _NOT_YET.get(case_id, "not implemented by this suite yet")
    return Case(case_id, SUITE, title, "-", 0.0, None, why)


CASES: tuple[Case, ...] = tuple(_case(*row) for row in ROWS)
