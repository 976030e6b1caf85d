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

from gateway.conformance.cases import Case, Result
from gateway.conformance.csip import comm, core, events
from gateway.conformance.csip.catalogue import NOT_APPLICABLE, ROWS
from gateway.conformance.target import Target

SUITE = "csip"
Run = Callable[[Case, Target, Path], Awaitable[Result]]

#: ID -> (what it needs, about how long, the runner)
_RUN: dict[str, tuple[str, float, Run]] = {
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
    "CORE-010": ("a 2030.5 client driving the simulated PV", 20.0, core.topology(7)),
    "CORE-011": ("a 2030.5 client driving the simulated PV", 25.0, core.topology(15)),
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
_CURVES = (
    "not implemented: the simulated home's DERs (a SunSpec PV inverter, an EV charger) model "
    "no {what}, so the suite cannot judge it from the devices"
)
_NOT_YET: dict[str, str] = {
    "COMM-001": "optional for every profile (xmDNS / DNS-SD); the suite serves no DNS-SD",
    "MAINT-002": "optional (errata seq 32) and untitled in the public transcription",
    "CORE-009": (
        "not implemented: the public catalogue gives only the title (advanced EndDevice); "
        "what it asks beyond BASIC-001's registration is in the SunSpec text, not public"
    ),
    "CORE-013": (
        "not implemented: the public catalogue gives only the title (advanced DER program / "
        "control); CORE-022, CORE-023 and BASIC-016..026 play what it could be read to ask"
    ),
    "BASIC-002": (
        "not implemented: 3 EndDevices in 7 FSAs need 3 clients (or an aggregator) under "
        "test at once; the suite starts one"
    ),
    "BASIC-003": "not implemented: as BASIC-002, with FSA changes mid-run",
    "BASIC-004": _CURVES.format(what="voltage ride-through curves (LVRT/HVRT)"),
    "BASIC-005": _CURVES.format(what="frequency ride-through curves (LFRT/HFRT)"),
    "BASIC-006": _CURVES.format(what="volt-var curve (no reactive power control)"),
    "BASIC-007": (
        "not implemented yet: setGradW / setSoftGradW would be judged from the PV's ramp; "
        "the simulated PV inverter steps to its limit at once"
    ),
    "BASIC-008": _CURVES.format(what="fixed power factor"),
    "BASIC-011": _CURVES.format(what="volt-watt curve"),
    "BASIC-012": _CURVES.format(what="frequency-watt curve or droop"),
    "BASIC-015": _CURVES.format(what="composed curve modes (watt-PF, ...)"),
}


def _case(case_id: str, title: str, applies: str) -> Case:
    if case_id in _RUN:
        needs, expected, run = _RUN[case_id]
        return Case(case_id, SUITE, title, needs, expected, run)
    why = NOT_APPLICABLE.get(applies) or _NOT_YET.get(case_id, "not implemented by this suite yet")
    return Case(case_id, SUITE, title, "-", 0.0, None, why)


CASES: tuple[Case, ...] = tuple(_case(*row) for row in ROWS)
