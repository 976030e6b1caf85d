"""``gateway simulate vtn --openadr 2|3`` as a person runs it: it names its URL, answers, and
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

if TYPE_CHECKING:
    from conftest import Processes

GATEWAY = Path(sys.executable).with_name("gateway")


async def _start(processes: Processes, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "simulate",
        "vtn",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    processes.track(proc)  # killed at the end of the test, whatever its outcome
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    return proc, first


@pytest.mark.parametrize("version", ["2", "3"])
def test_the_vtn_names_its_url_answers_and_stops_on_sigterm(
    version: str, tmp_path: Path, processes: Processes
) -> None:
    async def main() -> tuple[str, int, int | None]:
        proc, first = await _start(
            processes, "--openadr", version, "--certs", str(tmp_path / "pki")
        )
        url = first.split(" at ", 1)[1].split()[0]
        context = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))
        if version == "2":
            # Mutual TLS: show the VTN answers an OpenADR request from the test VEN.
            context.load_cert_chain(tmp_path / "pki" / "ven.pem", tmp_path / "pki" / "ven.key")
            target = url + "/EiRegisterParty"
            body, method = b"<not-openadr/>", "POST"
        else:
            target, body, method = url + "/programs", b"", "GET"  # no token: 401
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, target, data=body, ssl=context) as resp,
        ):
            status = resp.status
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        return first, status, proc.returncode

    first, status, code = asyncio.run(main())
    assert first.startswith(f"OpenADR {'2.0b' if version == '2' else '3'} VTN at https://")
    # 2.0b: openleadr answers a message it cannot parse with 500, after the mutual TLS
    # handshake accepted our VEN certificate; 3: no bearer token, 401.
    assert status == (500 if version == "2" else 401)
    assert code == 0
