"""The CSIP (US) suite: SunSpec CSIP client IDs played on the simulated utility against this
gateway in-process, and against broken variants of it (the mutation checks: each must fail the
case that guards what it broke, and only that kind of case).

Only a few cases run here, to keep make test's budget (conformance/README.md, suite csip, has
the whole suite's measured run).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.conformance import csip, suites
from gateway.conformance.cases import Outcome, Result
from gateway.conformance.target import InProcess
from gateway.core import schedule
from gateway.north.sep2 import timebase, tls

pytestmark = pytest.mark.timeout(180)


def _run(ids: Sequence[str], work: Path) -> dict[str, Result]:
    cases = suites.select(csip.SUITE, list(ids))
    results = asyncio.run(suites.run(cases, InProcess(), work, lambda _: None))
    return {r.case_id: r for r in results}


def _explain(r: Result) -> str:
    lines = [f"{r.case_id} {r.outcome.value}: {r.reason}"]
    lines += [f"  {c.ok} {c.name}: expected {c.expected}, saw {c.seen}" for c in r.criteria]
    return "\n".join(lines)


def test_every_catalogue_row_is_a_case_and_those_not_run_say_why() -> None:
    ids = [c.case_id for c in csip.CASES]
    assert len(ids) == 79 == len(set(ids))
    for c in csip.CASES:
        assert c.run is not None or c.not_run, c.case_id
    by_id = {c.case_id: c for c in csip.CASES}
    assert by_id["CORE-001"].not_run.startswith("not applicable: a server row")
    assert by_id["AGG-005"].not_run.startswith("not applicable: an aggregator-client row")


def test_the_gateway_passes_the_tls_cases(tmp_path: Path) -> None:
    ids = ["COMM-003", "COMM-004A", "COMM-004D", "COMM-004G"]
    got = _run(ids, tmp_path)
    for i in ids:
        assert got[i].outcome is Outcome.PASS, _explain(got[i])
    # Judged from the wire: the refused handshakes were seen by the tap.
    assert any(row.get("tls") == "connection" for row in got["COMM-004D"].evidence)


def _trusting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
    """The gateway's client context with certificate verification turned off."""
    ctx = original(*args, **kwargs)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.sslobject_class = ssl.SSLObject
    ctx.sslsocket_class = ssl.SSLSocket
    return ctx


original = tls.client_context


def test_a_gateway_that_accepts_any_chain_fails_the_refusal_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "client_context", _trusting)
    got = _run(["COMM-004", "COMM-004A", "COMM-004D", "COMM-004G"], tmp_path)
    assert got["COMM-004A"].outcome is Outcome.PASS, _explain(got["COMM-004A"])  # still accepts
    for i in ("COMM-004", "COMM-004D", "COMM-004G"):
        assert got[i].outcome is Outcome.FAIL, _explain(got[i])
        assert "no HTTP request reached it" in got[i].reason


def test_the_gateway_passes_a_precedence_scenario(tmp_path: Path) -> None:
    got = _run(["BASIC-022"], tmp_path)
    assert got["BASIC-022"].outcome is Outcome.PASS, _explain(got["BASIC-022"])


def test_a_gateway_that_ignores_primacy_fails_basic_022(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Events ranked by creationTime alone: the newer wins, whatever its program's primacy.
    monkeypatch.setattr(schedule, "_rank", lambda rec: (0, -rec.event.creation_time, -rec.seq))
    got = _run(["BASIC-022"], tmp_path)
    r = got["BASIC-022"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    failed = {c.name for c in r.criteria if not c.ok}
    assert any("the Service Point (primacy 1) wins" in n for n in failed), _explain(r)
    assert not any("the System control alone" in n for n in failed), _explain(r)


def test_a_gateway_on_its_own_clock_fails_core_005(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Time resource never taken: the gateway schedules on its own clock, 2 h behind the
    # server's, so the control never starts (the full run shows this gateway passing CORE-005).
    monkeypatch.setattr(timebase.ServerClock, "update", lambda self, *_a, **_k: self)
    r = _run(["CORE-005"], tmp_path)["CORE-005"]
    assert r.outcome is Outcome.FAIL, _explain(r)
    failed = {c.name for c in r.criteria if not c.ok}
    assert any("at the server's time" in n for n in failed), _explain(r)
