"""The simulated home's Modbus servers (``gateway.sim.modbus``) over real loopback sockets.

The client side is plain pymodbus (``retries=0``, ``device_id=``) plus ``gateway.south.codec``,
so the servers are checked against code that did not write them. Each test runs its own event
loop with ``asyncio.run`` (the repository's style). Time is a stepped ``SimClock`` (speed 0):
nothing waits for the physics, except in the one test that runs the gateway's own drivers
(which poll in real time) against the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from gateway.core.island import ChargerMode, RelayPosition
from gateway.core.messages import ChargerCommand, DerLimit, RelayCommand, WriteConfirmed
from gateway.runtime.south import DeviceConfig, South
from gateway.sim import cli_home
from gateway.sim.clock import SimClock
from gateway.sim.modbus import DeviceSim, SimulatedHome
from gateway.south import codec, sunspec
from gateway.south.drivers.base import Confirmation
from gateway.south.profile import Point
from gateway.south.profiles import load_profile
from gateway.south.registers import Table

NOON = 1_800_000_000.0 - 1_800_000_000.0 % 86_400 + 12 * 3600  # PV at its peak


class Probe:
    """A pymodbus client that speaks one simulated device's profile, by role."""

    def __init__(self, client: Any, device: DeviceSim) -> None:
        self.client = client
        self.device = device
        self.unit = device.unit_id

    def point(self, role_or_point: str) -> Point:
        b = self.device.profile.roles.get(role_or_point)
        return self.device.profile.points[b.point if b is not None else role_or_point]

    async def registers(self, point: Point) -> list[int]:
        read = {
            Table.HOLDING: self.client.read_holding_registers,
            Table.INPUT: self.client.read_input_registers,
            Table.COIL: self.client.read_coils,
            Table.DISCRETE: self.client.read_discrete_inputs,
        }[point.table]
        rr = await read(point.address, count=point.count, device_id=self.unit)
        if rr.isError():
            raise Rejected(rr.exception_code)
        return [int(b) for b in rr.bits[: point.count]] if point.table.bits else rr.registers

    async def raw(self, role_or_point: str) -> int | float | str:
        p = self.point(role_or_point)
        return codec.unpack_raw(p, await self.registers(p))

    async def read(self, role_or_point: str) -> codec.Value | None:
        p = self.point(role_or_point)
        sf = None
        if p.scale_factor is not None:
            raw_sf = await self.raw(p.scale_factor)
            assert isinstance(raw_sf, int)
            sf = raw_sf
        return codec.decode(p, await self.registers(p), sf)

    async def category(self, role: str) -> str | None:
        raw = await self.raw(role)
        assert isinstance(raw, int)
        return self.device.profile.roles[role].category(raw)

    async def write(self, role_or_point: str, value: codec.Value) -> int | None:
        """Write an engineering value (or symbol); the Modbus exception code, or None."""
        p = self.point(role_or_point)
        sf = None
        if p.scale_factor is not None:
            raw_sf = await self.raw(p.scale_factor)
            assert isinstance(raw_sf, int)
            sf = raw_sf
        return await self.write_raw(p.address, codec.encode(p, value, sf), p.table)

    async def write_raw(
        self, address: int, words: list[int], table: Table = Table.HOLDING
    ) -> int | None:
        c = self.client
        if table is Table.COIL:
            rr = await c.write_coil(address, bool(words[0]), device_id=self.unit)
        elif len(words) == 1:
            rr = await c.write_register(address, words[0], device_id=self.unit)
        else:
            rr = await c.write_registers(address, words, device_id=self.unit)
        return int(rr.exception_code) if rr.isError() else None

    async def command(self, role: str) -> int | None:
        b = self.device.profile.roles[role]
        assert b.value is not None
        p = self.point(role)
        return await self.write_raw(p.address, codec.pack_raw(p, b.value), p.table)


class Rejected(Exception):  # noqa: N818 - a test helper
    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code}")
        self.code = code


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def probe(home: SimulatedHome, name: str, timeout: float = 1.0) -> AsyncIterator[Probe]:
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=_port(home.endpoints[name]), retries=0, timeout=timeout
    )
    assert await client.connect()
    try:
        yield Probe(client, home.device(name))
    finally:
        client.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def step(home: SimulatedHome, seconds: float) -> None:
    """Move simulated time and bring the physics along (requests would do it too)."""
    home.clock.advance(seconds)
    home.sync()


def stepped(**kw: Any) -> SimulatedHome:
    return SimulatedHome(clock=SimClock(NOON, speed=0), **kw)


