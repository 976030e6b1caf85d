"""SunSpec CSIP COMM-004D/E/F/G: the 2030.5 TLS contexts refuse a peer whose chain is defective.

The CSIP procedures PDF is not redistributable; the titles are as transcribed in
``shared/domain/sep2.md`` §2.2. What each defective fixture carries is this file's reading of
the title (an open harness reads them the same way):

* D, "invalid critical MICA EKU": the MICA carries a *critical* extendedKeyUsage whose only
  purpose is a meaningless private OID, so nothing below it may authenticate a TLS peer;
* E, "invalid non-critical MICA name": the MICA carries nameConstraints marked *non-critical*
  (RFC 5280 §4.2.1.10 says MUST be critical) permitting only ``invalid.example``, which the
  leaf's names fall outside;
* F, "invalid non-critical MICA policy mapping": the MICA carries policyMappings marked
  non-critical that map anyPolicy (RFC 5280 §4.2.1.5: MUST NOT be mapped to or from);
* G: a self-signed device certificate, chaining to nothing.

Limits. E is refused because OpenSSL enforces the constraint against the leaf's dNSName
(``localhost``, which the test PKI's server certificates carry); OpenSSL does not enforce the
*criticality* of nameConstraints, so a production-shaped leaf (only the hardwareModuleName
otherName, no dNSName) under the same MICA is accepted. F is refused because the gateway turns
on OpenSSL's policy checking (off by default).

The defective certificates are minted in memory by the conformance suite's builders
(``gateway.conformance.csip.certs``, on ``gateway.north.sep2.pki``'s; the CA keys never touch
disk; the leaf key goes to ``tmp_path``). The handshake runs over memory BIOs (no sockets),
with ``tls.client_context`` / ``tls.server_context`` exactly as the gateway and the utility
simulator build them. The gateway is the client: the main case is the *server* presenting the
defective chain; the other direction (the server context refusing such a client) is checked
too.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.conformance.csip import certs
from gateway.north.sep2 import pki
from gateway.north.sep2.tls import client_context, server_context


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path
    chain: Path


def _write(tmp: Path, name: str, leaf: pki.Issued) -> Leaf:
    cert = tmp / f"{name}.pem"
    chain = tmp / f"{name}-chain.pem"
    key = tmp / f"{name}.key"
    cert.write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(
        b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (leaf.cert, *leaf.intermediates)
        )
    )
    key.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return Leaf(cert, key, chain)


# The defective MICAs and the self-signed device certificate are the conformance suite's
# (``gateway.conformance.csip.certs``: its COMM-004D..G cases present them to a client over the
# wire); this file's defect names map onto its.
_DEFECT = {"eku": "mica-eku", "name": "mica-name", "name-satisfied": "mica-name",
           "policy-mapping": "mica-policy-mapping"}  # fmt: skip


def _mica(serca: pki.Issued, defect: str | None) -> pki.Issued:
    """A MICA under ``serca`` as ``pki.make_ca`` builds it, plus the defect named. "name"
    permits only ``invalid.example``, which the leaf's names fall outside; "name-satisfied"
    permits the names its devices carry: OpenSSL then finds nothing wrong, and only the
    criticality (tls.check_chain) can refuse the chain."""
    allowed = "invalid.example" if defect == "name" else "localhost"
    return certs.mica(serca, None if defect is None else _DEFECT[defect], permitted=allowed)


def _self_signed_device(serial: str) -> pki.Issued:
    """A device certificate per the CSIP profile but signed by its own key (COMM-004G)."""
    return certs.self_signed(serial)


@dataclass(frozen=True)
class World:
    serca: Path
    gateway: Leaf
    server: Leaf
    bad_server: dict[str, Leaf]
    bad_client: dict[str, Leaf]


DEFECTS = ("eku", "name", "name-satisfied", "policy-mapping", "self-signed")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("comm004")
    serca = pki.make_serca()
    good = _mica(serca, None)
    (tmp / "serca.pem").write_bytes(serca.cert.public_bytes(serialization.Encoding.PEM))
    gateway = _write(tmp, "gateway", pki.make_device(good, "gateway"))
    server = _write(tmp, "server", pki.make_device(good, "server", server_names=["localhost"]))
    bad_server: dict[str, Leaf] = {}
    bad_client: dict[str, Leaf] = {}
    for defect in DEFECTS:
        if defect == "self-signed":
            srv, cli = _self_signed_device("bad-server"), _self_signed_device("bad-client")
        else:
            mica = _mica(serca, defect)
            srv = pki.make_device(mica, "bad-server", server_names=["localhost"])
            cli = pki.make_device(mica, "bad-client", server_names=["localhost"])
        bad_server[defect] = _write(tmp, f"server-{defect}", srv)
        bad_client[defect] = _write(tmp, f"client-{defect}", cli)
    return World(tmp / "serca.pem", gateway, server, bad_server, bad_client)


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> BaseException | None:
    """Run one TLS handshake over memory BIOs; the first side's error, or None if both finish."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_side=False, server_hostname="localhost")
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(50):
        for name, obj in (("c", cli), ("s", srv)):
            if done[name]:
                continue
            try:
                obj.do_handshake()
                done[name] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError as exc:
                return exc
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["c"] and done["s"]:
            return None
    raise AssertionError("the handshake neither finished nor failed")


