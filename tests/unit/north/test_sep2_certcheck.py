"""[sep2]'s certificate and key, checked at load: the pair must belong together, the key must be
readable unattended, and the certificate must be in its validity period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.north.sep2.certcheck import problems
from gateway.north.sep2.pki import init_pki


def test_a_matching_pair_has_no_problem(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki", devices=("a", "b"))
    a = pki.device("a")
    assert problems(a.cert, a.key) == []


def test_another_devices_key_is_named(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki", devices=("a", "b"))
    (said,) = problems(pki.device("a").cert, pki.device("b").key)
    assert said.startswith("sep2.key:")
    assert "is not the private key of" in said


def test_an_encrypted_or_garbled_key_is_named(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki", devices=("a",))
    a = pki.device("a")
    k = serialization.load_pem_private_key(a.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert "not an unencrypted PEM private key" in problems(a.cert, locked)[0]
    garbled = tmp_path / "garbled.key"
    garbled.write_text("not a key", encoding="utf-8")
    assert "not an unencrypted PEM private key" in problems(a.cert, garbled)[0]


def test_an_expired_certificate_is_named(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "old.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (said,) = problems(tmp_path / "old.pem", tmp_path / "old.key")
    assert said == f"sep2.cert: {tmp_path / 'old.pem'} expired on 2020-12-31"
