"""A 2030.5 body that arrives in many small chunks is read whole, up to the size cap.

Found by the OpenADR 3 client's tests: ``StreamReader.read(n)`` returns what has arrived, so a
single call stopped at the first chunk of a large DERControlList and the decoder saw truncated
XML. A real aiohttp server streams the body here in 512-byte chunks.
"""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

from gateway.north.sep2 import codec
from gateway.north.sep2.client import MAX_BODY_BYTES, Http
from gateway.north.sep2.model import (
    DateTimeInterval,
    DERControl,
    DERControlBase,
    DERControlList,
    EventStatus,
)
from gateway.north.sep2.walk import Request


def _big_list(n: int) -> bytes:
    controls = tuple(
        DERControl(
            mRID=f"{i:032X}",
            creationTime=1_800_000_000,
            EventStatus=EventStatus(
                currentStatus=0, dateTime=1_800_000_000, potentiallySuperseded=False
            ),
            interval=DateTimeInterval(duration=600, start=1_800_000_000 + i),
            DERControlBase=DERControlBase(opModConnect=False),
            href=f"/derp/1/derc/{i}",
        )
        for i in range(n)
    )
    return codec.encode(DERControlList(all=n, results=n, DERControl=controls, href="/derp/1/derc"))


async def _serve(body: bytes) -> tuple[web.AppRunner, str]:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 512):
            await resp.write(body[i : i + 512])
            await asyncio.sleep(0)  # let each chunk go out on its own
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/big", chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_a_large_list_in_many_chunks_is_read_whole() -> None:
    body = _big_list(200)
    assert 50_000 < len(body) < MAX_BODY_BYTES

    async def main() -> bytes:
        runner, base = await _serve(body)
        try:
            async with Http(base + "/dcap", ssl.create_default_context()) as http:
                reply = await http.request(Request("GET", "/big"))
            return reply.body
        finally:
            await runner.cleanup()

    got = asyncio.run(main())
    assert got == body
    decoded = codec.decode(got)
    assert isinstance(decoded, DERControlList)
    assert len(decoded.DERControl) == 200
