"""The CSIP-AUS suite: cactus-test-definitions' client procedures, read from the wheel as data
and interpreted on the simulated utility, against this gateway and broken variants of it.

The wheel comes from `make peers` (tests/peers/cactus-test-definitions.txt, into .peers/);
tests that need it are skipped, saying so, when it is not there (make test runs peers first).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gateway.conformance import csip_aus, suites
from gateway.conformance.cases import Case, Criterion, Outcome, Result
from gateway.conformance.csip_aus import checks, definitions
from gateway.conformance.target import Command, InProcess
from gateway.core import schedule
from gateway.north.sep2 import client, responses
from gateway.north.sep2.client import EndDeviceClient
from gateway.north.sep2.session import POST, Session, Task

pytestmark = pytest.mark.timeout(180)
GATEWAY = str(Path(sys.executable).with_name("gateway"))
WHEEL = definitions.locate()
needs_wheel = pytest.mark.skipif(
    WHEEL is None, reason="no cactus-test-definitions wheel in .peers/: run make peers"
)
#: Procedures this gateway passes in-process (measured: conformance/README.md).
# STO-01 waits for a GET of the MirrorUsagePointList (as ALL-10 does, which takes 38 s): the
# gateway read only its own mirrors' hrefs before, and failed both.
PASSING = [
    "ALL-01", "ALL-02", "ALL-03-REJ", "ALL-04", "ALL-09", "ALL-13", "ALL-19", "GEN-02", "GEN-11",
    "STO-01",
]  # fmt: skip
STARTED = 2  # Response status: event started
COMPLETED = 3  # Response status: event completed


def _case(case_id: str, speed: float = csip_aus.DEFAULT_SPEED) -> Case:
    assert WHEEL is not None
    (case,) = [c for c in csip_aus.cases(WHEEL, speed) if c.case_id == case_id]
    return case


def _run(case: Case, work: Path) -> Result:
    (result,) = asyncio.run(suites.run([case], InProcess(), work, lambda _: None))
    return result


def _fails_only(result: Result, criterion: str) -> Criterion:
    """The case failed, on ``criterion`` alone; that criterion."""
    assert result.outcome is Outcome.FAIL, _explain(result)
    failed = [c for c in result.criteria if not c.ok]
    assert [c.name for c in failed] == [criterion], _explain(result)
    return failed[0]


def _explain(r: Result) -> str:
    lines = [f"{r.outcome.value}: {r.reason}"]
    lines += [f"{c.ok} {c.name}: expected {c.expected}, saw {c.seen}" for c in r.criteria]
    return "\n".join(lines)


@needs_wheel
def test_the_procedures_are_read_from_the_wheel_as_data() -> None:
    assert WHEEL is not None
    with zipfile.ZipFile(WHEEL) as z:
        files = sorted(
            Path(n).stem
            for n in z.namelist()
            if n.startswith(definitions.INSIDE) and n.endswith(".yaml")
        )
    cases = csip_aus.cases(WHEEL, csip_aus.DEFAULT_SPEED)
    assert [c.case_id for c in cases] == files
    assert len(cases) == 86  # the wheel also holds 61 server procedures, not this suite's
    assert tuple(files) == tuple(sorted(csip_aus.KNOWN))
    (all01,) = [c for c in cases if c.case_id == "ALL-01"]
    assert all01.title == "Discovery with Out-of-Band Registration"
    assert "classes A, DR-A" in all01.needs
    assert all01.run is not None


@needs_wheel
def test_what_the_interpreter_does_not_implement_is_not_run_with_the_exact_reason() -> None:
    assert WHEEL is not None
    cases = {c.case_id: c for c in csip_aus.cases(WHEEL, csip_aus.DEFAULT_SPEED)}
    assert cases["ALL-06"].run is not None  # all-polls-at-correct-time is judged
    assert cases["ALL-05"].not_run == "action edev-registration-links not supported"
    assert cases["ALL-25-EXT"].run is None
    assert "over the 40 s bound" in cases["ALL-25-EXT"].not_run
    assert "a higher --speed runs it" in cases["ALL-25-EXT"].not_run


def test_a_parameter_it_does_not_implement_makes_the_case_not_run(tmp_path: Path) -> None:
    (tmp_path / "X-01.yaml").write_text(
        "Description: a made-up procedure\nClasses: [A]\nTargetVersions: [v1.2]\n"
        "Preconditions:\n  init_actions:\n    - type: create-der-control\n"
        "      parameters: {start: $(now), duration_seconds: 60, end_device_indexes: [1]}\n"
        "Criteria:\n  checks:\n    - {type: all-steps-complete, parameters: {}}\n"
        "Steps:\n  WAIT:\n    event: {type: wait, parameters: {duration_seconds: 60}}\n"
        "    actions: []\n",
        encoding="utf-8",
    )
    (case,) = csip_aus.cases(tmp_path, csip_aus.DEFAULT_SPEED)
    assert case.case_id == "X-01"
    assert case.run is None
    assert case.not_run == "action create-der-control parameter end_device_indexes not supported"
    (result,) = asyncio.run(suites.run([case], InProcess(), tmp_path / "work", lambda _: None))
    assert result.outcome is Outcome.NOT_RUN
    assert result.reason == case.not_run


def test_without_the_wheel_every_case_is_not_run_with_the_reason(tmp_path: Path) -> None:
    cases = csip_aus.cases(None, csip_aus.DEFAULT_SPEED)
    assert [c.case_id for c in cases] == list(csip_aus.KNOWN)
    results = asyncio.run(suites.run(cases, InProcess(), tmp_path, lambda _: None))
    assert {r.outcome for r in results} == {Outcome.NOT_RUN}
    assert all("run make peers" in r.reason for r in results)
    # A path that holds no procedures says so, and still fails nothing.
    (empty,) = {c.not_run for c in csip_aus.cases(tmp_path, csip_aus.DEFAULT_SPEED)}
    assert "holds no" in empty
    assert "run make peers" in empty


@needs_wheel
@pytest.mark.parametrize("case_id", PASSING)
def test_this_gateway_passes(case_id: str, tmp_path: Path) -> None:
    result = _run(_case(case_id), tmp_path)
    assert result.outcome is Outcome.PASS, _explain(result)
    assert result.criteria
    assert any(c.name == "all-steps-complete" for c in result.criteria)
    # The evidence is the server's record of every exchange, and the steps as they fired.
    assert any(row.get("method") == "GET" and row.get("path") == "/dcap" for row in result.evidence)
    assert any("step" in row for row in result.evidence)


@needs_wheel
def test_a_gateway_that_ignores_the_servers_ramp_rate_fails_all_13(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant never takes setGradW from the DefaultDERControl: its DERSettings always say
    # 0 (no limit), so the steps waiting for a DERSettings with 1 %/s never fire.
    monkeypatch.setattr(EndDeviceClient, "_default_grad", lambda self: 0)
    result = _run(_case("ALL-13"), tmp_path)
    failed = _fails_only(result, "all-steps-complete")
    assert "PUT-DERSETTINGS" in failed.seen, _explain(result)


@needs_wheel
def test_a_gateway_that_never_says_completed_fails_gen_11(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant answers "received" and "started" but drops every "completed" Response (it
    # settles them unsent, as a control without a replyTo is).
    def forgetful(doc: dict[str, object], *, lfdi: str) -> responses.Post | None:
        if doc.get("code") == COMPLETED:
            return None
        return responses.response_post(doc, lfdi=lfdi)

    monkeypatch.setattr(client, "response_post", forgetful)
    result = _run(_case("GEN-11"), tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    failed = [c for c in result.criteria if not c.ok]
    assert failed, _explain(result)
    assert {c.name for c in failed} == {"response-contents"}, _explain(result)
    assert all("status 3" in c.expected for c in failed), _explain(result)


@needs_wheel
def test_a_gateway_that_polls_too_often_fails_gen_02(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant polls four times as often as the server's pollRate says (telemetry keeps its
    # postRate): 12 GETs of each resource a window of 3 periods, over cactus' 6.
    def eager(self: Session, task: Task, t: float) -> None:
        rate = self.rate(task)
        if rate is None or task == POST:
            original(self, task, t)
        else:
            self._due[task] = t + rate / 4

    original = Session.done
    monkeypatch.setattr(Session, "done", eager)
    result = _run(_case("GEN-02"), tmp_path)
    failed = _fails_only(result, "all-polls-at-correct-time")
    assert "> 6 in" in failed.seen, _explain(result)


@needs_wheel
def test_a_gateway_that_says_started_twice_fails_gen_02(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant POSTs every "started" Response (status 2) twice; the server accepts both.
    # No cactus check judges it: the suite's own criterion does, and nothing else fails.
    async def twice(self: EndDeviceClient, doc: dict[str, object]) -> responses.Outcome:
        result = await original(self, doc)
        if doc.get("code") == STARTED:
            result = await original(self, doc)
        return result

    original = EndDeviceClient.send_report
    monkeypatch.setattr(EndDeviceClient, "send_report", twice)
    result = _run(_case("GEN-02"), tmp_path)
    failed = _fails_only(result, checks.REPEATED)
    assert "status 2 x2" in failed.seen, _explain(result)


#: GEN-10 (primacy) waits 1350 s: at speed 120, 11 s (its polls every second).
PRIMACY_SPEED = 120.0


def _fired(result: Result) -> set[str]:
    return {str(row["step"]) for row in result.evidence if "step" in row}


@needs_wheel
def test_a_gateway_that_ignores_primacy_fails_gen_10(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mutant ranks overlapping controls by the wrong end of primacy: DERC1 (program
    # primacy 2) keeps running when DERC2 (primacy 1, the higher priority) starts, so DERC2
    # never starts and DERC1 is never superseded. Everything up to the overlap still happens.
    monkeypatch.setattr(
        schedule, "_rank", lambda rec: (-rec.event.primacy, -rec.event.creation_time, -rec.seq)
    )
    result = _run(_case("GEN-10", PRIMACY_SPEED), tmp_path)
    assert result.outcome is Outcome.FAIL, _explain(result)
    fired = _fired(result)
    before = {"GET-DERC-1", "POST-DERC-1-RESPONSE-STARTED", "WAIT-DERC-1", "GET-DERC-2"}
    assert before <= fired, _explain(result)
    at_the_overlap = {"POST-DERC-2-RESPONSE-STARTED", "POST-DERC-1-RESPONSE-SUPERSEDED"}
    assert not at_the_overlap & fired, _explain(result)
    (steps,) = [c for c in result.criteria if c.name == "all-steps-complete"]
    assert all(s in steps.seen for s in at_the_overlap), _explain(result)


@needs_wheel
def test_a_command_gets_the_server_in_its_environment_and_a_silent_client_fails(
    tmp_path: Path,
) -> None:
    # Not a 2030.5 client at all: it prints what it was given and sleeps. It fails ALL-01 (not
    # PARTIAL: the step's instructions are informational, and it never talked).
    script = (
        "import os, time; "
        "print(*(os.environ['CSIP_AUS_' + k] for k in ('SERVER', 'CA', 'PIN')), flush=True); "
        "time.sleep(120)"
    )
    target = Command(f'{sys.executable} -c "{script}"')
    (result,) = asyncio.run(suites.run([_case("ALL-01")], target, tmp_path, lambda _: None))
    assert result.outcome is Outcome.FAIL, _explain(result)
    assert "not seen: GET-DCAP" in result.reason, _explain(result)
    printed = [row["target"] for row in result.evidence if "target" in row]
    assert any(
        line.startswith("https://127.0.0.1:") and "serca.pem 111115" in line for line in printed
    ), printed


@needs_wheel
def test_the_cli_lists_and_runs_the_suite_from_a_directory_of_yaml(tmp_path: Path) -> None:
    assert WHEEL is not None
    folder = tmp_path / "procedures"
    folder.mkdir()
    with zipfile.ZipFile(WHEEL) as z:
        for name in ("ALL-01", "ALL-05"):
            data = z.read(f"{definitions.INSIDE}{name}.yaml")
            (folder / f"{name}.yaml").write_bytes(data)
    listed = subprocess.run(
        [GATEWAY, "conformance", "list", "--suite", "csip-aus", "--definitions", str(folder)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "suite csip-aus: 2 cases" in listed.stdout, listed.stdout
    assert "NOT RUNNABLE: action edev-registration-links not supported" in listed.stdout
    report = tmp_path / "report"
    done = subprocess.run(
        [
            GATEWAY, "conformance", "run", "--suite", "csip-aus", "--definitions", str(folder),
            "--speed", "60", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 1, FAIL 0, PARTIAL 0, NOT RUN 1" in done.stdout, done.stdout
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["outcome"]) for c in summary["cases"]] == [
        ("ALL-01", "PASS"),
        ("ALL-05", "NOT RUN"),
    ]
    rows = [json.loads(x) for x in (report / "evidence.jsonl").read_text().splitlines()]
    assert any(r.get("path") == "/edev/1/der" for r in rows)


def test_a_bad_definitions_path_is_a_clear_error() -> None:
    done = subprocess.run(
        [GATEWAY, "conformance", "list", "--definitions", "/no/such/wheel.whl"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "/no/such/wheel.whl: no such wheel or directory" in done.stderr
    assert "Traceback" not in done.stderr
