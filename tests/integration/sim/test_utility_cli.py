"""``gateway simulate utility`` as people run it: a PKI from ``gateway certs init``, the server
as a subprocess on a port the OS chooses (``--port 0``, announced on stdout), one mutual-TLS
``GET /dcap`` with the gateway's certificate, then SIGTERM and a clean exit."""

from __future__ import annotations

import asyncio
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from gateway.north.sep2 import codec, tls
from gateway.north.sep2.resources import DeviceCapability

GATEWAY = Path(sys.executable).with_name("gateway")  # the venv's console script
URL = re.compile(r"utility server at (https://\S+)")
pytestmark = pytest.mark.skipif(not GATEWAY.exists(), reason="no gateway console script")


def _announced_url(proc: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, list[str]]:
    """Read stdout until the server says where it listens; (url, the lines read)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(left):
                break
            line = proc.stdout.readline()
            if not line:  # it exited
                break
            lines.append(line)
            if found := URL.search(line):
                return found.group(1), lines
    raise AssertionError(f"no URL announced; output so far: {lines!r}")


async def _get_dcap(url: str, certs: Path) -> tuple[int, bytes]:
    ctx = tls.client_context(
        certs / "gateway.pem",
        certs / "gateway.key",
        certs / "gateway-chain.pem",
        certs / "serca.pem",
    )
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as reply,
    ):
        return reply.status, await reply.read()


def test_simulate_utility_on_port_0_serves_dcap_and_stops_cleanly(tmp_path: Path) -> None:
    certs = tmp_path / "pki"
    made = subprocess.run(
        [str(GATEWAY), "certs", "init", str(certs)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen(
        [str(GATEWAY), "simulate", "utility", "--certs", str(certs), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url, _ = _announced_url(proc)
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+/dcap", url)
        assert not url.endswith(":0/dcap")
        status, body = asyncio.run(_get_dcap(url, certs))
        assert status == 200
        dcap = codec.decode(body)
        assert isinstance(dcap, DeviceCapability)
        assert dcap.EndDeviceListLink is not None
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "GET /dcap -> 200" in out
    assert "stopped; 1 exchanges recorded" in out
