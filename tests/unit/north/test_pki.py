"""The 2030.5 test PKI: the CSIP certificate profile (shared/domain/sep2.md §1.9), the chains,
the files and ``gateway certs init``."""

from __future__ import annotations

import argparse
import hashlib
import io
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from gateway.north.sep2 import pki as pki_module
from gateway.north.sep2.pki import (
    ID_ON_HARDWARE_MODULE_NAME,
    POLICY_DEVICE_GENERIC,
    POLICY_TEST_CERTIFICATE,
    TEST_HW_TYPE,
    PkiError,
    PkiFiles,
    hardware_module_name,
    init_pki,
)

NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return init_pki(tmp_path_factory.mktemp("pki") / "certs", devices=("gateway", "ev-1"))


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_all(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _common(cert: x509.Certificate) -> None:
    """What every certificate of the PKI shares: P-256, ecdsa-with-SHA256, notAfter 9999."""
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert cert.version is x509.Version.v3
    assert cert.not_valid_after_utc == NOT_AFTER
    assert cert.not_valid_before_utc < datetime.now(UTC)


def _generalized_time_after(cert: x509.Certificate) -> bool:
    # notAfter 99991231235959Z must be GeneralizedTime (tag 0x18), not UTCTime.
    return b"\x18\x0f99991231235959Z" in cert.public_bytes(serialization.Encoding.DER)


def _hardware_module_names(cert: x509.Certificate) -> list[bytes]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return [
        name.value
        for name in san.value
        if isinstance(name, x509.OtherName) and name.type_id == ID_ON_HARDWARE_MODULE_NAME
    ]


def _device_profile(cert: x509.Certificate, serial: str) -> None:
    _common(cert)
    assert _generalized_time_after(cert)
    assert cert.subject == x509.Name([])
    ext = cert.extensions
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_agreement
    assert not usage.value.key_cert_sign
    assert not usage.value.key_encipherment
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    policies = ext.get_extension_for_class(x509.CertificatePolicies)
    assert policies.critical
    assert [p.policy_identifier for p in policies.value] == [
        POLICY_DEVICE_GENERIC,
        POLICY_TEST_CERTIFICATE,
    ]
    assert POLICY_DEVICE_GENERIC.dotted_string.startswith("1.3.6.1.4.1.40732.1.")
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert _hardware_module_names(cert) == [hardware_module_name(TEST_HW_TYPE, serial.encode())]
    assert {e.oid for e in ext} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
    }


def test_device_certificates_follow_the_csip_profile(pki: PkiFiles) -> None:
    for name in ("gateway", "ev-1"):
        cert = load(pki.device(name).cert)
        _device_profile(cert, name)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert len(list(san)) == 1  # exactly one otherName, nothing else


def test_hardware_module_name_is_the_der_sequence_of_hwtype_and_serial() -> None:
    # SEQUENCE { OID 2.25.<uuid>, OCTET STRING "gateway" }, checked against a hand-made DER.
    oid_body = bytes.fromhex("6983e1bbbaa3eba08abca998c8d0c88adc8acb39")
    expected = (
        bytes([0x30, 2 + len(oid_body) + 2 + 7, 0x06, len(oid_body)])
        + oid_body
        + b"\x04\x07gateway"
    )
    assert hardware_module_name(TEST_HW_TYPE, b"gateway") == expected
    # Multi-byte arcs and long-form lengths: 1.2.840.10045 and a 200-byte serial.
    long = hardware_module_name(x509.ObjectIdentifier("1.2.840.10045"), b"x" * 200)
    assert long[:10] == bytes.fromhex("3081d2" + "06052a8648ce3d")
    assert long[10:13] == bytes.fromhex("0481c8")
    assert len(long) == 3 + 210


