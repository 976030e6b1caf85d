"""The done-when of the CSIP-AUS suite: a tester points it at another implementation's client,
here py20305 (conformance/examples/py20305_client.py), and gets a report: the discovery and
registration procedures it passes, judged from what it did on the wire (conformance/README.md
has a longer run, with what it fails and why)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.conformance.csip_aus import definitions

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).parents[3]
GATEWAY = str(Path(sys.executable).with_name("gateway"))
CLIENT = ROOT / "conformance" / "examples" / "py20305_client.py"


@pytest.mark.skipif(definitions.locate() is None, reason="no cactus-test-definitions: make peers")
def test_py20305_as_the_client_under_test(tmp_path: Path) -> None:
    pytest.importorskip("py20305.client.csip_client", reason="py20305 is not installed")
    report = tmp_path / "report"
    done = subprocess.run(
        [
            GATEWAY, "conformance", "run", "--suite", "csip-aus", "--case", "ALL-01",
            "--case", "ALL-04", "--target", f"{sys.executable} {CLIENT}", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=140, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    outcomes = {c["id"]: c for c in summary["cases"]}
    assert outcomes["ALL-01"]["outcome"] == "PASS", outcomes["ALL-01"]
    assert outcomes["ALL-04"]["outcome"] == "PASS", outcomes["ALL-04"]
    rows = [json.loads(x) for x in (report / "evidence.jsonl").read_text().splitlines()]
    said = [r["target"] for r in rows if r.get("case") == "ALL-01" and "target" in r]
    assert any("py20305" in line for line in said), said[-5:]
    walked = {r.get("path") for r in rows if r.get("case") == "ALL-01" and r.get("method")}
    assert {"/dcap", "/edev", "/tm"} <= walked
