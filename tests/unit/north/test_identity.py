"""2030.5 identity: LFDI, SFDI and PIN against the worked vectors of shared/domain/sep2.md §5.1."""

from __future__ import annotations

import argparse
import ast
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from gateway.north.sep2 import cli_lfdi, identity
from gateway.north.sep2.identity import (
    SFDI_MAX,
    Identity,
    IdentityError,
    check_digit,
    fingerprint,
    lfdi,
    parse_lfdi,
    parse_sfdi,
    pin_valid,
    pin_with_check,
    sfdi_from_lfdi,
    with_check_digit,
)

ENVOY_PEM = Path(__file__).parents[2] / "data" / "sep2" / "envoy-certificate1.pem"
ENVOY_SHA256 = "854d10a201ca99e5e90d3c3e1f9bc1c3bd075f3b89298d159ca526e069457b5a"


def make_certificate(common_name: str = "device") -> tuple[bytes, bytes]:
    """A fresh self-signed P-256 certificate: (PEM, DER). Generated per test, never stored."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        certificate.public_bytes(serialization.Encoding.DER),
    )


def digit_sum(n: int) -> int:
    return sum(int(d) for d in str(n))


# --- the worked vectors ------------------------------------------------------------------------


def test_standard_example_lfdi_gives_sfdi_167261211391() -> None:
    # 0x3E4F45AB3 = 16726121139, digit sum 39, check digit 1.
    assert sfdi_from_lfdi("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5") == 167261211391


def test_cactus_readme_lfdi_gives_sfdi_40773583337() -> None:
    assert sfdi_from_lfdi("0F3078CFDDAEE28DC20B95635DC116CC2A6D877F") == 40773583337


def test_envoy_certificate1_gives_its_fingerprint_lfdi_and_sfdi() -> None:
    pem = ENVOY_PEM.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert fingerprint(der).hex() == ENVOY_SHA256
    assert lfdi(der) == "854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B"
    expected = Identity("854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B", 357827241281)
    assert Identity.from_certificate(pem) == expected
    assert Identity.from_certificate(der) == expected
    assert Identity.from_der(der) == expected


def test_lower_case_lfdi_is_accepted_and_written_in_upper_case() -> None:
    text = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
    assert sfdi_from_lfdi(text) == 167261211391
    assert parse_lfdi(f"  {text}\n") == text.upper()
    assert Identity.from_lfdi(text).lfdi == text.upper()


def test_generated_certificate_lfdi_is_the_first_160_bits_of_its_sha256() -> None:
    pem, der = make_certificate()
    digest = hashlib.sha256(der).hexdigest()
    found = Identity.from_certificate(pem)
    assert found.lfdi == digest[:40].upper()
    assert found.sfdi == with_check_digit(int(digest[:9], 16))


# --- PIN ---------------------------------------------------------------------------------------


def test_pin_11111_with_check_digit_is_111115() -> None:
    assert check_digit(11111) == 5
    assert pin_with_check(11111) == 111115
    assert pin_valid(111115)


@pytest.mark.parametrize(
    "pin",
    [
        111111,  # wrong check digit
        11111,  # the 5-digit form is not a PIN (as 011111 its check digit is wrong)
        1111150,  # seven digits
        -1,
        True,  # bool is an int, but not a PIN
    ],
)
def test_invalid_pins_are_rejected(pin: int) -> None:
    assert not pin_valid(pin)


def test_pin_with_check_refuses_a_pin_that_already_has_one() -> None:
    with pytest.raises(IdentityError, match="already with its check digit"):
        pin_with_check(111115)
    with pytest.raises(IdentityError, match="non-negative"):
        pin_with_check(-5)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3E4F45AB31EDFE5B67E343E5E4562E31984E23", "40 hex digits .* got 38 characters"),
        ("", "got 0 characters"),
        (ENVOY_SHA256, "whole SHA-256 fingerprint; the LFDI is its first 40"),
        ("3E4F-45AB-31ED-FE5B-67E3-43E5-E456-2E31-984E-23E5", "without separators"),
        ("3E4F45AB31EDFE5B67E343E5E4562E31984E23EG", "'G' at position 39 .* is not"),
        ("3E4F45AB31EDFE5B67E3 3E5E4562E31984E23E5", "' ' at position 20"),
    ],
)
def test_parse_lfdi_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        parse_lfdi(text)


def test_parse_sfdi_accepts_the_vectors_and_the_largest_sfdi() -> None:
    for sfdi in (167261211391, 40773583337, 357827241281, 0):
        assert parse_sfdi(sfdi) == sfdi
    largest = with_check_digit(2**36 - 1)
    assert largest == 687194767357  # the XSD's bound, 687194767359, fails its check digit
    assert parse_sfdi(largest) == largest


def test_parse_sfdi_explains_a_bare_36_bit_value() -> None:
    # cactus ALL-01 gives 16726121139 for this LFDI: the value without its check digit.
    with pytest.raises(IdentityError, match=r"last digit should be 0.*SFDI is 167261211391"):
        parse_sfdi(16726121139)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (SFDI_MAX + 1, "at most 687194767359"),
        (10**12, "at most"),
        (-167261211391, "non-negative"),
        (True, "non-negative int; got bool"),
        (167261211392, "fails its check digit"),
    ],
)
def test_parse_sfdi_refuses(value: int, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        parse_sfdi(value)


def test_identity_keeps_lfdi_and_sfdi_consistent() -> None:
    lfdi_text = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    with pytest.raises(IdentityError, match="does not belong to LFDI"):
        Identity(lfdi_text, 40773583337)
    with pytest.raises(IdentityError, match=r"use Identity\.from_lfdi"):
        Identity(lfdi_text.lower(), 167261211391)
    assert isinstance(IdentityError("x"), ValueError)


# --- certificates ------------------------------------------------------------------------------


def test_pem_with_a_private_key_first_and_a_chain_uses_the_first_certificate() -> None:
    pem, _ = make_certificate("leaf")
    other, _ = make_certificate("issuer")
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    text = b"Certificate:\n    (openssl x509 -text output)\n"
    assert Identity.from_certificate(key + text + pem + other) == Identity.from_certificate(pem)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "got no data"),
        (b" \n", "got no data"),
        (b"not a certificate at all", "PEM .* or DER; these 24 bytes are neither"),
        (b"0\x82\x05\xb3 truncated", r"neither \(as DER: .*\)"),
    ],
)
def test_garbage_is_refused_naming_what_was_expected(data: bytes, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        Identity.from_certificate(data)


def test_pem_without_a_certificate_names_the_blocks_it_found() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # (A generated key: nothing secret is in the repository.)
    with pytest.raises(IdentityError, match="found PRIVATE KEY") as err:
        Identity.from_certificate(key)
    assert "expected a PEM block '-----BEGIN CERTIFICATE-----'" in str(err.value)


def test_corrupt_pem_certificate_is_refused() -> None:
    pem, _ = make_certificate()
    lines = pem.splitlines(keepends=True)
    corrupt = b"".join([lines[0], *lines[3:]])  # drop two lines of the body
    with pytest.raises(IdentityError, match=r"PEM CERTIFICATE block is not an X\.509 certificate"):
        Identity.from_certificate(corrupt)


def test_truncated_der_is_refused() -> None:
    _, der = make_certificate()
    with pytest.raises(IdentityError, match="as DER"):
        Identity.from_certificate(der[:-1])


def test_identity_module_is_sans_io() -> None:
    tree = ast.parse(Path(identity.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"asyncio", "aiohttp", "socket", "ssl", "os", "pathlib"}


# --- properties --------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**40))
def test_check_digit_makes_the_digit_sum_a_multiple_of_ten(n: int) -> None:
    assert 0 <= check_digit(n) <= 9
    assert digit_sum(with_check_digit(n)) % 10 == 0


@given(st.binary(min_size=20, max_size=20))
def test_sfdi_round_trips_from_any_lfdi(raw: bytes) -> None:
    text = raw.hex()
    sfdi = sfdi_from_lfdi(text)
    assert 0 <= sfdi <= SFDI_MAX
    assert sfdi // 10 == int(text[:9], 16)
    assert parse_sfdi(sfdi) == sfdi
    assert Identity.from_lfdi(text) == Identity(text.upper(), sfdi)


@given(
    st.integers(min_value=0, max_value=99999),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_error_in_a_pin_is_detected(five: int, position: int, delta: int) -> None:
    pin = pin_with_check(five)
    digits = [int(d) for d in f"{pin:06d}"]
    digits[position] = (digits[position] + delta) % 10
    assert not pin_valid(int("".join(map(str, digits))))


# --- gateway lfdi ------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gateway lfdi")
    cli_lfdi.add_arguments(parser)
    return parser.parse_args(argv)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    import sys

    status = cli_lfdi.run(parse(argv), sys.stdout, sys.stderr)
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_prints_lfdi_sfdi_and_path_for_pem_and_der(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem, der = make_certificate()
    (tmp_path / "device.pem").write_bytes(pem)
    (tmp_path / "device.der").write_bytes(der)
    expected = Identity.from_der(der)
    status, out, err = run_cli(
        [str(tmp_path / "device.pem"), str(tmp_path / "device.der"), str(ENVOY_PEM)], capsys
    )
    assert (status, err) == (0, "")
    rows = [line.split() for line in out.splitlines()]
    assert rows == [
        ["LFDI", expected.lfdi, "SFDI", str(expected.sfdi), str(tmp_path / "device.pem")],
        ["LFDI", expected.lfdi, "SFDI", str(expected.sfdi), str(tmp_path / "device.der")],
        [
            "LFDI",
            "854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B",
            "SFDI",
            "357827241281",
            str(ENVOY_PEM),
        ],
    ]
    # Paths line up whatever the SFDI's length.
    paths = [tmp_path / "device.pem", tmp_path / "device.der", ENVOY_PEM]
    starts = {
        len(line) - len(str(path)) for line, path in zip(out.splitlines(), paths, strict=True)
    }
    assert len(starts) == 1


def test_cli_reports_garbage_and_missing_files_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "garbage.pem").write_bytes(b"hello")
    status, out, err = run_cli(
        [str(tmp_path / "garbage.pem"), str(tmp_path / "missing.pem"), str(ENVOY_PEM)], capsys
    )
    assert status == 2
    assert out.split() == [
        "LFDI",
        "854D10A201CA99E5E90D3C3E1F9BC1C3BD075F3B",
        "SFDI",
        "357827241281",
        str(ENVOY_PEM),
    ]
    lines = err.splitlines()
    assert lines[0].startswith(f"gateway lfdi: {tmp_path / 'garbage.pem'}: expected an X.509")
    assert (
        lines[1]
        == f"gateway lfdi: {tmp_path / 'missing.pem'}: cannot read: No such file or directory"
    )
    assert len(lines) == 2


def test_cli_reports_a_directory_as_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli([str(tmp_path)], capsys)
    assert (status, out) == (2, "")
    assert err.startswith(f"gateway lfdi: {tmp_path}: cannot read: ")
