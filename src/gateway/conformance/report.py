"""Reports: a summary JSON, JUnit XML for CI, a self-contained HTML matrix, and the evidence
(every sample of every case, and what the target printed) as JSON lines."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from gateway.conformance.cases import Outcome, Result


def write(folder: Path, suite: str, target: str, results: Sequence[Result]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        _summary(folder / "summary.json", suite, target, results),
        _junit(folder / "junit.xml", suite, results),
        _html(folder / "report.html", suite, target, results),
        _evidence(folder / "evidence.jsonl", results),
    ]


def counts(results: Sequence[Result]) -> dict[str, int]:
    return {o.value: sum(r.outcome is o for r in results) for o in Outcome}


def _summary(path: Path, suite: str, target: str, results: Sequence[Result]) -> Path:
    doc = {
        "suite": suite,
        "target": target,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": counts(results),
        "cases": [
            {
                "id": r.case_id,
                "title": r.title,
                "outcome": r.outcome.value,
                "reason": r.reason,
                "elapsed_s": round(r.elapsed_s, 2),
                "criteria": [
                    {"name": c.name, "ok": c.ok, "expected": c.expected, "seen": c.seen}
                    for c in r.criteria
                ],
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def _junit(path: Path, suite: str, results: Sequence[Result]) -> Path:
    c = counts(results)
    root = ET.Element(
        "testsuite",
        name=f"gateway-conformance-{suite}",
        tests=str(len(results)),
        failures=str(c[Outcome.FAIL.value] + c[Outcome.PARTIAL.value]),
        skipped=str(c[Outcome.NOT_RUN.value]),
        time=f"{sum(r.elapsed_s for r in results):.2f}",
    )
    for r in results:
        tc = ET.SubElement(
            root,
            "testcase",
            classname=suite,
            name=f"{r.case_id} {r.title}",
            time=f"{r.elapsed_s:.2f}",
        )
        if r.outcome is Outcome.NOT_RUN:
            ET.SubElement(tc, "skipped", message=r.reason)
        elif r.outcome is not Outcome.PASS:
            f = ET.SubElement(tc, "failure", message=r.reason)
            f.text = "\n".join(
                f"{'ok ' if k.ok else 'FAIL'} {k.name}: expected {k.expected}, saw {k.seen}"
                for k in r.criteria
            )
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


_COLOUR = {"PASS": "#1a7f37", "FAIL": "#cf222e", "PARTIAL": "#9a6700", "NOT RUN": "#6e7781"}


def _html(path: Path, suite: str, target: str, results: Sequence[Result]) -> Path:
    e = html.escape
    rows = []
    for r in results:
        crit = "".join(
            f"<li>{'✓' if k.ok else '✗'} {e(k.name)}: "
            f"expected {e(k.expected)}, saw {e(k.seen)}</li>"
            for k in r.criteria
        )
        rows.append(
            f"<tr><td>{e(r.case_id)}</td><td>{e(r.title)}</td>"
            f'<td style="color:{_COLOUR[r.outcome.value]};font-weight:bold">{r.outcome.value}</td>'
            f"<td>{e(r.reason)}<ul>{crit}</ul>{timeline(r.evidence)}</td>"
            f"<td>{r.elapsed_s:.1f} s</td></tr>"
        )
    c = counts(results)
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Conformance: {e(suite)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}ul{margin:0}"
        "</style></head><body>"
        f"<h1>Conformance suite {e(suite)}</h1><p>Target: <code>{e(target)}</code></p>"
        f"<p>{', '.join(f'{k}: {v}' for k, v in c.items())}</p>"
        "<table><tr><th>ID</th><th>Case</th><th>Outcome</th><th>Why</th><th>Time</th></tr>"
        + "".join(rows)
        + "</table><p>Every sample the suite took is in evidence.jsonl.</p></body></html>\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


#: A case's timeline in the HTML report: its first rows (evidence.jsonl has them all).
TIMELINE_ROWS = 400
BODY_CHARS = 300
#: What moves in every sample of a home: a sample that changes nothing else is not shown.
_NOISE = frozenset({"t", "at", "net_w", "pv_w", "served_w", "pv_available_w", "case"})
_HIDDEN = frozenset({"t", "at", "case", "body", "body_encoding"})


def timeline(evidence: Sequence[dict[str, Any]]) -> str:
    """The case's evidence as a collapsed table, in order: each exchange (method, path,
    status, body), each step, each line the target printed, and each sample of the home that
    shows a change of state."""
    e = html.escape
    lines: list[str] = []
    last: dict[str, Any] | None = None
    for row in evidence:
        if len(lines) >= TIMELINE_ROWS:
            break
        state = {k: v for k, v in row.items() if k not in _NOISE}
        if "relay" in row and state == last:
            continue  # a sample like the one before
        last = state if "relay" in row else last
        when = row.get("t", row.get("at", ""))
        shown = {k: v for k, v in row.items() if k not in _HIDDEN}
        cell = e(" ".join(f"{k}={v}" for k, v in shown.items()))
        body = row.get("body")
        if isinstance(body, str) and body:
            clipped = body if len(body) <= BODY_CHARS else body[:BODY_CHARS] + "…"
            cell += f"<br><code>{e(clipped)}</code>"
        lines.append(f"<tr><td>{e(str(when))}</td><td>{cell}</td></tr>")
    if not lines:
        return ""
    more = len(lines) >= TIMELINE_ROWS
    note = f" (the first {TIMELINE_ROWS}; evidence.jsonl has all)" if more else ""
    return (
        f"<details><summary>timeline: {len(evidence)} rows{note}</summary>"
        f"<table>{''.join(lines)}</table></details>"
    )


def _evidence(path: Path, results: Sequence[Result]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in results:
            for row in r.evidence:
                f.write(json.dumps({"case": r.case_id, **row}) + "\n")
    return path
