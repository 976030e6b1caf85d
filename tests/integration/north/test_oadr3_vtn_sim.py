"""The simulated OpenADR 3 VTN on its own: ``serve`` (``gateway simulate vtn --openadr 3``)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from oadr3_rig import run

from gateway.sim.vtn3 import serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_runs_a_vtn_until_stopped() -> None:
    async def body() -> None:
        port = _free_port()
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve("127.0.0.1", port, clients={"ven": "pw"}, programs=("a", "b"), stop=stop)
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(f"{base}/auth/server") as resp:
                        token_url = (await resp.json())["tokenURL"]
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            form = {"grant_type": "client_credentials", "client_id": "ven", "client_secret": "pw"}
            async with s.post(token_url, data=form) as resp:
                token = (await resp.json())["access_token"]
            async with s.get(f"{base}/programs") as resp:
                assert resp.status == 401  # no token
            headers = {"Authorization": f"Bearer {token}"}
            async with s.get(f"{base}/programs", headers=headers) as resp:
                names = [p["programName"] for p in await resp.json()]
            assert names == ["a", "b"]
        stop.set()
        await asyncio.wait_for(task, 5)

    run(body)
