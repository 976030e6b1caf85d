"""A test PKI for OpenADR 2.0b: a CA and VTN/VEN certificates, ECDSA P-256.

For tests, the scripted VTN and bench set-ups only (the tests mint theirs into ``tmp_path``).
ECDSA because openleadr signs every message with the PEM key it re-parses per message, which
costs ~39 ms for RSA-2048 and well under a millisecond for P-256 (``shared/domain/openadr.md``
§2.3-1, §2.4). Leaf certificates carry SAN ``localhost`` and ``127.0.0.1`` so that hostname
checking works on loopback. Files: ``ca.pem``, ``<name>.pem``, ``<name>.key`` (PKCS#8, mode 0600;
the CA key is not written).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from openleadr.utils import certificate_fingerprint


@dataclass(frozen=True, slots=True)
class Party:
    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        """openleadr's fingerprint: the last 10 bytes of SHA-256 of the DER certificate."""
        fp: str = certificate_fingerprint(self.cert.read_bytes())
        return fp


@dataclass(frozen=True, slots=True)
class Oadr2Pki:
    ca: Path
    vtn: Party
    ven: Party
    other: Party  # a second VEN/VTN certificate from the same CA (wrong-fingerprint cases)
    ven_rsa: Party | None = None  # an RSA-2048 VEN certificate, with ``rsa=True``


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def _leaf(
    directory: Path,
    name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    *,
    use_rsa: bool = False,
) -> Party:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if use_rsa
        else ec.generate_private_key(ec.SECP256R1())
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} (OpenADR test)"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    party = Party(directory / f"{name}.pem", directory / f"{name}.key")
    party.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(party.key, key)
    return party


def init_pki(directory: Path, *, with_rsa: bool = False) -> Oadr2Pki:
    """Write a fresh CA, VTN, VEN and 'other' certificate into ``directory`` (and an RSA VEN
    certificate ``ven-rsa`` with ``with_rsa``: the stock signing-cost comparison)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("OpenADR Test CA")
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Oadr2Pki(
        ca=ca_path,
        vtn=_leaf(directory, "vtn", ca_key, ca_name),
        ven=_leaf(directory, "ven", ca_key, ca_name),
        other=_leaf(directory, "other", ca_key, ca_name),
        ven_rsa=_leaf(directory, "ven-rsa", ca_key, ca_name, use_rsa=True) if with_rsa else None,
    )
