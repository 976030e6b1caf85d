"""TLS files a person got wrong: each is a ConfigError naming the file, what is wrong with it
and what to do, never OpenSSL's "[SSL] PEM lib (_ssl.c:...)" or a traceback."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.core.errors import ConfigError
from gateway.north.sep2 import tls
from gateway.north.sep2.notify import NotificationListener
from gateway.north.sep2.pki import PkiFiles, init_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki"), devices=("gateway", "other"))


async def _nothing(_n: object) -> None:
    return None


def test_a_key_file_that_is_really_a_certificate_is_named_with_what_to_do(pki: PkiFiles) -> None:
    gw = pki.device("gateway")
    with pytest.raises(tls.TlsConfigError) as caught:
        tls.client_context(gw.cert, gw.cert, gw.chain, pki.serca)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert str(gw.cert) in message
    assert "holds a certificate, not a private key" in message
    assert "[sep2] key" in message
    assert "header names a PRIVATE KEY" in message
    assert "PEM lib" not in message


def test_the_listener_says_the_same_about_its_key_file(pki: PkiFiles) -> None:
    gw = pki.device("gateway")
    with pytest.raises(tls.TlsConfigError, match="holds a certificate, not a private key"):
        NotificationListener(
            cert=gw.cert, key=gw.chain, chain=gw.chain, serca=pki.serca, on_notification=_nothing
        )


def test_swapped_cert_and_key_are_named_as_such(pki: PkiFiles) -> None:
    gw = pki.device("gateway")
    with pytest.raises(tls.TlsConfigError, match=r"are cert and key swapped\?"):
        tls.client_context(gw.key, gw.cert, None, pki.serca)


def test_a_key_of_another_device_is_named_with_both_files(pki: PkiFiles) -> None:
    gw, other = pki.device("gateway"), pki.device("other")
    with pytest.raises(tls.TlsConfigError) as caught:
        tls.client_context(gw.cert, other.key, gw.chain, pki.serca)
    message = str(caught.value)
    assert f"{other.key} is not the private key of the certificate in {gw.cert}" in message


def test_a_missing_file_an_encrypted_key_and_an_empty_serca(pki: PkiFiles, tmp_path: Path) -> None:
    gw = pki.device("gateway")
    missing = tmp_path / "nowhere.key"
    with pytest.raises(tls.TlsConfigError, match=rf"{missing}: no such file.*\[sep2\] key"):
        tls.client_context(gw.cert, missing, gw.chain, pki.serca)

    locked = tmp_path / "locked.key"
    key = ec.generate_private_key(ec.SECP256R1())
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(tls.TlsConfigError, match=rf"{locked} is encrypted"):
        tls.client_context(gw.cert, locked, gw.chain, pki.serca)

    empty = tmp_path / "serca.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(tls.TlsConfigError, match=rf"{empty} holds no PEM certificate.*serca"):
        tls.client_context(gw.cert, gw.key, gw.chain, empty)


def test_good_files_still_make_a_context(pki: PkiFiles, tmp_path: Path) -> None:
    gw = pki.device("gateway")
    copy = tmp_path / "gateway.key"
    shutil.copy(gw.key, copy)
    assert isinstance(tls.client_context(gw.cert, copy, gw.chain, pki.serca), ssl.SSLContext)


def test_certificate_problem_names_rsa_and_other_curves(pki: PkiFiles) -> None:
    from cryptography import x509

    ours = x509.load_pem_x509_certificate(pki.device("gateway").cert.read_bytes())
    assert tls.certificate_problem(ours.public_bytes(serialization.Encoding.DER)) is None
    assert "does not parse" in (tls.certificate_problem(b"garbage") or "")
