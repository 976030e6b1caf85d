"""The reports a suite writes: every outcome lands where a CI or a person looks for it."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from gateway.conformance import report
from gateway.conformance.cases import Criterion, Outcome, Result


def _results() -> list[Result]:
    ok = Criterion("holds", ok=True, expected="x", seen="x")
    bad = Criterion("breaks", ok=False, expected="<= 1", seen="2")
    return [
        Result("C-1", "passes", Outcome.PASS, [ok], evidence=[{"t": 0.0}]),
        Result("C-2", "fails", Outcome.FAIL, [ok, bad], "breaks: expected <= 1, saw 2"),
        Result("C-3", "half", Outcome.PARTIAL, [ok], "needs an operator"),
        Result("C-4", "later", Outcome.NOT_RUN, reason="event proceed not supported"),
    ]


def test_junit_counts_fail_and_partial_as_failures_and_not_run_as_skipped(tmp_path: Path) -> None:
    report.write(tmp_path, "demo", "in-process", _results())
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {tc.get("name", ""): tc for tc in suite.iter("testcase")}
    by_id = {name.split()[0]: tc for name, tc in cases.items()}
    assert by_id["C-1"].find("failure") is None
    assert by_id["C-1"].find("skipped") is None
    failure = by_id["C-2"].find("failure")
    assert failure is not None
    assert "expected <= 1, saw 2" in failure.get("message", "")
    assert by_id["C-3"].find("failure") is not None
    skipped = by_id["C-4"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "event proceed not supported"


def test_the_summary_and_evidence_keep_every_case_and_reason(tmp_path: Path) -> None:
    report.write(tmp_path, "demo", "in-process", _results())
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert [(c["id"], c["outcome"]) for c in summary["cases"]] == [
        ("C-1", "PASS"), ("C-2", "FAIL"), ("C-3", "PARTIAL"), ("C-4", "NOT RUN"),
    ]  # fmt: skip
    assert summary["cases"][3]["reason"] == "event proceed not supported"
    rows = [json.loads(x) for x in (tmp_path / "evidence.jsonl").read_text().splitlines()]
    assert {"case": "C-1", "t": 0.0} in rows
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert all(i in html for i in ("C-1", "C-2", "C-3", "C-4", "NOT RUN"))
    assert report.counts(_results()) == {"PASS": 1, "FAIL": 1, "PARTIAL": 1, "NOT RUN": 1}


def test_the_html_report_has_each_cases_timeline_of_the_traffic(tmp_path: Path) -> None:
    evidence = [
        {"t": 0.0, "grid": "up", "relay": "closed", "net_w": 10},
        {"t": 0.1, "grid": "up", "relay": "closed", "net_w": 12},  # nothing new: not shown
        {"t": 0.2, "grid": "down", "relay": "moving", "net_w": 0},
        {"at": 5.0, "method": "POST", "path": "/rsps/1/rsp", "status": 201, "body": "<Response/>"},
        {"target": "gateway: <relay> -> open"},
    ]
    result = Result("C-9", "traffic", Outcome.PASS, evidence=evidence)
    report.write(tmp_path, "demo", "in-process", [result])
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "timeline: 5 rows" in html
    assert "grid=down relay=moving" in html
    assert html.count("relay=closed") == 1
    assert "method=POST path=/rsps/1/rsp status=201" in html
    assert "&lt;Response/&gt;" in html  # bodies escaped
    assert "gateway: &lt;relay&gt; -&gt; open" in html
