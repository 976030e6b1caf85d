"""ElaadNL's openadr3-client (PyPI), as a BL and as a VEN, against the simulated VTN over HTTPS.

The library needs Python >= 3.12 and so is not in this project's lock (3.11). The test looks
for an interpreter that has it: ``$OPENADR3_CLIENT_PYTHON``, else the venv ``make peers`` builds
from ``tests/peers/openadr3-client.lock`` (when this machine has a Python >= 3.12), else ``python3.12``,
``python3.13``, ``python3.14`` on PATH (one that runs: a pyenv shim without that version does
not), and is skipped, saying why, when there is none. To run it:
``python3.12 -m venv /tmp/oa3 && /tmp/oa3/bin/pip install openadr3-client``, then this file
with ``OPENADR3_CLIENT_PYTHON=/tmp/oa3/bin/python``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from oadr3_rig import make_pki, run

from gateway.sim.vtn3 import Vtn3Server, VtnState

if TYPE_CHECKING:
    from conftest import Processes

PEER = Path(__file__).with_name("peers") / "openadr3_client_peer.py"
ROOT = Path(__file__).resolve().parents[3]
VEN = ("gateway", "secret")
BL = ("bl", "bl-secret")


def _runs(python: str, code: str) -> bool:
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _interpreter() -> tuple[str | None, str]:
    """An interpreter with openadr3-client, or None and why not."""
    chosen = os.environ.get("OPENADR3_CLIENT_PYTHON")
    candidates = [chosen] if chosen else []
    built = ROOT / ".venv-openadr3-client" / "bin" / "python"  # make peers, from its lock
    candidates += [str(built)] if built.exists() else []
    candidates += [p for n in ("python3.12", "python3.13", "python3.14") if (p := shutil.which(n))]
    recent = [p for p in candidates if _runs(p, "import sys; assert sys.version_info >= (3, 12)")]
    if not recent:
        return (
            None,
            "openadr3-client needs Python >= 3.12: none found (OPENADR3_CLIENT_PYTHON, PATH)",
        )
    for python in recent:
        if _runs(python, "import openadr3_client"):
            return python, ""
    return None, f"openadr3-client is not installed for {', '.join(recent)} (pip install it there)"


PYTHON, WHY = _interpreter()


@pytest.mark.skipif(PYTHON is None, reason=WHY)
def test_openadr3_client_bl_and_ven_work_against_the_vtn(
    tmp_path: Path, processes: Processes
) -> None:
    """CRUD by id (VEN resources too), server timestamps (a PUT keeps createdDateTime),
    filters (programID, eventID, venName, targets) and paging, as the library's validated
    models see them."""
    assert PYTHON is not None
    pki = make_pki(tmp_path / "pki")

    async def main() -> dict[str, Any]:
        state = VtnState(clients=dict([VEN, BL]), roles={BL[0]: "BL"})
        state.add_program("demo")
        async with Vtn3Server(state, cert=pki.cert, key=pki.key) as vtn:
            proc = await asyncio.create_subprocess_exec(
                PYTHON,
                str(PEER),
                vtn.url,
                str(pki.ca),
                ":".join(VEN),
                ":".join(BL),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            processes.track(proc)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        text = out.decode()
        assert proc.returncode == 0, text
        seen: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
        return seen

    result: dict[str, Any] = {}

    async def body() -> None:
        result.update(await main())

    run(body, timeout=90)
    assert result == {
        "program_by_id": "peer-program",
        "created_kept": True,
        "modified_moved": True,
        "event_by_id_priority": 2,
        "events_of_program": ["peer-limit"],
        "events_page": 1,
        "programs_targeted": 0,
        "ven_by_id": "peer-ven",
        "resource_by_id": "peer-ev",
        "vens_named": ["peer-ven"],
        "report_by_id": "peer-ven",
        "reports_of_event": 1,
        "reports_of_other_event": 0,
        "subscription_by_id": "peer-ven",
        "subscription_deleted": True,
        "event_deleted": True,
    }
