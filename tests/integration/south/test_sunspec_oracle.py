"""Independent oracle: pysunspec2's own blocking Modbus client against our SunSpec code.

``image(...)`` is served by a real pymodbus TCP server on loopback. pysunspec2 (its own socket
client, its own copy of the definitions' semantics) scans it; our ``walk`` is pumped over a
pymodbus client. Both must find the same models at the same addresses and decode the same
values, and what pysunspec2 writes must decode the same way through our points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from gateway.south import codec
from gateway.south.profile import Point
from gateway.south.sunspec import Chain, Image, Walk, bind, image, walk

UNIT = 1


def _simdata(registers: Mapping[int, int]) -> list[SimData]:
    """One SimData per run of consecutive addresses (SimData.address is the protocol address);
    everything else answers ILLEGAL ADDRESS, as on a real device."""
    blocks: list[SimData] = []
    run: list[int] = []
    start = prev = -2
    for address in sorted(registers):
        if address != prev + 1 and run:
            blocks.append(SimData(start, values=run, datatype=SimType.REGISTERS))
            run = []
        if not run:
            start = address
        run.append(registers[address])
        prev = address
    blocks.append(SimData(start, values=run, datatype=SimType.REGISTERS))
    return blocks


async def _serve(img: Image) -> tuple[ModbusTcpServer, int]:
    server = ModbusTcpServer(
        SimDevice(UNIT, simdata=_simdata(img.registers)), address=("127.0.0.1", 0)
    )
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]


async def _read(client: AsyncModbusTcpClient, address: int, count: int) -> list[int] | None:
    rr = await client.read_holding_registers(address, count=count, device_id=UNIT)
    return None if rr.isError() else list(rr.registers)


async def _walk(client: AsyncModbusTcpClient) -> Chain:
    """The asyncio pump a driver will use: every yielded read goes to the device."""
    gen: Walk = walk()
    try:
        request = next(gen)
        while True:
            request = gen.send(await _read(client, request.address, request.count))
    except StopIteration as stop:
        chain: Chain = stop.value
        return chain


async def _decode(client: AsyncModbusTcpClient, points: Mapping[str, Point], name: str) -> Any:
    p = points[name]
    sf = None
    if p.scale_factor is not None:
        sfp = points[p.scale_factor]
        sf_regs = await _read(client, sfp.address, sfp.count)
        assert sf_regs is not None
        raw = codec.decode(sfp, sf_regs)
        assert isinstance(raw, int)
        sf = raw
    regs = await _read(client, p.address, p.count)
    assert regs is not None, name
    return codec.decode(p, regs, sf)


def _pysunspec2(port: int, writes: Sequence[tuple[str, str, int | float]] = ()) -> dict[str, Any]:
    """Scan with pysunspec2 (blocking; run in a thread), read some values, optionally write."""
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

    dev = SunSpecModbusClientDeviceTCP(slave_id=UNIT, ipaddr="127.0.0.1", ipport=port, timeout=2)
    try:
        dev.scan()
        found = sorted(
            (m.model_addr, m.model_id, m.model_len)
            for key, models in dev.models.items()
            if isinstance(key, int)
            for m in models
        )
        values: dict[str, Any] = {"base": dev.base_addr, "chain": found}
        for mid, models in dev.models.items():
            if not isinstance(mid, int) or len(models) != 1:
                continue
            for name, point in models[0].points.items():
                values[f"{mid}.{name}"] = point.cvalue
        for mid_name, point_name, value in writes:
            model = dev.models[int(mid_name)][0]
            getattr(model, point_name).cvalue = value
        for mid_name in dict.fromkeys(m for m, _, _ in writes):
            dev.models[int(mid_name)][0].write()
        return values
    finally:
        dev.close()


def _ours(chain: Chain) -> list[tuple[int, int, int]]:
    return [(m.address, m.id, m.length) for m in chain.models]


CHARGER = [
    (1, {"Mn": "Acme", "Md": "BiDi-7", "SN": "0042", "Vr": "1.2.3"}),
    (
        701,
        {
            "W": -7350,
            "W_SF": 1,
            "InvSt": "RUNNING",
            "ConnSt": "CONNECTED",
            "Hz": 60.01,
            "Hz_SF": -2,
        },
    ),
    (702, {"WMaxRtg": 7400, "WDisChaRteMaxRtg": 7400, "W_SF": 0}),
    (704, {"WSetEna": "DISABLED", "WSetMod": "WATTS", "WSet": -7400, "WMaxLimPct_SF": -1}),
    (713, {"SoC": 65.4, "Pct_SF": -1, "Sta": "OK"}),
    (715, {"OpCtl": "STOP", "ControllerHb": 3}),
]


def test_pysunspec2_and_walk_agree_on_a_charger_and_its_writes() -> None:
    img = image(CHARGER)

    async def main() -> None:
        server, port = await _serve(img)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        try:
            assert await client.connect()
            chain = await _walk(client)
            assert chain == img.chain
            theirs = await asyncio.to_thread(
                _pysunspec2,
                port,
                [
                    ("704", "WSetEna", 1),
                    ("704", "WSetMod", 1),
                    ("704", "WSet", -5000),
                    ("704", "WMaxLimPct", 55.5),
                    ("715", "OpCtl", 1),
                ],
            )
            assert theirs["base"] == 40000
            assert theirs["chain"] == _ours(chain)
            points = bind(chain)
            for name in (
                "1.Mn",
                "1.SN",
                "701.W",
                "701.InvSt",
                "701.ConnSt",
                "701.Hz",
                "702.WMaxRtg",
                "704.WSetMod",
                "713.SoC",
                "713.Sta",
                "715.ControllerHb",
            ):
                ours = await _decode(client, points, name)
                assert ours == theirs[name], name
            assert theirs["701.W"] == -7350
            assert theirs["701.Hz"] == 60.01
            assert theirs["713.SoC"] == 65.4
            assert theirs["1.Mn"] == "Acme"
            assert theirs["704.WSet"] == -7400  # int32, negative, before the write
            # Not implemented on both sides: pysunspec2 None, we None.
            assert theirs["701.VA"] is None
            assert await _decode(client, points, "701.VA") is None
            # pysunspec2 wrote; the registers decode to the same through our points.
            after = {
                n: await _decode(client, points, n)
                for n in ("704.WSetEna", "704.WSetMod", "704.WSet", "704.WMaxLimPct", "715.OpCtl")
            }
            assert after == {
                "704.WSetEna": 1,
                "704.WSetMod": 1,
                "704.WSet": -5000,
                "704.WMaxLimPct": 55.5,
                "715.OpCtl": 1,
            }
            wset = await _read(client, points["704.WSet"].address, 2)
            assert wset == [0xFFFF, 0xEC78]  # -5000 as a big-endian int32
        finally:
            client.close()
            await server.shutdown()

    asyncio.run(main())


def test_a_chain_with_703_and_705_at_base_50000_shifts_addresses_alike() -> None:
    img = image(
        [
            (1, {"Mn": "Acme"}),
            (703, {"ES": "ENABLED", "ESDlyTms": 300, "ESHzHi": 60.1, "Hz_SF": -2}),
            (701, {"W": 1234, "W_SF": 0}),
            (705, {"NCrv": 2, "NPt": 3, "V_SF": -1, "Crv[2].Pt[3].V": 107.5}),
            (704, {"WSet": -100, "WSet_SF": 2}),  # raw -1
            (713, {"SoC": 12, "Pct_SF": 0}),
        ],
        base=50000,
    )

    async def main() -> None:
        server, port = await _serve(img)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        try:
            assert await client.connect()
            chain = await _walk(client)
            assert chain == img.chain
            theirs = await asyncio.to_thread(_pysunspec2, port)
            assert theirs["base"] == 50000
            assert theirs["chain"] == _ours(chain)
            # 703 (L=17) sits before 701, so 701 starts at 50002 + 68 + 19 instead of 50070.
            assert [m.address for m in chain.models[:3]] == [50002, 50070, 50089]
            points = bind(chain, counts={"705.NCrv": 2, "705.NPt": 3})
            for name in ("703.ES", "703.ESDlyTms", "703.ESHzHi", "701.W", "713.SoC"):
                assert await _decode(client, points, name) == theirs[name], name
            assert theirs["703.ESHzHi"] == 60.1
            assert theirs["704.WSet"] == -100
            assert await _decode(client, points, "704.WSet") == -100
            assert await _read(client, points["704.WSet"].address, 2) == [0xFFFF, 0xFFFF]
            assert await _decode(client, points, "705.Crv[2].Pt[3].V") == 107.5
        finally:
            client.close()
            await server.shutdown()

    asyncio.run(main())


def test_pysunspec2_sees_the_repeating_group_where_bind_puts_it() -> None:
    img = image([(705, {"NCrv": 2, "NPt": 3, "V_SF": -1, "Crv[2].Pt[3].V": 107.5})])

    def scan(port: int) -> tuple[int, float]:
        from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

        dev = SunSpecModbusClientDeviceTCP(slave_id=UNIT, ipaddr="127.0.0.1", ipport=port)
        try:
            dev.scan()
            m = dev.models[705][0]
            v = m.Crv[1].Pt[2].V  # pysunspec2's lists are 0-based: our Crv[2].Pt[3]
            return m.model_addr + v.offset, v.cvalue
        finally:
            dev.close()

    async def main() -> None:
        server, port = await _serve(img)
        try:
            address, value = await asyncio.to_thread(scan, port)
        finally:
            await server.shutdown()
        assert address == img.points["705.Crv[2].Pt[3].V"].address
        assert value == 107.5

    asyncio.run(main())
