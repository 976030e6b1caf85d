"""The certificates of the COMM-004 cases: a SERCA -> MCA -> MICA PKI whose CA keys stay in
memory (so that defective MICAs and leaves can be minted under the same SERCA), written per
case into its folder.

The CSIP procedures are not public; each defect is this suite's reading of the catalogue's
title (``shared/domain/sep2.md`` §2.2) against RFC 5280 and the 2030.5 certificate profile
(IEEE 2030.5-2018 §6.11): the same reading as ``tests/integration/north/test_sep2_comm_004.py``.

- D, invalid critical MICA EKU: the MICA carries a *critical* extendedKeyUsage whose only
  purpose is a private OID, so nothing below it may authenticate a TLS server (RFC 5280
  §4.2.1.12; OpenSSL applies a CA's EKU to the chain);
- E, invalid non-critical MICA name: nameConstraints marked non-critical (§4.2.1.10: MUST be
  critical), permitting the names the leaf has, so only the criticality is wrong;
- F, invalid non-critical MICA policy mapping: policyMappings that map anyPolicy
  (§4.2.1.5: MUST NOT);
- G: a self-signed device certificate (2030.5 §6.11: device certificates are issued by a MICA);
- another CA: a look-alike SERCA (same Subject, another key) issues the server's certificate;
- expired: a server certificate whose notAfter has passed (§6.1.5 of RFC 5280 path validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, ObjectIdentifier

from gateway.north.sep2 import pki

INVALID_PURPOSE = ObjectIdentifier("2.25.1234567890.1")  # a UUID-arc OID nobody honours
INVALID_POLICY = ObjectIdentifier("2.25.1234567890.2")
SERVER_NAMES = ("localhost", "127.0.0.1")

#: The server certificates a case can present: name -> what it is.
KINDS = {
    "depth-2": "SERCA -> server",
    "depth-3": "SERCA -> MICA -> server",
    "depth-4": "SERCA -> MCA -> MICA -> server",
    "mica-eku": "under a MICA with a critical, invalid extendedKeyUsage",
    "mica-name": "under a MICA with nameConstraints not marked critical",
    "mica-policy-mapping": "under a MICA mapping anyPolicy (non-critical policyMappings)",
    "self-signed": "a self-signed device certificate",
    "other-ca": "issued by another CA (a look-alike SERCA with the same Subject)",
    "expired": "SERCA -> MCA -> MICA -> server, notAfter yesterday",
}


@dataclass(frozen=True)
class Leaf:
    """A device's files, as ``pki.DeviceFiles`` (what the csip-aus site writer reads)."""

    cert: Path
    key: Path
    chain: Path
    lfdi: str


@dataclass(frozen=True)
class Pki:
    """What a case's site file and server need: the SERCA, the gateway's and a server's files."""

    serca: Path
    gateway: Leaf
    server: Leaf

    def device(self, name: str) -> Leaf:
        if name != "gateway":
            raise KeyError(name)
        return self.gateway


def _write(folder: Path, name: str, leaf: pki.Issued) -> Leaf:
    pem = serialization.Encoding.PEM
    cert, chain, key = folder / f"{name}.pem", folder / f"{name}-chain.pem", folder / f"{name}.key"
    cert.write_bytes(leaf.cert.public_bytes(pem))
    chain.write_bytes(b"".join(c.public_bytes(pem) for c in (leaf.cert, *leaf.intermediates)))
    key.write_bytes(
        leaf.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key.chmod(0o600)
    return Leaf(cert, key, chain, pki.lfdi(leaf.cert))


def mica(serca: pki.Issued, defect: str | None, *, permitted: str = "localhost") -> pki.Issued:
    """A MICA under ``serca`` as ``pki.make_ca`` builds it, plus ``defect`` (None: none):
    ``mica-eku``, ``mica-name`` (its nameConstraints permit the DNS name ``permitted``) or
    ``mica-policy-mapping``. Also used by ``tests/integration/north/test_sep2_comm_004.py``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(pki._name(f"COMM-004 MICA {defect or 'good'}"))
        .issuer_name(serca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki._not_before())
        .not_valid_after(pki.NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(pki._ca_usage(), critical=True)
        .add_extension(pki._ski(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(serca.key.public_key()),
            critical=False,
        )
        .add_extension(pki._policies(pki.DEVICE_POLICIES), critical=True)
    )
    if defect == "mica-eku":
        builder = builder.add_extension(x509.ExtendedKeyUsage([INVALID_PURPOSE]), critical=True)
    elif defect == "mica-name":
        names: list[x509.GeneralName] = [x509.DNSName(permitted)]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=names, excluded_subtrees=None),
            critical=False,
        )
    elif defect == "mica-policy-mapping":
        pair = pki._der(0x30, pki._der_oid(pki.ANY_POLICY) + pki._der_oid(INVALID_POLICY))
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ExtensionOID.POLICY_MAPPINGS, pki._der(0x30, pair)),
            critical=False,
        )
    return pki.Issued(builder.sign(serca.key, hashes.SHA256()), key, ())


def self_signed(serial: str) -> pki.Issued:
    """A device certificate per the CSIP profile, signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    hmn = pki.hardware_module_name(pki.TEST_HW_TYPE, serial.encode())
    names: list[x509.GeneralName] = [x509.OtherName(pki.ID_ON_HARDWARE_MODULE_NAME, hmn)]
    names += [pki._general_name(n) for n in SERVER_NAMES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki._not_before())
        .not_valid_after(pki.NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(pki._device_usage(), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(pki._policies(pki.DEVICE_POLICIES), critical=True)
        .sign(key, hashes.SHA256())
    )
    return pki.Issued(cert, key, ())


def _expired(issuer: pki.Issued) -> pki.Issued:
    """``pki.make_device``'s server certificate, its validity moved into the past."""
    good = pki.make_device(issuer, "expired-server", server_names=SERVER_NAMES)
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(good.cert.subject)
        .issuer_name(good.cert.issuer)
        .public_key(good.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
    )
    for ext in good.cert.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return pki.Issued(builder.sign(issuer.key, hashes.SHA256()), good.key, good.intermediates)


def mint(folder: Path, server: str = "depth-4") -> Pki:
    """A fresh PKI in ``folder``: the gateway under SERCA -> MCA -> MICA, and a server
    certificate of kind ``server`` (:data:`KINDS`)."""
    if server not in KINDS:
        raise ValueError(f"no server certificate kind {server!r}; there is: {', '.join(KINDS)}")
    folder.mkdir(parents=True, exist_ok=True)
    serca = pki.make_serca()
    mca = pki.make_ca(serca, "IEEE 2030.5 Test MCA", path_length=1)
    issuing = pki.make_ca(mca, "IEEE 2030.5 Test MICA", path_length=0)
    issuers = {
        "depth-2": serca,
        "depth-3": pki.make_ca(serca, "IEEE 2030.5 Test MICA (direct)", path_length=0),
        "depth-4": issuing,
        "other-ca": pki.make_serca(),  # same Subject as the real one, another key
    }
    if server in issuers:
        leaf = pki.make_device(issuers[server], "server", server_names=SERVER_NAMES)
    elif server == "self-signed":
        leaf = self_signed("server")
    elif server == "expired":
        leaf = _expired(issuing)
    else:
        leaf = pki.make_device(mica(serca, server), "server", server_names=SERVER_NAMES)
    (folder / "serca.pem").write_bytes(serca.cert.public_bytes(serialization.Encoding.PEM))
    return Pki(
        folder / "serca.pem",
        _write(folder, "gateway", pki.make_device(issuing, "gateway")),
        _write(folder, "server", leaf),
    )