def _client(w: World, leaf: Leaf | None = None) -> ssl.SSLContext:
    leaf = leaf or w.gateway
    return client_context(leaf.cert, leaf.key, leaf.chain, w.serca)


def _server(w: World, leaf: Leaf | None = None) -> ssl.SSLContext:
    leaf = leaf or w.server
    return server_context(leaf.cert, leaf.key, leaf.chain, w.serca)


def test_COMM_004_the_good_chains_of_this_file_are_accepted(world: World) -> None:
    assert handshake(_client(world), _server(world)) is None


REASONS = {
    "eku": "unsuitable certificate purpose",
    "name": "permitted subtree violation",
    "name-satisfied": "nameConstraints not marked critical",
    "policy-mapping": "invalid or inconsistent certificate policy extension",
    "self-signed": "self-signed certificate",
}


def _refused(result: BaseException | None, defect: str) -> None:
    assert isinstance(result, ssl.SSLCertVerificationError), result
    assert REASONS[defect] in str(result)


def test_COMM_004D_a_server_under_a_mica_with_a_critical_invalid_eku_is_refused(
    world: World,
) -> None:
    defect = "eku"
    _refused(handshake(_client(world), _server(world, world.bad_server[defect])), defect)
    _refused(handshake(_client(world, world.bad_client[defect]), _server(world)), defect)


def test_COMM_004E_a_server_under_a_mica_with_non_critical_name_constraints_is_refused(
    world: World,
) -> None:
    defect = "name"
    _refused(handshake(_client(world), _server(world, world.bad_server[defect])), defect)
    _refused(handshake(_client(world, world.bad_client[defect]), _server(world)), defect)


def test_COMM_004E_non_critical_name_constraints_are_refused_even_when_the_names_satisfy_them(
    world: World,
) -> None:
    """OpenSSL applies nameConstraints but ignores their criticality: a peer whose names satisfy
    them passed before ``tls.check_chain``. Both sides refuse it now, in the handshake."""
    defect = "name-satisfied"
    _refused(handshake(_client(world), _server(world, world.bad_server[defect])), defect)
    _refused(handshake(_client(world, world.bad_client[defect]), _server(world)), defect)


def test_COMM_004F_a_server_under_a_mica_mapping_any_policy_is_refused(world: World) -> None:
    defect = "policy-mapping"
    _refused(handshake(_client(world), _server(world, world.bad_server[defect])), defect)
    _refused(handshake(_client(world, world.bad_client[defect]), _server(world)), defect)


def test_COMM_004G_a_self_signed_device_certificate_is_refused(world: World) -> None:
    defect = "self-signed"
    _refused(handshake(_client(world), _server(world, world.bad_server[defect])), defect)
    _refused(handshake(_client(world, world.bad_client[defect]), _server(world)), defect)
