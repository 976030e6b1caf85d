"""gateway.south.transport against real pymodbus servers on loopback.

Each test runs its own event loop with ``asyncio.run`` (the repository's style); servers come
from the factories in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time

import pytest
from pymodbus import FramerType
from pymodbus.constants import ExcCodes

from gateway.south import transport
from gateway.south.errors import DeviceRejected, DeviceTimeout, DeviceUnreachable
from gateway.south.registers import Pacing, Table
from gateway.south.transport import (
    Backoff,
    Endpoint,
    EndpointConfig,
    Scheme,
    Transports,
    parse_endpoint,
)

PACE = Pacing(delay_s=0.0, timeout_s=1.0)
WHO = {"device": "charger unit 1", "point": "setpoint_w"}


def endpoint(url: str, *, min_s: float = 0.05, max_s: float = 0.2, **kw) -> Endpoint:
    config = EndpointConfig.parse(url, reconnect_min_s=min_s, reconnect_max_s=max_s)
    return Endpoint(config, **kw)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A SimDevice action hook that logs (function code, address, values) and can stall."""

    def __init__(self, *, stall_at: int | None = None, stall_s: float = 0.0) -> None:
        self.calls: list[tuple[int, int, list[int] | None]] = []
        self.stall_at = stall_at
        self.stall_s = stall_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.times: list[float] = []

    async def hook(self, fc, _start, address, _count, _regs, values) -> ExcCodes | None:
        if fc in (5, 6, 15, 16) and values is None:
            return None  # the server reading back what it wrote, to build its answer
        self.calls.append((fc, address, None if values is None else [int(v) for v in values]))
        self.times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if address == self.stall_at:
                await asyncio.sleep(self.stall_s)
            else:
                await asyncio.sleep(0.001)  # long enough for pipelined requests to overlap
        finally:
            self.in_flight -= 1
        if values is not None and 999 in values:
            return ExcCodes.ILLEGAL_VALUE
        return None


# -- URLs ------------------------------------------------------------------------------------


def test_parse_endpoint_reads_each_scheme() -> None:
    tcp = parse_endpoint("tcp://192.0.2.7:1502")
    assert (tcp.scheme, tcp.host, tcp.port) == (Scheme.TCP, "192.0.2.7", 1502)
    assert parse_endpoint("tcp://wallbox.local").port == 502
    gw = parse_endpoint("rtu+tcp://10.0.0.5:4001")
    assert (gw.scheme, gw.host, gw.port) == (Scheme.RTU_TCP, "10.0.0.5", 4001)
    rtu = parse_endpoint("rtu:///dev/ttyUSB0?baudrate=19200&parity=e&stopbits=2")
    assert (rtu.scheme, rtu.host, rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize) == (
        Scheme.RTU,
        "/dev/ttyUSB0",
        19200,
        "E",
        2,
        8,
    )
    assert parse_endpoint("rtu:///dev/ttyAMA0").baudrate == 9600


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("modbus://h:502", "unknown scheme 'modbus'"),
        ("rtu+tcp://gw.local", "needs an explicit port"),
        ("tcp://h:99999", "out of range"),
        ("tcp://:502", "no host"),
        ("tcp://h:502/holding", "no path or query"),
        ("rtu://", "no serial device path"),
        ("rtu://host/dev/ttyUSB0", "three slashes"),
        ("rtu:///dev/ttyUSB0?speed=9600", "unknown serial option 'speed'"),
        ("rtu:///dev/ttyUSB0?parity=X", "parity must be N, E or O"),
        ("rtu:///dev/ttyUSB0?baudrate=fast", "must be integers"),
        ("rtu:///dev/ttyUSB0?stopbits=3", "stopbits must be 1 or 2"),
    ],
)
def test_parse_endpoint_rejects_bad_urls_saying_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="endpoint URL") as caught:
        parse_endpoint(url)
    assert says in str(caught.value)
    assert repr(url) in str(caught.value)


def test_reconnect_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="reconnect_min_s <= reconnect_max_s"):
        EndpointConfig.parse("tcp://h", reconnect_min_s=5, reconnect_max_s=1)
    with pytest.raises(ValueError, match="0 < reconnect_min_s"):
        EndpointConfig.parse("tcp://h", reconnect_min_s=0)


# -- backoff (no I/O, no sleeping) -----------------------------------------------------------