def test_the_san_otherName_is_wrapped_as_rfc_5280_wants(pki: PkiFiles) -> None:
    der = load(pki.device("gateway").cert).public_bytes(serialization.Encoding.DER)
    value = hardware_module_name(TEST_HW_TYPE, b"gateway")
    oid = bytes.fromhex("06082b06010505070804")  # 1.3.6.1.5.5.7.8.4
    other_name = bytes([0xA0, len(oid) + 2 + len(value)]) + oid + bytes([0xA0, len(value)]) + value
    assert bytes([0x30, len(other_name)]) + other_name in der


def test_the_server_certificate_adds_dns_and_ip_names(pki: PkiFiles) -> None:
    cert = load(pki.server.cert)
    assert cert.subject == x509.Name([])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert _hardware_module_names(cert) == [hardware_module_name(TEST_HW_TYPE, b"server")]


def _ca_profile(cert: x509.Certificate, path_length: int | None) -> None:
    _common(cert)
    assert _generalized_time_after(cert)
    assert cert.subject != x509.Name([])
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == path_length
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert not usage.value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.CertificatePolicies).critical
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_ca_certificates(pki: PkiFiles) -> None:
    _ca_profile(load(pki.serca), None)
    _ca_profile(load(pki.mca), 1)
    _ca_profile(load(pki.mica), 0)
    _ca_profile(load(pki.mica_direct), 0)
    serca = load(pki.serca)
    assert serca.issuer == serca.subject
    serca.verify_directly_issued_by(serca)


def _verify_chain(chain: list[x509.Certificate], serca: x509.Certificate) -> None:
    """Each certificate is signed by the next, the last by the SERCA; AKI matches SKI."""
    for child, parent in zip(chain, [*chain[1:], serca], strict=True):
        child.verify_directly_issued_by(parent)
        aki = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest


def test_chains_verify_up_to_the_serca(pki: PkiFiles) -> None:
    serca = load(pki.serca)
    gateway = load_all(pki.device("gateway").chain)
    assert [c.subject for c in gateway[1:]] == [load(pki.mica).subject, load(pki.mca).subject]
    assert gateway[0] == load(pki.device("gateway").cert)
    for files in [*pki.devices.values(), pki.server, *pki.depth.values()]:
        _verify_chain(load_all(files.chain), serca)


def test_comm_004_chain_depth_fixtures(pki: PkiFiles) -> None:
    serca = load(pki.serca)
    depths = {name: len(load_all(f.chain)) + 1 for name, f in pki.depth.items()}
    assert depths == {"comm-004a": 2, "comm-004b": 3, "comm-004c": 4}
    assert load_all(pki.depth["comm-004b"].chain)[1] == load(pki.mica_direct)
    for name, files in pki.depth.items():
        _device_profile(load(files.cert), name)
        _verify_chain(load_all(files.chain), serca)


def test_the_rogue_serca_looks_like_the_real_one_but_signs_nothing_of_it(pki: PkiFiles) -> None:
    serca, rogue = load(pki.serca), load(pki.rogue_serca)
    assert rogue.subject == serca.subject
    assert rogue.public_key() != serca.public_key()
    for files in (pki.rogue_device, pki.rogue_server):
        cert = load(files.cert)
        cert.verify_directly_issued_by(rogue)
        with pytest.raises(InvalidSignature):
            cert.verify_directly_issued_by(serca)
    _device_profile(load(pki.rogue_device.cert), "rogue-device")


def test_lfdi_is_the_truncated_sha256_of_the_der_certificate(pki: PkiFiles) -> None:
    for files in [*pki.devices.values(), pki.server, pki.rogue_device]:
        der = load(files.cert).public_bytes(serialization.Encoding.DER)
        assert files.lfdi == hashlib.sha256(der).hexdigest()[:40].upper()
    lfdis = {f.lfdi for f in [*pki.devices.values(), pki.server, *pki.depth.values()]}
    assert len(lfdis) == 2 + 1 + 3


def test_keys_are_private_and_match_their_certificates(pki: PkiFiles) -> None:
    for files in [*pki.devices.values(), pki.server, pki.rogue_device, *pki.depth.values()]:
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        assert key.public_key() == load(files.cert).public_key()
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(pki.serca.stat().st_mode) == 0o644
    assert sorted(p.name for p in pki.directory.glob("*.key")) == sorted(
        f"{n}.key"
        for n in ("gateway", "ev-1", "server", "rogue-device", "rogue-server", *pki.depth)
    )  # no CA key is ever written


