"""Security procedures (SunSpec CSIP COMM-003, COMM-004) through the gateway's own client stack.

``test_tls_handshake.py`` checks the TLS contexts handshake by handshake; here the same rules
are checked where they matter: the gateway (``Http`` + ``tls.client_context``, walking with the
real client) against the simulated utility server. What the server negotiated is recorded by a
test-only ``sslobject_class`` on its context.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from sep2_rig import (
    PIN,
    RATE_S,
    Utility,
    export_limit,
    gateway_rig,
    run,
    server_clock,
    utility_server,
)

from gateway.core.messages import NorthLinkLost
from gateway.north.sep2 import tls
from gateway.north.sep2.client import Backoff, Http
from gateway.north.sep2.pki import DeviceFiles, PkiFiles
from gateway.north.sep2.walk import discover
from gateway.sim.utility import Recorder, UtilityServer, UtilityState

SUITE = ("TLSv1.2", "ECDHE-ECDSA-AES128-CCM8")
Handshake = tuple[str | None, str | None, str]  # version, cipher, the peer's LFDI


def _record_handshakes(ctx: ssl.SSLContext) -> list[Handshake]:
    """Every handshake the server's context completes, from the server's side."""
    seen: list[Handshake] = []

    class Recording(ctx.sslobject_class):  # keeps the checks tls.py adds to the handshake
        def do_handshake(self) -> None:
            super().do_handshake()
            cipher = self.cipher()
            seen.append((self.version(), cipher[0] if cipher else None, tls.peer_lfdi(self)))

    ctx.sslobject_class = Recording
    return seen


def _server_ssl(server: UtilityServer) -> ssl.SSLContext:
    ctx: ssl.SSLContext = server._ssl  # the test watches the server's handshakes
    return ctx


# --- COMM-003: TLS 1.2, ECDHE-ECDSA-AES128-CCM8, mutual ------------------------------------------


def test_COMM_003_the_gateway_negotiates_tls12_ecdhe_ecdsa_aes128_ccm8(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    async def body() -> None:
        async with utility_server(sep2_pki) as u:
            seen = _record_handshakes(_server_ssl(u.server))
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                await r.until(lambda: r.state.der_status(r.lfdi) is not None, "a walk and posts")
                await r.until(lambda: len(r.state.readings(r.lfdi)) > 0, "readings")
            assert seen, "no handshake recorded"
            assert set(seen) == {(*SUITE, sep2_pki.device("gateway").lfdi)}, set(seen)
            # Every request came over such a connection, identified by the client certificate.
            assert {x.lfdi for x in u.recorder.requests()} == {sep2_pki.device("gateway").lfdi}

    run(body)


# --- COMM-004: certificate validation ---------------------------------------------------------


def test_COMM_004_a_server_with_a_rogue_certificate_is_refused_and_the_link_is_lost(
    sep2_pki: PkiFiles, tmp_path: Path
) -> None:
    rogue = sep2_pki.rogue_server  # issued by a look-alike SERCA (same Subject, another key)

    async def body() -> None:
        state = UtilityState(clock=server_clock)
        for resource in ("dcap", "tm", "edev", "reg", "fsa", "derp", "der"):
            state.set_poll_rate(resource, RATE_S)
        state.add_end_device(sep2_pki.device("gateway").lfdi, pin=PIN, post_rate=RATE_S)
        program = state.add_program("feeder 7", primacy=1, default=export_limit(5000))
        recorder = Recorder()
        server = UtilityServer(
            state,
            cert=rogue.cert,
            key=rogue.key,
            chain=rogue.chain,
            serca=sep2_pki.serca,
            recorder=recorder,
        )
        async with server:
            state.add_control(program, start=state.now() + 1, duration=60, base=export_limit(100))
            u = Utility(state, server, recorder, program)
            async with gateway_rig(sep2_pki, tmp_path / "gw.db", utility=u) as r:
                await r.until(
                    lambda: any(isinstance(i, NorthLinkLost) for i in r.inputs),
                    "the engine told the link is lost",
                )
                await asyncio.sleep(1.0)
                lost = [i for i in r.inputs if isinstance(i, NorthLinkLost)]
                assert len(lost) == 1  # told once, not at every attempt
                assert "certificate verify failed" in lost[0].error, lost[0].error
                assert any("certificate verify failed" in e for e in r.gateway.client.errors)
                assert r.gateway.client.session.discovery is None
                assert r.site.engine.schedule.records() == []
            # Not one HTTP request reached the impostor: nothing was sent before verification.
            assert recorder.exchanges == []

    run(body)


async def _walk_as(pki: PkiFiles, client: DeviceFiles, server: DeviceFiles) -> None:
    """A whole discovery walk through ``Http``, ``client`` presenting its chain to a utility
    serving ``server``'s; both sides must see the other's LFDI."""
    state = UtilityState(clock=server_clock)
    state.add_end_device(client.lfdi, pin=PIN)
    state.add_program("feeder 7", primacy=1, default=export_limit(5000))
    recorder = Recorder()
    utility = UtilityServer(
        state,
        cert=server.cert,
        key=server.key,
        chain=server.chain,
        serca=pki.serca,
        recorder=recorder,
    )
    seen = _record_handshakes(utility._ssl)
    # The depth fixtures name no host: pin the server's LFDI instead (tls module docstring).
    pinned = server is not pki.server
    context = tls.client_context(
        client.cert,
        client.key,
        client.chain,
        pki.serca,
        check_hostname=not pinned,
        pinned_lfdi=server.lfdi if pinned else None,
    )
    async with utility, Http(utility.url("/dcap"), context, backoff=Backoff(0.2, 2.0)) as http:
        found = await http.drive(discover(http.dcap_url, lfdi=client.lfdi, pin=PIN))
    assert found.end_device.lFDI == client.lfdi
    assert len(found.programs) == 1
    assert set(seen) == {(*SUITE, client.lfdi)}
    assert {x.lfdi for x in recorder.requests()} == {client.lfdi}
    assert all(x.status == 200 for x in recorder.requests())


def _depth(pki: PkiFiles, fixture: str, depth: int) -> DeviceFiles:
    leaf = pki.depth[fixture]
    presented = leaf.chain.read_text().count("BEGIN CERTIFICATE")
    assert presented + 1 == depth  # the SERCA is never sent: the peer has it
    return leaf


def _chain_depth_accepted(pki: PkiFiles, fixture: str, depth: int) -> None:
    leaf = _depth(pki, fixture, depth)

    async def body() -> None:
        # The gateway's certificate at this depth, the server's at depth 4 ...
        await _walk_as(pki, leaf, pki.server)
        # ... and the server's at this depth, the gateway's at depth 4.
        await _walk_as(pki, pki.device("gateway"), leaf)

    run(body, timeout=20)


def test_COMM_004A_chain_depth_2_serca_device_accepted(sep2_pki: PkiFiles) -> None:
    _chain_depth_accepted(sep2_pki, "comm-004a", 2)


def test_COMM_004B_chain_depth_3_serca_mica_device_accepted(sep2_pki: PkiFiles) -> None:
    _chain_depth_accepted(sep2_pki, "comm-004b", 3)


def test_COMM_004C_chain_depth_4_serca_mca_mica_device_accepted(sep2_pki: PkiFiles) -> None:
    _chain_depth_accepted(sep2_pki, "comm-004c", 4)
