"""``--suite openadr3``: OpenADR 3 VEN flows against a VEN under test, on the scripted VTN.

No public numbered catalogue of OpenADR 3 VEN tests is known to us (the OpenADR Alliance's
3.0 certification test plan is not public; QualityLogic's numbered cases are 2.0b), so the IDs
are ours, OA3-nn; each case names the OpenADR 3.0.1 API operation (the OpenAPI
``operationId``), enumeration or openadr3-client-gac-compliance rule it mirrors
(conformance/README.md). Each case serves the simulated VTN and the V2H suite's home, starts
the target with a site file that links them (``stage.py``) and judges from the wire only: what
the VTN received and what the simulated devices did (``flows.py``).
"""

from __future__ import annotations

from pathlib import Path

from gateway.conformance.cases import Case, Result
from gateway.conformance.openadr3 import flows
from gateway.conformance.openadr3.stage import Script, Setup, play
from gateway.conformance.target import Target
from gateway.conformance.v2h import EVENING

SUITE = "openadr3"
NEEDS = "an OpenADR 3 VEN that drives the home's Modbus devices"
NEEDS_LINK = "an OpenADR 3 VEN (the home is served, not judged)"

_DEFAULT = Setup()


def _case(
    case_id: str,
    title: str,
    script: Script,
    expected_s: float,
    setup: Setup = _DEFAULT,
    needs: str = NEEDS,
) -> Case:
    async def run(case: Case, target: Target, folder: Path) -> Result:
        return await play(case, target, folder, setup, script)

    return Case(case_id, SUITE, title, needs, expected_s, run)


CASES: tuple[Case, ...] = (
    _case(
        "OA3-01",
        "OAuth 2 client-credentials token, reused until it expires",
        flows.token,
        10,
        needs=NEEDS_LINK,
    ),
    _case(
        "OA3-02",
        "A bad client secret is refused: no API call, nothing put in force",
        flows.bad_secret,
        12,
        Setup(secret="not-the-secret"),  # noqa: S106 (a wrong one, on purpose),
    ),
    _case(
        "OA3-03",
        "An expired token (401) is fetched again and polling resumes",
        flows.token_expired,
        8,
        needs=NEEDS_LINK,
    ),
    _case(
        "OA3-04",
        "Program discovery: the VEN follows its program, not the others'",
        flows.programs,
        10,
        Setup(programs=(flows.OTHER_PROGRAM,)),
    ),
    _case(
        "OA3-05", "EXPORT_CAPACITY_LIMIT: picked up and held at the meter", flows.export_limit, 12
    ),
    _case(
        "OA3-06",
        "IMPORT_CAPACITY_LIMIT (GAC 2.0 shape): the EV's charging curtailed at the meter",
        flows.import_limit,
        16,
        Setup(start=EVENING, load_w=1000.0),
    ),
    _case(
        "OA3-07",
        "ALERT_BLACK_START: the home islands, relay first; reconnects when deleted",
        flows.black_start,
        22,
        Setup(start=EVENING, load_w=1000.0),
    ),
    _case("OA3-08", "Event modified (PUT): the new limit replaces the old", flows.modified, 14),
    _case("OA3-09", "Event deleted: the limit is released", flows.deleted, 10),
    _case(
        "OA3-10",
        "Reports: POST /reports for the event, payload types, intervals, values",
        flows.reports,
        14,
    ),
    _case(
        "OA3-11",
        "Subscription and webhook: the event arrives by notification",
        flows.subscription,
        8,
    ),
    _case(
        "OA3-12",
        "The VTN goes away and returns: the limit holds, the VEN resumes",
        flows.vtn_away,
        22,
    ),
    _case("OA3-13", "The poll interval is respected", flows.poll_interval, 14, needs=NEEDS_LINK),
    Case(
        "OA3-14",
        SUITE,
        "MQTT notifications (3.1: GET /notifiers, broker topics)",
        "an OpenADR 3.1 VEN",
        0.0,
        None,
        not_run="the simulated VTN serves no MQTT broker and no /notifiers (OpenADR 3.1); "
        "webhooks and polling only",
    ),
)