# --- every shipped profile answers with physical values ------------------------------------


@pytest.mark.parametrize("charger", ["wallbox-quasar", "sigenergy-dc"])
def test_role_points_answer_with_physical_values(charger: str) -> None:
    async def body() -> None:
        async with stepped(charger=charger, der_battery=True) as home:
            physics = home.physics
            async with probe(home, "relay") as relay:
                assert await relay.category("relay_state") == "closed"
                assert await relay.read("grid_voltage") == pytest.approx(240.0)
                assert await relay.read("grid_frequency") == pytest.approx(60.0)
                assert await relay.read("load_voltage") == pytest.approx(240.0)
                net = await relay.read("net_power")
                assert net == pytest.approx(physics.meter().net_w, abs=1)
                assert net < 0  # noon: the PV exports
                assert await relay.read("current_l1") == pytest.approx(abs(net) / 240, abs=0.1)
                assert await relay.read("manufacturer") == "gateway-sim"
            async with probe(home, "charger") as ev:
                assert await ev.read("soc") == pytest.approx(80.0)
                assert await ev.category("state") == "stopped"
                assert await ev.read("power") == 0
            async with probe(home, "der") as der:
                assert await der.read("w_max") == pytest.approx(7_000)
                assert await der.read("power") == pytest.approx(physics.pv.power_w, abs=1)
                assert physics.pv.power_w == pytest.approx(7_000)
                assert await der.read("soc") == pytest.approx(50.0)
                assert await der.category("connected") == "connected"
            assert home.violations == []

    run(body)


def test_a_vendor_profile_with_other_conventions_is_served_by_the_same_code(
    tmp_path: Path,
) -> None:
    """Other addresses, tables, types, word order, scale, sign sense and state symbols; a coil
    for start/stop."""
    path = tmp_path / "other.toml"
    path.write_text(
        """
[profile]
name = "other-charger"
kind = "charger"
vendor = "Other"
model = "X"
unit_id = 7
max_charge_w = 11000
max_discharge_w = 11000

[points.run]
address = 3
table = "coil"
type = "bit"
access = "rw"
symbols = { OFF = 0, ON = 1 }

[points.setpoint]
address = 1000
type = "float32"
word_order = "little"
access = "rw"
units = "W"

[points.power]
address = 2000
table = "input"
type = "int32"
word_order = "little"
scale = 10
units = "W"

[points.soc]
address = 2004
table = "input"
type = "uint16"
scale = 0.01

[points.status]
address = 2005
table = "input"
type = "enum16"
symbols = { EMPTY = 9, READY = 3, IMPORTING = 4, EXPORTING = 5, BROKEN = 6 }

[roles]
start = { point = "run", value = "ON" }
stop = { point = "run", value = "OFF" }
power_setpoint = { point = "setpoint", positive = "discharge" }
power = { point = "power", positive = "discharge" }
soc = { point = "soc" }

[roles.state]
point = "status"
states.no_ev = ["EMPTY"]
states.stopped = ["READY"]
states.charging = ["IMPORTING"]
states.discharging = ["EXPORTING"]
states.fault = ["BROKEN"]
""",
        encoding="utf-8",
    )

    async def body() -> None:
        async with stepped(charger=load_profile(path)) as home:
            async with probe(home, "charger") as ev:
                assert ev.unit == 7
                assert await ev.read("soc") == pytest.approx(80.0)
                assert await ev.raw("status") == 3  # READY
                assert await ev.write("setpoint", 10_500.0) is None
                assert await ev.command("start") is None
                step(home, 10)
                assert home.physics.charger.power_w == pytest.approx(10_500.0)  # discharge
                assert await ev.read("power") == pytest.approx(10_500.0)
                assert await ev.category("state") == "discharging"
                assert await ev.raw("run") == 1
                assert await ev.write("setpoint", 20_000.0) == 3  # over the 11 kW rating
                assert await ev.command("stop") is None
                assert await ev.category("state") == "stopped"
                # Holding 2000 is not a point: this device keeps its measurements in input.
                assert await ev.write_raw(2000, [1]) == 2

    run(body)


# --- commands, sign conventions, refusals --------------------------------------------------


