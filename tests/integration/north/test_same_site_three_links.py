"""Issue 5's "done when": one site file names a 2030.5 server, an OpenADR 2.0b VTN or an
OpenADR 3 VTN, and the home behaves the same for the same request.

Each case runs the installed ``gateway run SITE.toml`` in a subprocess, with the same site
file (the simulated home this process serves, at its addresses) and only the utility link
changed, against that protocol's simulated utility in this process. The request is the same
everywhere: "island the home for a few seconds, starting now" (2030.5
``opModConnect=false``; OpenADR 2.0b ``LOAD_CONTROL`` / ``x-loadControlCapacity`` 0; OpenADR 3
``ALERT_BLACK_START``). The home is watched directly over Modbus (its relay and charger, at the
addresses the site file names), not through any protocol's own reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oadr3_rig import make_pki as make_oadr3_pki

from gateway.core.island import ChargerMode, RelayPosition
from gateway.demo.site_home import site_file
from gateway.north.sep2.model import ActivePower, DERControlBase
from gateway.north.sep2.pki import init_pki
from gateway.runtime.south import DeviceConfig, South
from gateway.sim.modbus import SimulatedHome
from gateway.sim.utility import Recorder, UtilityServer, UtilityState
from gateway.sim.vtn2.pki import init_pki as init_oadr2_pki
from gateway.sim.vtn2.server import ScriptedVtn, VtnTls
from gateway.sim.vtn3 import Vtn3Server, VtnState

GATEWAY = Path(sys.executable).with_name("gateway")
PIN = 111115
ISLAND_S = 4

# What the home did, as distinct (relay, charger) states in the order they were seen.
Trace = list[tuple[RelayPosition | None, ChargerMode | None]]
# Starts the protocol's utility and yields (the [link] table, a function that asks to island).
Link = Callable[[Path], "contextlib.AbstractAsyncContextManager[tuple[str, Island]]"]
Island = Callable[[], Awaitable[None]]


@dataclass
class Home:
    south: South

    async def state(self) -> tuple[RelayPosition | None, ChargerMode | None]:
        obs = await self.south.observe()
        relay = obs.relay.position if obs.relay is not None else None
        charger = obs.charger.mode if obs.charger is not None else None
        return relay, charger


async def _start_gateway(
    config: Path, served: SimulatedHome
) -> tuple[asyncio.subprocess.Process, Home]:
    proc = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "run",
        str(config),
        "--for",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line, "gateway run ended early:\n" + "".join(seen)
        seen.append(line)
        if line.startswith("following "):
            break
    devices = [  # what islanding moves, read over its own Modbus connections
        DeviceConfig(d.name, d.profile, d.url, d.unit_id)
        for d in served.describe()
        if d.name in ("relay", "charger")
    ]
    return proc, Home(South(devices, now=time.time, audit=lambda _r: None))


async def _watch(home: Home, until: Callable[[Trace], bool], timeout: float) -> Trace:
    trace: Trace = []
    deadline = time.monotonic() + timeout
    while not until(trace):
        assert time.monotonic() < deadline, f"the home did not get there; it did: {trace}"
        state = await home.state()
        if not trace or trace[-1] != state:
            trace.append(state)
        await asyncio.sleep(0.05)
    return trace


def _islanded_and_back(trace: Trace) -> bool:
    """Formed on an open relay at some point, and the relay is closed again since."""
    for i, state in enumerate(trace):
        if state == (RelayPosition.OPEN, ChargerMode.GRID_FORMING):
            return len(trace) - 1 > i and trace[-1][0] is RelayPosition.CLOSED
    return False


async def _island_via(link: Link, tmp: Path) -> Trace:
    async with link(tmp) as (table, island), SimulatedHome(speed=1.0) as served:
        config = tmp / "site.toml"
        config.write_text(site_file(served, period_s=0.2, delay_s=1) + table, encoding="utf-8")
        proc, home = await _start_gateway(config, served)
        try:
            await _watch(home, lambda t: bool(t) and t[-1][0] is RelayPosition.CLOSED, 20)
            await asyncio.sleep(1.0)  # registered and settled
            await island()
            trace = await _watch(home, _islanded_and_back, 30)
        finally:
            proc.terminate()
            out, _ = await proc.communicate()
            await home.south.close()
        assert proc.returncode == 0, out.decode()[-2000:]
        return trace


@asynccontextmanager
async def sep2_link(tmp: Path) -> AsyncIterator[tuple[str, Island]]:
    pki = init_pki(tmp / "pki")
    state = UtilityState(clock=lambda: time.time() + 3600, registration_pin=PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    program = state.add_program("feeder", primacy=1)
    s = pki.server
    server = UtilityServer(
        state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=Recorder()
    )
    async with server:
        table = f"""