def test_backoff_is_exponential_jittered_and_capped() -> None:
    backoff = Backoff(0.1, 1.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert [backoff.ceiling(n) for n in range(1, 8)] == pytest.approx(ceilings)
    reference = random.Random(7)
    assert delays == [reference.uniform(0.1, c) for c in ceilings]
    assert all(0.1 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays[3:])) == 4  # jittered: capped delays still differ
    backoff.reset()
    assert backoff.next_delay() <= 0.2
    assert backoff.ceiling(10_000) == 1.0  # no overflow after a long outage


def test_calls_inside_the_backoff_window_fail_fast_without_connecting(closing_server) -> None:
    async def main() -> None:
        async with closing_server() as dev:
            clock = FakeClock(100.0)
            ep = endpoint(f"tcp://127.0.0.1:{dev.port}", min_s=1.0, max_s=8.0,
                          rng=random.Random(3), clock=clock)  # fmt: skip
            expected = random.Random(3)
            d1, d2 = expected.uniform(1.0, 2.0), expected.uniform(1.0, 4.0)

            with pytest.raises(DeviceUnreachable, match="another client"):
                await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            assert dev.accepted == 1
            assert ep.next_attempt_at == pytest.approx(100.0 + d1)

            with pytest.raises(DeviceUnreachable) as fast:
                await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            assert f"next attempt in {d1:.2f} s" in str(fast.value)
            assert "after 1 failure(s)" in str(fast.value)
            assert dev.accepted == 1  # no connection attempt inside the window

            clock.now = 100.0 + d1 + 0.001
            with pytest.raises(DeviceUnreachable, match="closed the connection"):
                await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            assert dev.accepted == 2
            assert ep.next_attempt_at == pytest.approx(clock.now + d2)  # the window doubled

            clock.now += d2 - 0.01
            with pytest.raises(DeviceUnreachable, match="reconnect backoff"):
                await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            assert dev.accepted == 2
            assert (ep.stats.requests, ep.stats.errors, ep.stats.fast_fails) == (4, 4, 2)
            await ep.close()

    asyncio.run(main())


# -- reads and writes ------------------------------------------------------------------------


def test_tcp_reads_and_writes_every_table_with_the_right_function_codes(
    modbus_server, sim_device
) -> None:
    rec = Recorder()

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            assert await ep.read(1, Table.HOLDING, 2, 3, pacing=PACE, **WHO) == [1002, 1003, 1004]
            await ep.write(1, Table.HOLDING, 2, [7], pacing=PACE, **WHO)
            await ep.write(1, Table.HOLDING, 3, [8, 65535], pacing=PACE, **WHO)
            await ep.write(1, Table.HOLDING, 5, [9], single=False, pacing=PACE, **WHO)
            assert await ep.read(1, Table.HOLDING, 2, 4, pacing=PACE, **WHO) == [7, 8, 65535, 9]
            assert await ep.read(1, Table.INPUT, 0, 2, pacing=PACE, **WHO) == [1500, 1501]
            await ep.write(1, Table.COIL, 3, [1], pacing=PACE, **WHO)
            await ep.write(1, Table.COIL, 5, [1, 0, 1], pacing=PACE, **WHO)
            assert await ep.read(1, Table.COIL, 2, 7, pacing=PACE, **WHO) == [0, 1, 0, 1, 0, 1, 0]
            assert await ep.read(1, Table.DISCRETE, 0, 3, pacing=PACE, **WHO) == [1, 0, 1]
            assert ep.connected
            assert ep.stats.requests == 10
            assert ep.stats.errors == 0
            await ep.close()
            assert not ep.connected

    asyncio.run(main())
    assert [fc for fc, _, _ in rec.calls] == [3, 6, 16, 16, 3, 4, 5, 15, 1, 2]
    assert rec.calls[2] == (16, 3, [8, 65535])
    assert rec.calls[7] == (15, 5, [1, 0, 1])


def test_rtu_framing_over_tcp(modbus_server, sim_device) -> None:
    async def main() -> None:
        async with modbus_server(sim_device(3), framer=FramerType.RTU) as srv:
            ep = endpoint(f"rtu+tcp://127.0.0.1:{srv.port}")
            await ep.write(3, Table.HOLDING, 0, [4321, 1], pacing=PACE, **WHO)
            assert await ep.read(3, Table.HOLDING, 0, 3, pacing=PACE, **WHO) == [4321, 1, 3002]
            assert await ep.read(3, Table.INPUT, 1, 1, pacing=PACE, **WHO) == [3501]
            with pytest.raises(DeviceRejected) as rejected:
                await ep.read(3, Table.HOLDING, 400, 1, pacing=PACE, **WHO)
            assert rejected.value.code == 2
            await ep.close()

    asyncio.run(main())