def test_relay_open_is_moving_until_the_latency_has_passed() -> None:
    async def body() -> None:
        async with stepped() as home:
            home.physics.relay.latency_s = 0.3
            async with probe(home, "relay") as relay:
                assert await relay.command("relay_open") is None
                assert await relay.category("relay_state") == "moving"
                assert (
                    await relay.raw("relay_command") == relay.point("relay_command").symbols["OPEN"]
                )
                step(home, 0.2)
                assert await relay.category("relay_state") == "moving"
                step(home, 0.2)
                assert await relay.category("relay_state") == "open"
                assert await relay.read("load_voltage") == pytest.approx(0.0)
                assert await relay.read("grid_voltage") == pytest.approx(240.0)
                assert await relay.read("net_power") == 0
                assert home.physics.relay.position is RelayPosition.OPEN

    run(body)


def test_relay_that_fails_to_open_reads_fault_with_the_fault_bit() -> None:
    async def body() -> None:
        async with stepped() as home:
            home.physics.relay.fail_to_open = True
            async with probe(home, "relay") as relay:
                await relay.command("relay_open")
                step(home, 1)
                assert await relay.category("relay_state") == "fault"
                faults = relay.point("relay_faults")
                assert await relay.raw("relay_faults") == 1 << faults.symbols["FAIL_TO_OPEN"]
                assert await relay.write("fault_reset", "RESET") is None
                assert await relay.raw("relay_faults") == 0
                assert await relay.category("relay_state") == "closed"

    run(body)


def test_quasar_discharge_setpoint_is_normalised_to_the_gateway_sign() -> None:
    async def body() -> None:
        async with stepped(charger="wallbox-quasar") as home:
            async with probe(home, "charger") as ev:
                for init in home.device("charger").profile.init:
                    assert await ev.write_raw(ev.point(init.point).address, [init.value]) is None
                assert await ev.write("power_setpoint", -3_000) is None  # negative = discharge
                assert await ev.command("start") is None
                step(home, 5)
                assert home.physics.charger.power_w == pytest.approx(3_000.0)
                assert await ev.read("power") == -3_000
                assert await ev.category("state") == "discharging"
                assert await ev.write("power_setpoint", 2_000) is None  # charge
                step(home, 5)
                assert await ev.category("state") == "charging"
                assert home.physics.charger.power_w == pytest.approx(-2_000.0)
                # Init writes are stored and read back.
                assert await ev.read("control_mode") == 1

    run(body)


def test_sigenergy_limits_carry_the_direction() -> None:
    async def body() -> None:
        async with stepped(charger="sigenergy-dc") as home:
            async with probe(home, "charger") as ev:
                assert await ev.write("charge_limit", 0) == 3  # "never write 0": minimum 500
                # The driver's order: floor the inactive limit, then raise the active one.
                assert await ev.write("charge_limit", 500) is None
                assert await ev.write("discharge_limit", 2_000) is None
                assert await ev.command("start") is None
                step(home, 5)
                assert await ev.read("power") == -2_000  # positive = charge
                assert await ev.category("state") == "discharging"
                assert await ev.command("stop") is None
                assert await ev.category("state") == "stopped"
                assert await ev.read("power") == 0

    run(body)


def test_absurd_and_read_only_writes_are_refused_and_change_nothing() -> None:
    async def body() -> None:
        async with stepped(charger="wallbox-quasar") as home:
            async with probe(home, "relay") as relay:
                assert await relay.write_raw(200, [7]) == 3  # no such relay command
                assert await relay.write_raw(202, [5]) == 3  # half of the 32-bit heartbeat
                assert await relay.write_raw(100, [1]) == 2  # relay_state is an input register
                assert await relay.category("relay_state") == "closed"
                assert home.physics.relay.moving_to is None
            async with probe(home, "charger") as ev:
                assert await ev.write("power_setpoint", 30_000) == 3  # over the 7.4 kW rating
                assert await ev.write_raw(ev.point("power").address, [100]) == 3  # read only
                assert await ev.write_raw(ev.point("action").address, [0]) == 3  # not a symbol
                assert await ev.read("power_setpoint") == 0
                assert home.physics.charger.setpoint_w == 0.0

    run(body)


# --- safety: the violations the simulator records ------------------------------------------


def test_forming_with_the_relay_closed_trips_the_charger_and_is_a_violation() -> None:
    async def body() -> None:
        async with stepped(charger="wallbox-quasar") as home:
            async with probe(home, "charger") as ev:
                assert await ev.command("grid_forming_on") is None
                assert home.violations == []  # arming backup mode alone is harmless
                assert await ev.command("start") is None
                assert await ev.category("state") == "fault"
                assert home.physics.charger.mode is ChargerMode.STOPPED
                assert len(home.violations) == 1
                assert "relay closed" in home.violations[0]

    run(body)


