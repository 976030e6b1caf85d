"""Real mutual-TLS handshakes on loopback with the 2030.5 contexts and a freshly minted test PKI.

Names follow the SunSpec CSIP procedures (shared/domain/sep2.md §2.2): COMM-003 is the TLS
profile, COMM-004 certificate validation (A-C chain depth; the rest, negatives). "Expired" and
"not yet valid" do not apply (notAfter is 9999-12-31); a chain with its MICA left out does.

asyncio aborts a server-side handshake without sending the alert, so a client that the server
refuses sees only a reset connection; the server's own reason is recorded by a test-only
``sslobject_class`` on its context and asserted as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.north.sep2 import tls
from gateway.north.sep2.pki import DeviceFiles, PkiFiles, init_pki
from gateway.north.sep2.tls import (
    TlsIdentityError,
    client_context,
    peer_lfdi,
    server_context,
)

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other"))


@dataclass
class ServerView:
    """What the server saw: one entry per completed handshake, one per refused one."""

    peers: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    refused: list[ssl.SSLError] = field(default_factory=list)
    handlers: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class ClientView:
    version: str | None
    cipher: str | None
    server_lfdi: str
    reply: bytes


def _recording(ctx: ssl.SSLContext, view: ServerView) -> ssl.SSLContext:
    class Recording(ctx.sslobject_class):  # keeps the checks tls.py adds to the handshake
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                view.refused.append(exc)
                raise

    ctx.sslobject_class = Recording
    return ctx


def _server(pki: PkiFiles, leaf: DeviceFiles | None = None) -> ssl.SSLContext:
    leaf = leaf or pki.server
    return server_context(leaf.cert, leaf.key, leaf.chain, pki.serca)


def _client(
    pki: PkiFiles,
    leaf: DeviceFiles | None = None,
    *,
    check_hostname: bool = True,
    pinned_lfdi: str | None = None,
) -> ssl.SSLContext:
    leaf = leaf or pki.device("gateway")
    return client_context(
        leaf.cert,
        leaf.key,
        leaf.chain,
        pki.serca,
        check_hostname=check_hostname,
        pinned_lfdi=pinned_lfdi,
    )


async def _exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str = "localhost"
) -> tuple[ClientView | BaseException, ServerView]:
    """One connection, ``ping``/``pong``; the client's view (or its exception) and the server's."""
    view = ServerView()
    _recording(server_ctx, view)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        view.handlers.append(task)
        obj = writer.get_extra_info("ssl_object")
        cipher = obj.cipher()
        view.peers.append((peer_lfdi(obj), obj.version(), cipher[0] if cipher else None))
        try:
            if await reader.readline() == b"ping\n":
                writer.write(b"pong\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client gave up on us (a pin mismatch): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=TIMEOUT
    )
    port = server.sockets[0].getsockname()[1]
    result: ClientView | BaseException
    try:
        async with asyncio.timeout(TIMEOUT):
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    port,
                    ssl=client_ctx,
                    server_hostname=hostname,
                    ssl_handshake_timeout=TIMEOUT,
                )
            except (OSError, ssl.SSLError) as exc:
                result = exc
            else:
                try:
                    obj = writer.get_extra_info("ssl_object")
                    writer.write(b"ping\n")
                    await writer.drain()
                    cipher = obj.cipher()
                    result = ClientView(
                        obj.version(), cipher[0] if cipher else None, peer_lfdi(obj),
                        await reader.readline(),
                    )  # fmt: skip
                finally:
                    writer.close()
                    await writer.wait_closed()
            # Let the server finish its side: its handler, or the abort of a refused handshake
            # (a few more turns of the loop), so that no transport outlives the test.
            await asyncio.gather(*view.handlers)
            await asyncio.sleep(0.01)
            await asyncio.gather(*view.handlers)
    finally:
        server.close()
        await server.wait_closed()
    return result, view


def run(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str = "localhost"
) -> tuple[ClientView | BaseException, ServerView]:
    return asyncio.run(_exchange(server_ctx, client_ctx, hostname))


def _ok(result: ClientView | BaseException) -> ClientView:
    if isinstance(result, BaseException):
        raise AssertionError(f"handshake failed: {result!r}")
    return result


def _refused_by_server(result: ClientView | BaseException, view: ServerView, reason: str) -> None:
    """The server refused the handshake for ``reason``; the client never got a connection."""
    assert isinstance(result, (ConnectionError, ssl.SSLError)), result
    assert view.peers == []
    assert len(view.refused) == 1
    assert reason in str(view.refused[0])


# --- COMM-003: the TLS profile ---------------------------------------------------------------


def test_comm_003_tls12_ccm8_mutual_and_both_sides_know_the_other_lfdi(pki: PkiFiles) -> None:
    result, view = run(_server(pki), _client(pki))
    client = _ok(result)
    assert (client.version, client.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-CCM8")
    assert client.reply == b"pong\n"
    assert client.server_lfdi == pki.server.lfdi
    assert view.peers == [(pki.device("gateway").lfdi, "TLSv1.2", "ECDHE-ECDSA-AES128-CCM8")]
    assert view.refused == []


def test_comm_003_the_suite_also_negotiates_at_security_level_0(
    pki: PkiFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The string used from OpenSSL 3.2 on, where CCM8 sits at security level 0.
    original = tls.cipher_string
    monkeypatch.setattr(tls, "cipher_string", lambda: original((3, 2, 0)))
    assert tls.cipher_string() == "ECDHE-ECDSA-AES128-CCM8:@SECLEVEL=0"
    client = _ok(run(_server(pki), _client(pki))[0])
    assert (client.version, client.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-CCM8")


def test_comm_003_a_client_offering_the_default_suites_is_refused(pki: PkiFiles) -> None:
    gateway = pki.device("gateway")
    plain = ssl.create_default_context(cafile=str(pki.serca))  # TLS 1.2 + 1.3, DEFAULT suites
    plain.load_cert_chain(str(gateway.chain), str(gateway.key))
    result, view = run(_server(pki), plain)
    _refused_by_server(result, view, "no shared cipher")


def test_comm_003_a_tls13_only_client_is_refused(pki: PkiFiles) -> None:
    gateway = pki.device("gateway")
    modern = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    modern.minimum_version = ssl.TLSVersion.TLSv1_3
    modern.load_verify_locations(str(pki.serca))
    modern.load_cert_chain(str(gateway.chain), str(gateway.key))
    result, view = run(_server(pki), modern)
    _refused_by_server(result, view, "unsupported protocol")


def test_peers_that_verify_strictly_accept_the_test_pki(pki: PkiFiles) -> None:
    # Python 3.13's default contexts set VERIFY_X509_STRICT; the test PKI must pass it.
    server, client = _server(pki), _client(pki)
    for ctx in (server, client):
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert _ok(run(server, client)[0]).reply == b"pong\n"


# --- COMM-004: certificate validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "depth"), [("comm-004a", 2), ("comm-004b", 3), ("comm-004c", 4)]
)
def test_comm_004abc_chain_depths_2_to_4_are_accepted(
    pki: PkiFiles, fixture: str, depth: int
) -> None:
    leaf = pki.depth[fixture]
    presented = leaf.chain.read_text().count("BEGIN CERTIFICATE")
    assert presented + 1 == depth  # the SERCA is never sent: the peer has it
    result, view = run(_server(pki), _client(pki, leaf))
    assert _ok(result).reply == b"pong\n"
    assert [lfdi for lfdi, _, _ in view.peers] == [leaf.lfdi]


def test_comm_004_client_certificate_from_a_rogue_serca_is_refused(pki: PkiFiles) -> None:
    # The rogue SERCA has the real one's Subject; only the key differs.
    result, view = run(_server(pki), _client(pki, pki.rogue_device))
    _refused_by_server(result, view, "certificate verify failed")
    assert isinstance(view.refused[0], ssl.SSLCertVerificationError)
    assert "unable to get local issuer certificate" in str(view.refused[0])


def test_comm_004_server_certificate_from_a_rogue_serca_is_refused_by_the_client(
    pki: PkiFiles,
) -> None:
    result, view = run(_server(pki, pki.rogue_server), _client(pki))
    assert isinstance(result, ssl.SSLCertVerificationError), result
    assert "certificate verify failed: unable to get local issuer certificate" in str(result)
    assert view.peers == []


def test_comm_004_a_client_without_a_certificate_is_refused(pki: PkiFiles) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    anonymous.set_ciphers(tls.cipher_string())
    anonymous.load_verify_locations(str(pki.serca))
    result, view = run(_server(pki), anonymous)
    _refused_by_server(result, view, "peer did not return a certificate")


def test_comm_004_a_chain_with_its_mica_left_out_is_refused(pki: PkiFiles) -> None:
    # Signed under the right SERCA, but presented as the bare leaf: the server has only the
    # SERCA and never treats anything but the SERCA as an anchor.
    gateway = pki.device("gateway")
    bare = client_context(gateway.cert, gateway.key, None, pki.serca)
    result, view = run(_server(pki), bare)
    _refused_by_server(result, view, "unable to get local issuer certificate")


def test_comm_004_the_server_needs_its_intermediates_too(pki: PkiFiles) -> None:
    bare = server_context(pki.server.cert, pki.server.key, None, pki.serca)
    result, _ = run(bare, _client(pki))
    assert isinstance(result, ssl.SSLCertVerificationError), result
    assert "unable to get local issuer certificate" in str(result)


def test_the_server_name_is_checked_when_asked(pki: PkiFiles) -> None:
    result, _ = run(_server(pki), _client(pki), hostname="utility.example")
    assert isinstance(result, ssl.SSLCertVerificationError), result
    assert "Hostname mismatch" in str(result)
    unchecked = _client(pki, check_hostname=False)
    assert _ok(run(_server(pki), unchecked, hostname="utility.example")[0]).reply == b"pong\n"


# --- the LFDI pin ---------------------------------------------------------------------------


def test_the_pinned_server_lfdi_is_accepted_in_any_spelling(pki: PkiFiles) -> None:
    lfdi = pki.server.lfdi.upper()
    grouped = "-".join(lfdi[i : i + 4] for i in range(0, 40, 4))
    result, _ = run(_server(pki), _client(pki, pinned_lfdi=grouped))
    assert _ok(result).server_lfdi == pki.server.lfdi


def test_a_server_with_another_lfdi_fails_the_handshake_with_tls_identity_error(
    pki: PkiFiles,
) -> None:
    # A genuine certificate of the same PKI, but not the server we pinned. It has no DNS name,
    # like a production server certificate: the pin, not the name, is what identifies it.
    impostor = _server(pki, pki.device("other"))
    pinned = _client(pki, check_hostname=False, pinned_lfdi=pki.server.lfdi)
    result, view = run(impostor, pinned)
    assert isinstance(result, TlsIdentityError), result
    assert str(result) == (
        f"peer LFDI {pki.device('other').lfdi} is not the pinned {pki.server.lfdi}: its "
        "certificate chains to the SERCA but belongs to another device"
    )
    # The server completed its side, but no request was ever written to it.
    assert [lfdi for lfdi, _, _ in view.peers] == [pki.device("gateway").lfdi]


def test_check_pinned_after_the_handshake(pki: PkiFiles) -> None:
    async def go() -> None:
        async with _http_server(_server(pki)) as port:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=_client(pki), server_hostname="localhost"
            )
            try:
                obj = writer.get_extra_info("ssl_object")
                tls.check_pinned(obj, pki.server.lfdi)
                with pytest.raises(TlsIdentityError, match="is not the pinned"):
                    tls.check_pinned(obj, pki.device("gateway").lfdi)
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()

    asyncio.run(go())


def test_a_malformed_pin_is_a_configuration_error(pki: PkiFiles) -> None:
    with pytest.raises(ValueError, match="40 hex digits"):
        _client(pki, pinned_lfdi="not-an-lfdi")


def test_a_chain_file_of_another_device_is_a_configuration_error(pki: PkiFiles) -> None:
    gateway, other = pki.device("gateway"), pki.device("other")
    with pytest.raises(ValueError, match="does not begin with the certificate"):
        client_context(gateway.cert, gateway.key, other.chain, pki.serca)


def test_the_pin_holds_for_blocking_sockets_too(pki: PkiFiles) -> None:
    def connect(port: int, ctx: ssl.SSLContext) -> str:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as conn,
        ):
            return conn.version() or ""

    async def go() -> None:
        async with _http_server(_server(pki)) as port:
            right = _client(pki, pinned_lfdi=pki.server.lfdi)
            assert await asyncio.to_thread(connect, port, right) == "TLSv1.2"
            wrong = _client(pki, pinned_lfdi=pki.device("other").lfdi)
            with pytest.raises(TlsIdentityError, match="is not the pinned"):
                await asyncio.to_thread(connect, port, wrong)

    asyncio.run(go())


def test_the_pin_holds_through_aiohttp(pki: PkiFiles) -> None:
    import aiohttp

    async def get(port: int, ctx: ssl.SSLContext) -> int:
        connector = aiohttp.TCPConnector(ssl=ctx)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"https://localhost:{port}/dcap") as response,
        ):
            await response.read()
            return response.status

    async def go() -> None:
        async with _http_server(_server(pki)) as port:
            assert await get(port, _client(pki, pinned_lfdi=pki.server.lfdi)) == 200
            wrong = _client(pki, pinned_lfdi=pki.device("other").lfdi)
            with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                await get(port, wrong)
            assert isinstance(caught.value.certificate_error, TlsIdentityError)

    asyncio.run(go())


@contextlib.asynccontextmanager
async def _http_server(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS server answering :func:`_answer`; yields its port; waits for its handlers at exit."""
    handlers: list[asyncio.Future[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.get_running_loop().create_future()
        handlers.append(done)
        try:
            await _answer(reader, writer)
        finally:
            done.set_result(None)

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=ctx, ssl_handshake_timeout=TIMEOUT
    )
    try:
        yield server.sockets[0].getsockname()[1]
        async with asyncio.timeout(TIMEOUT):
            await asyncio.sleep(0.01)  # a connection the client just dropped reaches its handler
            await asyncio.gather(*handlers)
    finally:
        server.close()
        await server.wait_closed()


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 answer to whatever comes first; tolerates clients that hang up."""
    try:
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
