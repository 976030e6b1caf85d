"""What ``[sep2]``'s certificate files can be checked for before any handshake: the key is a
PEM private key that belongs to the certificate, and the certificate is in its validity period.
(Whether the server's chain leads to the SERCA, and ours to the server's trust anchor, only the
handshake can say: ``gateway run`` reports it.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def problems(cert: Path, key: Path, now: datetime | None = None) -> list[str]:
    """Each problem as ``key.path: message``; none when the pair is usable."""
    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as e:
        return [f"sep2.cert: {cert} is not a PEM certificate: {e}"]
    out = []
    when = now or datetime.now(UTC)
    if when < leaf.not_valid_before_utc:
        out.append(f"sep2.cert: {cert} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    if when > leaf.not_valid_after_utc:
        out.append(f"sep2.cert: {cert} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        # TypeError: an encrypted key (the gateway starts unattended: no passphrase prompt).
        return [*out, f"sep2.key: {key} is not an unencrypted PEM private key: {e}"]
    der = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.DER
    if private.public_key().public_bytes(pem, der) != leaf.public_key().public_bytes(pem, der):
        out.append(f"sep2.key: {key} is not the private key of {cert}")
    return out