[sep2]
dcap = "{server.url("/dcap")}"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
chain = "pki/gateway-chain.pem"
serca = "pki/serca.pem"
pin = {PIN}
register = true
"""

        async def island() -> None:
            base = DERControlBase(opModConnect=False)
            state.add_control(program, start=state.now() - 1, duration=ISLAND_S, base=base)

        yield table, island


@asynccontextmanager
async def openadr2_link(tmp: Path) -> AsyncIterator[tuple[str, Island]]:
    pki = init_oadr2_pki(tmp / "pki")
    tls = VtnTls(str(pki.vtn.cert), str(pki.vtn.key), str(pki.ca))
    async with ScriptedVtn(tls=tls, poll_interval_s=0.5) as vtn:
        table = f"""
[openadr2]
vtn_url = "{vtn.url}"
ven_name = "gateway-1"
poll_interval_s = 0.5
report_interval_s = 5
cert = "pki/ven.pem"
key = "pki/ven.key"
ca_file = "pki/ca.pem"
vtn_fingerprint = "{pki.vtn.fingerprint}"
"""

        async def island() -> None:
            ven_id = vtn.registrations[-1].ven_id
            now = datetime.now(UTC)
            vtn.add_event(
                ven_id,
                "LOAD_CONTROL",
                "x-loadControlCapacity",
                [(now, timedelta(seconds=ISLAND_S), 0.0)],
            )

        yield table, island


@asynccontextmanager
async def openadr3_link(tmp: Path) -> AsyncIterator[tuple[str, Island]]:
    pki = make_oadr3_pki(tmp / "pki")
    state = VtnState(clients={"gateway": "s3cret"})
    pid = state.add_program("feeder")
    async with Vtn3Server(state, cert=pki.cert, key=pki.key, notify_ca=pki.ca) as server:
        table = f"""
[openadr3]
vtn = "{server.url}"
client_id = "gateway"
client_secret = "s3cret"
ven_name = "gateway-1"
ca_file = "pki/ca.pem"
poll_s = 0.5
report_period_s = 5

[[openadr3.program]]
name = "feeder"
"""

        async def island() -> None:
            state.add_event(
                pid,
                intervals=[{"ALERT_BLACK_START": ["restoring the feeder"]}],
                start=time.time() - 1,
                duration_s=ISLAND_S,
            )

        yield table, island


def test_the_same_island_request_over_each_link_moves_the_home_the_same(tmp_path: Path) -> None:
    async def main() -> dict[str, Trace]:
        out: dict[str, Trace] = {}
        links = (("sep2", sep2_link), ("openadr2", openadr2_link), ("openadr3", openadr3_link))
        for name, link in links:
            folder = tmp_path / name
            folder.mkdir()
            out[name] = await _island_via(link, folder)
        return out

    traces = asyncio.run(asyncio.wait_for(main(), 200))
    relay_moves = {}
    for name, trace in traces.items():
        # Open, then forming on the open relay, then closed again: never forming on a closed
        # relay, whatever the protocol.
        assert (RelayPosition.CLOSED, ChargerMode.GRID_FORMING) not in trace, (name, trace)
        # UNKNOWN is the relay in travel (its contact reads neither way): not a position.
        relays = [r for r, _ in trace if r in (RelayPosition.OPEN, RelayPosition.CLOSED)]
        relay_moves[name] = [r for i, r in enumerate(relays) if i == 0 or relays[i - 1] != r]
    assert (
        relay_moves["sep2"]
        == relay_moves["openadr3"]
        == [
            RelayPosition.CLOSED,
            RelayPosition.OPEN,
            RelayPosition.CLOSED,
        ]
    ), traces


# -- Issue 15: two links at once on one site --------------------------------------------------
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()  # the simulated sun at its peak
SEP2_EXPORT_W = 3000
OADR3_EXPORT_KW = 1.0
TOLERANCE_W = 200.0  # the allocator's read-to-act lag at the simulated home


def _export_w(served: SimulatedHome) -> float:
    served.sync()
    return -served.physics.meter().net_w


async def _export_settles(served: SimulatedHome, below: float, *, above: float = -1e9) -> None:
    """Until the home's export stays in (above, below] for 2 s (it gets there by the gateway's
    DER limits, read at the home itself)."""
    deadline = time.monotonic() + 30
    held_since: float | None = None
    seen: list[float] = []
    while True:
        w = _export_w(served)
        seen.append(round(w))
        if above < w <= below:
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= 2.0:
                return
        else:
            held_since = None
        assert time.monotonic() < deadline, f"export never settled in ({above}, {below}]: {seen}"
        await asyncio.sleep(0.1)


def _pv_first(site: str) -> str:
    """The site file with the PV first in the backfeed allocation order (devices are listed in
    that order), so that the export allowance goes to the PV and its output shows the limit
    in force (the idle EV, first, would hold the allowance unused)."""
    body, store = site.split("[store]")
    head, *blocks = body.split("[[device]]")
    blocks.sort(key=lambda b: 'name = "pv"' not in b)  # stable: the others keep their order
    return head + "".join("[[device]]" + b for b in blocks) + "[store]" + store


async def _checked_site(tmp: Path, served: SimulatedHome, tables: str, links: str) -> Path:
    """The served home's site file with ``tables`` (the links) added, which check-config
    accepts, naming ``links``."""
    config = tmp / "site.toml"
    site = _pv_first(site_file(served, period_s=0.2, delay_s=1))
    config.write_text(site + tables, encoding="utf-8")
    check = await asyncio.create_subprocess_exec(
        str(GATEWAY),
        "check-config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    said = (await check.communicate())[0].decode()
    assert check.returncode == 0, said
    assert f"utility links: {links}" in said, said
    return config


def test_two_links_at_once_each_links_limit_holds_and_each_gets_its_own_reports(
    tmp_path: Path,
) -> None:
    """One site file with [sep2] and [openadr3]: one gateway, one home. The 2030.5 server
    limits export to 3 kW, the VTN to 1 kW at the same time: the home exports at most 1 kW
    (the smallest limit of any link), and once the VTN's event is gone, at most 3 kW (the
    2030.5 control was never superseded by the VTN's). The 2030.5 server gets its Responses
    (1, 2, never 6 or 7) and the VTN its reports, each about its own event only."""

    async def main() -> None:
        sep2_pki = init_pki(tmp_path / "pki")
        utility = UtilityState(clock=time.time, registration_pin=PIN)
        for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
            utility.set_poll_rate(resource, 1)
        program = utility.add_program("feeder", primacy=1)
        recorder = Recorder()
        s = sep2_pki.server
        oadr_pki = make_oadr3_pki(tmp_path / "vtn-pki")
        vtn = VtnState(clients={"gateway": "s3cret"})
        pid = vtn.add_program("feeder")
        async with (
            UtilityServer(
                utility,
                cert=s.cert,
                key=s.key,
                chain=s.chain,
                serca=sep2_pki.serca,
                recorder=recorder,
            ) as server,
            Vtn3Server(vtn, cert=oadr_pki.cert, key=oadr_pki.key, notify_ca=oadr_pki.ca) as v3,
            SimulatedHome(speed=1.0, start=NOON) as served,
        ):
            served.physics.load.constant_w = 500.0
            tables = f"""
