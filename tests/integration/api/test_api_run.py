"""The local API of ``gateway run``, over real HTTP on loopback, on a simulated home reached
over Modbus TCP: what it shows is what the devices read, and a homeowner's island request
through it opens the simulated relay (then reconnects it)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from api_rig import TOKEN, api_url, site_file, until

from gateway.conformance import v2h
from gateway.demo.site_home import home_for
from gateway.runtime import cli_run
from gateway.runtime.run_config import load

pytestmark = pytest.mark.timeout(120)


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict]]:
    kind = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def _samples(text: str) -> dict[str, float]:
    """The Prometheus exposition's samples, by name with labels."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_the_api_shows_the_home_and_a_homeowner_islands_it(tmp_path: Path) -> None:
    site = site_file(tmp_path)
    config = load(site)
    out = io.StringIO()

    async def main() -> None:
        home = home_for(config, start=v2h.EVENING, speed=1.0)
        async with home:
            run = asyncio.create_task(cli_run.run(config, out, seconds=60))
            url = await api_url(out)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as http:
                # The status follows the devices: the grid is up and the relay read closed.
                for _ in range(100):
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)
                async with http.get(f"{url}/api/status") as r:
                    status = await r.json()
                assert status["phase"] == "grid_connected", status
                assert status["relay"] == "closed"
                assert status["charger"]["soc_pct"] is not None
                assert status["allowance"]["discharge_bound_by"]
                assert status["flows"]["grid_w"] is not None
                async with http.get(f"{url}/api/devices") as r:
                    devices = await r.json()
                assert {d["name"]: d["link"] for d in devices} == {
                    "relay": "up", "ev": "up", "pv": "up",
                }  # fmt: skip
                assert "position" in devices[0]["readings"]

                stream = await http.get(f"{url}/api/stream")
                events = _events(stream)
                kind, first = await anext(events)
                assert (kind, first["phase"]) == ("status", "grid_connected")

                # A write without the token is refused, and says why; nothing moves.
                async with http.post(f"{url}/api/island", json={"by": "mallory"}) as r:
                    assert r.status == 401
                    assert "Bearer" in (await r.json())["reasons"][0]
                async with http.post(f"{url}/api/island", data="{", headers=auth) as r:
                    assert r.status == 400
                assert home.physics.relay_category() == "closed"

                async with http.post(f"{url}/api/island", json={"by": "alex"}, headers=auth) as r:
                    assert r.status == 202, await r.text()
                    assert (await r.json())["accepted"] is True
                await until(home, "relay", "open", 10)
                await until(home, "charger", "forming", 10)
                await asyncio.sleep(0.5)  # a cycle or two for the metrics
                async with http.get(f"{url}/metrics") as r:
                    metrics = _samples(await r.text())
                assert metrics['gateway_phase{phase="islanded"}'] == 1.0
                assert metrics['gateway_phase{phase="grid_connected"}'] == 0.0
                assert metrics["gateway_relay_open"] == 1.0
                assert metrics['gateway_device_up{device="ev"}'] == 1.0
                assert metrics["gateway_write_seconds_count"] >= 3  # stop, open, form
                assert metrics["gateway_poll_seconds_count"] >= 1
                assert metrics["gateway_cycles_total"] >= 1
                assert metrics["gateway_outbox_depth"] == 0.0
                async with http.get(f"{url}/api/schedule") as r:
                    in_force = {m["mode"]: m for m in (await r.json())["in_force"]}
                assert in_force["connect"]["value"] is False
                assert in_force["connect"]["source"] == "manual override", in_force
                # The stream pushed the change (no polling): a status that is not on the grid.
                async with asyncio.timeout(10):
                    async for kind, doc in events:
                        if kind == "status" and doc["phase"] == "islanded":
                            break
                stream.close()

                async with http.post(f"{url}/api/reconnect", json={}, headers=auth) as r:
                    assert r.status == 202, await r.text()
                await until(home, "relay", "closed", v2h.DELAY_S + 10)
                async with http.post(f"{url}/api/reconnect", headers=auth) as r:
                    assert r.status == 409  # nothing of the homeowner's is in force now
                    assert "no homeowner island request" in (await r.json())["reasons"][0]

                # A fault reset goes through the store's request queue to the engine, which
                # refuses it outside FAULT and says so.
                async with http.post(f"{url}/api/fault-reset", headers=auth) as r:
                    assert r.status == 409, await r.text()
                    assert "nothing to reset" in (await r.json())["reasons"][0]

                # The backup reserve: in force at once (the status shows it), an absurd one
                # refused with what would do.
                async with http.post(
                    f"{url}/api/backup-reserve", json={"soc_pct": 55, "by": "alex"}, headers=auth
                ) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["status"]["backup_reserve_pct"] == 55
                async with http.post(
                    f"{url}/api/backup-reserve", json={"soc_pct": 250}, headers=auth
                ) as r:
                    assert r.status == 400
                    assert "a number from 0 to 100" in (await r.json())["reasons"][0]
                async with http.get(f"{url}/api/status") as r:
                    assert (await r.json())["backup_reserve_pct"] == 55

                # Every write is audited, the refused ones too; the log pages.
                async with http.get(f"{url}/api/audit?limit=500") as r:
                    entries = (await r.json())["entries"]
                api = [
                    (e["point"], e["outcome"].split(":")[0])
                    for e in entries
                    if e["device"] == "api"
                ]
                assert api == [
                    ("island", "refused"), ("island", "refused"), ("island", "accepted"),
                    ("reconnect", "accepted"), ("reconnect", "refused"),
                    ("fault-reset", "refused"),
                    ("backup-reserve", "accepted"), ("backup-reserve", "refused"),
                ], api  # fmt: skip
                async with http.get(f"{url}/api/audit?since=0&limit=2") as r:
                    page = await r.json()
                assert len(page["entries"]) == 2
                assert page["next"] == page["entries"][-1]["id"]
                async with http.get(f"{url}/api/audit?limit=0") as r:
                    assert r.status == 400
                async with http.get(f"{url}/api/schedule") as r:
                    in_force = {m["mode"]: m for m in (await r.json())["in_force"]}
                assert "connect" not in in_force
                assert in_force["export_limit_w"]["source"] == "site policy"
            run.cancel()

    asyncio.run(main())


def test_a_port_in_use_is_said_and_the_run_exits_2(tmp_path: Path) -> None:
    site = site_file(tmp_path)
    out = io.StringIO()

    async def main() -> int:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            text = site.read_text(encoding="utf-8").replace(
                "port = 0", f"port = {busy.getsockname()[1]}"
            )
            site.write_text(text, encoding="utf-8")
            home = home_for(load(site), start=v2h.EVENING, speed=1.0)
            async with home:
                return await cli_run.run(load(site), out, seconds=10)

    assert asyncio.run(main()) == 2
    assert "[api] cannot listen on 127.0.0.1:" in out.getvalue()