def test_an_existing_pki_is_not_overwritten_without_force(tmp_path: Path) -> None:
    first = init_pki(tmp_path)
    before = first.serca.read_bytes()
    with pytest.raises(PkiError, match=r"already holds a PKI .*force"):
        init_pki(tmp_path)
    assert first.serca.read_bytes() == before
    first.device("gateway").key.chmod(0o644)
    second = init_pki(tmp_path, force=True)
    assert second.serca.read_bytes() != before
    assert stat.S_IMODE(second.device("gateway").key.stat().st_mode) == 0o600


def test_a_single_existing_file_is_enough_to_refuse(tmp_path: Path) -> None:
    (tmp_path / "server.key").write_text("someone's key")
    with pytest.raises(PkiError, match=r"server\.key"):
        init_pki(tmp_path)
    assert (tmp_path / "server.key").read_text() == "someone's key"
    assert not (tmp_path / "serca.pem").exists()


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (("../evil",), "bad device name"),
        (("x-chain",), "bad device name"),
        (("serca",), "taken by a file of the PKI"),
        (("a", "a"), "named twice"),
        ((), "at least one device"),
    ],
)
def test_bad_device_names_are_refused(
    tmp_path: Path, devices: tuple[str, ...], message: str
) -> None:
    with pytest.raises(PkiError, match=message):
        init_pki(tmp_path / "p", devices=devices)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("chain", "intermediates"),
    [("serca-mca-mica", ["mica", "mca"]), ("serca-mica", ["mica-direct"]), ("serca", [])],
)
def test_the_chain_option_picks_the_issuer_of_devices_and_server(
    tmp_path: Path, chain: str, intermediates: list[str]
) -> None:
    files = init_pki(tmp_path, chain=chain)
    expected = [load(tmp_path / f"{n}.pem").subject for n in intermediates]
    for leaf in (files.device("gateway"), files.server):
        assert [c.subject for c in load_all(leaf.chain)[1:]] == expected
        _verify_chain(load_all(leaf.chain), load(files.serca))


def test_an_unknown_chain_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="unknown chain"):
        init_pki(tmp_path, chain="serca-mca")


# --- gateway certs init DIR -------------------------------------------------------------------


def _cli(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="gateway certs")
    pki_module.add_arguments(parser)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = pki_module.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_init_writes_the_pki_and_prints_each_lfdi(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    code, out, err = _cli(["init", str(target), "--device", "gw1", "--device", "gw2"])
    assert (code, err) == (0, "")
    for name in ("gw1", "gw2", "server"):
        der = load(target / f"{name}.pem").public_bytes(serialization.Encoding.DER)
        lfdi = hashlib.sha256(der).hexdigest()[:40].upper()
        assert f"{lfdi}  {name}.pem {name}.key {name}-chain.pem" in out
    assert "serca.pem" in out
    assert "never commit" in out
    assert not (target / "gateway.pem").exists()


def test_cli_refuses_to_overwrite_and_force_replaces(tmp_path: Path) -> None:
    assert _cli(["init", str(tmp_path)])[0] == 0
    code, out, err = _cli(["init", str(tmp_path)])
    assert (code, out) == (1, "")
    assert err.startswith(f"gateway certs init: {tmp_path} already holds a PKI")
    assert "--force" in err
    assert _cli(["init", str(tmp_path), "--force"])[0] == 0


def test_cli_options(tmp_path: Path) -> None:
    code, _, _ = _cli(
        ["init", str(tmp_path), "--chain", "serca", "--server-name", "utility.test",
         "--server-name", "::1"]
    )  # fmt: skip
    assert code == 0
    san = load(tmp_path / "server.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["utility.test"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["::1"]
    assert len(load_all(tmp_path / "gateway-chain.pem")) == 1