[sep2]
dcap = "{server.url("/dcap")}"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
chain = "pki/gateway-chain.pem"
serca = "pki/serca.pem"
pin = {PIN}
register = true

[openadr3]
vtn = "{v3.url}"
client_id = "gateway"
client_secret = "s3cret"
ven_name = "gateway-1"
ca_file = "vtn-pki/ca.pem"
poll_s = 0.5
report_period_s = 1

[[openadr3.program]]
name = "feeder"
"""
            config = await _checked_site(tmp_path, served, tables, "sep2, openadr3")
            proc, home = await _start_gateway(config, served)
            try:
                await _watch(home, lambda t: bool(t) and t[-1][0] is RelayPosition.CLOSED, 20)
                await asyncio.sleep(1.0)
                # No limit yet: the noon sun exports far more than either link will allow.
                await _export_settles(served, below=1e9, above=SEP2_EXPORT_W + 1000)
                mrid = utility.add_control(
                    program,
                    start=utility.now() - 1,
                    duration=120,
                    base=DERControlBase(opModExpLimW=ActivePower(SEP2_EXPORT_W)),
                )
                eid = vtn.add_event(
                    pid,
                    intervals=[{"EXPORT_CAPACITY_LIMIT": [OADR3_EXPORT_KW]}],
                    start=time.time() - 1,
                    duration_s=120,
                    report=["DEMAND"],
                )
                # Both in force: the VTN's 1 kW, the smaller (the PV runs up to it, not to 0).
                await _export_settles(
                    served,
                    below=OADR3_EXPORT_KW * 1000 + TOLERANCE_W,
                    above=OADR3_EXPORT_KW * 1000 - 500,
                )
                vtn.delete_event(eid)
                await _export_settles(
                    served,
                    below=SEP2_EXPORT_W + TOLERANCE_W,
                    above=OADR3_EXPORT_KW * 1000 + TOLERANCE_W,
                )
                codes = [r.status for _, r in recorder.responses(mrid)]
                assert codes[:2] == [1, 2], codes
                assert not {6, 7} & set(codes), codes
                # Every Response to the 2030.5 server is about its own control.
                subjects = {r.subject.upper() for _, r in recorder.responses()}
                assert subjects == {mrid.upper()}, subjects
                # The VTN got its reports, about its event only.
                assert vtn.reports_for(eid), vtn.reports
                assert {r.get("eventID") for r in vtn.reports.values()} == {eid}, vtn.reports
            finally:
                proc.terminate()
                out, _ = await proc.communicate()
                await home.south.close()
                print(out.decode()[-6000:])  # shown when the test fails
            text = out.decode()
            assert proc.returncode == 0, text[-3000:]
            assert "name one utility link" not in text
            assert not served.violations, served.violations

    asyncio.run(asyncio.wait_for(main(), 150))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_three_links_at_once_an_island_from_one_a_limit_from_another_a_third_link_down(
    tmp_path: Path,
) -> None:
    """[sep2], [openadr2] and [openadr3] in one site file, the OpenADR 3 VTN unreachable all
    along: the 2030.5 export limit is kept, the 2.0b VTN's island request islands the home
    and it comes back when that event ends, with the 2030.5 limit still kept; the 2.0b VTN
    gets its opt-in, the 2030.5 server its Responses. A link that is down stops nothing."""

    async def main() -> None:
        sep2_pki = init_pki(tmp_path / "pki")
        utility = UtilityState(clock=time.time, registration_pin=PIN)
        for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
            utility.set_poll_rate(resource, 1)
        program = utility.add_program("feeder", primacy=1)
        recorder = Recorder()
        s = sep2_pki.server
        oadr2_pki = init_oadr2_pki(tmp_path / "oadr2-pki")
        tls2 = VtnTls(str(oadr2_pki.vtn.cert), str(oadr2_pki.vtn.key), str(oadr2_pki.ca))
        async with (
            UtilityServer(
                utility,
                cert=s.cert,
                key=s.key,
                chain=s.chain,
                serca=sep2_pki.serca,
                recorder=recorder,
            ) as server,
            ScriptedVtn(tls=tls2, poll_interval_s=0.5) as vtn2,
            SimulatedHome(speed=1.0, start=NOON) as served,
        ):
            served.physics.load.constant_w = 500.0
            tables = f"""
