"""Real Modbus servers on loopback for the south-side integration tests.

The fixtures return factories, because every test runs its own event loop (``asyncio.run``)
and a server must be started inside it. Servers are pymodbus's own (``ModbusTcpServer`` with
``SimDevice``), so the client is tested against an implementation it did not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

HOLDING = 20  # registers per table served by _sim_device()
BITS = 16


def _sim_device(unit: int, action: Any = None) -> SimDevice:
    """One unit with four separate tables; values differ per unit and per table:
    holding ``unit*1000 + i``, input ``unit*1000 + 500 + i``, coils all off, discrete inputs
    alternating on/off. Addresses beyond the tables answer exception 2."""
    return SimDevice(
        unit,
        simdata=(
            [SimData(0, values=[False] * BITS, datatype=DataType.BITS)],
            [SimData(0, values=[i % 2 == 0 for i in range(BITS)], datatype=DataType.BITS)],
            [
                SimData(
                    0, values=[unit * 1000 + i for i in range(HOLDING)], datatype=DataType.REGISTERS
                )
            ],
            [
                SimData(
                    0,
                    values=[unit * 1000 + 500 + i for i in range(HOLDING)],
                    datatype=DataType.REGISTERS,
                )
            ],
        ),
        action=action,
    )


@dataclass
class Server:
    """A running server; ``events`` is its trace_connect log (True: a client connected)."""

    port: int
    inner: Any
    events: list[bool] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return self.events.count(True)

    @property
    def disconnections(self) -> int:
        return self.events.count(False)

    async def stop(self) -> None:
        await self.inner.shutdown()
        # Let the closed transports run their connection_lost callbacks before the loop ends.
        for _ in range(3):
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def _modbus_server(
    devices: SimDevice | Sequence[SimDevice],
    *,
    framer: FramerType = FramerType.SOCKET,
    port: int = 0,
) -> AsyncIterator[Server]:
    events: list[bool] = []
    inner = ModbusTcpServer(
        devices if isinstance(devices, SimDevice) else list(devices),
        framer=framer,
        address=("127.0.0.1", port),
        trace_connect=events.append,
    )
    await inner.serve_forever(background=True)
    server = Server(inner.transport.sockets[0].getsockname()[1], inner, events)
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class ClosingServer:
    """Accepts every connection and closes it at once, as a device already held by another
    client does."""

    port: int
    accepted: int = 0


@contextlib.asynccontextmanager
async def _closing_server() -> AsyncIterator[ClosingServer]:
    state = ClosingServer(0)

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def _free_port() -> int:
    """A loopback port nothing listens on (bound and released; refused until someone binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def _pty_bridge(tcp_port: int) -> AsyncIterator[str]:
    """A pseudo-terminal whose far end is piped to an RTU-framed TCP server: a real serial
    port path for the serial client, without hardware or socat."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
    loop = asyncio.get_running_loop()

    def from_serial() -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            writer.write(os.read(master, 1024))

    async def to_serial() -> None:
        while data := await reader.read(1024):
            os.write(master, data)

    loop.add_reader(master, from_serial)
    pump = asyncio.create_task(to_serial())
    try:
        yield os.ttyname(slave)
    finally:
        loop.remove_reader(master)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        os.close(slave)
        os.close(master)


@pytest.fixture
def sim_device() -> Callable[..., SimDevice]:
    return _sim_device


@pytest.fixture
def modbus_server() -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    return _modbus_server


@pytest.fixture
def closing_server() -> Callable[[], contextlib.AbstractAsyncContextManager[ClosingServer]]:
    return _closing_server


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


@pytest.fixture
def pty_bridge() -> Callable[[int], contextlib.AbstractAsyncContextManager[str]]:
    return _pty_bridge
