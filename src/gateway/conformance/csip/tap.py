"""A TCP tap in front of the simulated utility: what the client under test offered in its TLS
ClientHello, what the server chose, and whether the client went on to send application data.

TLS ends at the server, not here: the tap forwards bytes both ways unchanged and reads only the
record headers (always plaintext, RFC 5246 §6.2.1) and the two hellos (plaintext in TLS 1.2).
So COMM-003 is judged from what the client put on the wire, and a refused handshake (COMM-004)
is seen as a connection whose client sent a ClientHello and never an application-data record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

RECORD_ALERT, RECORD_HANDSHAKE, RECORD_APPLICATION_DATA = 21, 22, 23
CLIENT_HELLO, SERVER_HELLO = 1, 2
EXT_SUPPORTED_VERSIONS = 43
TLS12 = 0x0303
CCM8 = 0xC0AE  # TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8


@dataclass
class Connection:
    """One TCP connection the tap carried."""

    at: float
    offered_versions: list[int] = field(default_factory=list)  # supported_versions, or legacy
    offered_ciphers: list[int] = field(default_factory=list)
    chosen_version: int | None = None
    chosen_cipher: int | None = None
    client_records: dict[int, int] = field(default_factory=dict)  # record type -> count
    server_records: dict[int, int] = field(default_factory=dict)

    @property
    def hello(self) -> bool:
        return bool(self.offered_ciphers)

    @property
    def application_data(self) -> bool:
        """The client sent an application-data record: the handshake completed on its side."""
        return self.client_records.get(RECORD_APPLICATION_DATA, 0) > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tls": "connection",
            "at": round(self.at, 3),
            "offered_versions": [f"0x{v:04X}" for v in self.offered_versions],
            "offered_ciphers": [f"0x{c:04X}" for c in self.offered_ciphers],
            "chosen_version": None
            if self.chosen_version is None
            else f"0x{self.chosen_version:04X}",
            "chosen_cipher": None if self.chosen_cipher is None else f"0x{self.chosen_cipher:04X}",
            "client_records": self.client_records,
            "server_records": self.server_records,
        }


def _u16(b: bytes, i: int) -> int:
    return int.from_bytes(b[i : i + 2], "big")


def _extensions(body: bytes, i: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    if i + 2 > len(body):
        return out
    end = i + 2 + _u16(body, i)
    i += 2
    while i + 4 <= end:
        kind, size = _u16(body, i), _u16(body, i + 2)
        out[kind] = body[i + 4 : i + 4 + size]
        i += 4 + size
    return out


def parse_client_hello(body: bytes, c: Connection) -> None:
    """``body``: a ClientHello handshake message without its 4-byte header (RFC 5246 §7.4.1.2)."""
    legacy = _u16(body, 0)
    i = 2 + 32
    i += 1 + body[i]  # session_id
    n = _u16(body, i)
    c.offered_ciphers = [_u16(body, i + 2 + k) for k in range(0, n, 2)]
    i += 2 + n
    i += 1 + body[i]  # compression_methods
    ext = _extensions(body, i)
    if (sv := ext.get(EXT_SUPPORTED_VERSIONS)) is not None:
        c.offered_versions = [_u16(sv, 1 + k) for k in range(0, sv[0], 2)]
    else:
        c.offered_versions = [legacy]


def parse_server_hello(body: bytes, c: Connection) -> None:
    legacy = _u16(body, 0)
    i = 2 + 32
    i += 1 + body[i]
    c.chosen_cipher = _u16(body, i)
    i += 3  # cipher_suite, compression_method
    sv = _extensions(body, i).get(EXT_SUPPORTED_VERSIONS)
    c.chosen_version = _u16(sv, 0) if sv is not None and len(sv) >= 2 else legacy


class _Records:
    """Splits one direction's bytes into TLS records; the first handshake record's first
    message (the hello) is parsed."""

    def __init__(self, c: Connection, counts: dict[int, int], client: bool) -> None:
        self.c, self.counts, self.client = c, counts, client
        self.buf = b""
        self.hello_done = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 5:
            kind, size = self.buf[0], _u16(self.buf, 3)
            if len(self.buf) < 5 + size:
                return
            record, self.buf = self.buf[5 : 5 + size], self.buf[5 + size :]
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == RECORD_HANDSHAKE and not self.hello_done and len(record) >= 4:
                self.hello_done = True
                msg = record[4:]
                with contextlib.suppress(IndexError):
                    if self.client and record[0] == CLIENT_HELLO:
                        parse_client_hello(msg, self.c)
                    elif not self.client and record[0] == SERVER_HELLO:
                        parse_server_hello(msg, self.c)


class Tap:
    """``async with Tap(host, port) as tap``: listens on ``tap.port`` and forwards to
    ``host:port``; ``tap.connections`` is what it saw."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.upstream = host, port
        self.port = 0
        self.connections: list[Connection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Tap:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        c = Connection(time.time())
        self.connections.append(c)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, _Records(c, c.client_records, client=True)),
            self._pipe(up_reader, writer, _Records(c, c.server_records, client=False)),
            return_exceptions=True,
        )
        self._tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, records: _Records
    ) -> None:
        try:
            while data := await reader.read(65536):
                records.feed(data)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
