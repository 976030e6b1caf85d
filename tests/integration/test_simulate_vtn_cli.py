"""``gateway simulate vtn --openadr 2|3`` as a person runs it: it names its URL, answers, and
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from gateway.north.openadr3 import config as oadr3_config
from gateway.north.openadr3.client import Http

if TYPE_CHECKING:
    from conftest import Processes

GATEWAY = Path(sys.executable).with_name("gateway")


async def _start(
    processes: Processes, *args: str, cwd: Path | None = None
) -> tuple[asyncio.subprocess.Process, str]:
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
        cwd=cwd,
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


async def _lines_until(proc: asyncio.subprocess.Process, marker: str, timeout: float = 20) -> str:
    """What the process prints up to and including the first line containing ``marker``."""
    assert proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while not seen or marker not in seen[-1]:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"ended before {marker!r}: {''.join(seen)}")
            seen.append(line)
    return "".join(seen)


async def _token(
    session: aiohttp.ClientSession,
    url: str,
    client: str,
    secret: str,
    context: ssl.SSLContext | None,
) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": client, "client_secret": secret}
    async with session.post(url + "/auth/token", data=form, ssl=context or False) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


def test_vtn3_serves_https_by_default_and_prints_what_a_gateway_needs(
    tmp_path: Path, processes: Processes
) -> None:
    """No --certs: a test PKI is made in ./vtn-pki and served; the start lines give the URL,
    the port, the CA file and both clients' credentials, which work as printed."""

    async def main() -> str:
        proc, first = await _start(processes, "--openadr", "3", cwd=tmp_path)
        rest = await _lines_until(proc, "program ")
        url = first.split(" at ", 1)[1].split()[0]
        assert url.startswith("https://127.0.0.1:")
        port = url.rsplit(":", 1)[1]
        assert f"port {port};" in rest
        ca = tmp_path / "vtn-pki" / "ca.pem"
        assert str(ca) in rest
        assert "VEN client: client_id 'gateway', client_secret 'secret'" in rest
        assert "BL client: client_id 'bl', client_secret 'bl-secret'" in rest
        context = ssl.create_default_context(cafile=str(ca))
        async with aiohttp.ClientSession() as session:
            for client, secret in (("gateway", "secret"), ("bl", "bl-secret")):
                headers = await _token(session, url, client, secret, context)
                async with session.get(url + "/programs", headers=headers, ssl=context) as resp:
                    assert resp.status == 200
                    assert [p["programName"] for p in await resp.json()] == ["demo"]
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        assert proc.returncode == 0
        return first + rest

    out = asyncio.run(main())
    assert "VEN client" in out