def test_rtu_on_a_serial_port(modbus_server, sim_device, pty_bridge) -> None:
    async def main() -> None:
        async with (
            modbus_server(sim_device(5), framer=FramerType.RTU) as srv,
            pty_bridge(srv.port) as tty,
        ):
            # A pty refuses parity settings with termios.error, which pymodbus lets through.
            bad = endpoint(f"rtu://{tty}?parity=E")
            with pytest.raises(DeviceUnreachable, match=f"cannot open serial port {tty}: "):
                await bad.read(5, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            await bad.close()
            # pymodbus leaves the half-opened port (and its exclusive lock) to the garbage
            # collector when the settings are refused; collect it so the next open succeeds.
            gc.collect()
            ep = endpoint(f"rtu://{tty}?baudrate=19200")
            await ep.write(5, Table.HOLDING, 1, [77], pacing=PACE, **WHO)
            assert await ep.read(5, Table.HOLDING, 0, 3, pacing=PACE, **WHO) == [5000, 77, 5002]
            await ep.close()

    asyncio.run(main())


def test_missing_serial_port_is_unreachable_and_named() -> None:
    async def main() -> None:
        ep = endpoint("rtu:///dev/no-such-modbus-port")
        with pytest.raises(DeviceUnreachable) as caught:
            await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
        assert "cannot open serial port /dev/no-such-modbus-port" in str(caught.value)
        assert str(caught.value).startswith("charger unit 1: setpoint_w: ")
        await ep.close()

    asyncio.run(main())


def test_two_units_behind_one_endpoint_share_one_connection(modbus_server, sim_device) -> None:
    async def main() -> None:
        async with modbus_server([sim_device(1), sim_device(2)]) as srv:
            transports = Transports()
            url = f"tcp://127.0.0.1:{srv.port}"
            meter, charger = transports.endpoint(url), transports.endpoint(url + "/")
            assert meter is charger
            for _ in range(3):
                assert await meter.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
                assert await charger.read(2, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [2000]
            assert srv.connections == 1
            assert meter.stats.connects == 1
            await transports.close()
            await asyncio.sleep(0.05)
            assert srv.disconnections == 1

    asyncio.run(main())


def test_transports_refuse_one_device_with_two_settings(modbus_server, sim_device) -> None:
    async def main() -> None:
        transports = Transports()
        first = transports.endpoint("tcp://127.0.0.1:1502")
        assert transports.endpoint(EndpointConfig.parse("tcp://127.0.0.1:1502")) is first
        with pytest.raises(ValueError, match="different settings"):
            transports.endpoint("rtu+tcp://127.0.0.1:1502")
        with pytest.raises(ValueError, match="different settings"):
            transports.endpoint(EndpointConfig.parse("tcp://127.0.0.1:1502", reconnect_max_s=9))
        assert list(transports) == [first]
        await transports.close()
        with pytest.raises(DeviceUnreachable, match="is closed"):
            await first.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)

    asyncio.run(main())


def test_concurrent_requests_are_serialised_in_order(modbus_server, sim_device) -> None:
    rec = Recorder()

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            await asyncio.gather(
                *(ep.write(1, Table.HOLDING, 0, [n], pacing=PACE, **WHO) for n in range(50))
            )
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [49]
            assert ep.stats.errors == 0
            assert srv.connections == 1
            await ep.close()

    asyncio.run(main())
    assert [v for fc, _, v in rec.calls if fc == 6] == [[n] for n in range(50)]
    assert rec.max_in_flight == 1


def test_pacing_delay_spaces_every_request(modbus_server, sim_device) -> None:
    rec = Recorder()
    paced = Pacing(delay_s=0.04, timeout_s=1.0)

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            await asyncio.gather(
                *(ep.read(1, Table.HOLDING, n, 1, pacing=paced, **WHO) for n in range(4))
            )
            await ep.close()

    asyncio.run(main())
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.039


# -- failures --------------------------------------------------------------------------------


def test_exception_response_is_rejected_and_the_connection_stays(modbus_server, sim_device) -> None:
    async def main() -> None:
        async with modbus_server(sim_device(1, Recorder().hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            with pytest.raises(DeviceRejected) as unknown:
                await ep.read(1, Table.HOLDING, 300, 2, pacing=PACE, **WHO)
            assert unknown.value.code == 2
            assert str(unknown.value) == (
                "charger unit 1: setpoint_w: "
                "device answered Modbus exception 2 (ILLEGAL DATA ADDRESS)"
            )
            with pytest.raises(DeviceRejected) as refused:
                await ep.write(1, Table.HOLDING, 0, [999], pacing=PACE, **WHO)
            assert refused.value.code == 3
            assert "ILLEGAL DATA VALUE" in str(refused.value)
            assert ep.connected
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
            assert srv.connections == 1
            assert (ep.stats.errors, ep.stats.rejected, ep.stats.timeouts) == (2, 2, 0)
            await ep.close()

    asyncio.run(main())


def test_hung_device_times_out_drops_the_connection_and_recovers_after_backoff(
    modbus_server, sim_device
) -> None:
    rec = Recorder(stall_at=7, stall_s=0.6)
    quick = Pacing(timeout_s=0.2)

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}", min_s=0.05, max_s=0.2)
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=quick, **WHO) == [1000]
            started = time.monotonic()
            with pytest.raises(DeviceTimeout) as caught:
                await ep.read(1, Table.HOLDING, 7, 1, pacing=quick, **WHO)
            elapsed = time.monotonic() - started
            assert 0.19 <= elapsed < 0.4
            assert "FC03 read of 1 at 7: no answer within 0.2 s; connection dropped" in str(
                caught.value
            )
            assert not ep.connected
            await asyncio.sleep(0.02)
            assert srv.disconnections == 1  # the device saw the connection go

            with pytest.raises(DeviceUnreachable, match="reconnect backoff"):
                await ep.read(1, Table.HOLDING, 0, 1, pacing=quick, **WHO)
            assert ep.next_attempt_at is not None
            await asyncio.sleep(max(0.0, ep.next_attempt_at - time.monotonic()) + 0.01)
            assert await ep.read(1, Table.HOLDING, 1, 1, pacing=quick, **WHO) == [1001]
            assert srv.connections == 2
            assert ep.next_attempt_at is None  # success reset the backoff
            assert (ep.stats.timeouts, ep.stats.reconnects) == (1, 1)
            await ep.close()

    asyncio.run(main())
    assert [a for fc, a, _ in rec.calls if fc == 3].count(7) == 1  # never resent


def test_no_request_is_ever_resent(modbus_server, sim_device, monkeypatch) -> None:
    # Let pymodbus's own timeout fire first: with retries > 0 it would now resend the read.
    monkeypatch.setattr(transport, "_LIBRARY_TIMEOUT_S", 0.1)
    rec = Recorder(stall_at=7, stall_s=0.3)

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            with pytest.raises(DeviceTimeout, match="No response received"):
                await ep.read(1, Table.HOLDING, 7, 1, pacing=PACE, **WHO)
            assert not ep.connected
            await asyncio.sleep(0.4)  # a resend would have reached the server by now
            await ep.close()

    asyncio.run(main())
    assert [a for fc, a, _ in rec.calls if fc == 3] == [7]


def test_connection_dropped_while_idle_is_reopened_without_an_error(
    modbus_server, sim_device
) -> None:
    async def main() -> None:
        async with modbus_server(sim_device(1)) as first:
            port = first.port
            ep = endpoint(f"tcp://127.0.0.1:{port}")
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
        async with modbus_server(sim_device(1), port=port) as second:
            await asyncio.sleep(0.02)
            assert not ep.connected
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
            assert second.connections == 1
            assert (ep.stats.errors, ep.stats.reconnects) == (0, 1)
            await ep.close()

    asyncio.run(main())


@pytest.mark.parametrize("deadline_too", [False, True])
def test_cancelled_caller_drops_the_connection_without_backoff(
    modbus_server, sim_device, deadline_too: bool
) -> None:
    # deadline_too: the deadline's timer fires in the same instant as the caller's cancel. It
    # cancels the request's task as well (one timer, no asyncio.timeout), and the caller's
    # cancellation still wins: CancelledError, not DeviceTimeout, and no backoff.
    rec = Recorder(stall_at=7, stall_s=0.5)

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            ep = endpoint(f"tcp://127.0.0.1:{srv.port}")
            task = asyncio.create_task(ep.read(1, Table.HOLDING, 7, 1, pacing=PACE, **WHO))
            await asyncio.sleep(0.1)
            if deadline_too:
                link = ep._link
                assert link is not None
                assert link.waiter is task
                link.expire()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not ep.connected
            assert ep.next_attempt_at is None
            assert ep.stats.timeouts == 0
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
            assert srv.connections == 2
            await ep.close()

    asyncio.run(main())


def test_closing_the_endpoint_ends_a_request_in_flight(modbus_server, sim_device) -> None:
    rec = Recorder(stall_at=7, stall_s=0.5)

    async def main() -> None:
        async with modbus_server(sim_device(1, rec.hook)) as srv:
            transports = Transports()
            ep = transports.endpoint(f"tcp://127.0.0.1:{srv.port}")
            task = asyncio.create_task(ep.read(1, Table.HOLDING, 7, 1, pacing=PACE, **WHO))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await transports.close()
            with pytest.raises(DeviceUnreachable) as caught:
                await task
            assert time.monotonic() - started < 0.1
            assert str(caught.value).endswith(f"endpoint {ep.url} was closed")
            assert ep.next_attempt_at is None  # shutting down is not a device failure

    asyncio.run(main())


def test_server_stopped_mid_session_then_restarted(modbus_server, sim_device) -> None:
    async def main() -> None:
        srv_cm = modbus_server(sim_device(1))
        srv = await srv_cm.__aenter__()
        port = srv.port
        url = f"tcp://127.0.0.1:{port}"
        ep = endpoint(url, min_s=0.05, max_s=0.2)
        try:
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
        finally:
            await srv_cm.__aexit__(None, None, None)
        await asyncio.sleep(0.02)
        with pytest.raises(DeviceUnreachable) as gone:
            await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
        assert f"cannot connect to {url}: connection refused" in str(gone.value)
        async with modbus_server(sim_device(1), port=port) as again:
            with pytest.raises(DeviceUnreachable, match="reconnect backoff"):
                await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO)
            await asyncio.sleep(0.11)  # the first window is at most 2 * min_s
            assert await ep.read(1, Table.HOLDING, 0, 1, pacing=PACE, **WHO) == [1000]
            assert again.connections == 1
            assert ep.stats.reconnects == 1
            await ep.close()

    asyncio.run(main())