def test_the_safe_islanding_sequence_records_nothing_and_the_ev_carries_the_home() -> None:
    async def body() -> None:
        async with stepped(charger="sigenergy-dc") as home:
            home.physics.pv.limit_w = 0.0  # the gateway holds the PV at 0 W in an island
            home.physics.grid.fail()
            async with probe(home, "relay") as relay, probe(home, "charger") as ev:
                await relay.command("relay_open")
                step(home, 1)
                assert await relay.category("relay_state") == "open"
                await ev.command("grid_forming_on")
                await ev.command("start")
                assert await ev.category("state") == "forming"
                assert await relay.read("load_voltage") == pytest.approx(240.0)
                load = home.physics.load.demand(home.physics.now)
                assert await ev.read("power") == pytest.approx(-load, abs=1)  # + = charge
                # Reconnecting: stop, leave backup, then close.
                await ev.command("stop")
                await ev.command("grid_forming_off")
                home.physics.grid.restore()
                await relay.command("relay_close")
                step(home, 1)
                assert await relay.category("relay_state") == "closed"
            assert home.violations == []

    run(body)


def test_closing_the_relay_onto_a_forming_charger_is_a_violation() -> None:
    async def body() -> None:
        async with stepped() as home:
            async with probe(home, "relay") as relay, probe(home, "charger") as ev:
                await relay.command("relay_open")
                step(home, 1)
                await ev.command("grid_forming_on")
                await ev.command("start")
                await relay.command("relay_close")
                step(home, 1)
                assert await ev.category("state") == "fault"
            assert any("relay closed onto a forming charger" in v for v in home.violations)

    run(body)


# --- watchdogs -----------------------------------------------------------------------------


def test_charger_watchdog_stops_it_and_the_relay_watchdog_holds() -> None:
    async def body() -> None:
        async with stepped(charger="wallbox-quasar") as home:
            async with probe(home, "relay") as relay, probe(home, "charger") as ev:
                assert await ev.write("idle_timeout", 60) is None
                assert await relay.write("watchdog_timeout", 5) == 3  # the map allows 10-3600 s
                assert await relay.write("watchdog_timeout", 60) is None
                assert await relay.write("heartbeat", 1) is None
                await ev.write("power_setpoint", -2_000)
                await ev.command("start")
                step(home, 30)
                assert await ev.write("idle_timeout", 60) is None  # the keep-alive
                assert await relay.write("heartbeat", 1) is None  # unchanged: not a heartbeat
                step(home, 50)
                assert await ev.category("state") == "discharging"
                step(home, 20)
                assert await ev.category("state") == "stopped"
                assert home.physics.charger.watchdog_expired
                faults = relay.point("relay_faults").symbols
                assert await relay.raw("relay_faults") == 1 << faults["WATCHDOG_EXPIRED"]
                assert await relay.category("relay_state") == "closed"  # held, not moved
                assert await relay.write("heartbeat", 2) is None
                assert await relay.raw("relay_faults") == 0

    run(body)


# --- SunSpec --------------------------------------------------------------------------------


def test_the_sunspec_image_walks_binds_and_limits_the_pv() -> None:
    async def body() -> None:
        async with stepped(der_battery=True) as home:
            async with probe(home, "der") as der:
                walker = sunspec.walk()
                request = next(walker)
                try:
                    while True:
                        rr = await der.client.read_holding_registers(
                            request.address, count=request.count, device_id=der.unit
                        )
                        request = walker.send(None if rr.isError() else rr.registers)
                except StopIteration as done:
                    chain: sunspec.Chain = done.value
                assert [m.id for m in chain.models] == [1, 701, 702, 704, 713, 715]
                assert chain.ended
                points = sunspec.bind(chain, ["701.W", "704.WMaxLimPct", "713.SoC"])
                assert points["701.W"].address == der.point("power").address
                assert await der.write("limit_pct", 50.0) is None
                assert home.physics.pv.power_w == pytest.approx(7_000)  # not enabled yet
                assert await der.write("limit_enable", "ENABLED") is None
                assert await der.read("power") == pytest.approx(3_500, abs=1)
                assert await der.write("limit_enable", "DISABLED") is None
                assert await der.read("power") == pytest.approx(7_000, abs=1)
                assert await der.write("limit_pct", 150.0) == 3
                assert await der.write_raw(der.point("power").address, [0]) == 3  # 701.W is R
                # The battery follows 704.WSet (+ = generation) once enabled.
                assert await der.write("power_setpoint", -2_000) is None
                assert await der.write("setpoint_enable", "ENABLED") is None
                step(home, 60)
                assert home.physics.battery is not None
                assert home.physics.battery.power_w == pytest.approx(-2_000)
                assert await der.read("soc") > 50.0

    run(body)


