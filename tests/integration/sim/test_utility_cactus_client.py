"""cactus-client (BSGIP's CSIP-AUS *server* test harness, PyPI) runs its server procedures
against ``gateway simulate utility`` as a subprocess, over mutual TLS with a PKI minted at test
time, and sets the server up through our admin plugin (``conformance/cactus_admin``, entry point
``cactus_client.admin``) and the simulator's runtime admin interface (``--admin-port``).

A representative subset runs here (registration, discovery, an aggregator, controls, defaults,
telemetry); ``make cactus-server`` runs all 61 and prints the counts. Skipped, with the reason,
when ``make peers`` found no Python >= 3.12 to build ``.venv-cactus-client``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CACTUS_PY = ROOT / ".venv-cactus-client" / "bin" / "python"
RUNNER = ROOT / "conformance" / "cactus_admin" / "run_procedures.py"
NOTIFY_PY = ROOT / ".venv-cactus-notifications" / "bin" / "python"
GATEWAY = Path(sys.executable).with_name("gateway")
# Quick ones (a few seconds each) of each kind: in-band registration (device, aggregator),
# access between clients and mirrors, DER resources read back, a default and controls in two
# programs, Responses refused.
SUBSET = ("S-ALL-02", "S-ALL-03", "S-ALL-05", "S-ALL-10", "S-ALL-49", "S-ALL-57")
# Through cactus-client-notifications: a subscription and its Notification, the FSA and
# DefaultDERControl ones.
PUBSUB = ("S-ALL-26", "S-ALL-35")

pytestmark = pytest.mark.skipif(
    not CACTUS_PY.exists(),
    reason="no .venv-cactus-client (make peers builds it when a Python >= 3.12 is found)",
)


def _run(tmp_path: Path, *ids: str, notifications: bool = False) -> dict[str, object]:
    out = tmp_path / "cactus"
    args = [str(CACTUS_PY), str(RUNNER), "--gateway", str(GATEWAY), "--out", str(out)]
    args += ["--timeout", "60", *ids]
    if notifications:
        args += ["--notifications", str(NOTIFY_PY)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    summary = out / "summary.json"
    assert summary.exists(), f"runner failed:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, object] = json.loads(summary.read_text())
    result["stdout"] = proc.stdout
    result["rc"] = proc.returncode
    return result


def _all_pass(result: dict[str, object]) -> None:
    results = result["results"]
    assert isinstance(results, dict)
    failed = {k: v for k, v in results.items() if v["outcome"] != "PASS"}
    assert not failed, f"{failed}\n{result['stdout']}"
    assert result["rc"] == 0


def test_cactus_client_server_procedures_pass(tmp_path: Path) -> None:
    _all_pass(_run(tmp_path, *SUBSET))


@pytest.mark.skipif(
    not NOTIFY_PY.exists(),
    reason="no .venv-cactus-notifications (make peers builds it when a Python >= 3.12 is found)",
)
def test_cactus_client_pubsub_procedures_pass(tmp_path: Path) -> None:
    _all_pass(_run(tmp_path, *PUBSUB, notifications=True))