def test_connection_refused_names_the_url(free_port) -> None:
    async def main() -> None:
        url = f"tcp://127.0.0.1:{free_port()}"
        ep = endpoint(url)
        started = time.monotonic()
        with pytest.raises(DeviceUnreachable) as caught:
            await ep.write(1, Table.HOLDING, 0, [1], pacing=PACE, **WHO)
        assert time.monotonic() - started < 0.5
        assert str(caught.value) == (
            f"charger unit 1: setpoint_w: cannot connect to {url}: "
            "connection refused or host unreachable"
        )
        assert caught.value.device == "charger unit 1"
        await ep.close()

    asyncio.run(main())


@pytest.mark.parametrize("delay_s", [0.0, 0.05])  # 0.05: closed before the request is sent
def test_device_that_closes_at_once_is_reported_as_held_by_another_client(
    closing_server, delay_s
) -> None:
    async def main() -> None:
        async with closing_server() as dev:
            ep = endpoint(f"tcp://127.0.0.1:{dev.port}")
            started = time.monotonic()
            with pytest.raises(DeviceUnreachable) as caught:
                await ep.read(1, Table.HOLDING, 0, 1, pacing=Pacing(delay_s=delay_s), **WHO)
            assert time.monotonic() - started < 0.5  # not a timeout
            assert dev.accepted == 1
            text = str(caught.value)
            assert "FC03 read of 1 at 0: the device closed the connection" in text
            assert "another client may be holding it" in text
            assert not ep.connected
            await ep.close()

    asyncio.run(main())