def test_pysunspec2_reads_the_image_as_an_independent_oracle() -> None:
    async def body() -> None:
        async with stepped() as home:
            port = _port(home.endpoints["der"])

            def scan() -> tuple[list[int], float]:
                dev = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port)
                try:
                    dev.scan()
                    w = dev.models[701][0].W.cvalue
                    return sorted(k for k in dev.models if isinstance(k, int)), w
                finally:
                    dev.close()

            models, w = await asyncio.to_thread(scan)
            assert models == [1, 701, 702, 704, 715]
            assert w == pytest.approx(home.physics.pv.power_w, abs=1)

    run(body)


# --- transports and injected faults ---------------------------------------------------------


def test_rtu_framing_over_tcp() -> None:
    async def body() -> None:
        async with stepped(framer="rtu") as home:
            url = home.endpoints["relay"]
            assert url.startswith("rtu+tcp://127.0.0.1:")
            client = AsyncModbusSerialClient(
                port=f"socket://127.0.0.1:{_port(url)}",
                framer=FramerType.RTU,
                retries=0,
                timeout=1,
            )
            assert await client.connect()
            try:
                relay = Probe(client, home.device("relay"))
                assert await relay.category("relay_state") == "closed"
                assert await relay.command("relay_open") is None
                step(home, 1)
                assert await relay.category("relay_state") == "open"
            finally:
                client.close()

    run(body)


def test_single_client_refuses_a_second_connection() -> None:
    async def body() -> None:
        async with stepped(single_client=True) as home:
            async with probe(home, "charger") as first:
                assert await first.read("soc") == pytest.approx(80.0)
                second = AsyncModbusTcpClient(
                    "127.0.0.1", port=_port(home.endpoints["charger"]), retries=0, timeout=0.5
                )
                await second.connect()  # accepted by the kernel, then closed by the device
                try:
                    with pytest.raises((ConnectionException, ModbusIOException)):
                        await second.read_holding_registers(538, count=1, device_id=1)
                finally:
                    second.close()
                assert await first.read("soc") == pytest.approx(80.0)  # the first is unharmed
            async with probe(home, "charger") as third:  # the first is gone: room again
                assert await third.read("soc") == pytest.approx(80.0)

    run(body)


def test_disappear_closes_the_socket_and_reappear_keeps_the_settings() -> None:
    async def body() -> None:
        async with stepped() as home:
            async with probe(home, "charger", timeout=0.3) as ev:
                assert await ev.write("control_mode", "REMOTE") is None
                await home.disappear("charger")
                with pytest.raises((ConnectionException, ModbusIOException)):
                    await ev.read("soc")
            refused = AsyncModbusTcpClient(
                "127.0.0.1", port=_port(home.endpoints["charger"]), retries=0, timeout=0.5
            )
            assert not await refused.connect()
            refused.close()
            await home.reappear("charger")
            async with probe(home, "charger") as ev:
                assert await ev.read("control_mode") == 1
                assert await ev.read("soc") == pytest.approx(80.0)

    run(body)


def test_slow_exception_and_lie_faults_are_observable() -> None:
    async def body() -> None:
        async with stepped() as home:
            relay_sim = home.device("relay")
            async with probe(home, "relay", timeout=0.2) as relay:
                relay_sim.exception("grid_voltage", 4)
                with pytest.raises(Rejected) as err:
                    await relay.read("grid_voltage")
                assert err.value.code == 4
                assert await relay.read("grid_frequency") == pytest.approx(60.0)  # others fine
                relay_sim.exception("grid_voltage", None)
                assert await relay.read("grid_voltage") == pytest.approx(240.0)

                await relay.command("relay_open")
                step(home, 1)
                relay_sim.lie("relay_state", "CLOSED")  # the read-back disagrees
                assert await relay.category("relay_state") == "closed"
                assert home.physics.relay.position is RelayPosition.OPEN
                relay_sim.lie("relay_state", None)
                assert await relay.category("relay_state") == "open"

                relay_sim.slow(0.5)
                with pytest.raises(ModbusIOException):
                    await relay.read("grid_voltage")
            relay_sim.heal()
            async with probe(home, "relay") as relay:
                assert await relay.read("grid_voltage") == pytest.approx(240.0)

    run(body)


