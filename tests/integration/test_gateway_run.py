"""``gateway run SITE.toml`` as a person runs it, against a real 2030.5 server (the "done when").

The utility server and the simulated home run in this process (so the test can script them
and read what they recorded); the gateway is the installed command in a subprocess, with a
site file naming the home's devices at the addresses the home listens on, the DeviceCapability
URL, a certificate, a key, the SERCA and the registration PIN.
It registers in band, follows a disconnect control (its DERStatus shows the relay open while
the control runs), and answers 1, 2, 3.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from gateway.demo.site_home import site_file
from gateway.north.sep2 import codec
from gateway.north.sep2.der_resources import ConnectStatus, DERStatus
from gateway.north.sep2.model import DERControlBase
from gateway.north.sep2.pki import init_pki
from gateway.runtime.run_config import RunConfigError, load
from gateway.sim.modbus import SimulatedHome
from gateway.sim.utility import Recorder, UtilityServer, UtilityState

GATEWAY = Path(sys.executable).with_name("gateway")
PIN = 111115


def _write_config(tmp: Path, dcap: str, home: SimulatedHome) -> Path:
    config = tmp / "run.toml"
    config.write_text(
        site_file(home, period_s=0.2, delay_s=1)
        + f"""
[sep2]
dcap = "{dcap}"
cert = "pki/gateway.pem"
key = "pki/gateway.key"
chain = "pki/gateway-chain.pem"
serca = "pki/serca.pem"
pin = {PIN}
register = true
""",
        encoding="utf-8",
    )
    return config


def _statuses(recorder: Recorder) -> list[int]:
    out = []
    for x in recorder.requests("PUT", "/edev/"):
        if x.path.endswith("/ders"):
            status = codec.decode(x.body)
            assert isinstance(status, DERStatus)
            if status.genConnectStatus is not None:
                out.append(int(status.genConnectStatus.value))
    return out


def test_gateway_run_registers_follows_a_control_and_reports_back(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki")
    state = UtilityState(clock=lambda: time.time() + 3600, registration_pin=PIN)
    for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
        state.set_poll_rate(resource, 1)
    program = state.add_program("feeder", primacy=1)
    recorder = Recorder()
    s = pki.server

    async def main() -> str:
        server = UtilityServer(
            state, cert=s.cert, key=s.key, chain=s.chain, serca=pki.serca, recorder=recorder
        )
        async with server, SimulatedHome(speed=1.0) as home:
            config = _write_config(tmp_path, server.url("/dcap"), home)
            proc = await asyncio.create_subprocess_exec(
                str(GATEWAY),
                "run",
                str(config),
                "--for",
                "40",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            deadline = time.monotonic() + 20
            while state.find_end_device(pki.device("gateway").lfdi) is None:
                assert time.monotonic() < deadline, "the gateway never registered"
                await asyncio.sleep(0.1)
            edev = state.find_end_device(pki.device("gateway").lfdi)
            assert edev is not None
            # The EndDevice it POSTed says what it is (2030.5 DeviceCategoryType; DRA-01):
            # this home's V2H charger is an EVSE (bit 17), its PV a PV system (bit 21).
            assert edev.device_category == "00220000"
            state.set_post_rate(1)
            mrid = state.add_control(
                program,
                start=state.now() + 2,
                duration=4,
                base=DERControlBase(opModConnect=False),
            )
            while [c for c, _ in recorder.responses_for(mrid)] != [1, 2, 3]:
                assert time.monotonic() < deadline + 15, recorder.responses_for(mrid)
                await asyncio.sleep(0.2)
            while not (_statuses(recorder)[-1] & ConnectStatus.CONNECTED):
                assert time.monotonic() < deadline + 25, "never reported connected again"
                await asyncio.sleep(0.2)
            proc.terminate()
            out, _ = await proc.communicate()
            return out.decode()

    output = asyncio.run(asyncio.wait_for(main(), 60))
    assert "following https://127.0.0.1:" in output
    assert recorder.requests("POST", path="/edev", status=201), "in-band registration"
    bits = _statuses(recorder)
    assert any(b & ConnectStatus.CONNECTED == 0 for b in bits), "DERStatus while islanded"
    assert bits[-1] & ConnectStatus.CONNECTED, "connected again after the control"


DEVICES = """
[site]
nominal_voltage_v = 240
frequency_hz = 60
phases = "split"
main_breaker_a = 200
busbar_a = 200
period_s = 0
[[device]]
name = "relay"
role = "meter_relay"
profile = "meter-collar-relay"
transport = "tcp://127.0.0.1:1"
[[device]]
name = "ev"
role = "charger"
profile = "wallbox-quasar"
transport = "tcp://127.0.0.1:2"
max_discharge_w = 1
max_charge_w = 1
"""


def test_a_bad_config_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[sep2]\ndcap = "http://utility/dcap"\ncert = "nope.pem"\npin = "111115"\n' + DEVICES,
        encoding="utf-8",
    )
    try:
        load(config)
    except RunConfigError as e:
        text = str(e)
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("the config was accepted")
    # The shape first: a wrong type and a value out of range, each with its line.
    for expected in ("sep2.pin: expected an integer", "site.period_s: 0 is below the minimum"):
        assert expected in text
    config.write_text(
        '[sep2]\ndcap = "http://utility/dcap"\ncert = "nope.pem"\n'
        + DEVICES.replace("period_s = 0", "period_s = 1"),
        encoding="utf-8",
    )
    with pytest.raises(RunConfigError) as info:
        load(config)
    text = str(info.value)
    for expected in (
        "sep2.dcap: 2030.5 runs over TLS",
        "sep2.cert:",
        "sep2.key: missing",
        "sep2.serca: missing",
    ):
        assert expected in text


def test_a_config_names_the_dcap_or_the_server_to_discover_it_from_not_both(
    tmp_path: Path,
) -> None:
    init_pki(tmp_path / "pki")
    common = 'cert = "pki/gateway.pem"\nkey = "pki/gateway.key"\nserca = "pki/serca.pem"\n'
    config = tmp_path / "run.toml"
    site = DEVICES.replace("period_s = 0", "period_s = 1")
    refused = (
        ('dcap = "https://u/dcap"\nserver = "https://u"\n', "not both"),
        ("", "not both"),
        ('server = "http://u"\n', "sep2.server: 2030.5 runs over TLS"),
    )
    for head, problem in refused:
        config.write_text("[sep2]\n" + head + common + site, encoding="utf-8")
        with pytest.raises(RunConfigError, match=problem):
            load(config)
    config.write_text('[sep2]\nserver = "https://utility.example:8443"\n' + common + site, "utf-8")
    loaded = load(config)
    assert loaded.sep2 is not None
    assert loaded.sep2.dcap is None
    assert loaded.sep2.base_url == "https://utility.example:8443"