def test_bad_requests_are_refused_before_any_io() -> None:
    async def main() -> None:
        ep = endpoint("rtu+tcp://127.0.0.1:1")
        cases = [
            (lambda: ep.write(1, Table.INPUT, 0, [1], pacing=PACE, **WHO), "read-only"),
            (lambda: ep.write(1, Table.DISCRETE, 0, [1], pacing=PACE, **WHO), "read-only"),
            (lambda: ep.read(1, Table.HOLDING, 0, 126, pacing=PACE, **WHO), "not in 1..125"),
            (lambda: ep.read(1, Table.COIL, 0, 0, pacing=PACE, **WHO), "not in 1..2000"),
            (lambda: ep.read(1, Table.HOLDING, 65535, 2, pacing=PACE, **WHO), "outside 0..65535"),
            (lambda: ep.write(1, Table.HOLDING, 0, [70000], pacing=PACE, **WHO), "0..65535"),
            (lambda: ep.write(1, Table.COIL, 0, [2], pacing=PACE, **WHO), "0..1"),
            (
                lambda: ep.write(1, Table.HOLDING, 0, [1, 2], single=True, pacing=PACE, **WHO),
                "single",
            ),
            (
                lambda: ep.read(0, Table.HOLDING, 0, 1, pacing=PACE, **WHO),
                "unit id 0 not in 1..247",
            ),
        ]
        for call, says in cases:
            with pytest.raises(ValueError) as caught:
                await call()
            assert says in str(caught.value)
        assert ep.stats.requests == 0
        await ep.close()

    asyncio.run(main())