def test_shared_port_serves_every_unit_and_a_missing_one_answers_exception_11() -> None:
    async def body() -> None:
        async with stepped(shared_port=True) as home:
            assert len(set(home.endpoints.values())) == 1
            units = {d.name: d.unit_id for d in home.describe()}
            assert len(set(units.values())) == 3
            async with probe(home, "relay") as relay, probe(home, "charger") as ev:
                assert await relay.category("relay_state") == "closed"
                assert await ev.read("soc") == pytest.approx(80.0)
                await home.disappear("charger")
                with pytest.raises(Rejected) as err:
                    await ev.read("soc")
                assert err.value.code == 11
                assert await relay.category("relay_state") == "closed"
                await home.reappear("charger")
                assert await ev.read("soc") == pytest.approx(80.0)

    run(body)


def test_a_profile_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="charger needs charger"):
        SimulatedHome(charger="meter-collar-relay")


def test_cli_prints_endpoints_and_status_until_interrupted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    cli_home.add_arguments(parser)
    args = parser.parse_args(
        ["--port-base", "0", "--speed", "6000", "--status-every", "600", "--outage-at", "1200"]
    )

    async def body() -> int:
        asyncio.get_running_loop().call_later(0.6, os.kill, os.getpid(), signal.SIGINT)
        return await cli_home.run(args)

    assert asyncio.run(body()) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["relay", "meter-collar-relay"]
    assert out[1].split()[:2] == ["charger", "wallbox-quasar"]
    assert "tcp://127.0.0.1:" in out[2]
    assert any("grid DOWN" in line for line in out[3:])
    assert out[-1] == "stopped; violations recorded: 0"


def test_cli_reports_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli_home.add_arguments(parser)
    args = parser.parse_args(["--profile", "no-such-charger"])
    assert asyncio.run(cli_home.run(args)) == 2
    assert "no-such-charger" in capsys.readouterr().err


@pytest.mark.parametrize("strict", [False, True])
def test_reserved_registers_between_points_read_as_zero_unless_strict(strict: bool) -> None:
    async def body() -> None:
        async with stepped(strict_addresses=strict) as home:
            async with probe(home, "charger") as ev:
                # Quasar 81-83 and 88 are points; 84-87 are reserved.
                rr = await ev.client.read_holding_registers(81, count=8, device_id=1)
                if strict:
                    assert rr.isError()
                    assert rr.exception_code == 2
                else:
                    assert rr.registers[3:7] == [0, 0, 0, 0]
                assert await ev.write_raw(85, [1]) == 2  # never writable: no point there

    run(body)


def test_the_gateways_own_drivers_island_and_reconnect_the_simulated_home() -> None:
    """The south stack (transport, device, drivers) against the simulator, in real time."""

    async def body() -> None:
        async with SimulatedHome(charger="sigenergy-dc", start=NOON) as home:
            configs = [
                DeviceConfig(name, home.device(name).profile.name, url)
                for name, url in home.endpoints.items()
            ]
            south = South(
                configs,
                now=home.clock.now,
                audit=lambda _record: None,
                confirm=Confirmation(timeout_s=3.0, poll_s=0.02),
            )
            try:
                assert await south.connect() == []
                seen = await south.observe()
                assert seen.relay is not None
                assert seen.relay.position is RelayPosition.CLOSED
                assert seen.charger is not None
                assert seen.charger.soc_pct == pytest.approx(80.0)
                steps = [
                    DerLimit("1", "der", 0.0, 0.0, "island: no export"),
                    ChargerCommand("2", ChargerMode.STOPPED, 0.0, "island: stop"),
                    RelayCommand("3", RelayPosition.OPEN, "island: open"),
                    ChargerCommand("4", ChargerMode.GRID_FORMING, 0.0, "island: form"),
                    ChargerCommand("5", ChargerMode.STOPPED, 0.0, "reconnect: stop"),
                    RelayCommand("6", RelayPosition.CLOSED, "reconnect: close"),
                    ChargerCommand("7", ChargerMode.GRID_FOLLOWING, -1_500.0, "charge"),
                ]
                for cmd in steps:
                    result = await south.execute(cmd)
                    assert isinstance(result, WriteConfirmed), result
                    if cmd.id == "4":
                        formed = await south.observe()
                        assert formed.charger is not None
                        assert formed.charger.mode is ChargerMode.GRID_FORMING
                assert home.physics.charger.setpoint_w == pytest.approx(-1_500.0)
                assert home.violations == []
            finally:
                await south.close()

    run(body)
