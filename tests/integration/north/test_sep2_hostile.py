"""Found against a hostile 2030.5 server: what the gateway does, and what its log says.

* a bad body during the very first walk is retried within seconds (the first-walk back-off),
  not after the schema's 900 s default poll rate;
* controls refused with 253 / 254 are logged at WARNING, with the mRID and the reason;
* a server with an RSA certificate, and a server that never answers, are named as such in the
  log, over real TLS sockets (not "Cannot connect to host ... [None]" and an empty message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sep2_rig import export_limit, gateway_rig, run, until, utility_server

from gateway.core.errors import TransportError
from gateway.core.messages import Input
from gateway.north.sep2 import tls
from gateway.north.sep2.client import Backoff, EndDeviceClient, Http, Identity
from gateway.north.sep2.identity import sfdi_from_lfdi
from gateway.north.sep2.pki import PkiFiles, init_pki
from gateway.north.sep2.walk import Request

EDEV_LIST = "/edev"
WARNING_ABOUT_THE_WALK = "walking again from DeviceCapability in"


def test_a_bad_body_in_the_first_walk_is_retried_within_seconds_not_the_default_poll_rate(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before any walk completed the server's pollRate is unknown; the first-walk back-off (1 s
    doubling, +-20 %) applies, so the walk is tried again about a second later."""

    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            # The EndDeviceList cut in half, once: not well-formed, so the walk refuses it.
            u.state.tamper([EDEV_LIST], lambda b: b[: len(b) // 2], count=1)
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                client = r.gateway.client
                await r.until(lambda: client.session.walked, "a completed walk", timeout=10)
                gets = r.recorder.requests("GET", path=EDEV_LIST)
                assert len(gets) >= 2, gets
                gap = gets[1].at - gets[0].at
                assert gap < 5, f"the walk was retried {gap:.1f} s after the bad body"
                assert any(WARNING_ABOUT_THE_WALK in e for e in client.errors), client.errors

    with caplog.at_level(logging.WARNING, logger="gateway.north.sep2.client"):
        run(body)
    walk_warnings = [rec for rec in caplog.records if WARNING_ABOUT_THE_WALK in rec.getMessage()]
    assert walk_warnings, caplog.text
    assert walk_warnings[0].levelno == logging.WARNING
    assert EDEV_LIST in walk_warnings[0].getMessage()


def test_a_control_refused_with_253_is_logged_at_warning_with_its_mrid_and_reason(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with gateway_rig(sep2_pki, tmp_path / "gw.db") as r:
            await r.until(lambda: r.gateway.client.session.walked, "a completed walk")
            now = r.server_now()
            # A negative export limit: it does not decode (a limit is a magnitude): 253.
            r.state.tamper(["/derp/*/derc"], lambda b: b.replace(b">777<", b">-777<"))
            bad = r.state.add_control(r.program, start=now, duration=600, base=export_limit(777))
            await r.until(lambda: r.codes(bad) == [253], "253 for the negative limit")
            # A control whose end is already past when the gateway first sees it: 254.
            over = r.state.add_control(
                r.program, start=now - 900, duration=60, base=export_limit(3000)
            )
            await r.until(lambda: r.codes(over) == [254], "254 for a control already over")
            refused[:] = [bad, over]

    refused: list[str] = []
    with caplog.at_level(logging.INFO):
        run(body)
    for mrid, code in zip(refused, (253, 254), strict=True):
        lines = [rec for rec in caplog.records if mrid in rec.getMessage()]
        warned = [rec for rec in lines if rec.levelno >= logging.WARNING]
        assert warned, f"{mrid} ({code}) never logged at WARNING: {[r.getMessage() for r in lines]}"
        text = warned[0].getMessage()
        assert str(code) in text, text
        assert "refused" in text, text


# --- what a failed connection is logged as, over real sockets ---------------------------------


def _rsa_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA server certificate and its key: what 2030.5's suite cannot use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "an RSA utility server")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "rsa-server.pem", directory / "rsa-server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def _hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        await reader.read()  # until the client gives up and closes
    writer.close()


async def _problems_logged(pki: PkiFiles, url: str) -> list[str]:
    """Run one EndDeviceClient against ``url`` until it has logged a problem."""
    gw = pki.device("gateway")
    context = tls.client_context(gw.cert, gw.key, gw.chain, pki.serca)

    async def ignore(_inputs: list[Input]) -> None:
        return None

    async with Http(url, context, timeout_s=0.5, backoff=Backoff(0.2, 1.0)) as http:
        client = EndDeviceClient(http, Identity(gw.lfdi, sfdi_from_lfdi(gw.lfdi)), deliver=ignore)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        try:
            await until(lambda: bool(client.errors), "a problem logged", timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
        return client.errors


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_server_with_an_rsa_certificate_is_named_as_such_in_the_log(
    sep2_pki: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _rsa_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.verify_mode = ssl.CERT_REQUIRED  # a 2030.5 server wants our certificate
    server_context.load_verify_locations(sep2_pki.serca)

    async def body() -> None:
        server = await asyncio.start_server(_hang_up, "127.0.0.1", 0, ssl=server_context)
        async with server:
            port = server.sockets[0].getsockname()[1]
            errors = await _problems_logged(sep2_pki, f"https://127.0.0.1:{port}/dcap")
        assert any(EXPECTED_RSA in e for e in errors), errors

    with caplog.at_level(logging.WARNING, logger="gateway.north.sep2.client"):
        run(body)
    logged = [w for w in _warnings(caplog) if EXPECTED_RSA in w]
    assert logged, _warnings(caplog)
    assert "[None]" not in logged[0]
    assert "127.0.0.1:" in logged[0]


def test_the_certificate_is_probed_once_per_outage_not_once_per_request(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """An aggregator's EndDevices fail together each time the gate opens: one probe serves
    them all until the server answers again."""
    cert, key = _rsa_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    probes: list[int] = []

    async def probed(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        probes.append(1)  # only the probe completes a handshake with this server
        writer.close()

    gw = sep2_pki.device("gateway")
    context = tls.client_context(gw.cert, gw.key, gw.chain, sep2_pki.serca)

    async def body() -> None:
        server = await asyncio.start_server(probed, "127.0.0.1", 0, ssl=server_context)
        async with server:
            url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/dcap"
            async with Http(url, context, backoff=Backoff(0.01, 0.02)) as http:
                for _ in range(3):
                    with pytest.raises(TransportError, match="certificate is RSA"):
                        await http.request(Request("GET", url))
        assert len(probes) == 1

    run(body)


EXPECTED_RSA = (
    "the server's certificate is RSA; 2030.5 requires ECDSA P-256 (TLS ECDHE-ECDSA-AES128-CCM8)"
)


def test_a_server_that_never_answers_is_logged_as_no_answer_within_the_timeout(
    sep2_pki: PkiFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        # A TCP socket that accepts and then says nothing: not even the TLS handshake.
        server = await asyncio.start_server(_never_answer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            expected[:] = [f"no answer from 127.0.0.1:{port} within 0.5 s"]
            errors = await _problems_logged(sep2_pki, f"https://127.0.0.1:{port}/dcap")
        assert any(expected[0] in e for e in errors), errors

    expected: list[str] = []
    with caplog.at_level(logging.WARNING, logger="gateway.north.sep2.client"):
        run(body)
    assert [w for w in _warnings(caplog) if expected[0] in w], _warnings(caplog)


def test_a_refused_connection_and_a_refused_client_certificate_say_so(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    """No traceback-speak either when nothing listens, or when a P-256 server hangs up on us
    in the handshake (it does not trust our chain): the message says what to check."""

    async def body() -> None:
        idle = socket.socket()
        idle.bind(("127.0.0.1", 0))
        port = idle.getsockname()[1]
        idle.close()  # nothing listens there now
        errors = await _problems_logged(sep2_pki, f"https://127.0.0.1:{port}/dcap")
        assert any(f"127.0.0.1:{port} refused the connection" in e for e in errors), errors

        other = init_pki(tmp_path / "other", devices=("gateway",))  # another SERCA
        s = sep2_pki.server
        strict = tls.server_context(s.cert, s.key, s.chain, other.serca)
        server = await asyncio.start_server(_hang_up, "127.0.0.1", 0, ssl=strict)
        async with server:
            port = server.sockets[0].getsockname()[1]
            errors = await _problems_logged(sep2_pki, f"https://127.0.0.1:{port}/dcap")
        assert any(
            f"the TLS handshake with 127.0.0.1:{port} failed" in e
            and "accept our certificate chain" in e
            and "[None]" not in e
            for e in errors
        ), errors

    run(body)


def test_no_server_time_at_start_up_says_who_did_not_answer_and_for_how_long(
    sep2_pki: PkiFiles,
) -> None:
    gw = sep2_pki.device("gateway")
    context = tls.client_context(gw.cert, gw.key, gw.chain, sep2_pki.serca)

    async def ignore(_inputs: list[Input]) -> None:
        return None

    async def body() -> None:
        server = await asyncio.start_server(_never_answer, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            url = f"https://127.0.0.1:{port}/dcap"
            async with Http(url, context, timeout_s=30) as http:  # start-up gives up first
                identity = Identity(gw.lfdi, sfdi_from_lfdi(gw.lfdi))
                client = EndDeviceClient(http, identity, deliver=ignore)
                assert await client.sync_time(timeout_s=0.3) is False
        why = f"no answer from 127.0.0.1:{port} within 0.3 s"
        assert client.errors == [
            f"no server time at start-up ({why}); starting on this machine's clock"
        ]

    run(body)