[sep2]
dcap = "{server.url("/dcap")}"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
chain = "pki/gateway-chain.pem"
serca = "pki/serca.pem"
pin = {PIN}
register = true

[openadr2]
vtn_url = "{vtn2.url}"
ven_name = "gateway-1"
poll_interval_s = 0.5
report_interval_s = 5
cert = "oadr2-pki/ven.pem"
key = "oadr2-pki/ven.key"
ca_file = "oadr2-pki/ca.pem"
vtn_fingerprint = "{oadr2_pki.vtn.fingerprint}"

[openadr3]
vtn = "https://127.0.0.1:{_closed_port()}/openadr3/3.0.1"
client_id = "gateway"
client_secret = "s3cret"
ven_name = "gateway-1"
poll_s = 0.5

[[openadr3.program]]
name = "feeder"
"""
            config = await _checked_site(tmp_path, served, tables, "sep2, openadr2, openadr3")
            proc, home = await _start_gateway(config, served)
            try:
                await _watch(home, lambda t: bool(t) and t[-1][0] is RelayPosition.CLOSED, 20)
                mrid = utility.add_control(
                    program,
                    start=utility.now() - 1,
                    duration=120,
                    base=DERControlBase(opModExpLimW=ActivePower(SEP2_EXPORT_W)),
                )
                limited = SEP2_EXPORT_W + TOLERANCE_W
                await _export_settles(served, below=limited, above=SEP2_EXPORT_W - 1000)
                deadline = time.monotonic() + 20
                while not vtn2.registrations:
                    assert time.monotonic() < deadline, "the 2.0b VEN never registered"
                    await asyncio.sleep(0.1)
                now = datetime.now(UTC)
                event_id = vtn2.add_event(
                    vtn2.registrations[-1].ven_id,
                    "LOAD_CONTROL",
                    "x-loadControlCapacity",
                    [(now, timedelta(seconds=ISLAND_S), 0.0)],
                )
                trace = await _watch(home, _islanded_and_back, 30)
                assert (RelayPosition.CLOSED, ChargerMode.GRID_FORMING) not in trace, trace
                # Back on the grid: the 2030.5 limit, still in force, is kept again.
                await _export_settles(served, below=limited, above=SEP2_EXPORT_W - 1000)
                assert [c.opt_type for c in vtn2.responses(event_id)][:1] == ["optIn"]
                codes = [r.status for _, r in recorder.responses(mrid)]
                assert codes[:2] == [1, 2], codes
                assert not {6, 7} & set(codes), codes
                assert {r.subject.upper() for _, r in recorder.responses()} == {mrid.upper()}
            finally:
                proc.terminate()
                out, _ = await proc.communicate()
                await home.south.close()
                print(out.decode()[-6000:])  # shown when the test fails
            assert proc.returncode == 0, out.decode()[-3000:]
            assert not served.violations, served.violations

    asyncio.run(asyncio.wait_for(main(), 150))