def test_vtn3_http_is_an_opt_out(tmp_path: Path, processes: Processes) -> None:
    async def main() -> tuple[str, int]:
        proc, first = await _start(processes, "--openadr", "3", "--http", cwd=tmp_path)
        url = first.split(" at ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as session, session.get(url + "/auth/server") as resp:
            status = resp.status
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        return first, status

    first, status = asyncio.run(main())
    assert first.startswith("OpenADR 3 VTN at http://127.0.0.1:")
    assert status == 200
    assert not (tmp_path / "vtn-pki").exists()


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


EVENT = {
    "programID": "feeder-7",  # the program's name: the VTN makes the ids
    "eventName": "limit-2kw",
    "intervalPeriod": {"start": "now", "duration": "PT1H"},
    "intervals": [{"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [2.0]}]}],
}


def test_vtn3_loads_programs_events_and_a_scenario_from_json(
    tmp_path: Path, processes: Processes
) -> None:
    """--program FILE, --event FILE and --scenario FILE: the objects are served as if POSTed
    (server-set fields, program named by its name), the scenario's steps play on time."""
    program = _write(tmp_path / "program.json", {"programName": "feeder-7", "retailerName": "U"})
    event = _write(tmp_path / "event.json", EVENT)
    later = {**EVENT, "eventName": "island", "intervalPeriod": {"start": "now+PT1M"}}
    scenario = _write(
        tmp_path / "scenario.json",
        {
            "programs": [{"programName": "feeder-8"}],
            "vens": [{"venName": "ven-a"}],
            "steps": [
                {"at_s": 0.3, "add_event": later},
                {"at_s": 0.6, "modify_event": {**later, "priority": 1}},
                {"at_s": 0.9, "delete_event": "limit-2kw"},
            ],
        },
    )
    args = ("--openadr", "3", "--http", "--program", str(program), "--event", str(event))

    async def main() -> tuple[str, list[dict[str, object]], list[dict[str, object]], str]:
        proc, first = await _start(processes, *args, "--scenario", str(scenario), cwd=tmp_path)
        header = await _lines_until(proc, "delete_event")
        url = first.split(" at ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as session:
            headers = await _token(session, url, "bl", "bl-secret", None)
            async with session.get(url + "/events", headers=headers) as resp:
                before = await resp.json()
            played = await _lines_until(proc, "deleted")
            async with session.get(url + "/events", headers=headers) as resp:
                after = await resp.json()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        return first + header, before, after, played

    header, before, after, played = asyncio.run(main())
    assert "(programs 'feeder-8', 'feeder-7')" in header
    assert "ven ven-" in header
    [loaded] = before
    assert loaded["eventName"] == "limit-2kw"
    assert loaded["programID"] != "feeder-7"  # the id of the program named so
    assert loaded["programID"] in header
    assert {"id", "createdDateTime", "modificationDateTime"} <= set(loaded)
    assert loaded["objectType"] == "EVENT"
    assert "+0.3 s: event" in played
    assert "+0.6 s: event" in played
    assert "modified" in played
    [island] = after
    assert island["eventName"] == "island"
    assert island["priority"] == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: ["--event", str(_write(d / "e.json", {**EVENT, "programID": "nope"}))], "nope"),
        (lambda d: ["--event", str(_write(d / "e.json", {"eventName": "x"}))], "intervals"),
        (lambda d: ["--program", str(d / "missing.json")], "missing.json"),
        (lambda d: ["--scenario", str(_write(d / "s.json", {"stepz": []}))], "unknown keys"),
        (
            lambda d: ["--scenario", str(_write(d / "s.json", {"steps": [{"at_s": 1}]}))],
            "steps[0]",
        ),
        (lambda d: ["--client", "nocolon"], "ID:SECRET"),
    ],
)
def test_vtn3_bad_files_and_flags_are_a_message_not_a_traceback(
    make: Callable[[Path], list[str]], message: str, tmp_path: Path, processes: Processes
) -> None:
    proc = processes.start("simulate", "vtn", "--openadr", "3", "--http", *make(tmp_path))
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 2, out
    assert message in out
    assert "Traceback" not in out


def test_the_gateway_configured_as_docs_say_reaches_the_default_vtn3(
    tmp_path: Path, processes: Processes
) -> None:
    """The [openadr3] table of docs/openadr3.md (port as printed) passes the gateway's config
    check (which refuses http://) and its own OpenADR 3 HTTP client gets a token and the
    programs from `gateway simulate vtn --openadr 3` as started with no flags."""
    docs = (Path(__file__).parents[2] / "docs" / "openadr3.md").read_text(encoding="utf-8")
    toml_text = docs.split("The gateway's side, for the defaults:\n\n```toml\n", 1)[1]
    toml_text = toml_text.split("```", 1)[0]

    async def main() -> tuple[list[str], list[str]]:
        proc, first = await _start(processes, "--openadr", "3", cwd=tmp_path)
        url = first.split(" at ", 1)[1].split()[0]
        table = tomllib.loads(toml_text.replace("127.0.0.1:8080", url.split("//", 1)[1]))
        cfg, problems = oadr3_config.parse(table["openadr3"], tmp_path)
        assert cfg is not None, problems
        async with Http(cfg) as http:
            status, body = await http.call("GET", "/programs")
        assert status == 200
        plain = dict(table["openadr3"], vtn=url.replace("https://", "http://"))
        _, http_problems = oadr3_config.parse(plain, tmp_path)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
        return [p["programName"] for p in json.loads(body)], http_problems

    names, http_problems = asyncio.run(main())
    assert names == ["demo"]
    assert any("https" in p for p in http_problems)  # why the simulator serves HTTPS
